// Live numbers of one server, updated with relaxed atomics on the hot path
// and read as a snapshot by stats (and, later, the Prometheus endpoint).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace kino {

// How long requests waited in the queue for a worker, in fixed buckets
// (upper bounds in seconds, as Prometheus' `le`). Not atomic: each worker
// thread slot keeps its own, written under the slot's lock, which its
// thread takes once a request anyway (ThreadSlots::hold), so an
// observation is two plain increments. Readers add the slots' up.
class QueueWaitHistogram {
 public:
  static constexpr std::array<double, 14> kBoundsSeconds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                            0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
  static constexpr size_t kBuckets = kBoundsSeconds.size() + 1;  // the last is +Inf

  void observe(int64_t wait_ns) noexcept {
    if (wait_ns < 0) wait_ns = 0;  // a request stamped on another core a hair later
    size_t i = 0;
    while (i < kBoundsSeconds.size() && wait_ns > kBoundsNs[i]) ++i;
    ++buckets_[i];
    sum_ns_ += static_cast<uint64_t>(wait_ns);
  }

  void add(const QueueWaitHistogram& other) noexcept {
    for (size_t i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
    sum_ns_ += other.sum_ns_;
  }

  struct Snapshot {
    std::array<uint64_t, kBuckets> cumulative{};  // observations <= each bound, the last = count
    uint64_t count = 0;
    double sum_seconds = 0;
  };

  Snapshot snapshot() const noexcept {
    Snapshot out;
    uint64_t running = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      running += buckets_[i];
      out.cumulative[i] = running;
    }
    out.count = running;
    out.sum_seconds = static_cast<double>(sum_ns_) / 1e9;
    return out;
  }

 private:
  static constexpr std::array<int64_t, kBoundsSeconds.size()> kBoundsNs = [] {
    std::array<int64_t, kBoundsSeconds.size()> ns{};
    for (size_t i = 0; i < ns.size(); ++i) ns[i] = static_cast<int64_t>(kBoundsSeconds[i] * 1e9 + 0.5);
    return ns;
  }();

  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t sum_ns_ = 0;
};

struct Counters {
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<int64_t> connections_open{0};
  std::atomic<uint64_t> requests_received{0};  // complete heads handed to the queue
  std::atomic<int64_t> in_flight{0};           // dequeued or queued, not yet answered
  std::atomic<uint64_t> served{0};             // responses completed by the app
  std::atomic<uint64_t> rejected{0};           // answered by the server itself: bad request, overload
  std::atomic<uint64_t> timeouts{0};
  std::atomic<uint64_t> parse_errors{0};
  // What only the Ruby supervisor knows, pushed by it whenever it changes
  // (Server::report_pool), so that native readers never call into Ruby.
  std::atomic<int64_t> workers_up{0};
  std::atomic<uint64_t> respawns{0};
  std::atomic<uint64_t> quarantined{0};

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
