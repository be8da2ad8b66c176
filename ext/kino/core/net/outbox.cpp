#include "net/outbox.hpp"

namespace kino {

const std::vector<asio::const_buffer>& Outbox::next_slice() {
  gather_.clear();
  gather_take_.clear();
  size_t budget = kMaxWriteBytes;
  size_t offset = front_offset_;
  for (auto& item : items_) {
    if (gather_take_.size() == kMaxGather || budget == 0) break;
    std::string_view data = item.data();
    size_t left = data.size() - offset;
    size_t take = left < budget ? left : budget;
    if (take > 0) gather_.emplace_back(data.data() + offset, take);
    gather_take_.push_back(take);
    budget -= take;
    offset = 0;
    if (take < left) break;  // this item continues in the next slice
  }
  return gather_;
}

Outbox::Written Outbox::written() {
  Written out;
  size_t written = 0;
  for (size_t take : gather_take_) {
    Item& item = items_.front();
    written += take;
    if (front_offset_ + take < item.size()) {
      front_offset_ += take;  // a slice of a large item: the rest goes next
      break;
    }
    front_offset_ = 0;
    if (item.last) {
      out.response_done = true;
      out.keep_alive = item.keep_alive;
    }
    items_.pop_front();
  }
  gather_take_.clear();
  pending_bytes_.fetch_sub(written, std::memory_order_relaxed);
  notify_writers();
  return out;
}

bool Outbox::discard() {
  // Items still waiting were never written; their bytes no longer count.
  size_t dropped = 0;
  bool had_last = false;
  for (auto& item : items_) {
    dropped += item.size();
    had_last = had_last || item.last;
  }
  dropped -= front_offset_;  // already written, already uncounted
  front_offset_ = 0;
  items_.clear();
  pending_bytes_.fetch_sub(dropped, std::memory_order_relaxed);
  return had_last;
}

bool Outbox::wait_below_high_water(std::chrono::steady_clock::time_point deadline,
                                   const std::atomic<bool>& open) {
  auto is_open = [&open] { return open.load(std::memory_order_acquire); };
  if (!is_open()) return false;
  if (pending() < high_water_) return true;
  waiting_writers_.fetch_add(1, std::memory_order_acq_rel);
  {
    std::unique_lock<std::mutex> lock(wait_mu_);
    wait_cv_.wait_until(lock, deadline, [&] { return !is_open() || pending() < high_water_; });
  }
  waiting_writers_.fetch_sub(1, std::memory_order_acq_rel);
  return is_open();
}

void Outbox::notify_writers() {
  if (waiting_writers_.load(std::memory_order_acquire) == 0) return;
  std::lock_guard<std::mutex> lock(wait_mu_);
  wait_cv_.notify_all();
}

}  // namespace kino
