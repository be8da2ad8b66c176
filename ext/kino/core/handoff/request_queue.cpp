#include "handoff/request_queue.hpp"

#include <new>

#include "handoff/response_sink.hpp"
#include "http1/responder.hpp"
#include "util/steady_clock.hpp"

namespace kino {

namespace {
// Enough wake-up tokens for every consumer that may be parked when the
// queue closes; while nothing else is queued a consumer that takes one puts
// it back for the next.
constexpr int kWakeTokens = 64;

// A request that sat in the queue at least this long is checked for a
// client that left meanwhile (a syscall); one taken sooner is not, so the
// busy path costs nothing.
constexpr int64_t kProbeAfterNs = 2'000'000;

std::atomic<int> allocations_to_fail{0};
}  // namespace

void RequestQueue::fail_allocations_for_testing(int count) noexcept {
  allocations_to_fail.store(count, std::memory_order_relaxed);
}

void* RequestQueue::Traits::malloc(std::size_t n) {
  if (allocations_to_fail.load(std::memory_order_relaxed) > 0 &&
      allocations_to_fail.fetch_sub(1, std::memory_order_relaxed) > 0)
    return nullptr;
  return NativeQueueTraits::malloc(n);
}

bool RequestQueue::enqueue(RequestCtx* raw) {
  depth_.fetch_add(1, std::memory_order_relaxed);
  // moodycamel allocates blocks (and a producer per thread) as it goes and
  // says false, not bad_alloc, when it cannot.
  if (queue_.enqueue(raw)) return true;
  depth_.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

RequestQueue::Admission RequestQueue::admit(RequestRef& req, int64_t wait_until_ms) {
  if (closed()) return Admission::Refused;
  // Nobody overtakes a request already waiting for a place.
  if (capacity_ == 0 || (depth() < capacity_ && waiting() == 0)) {
    // The reference moves to the queue only once it is in.
    if (!enqueue(req.get())) return Admission::NoMemory;
    req.detach();
    return Admission::Queued;
  }
  try {
    std::lock_guard<std::mutex> lock(waiting_mu_);
    waiting_.push_back(Waiting{req.get(), wait_until_ms});
    req.detach();
    waiting_count_.fetch_add(1, std::memory_order_relaxed);
  } catch (const std::bad_alloc&) {
    return Admission::NoMemory;
  }
  // A place may have freed up while we decided.
  admit_waiting();
  return Admission::Waiting;
}

void RequestQueue::admit_waiting() {
  if (waiting() == 0) return;
  std::lock_guard<std::mutex> lock(waiting_mu_);
  while (!waiting_.empty() && depth() < capacity_) {
    // Out of memory: it stays first in line, for the next free place or
    // its 503 at the deadline.
    if (!enqueue(waiting_.front().request)) return;
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
  raw->mark_taken(steady_ns());
  admit_waiting();  // a place just freed up
  return RequestRef(raw, false);
}

bool RequestQueue::still_wanted(RequestRef& req) {
  bool answered = req->claimed();
  if (!answered) {
    std::shared_ptr<ResponseSink> sink = req->peer.lock();
    bool gone =
        sink && (!sink->open() || (req->taken_ns() - req->queued_ns >= kProbeAfterNs && sink->peer_gone()));
    if (!gone) return true;
    // Nobody reads this; it ends the request for the connection.
    respond_plain(*req, 503, "Service Unavailable: the client closed the connection\n", true);
  }
  skipped_.fetch_add(1, std::memory_order_relaxed);
  req.reset();
  return false;
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
    if (raw) {
      RequestRef req = adopt(raw);
      if (still_wanted(req)) return req;
      continue;
    }
    if (pass_token()) break;
  }
  return RequestRef();
}

RequestRef RequestQueue::pop_for(std::chrono::microseconds timeout) {
  // Once closed, nobody parks: what is left is taken without waiting.
  if (closed()) return try_pop();
  RequestCtx* raw = nullptr;
  if (!queue_.wait_dequeue_timed(raw, timeout)) return RequestRef();
  if (raw) {
    RequestRef req = adopt(raw);
    if (still_wanted(req)) return req;
    return try_pop();
  }
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
