#include "handoff/lanes.hpp"

#include <algorithm>
#include <vector>

#include "http1/responder.hpp"

namespace kino {

Lanes::Lanes(size_t count, RequestQueue& shared)
    : count_(count), lanes_(std::make_unique<Lane[]>(count)), shared_(shared) {}

Lanes::~Lanes() { release_all(); }

bool Lanes::offer(RequestRef& req) noexcept {
  if (count_ == 0 || shared_.depth() != 0 || shared_.waiting() != 0) return false;
  queued_.fetch_add(1, std::memory_order_seq_cst);
  if (closed_.load(std::memory_order_seq_cst)) {
    queued_.fetch_sub(1, std::memory_order_seq_cst);
    return false;
  }
  size_t start = cursor_.fetch_add(1, std::memory_order_relaxed);
  // An awake lane with nothing in it first: its owner takes the request as
  // soon as it is back. Then the awake lane with the fewest.
  size_t fewest = count_;
  uint32_t fewest_count = kDepth;
  for (size_t i = 0; i < count_; ++i) {
    size_t at = (start + i) % count_;
    Lane& lane = lanes_[at];
    if (!lane.awake.load(std::memory_order_relaxed)) continue;
    uint32_t n = lane.count.load(std::memory_order_relaxed);
    if (n == 0 && place(lane, req)) return true;
    if (n < fewest_count) {
      fewest = at;
      fewest_count = n;
    }
  }
  if (fewest < count_ && place(lanes_[fewest], req)) return true;
  queued_.fetch_sub(1, std::memory_order_seq_cst);
  return false;
}

bool Lanes::place(Lane& lane, RequestRef& req) noexcept {
  std::lock_guard<std::mutex> lock(lane.mu);
  uint32_t n = lane.count.load(std::memory_order_relaxed);
  if (!lane.awake.load(std::memory_order_relaxed) || n >= kDepth) return false;
  lane.ring[(lane.head + n) % kDepth] = req.detach();
  lane.count.store(n + 1, std::memory_order_release);
  dispatched_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

RequestCtx* Lanes::pop_locked(Lane& lane) noexcept {
  RequestCtx* raw = lane.ring[lane.head];
  lane.ring[lane.head] = nullptr;
  lane.head = (lane.head + 1) % kDepth;
  lane.count.store(lane.count.load(std::memory_order_relaxed) - 1, std::memory_order_release);
  queued_.fetch_sub(1, std::memory_order_seq_cst);
  return raw;
}

RequestCtx* Lanes::pop_own(size_t slot) noexcept {
  Lane& lane = lanes_[slot];
  if (lane.count.load(std::memory_order_acquire) == 0) return nullptr;
  std::lock_guard<std::mutex> lock(lane.mu);
  return lane.count.load(std::memory_order_relaxed) > 0 ? pop_locked(lane) : nullptr;
}

RequestCtx* Lanes::steal(size_t slot) noexcept {
  for (size_t i = 1; i < count_; ++i) {
    Lane& lane = lanes_[(slot + i) % count_];
    if (lane.count.load(std::memory_order_acquire) == 0) continue;
    // A lane someone holds is being served or filled: try the next one
    // rather than wait.
    std::unique_lock<std::mutex> lock(lane.mu, std::try_to_lock);
    if (lock.owns_lock() && lane.count.load(std::memory_order_relaxed) > 0) return pop_locked(lane);
  }
  return nullptr;
}

RequestRef Lanes::take_own(size_t slot) {
  while (RequestCtx* raw = pop_own(slot))
    if (RequestRef req = shared_.take_over(raw)) return req;
  return RequestRef();
}

RequestRef Lanes::take_stolen(size_t slot) {
  while (RequestCtx* raw = steal(slot))
    if (RequestRef req = shared_.take_over(raw)) return req;
  return RequestRef();
}

RequestRef Lanes::try_take(size_t slot) {
  if (slot >= count_) return shared_.try_pop();
  Lane& lane = lanes_[slot];
  // Awake from here: the I/O thread may place a request in this lane.
  if (!lane.awake.load(std::memory_order_relaxed)) lane.awake.store(true, std::memory_order_relaxed);
  if (RequestRef req = take_own(slot)) return req;
  if (RequestRef req = shared_.try_pop()) return req;
  return take_stolen(slot);
}

bool Lanes::park(size_t slot) noexcept {
  Lane& lane = lanes_[slot];
  std::lock_guard<std::mutex> lock(lane.mu);
  if (lane.count.load(std::memory_order_relaxed) > 0) return false;
  lane.awake.store(false, std::memory_order_relaxed);
  return true;
}

RequestRef Lanes::take_for(size_t slot, std::chrono::microseconds tick) {
  if (slot >= count_) return shared_.pop_for(tick);
  if (!park(slot)) {
    // Placed between try_take and here: take it, awake as we are.
    if (RequestRef req = take_own(slot)) return req;
    if (!park(slot)) return RequestRef();
  }
  RequestRef req = shared_.pop_for(tick);
  if (!req) req = take_stolen(slot);
  if (req) lanes_[slot].awake.store(true, std::memory_order_relaxed);
  return req;
}

size_t Lanes::evict(size_t first, size_t count) {
  std::vector<RequestCtx*> moved;
  if (first >= count_) return 0;
  // Reserved before any lane is emptied: nothing taken out can be lost.
  moved.reserve(kDepth * std::min(count, count_ - first));
  for (size_t i = first; i < first + count && i < count_; ++i) {
    Lane& lane = lanes_[i];
    std::lock_guard<std::mutex> lock(lane.mu);
    lane.awake.store(false, std::memory_order_relaxed);
    while (lane.count.load(std::memory_order_relaxed) > 0) {
      // Held across the push below by `queued_`, so drained() stays false
      // until each is in the shared queue.
      RequestCtx* raw = lane.ring[lane.head];
      lane.ring[lane.head] = nullptr;
      lane.head = (lane.head + 1) % kDepth;
      lane.count.store(lane.count.load(std::memory_order_relaxed) - 1, std::memory_order_release);
      moved.push_back(raw);
    }
  }
  for (RequestCtx* raw : moved) {
    RequestRef req(raw, false);
    // The shared queue closes after the drain: too late to be served.
    if (!shared_.push(req))
      respond_plain(*req, 503, "Service Unavailable: the server is shutting down\n", true);
    queued_.fetch_sub(1, std::memory_order_seq_cst);
  }
  return moved.size();
}

void Lanes::close() noexcept { closed_.store(true, std::memory_order_seq_cst); }

bool Lanes::drained() const noexcept {
  return closed_.load(std::memory_order_seq_cst) && queued_.load(std::memory_order_seq_cst) == 0 &&
         shared_.drained();
}

size_t Lanes::queued() const noexcept {
  size_t n = 0;
  for (size_t i = 0; i < count_; ++i) n += lanes_[i].count.load(std::memory_order_relaxed);
  return n;
}

size_t Lanes::depth(size_t slot) const noexcept {
  return slot < count_ ? lanes_[slot].count.load(std::memory_order_relaxed) : 0;
}

bool Lanes::awake(size_t slot) const noexcept {
  return slot < count_ && lanes_[slot].awake.load(std::memory_order_relaxed);
}

void Lanes::release_all() noexcept {
  for (size_t i = 0; i < count_; ++i) {
    Lane& lane = lanes_[i];
    std::lock_guard<std::mutex> lock(lane.mu);
    lane.awake.store(false, std::memory_order_relaxed);
    while (lane.count.load(std::memory_order_relaxed) > 0) RequestRef(pop_locked(lane), false);
  }
}

}  // namespace kino
