// A connection's write queue, kept apart from the connection as Boost.Beast's
// advanced_server.cpp keeps its queue: the response bytes waiting for the
// socket, in order, the slice the write under way takes from them, and the
// count of pending bytes that producers on other threads wait on (the
// back-pressure high-water mark).
//
// All but the pending count and the waits belong to the connection's
// strand.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <vector>

#include "handoff/byte_lease.hpp"
#include "util/asio.hpp"
#include "util/memory.hpp"

namespace kino {

class Outbox {
 public:
  struct Item {
    Bytes bytes;
    bool last;        // ends the current response
    bool keep_alive;  // ...after which the connection reads the next request
    // When set, the item's bytes are lent, `bytes` is empty, and the loan
    // is returned as the item leaves the queue (written or discarded).
    Loan loan{};

    std::string_view data() const noexcept { return loan ? loan.bytes() : view(bytes); }
    size_t size() const noexcept { return loan ? loan.bytes().size() : bytes.size(); }
  };

  // What a finished write took off the queue.
  struct Written {
    bool response_done = false;  // it held the end of a response
    bool keep_alive = false;     // what that response said
  };

  explicit Outbox(size_t high_water) : high_water_(high_water) {}
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // Any thread: bytes count as pending from the moment they are promised,
  // before they reach the strand, so a producer cannot outrun the
  // high-water mark by posting faster than the strand queues. Every
  // promise is either pushed or withdrawn.
  void promise(size_t bytes) noexcept { pending_bytes_.fetch_add(bytes, std::memory_order_relaxed); }
  void withdraw(size_t bytes) noexcept { pending_bytes_.fetch_sub(bytes, std::memory_order_relaxed); }

  // Queues promised bytes.
  void push(Item item) { items_.push_back(std::move(item)); }
  bool empty() const noexcept { return items_.empty(); }

  // The buffers of the next write, from the front of the queue: at most
  // kMaxWriteBytes in at most kMaxGather buffers. Valid until written().
  const std::vector<asio::const_buffer>& next_slice();
  // The write of that slice ended (well or not): what it took leaves the
  // queue and stops counting, and waiting producers hear of it.
  Written written();

  // Drops every item not yet written, and uncounts its bytes. Returns
  // whether one of them ended a response.
  bool discard();

  // Any thread.
  size_t pending() const noexcept { return pending_bytes_.load(std::memory_order_relaxed); }
  bool above_high_water() const noexcept { return pending() >= high_water_; }
  // Blocks until fewer bytes than the high-water mark are pending, the
  // deadline passes or `open` turns false; returns `open`.
  bool wait_below_high_water(std::chrono::steady_clock::time_point deadline, const std::atomic<bool>& open);
  // Wakes the producers waiting: the count fell, or the peer left.
  void notify_writers();

  // Writes go out in slices of at most this, so the write deadline
  // measures progress, not the size of a response: a slow but steady
  // reader of a large body is never cut off, one that stops reading is.
  static constexpr size_t kMaxWriteBytes = 256 * 1024;
  static constexpr size_t kMaxGather = 64;

 private:
  const size_t high_water_;
  std::deque<Item> items_;
  std::vector<asio::const_buffer> gather_;
  std::vector<size_t> gather_take_;  // bytes of each front item in the write under way
  size_t front_offset_ = 0;          // bytes of items_.front() already written

  std::atomic<size_t> pending_bytes_{0};
  std::atomic<int> waiting_writers_{0};
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
};

}  // namespace kino
