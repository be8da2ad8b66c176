#include "request_queue.hpp"

namespace kino {

namespace {
// Enough wake-up tokens for every consumer that may be parked; a consumer
// that finds the queue closed puts its token back for the next one.
constexpr int kWakeTokens = 64;
}  // namespace

bool RequestQueue::push(RequestRef& req) {
  if (closed()) return false;
  depth_.fetch_add(1, std::memory_order_relaxed);
  RequestCtx* raw = req.detach();
  if (!queue_.enqueue(raw)) {
    depth_.fetch_sub(1, std::memory_order_relaxed);
    req = RequestRef(raw, false);
    return false;
  }
  return true;
}

RequestRef RequestQueue::adopt(RequestCtx* raw) {
  if (raw == nullptr) {
    // A wake-up token: pass it on so every parked consumer sees the close.
    if (closed()) queue_.enqueue(nullptr);
    return RequestRef();
  }
  depth_.fetch_sub(1, std::memory_order_relaxed);
  return RequestRef(raw, false);
}

RequestRef RequestQueue::try_pop() {
  RequestCtx* raw = nullptr;
  if (!queue_.try_dequeue(raw)) return RequestRef();
  return adopt(raw);
}

RequestRef RequestQueue::pop_for(std::chrono::microseconds timeout) {
  RequestCtx* raw = nullptr;
  if (!queue_.wait_dequeue_timed(raw, timeout)) return RequestRef();
  return adopt(raw);
}

void RequestQueue::close() {
  if (closed_.exchange(true, std::memory_order_acq_rel)) return;
  for (int i = 0; i < kWakeTokens; ++i) queue_.enqueue(nullptr);
}

RequestQueue::~RequestQueue() {
  RequestCtx* raw = nullptr;
  while (queue_.try_dequeue(raw))
    if (raw) RequestRef(raw, false);  // answers 500 through the destructor if unclaimed
}

}  // namespace kino
