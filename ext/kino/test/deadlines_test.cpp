#include "http1/deadlines.hpp"

#include <gtest/gtest.h>

using namespace kino;
using namespace std::chrono_literals;

namespace {

using Waiting = Deadlines::Waiting;
using Expired = Deadlines::Expired;

ServerConfig timeouts() {
  ServerConfig config;
  config.first_data_timeout = 1000ms;
  config.persistent_timeout = 5000ms;
  config.request_timeout = 0ms;
  config.min_body_rate = 100;  // bytes a second
  config.min_body_rate_window = 2000ms;
  return config;
}

constexpr int64_t kStart = 1'000'000;  // a steady-clock time, ms

}  // namespace

TEST(Deadlines, NothingIsDueUntilSomethingIsAwaited) {
  ServerConfig config = timeouts();
  Deadlines d(config);
  EXPECT_EQ(d.due_ms(), Deadlines::kNever);
  EXPECT_EQ(d.expire(kStart), Expired::None);
}

TEST(Deadlines, AFirstByteLateClosesWithoutAnAnswer) {
  ServerConfig config = timeouts();
  Deadlines d(config);
  d.begin_request(kStart, false);
  d.expect(Waiting::FirstByte, kStart);
  EXPECT_EQ(d.due_ms(), kStart + 1000) << "first_data_timeout on a new connection";
  EXPECT_EQ(d.expire(kStart + 999), Expired::None);
  EXPECT_EQ(d.expire(kStart + 1000), Expired::FirstByte);
  EXPECT_EQ(d.due_ms(), Deadlines::kNever) << "reported once";
}

TEST(Deadlines, AReusedConnectionWaitsPersistentTimeoutForItsNextRequest) {
  ServerConfig config = timeouts();
  Deadlines d(config);
  d.begin_request(kStart, true);
  d.expect(Waiting::FirstByte, kStart + 10);
  EXPECT_EQ(d.due_ms(), kStart + 5000) << "counted from the end of the previous response";
  EXPECT_EQ(d.expire(kStart + 5000), Expired::FirstByte);
}

TEST(Deadlines, DribbledHeadBytesNeverExtendTheHeadsTime) {
  ServerConfig config = timeouts();
  Deadlines d(config);
  d.begin_request(kStart, false);
  d.expect(Waiting::FirstByte, kStart);
  d.expect(Waiting::Head, kStart + 500);
  d.expect(Waiting::Head, kStart + 900);
  EXPECT_EQ(d.due_ms(), kStart + 1000) << "from the request's start, not the last byte";
  Expired e = d.expire(kStart + 1000);
  EXPECT_EQ(e, Expired::Head);
  EXPECT_STREQ(Deadlines::reason(e), "request head not received in time");
}

TEST(Deadlines, EachReadOfABodyRestartsItsStallClock) {
  ServerConfig config = timeouts();
  config.min_body_rate = 0;
  Deadlines d(config);
  d.expect(Waiting::Body, kStart);
  EXPECT_EQ(d.due_ms(), kStart + 1000);
  d.expect(Waiting::Body, kStart + 800);
  EXPECT_EQ(d.due_ms(), kStart + 1800);
  EXPECT_EQ(d.expire(kStart + 1799), Expired::None);
  Expired e = d.expire(kStart + 1800);
  EXPECT_EQ(e, Expired::BodyStall);
  EXPECT_STREQ(Deadlines::reason(e), "request body stalled");
}

TEST(Deadlines, TheFirstRateWindowIsFree) {
  ServerConfig config = timeouts();
  Deadlines d(config);
  d.expect(Waiting::Body, kStart);
  // Reads keep the stall clock going, but bring almost nothing.
  for (int64_t t = kStart + 500; t < kStart + 2000; t += 500) {
    d.count_read(1);
    d.expect(Waiting::Body, t);
  }
  EXPECT_EQ(d.due_ms(), kStart + 2000) << "the window's end comes before the stall deadline";
  EXPECT_EQ(d.expire(kStart + 2000), Expired::None) << "the grace window passes whatever came";
  EXPECT_EQ(d.due_ms(), kStart + 2500) << "the stall deadline comes before the next window's end";
}

