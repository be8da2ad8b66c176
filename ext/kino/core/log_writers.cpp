#include "log_writers.hpp"

#include <cstdlib>
#include <stdexcept>

namespace kino {

LogWriters& LogWriters::instance() {
  // Never destroyed, as the Registry is not: native threads outlive
  // Ruby at exit (a server's control plane reading dropped(), an I/O
  // thread logging), and would find freed writers. Instead every writer
  // is stopped at exit: what it holds is written, and a line pushed later
  // is counted as dropped.
  static LogWriters* writers = [] {
    auto* created = new LogWriters();
    std::atexit([] { instance().stop_all(); });
    return created;
  }();
  return *writers;
}

void LogWriters::stop_all() {
  for (LogWriter* w : all()) w->stop();
}

uint64_t LogWriters::add(std::unique_ptr<LogWriter> writer) {
  std::lock_guard<std::mutex> lock(add_mu_);
  size_t i = used_.load(std::memory_order_relaxed);
  if (i == kMaxWriters) throw std::length_error("too many log writers (at most 1024 in a process)");
  slots_[i].store(writer.release(), std::memory_order_release);
  used_.store(i + 1, std::memory_order_release);
  return i + 1;
}

LogWriter* LogWriters::find(uint64_t id) const noexcept {
  if (id == 0 || id > used_.load(std::memory_order_acquire)) return nullptr;
  return slots_[id - 1].load(std::memory_order_acquire);
}

std::vector<LogWriter*> LogWriters::all() const {
  std::vector<LogWriter*> out;
  size_t n = used_.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i)
    if (auto* w = slots_[i].load(std::memory_order_acquire)) out.push_back(w);
  return out;
}

uint64_t LogWriters::dropped() const noexcept {
  uint64_t total = 0;
  size_t n = used_.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i)
    if (auto* w = slots_[i].load(std::memory_order_acquire)) total += w->dropped();
  return total;
}

}  // namespace kino
