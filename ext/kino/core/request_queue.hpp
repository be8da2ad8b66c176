// The hand-off between I/O threads (producers) and Ruby workers
// (consumers, in any ractor). It carries raw pointers that each own one
// reference to their RequestCtx; a consumer adopts that reference.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>

#include <concurrentqueue/blockingconcurrentqueue.h>

#include "request_ctx.hpp"

namespace kino {

class RequestQueue {
 public:
  // Adds a request unless the queue is closed. On success the queue holds
  // the reference that was in `req`.
  bool push(RequestRef& req);

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
  bool drained() const noexcept { return closed() && depth() == 0; }

  // Requests queued and not yet taken.
  size_t depth() const noexcept {
    auto d = depth_.load(std::memory_order_relaxed);
    return d > 0 ? static_cast<size_t>(d) : 0;
  }

  ~RequestQueue();

 private:
  RequestRef adopt(RequestCtx* raw);
  bool pass_token();

  // Null pointers in the queue are wake-up tokens, never requests.
  moodycamel::BlockingConcurrentQueue<RequestCtx*> queue_;
  std::atomic<bool> closed_{false};
  std::atomic<long> depth_{0};
};

}  // namespace kino