TEST(Deadlines, ASlowBodyIsCutAtTheEndOfItsSecondWindow) {
  ServerConfig config = timeouts();
  Deadlines d(config);
  int64_t t = kStart;
  d.expect(Waiting::Body, t);
  Expired e = Expired::None;
  // One byte every 500 ms: never stalled, far below 100 bytes a second.
  while (e == Expired::None && t < kStart + 10000) {
    t += 500;
    if (t >= d.due_ms()) e = d.expire(t);
    d.count_read(1);
    d.expect(Waiting::Body, t);
  }
  EXPECT_EQ(e, Expired::BodyRate);
  EXPECT_EQ(t, kStart + 4000) << "within two windows";
  EXPECT_STREQ(Deadlines::reason(e), "request body arrived too slowly");
}

TEST(Deadlines, ABodyKeepingItsRateRunsOn) {
  ServerConfig config = timeouts();
  Deadlines d(config);
  int64_t t = kStart;
  d.expect(Waiting::Body, t);
  // 100 bytes every 500 ms: twice the minimum.
  for (; t < kStart + 10000; t += 500) {
    if (t >= d.due_ms()) {
      ASSERT_EQ(d.expire(t), Expired::None) << "at " << t - kStart << " ms";
    }
    d.count_read(100);
    d.expect(Waiting::Body, t);
  }
}

TEST(Deadlines, ABodyAwaitedAfterContinueStartsItsClockThen) {
  ServerConfig config = timeouts();
  Deadlines d(config);
  d.expect(Waiting::Continue, kStart);
  EXPECT_EQ(d.due_ms(), Deadlines::kNever) << "nothing is due from a client waiting for 100";
  d.expect(Waiting::Body, kStart + 60000);  // the app asked for the body
  EXPECT_EQ(d.due_ms(), kStart + 61000);
  EXPECT_EQ(d.expire(kStart + 61000), Expired::BodyStall);
}

TEST(Deadlines, NothingAndContinueHaveNoReadDeadline) {
  ServerConfig config = timeouts();
  Deadlines d(config);
  d.expect(Waiting::Head, kStart);
  d.expect(Waiting::Nothing, kStart);
  EXPECT_EQ(d.due_ms(), Deadlines::kNever);
  d.expect(Waiting::Continue, kStart);
  EXPECT_EQ(d.due_ms(), Deadlines::kNever);
  EXPECT_EQ(d.expire(kStart + 1'000'000), Expired::None);
}

TEST(Deadlines, ALingeringCloseEndsAfterTwoSeconds) {
  ServerConfig config = timeouts();
  Deadlines d(config);
  d.linger(kStart);
  EXPECT_EQ(d.waiting(), Waiting::Linger);
  EXPECT_EQ(d.due_ms(), kStart + Deadlines::kLingerMs);
  EXPECT_EQ(d.expire(kStart + Deadlines::kLingerMs - 1), Expired::None);
  EXPECT_EQ(d.expire(kStart + Deadlines::kLingerMs), Expired::Linger);
}

TEST(Deadlines, AStalledWriteComesFirst) {
  ServerConfig config = timeouts();
  config.request_timeout = 100ms;
  Deadlines d(config);
  d.begin_request(kStart, false);
  d.expect(Waiting::Head, kStart);
  d.arm_app(kStart);
  d.write_started(kStart);
  EXPECT_EQ(d.due_ms(), kStart + 100) << "the earliest of the three clocks";
  EXPECT_EQ(d.expire(kStart + 1000), Expired::Write) << "write, app and read are all past";
  d.write_ended();
  EXPECT_EQ(d.expire(kStart + 1000), Expired::App);
  EXPECT_EQ(d.expire(kStart + 1000), Expired::Head) << "the app's deadline is reported once";
}

TEST(Deadlines, TheAppDeadlineIsArmedOnlyWithARequestTimeout) {
  ServerConfig config = timeouts();
  Deadlines d(config);
  d.arm_app(kStart);
  EXPECT_EQ(d.due_ms(), Deadlines::kNever) << "request_timeout 0: no limit";

  config.request_timeout = 300ms;
  d.arm_app(kStart);
  EXPECT_EQ(d.due_ms(), kStart + 300);
  d.disarm_app();
  EXPECT_EQ(d.due_ms(), Deadlines::kNever);
}

TEST(Deadlines, AFinishedWriteDisarmsTheWriteClock) {
  ServerConfig config = timeouts();
  Deadlines d(config);
  d.write_started(kStart);
  EXPECT_EQ(d.due_ms(), kStart + 1000) << "first_data_timeout for each slice";
  d.write_ended();
  EXPECT_EQ(d.due_ms(), Deadlines::kNever);
}
