// A connection's deadlines, in the spirit of Puma's first_data_timeout and
// persistent_timeout. A slow client must not hold a connection (and its
// buffers) for ever: dribbling bytes never extends the time allowed for a
// request head, a body may stall only so long between reads, and a body
// must keep up a minimum rate (see body_rate_kept).
//
// Three clocks run: the read side's (what the client owes us, per the
// state below), the write side's (a slice of the response under way) and
// the app's (request_timeout). The server's sweeper reads the earliest from
// its own thread (due_ms); everything else belongs to the connection's
// strand, which asks expire() what has fallen due and acts on it.
//
// It sits with the HTTP/1 session because what the read side waits for is
// HTTP/1's (a head, a body, a `100 Continue`); the connection drives the
// write, linger and TLS handshake clocks through it.
#pragma once

#include <atomic>
#include <cstdint>

#include "server_config.hpp"

namespace kino {

class Deadlines {
 public:
  // What the read side waits for, and until when.
  // Continue: a body that will come only once the app asks for it (and we
  // send `100 Continue`); nothing is due from the client until then.
  // Handshake: a TLS connection's handshake, before any request.
  enum class Waiting : uint8_t { FirstByte, Head, Body, Continue, Nothing, Linger, Handshake };

  // What expire() found past its time; the connection acts on it.
  enum class Expired : uint8_t {
    None,
    Write,      // the client stopped reading what we send: close
    App,        // the request with the app is answered 504
    Linger,     // the client never closed its side: enough, close
    FirstByte,  // nothing was asked: nothing to answer, close
    Head,       // 408: the head did not arrive in time
    BodyStall,  // 408: the body stalled between reads
    BodyRate,   // 408: the body arrived too slowly
    Handshake,  // the TLS handshake did not finish in time: close
  };
  // The reason a 408 for `e` gives (Head, BodyStall, BodyRate).
  static const char* reason(Expired e) noexcept;

  static constexpr int64_t kNever = INT64_MAX;
  // How long a lingering close reads and drops what still comes.
  static constexpr int64_t kLingerMs = 2000;

  // `config` must outlive this (the server's, which the connection holds).
  explicit Deadlines(const ServerConfig& config) : config_(config) {}

  Waiting waiting() const noexcept { return waiting_; }

  // A request may begin from `now` (accept, or the end of the previous
  // response); `reused` says a response was already served on the
  // connection, whose next first byte may take persistent_timeout.
  void begin_request(int64_t now, bool reused) noexcept {
    phase_start_ms_ = now;
    if (reused) idle_keep_alive_ = true;
  }

  // The read side now waits for `what`. Entering Body opens its grace
  // window; each call with Body (every read of it) restarts its stall
  // clock.
  void expect(Waiting what, int64_t now) noexcept;
  // Bytes read while the body is awaited count towards its rate.
  void count_read(size_t n) noexcept {
    if (waiting_ == Waiting::Body) body_window_bytes_ += n;
  }
  // A TLS handshake begins at `now`; it may take tls_handshake_timeout.
  void handshake(int64_t now) noexcept {
    waiting_ = Waiting::Handshake;
    read_deadline_ms_.store(now + config_.tls_handshake_timeout.count(), std::memory_order_relaxed);
  }
  // The response is over and the send side shut: what still comes is
  // dropped for kLingerMs.
  void linger(int64_t now) noexcept;

  // A slice of the response is being written / was written.
  void write_started(int64_t now) noexcept {
    write_deadline_ms_.store(now + config_.first_data_timeout.count(), std::memory_order_relaxed);
  }
  void write_ended() noexcept { write_deadline_ms_.store(kNever, std::memory_order_relaxed); }

  // request_timeout, if set, from `now`.
  void arm_app(int64_t now) noexcept;
  void disarm_app() noexcept { app_deadline_ms_.store(kNever, std::memory_order_relaxed); }

  // Any thread: the earliest time (steady clock, ms) something is due.
  int64_t due_ms() const noexcept {
    int64_t a = read_deadline_ms_.load(std::memory_order_relaxed);
    int64_t b = write_deadline_ms_.load(std::memory_order_relaxed);
    int64_t c = app_deadline_ms_.load(std::memory_order_relaxed);
    int64_t ab = a < b ? a : b;
    return ab < c ? ab : c;
  }

  // What is past due at `now`, one thing at a time, write side first. A
  // deadline reported is disarmed (but Write and Linger: the connection
  // closes); a body keeping its rate at the end of a window moves on to the
  // next window and reports None.
  Expired expire(int64_t now) noexcept;

 private:
  int64_t body_deadline() const noexcept;
  bool body_rate_kept(int64_t now) noexcept;

  const ServerConfig& config_;
  Waiting waiting_ = Waiting::FirstByte;
  bool idle_keep_alive_ = false;  // waiting for the next request on a reused connection
  int64_t phase_start_ms_ = 0;    // accept, or the end of the previous response
  // The body being read: when its stall deadline falls, and its current
  // rate window.
  int64_t stall_deadline_ms_ = 0;
  int64_t body_window_start_ms_ = 0;
  uint64_t body_window_bytes_ = 0;
  bool body_grace_ = false;
  std::atomic<int64_t> read_deadline_ms_{kNever};
  std::atomic<int64_t> write_deadline_ms_{kNever};
  std::atomic<int64_t> app_deadline_ms_{kNever};  // request_timeout
};

}  // namespace kino
