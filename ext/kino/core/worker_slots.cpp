#include "worker_slots.hpp"

namespace kino {

int64_t WorkerSlots::now_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

WorkerSlots::~WorkerSlots() = default;

void WorkerSlots::hold(size_t slot, RequestCtx* req) noexcept {
  if (slot >= slots_.size()) return;
  RequestRef previous;  // released after the lock, outside the critical section
  {
    Slot& s = slots_[slot];
    std::lock_guard<std::mutex> lock(s.mu);
    previous = std::move(s.request);
    s.request = RequestRef(req);
    s.since_ms = now_ms();
  }
}

std::vector<RequestRef> WorkerSlots::take(size_t first, size_t count) {
  std::vector<RequestRef> out;
  for (size_t i = first; i < first + count && i < slots_.size(); ++i) {
    std::lock_guard<std::mutex> lock(slots_[i].mu);
    if (slots_[i].request) out.push_back(std::move(slots_[i].request));
  }
  return out;
}

int64_t WorkerSlots::busy_ms(size_t slot) const noexcept {
  if (slot >= slots_.size()) return -1;
  const Slot& s = slots_[slot];
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.request || s.request->claimed()) return -1;
  return now_ms() - s.since_ms;
}

}  // namespace kino
