// The hand-off between I/O threads (producers) and Ruby workers
// (consumers, in any ractor). It carries raw pointers that each own one
// reference to their RequestCtx; a consumer adopts that reference.
//
// Requests come out in the order they were admitted, whichever I/O thread
// admitted them: a queue that kept order only per producer (one sub-queue
// per I/O thread, consumers taking from the fullest) let a request starve
// behind later ones for more than a second under load.
#pragma once

// The semaphore's header relies on macros and <cassert> from the queue's.
#include <concurrentqueue/concurrentqueue.h>
#include <concurrentqueue/lightweightsemaphore.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <new>
#include <vector>

#include "handoff/request_ctx.hpp"
#include "util/memory.hpp"

namespace kino {

namespace detail {
// Every allocation of a RequestQueue (its ring, its waiting line) goes
// through here, so tests can make them fail.
void* request_queue_malloc(std::size_t n) noexcept;
void request_queue_free(void* p) noexcept;

template <class T>
struct RequestQueueAllocator {
  using value_type = T;
  RequestQueueAllocator() noexcept = default;
  template <class U>
  RequestQueueAllocator(const RequestQueueAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    void* p = request_queue_malloc(n * sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) noexcept { request_queue_free(p); }
  template <class U>
  bool operator==(const RequestQueueAllocator<U>&) const noexcept {
    return true;
  }
};
}  // namespace detail

class RequestQueue {
 public:
  // `capacity`: most requests queued at once; 0 for no limit. Beyond it a
  // request waits in line (in arrival order) for a place, until a deadline.
  // `spins`: how often a consumer finding the queue empty looks again
  // before it parks; negative for kDefaultSpins (moodycamel's own).
  static constexpr int kDefaultSpins = 10'000;
  explicit RequestQueue(size_t capacity = 0, int spins = kDefaultSpins);
  RequestQueue(const RequestQueue&) = delete;
  RequestQueue& operator=(const RequestQueue&) = delete;

  // NoMemory: the queue could not allocate its ring (on first use) or a
  // place in its waiting line; like Refused, `req` is still the caller's to
  // answer.
  enum class Admission { Queued, Waiting, Refused, NoMemory };

  // Adds a request unless the queue is closed: into the queue, or, when the
  // queue is at capacity (or others already wait), into the line of
  // requests waiting for a place until `wait_until_ms` (steady clock). The
  // queue then holds the reference that was in `req`. Without a capacity
  // the line only takes what the ring cannot hold, with no deadline, and
  // the answer is still Queued.
  Admission admit(RequestRef& req, int64_t wait_until_ms);

  // admit() with no deadline; false when refused (`req` is still the caller's).
  bool push(RequestRef& req) {
    auto admission = admit(req, INT64_MAX);
    return admission == Admission::Queued || admission == Admission::Waiting;
  }

  // Removes and returns the waiting requests whose deadline has passed, for
  // the server to answer 503.
  std::vector<RequestRef> expire_waiting(int64_t now_ms);
  size_t waiting() const noexcept { return waiting_count_.load(std::memory_order_relaxed); }

  // Non-blocking: a request, or null when none is queued right now.
  //
  // Both pops skip requests nobody should run any more: one already
  // answered while it waited (its 504 from request_timeout, a stop) is
  // let go, and one whose client has gone is answered 503 for the
  // connection's sake (nobody reads it). An app never runs a request
  // whose client was told it failed, so a retried POST cannot run twice.
  RequestRef try_pop();

  // Waits up to `timeout` for a request. Null on timeout, or when the queue
  // is closed and empty (check `drained()` to tell them apart). Once the
  // queue is closed it never waits. Null may also come early, after a
  // skipped request: callers loop.
  RequestRef pop_for(std::chrono::microseconds timeout);

  // A request admitted elsewhere (a Lane) and taken from there: stamped
  // taken now, and let go under the same rules as try_pop's, null then.
  RequestRef take_over(RequestCtx* raw);

  // `batch N`: up to `max` requests in one visit, into `out` in queue
  // order, with the skips of try_pop applied to each. try_pop_many never
  // waits; pop_many_for waits up to `timeout` for the first one and then
  // takes what else is queued already, one permit count for all. They
  // return how many came out: 0 as try_pop and pop_for return null.
  size_t try_pop_many(RequestRef* out, size_t max);
  size_t pop_many_for(RequestRef* out, size_t max, std::chrono::microseconds timeout);

