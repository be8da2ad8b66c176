// Where workers report their end and the supervisor waits for the next.
// On Ruby 3.1 a ractor has one wait state, so two threads of the main
// ractor blocked on Ractor.select/take at once (two servers' supervisors,
// or a supervisor and an app) can lose a wake-up and never return. Worker
// ractors therefore say that they end here, natively, and the supervisor
// waits on this board instead of on the ractors. The report carries the
// exception as text: the exception object itself cannot leave its ractor.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace kino {

struct WorkerExit {
  uint64_t token = 0;  // which worker, as the pool numbered it
  bool crashed = false;
  std::string error_class;  // when crashed
  std::string message;
  std::vector<std::string> backtrace;
};

class WorkerExits {
 public:
  void post(WorkerExit exit) {
    std::lock_guard<std::mutex> lock(mu_);
    exits_.push_back(std::move(exit));
    cv_.notify_all();
  }

  // Makes one wait return `Wake` (a supervisor with news of its own).
  void wake() {
    std::lock_guard<std::mutex> lock(mu_);
    ++wakes_;
    cv_.notify_all();
  }

  enum class Outcome { Exit, Wake, Timeout };
  // The next exit (into `out`) or wake-up, waiting until `deadline`.
  Outcome next(WorkerExit& out, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_until(lock, deadline, [&] { return !exits_.empty() || wakes_ > 0; }))
      return Outcome::Timeout;
    if (!exits_.empty()) {
      out = std::move(exits_.front());
      exits_.pop_front();
      return Outcome::Exit;
    }
    --wakes_;
    return Outcome::Wake;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<WorkerExit> exits_;
  uint64_t wakes_ = 0;
};

}  // namespace kino
