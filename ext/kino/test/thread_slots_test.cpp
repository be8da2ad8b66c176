#include "handoff/thread_slots.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "http1/responder.hpp"
#include "support/numbered_request.hpp"
#include "test_sink.hpp"

using namespace kino;
using test::make_request;
using test::number_of;
using namespace std::chrono_literals;

TEST(ThreadSlots, HoldKeepsAReferenceUntilReplaced) {
  ThreadSlots slots(2);
  RequestRef a = make_request(1);
  slots.hold(0, a.get());
  EXPECT_EQ(a->use_count(), 2u);
  RequestRef b = make_request(2);
  slots.hold(0, b.get());
  EXPECT_EQ(a->use_count(), 1u) << "the previous request is released";
  EXPECT_EQ(b->use_count(), 2u);
}

TEST(ThreadSlots, HoldMarksWhichSlotTookTheRequest) {
  ThreadSlots slots(3);
  RequestRef a = make_request(1), b = make_request(2);
  EXPECT_EQ(a->taken_by_slot(), -1);
  slots.hold(2, a.get());
  EXPECT_EQ(a->taken_by_slot(), 2);
  slots.hold(9, b.get());
  EXPECT_EQ(b->taken_by_slot(), -1) << "an untracked slot is not recorded";
}

TEST(ThreadSlots, TakeEmptiesTheRangeAndReturnsWhatItHeld) {
  ThreadSlots slots(4);
  RequestRef a = make_request(1), b = make_request(2), c = make_request(3);
  slots.hold(0, a.get());
  slots.hold(1, b.get());
  slots.hold(3, c.get());
  auto taken = slots.take(0, 2);
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(number_of(*taken[0]), 1u);
  EXPECT_EQ(number_of(*taken[1]), 2u);
  EXPECT_TRUE(slots.take(0, 2).empty()) << "taken once";
  EXPECT_EQ(slots.take(3, 1).size(), 1u);
}

TEST(ThreadSlots, OutOfRangeSlotsAreIgnored) {
  ThreadSlots slots(1);
  RequestRef a = make_request(1);
  slots.hold(5, a.get());
  EXPECT_EQ(a->use_count(), 1u);
  EXPECT_TRUE(slots.take(1, 10).empty());
  EXPECT_EQ(slots.busy_ms(7), -1);
}

TEST(ThreadSlots, BusyMsCountsOnlyUnansweredRequests) {
  ThreadSlots slots(1);
  EXPECT_EQ(slots.busy_ms(0), -1) << "idle";
  RequestRef a = make_request(1);
  slots.hold(0, a.get());
  std::this_thread::sleep_for(30ms);
  EXPECT_GE(slots.busy_ms(0), 25);
  ASSERT_TRUE(a->claim());
  EXPECT_EQ(slots.busy_ms(0), -1) << "answered";
}

TEST(ThreadSlots, BusyMsLeavesOutTheWaitForTheClientsBody) {
  BodyStorage storage;
  ThreadSlots slots(1);
  RequestRef r = make_request(1);
  r->body = BodyRef(new RequestBody(storage, 10));
  slots.hold(0, r.get());
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(slots.busy_ms(0), 0) << "the upload is the client's time";
  r->body->owe_continue(std::make_shared<test::RecordingSink>());
  EXPECT_GE(slots.busy_ms(0), 25) << "the app has not asked for the body: its time";
  r->body->take_continue();
  r->body->append("0123456789");
  r->body->finish();
  EXPECT_LT(slots.busy_ms(0), 25) << "counted from the body's last byte";
  std::this_thread::sleep_for(30ms);
  EXPECT_GE(slots.busy_ms(0), 25);
}

TEST(ThreadSlots, ConcurrentHoldAndTakeReleaseEveryRequestOnce) {
  ThreadSlots slots(1);
  std::atomic<bool> stop{false};
  std::thread taker([&] {
    while (!stop) slots.take(0, 1);
  });
  std::vector<RequestRef> all;
  for (uint64_t i = 0; i < 20000; ++i) {
    all.push_back(make_request(i));
    slots.hold(0, all.back().get());
    (void)slots.busy_ms(0);
  }
  stop = true;
  taker.join();
  slots.take(0, 1);
  // Whichever thread let go of each request, it let go exactly once.
  for (auto& r : all) ASSERT_EQ(r->use_count(), 1u) << number_of(*r);
}

