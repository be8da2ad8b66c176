// The one clock for deadlines and durations in the core: steady, in
// milliseconds. Values from different parts (a connection's deadlines, a
// worker slot's start, a body's last byte) are compared with each other,
// so they must all come from here.
#pragma once

#include <chrono>
#include <cstdint>

namespace kino {

inline int64_t steady_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The same clock in nanoseconds, for durations finer than a millisecond
// (a request's wait in the queue).
inline int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline int64_t ns_to_ms(int64_t ns) noexcept { return ns / 1'000'000; }

}  // namespace kino
