// Lines the native side wants logged (I/O errors, dropped headers, lost
// requests) wait here until Ruby drains them on its own thread. Producers
// never block: past the capacity a line is counted and dropped.
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

  void push(std::string_view line) {
    if (size_.fetch_add(1, std::memory_order_relaxed) >= capacity_) {
      size_.fetch_sub(1, std::memory_order_relaxed);
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    lines_.enqueue(std::string(line));
  }

  // Takes up to `max` lines.
  std::vector<std::string> drain(size_t max = 1024) {
    std::vector<std::string> out(max);
    size_t n = lines_.try_dequeue_bulk(out.begin(), max);
    out.resize(n);
    size_.fetch_sub(n, std::memory_order_relaxed);
    return out;
  }

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
