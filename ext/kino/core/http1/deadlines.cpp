#include "http1/deadlines.hpp"

namespace kino {

const char* Deadlines::reason(Expired e) noexcept {
  switch (e) {
    case Expired::Head:
      return "request head not received in time";
    case Expired::BodyRate:
      return "request body arrived too slowly";
    default:
      return "request body stalled";
  }
}

void Deadlines::expect(Waiting what, int64_t now) noexcept {
  Waiting before = waiting_;
  waiting_ = what;
  int64_t first_data = config_.first_data_timeout.count();
  int64_t deadline = kNever;
  switch (what) {
    case Waiting::FirstByte:
      deadline = phase_start_ms_ + (idle_keep_alive_ ? config_.persistent_timeout.count() : first_data);
      break;
    case Waiting::Head:
      deadline = phase_start_ms_ + first_data;
      break;
    case Waiting::Body:
      if (before != Waiting::Body) {
        // The body's first window is its grace period.
        body_window_start_ms_ = now;
        body_window_bytes_ = 0;
        body_grace_ = true;
      }
      stall_deadline_ms_ = now + first_data;
      deadline = body_deadline();
      break;
    case Waiting::Continue:
    case Waiting::Nothing:
    case Waiting::Linger:
    case Waiting::Handshake:
      break;
  }
  read_deadline_ms_.store(deadline, std::memory_order_relaxed);
}

void Deadlines::linger(int64_t now) noexcept {
  waiting_ = Waiting::Linger;
  read_deadline_ms_.store(now + kLingerMs, std::memory_order_relaxed);
}

void Deadlines::arm_app(int64_t now) noexcept {
  auto timeout = config_.request_timeout.count();
  if (timeout > 0) app_deadline_ms_.store(now + timeout, std::memory_order_relaxed);
}

int64_t Deadlines::body_deadline() const noexcept {
  if (config_.min_body_rate == 0) return stall_deadline_ms_;
  int64_t window_end = body_window_start_ms_ + config_.min_body_rate_window.count();
  return window_end < stall_deadline_ms_ ? window_end : stall_deadline_ms_;
}

// Averaged over windows of min_body_rate_window, so a client may pause and
// burst (TCP does), but one byte every few seconds is cut off within two
// windows, and a fast start banks no credit for trickling afterwards. The
// first window is free: the client may take a moment before it sends.
bool Deadlines::body_rate_kept(int64_t now) noexcept {
  if (config_.min_body_rate == 0 || now < body_window_start_ms_ + config_.min_body_rate_window.count())
    return true;
  uint64_t elapsed = static_cast<uint64_t>(now - body_window_start_ms_);
  bool kept = body_grace_ || body_window_bytes_ * 1000 >= config_.min_body_rate * elapsed;
  body_grace_ = false;
  body_window_start_ms_ = now;
  body_window_bytes_ = 0;
  return kept;
}

Deadlines::Expired Deadlines::expire(int64_t now) noexcept {
  if (now >= write_deadline_ms_.load(std::memory_order_relaxed)) return Expired::Write;
  if (now >= app_deadline_ms_.load(std::memory_order_relaxed)) {
    disarm_app();
    return Expired::App;
  }
  if (now < read_deadline_ms_.load(std::memory_order_relaxed)) return Expired::None;
  if (waiting_ == Waiting::Linger) return Expired::Linger;
  if (waiting_ == Waiting::Handshake) {
    read_deadline_ms_.store(kNever, std::memory_order_relaxed);
    return Expired::Handshake;
  }
  Expired body = Expired::BodyStall;
  if (waiting_ == Waiting::Body && now < stall_deadline_ms_) {
    // Not stalled: the deadline was the end of a rate window.
    if (body_rate_kept(now)) {
      read_deadline_ms_.store(body_deadline(), std::memory_order_relaxed);
      return Expired::None;
    }
    body = Expired::BodyRate;
  }
  read_deadline_ms_.store(kNever, std::memory_order_relaxed);
  if (waiting_ == Waiting::FirstByte) return Expired::FirstByte;
  return waiting_ == Waiting::Head ? Expired::Head : body;
}

}  // namespace kino
