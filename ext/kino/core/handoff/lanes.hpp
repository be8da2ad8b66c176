// `lanes true`: a small private queue (a lane) per worker slot in front of
// the shared RequestQueue.
//
// With one shared queue a worker that finds it empty parks on its
// semaphore, and the next request pays a futex wake to get it going again,
// even when another worker is about to come back for more. A lane lets the
// I/O thread hand a request to a worker that is awake (serving, not
// parked), which takes it from its lane when it comes back, no wake at
// all. Three rules keep that from costing latency or requests:
//
// - Lanes are only used while the shared queue is empty: a backlog, and
//   with it every overload rule (queue_depth, queue_timeout, 503), stays
//   the shared queue's, and a new request never overtakes a queued one.
// - A lane holds kDepth requests at most, and a worker that finds its own
//   lane and the shared queue empty steals the oldest request of a
//   sibling's lane, before it parks and on every park tick, so a slow
//   request does not strand what is queued behind it.
// - An emptied slot (its worker died, was killed or ended) gives its lane's
//   requests to the shared queue (evict).
//
// Each lane has its own lock, held for a few instructions by its owner,
// a stealer or the I/O thread placing a request; no lock is shared by all
// workers. The owner parks only under its lane's lock, after checking the
// lane is empty, and the I/O thread places a request only under it into a
// lane whose owner is awake: a request is never placed behind a parked
// owner's back, so none waits on a sleeping worker.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "handoff/request_ctx.hpp"
#include "handoff/request_queue.hpp"

namespace kino {

class Lanes {
 public:
  static constexpr uint32_t kDepth = 4;

  // One lane a worker slot, in front of `shared`, which outlives it.
  Lanes(size_t count, RequestQueue& shared);
  ~Lanes();
  Lanes(const Lanes&) = delete;
  Lanes& operator=(const Lanes&) = delete;

  size_t size() const noexcept { return count_; }

  // I/O thread: places the request (the reference in `req`) into the lane
  // of an awake worker with room, an empty lane first. False, with `req`
  // still the caller's, when the shared queue holds requests, no awake lane
  // has room, or the lanes are closed.
  bool offer(RequestRef& req) noexcept;

  // Worker `slot`, never blocking: its own lane's oldest request, else the
  // shared queue's, else a sibling lane's oldest. Marks the lane awake.
  // The shared queue's skip rules apply to lane takes too (a request
  // answered while it waited, or whose client left, is never returned).
  RequestRef try_take(size_t slot);

  // Worker `slot`, after try_take found nothing: parks on the shared queue
  // for up to `tick`, then steals. Null when nothing came (check
  // drained()); the lane is awake again when a request is returned.
  RequestRef take_for(size_t slot, std::chrono::microseconds tick);

  // Slots [first, first + count) were emptied: their lanes stop taking
  // requests until their next owner takes, and what they held goes to the
  // shared queue (answered 503 if that is closed). Returns how many moved.
  size_t evict(size_t first, size_t count);

  // No lane takes new requests from here on; what they hold is still taken.
  void close() noexcept;
  bool closed() const noexcept { return closed_.load(std::memory_order_seq_cst); }
  // Closed, every lane empty and the shared queue drained.
  bool drained() const noexcept;

  // Requests a lane took since the start (offer returned true).
  uint64_t dispatched() const noexcept { return dispatched_.load(std::memory_order_relaxed); }

  // Requests in lanes, in all and in `slot`'s.
  size_t queued() const noexcept;
  size_t depth(size_t slot) const noexcept;
  // Whether `slot`'s owner is awake (tests, stats).
  bool awake(size_t slot) const noexcept;

  // After the server stopped: lets every request go (unanswered ones get
  // their 500 from RequestCtx, sent nowhere).
  void release_all() noexcept;

 private:
  // A cache line each: the owner, stealers and the I/O thread touch one
  // lane, never its neighbours.
  struct alignas(64) Lane {
    std::mutex mu;
    // Read by the I/O thread under `mu`; set by the owner, to false only
    // under `mu` (see the top of the file).
    std::atomic<bool> awake{false};
    // Written under `mu`; read without it to skip empty or full lanes.
    std::atomic<uint32_t> count{0};
    uint32_t head = 0;
    std::array<RequestCtx*, kDepth> ring{};
  };

  bool place(Lane& lane, RequestRef& req) noexcept;  // false: not awake, or full
  RequestCtx* pop_locked(Lane& lane) noexcept;       // under lane.mu, count > 0
  RequestCtx* pop_own(size_t slot) noexcept;
  RequestCtx* steal(size_t slot) noexcept;
  RequestRef take_own(size_t slot);
  RequestRef take_stolen(size_t slot);
  bool park(size_t slot) noexcept;  // false: its lane holds a request

  size_t count_;
  std::unique_ptr<Lane[]> lanes_;
  RequestQueue& shared_;
  // Where the I/O threads' next search starts, so requests spread over the
  // awake lanes. Written by I/O threads only.
  alignas(64) std::atomic<size_t> cursor_{0};
  // Requests in lanes, plus offers under way: raised before the closed
  // check, as RequestQueue's admitting_, so drained() never misses one.
  alignas(64) std::atomic<long> queued_{0};
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> dispatched_{0};  // I/O threads only, like cursor_
};

}  // namespace kino
