// The hand-off between I/O threads (producers) and Ruby workers
// (consumers, in any ractor). It carries raw pointers that each own one
// reference to their RequestCtx; a consumer adopts that reference.
#pragma once

#include <concurrentqueue/blockingconcurrentqueue.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "handoff/request_ctx.hpp"
#include "util/memory.hpp"

namespace kino {

class RequestQueue {
 public:
  // `capacity`: most requests queued at once; 0 for no limit. Beyond it a
  // request waits in line (in arrival order) for a place, until a deadline.
  explicit RequestQueue(size_t capacity = 0) : capacity_(capacity) {}

  // NoMemory: the queue could not grow (moodycamel allocates its blocks as
  // it goes); like Refused, `req` is still the caller's to answer.
  enum class Admission { Queued, Waiting, Refused, NoMemory };

  // Adds a request unless the queue is closed: into the queue, or, when the
  // queue is at capacity (or others already wait), into the line of
  // requests waiting for a place until `wait_until_ms` (steady clock). The
  // queue then holds the reference that was in `req`.
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

  // Requests skipped by the pops so far.
  uint64_t skipped() const noexcept { return skipped_.load(std::memory_order_relaxed); }

  // Fault injection for tests: the next `count` block allocations of every
  // RequestQueue fail, as they would with memory gone.
  static void fail_allocations_for_testing(int count) noexcept;

  // Refuses new requests and wakes every waiting consumer. Requests already
  // queued can still be taken, so a drain finishes them.
  void close();
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  bool drained() const noexcept { return closed() && depth() == 0 && waiting() == 0; }

  // Requests queued and not yet taken.
  size_t depth() const noexcept {
    auto d = depth_.load(std::memory_order_relaxed);
    return d > 0 ? static_cast<size_t>(d) : 0;
  }

  ~RequestQueue();

 private:
  RequestRef adopt(RequestCtx* raw);
  bool still_wanted(RequestRef& req);  // false: skipped (see try_pop)
  bool pass_token();
  bool enqueue(RequestCtx* raw);  // false when out of memory
  void admit_waiting();           // moves waiting requests into free places

  // Null pointers in the queue are wake-up tokens, never requests.
  struct Traits : moodycamel::ConcurrentQueueDefaultTraits, NativeQueueTraits {
    using NativeQueueTraits::free;
    static void* malloc(std::size_t n);
  };
  moodycamel::BlockingConcurrentQueue<RequestCtx*, Traits> queue_;
  std::atomic<bool> closed_{false};
  std::atomic<long> depth_{0};
  std::atomic<uint64_t> skipped_{0};

  size_t capacity_;
  struct Waiting {
    RequestCtx* request;
    int64_t until_ms;
  };
  std::mutex waiting_mu_;
  std::deque<Waiting> waiting_;
  std::atomic<size_t> waiting_count_{0};
};

}  // namespace kino
