// A bounded lock-free channel of whole lines: any thread pushes, one
// consumer takes them in batches (a LogWriter's thread, or Ruby draining a
// server's lines into a log IO without a descriptor). Producers never
// block, lock or make a syscall: past the capacity a line is counted and
// dropped.
#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/memory.hpp"

namespace kino {

class LogChannel {
 public:
  explicit LogChannel(size_t capacity = 8192) : capacity_(capacity) {}

  // False when the line was dropped: the channel is full, or the line's
  // memory could not be had. Never throws: a caller on an I/O thread is in
  // the middle of ending a response, and a consumer waiting for size() to
  // reach zero must never wait for a line that is not coming.
  bool push(std::string_view line) noexcept {
    if (size_.fetch_add(1, std::memory_order_relaxed) < capacity_) {
      try {
        if (lines_.enqueue(std::string(line))) return true;
      } catch (...) {  // std::bad_alloc from the line or a queue block
      }
    }
    size_.fetch_sub(1, std::memory_order_relaxed);
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

  // Takes up to `max` lines.
  std::vector<std::string> drain(size_t max = 1024) {
    std::vector<std::string> out(max);
    out.resize(take(out.data(), max));
    return out;
  }

  // Moves up to `max` lines into `out` (reused by a consumer that drains
  // in a loop); returns how many.
  size_t take(std::string* out, size_t max) {
    size_t n = lines_.try_dequeue_bulk(out, max);
    size_.fetch_sub(n, std::memory_order_acq_rel);
    return n;
  }

  // Lines pushed and not yet taken, counting pushes still under way: a
  // consumer that must see every line pushed before some moment waits for
  // this to reach zero.
  size_t size() const noexcept { return size_.load(std::memory_order_acquire); }

  // Lines the consumer lost after taking them (a write that failed).
  void count_dropped(uint64_t n) noexcept { dropped_.fetch_add(n, std::memory_order_relaxed); }

  uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

 private:
  size_t capacity_;
  struct Traits : moodycamel::ConcurrentQueueDefaultTraits, NativeQueueTraits {
    using NativeQueueTraits::free;
    using NativeQueueTraits::malloc;
  };
  moodycamel::ConcurrentQueue<std::string, Traits> lines_;
  std::atomic<size_t> size_{0};
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace kino
