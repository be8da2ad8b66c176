// What each worker thread is holding right now. A worker thread takes its
// requests through a fixed slot; the slot keeps a reference to the last
// request taken until the next take replaces it. When a worker ractor dies,
// the supervisor empties that worker's slots and answers what they held
// with a 500 at once (the first-claimant flag drops the answer if the
// request was in fact answered) instead of waiting for GC to free the dead
// ractor's handles. Each slot has its own lock, taken once per request by
// its own thread, so it is uncontended except while the supervisor looks.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "handoff/request_ctx.hpp"
#include "util/counters.hpp"

namespace kino {

class ThreadSlots {
 public:
  explicit ThreadSlots(size_t count) : slots_(count) {}
  ~ThreadSlots();
  ThreadSlots(const ThreadSlots&) = delete;
  ThreadSlots& operator=(const ThreadSlots&) = delete;

  size_t size() const noexcept { return slots_.size(); }

  // Records `req` as slot `slot`'s current request (an extra reference),
  // marks it taken by that slot, counts its wait in the queue, and
  // releases the previous one. Slots out of range are not tracked.
  void hold(size_t slot, RequestCtx* req) noexcept;

  // Empties slots [first, first + count) and returns what they held.
  std::vector<RequestRef> take(size_t first, size_t count);

  // `batch`: the requests a slot's thread took beyond its current one, in
  // queue order, each with the queue's reference. They are kept here, not
  // in the thread, so that others can serve them when the thread cannot:
  // a worker set aside as stuck, or dead (take_held, then requeue).
  static constexpr size_t kMaxHeld = 63;  // `batch` is at most 64
  // Adds `refs` behind what the slot holds; at most kMaxHeld in all, the
  // rest stay with the caller. Returns how many were added.
  size_t hold_batch(size_t slot, RequestRef* refs, size_t n) noexcept;
  // The first request the slot holds beyond its current one, or null.
  RequestRef next_held(size_t slot) noexcept;
  // Whether it holds any, read without the lock: only its own thread adds.
  bool holds_batch(size_t slot) const noexcept {
    return slot < slots_.size() && slots_[slot].held_count.load(std::memory_order_relaxed) > 0;
  }
  // Empties what slots [first, first + count) hold beyond their current
  // requests, in order.
  std::vector<RequestRef> take_held(size_t first, size_t count);

  // Milliseconds the slot's current request has been held, if it has not
  // been answered yet; -1 for an idle slot.
  int64_t busy_ms(size_t slot) const noexcept;

  // One slot as stats show it: requests it took that were answered (by
  // the app or for it: a 504, a 500), whether it holds one unanswered now,
  // and for how long (0 when idle; a stuck slot climbs).
  struct Row {
    uint64_t served = 0;
    bool in_flight = false;
    int64_t busy_ms = 0;
  };
  Row row(size_t slot) const noexcept;

  // How long the requests the slots took had waited in the queue, from
  // Server::dispatch to the pop (requests not stamped by both are left
  // out), over every slot.
  QueueWaitHistogram::Snapshot queue_wait() const noexcept;

 private:
  struct Slot {
    mutable std::mutex mu;
    RequestRef request;
    int64_t since_ms = 0;
    uint64_t served = 0;  // answered requests it held before `request`
    QueueWaitHistogram queue_wait;
    RequestRef held[kMaxHeld];  // a ring: held_count from held_first
    size_t held_first = 0;
    std::atomic<size_t> held_count{0};  // written under mu
  };

  std::vector<Slot> slots_;
};

}  // namespace kino
