// The log writers Ruby knows by integer id (Kino::Logger::Device holds
// one), as the Registry holds servers: an Integer crosses ractors, a
// native object cannot. Unlike servers, writers are found on every log
// line from any thread, so finding one takes no lock: a writer, once
// added, stays in its slot until the process exits. A logger is shared by
// every ractor, and no one of them can know the others are done with it.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "util/log_writer.hpp"

namespace kino {

class LogWriters {
 public:
  static constexpr size_t kMaxWriters = 1024;

  static LogWriters& instance();

  // Throws std::length_error when kMaxWriters are taken.
  uint64_t add(std::unique_ptr<LogWriter> writer);
  LogWriter* find(uint64_t id) const noexcept;  // null when unknown
  // Every writer, for reopening after logrotate and flushing at a stop.
  std::vector<LogWriter*> all() const;
  // Lines every writer has lost so far (stats), read without a lock.
  uint64_t dropped() const noexcept;
  // At exit: every writer writes what it holds, then stops. The writers
  // stay (see instance()).
  void stop_all();

 private:
  LogWriters() = default;
  std::array<std::atomic<LogWriter*>, kMaxWriters> slots_{};
  std::atomic<size_t> used_{0};
  std::mutex add_mu_;  // adders only; finders never take it
};

}  // namespace kino
