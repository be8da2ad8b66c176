// Live numbers of one server, updated with relaxed atomics on the hot path
// and read as a snapshot by stats (and, later, the Prometheus endpoint).
#pragma once

#include <atomic>
#include <cstdint>

namespace kino {

struct Counters {
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<int64_t> connections_open{0};
  std::atomic<uint64_t> requests_received{0};  // complete heads handed to the queue
  std::atomic<int64_t> in_flight{0};           // dequeued or queued, not yet answered
  std::atomic<uint64_t> served{0};             // responses completed by the app
  std::atomic<uint64_t> rejected{0};           // answered by the server itself: bad request, overload
  std::atomic<uint64_t> timeouts{0};
  std::atomic<uint64_t> parse_errors{0};

  struct Snapshot {
    uint64_t connections_accepted, requests_received, served, rejected, timeouts, parse_errors;
    int64_t connections_open, in_flight;
  };

  Snapshot snapshot() const noexcept {
    auto r = std::memory_order_relaxed;
    return {connections_accepted.load(r),
            requests_received.load(r),
            served.load(r),
            rejected.load(r),
            timeouts.load(r),
            parse_errors.load(r),
            connections_open.load(r),
            in_flight.load(r)};
  }
};

}  // namespace kino
