#include "handoff/request_body.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "test_sink.hpp"

namespace kino {
namespace {

using namespace std::chrono_literals;
using Status = RequestBody::ReadStatus;

std::chrono::steady_clock::time_point now() { return std::chrono::steady_clock::now(); }

// Reads until the body ends, fails or stops arriving for `wait`.
std::string drain(RequestBody& body, Status* last = nullptr, std::chrono::milliseconds wait = 0ms) {
  std::string out;
  char buf[1000];
  for (;;) {
    auto r = body.read(buf, sizeof buf, now() + wait);
    if (last) *last = r.status;
    if (r.status != Status::Data) return out;
    out.append(buf, r.bytes);
  }
}

// The targets of this process's open descriptors: a spool file shows up
// as "/tmp/#123 (deleted)" or "/tmp/kino-body-XXXXXX (deleted)".
int open_deleted_files() {
  int count = 0;
  for (int fd = 0; fd < 1024; ++fd) {
    char link[64], target[512];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = ::readlink(link, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (std::string(target).find("(deleted)") != std::string::npos) ++count;
  }
  return count;
}

TEST(RequestBody, SmallBodyStaysInMemory) {
  BodyStorage storage{16, "/tmp"};
  RequestBody body(storage, 10);
  ASSERT_TRUE(body.append("0123456789"));
  body.finish();
  EXPECT_FALSE(body.spooled());
  EXPECT_EQ(body.in_memory(), "0123456789");
  Status last;
  EXPECT_EQ(drain(body, &last), "0123456789");
  EXPECT_EQ(last, Status::End);
}

TEST(RequestBody, PastTheLimitEveryByteMovesToAnUnlinkedFile) {
  BodyStorage storage{16, "/tmp"};
  int before = open_deleted_files();
  {
    RequestBody body(storage, 0);
    ASSERT_TRUE(body.append("0123456789"));
    EXPECT_FALSE(body.spooled());
    ASSERT_TRUE(body.append("abcdefghij"));
    EXPECT_TRUE(body.spooled());
    EXPECT_EQ(open_deleted_files(), before + 1) << "the spool file has no name";
    ASSERT_TRUE(body.append("KLMNO"));
    body.finish();
    EXPECT_EQ(body.in_memory(), "") << "a spooled body is never handed over whole";
    EXPECT_EQ(body.received(), 25u);
    EXPECT_EQ(drain(body), "0123456789abcdefghijKLMNO");
  }
  EXPECT_EQ(open_deleted_files(), before) << "the file goes with the body";
}

TEST(RequestBody, AnnouncedLongBodyGoesToTheFileFromItsFirstByte) {
  BodyStorage storage{16, "/tmp"};
  RequestBody body(storage, 17);
  ASSERT_TRUE(body.append("a"));
  EXPECT_TRUE(body.spooled()) << "no memory stage for a body known to be too long";
  ASSERT_TRUE(body.append("bcdefghijklmnopq"));
  body.finish();
  EXPECT_EQ(drain(body), "abcdefghijklmnopq");
}

TEST(RequestBody, ReadsWhatArrivedAndWaitsForTheRest) {
  BodyStorage storage{1024, "/tmp"};
  RequestBody body(storage, 0);
  ASSERT_TRUE(body.append("abc"));
  char buf[2];
  auto r = body.read(buf, sizeof buf, now());
  ASSERT_EQ(r.status, Status::Data);
  EXPECT_EQ(std::string(buf, r.bytes), "ab");
  r = body.read(buf, sizeof buf, now());
  ASSERT_EQ(r.status, Status::Data);
  EXPECT_EQ(std::string(buf, r.bytes), "c");
  EXPECT_EQ(body.read(buf, sizeof buf, now() + 20ms).status, Status::Waiting);
  std::thread producer([&] {
    std::this_thread::sleep_for(50ms);
    body.append("d");
    body.finish();
  });
  Status last;
  EXPECT_EQ(drain(body, &last, 5000ms), "d") << "a blocked reader wakes for new bytes";
  EXPECT_EQ(last, Status::End);
  producer.join();
}

TEST(RequestBody, FailureReachesTheReaderAfterTheBytesThatCame) {
  BodyStorage storage{1024, "/tmp"};
  RequestBody body(storage, 100);
  ASSERT_TRUE(body.append("part"));
  std::thread producer([&] {
    std::this_thread::sleep_for(50ms);
    body.fail(408, "request body stalled");
  });
  Status last;
  EXPECT_EQ(drain(body, &last, 5000ms), "part");
  EXPECT_EQ(last, Status::Failed);
  EXPECT_EQ(body.failure_status(), 408);
  EXPECT_STREQ(body.failure_reason(), "request body stalled");
  producer.join();
  EXPECT_FALSE(body.append("more")) << "a failed body takes no more bytes";
}

TEST(RequestBody, CompleteBodyCannotFailAfterwards) {
  BodyStorage storage{1024, "/tmp"};
  RequestBody body(storage, 2);
  ASSERT_TRUE(body.append("ok"));
  body.finish();
  body.fail(400, "too late");
  EXPECT_FALSE(body.failed());
  Status last;
  EXPECT_EQ(drain(body, &last), "ok");
  EXPECT_EQ(last, Status::End);
}

TEST(RequestBody, RewindStartsOverAcrossTheSpoolBoundary) {
  BodyStorage storage{4, "/tmp"};
  RequestBody body(storage, 0);
  ASSERT_TRUE(body.append("abc"));
  EXPECT_EQ(drain(body), "abc");
  ASSERT_TRUE(body.append("defgh"));
  body.finish();
  EXPECT_EQ(drain(body), "defgh");
  body.rewind();
  EXPECT_EQ(drain(body), "abcdefgh");
}

TEST(RequestBody, DiscardLetsGoOfTheBytesAndEndsReads) {
  BodyStorage storage{4, "/tmp"};
  int before = open_deleted_files();
  RequestBody body(storage, 0);
  ASSERT_TRUE(body.append("abcdefgh"));
  EXPECT_EQ(open_deleted_files(), before + 1);
  body.discard();
  EXPECT_EQ(open_deleted_files(), before);
  Status last;
  EXPECT_EQ(drain(body, &last, 1000ms), "");
  EXPECT_EQ(last, Status::End);
}

TEST(RequestBody, UnwritableSpoolDirectoryFailsWithItsName) {
  BodyStorage storage{4, "/nonexistent-kino-dir"};
  RequestBody body(storage, 0);
  ASSERT_TRUE(body.append("abc"));
  EXPECT_FALSE(body.append("defgh"));
  EXPECT_TRUE(body.failed());
  EXPECT_EQ(body.failure_status(), 500);
  EXPECT_NE(std::string(body.failure_reason()).find("/nonexistent-kino-dir"), std::string::npos)
      << body.failure_reason();
  Status last;
  EXPECT_EQ(drain(body, &last), "abc");
  EXPECT_EQ(last, Status::Failed);
}

TEST(RequestBody, ContinueIsOwedToOneReaderOnce) {
  BodyStorage storage{1024, "/tmp"};
  RequestBody body(storage, 5);
  EXPECT_FALSE(body.take_continue());
  auto sink = std::make_shared<test::RecordingSink>();
  body.owe_continue(sink);
  EXPECT_TRUE(body.continue_owed());
  EXPECT_EQ(body.take_continue(), sink);
  EXPECT_FALSE(body.continue_owed());
  EXPECT_FALSE(body.take_continue()) << "once";
}

TEST(RequestBody, ContinueOwedToAConnectionThatIsGoneIsNobodysDuty) {
  BodyStorage storage{1024, "/tmp"};
  RequestBody body(storage, 5);
  {
    auto sink = std::make_shared<test::RecordingSink>();
    body.owe_continue(sink);
  }
  EXPECT_FALSE(body.take_continue());
}

TEST(RequestBody, DiscardWaitsForAReadOfTheFileInProgress) {
  // Another app thread reading while the worker discards: the file must
  // not close under the read. Many rounds give the race a chance.
  BodyStorage storage{4, "/tmp"};
  for (int round = 0; round < 200; ++round) {
    RequestBody body(storage, 0);
    ASSERT_TRUE(body.append(std::string(64 * 1024, 'r')));
    body.finish();
    std::thread reader([&] {
      char buf[4096];
      for (;;) {
        auto r = body.read(buf, sizeof buf, now());
        if (r.status != Status::Data) break;
        for (size_t i = 0; i < r.bytes; ++i) ASSERT_EQ(buf[i], 'r');
      }
    });
    body.discard();
    reader.join();
  }
}

// A producer and a reader racing over a body ten times the memory limit:
// every byte arrives once, in order.
TEST(RequestBody, ConcurrentProducerAndReaderAgree) {
  BodyStorage storage{64 * 1024, "/tmp"};
  RequestBody body(storage, 0);
  constexpr size_t kTotal = 640 * 1024;
  std::thread producer([&] {
    std::string piece;
    for (size_t sent = 0; sent < kTotal;) {
      size_t n = std::min<size_t>(1 + (sent * 7) % 5000, kTotal - sent);
      piece.clear();
      for (size_t i = 0; i < n; ++i) piece.push_back(static_cast<char>('a' + (sent + i) % 23));
      ASSERT_TRUE(body.append(piece));
      sent += n;
    }
    body.finish();
  });
  Status last;
  std::string got = drain(body, &last, 10000ms);
  producer.join();
  EXPECT_EQ(last, Status::End);
  ASSERT_EQ(got.size(), kTotal);
  for (size_t i = 0; i < kTotal; ++i) ASSERT_EQ(got[i], static_cast<char>('a' + i % 23)) << "at byte " << i;
}

}  // namespace
}  // namespace kino

namespace kino {
namespace {

TEST(SpoolBudget, AnnouncedBodyIsCheckedAtItsHeadAndClaimsAsBytesArrive) {
  BodyStorage storage{16, "/tmp", std::make_shared<SpoolBudget>()};
  storage.budget->max_bytes = 100;
  {
    RequestBody idle(storage, 60);
    ASSERT_TRUE(idle.reserve_spool());
    EXPECT_EQ(storage.budget->bytes.load(), 0u) << "a head alone holds no room";
    EXPECT_EQ(storage.budget->files.load(), 1) << "the file's descriptor is claimed";
    RequestBody first(storage, 60);
    ASSERT_TRUE(first.reserve_spool()) << "nothing is spooled yet, so 60 fits";
    ASSERT_TRUE(first.append(std::string(50, 'x')));
    EXPECT_EQ(storage.budget->bytes.load(), 50u) << "claimed as the bytes came";
    RequestBody second(storage, 60);
    EXPECT_FALSE(second.reserve_spool()) << "50 spooled + 60 passes the limit";
    EXPECT_EQ(second.failure_status(), 503);
    EXPECT_EQ(storage.budget->bytes.load(), 50u) << "a refusal claims nothing";
    EXPECT_EQ(storage.budget->files.load(), 2);
    RequestBody small(storage, 10);
    EXPECT_TRUE(small.reserve_spool()) << "a body that stays in memory needs no room";
    ASSERT_TRUE(first.append(std::string(10, 'x')));
    first.finish();
    EXPECT_EQ(storage.budget->bytes.load(), 60u);
    first.discard();
    EXPECT_EQ(storage.budget->bytes.load(), 0u);
    EXPECT_EQ(storage.budget->files.load(), 1) << "only the idle head's file is left";
    RequestBody third(storage, 60);
    EXPECT_TRUE(third.reserve_spool()) << "the room came back";
  }
  EXPECT_EQ(storage.budget->bytes.load(), 0u) << "destruction gives back what discard did not";
  EXPECT_EQ(storage.budget->files.load(), 0);
}

TEST(SpoolBudget, ChunkedBodyClaimsAsItGrowsAndFailsWith503PastTheLimit) {
  BodyStorage storage{16, "/tmp", std::make_shared<SpoolBudget>()};
  storage.budget->max_bytes = 40;
  RequestBody body(storage, 0);
  ASSERT_TRUE(body.append(std::string(10, 'a')));
  EXPECT_EQ(storage.budget->bytes.load(), 0u) << "in memory: nothing claimed";
  ASSERT_TRUE(body.append(std::string(20, 'b')));
  EXPECT_EQ(storage.budget->bytes.load(), 30u);
  EXPECT_FALSE(body.append(std::string(20, 'c')));
  EXPECT_EQ(body.failure_status(), 503);
  EXPECT_NE(std::string(body.failure_reason()).find("spool"), std::string::npos);
  Status last;
  EXPECT_EQ(drain(body, &last).size(), 30u) << "what came is still readable";
  EXPECT_EQ(last, Status::Failed);
}

TEST(SpoolBudget, SpoolFilesShareTheDescriptorBudgetWithConnections) {
  std::atomic<int64_t> connections{2};
  BodyStorage storage{16, "/tmp", std::make_shared<SpoolBudget>()};
  storage.budget->max_descriptors = 3;
  storage.budget->connections = &connections;
  RequestBody first(storage, 100);
  ASSERT_TRUE(first.reserve_spool()) << "2 connections + 1 file fit in 3";
  RequestBody second(storage, 100);
  EXPECT_FALSE(second.reserve_spool());
  EXPECT_EQ(second.failure_status(), 503);
  first.discard();
  RequestBody third(storage, 0);
  EXPECT_TRUE(third.append(std::string(20, 'x'))) << "the descriptor came back";
  EXPECT_TRUE(third.spooled());
  connections = 3;
  RequestBody fourth(storage, 0);
  EXPECT_FALSE(fourth.append(std::string(20, 'x'))) << "3 connections + 1 file pass 3";
  EXPECT_EQ(fourth.failure_status(), 503);
}

}  // namespace
}  // namespace kino
