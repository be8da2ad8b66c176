// One log destination: a bounded LogChannel of whole lines and the one
// native thread that drains it into a file descriptor, many lines a
// writev. Any thread (an I/O thread, a worker in any ractor) pushes; a
// push never locks, blocks or makes a syscall, so logging costs a request
// thread a copy and two atomic operations. Past the capacity a line is
// dropped and counted, never waited for.
//
// The writer thread cannot be woken without a syscall on the producer's
// side, so it polls: it sleeps 1 ms after a busy batch, doubling up to
// kMaxIdle while the channel stays empty. A line waits at most that long.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "util/log_channel.hpp"

namespace kino {

class LogWriter {
 public:
  static constexpr size_t kDefaultCapacity = 8192;
  static constexpr std::chrono::milliseconds kMaxIdle{16};

  // Writes to `fd`, which stays the caller's: it is never closed here.
  explicit LogWriter(int fd, size_t capacity = kDefaultCapacity);

  // Opens `path` for append (created 0644 if missing) and owns that
  // descriptor. Throws std::system_error naming the path.
  static std::unique_ptr<LogWriter> open(const std::string& path, size_t capacity = kDefaultCapacity);

  // Writes to `fd` and owns it once it returns (a dup of someone's
  // descriptor, so the writer outlives the IO it came from); if it throws,
  // `fd` is still the caller's to close.
  static std::unique_ptr<LogWriter> adopt(int fd, size_t capacity = kDefaultCapacity);

  ~LogWriter();  // stop(), then closes a descriptor it opened
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // `line` should end with '\n'; it is written as given. False when it was
  // dropped: the channel is full, or the writer has stopped.
  bool push(std::string_view line);

  // Lines lost: dropped at a full channel or after stop, failed to write
  // (a closed pipe, a full disk), or given up on by stop.
  uint64_t dropped() const noexcept { return channel_.dropped(); }

  // How many write syscalls have carried lines (each gathers a batch).
  uint64_t writes() const noexcept { return writes_.load(std::memory_order_relaxed); }

  bool is_tty() const noexcept { return tty_; }
  int fd() const noexcept { return fd_; }
  const std::string& path() const noexcept { return path_; }  // empty unless opened by path

  // Waits until every line pushed before the call is written (or lost),
  // up to `timeout`; false if it is not. The writer goes on running.
  bool flush(std::chrono::milliseconds timeout);

  // For logrotate: opens the path again (the file that now has its name)
  // and puts it in place of the old one atomically (dup2), so the writer
  // thread never sees a closed descriptor. False for a writer on a
  // descriptor it was given. Throws std::system_error naming the path.
  bool reopen();

  // Writes every line pushed before the call, then joins the thread. A
  // descriptor that takes nothing for `give_up` (a non-blocking pipe
  // nobody reads) has the rest counted as dropped instead. Idempotent.
  // In a forked child, where the thread did not follow, the caller writes
  // what is queued itself.
  void stop(std::chrono::milliseconds give_up = std::chrono::seconds(10));

  // Around a fork: a thread running at fork time leaves the child a copy
  // of whatever it held (a mutex, half a writev). pause() writes what is
  // queued and joins the thread, as stop() does, but keeps the writer
  // open: lines pushed meanwhile wait in the channel. resume() starts a
  // thread again in whichever process calls it (the parent, and each
  // child). Call both from one thread, with no fork between them but the
  // one they guard. A stopped writer stays stopped.
  void pause(std::chrono::milliseconds give_up = std::chrono::seconds(10));
  void resume();

 private:
  void start_thread();
  LogWriter(int fd, bool owned, std::string path, size_t capacity);
  void run();
  void drop_unwritten();
  void stop_in_fork_child();
  void write_batch(std::string* lines, size_t n);
  bool wait_writable();
  ssize_t write_some(iovec* iov, size_t count);

  int fd_;
  bool owned_;
  bool socket_ = false;
  bool pipe_ = false;  // writes of whole lines, PIPE_BUF bytes at most
  bool tty_;
  std::string path_;
  LogChannel channel_;
  std::atomic<uint64_t> writes_{0};
  std::atomic<uint64_t> accepted_{0};  // lines the channel took
  std::atomic<uint64_t> done_{0};      // of those, lines written or lost
  std::atomic<bool> stopping_{false};
  bool paused_ = false;                    // under join_mu_
  std::atomic<bool> closed_{false};        // the thread has drained its last line
  std::atomic<int64_t> give_up_at_ms_{0};  // steady ms; 0 while not stopping
  std::mutex stop_mu_;                     // the writer's sleep and stop() only
  std::condition_variable stop_cv_;
  std::mutex join_mu_;  // stop() from two threads joins once
  std::thread thread_;
  pid_t owner_ = 0;  // the process the thread runs in: a fork child has no writer thread
};

}  // namespace kino
