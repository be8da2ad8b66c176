#include "handoff/thread_slots.hpp"

#include <algorithm>

#include "util/steady_clock.hpp"

namespace kino {

ThreadSlots::~ThreadSlots() = default;

void ThreadSlots::hold(size_t slot, RequestCtx* req) noexcept {
  if (slot >= slots_.size()) return;
  req->mark_taken_by_slot(static_cast<int32_t>(slot));
  // The pop's clock read serves here too: no second one a request.
  int64_t taken_ns = req->taken_ns();
  int64_t now_ms = taken_ns != 0 ? ns_to_ms(taken_ns) : steady_ms();
  RequestRef previous;  // released after the lock, outside the critical section
  {
    Slot& s = slots_[slot];
    std::lock_guard<std::mutex> lock(s.mu);
    previous = std::move(s.request);
    if (previous && previous->claimed()) ++s.served;
    s.request = RequestRef(req);
    s.since_ms = now_ms;
    if (taken_ns != 0 && req->queued_ns != 0) s.queue_wait.observe(taken_ns - req->queued_ns);
  }
}

std::vector<RequestRef> ThreadSlots::take(size_t first, size_t count) {
  std::vector<RequestRef> out;
  for (size_t i = first; i < first + count && i < slots_.size(); ++i) {
    std::lock_guard<std::mutex> lock(slots_[i].mu);
    if (slots_[i].request) out.push_back(std::move(slots_[i].request));
  }
  return out;
}

size_t ThreadSlots::hold_batch(size_t slot, RequestRef* refs, size_t n) noexcept {
  if (slot >= slots_.size()) return 0;
  Slot& s = slots_[slot];
  std::lock_guard<std::mutex> lock(s.mu);
  size_t count = s.held_count.load(std::memory_order_relaxed);
  size_t added = std::min(n, kMaxHeld - count);
  for (size_t i = 0; i < added; ++i) s.held[(s.held_first + count + i) % kMaxHeld] = std::move(refs[i]);
  s.held_count.store(count + added, std::memory_order_relaxed);
  return added;
}

RequestRef ThreadSlots::next_held(size_t slot) noexcept {
  if (slot >= slots_.size()) return RequestRef();
  Slot& s = slots_[slot];
  std::lock_guard<std::mutex> lock(s.mu);
  size_t count = s.held_count.load(std::memory_order_relaxed);
  if (count == 0) return RequestRef();
  RequestRef r = std::move(s.held[s.held_first]);
  s.held_first = (s.held_first + 1) % kMaxHeld;
  s.held_count.store(count - 1, std::memory_order_relaxed);
  return r;
}

std::vector<RequestRef> ThreadSlots::take_held(size_t first, size_t count) {
  std::vector<RequestRef> out;
  for (size_t i = first; i < first + count && i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    std::lock_guard<std::mutex> lock(s.mu);
    size_t n = s.held_count.load(std::memory_order_relaxed);
    for (size_t k = 0; k < n; ++k) out.push_back(std::move(s.held[(s.held_first + k) % kMaxHeld]));
    s.held_first = 0;
    s.held_count.store(0, std::memory_order_relaxed);
  }
  return out;
}

int64_t ThreadSlots::busy_ms(size_t slot) const noexcept {
  if (slot >= slots_.size()) return -1;
  const Slot& s = slots_[slot];
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.request || s.request->claimed()) return -1;
  // Time spent waiting for the client's body is not the app being stuck:
  // count from the body's last byte, and not at all while the app may be
  // waiting for more of it.
  int64_t since = s.since_ms;
  if (const RequestBody* body = s.request->body.get()) {
    if (!body->complete()) return body->continue_owed() ? steady_ms() - since : 0;
    since = std::max(since, body->completed_ms());
  }
  return steady_ms() - since;
}

ThreadSlots::Row ThreadSlots::row(size_t slot) const noexcept {
  Row out;
  if (slot >= slots_.size()) return out;
  {
    const Slot& s = slots_[slot];
    std::lock_guard<std::mutex> lock(s.mu);
    out.served = s.served + (s.request && s.request->claimed() ? 1 : 0);
  }
  int64_t busy = busy_ms(slot);
  out.in_flight = busy >= 0;
  out.busy_ms = busy > 0 ? busy : 0;
  return out;
}

QueueWaitHistogram::Snapshot ThreadSlots::queue_wait() const noexcept {
  QueueWaitHistogram total;
  for (const Slot& s : slots_) {
    std::lock_guard<std::mutex> lock(s.mu);
    total.add(s.queue_wait);
  }
  return total.snapshot();
}

}  // namespace kino
