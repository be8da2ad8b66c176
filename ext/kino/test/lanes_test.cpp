#include "handoff/lanes.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "http1/responder.hpp"
#include "support/numbered_request.hpp"
#include "test_sink.hpp"

using namespace kino;
using test::make_request;
using test::number_of;
using namespace std::chrono_literals;

namespace {

RequestRef request_with_sink(uint64_t number, std::shared_ptr<test::RecordingSink> sink) {
  RequestRef r = make_request(number);
  r->peer = sink;
  r->sink = std::move(sink);
  return r;
}

// Offers request `number`; true when a lane took it.
bool offer(Lanes& lanes, uint64_t number) {
  RequestRef r = make_request(number);
  return lanes.offer(r);
}

}  // namespace

TEST(Lanes, OnlyAnAwakeWorkersLaneTakesARequest) {
  RequestQueue q;
  Lanes lanes(2, q);
  EXPECT_FALSE(offer(lanes, 1)) << "no worker has come for a request yet";
  EXPECT_FALSE(lanes.try_take(0));  // slot 0 is awake from here
  EXPECT_TRUE(lanes.awake(0));
  EXPECT_FALSE(lanes.awake(1));
  ASSERT_TRUE(offer(lanes, 2));
  EXPECT_EQ(lanes.depth(0), 1u);
  EXPECT_EQ(lanes.depth(1), 0u);
  RequestRef taken = lanes.try_take(0);
  ASSERT_TRUE(taken);
  EXPECT_EQ(number_of(*taken), 2u);
  EXPECT_NE(taken->taken_ns(), 0) << "stamped as the queue's pops stamp";
  EXPECT_EQ(lanes.queued(), 0u);
}

TEST(Lanes, ALaneHoldsFourAtMostThenTheSharedQueueTakesOver) {
  RequestQueue q;
  Lanes lanes(1, q);
  lanes.try_take(0);
  for (uint64_t i = 0; i < Lanes::kDepth; ++i) ASSERT_TRUE(offer(lanes, i));
  EXPECT_FALSE(offer(lanes, 99));
  EXPECT_EQ(lanes.depth(0), Lanes::kDepth);
  for (uint64_t i = 0; i < Lanes::kDepth; ++i) {
    RequestRef r = lanes.try_take(0);
    ASSERT_TRUE(r);
    EXPECT_EQ(number_of(*r), i) << "a lane is first in, first out";
  }
}

TEST(Lanes, AnEmptyAwakeLaneIsPreferredToOneWithABacklog) {
  RequestQueue q;
  Lanes lanes(3, q);
  lanes.try_take(0);
  lanes.try_take(1);
  for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(offer(lanes, i));
  EXPECT_EQ(lanes.depth(0), 2u);
  EXPECT_EQ(lanes.depth(1), 2u);
  EXPECT_EQ(lanes.depth(2), 0u) << "its worker never came: not awake";
}

TEST(Lanes, NoLaneWhileTheSharedQueueHoldsRequests) {
  RequestQueue q;
  Lanes lanes(1, q);
  lanes.try_take(0);
  RequestRef queued = make_request(1);
  ASSERT_TRUE(q.push(queued));
  EXPECT_FALSE(offer(lanes, 2)) << "a new request never overtakes a queued one";
  // Its own lane first, then the shared queue.
  RequestRef r = lanes.try_take(0);
  ASSERT_TRUE(r);
  EXPECT_EQ(number_of(*r), 1u);
  EXPECT_TRUE(offer(lanes, 3));
}

