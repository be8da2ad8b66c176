// The hand-off between I/O threads (producers) and Ruby workers
// (consumers, in any ractor). It carries raw pointers that each own one
// reference to their RequestCtx; a consumer adopts that reference.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include <concurrentqueue/blockingconcurrentqueue.h>

#include "memory.hpp"
#include "request_ctx.hpp"

namespace kino {

class RequestQueue {
 public:
  // `capacity`: most requests queued at once; 0 for no limit. Beyond it a
  // request waits in line (in arrival order) for a place, until a deadline.
  explicit RequestQueue(size_t capacity = 0) : capacity_(capacity) {}

  enum class Admission { Queued, Waiting, Refused };

  // Adds a request unless the queue is closed: into the queue, or, when the
  // queue is at capacity (or others already wait), into the line of
  // requests waiting for a place until `wait_until_ms` (steady clock). The
  // queue then holds the reference that was in `req`.
  Admission admit(RequestRef& req, int64_t wait_until_ms);

  // admit() with no deadline; false when refused.
  bool push(RequestRef& req) { return admit(req, INT64_MAX) != Admission::Refused; }

  // Removes and returns the waiting requests whose deadline has passed, for
  // the server to answer 503.
  std::vector<RequestRef> expire_waiting(int64_t now_ms);
  size_t waiting() const noexcept { return waiting_count_.load(std::memory_order_relaxed); }

  // Non-blocking: a request, or null when none is queued right now.
  RequestRef try_pop();

  // Waits up to `timeout` for a request. Null on timeout, or when the queue
  // is closed and empty (check `drained()` to tell them apart). Once the
  // queue is closed it never waits.
  RequestRef pop_for(std::chrono::microseconds timeout);

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
  bool pass_token();
  void enqueue(RequestCtx* raw);
  void admit_waiting();  // moves waiting requests into free places

  // Null pointers in the queue are wake-up tokens, never requests.
  struct Traits : moodycamel::ConcurrentQueueDefaultTraits, NativeQueueTraits {
    using NativeQueueTraits::free;
    using NativeQueueTraits::malloc;
  };
  moodycamel::BlockingConcurrentQueue<RequestCtx*, Traits> queue_;
  std::atomic<bool> closed_{false};
  std::atomic<long> depth_{0};

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
