#include "request_queue.hpp"

namespace kino {

namespace {
// Enough wake-up tokens for every consumer that may be parked when the
// queue closes; while nothing else is queued a consumer that takes one puts
// it back for the next.
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
  depth_.fetch_sub(1, std::memory_order_relaxed);
  return RequestRef(raw, false);
}

bool RequestQueue::pass_token() {
  // Requests another producer queued before the close may sit behind the
  // tokens (each producer has its own sub-queue, and moodycamel prefers the
  // fullest): while any remain the token is dropped so they are reached.
  // Put back every time, the tokens would starve those requests forever.
  if (depth() > 0) return false;
  queue_.enqueue(nullptr);
  return true;
}

RequestRef RequestQueue::try_pop() {
  RequestCtx* raw = nullptr;
  while (queue_.try_dequeue(raw)) {
    if (raw) return adopt(raw);
    if (pass_token()) break;
  }
  return RequestRef();
}

RequestRef RequestQueue::pop_for(std::chrono::microseconds timeout) {
  // Once closed, nobody parks: what is left is taken without waiting.
  if (closed()) return try_pop();
  RequestCtx* raw = nullptr;
  if (!queue_.wait_dequeue_timed(raw, timeout)) return RequestRef();
  if (raw) return adopt(raw);
  // Woken by close().
  if (pass_token()) return RequestRef();
  return try_pop();
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