  // Gives back requests a consumer took and never started (a batch whose
  // worker ended), in front of everything queued and in the order given,
  // so another consumer takes them next. Taken even when the queue is
  // closed or full: they were admitted already. False when memory for the
  // place ran out; `reqs` then still holds those not given back.
  bool requeue(RequestRef* reqs, size_t count);

  // Requests skipped by the pops so far.
  uint64_t skipped() const noexcept { return skipped_.load(std::memory_order_relaxed); }

  // Fault injection for tests: the next `count` allocations of every
  // RequestQueue fail, as they would with memory gone.
  static void fail_allocations_for_testing(int count) noexcept;

  // Refuses new requests and wakes every waiting consumer. Requests already
  // queued can still be taken, so a drain finishes them.
  void close();
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  bool drained() const noexcept {
    // An admission that found the queue open may still be on its way in:
    // until it is, the queue is not drained (see admit).
    return closed_.load(std::memory_order_seq_cst) && admitting_.load(std::memory_order_seq_cst) == 0 &&
           depth() == 0 && waiting() == 0;
  }

  // Requests queued and not yet taken.
  size_t depth() const noexcept {
    auto d = depth_.load(std::memory_order_relaxed);
    return d > 0 ? static_cast<size_t>(d) : 0;
  }

  ~RequestQueue();

 private:
  // Dmitry Vyukov's bounded MPMC queue: a slot is free for the producer
  // of position p when its sequence is p, and holds that request for its
  // consumer when it is p + 1. Positions are handed out by one counter
  // each for producers and consumers, which is what makes the order global.
  struct Slot {
    std::atomic<size_t> sequence;
    RequestCtx* request;
  };

  RequestRef adopt(RequestCtx* raw);
  bool still_wanted(RequestRef& req);  // false: skipped (see try_pop)
  Slot* ring() noexcept { return ring_.load(std::memory_order_acquire); }
  bool ensure_ring() noexcept;      // false when out of memory
  bool ring_push(RequestCtx* raw);  // false when the ring is full
  RequestCtx* ring_pop() noexcept;  // null when the head is not ready
  RequestCtx* take() noexcept;      // after a permit; null: a wake-up
  bool enqueue(RequestCtx* raw);    // ring_push + depth + permit
  // Places in the ring a request may take directly.
  size_t limit() const noexcept { return capacity_ > 0 && capacity_ < slots_ ? capacity_ : slots_; }
  void admit_waiting();  // moves waiting requests into free places
  // The first request requeue() gave back; null when there is none.
  RequestCtx* take_requeued() noexcept;
  // Turns `permits` permits into requests (see try_pop_many).
  size_t take_many(RequestRef* out, size_t permits);

  size_t capacity_;
  size_t slots_;  // a power of two
  // Allocated by the first admission, so a queue nobody uses costs nothing
  // and running out of memory is a 503 for that request, not a throw here.
  std::atomic<Slot*> ring_{nullptr};
  alignas(64) std::atomic<size_t> enqueue_pos_{0};
  alignas(64) std::atomic<size_t> dequeue_pos_{0};
  // One permit per request in the ring, plus the wake-up permits of
  // close(); consumers block on it, not on the ring.
  alignas(64) moodycamel::LightweightSemaphore permits_;
  std::atomic<long> depth_{0};
  std::atomic<bool> closed_{false};
  std::atomic<int> admitting_{0};  // admissions between their closed() check and their place
  std::atomic<uint64_t> skipped_{0};

  // What requeue() gave back, taken before the ring. Its count is what
  // take() reads: written only by a requeue, so a pop without one reads a
  // line no producer writes.
  alignas(64) std::atomic<size_t> requeued_count_{0};
  std::mutex requeued_mu_;
  std::deque<RequestCtx*, detail::RequestQueueAllocator<RequestCtx*>> requeued_;

  struct Waiting {
    RequestCtx* request;
    int64_t until_ms;
  };
  std::mutex waiting_mu_;
  std::deque<Waiting, detail::RequestQueueAllocator<Waiting>> waiting_;
  std::atomic<size_t> waiting_count_{0};
};

}  // namespace kino