TEST(Lanes, AWorkerStealsTheOldestRequestOfASiblingsLane) {
  RequestQueue q;
  Lanes lanes(2, q);
  lanes.try_take(0);  // slot 0 is busy with a slow request from here on
  for (uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(offer(lanes, i));
  RequestRef stolen = lanes.try_take(1);
  ASSERT_TRUE(stolen);
  EXPECT_EQ(number_of(*stolen), 0u);
  EXPECT_EQ(lanes.depth(0), 2u);
}

TEST(Lanes, AParkedWorkerStealsOnItsTick) {
  RequestQueue q;
  Lanes lanes(2, q);
  lanes.try_take(0);
  lanes.try_take(1);
  ASSERT_TRUE(offer(lanes, 7));
  size_t owner = lanes.depth(0) == 1 ? 0 : 1;
  RequestRef r = lanes.take_for(1 - owner, 1ms);
  ASSERT_TRUE(r);
  EXPECT_EQ(number_of(*r), 7u);
  EXPECT_TRUE(lanes.awake(1 - owner)) << "it serves now";
}

TEST(Lanes, AParkedWorkersLaneTakesNothing) {
  RequestQueue q;
  Lanes lanes(1, q);
  lanes.try_take(0);
  EXPECT_FALSE(lanes.take_for(0, 1ms));
  EXPECT_FALSE(lanes.awake(0));
  EXPECT_FALSE(offer(lanes, 1)) << "it would wait for the worker's tick";
}

TEST(Lanes, AWorkerAboutToParkTakesWhatReachedItsLane) {
  RequestQueue q;
  Lanes lanes(1, q);
  EXPECT_FALSE(lanes.try_take(0));
  ASSERT_TRUE(offer(lanes, 5));  // between try_take and the park
  auto started = std::chrono::steady_clock::now();
  RequestRef r = lanes.take_for(0, 1s);
  ASSERT_TRUE(r);
  EXPECT_EQ(number_of(*r), 5u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 500ms) << "not parked first";
}

TEST(Lanes, AnEmptiedSlotGivesItsLaneToTheSharedQueue) {
  RequestQueue q;
  Lanes lanes(2, q);
  lanes.try_take(0);
  for (uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(offer(lanes, i));
  EXPECT_EQ(lanes.evict(0, 1), 3u);
  EXPECT_EQ(lanes.depth(0), 0u);
  EXPECT_FALSE(lanes.awake(0));
  EXPECT_EQ(q.depth(), 3u);
  EXPECT_FALSE(offer(lanes, 9)) << "the shared queue has a backlog, and the dead lane is not awake";
  for (uint64_t i = 0; i < 3; ++i) {
    RequestRef r = lanes.try_take(1);
    ASSERT_TRUE(r);
    EXPECT_EQ(number_of(*r), i);
  }
  // The replacement worker's first take opens the lane again.
  lanes.try_take(0);
  EXPECT_TRUE(offer(lanes, 10));
  EXPECT_EQ(lanes.depth(0) + lanes.depth(1), 1u);
}

TEST(Lanes, AnEmptiedLaneAfterTheQueueClosedIsAnswered503) {
  RequestQueue q;
  Lanes lanes(1, q);
  lanes.try_take(0);
  auto sink = std::make_shared<test::RecordingSink>();
  RequestRef r = request_with_sink(1, sink);
  ASSERT_TRUE(lanes.offer(r));
  lanes.close();
  q.close();
  EXPECT_EQ(lanes.evict(0, 1), 1u);
  ASSERT_EQ(sink->lasts(), 1u);
  EXPECT_EQ(test::parse_response(sink->wire()).status, 503);
  EXPECT_TRUE(lanes.drained());
}

TEST(Lanes, ClosedLanesTakeNothingNewAndAreDrainedOnceEmpty) {
  RequestQueue q;
  Lanes lanes(2, q);
  lanes.try_take(0);
  ASSERT_TRUE(offer(lanes, 1));
  lanes.close();
  q.close();
  EXPECT_FALSE(offer(lanes, 2));
  EXPECT_FALSE(lanes.drained()) << "a lane still holds a request";
  RequestRef r = lanes.try_take(1);  // a sibling drains it
  ASSERT_TRUE(r);
  EXPECT_EQ(number_of(*r), 1u);
  EXPECT_TRUE(lanes.drained());
}

TEST(Lanes, ARequestAnsweredWhileInALaneIsNeverTaken) {
  RequestQueue q;
  Lanes lanes(1, q);
  lanes.try_take(0);
  auto sink = std::make_shared<test::RecordingSink>();
  RequestRef timed_out = request_with_sink(1, sink);
  RequestRef keep(timed_out.get());  // what the connection holds for its 504
  ASSERT_TRUE(lanes.offer(timed_out));
  RequestRef next = request_with_sink(2, std::make_shared<test::RecordingSink>());
  ASSERT_TRUE(lanes.offer(next));
  ASSERT_TRUE(respond_plain(*keep, 504, "Gateway Timeout\n", false));  // request_timeout, in the lane
  keep.reset();
  RequestRef taken = lanes.try_take(0);
  ASSERT_TRUE(taken);
  EXPECT_EQ(number_of(*taken), 2u) << "the answered request is skipped, not run";
  EXPECT_EQ(q.skipped(), 1u);
  EXPECT_EQ(sink->lasts(), 1u) << "only its 504 went out";
}

TEST(Lanes, ReleasingAllAnswersWhatTheLanesHeld) {
  RequestQueue q;
  auto sink = std::make_shared<test::RecordingSink>();
  {
    Lanes lanes(1, q);
    lanes.try_take(0);
    RequestRef r = request_with_sink(1, sink);
    ASSERT_TRUE(lanes.offer(r));
  }  // destroyed with a request in a lane
  ASSERT_EQ(sink->lasts(), 1u);
  EXPECT_EQ(test::parse_response(sink->wire()).status, 500);
}

// Producers offer to the lanes and fall back to the shared queue, as
// Server::dispatch does, while workers take, park, steal and one slot is
// emptied and refilled over and over: every request is taken exactly once.
TEST(Lanes, StressEveryRequestTakenExactlyOnce) {
  constexpr uint64_t kPerProducer = 20000;
  constexpr int kProducers = 2, kWorkers = 4;
  RequestQueue q;
  Lanes lanes(kWorkers, q);
  std::vector<std::atomic<int>> seen(kPerProducer * kProducers);
  std::atomic<uint64_t> taken{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWorkers; ++w)
    threads.emplace_back([&, w] {
      auto slot = static_cast<size_t>(w);
      while (!lanes.drained()) {
        RequestRef r = lanes.try_take(slot);
        if (!r) r = lanes.take_for(slot, 1ms);
        if (!r) continue;
        seen[number_of(*r)].fetch_add(1);
        taken.fetch_add(1);
      }
    });
  std::thread evictor([&] {
    while (!done.load()) {
      lanes.evict(kWorkers - 1, 1);
      std::this_thread::sleep_for(100us);
    }
  });
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      for (uint64_t i = 0; i < kPerProducer; ++i) {
        RequestRef r = make_request(static_cast<uint64_t>(p) * kPerProducer + i);
        if (lanes.offer(r)) continue;
        ASSERT_TRUE(q.push(r));
      }
    });
  for (auto& t : producers) t.join();
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (taken.load() < kPerProducer * kProducers && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  done.store(true);
  evictor.join();
  lanes.close();
  q.close();
  for (auto& t : threads) t.join();
  EXPECT_EQ(taken.load(), kPerProducer * kProducers);
  size_t wrong = 0;
  for (auto& s : seen) wrong += s.load() != 1;
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(lanes.queued(), 0u);
}
