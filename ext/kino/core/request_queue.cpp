#include "request_queue.hpp"

namespace kino {

namespace {
// Enough wake-up tokens for every consumer that may be parked when the
// queue closes; while nothing else is queued a consumer that takes one puts
// it back for the next.
constexpr int kWakeTokens = 64;
}  // namespace

void RequestQueue::enqueue(RequestCtx* raw) {
  depth_.fetch_add(1, std::memory_order_relaxed);
  queue_.enqueue(raw);  // allocates; throws std::bad_alloc only when memory is gone
}

RequestQueue::Admission RequestQueue::admit(RequestRef& req, int64_t wait_until_ms) {
  if (closed()) return Admission::Refused;
  // Nobody overtakes a request already waiting for a place.
  if (capacity_ == 0 || (depth() < capacity_ && waiting() == 0)) {
    enqueue(req.detach());
    return Admission::Queued;
  }
  {
    std::lock_guard<std::mutex> lock(waiting_mu_);
    waiting_.push_back(Waiting{req.detach(), wait_until_ms});
    waiting_count_.fetch_add(1, std::memory_order_relaxed);
  }
  // A place may have freed up while we decided.
  admit_waiting();
  return Admission::Waiting;
}

void RequestQueue::admit_waiting() {
  if (waiting() == 0) return;
  std::lock_guard<std::mutex> lock(waiting_mu_);
  while (!waiting_.empty() && depth() < capacity_) {
    enqueue(waiting_.front().request);
    waiting_.pop_front();
    waiting_count_.fetch_sub(1, std::memory_order_relaxed);
  }
}

std::vector<RequestRef> RequestQueue::expire_waiting(int64_t now_ms) {
  std::vector<RequestRef> expired;
  if (waiting() == 0) return expired;
  std::lock_guard<std::mutex> lock(waiting_mu_);
  // Deadlines grow with arrival, so the expired ones are at the front.
  while (!waiting_.empty() && waiting_.front().until_ms <= now_ms) {
    expired.emplace_back(waiting_.front().request, false);
    waiting_.pop_front();
    waiting_count_.fetch_sub(1, std::memory_order_relaxed);
  }
  return expired;
}

RequestRef RequestQueue::adopt(RequestCtx* raw) {
  depth_.fetch_sub(1, std::memory_order_relaxed);
  admit_waiting();  // a place just freed up
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
  for (auto& w : waiting_) RequestRef(w.request, false);
  RequestCtx* raw = nullptr;
  while (queue_.try_dequeue(raw))
    if (raw) RequestRef(raw, false);  // answers 500 through the destructor if unclaimed
}

}  // namespace kino