TEST(ThreadSlots, ARowCountsAnsweredRequestsAndTheCurrentOnesAge) {
  ThreadSlots slots(1);
  RequestRef a = make_request(1), b = make_request(2);
  slots.hold(0, a.get());
  std::this_thread::sleep_for(20ms);
  ThreadSlots::Row busy = slots.row(0);
  EXPECT_TRUE(busy.in_flight);
  EXPECT_GE(busy.busy_ms, 15);
  EXPECT_EQ(busy.served, 0u);
  ASSERT_TRUE(a->claim());
  EXPECT_EQ(slots.row(0).served, 1u) << "answered, still held";
  EXPECT_FALSE(slots.row(0).in_flight);
  slots.hold(0, b.get());
  EXPECT_EQ(slots.row(0).served, 1u) << "the answered one is counted once";
  EXPECT_EQ(slots.row(7).served, 0u) << "out of range: an empty row";
}

TEST(ThreadSlots, HeldRequestsComeOutInOrderOnce) {
  ThreadSlots slots(2);
  RequestRef refs[3] = {make_request(1), make_request(2), make_request(3)};
  EXPECT_FALSE(slots.holds_batch(0));
  EXPECT_EQ(slots.hold_batch(0, refs, 3), 3u);
  EXPECT_FALSE(refs[0]) << "the references moved to the slot";
  EXPECT_TRUE(slots.holds_batch(0));
  EXPECT_FALSE(slots.holds_batch(1));
  EXPECT_EQ(number_of(*slots.next_held(0)), 1u);
  EXPECT_EQ(number_of(*slots.next_held(0)), 2u);
  EXPECT_EQ(number_of(*slots.next_held(0)), 3u);
  EXPECT_FALSE(slots.next_held(0));
  EXPECT_FALSE(slots.holds_batch(0));
  EXPECT_FALSE(slots.next_held(7)) << "out of range";
}

TEST(ThreadSlots, TakeHeldEmptiesTheRangeInOrderAndLeavesTheCurrentRequests) {
  ThreadSlots slots(3);
  RequestRef current = make_request(9);
  slots.hold(1, current.get());
  RequestRef first[2] = {make_request(1), make_request(2)};
  RequestRef second[1] = {make_request(3)};
  slots.hold_batch(0, first, 2);
  slots.hold_batch(1, second, 1);
  EXPECT_EQ(number_of(*slots.next_held(0)), 1u);
  auto held = slots.take_held(0, 2);
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(number_of(*held[0]), 2u);
  EXPECT_EQ(number_of(*held[1]), 3u);
  EXPECT_FALSE(slots.holds_batch(0));
  EXPECT_FALSE(slots.holds_batch(1));
  EXPECT_TRUE(slots.take_held(0, 3).empty());
  EXPECT_EQ(current->use_count(), 2u) << "the current request stays with its slot";
}

TEST(ThreadSlots, HoldBatchStopsAtTheSlotsRoom) {
  ThreadSlots slots(1);
  std::vector<RequestRef> refs;
  for (uint64_t i = 0; i < ThreadSlots::kMaxHeld + 2; ++i) refs.push_back(make_request(i));
  EXPECT_EQ(slots.hold_batch(0, refs.data(), refs.size()), ThreadSlots::kMaxHeld);
  EXPECT_TRUE(refs[ThreadSlots::kMaxHeld]) << "what did not fit stays with the caller";
  // Wrapping around the ring keeps the order.
  for (uint64_t i = 0; i < 10; ++i) EXPECT_EQ(number_of(*slots.next_held(0)), i);
  EXPECT_EQ(slots.hold_batch(0, refs.data() + ThreadSlots::kMaxHeld, 2), 2u);
  auto rest = slots.take_held(0, 1);
  ASSERT_EQ(rest.size(), ThreadSlots::kMaxHeld - 10 + 2);
  for (size_t i = 0; i < rest.size(); ++i) EXPECT_EQ(number_of(*rest[i]), i + 10);
}
