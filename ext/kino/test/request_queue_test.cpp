#include "handoff/request_queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "http1/responder.hpp"
#include "support/numbered_request.hpp"
#include "test_sink.hpp"
#include "util/steady_clock.hpp"

using namespace kino;
using test::make_request;
using test::number_of;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Pops until `n` requests came out or `limit` passes; wake-up tokens after a
// close may show up as nulls in between.
std::vector<uint64_t> drain(RequestQueue& q, size_t n, std::chrono::milliseconds limit = 2000ms) {
  std::vector<uint64_t> out;
  auto deadline = Clock::now() + limit;
  while (out.size() < n && Clock::now() < deadline) {
    if (auto r = q.pop_for(10ms)) out.push_back(number_of(*r));
  }
  return out;
}

// Producers that admit requests 0..n-1 strictly one after another, each
// number by the producer `owner(number)` names: the order of admission is
// then known although the requests come from several threads.
class ProducersInTurn {
 public:
  ProducersInTurn(RequestQueue& q, int producers, uint64_t n, std::function<int(uint64_t)> owner,
                  int64_t until_ms = INT64_MAX)
      : admissions_(n) {
    for (int p = 0; p < producers; ++p)
      threads_.emplace_back([this, &q, p, n, owner, until_ms] {
        for (uint64_t i = 0; i < n; ++i) {
          if (owner(i) != p) continue;
          while (turn_.load(std::memory_order_acquire) != i) std::this_thread::yield();
          RequestRef r = make_request(i);
          admissions_[i] = q.admit(r, until_ms);
          turn_.store(i + 1, std::memory_order_release);
        }
      });
  }
  ~ProducersInTurn() { join(); }
  void join() {
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  uint64_t admitted() const { return turn_.load(std::memory_order_acquire); }
  const std::vector<RequestQueue::Admission>& admissions() const { return admissions_; }

 private:
  std::atomic<uint64_t> turn_{0};
  std::vector<RequestQueue::Admission> admissions_;
  std::vector<std::thread> threads_;
};

std::vector<uint64_t> numbers_up_to(uint64_t n) {
  std::vector<uint64_t> v(n);
  for (uint64_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

}  // namespace

TEST(RequestQueue, PushAndTryPop) {
  RequestQueue q;
  EXPECT_FALSE(q.try_pop());
  RequestRef r = make_request(7);
  RequestCtx* raw = r.get();
  ASSERT_TRUE(q.push(r));
  EXPECT_FALSE(r) << "the queue took the reference over";
  EXPECT_EQ(raw->use_count(), 1u);
  RequestRef out = q.try_pop();
  ASSERT_TRUE(out);
  EXPECT_EQ(out.get(), raw);
  EXPECT_EQ(number_of(*out), 7u);
  EXPECT_EQ(out->use_count(), 1u) << "the consumer adopted the queue's reference";
  EXPECT_FALSE(q.try_pop());
}

TEST(RequestQueue, APopMarksWhenTheRequestWasTaken) {
  RequestQueue q;
  RequestRef r = make_request(1);
  EXPECT_EQ(r->taken_ns(), 0) << "not taken while queued";
  int64_t before = steady_ns();
  ASSERT_TRUE(q.push(r));
  RequestRef out = q.pop_for(10ms);
  ASSERT_TRUE(out);
  EXPECT_GE(out->taken_ns(), before);
  EXPECT_LE(out->taken_ns(), steady_ns());
}

TEST(RequestQueue, FifoFromOneProducer) {
  RequestQueue q;
  for (uint64_t i = 0; i < 10; ++i) {
    RequestRef r = make_request(i);
    ASSERT_TRUE(q.push(r));
  }
  for (uint64_t i = 0; i < 10; ++i) {
    RequestRef r = q.try_pop();
    ASSERT_TRUE(r);
    EXPECT_EQ(number_of(*r), i);
  }
}

TEST(RequestQueue, PopForTimesOutWithNull) {
  RequestQueue q;
  auto t0 = Clock::now();
  RequestRef r = q.pop_for(std::chrono::microseconds(50'000));
  auto waited = Clock::now() - t0;
  EXPECT_FALSE(r);
  EXPECT_GE(waited, 45ms);
  EXPECT_LT(waited, 1000ms);
  EXPECT_FALSE(q.drained()) << "a timeout is not a drained queue";
}

TEST(RequestQueue, PopForReturnsQueuedRequestImmediately) {
  RequestQueue q;
  RequestRef r = make_request(1);
  ASSERT_TRUE(q.push(r));
  auto t0 = Clock::now();
  RequestRef out = q.pop_for(5s);
  EXPECT_TRUE(out);
  EXPECT_LT(Clock::now() - t0, 500ms);
}

TEST(RequestQueue, PopForWakesOnPushFromAnotherThread) {
  RequestQueue q;
  std::atomic<bool> got{false};
  std::thread consumer([&] { got = static_cast<bool>(q.pop_for(5s)); });
  std::this_thread::sleep_for(30ms);
  RequestRef r = make_request(1);
  ASSERT_TRUE(q.push(r));
  consumer.join();
  EXPECT_TRUE(got);
}

// KINO_QUEUE_SPINS=0 (doc/benchmarks.md): a consumer that parks at once
// must still be woken by every push, and time out when none comes.
TEST(RequestQueue, AQueueThatNeverSpinsWakesItsConsumerForEveryRequest) {
  RequestQueue q(0, 0);
  constexpr int kRequests = 2'000;
  std::atomic<int> got{0};
  std::thread consumer([&] {
    while (got.load() < kRequests)
      if (q.pop_for(5s)) got.fetch_add(1);
  });
  for (int i = 0; i < kRequests; ++i) {
    RequestRef r = make_request(i);
    ASSERT_TRUE(q.push(r));
    if (i % 100 == 0) std::this_thread::sleep_for(1ms);  // let it park
  }
  consumer.join();
  EXPECT_EQ(got.load(), kRequests);
  auto t0 = Clock::now();
  EXPECT_FALSE(q.pop_for(std::chrono::microseconds(20'000)));
  EXPECT_GE(Clock::now() - t0, 15ms);
}

TEST(RequestQueue, CloseWakesBlockedConsumerPromptly) {
  RequestQueue q;
  std::atomic<bool> returned{false};
  Clock::time_point woke;
  RequestRef got;
  std::thread consumer([&] {
    got = q.pop_for(10s);
    woke = Clock::now();
    returned = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(returned) << "the consumer should be parked";
  auto closed_at = Clock::now();
  q.close();
  consumer.join();
  EXPECT_FALSE(got);
  EXPECT_LT(woke - closed_at, 200ms);
  EXPECT_TRUE(q.closed());
  EXPECT_TRUE(q.drained());
}

TEST(RequestQueue, CloseWakesManyBlockedConsumers) {
  RequestQueue q;
  constexpr int kConsumers = 8;
  std::atomic<int> returned{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kConsumers; ++i)
    threads.emplace_back([&] {
      while (!q.pop_for(10s) && !q.drained()) {
      }
      returned.fetch_add(1);
    });
  std::this_thread::sleep_for(50ms);
  auto t0 = Clock::now();
  q.close();
  for (auto& t : threads) t.join();
  EXPECT_EQ(returned.load(), kConsumers);
  EXPECT_LT(Clock::now() - t0, 500ms);
  // Later consumers do not block on a closed, drained queue either.
  auto t1 = Clock::now();
  EXPECT_FALSE(q.pop_for(5s));
  EXPECT_FALSE(q.pop_for(5s));
  EXPECT_LT(Clock::now() - t1, 200ms);
}

TEST(RequestQueue, CloseRefusesNewPushes) {
  RequestQueue q;
  q.close();
  RequestRef r = make_request(1);
  RequestCtx* raw = r.get();
  EXPECT_FALSE(q.push(r));
  ASSERT_TRUE(r) << "a refused request stays with the caller";
  EXPECT_EQ(r.get(), raw);
  EXPECT_EQ(r->use_count(), 1u);
  EXPECT_EQ(q.depth(), 0u);
  EXPECT_FALSE(q.try_pop());
  q.close();  // idempotent
  EXPECT_TRUE(q.closed());
}

TEST(RequestQueue, RequestsQueuedBeforeCloseAreDrained) {
  RequestQueue q;
  for (uint64_t i = 1; i <= 3; ++i) {
    RequestRef r = make_request(i);
    ASSERT_TRUE(q.push(r));
  }
  q.close();
  EXPECT_TRUE(q.closed());
  EXPECT_FALSE(q.drained()) << "three requests are still queued";
  EXPECT_EQ(q.depth(), 3u);
  auto got = drain(q, 3);
  EXPECT_EQ(got, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(q.depth(), 0u);
  EXPECT_TRUE(q.drained());
  EXPECT_FALSE(q.pop_for(10ms));
}

TEST(RequestQueue, RequestsFromOtherThreadsQueuedBeforeCloseAreDrained) {
  // Producers on other threads use their own sub-queues: the wake-up tokens
  // may come out first, but no request may be lost.
  RequestQueue q;
  std::vector<std::thread> producers;
  for (uint64_t p = 0; p < 3; ++p)
    producers.emplace_back([&q, p] {
      for (uint64_t i = 0; i < 10; ++i) {
        RequestRef r = make_request(p * 100 + i);
        q.push(r);
      }
    });
  for (auto& t : producers) t.join();
  q.close();
  size_t taken = 0;
  auto deadline = Clock::now() + 2s;
  while (!q.drained() && Clock::now() < deadline)
    if (q.pop_for(10ms)) ++taken;
  EXPECT_EQ(taken, 30u);
  EXPECT_TRUE(q.drained());
}

TEST(RequestQueue, DepthAccounting) {
  RequestQueue q;
  EXPECT_EQ(q.depth(), 0u);
  for (uint64_t i = 0; i < 5; ++i) {
    RequestRef r = make_request(i);
    ASSERT_TRUE(q.push(r));
    EXPECT_EQ(q.depth(), i + 1);
  }
  EXPECT_TRUE(q.try_pop());
  EXPECT_EQ(q.depth(), 4u);
  EXPECT_TRUE(q.pop_for(10ms));
  EXPECT_EQ(q.depth(), 3u);
  EXPECT_FALSE(q.drained());
  q.close();
  EXPECT_EQ(q.depth(), 3u) << "wake-up tokens are not requests";
  drain(q, 3);
  EXPECT_EQ(q.depth(), 0u);
  EXPECT_FALSE(q.try_pop());
  EXPECT_EQ(q.depth(), 0u) << "tokens taken after the close do not go negative";
}

TEST(RequestQueue, DestroyingQueueReleasesQueuedRequests) {
  auto sink = std::make_shared<test::RecordingSink>();
  {
    RequestQueue q;
    RequestRef r = make_request(1);
    r->sink = sink;
    ASSERT_TRUE(q.push(r));
    EXPECT_EQ(sink.use_count(), 2);
  }
  // The queued request was released unanswered: its destructor answers 500.
  EXPECT_EQ(sink.use_count(), 1);
  auto resp = test::parse_response(sink->wire());
  EXPECT_EQ(resp.status, 500);
}

TEST(RequestQueue, MpmcStressEveryItemTakenExactlyOnce) {
  constexpr int kProducers = 4, kConsumers = 4;
  constexpr uint64_t kPerProducer = 50'000;
  constexpr uint64_t kTotal = kProducers * kPerProducer;
  RequestQueue q;
  std::unique_ptr<std::atomic<uint8_t>[]> seen(new std::atomic<uint8_t>[kTotal]);
  for (uint64_t i = 0; i < kTotal; ++i) seen[i].store(0, std::memory_order_relaxed);
  std::atomic<uint64_t> taken{0};
  std::atomic<uint64_t> refused{0};
  std::atomic<uint64_t> bad_refs{0};

  std::vector<std::thread> threads;
  for (int c = 0; c < kConsumers; ++c)
    threads.emplace_back([&] {
      for (;;) {
        RequestRef r = q.pop_for(std::chrono::microseconds(20'000));
        if (!r) {
          if (q.drained()) return;
          continue;
        }
        if (r->use_count() != 1) bad_refs.fetch_add(1);
        seen[number_of(*r)].fetch_add(1, std::memory_order_relaxed);
        taken.fetch_add(1, std::memory_order_relaxed);
      }
    });
  std::vector<std::thread> producers;
  auto t0 = Clock::now();
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      for (uint64_t i = 0; i < kPerProducer; ++i) {
        RequestRef r = make_request(p * kPerProducer + i);
        if (!q.push(r)) refused.fetch_add(1);
      }
    });
  for (auto& t : producers) t.join();
  q.close();
  for (auto& t : threads) t.join();
  auto elapsed = Clock::now() - t0;

  EXPECT_EQ(refused.load(), 0u);
  EXPECT_EQ(taken.load(), kTotal);
  EXPECT_EQ(bad_refs.load(), 0u);
  uint64_t missing = 0, duplicated = 0;
  for (uint64_t i = 0; i < kTotal; ++i) {
    auto n = seen[i].load(std::memory_order_relaxed);
    if (n == 0) ++missing;
    if (n > 1) ++duplicated;
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(duplicated, 0u);
  EXPECT_EQ(q.depth(), 0u);
  EXPECT_TRUE(q.drained());
  EXPECT_LT(elapsed, 20s);
}

TEST(RequestQueue, BeyondCapacityRequestsWaitInArrivalOrder) {
  RequestQueue q(2);
  std::vector<RequestRef> reqs;
  for (uint64_t i = 1; i <= 4; ++i) {
    RequestRef r = make_request(i);
    auto admission = q.admit(r, INT64_MAX);
    EXPECT_EQ(admission, i <= 2 ? RequestQueue::Admission::Queued : RequestQueue::Admission::Waiting) << i;
  }
  EXPECT_EQ(q.depth(), 2u);
  EXPECT_EQ(q.waiting(), 2u);
  // Each pop frees a place for the oldest waiting request.
  EXPECT_EQ(drain(q, 4), (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(q.waiting(), 0u);
}

TEST(RequestQueue, NewRequestsDoNotOvertakeWaitingOnes) {
  RequestQueue q(1);
  RequestRef a = make_request(1), b = make_request(2), c = make_request(3);
  q.admit(a, INT64_MAX);
  EXPECT_EQ(q.admit(b, INT64_MAX), RequestQueue::Admission::Waiting);
  ASSERT_EQ(number_of(*q.try_pop()), 1u);  // b moves into the queue
  EXPECT_EQ(q.admit(c, INT64_MAX), RequestQueue::Admission::Waiting);
  EXPECT_EQ(number_of(*q.try_pop()), 2u);
  EXPECT_EQ(number_of(*q.try_pop()), 3u);
}

TEST(RequestQueue, ExpireWaitingReturnsOnlyOverdueRequests) {
  RequestQueue q(1);
  RequestRef a = make_request(1), b = make_request(2), c = make_request(3);
  q.admit(a, INT64_MAX);
  q.admit(b, 100);
  q.admit(c, 200);
  EXPECT_TRUE(q.expire_waiting(99).empty());
  auto expired = q.expire_waiting(150);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(number_of(*expired[0]), 2u);
  EXPECT_EQ(q.waiting(), 1u);
  EXPECT_FALSE(q.drained());
}

TEST(RequestQueue, ClosedQueueStillAdmitsWaitingRequestsAsPlacesFree) {
  RequestQueue q(1);
  RequestRef a = make_request(1), b = make_request(2), c = make_request(3);
  q.admit(a, INT64_MAX);
  q.admit(b, INT64_MAX);
  q.close();
  EXPECT_EQ(q.admit(c, INT64_MAX), RequestQueue::Admission::Refused);
  EXPECT_FALSE(q.drained());
  EXPECT_EQ(drain(q, 2), (std::vector<uint64_t>{1, 2}));
  EXPECT_TRUE(q.drained());
}

namespace {

// A request whose answers are recorded, like one from a connection.
RequestRef request_with_sink(uint64_t seq, std::shared_ptr<test::RecordingSink> sink) {
  RequestRef r = make_request(seq);
  r->peer = sink;
  r->sink = std::move(sink);
  return r;
}

}  // namespace

TEST(RequestQueue, ARequestAnsweredWhileQueuedIsNeverTaken) {
  RequestQueue q;
  auto sink = std::make_shared<test::RecordingSink>();
  RequestRef timed_out = request_with_sink(1, sink);
  RequestCtx* raw = timed_out.get();
  RequestRef keep(raw);  // what the connection holds for its 504
  ASSERT_TRUE(q.push(timed_out));
  RequestRef next = request_with_sink(2, std::make_shared<test::RecordingSink>());
  ASSERT_TRUE(q.push(next));
  ASSERT_TRUE(respond_plain(*keep, 504, "Gateway Timeout\n", false));  // request_timeout, while queued
  keep.reset();

  RequestRef taken = q.try_pop();
  ASSERT_TRUE(taken);
  EXPECT_EQ(number_of(*taken), 2u) << "the answered request is skipped, not run";
  EXPECT_EQ(q.skipped(), 1u);
  EXPECT_EQ(sink->lasts(), 1u) << "only its 504 went out";
  EXPECT_EQ(q.depth(), 0u);

  // The blocking pop skips the same way.
  RequestRef again = request_with_sink(3, std::make_shared<test::RecordingSink>());
  RequestRef hold(again.get());
  ASSERT_TRUE(q.push(again));
  respond_plain(*hold, 504, "Gateway Timeout\n", false);
  hold.reset();
  EXPECT_FALSE(q.pop_for(50ms));
  EXPECT_EQ(q.skipped(), 2u);
}

TEST(RequestQueue, ARequestWhoseClientLeftIsAnsweredAndNeverTaken) {
  RequestQueue q;
  auto gone = std::make_shared<test::RecordingSink>();
  RequestRef r = request_with_sink(1, gone);
  ASSERT_TRUE(q.push(r));
  gone->open_ = false;  // the client closed while the request waited
  RequestRef live = request_with_sink(2, std::make_shared<test::RecordingSink>());
  ASSERT_TRUE(q.push(live));

  RequestRef taken = q.pop_for(100ms);
  ASSERT_TRUE(taken);
  EXPECT_EQ(number_of(*taken), 2u);
  EXPECT_EQ(q.skipped(), 1u);
  // The connection still gets the end of its request (nobody reads it).
  ASSERT_EQ(gone->lasts(), 1u);
  EXPECT_EQ(test::parse_response(gone->wire()).status, 503);
}

TEST(RequestQueue, AFailedAllocationLeavesTheRequestWithTheCaller) {
  RequestQueue q;
  RequestRef r = make_request(1);
  RequestCtx* raw = r.get();
  RequestQueue::Admission admission{};
  // The first admission allocates the ring, and that fails.
  RequestQueue::fail_allocations_for_testing(1000);
  std::thread producer([&] { admission = q.admit(r, INT64_MAX); });
  producer.join();
  RequestQueue::fail_allocations_for_testing(0);
  EXPECT_EQ(admission, RequestQueue::Admission::NoMemory);
  ASSERT_TRUE(r) << "the caller still holds the request, to answer it";
  EXPECT_EQ(r.get(), raw);
  EXPECT_EQ(raw->use_count(), 1u);
  EXPECT_EQ(q.depth(), 0u);
  EXPECT_FALSE(q.try_pop());
  // Memory back: the same request goes in.
  ASSERT_TRUE(q.push(r));
  EXPECT_EQ(q.try_pop().get(), raw);
}

// Two I/O threads admit unevenly (two requests of every three come from the
// first) while the consumer lags: a queue that takes from the fuller
// producer first leaves the second one's requests behind later ones.
TEST(RequestQueue, RequestsComeOutInAdmissionOrderAcrossProducers) {
  constexpr uint64_t kRequests = 3000;
  RequestQueue q;
  ProducersInTurn producers(q, 2, kRequests, [](uint64_t i) { return i % 3 == 2 ? 1 : 0; });
  producers.join();
  EXPECT_EQ(q.depth(), kRequests);
  EXPECT_EQ(drain(q, kRequests), numbers_up_to(kRequests));
}

TEST(RequestQueue, AdmissionOrderHoldsWhileAConsumerTakes) {
  constexpr uint64_t kRequests = 20'000;
  RequestQueue q;
  std::vector<uint64_t> got;
  got.reserve(kRequests);
  std::thread consumer([&] {
    auto deadline = Clock::now() + 20s;
    while (got.size() < kRequests && Clock::now() < deadline) {
      if (auto r = q.pop_for(10ms)) got.push_back(number_of(*r));
      // Lag now and then, so the queue fills up from both producers.
      if (got.size() % 1000 == 0) std::this_thread::sleep_for(1ms);
    }
  });
  ProducersInTurn producers(q, 2, kRequests, [](uint64_t i) { return i % 3 == 2 ? 1 : 0; });
  producers.join();
  consumer.join();
  EXPECT_EQ(got, numbers_up_to(kRequests));
}

TEST(RequestQueue, BeyondCapacityTheLineKeepsOrderAcrossProducers) {
  constexpr uint64_t kRequests = 200;
  RequestQueue q(4);
  ProducersInTurn producers(q, 3, kRequests, [](uint64_t i) { return static_cast<int>(i % 5 % 3); });
  producers.join();
  for (uint64_t i = 0; i < kRequests; ++i)
    EXPECT_EQ(producers.admissions()[i],
              i < 4 ? RequestQueue::Admission::Queued : RequestQueue::Admission::Waiting)
        << i;
  EXPECT_EQ(q.depth(), 4u);
  EXPECT_EQ(q.waiting(), kRequests - 4);
  EXPECT_EQ(drain(q, kRequests), numbers_up_to(kRequests));
  EXPECT_EQ(q.waiting(), 0u);
}

// Without a capacity nothing is refused or expired: what the ring cannot
// hold waits in line, without a deadline, and still comes out in order.
TEST(RequestQueue, WithoutCapacityOverflowWaitsInOrderAndNeverExpires) {
  constexpr uint64_t kRequests = 6000;  // more than the ring holds
  RequestQueue q;
  ProducersInTurn producers(
      q, 2, kRequests, [](uint64_t i) { return static_cast<int>(i / 7 % 2); },
      /*until_ms=*/1);
  producers.join();
  for (uint64_t i = 0; i < kRequests; ++i)
    ASSERT_EQ(producers.admissions()[i], RequestQueue::Admission::Queued) << i;
  EXPECT_GT(q.waiting(), 0u) << "the ring is smaller than this";
  EXPECT_EQ(q.depth() + q.waiting(), kRequests);
  EXPECT_TRUE(q.expire_waiting(INT64_MAX - 1).empty()) << "no request without a capacity has a deadline";
  EXPECT_EQ(drain(q, kRequests), numbers_up_to(kRequests));
  EXPECT_EQ(q.waiting(), 0u);
  EXPECT_EQ(q.depth(), 0u);
}

TEST(RequestQueue, ExpiringTheLineKeepsTheRestInOrder) {
  RequestQueue q(2);
  std::vector<int64_t> deadlines = {INT64_MAX, INT64_MAX, 100, 300, 200, 400};
  for (uint64_t i = 0; i < deadlines.size(); ++i) {
    RequestRef r = make_request(i);
    q.admit(r, deadlines[i]);
  }
  auto expired = q.expire_waiting(250);
  ASSERT_EQ(expired.size(), 2u);
  EXPECT_EQ(number_of(*expired[0]), 2u);
  EXPECT_EQ(number_of(*expired[1]), 4u);
  EXPECT_EQ(q.waiting(), 2u);
  EXPECT_EQ(drain(q, 4), (std::vector<uint64_t>{0, 1, 3, 5}));
}

TEST(RequestQueue, StressWithCapacityManyProducersAndConsumers) {
  constexpr int kProducers = 4, kConsumers = 3;
  constexpr uint64_t kPerProducer = 20'000;
  constexpr uint64_t kTotal = kProducers * kPerProducer;
  RequestQueue q(16);
  std::unique_ptr<std::atomic<uint8_t>[]> seen(new std::atomic<uint8_t>[kTotal]);
  for (uint64_t i = 0; i < kTotal; ++i) seen[i].store(0, std::memory_order_relaxed);
  // Each consumer sees one producer's requests in the order it made them.
  std::atomic<uint64_t> out_of_order{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kConsumers; ++c)
    threads.emplace_back([&] {
      std::vector<int64_t> last(kProducers, -1);
      for (;;) {
        RequestRef r = q.pop_for(std::chrono::microseconds(20'000));
        if (!r) {
          if (q.drained()) return;
          continue;
        }
        uint64_t n = number_of(*r);
        auto& previous = last[n / kPerProducer];
        if (static_cast<int64_t>(n % kPerProducer) <= previous) out_of_order.fetch_add(1);
        previous = static_cast<int64_t>(n % kPerProducer);
        seen[n].fetch_add(1, std::memory_order_relaxed);
      }
    });
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      for (uint64_t i = 0; i < kPerProducer; ++i) {
        RequestRef r = make_request(p * kPerProducer + i);
        ASSERT_TRUE(q.push(r));
      }
    });
  for (auto& t : producers) t.join();
  q.close();
  for (auto& t : threads) t.join();
  uint64_t missing = 0, duplicated = 0;
  for (uint64_t i = 0; i < kTotal; ++i) {
    auto n = seen[i].load(std::memory_order_relaxed);
    missing += n == 0;
    duplicated += n > 1;
  }
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(duplicated, 0u);
  EXPECT_EQ(out_of_order.load(), 0u);
  EXPECT_TRUE(q.drained());
}

// Consumers are parked, producers still push, and the queue closes under
// them: every admitted request is taken exactly once and every consumer
// returns.
TEST(RequestQueue, CloseWhileConsumersWaitAndProducersPush) {
  constexpr int kProducers = 3, kConsumers = 4;
  constexpr uint64_t kPerProducer = 5'000;
  RequestQueue q;
  std::atomic<uint64_t> admitted{0}, taken{0};
  std::vector<std::thread> consumers;
  for (int c = 0; c < kConsumers; ++c)
    consumers.emplace_back([&] {
      while (!q.drained()) {
        if (q.pop_for(10s)) taken.fetch_add(1);
      }
    });
  std::this_thread::sleep_for(20ms);  // parked
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      for (uint64_t i = 0; i < kPerProducer; ++i) {
        RequestRef r = make_request(p * kPerProducer + i);
        if (q.push(r)) admitted.fetch_add(1);
      }
    });
  std::this_thread::sleep_for(2ms);
  auto closed_at = Clock::now();
  q.close();
  for (auto& t : producers) t.join();
  for (auto& t : consumers) t.join();
  EXPECT_LT(Clock::now() - closed_at, 5s);
  EXPECT_EQ(taken.load(), admitted.load());
  EXPECT_TRUE(q.drained());
}

namespace {
std::vector<uint64_t> numbers_in(const RequestRef* out, size_t n) {
  std::vector<uint64_t> v;
  for (size_t i = 0; i < n; ++i) v.push_back(number_of(*out[i]));
  return v;
}

void push_numbers(RequestQueue& q, uint64_t first, uint64_t count) {
  for (uint64_t i = first; i < first + count; ++i) {
    RequestRef r = make_request(i);
    ASSERT_TRUE(q.push(r));
  }
}
}  // namespace

TEST(RequestQueue, TryPopManyTakesWhatIsQueuedInOrderUpToMax) {
  RequestQueue q;
  RequestRef out[4];
  EXPECT_EQ(q.try_pop_many(out, 4), 0u);
  push_numbers(q, 0, 6);
  ASSERT_EQ(q.try_pop_many(out, 4), 4u);
  EXPECT_EQ(numbers_in(out, 4), (std::vector<uint64_t>{0, 1, 2, 3}));
  EXPECT_EQ(out[0]->use_count(), 1u) << "each one's reference is the caller's";
  EXPECT_GT(out[3]->taken_ns(), 0) << "marked taken, as a pop marks it";
  EXPECT_EQ(q.depth(), 2u);
  RequestRef rest[4];
  ASSERT_EQ(q.try_pop_many(rest, 4), 2u) << "up to max: what is there";
  EXPECT_EQ(numbers_in(rest, 2), (std::vector<uint64_t>{4, 5}));
  EXPECT_EQ(q.depth(), 0u);
}

TEST(RequestQueue, PopManyForWaitsForTheFirstThenTakesTheQueuedOnes) {
  RequestQueue q;
  RequestRef out[8];
  auto t0 = Clock::now();
  EXPECT_EQ(q.pop_many_for(out, 8, 30ms), 0u);
  EXPECT_GE(Clock::now() - t0, 25ms);
  std::thread producer([&] {
    std::this_thread::sleep_for(20ms);
    push_numbers(q, 10, 1);
  });
  ASSERT_EQ(q.pop_many_for(out, 8, 2s), 1u);
  EXPECT_EQ(number_of(*out[0]), 10u);
  producer.join();
  push_numbers(q, 11, 3);
  ASSERT_EQ(q.pop_many_for(out, 8, 2s), 3u);
  EXPECT_EQ(numbers_in(out, 3), (std::vector<uint64_t>{11, 12, 13}));
}

TEST(RequestQueue, PopManySkipsAnsweredAndAbandonedRequestsLikeTryPop) {
  RequestQueue q;
  auto sink = std::make_shared<test::RecordingSink>();
  auto gone = std::make_shared<test::RecordingSink>();
  RequestRef r1 = request_with_sink(1, sink);
  RequestRef keep(r1.get());
  RequestRef r2 = request_with_sink(2, std::make_shared<test::RecordingSink>());
  RequestRef r3 = request_with_sink(3, gone);
  RequestRef r4 = request_with_sink(4, std::make_shared<test::RecordingSink>());
  for (auto* r : {&r1, &r2, &r3, &r4}) ASSERT_TRUE(q.push(*r));
  ASSERT_TRUE(respond_plain(*keep, 504, "Gateway Timeout\n", false));
  keep.reset();
  gone->open_ = false;

  RequestRef out[4];
  ASSERT_EQ(q.try_pop_many(out, 4), 2u);
  EXPECT_EQ(numbers_in(out, 2), (std::vector<uint64_t>{2, 4}));
  EXPECT_EQ(q.skipped(), 2u);
  EXPECT_EQ(sink->lasts(), 1u) << "only its 504";
  ASSERT_EQ(gone->lasts(), 1u);
  EXPECT_EQ(test::parse_response(gone->wire()).status, 503);
  EXPECT_EQ(q.depth(), 0u);
}

TEST(RequestQueue, RequeuedRequestsComeOutFirstInTheirOrder) {
  RequestQueue q;
  push_numbers(q, 0, 5);
  RequestRef out[3];
  ASSERT_EQ(q.try_pop_many(out, 3), 3u);
  EXPECT_EQ(q.depth(), 2u);
  // The worker started 0 and ended: 1 and 2 go back, ahead of 3 and 4.
  ASSERT_TRUE(q.requeue(out + 1, 2));
  EXPECT_FALSE(out[1]) << "the queue took the references over";
  EXPECT_EQ(q.depth(), 4u);
  EXPECT_EQ(drain(q, 4), (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(q.depth(), 0u);
}

TEST(RequestQueue, RequeueWakesAWaitingConsumerAndPassesTheCapacity) {
  RequestQueue q(2);
  push_numbers(q, 0, 2);
  RequestRef out[2];
  ASSERT_EQ(q.try_pop_many(out, 2), 2u);
  std::atomic<uint64_t> got{UINT64_MAX};
  std::thread consumer([&] {
    RequestRef a[1];
    if (q.pop_many_for(a, 1, 2s) == 1) got = number_of(*a[0]);
  });
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(q.requeue(out, 1));
  consumer.join();
  EXPECT_EQ(got.load(), 0u) << "a parked consumer woke for the request given back";
  push_numbers(q, 5, 2);  // the queue is full again
  ASSERT_TRUE(q.requeue(out + 1, 1)) << "given back beyond the capacity: it was admitted already";
  EXPECT_EQ(q.depth(), 3u);
  EXPECT_EQ(drain(q, 3), (std::vector<uint64_t>{1, 5, 6}));
}

TEST(RequestQueue, ClosedQueueStillGivesRequeuedRequestsOutThenDrains) {
  RequestQueue q;
  push_numbers(q, 0, 3);
  RequestRef out[3];
  ASSERT_EQ(q.try_pop_many(out, 3), 3u);
  q.close();
  ASSERT_TRUE(q.requeue(out, 3));
  EXPECT_FALSE(q.drained());
  RequestRef got[8];
  ASSERT_EQ(q.pop_many_for(got, 8, 10ms), 3u) << "the wake-up permits of close() are not requests";
  EXPECT_EQ(numbers_in(got, 3), (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_TRUE(q.drained());
  EXPECT_EQ(q.pop_many_for(got, 8, 10ms), 0u);
  EXPECT_EQ(q.try_pop_many(got, 8), 0u);
}

TEST(RequestQueue, DestroyingAQueueAnswersItsRequeuedRequests) {
  auto sink = std::make_shared<test::RecordingSink>();
  {
    RequestQueue q;
    RequestRef r = request_with_sink(1, sink);
    ASSERT_TRUE(q.push(r));
    RequestRef out[1];
    ASSERT_EQ(q.try_pop_many(out, 1), 1u);
    ASSERT_TRUE(q.requeue(out, 1));
  }
  ASSERT_EQ(sink->lasts(), 1u);
  EXPECT_EQ(test::parse_response(sink->wire()).status, 500);
}

TEST(RequestQueue, BatchConsumersTakeEveryRequestExactlyOnce) {
  RequestQueue q(64);
  constexpr uint64_t kPerProducer = 5000;
  constexpr int kProducers = 3, kConsumers = 3;
  std::vector<std::atomic<int>> seen(kPerProducer * kProducers);
  std::atomic<uint64_t> taken{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kConsumers; ++c)
    threads.emplace_back([&, c] {
      RequestRef out[4];
      uint64_t batches = 0;
      while (taken.load() < seen.size()) {
        size_t n = c == 0 ? q.try_pop_many(out, 4) : q.pop_many_for(out, 4, 5ms);
        // Every other batch gives its tail back, as an ending worker does.
        if (n > 1 && ++batches % 2 == 0) {
          ASSERT_TRUE(q.requeue(out + 1, n - 1));
          n = 1;
        }
        for (size_t i = 0; i < n; ++i) {
          seen[number_of(*out[i])].fetch_add(1);
          out[i].reset();
          taken.fetch_add(1);
        }
      }
    });
  for (int p = 0; p < kProducers; ++p)
    threads.emplace_back([&, p] {
      for (uint64_t i = 0; i < kPerProducer; ++i) {
        RequestRef r = make_request(p * kPerProducer + i);
        ASSERT_TRUE(q.push(r));  // beyond the capacity it waits in line, with no deadline
      }
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i].load(), 1) << "request " << i;
  EXPECT_EQ(q.depth(), 0u);
}
