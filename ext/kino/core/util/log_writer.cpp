#include "util/log_writer.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <system_error>
#include <vector>

#include "util/steady_clock.hpp"

namespace kino {

namespace {

constexpr size_t kBatch = 512;  // lines a writev, well under IOV_MAX
constexpr int kOpenFlags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC;

std::system_error open_error(int err, const std::string& path) {
  return std::system_error(err, std::generic_category(), "cannot open log file " + path);
}

// A pipe handed over blocking (a shell's pipe to a log collector) would
// let one writev wait forever, and stop() behind it. Its O_NONBLOCK flag
// belongs to a description others share (the shell, Ruby's $stdout), so
// it is not flipped: the pipe is opened again through /proc, which gives
// a description of the writer's own. -1 when there is no need or no way
// (no reader yet, no /proc): the descriptor is then written as it is.
int nonblocking_reopen(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) return -1;
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || (flags & O_NONBLOCK) != 0) return -1;
  std::string self = "/proc/self/fd/" + std::to_string(fd);
  return ::open(self.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
}

bool is_socket(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

bool is_pipe(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

// How many of `count` entries, whole lines, fit in one write of at most
// PIPE_BUF bytes; at least one (a longer line goes alone).
size_t lines_within_pipe_buf(const iovec* iov, size_t count) {
  size_t bytes = iov[0].iov_len, n = 1;
  while (n < count && bytes + iov[n].iov_len <= PIPE_BUF) bytes += iov[n++].iov_len;
  return n;
}

}  // namespace

LogWriter::LogWriter(int fd, size_t capacity) : LogWriter(fd, false, std::string(), capacity) {}

LogWriter::LogWriter(int fd, bool owned, std::string path, size_t capacity)
    : fd_(fd), owned_(owned), tty_(::isatty(fd) == 1), path_(std::move(path)), channel_(capacity) {
  if (int fresh = nonblocking_reopen(fd_); fresh >= 0) {
    if (owned_) ::close(fd_);
    fd_ = fresh;
    owned_ = true;
  }
  socket_ = is_socket(fd_);
  pipe_ = is_pipe(fd_);
  try {
    start_thread();
  } catch (...) {
    if (owned_) ::close(fd_);
    throw;
  }
}

void LogWriter::start_thread() {
  // Signals are the host's business (Ruby handles them on its own
  // threads); a write to a closed pipe must come back as EPIPE here, not
  // as a SIGPIPE aimed at this thread. The thread inherits the mask.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &previous);
  owner_ = ::getpid();
  try {
    thread_ = std::thread([this] { run(); });
  } catch (...) {
    // The descriptor stays the caller's to close: a second close here
    // could shut one the process has opened again meanwhile.
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    throw;
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

void LogWriter::pause(std::chrono::milliseconds give_up) {
  std::lock_guard<std::mutex> join(join_mu_);
  if (paused_ || !thread_.joinable() || ::getpid() != owner_) return;
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    give_up_at_ms_.store(steady_ms() + give_up.count(), std::memory_order_relaxed);
    stopping_.store(true, std::memory_order_release);
  }
  stop_cv_.notify_all();
  thread_.join();
  stopping_.store(false, std::memory_order_release);
  give_up_at_ms_.store(0, std::memory_order_relaxed);
  paused_ = true;
}

void LogWriter::resume() {
  std::lock_guard<std::mutex> join(join_mu_);
  if (!paused_ || closed_.load(std::memory_order_acquire)) return;
  paused_ = false;
  // In a child, the std::thread object is the parent's joined one: empty.
  start_thread();
}

std::unique_ptr<LogWriter> LogWriter::open(const std::string& path, size_t capacity) {
  int fd = ::open(path.c_str(), kOpenFlags, 0644);
  if (fd < 0) throw open_error(errno, path);
  try {
    return std::unique_ptr<LogWriter>(new LogWriter(fd, true, path, capacity));
  } catch (...) {
    ::close(fd);
    throw;
  }
}

std::unique_ptr<LogWriter> LogWriter::adopt(int fd, size_t capacity) {
  return std::unique_ptr<LogWriter>(new LogWriter(fd, true, std::string(), capacity));
}

LogWriter::~LogWriter() {
  stop();
  drop_unwritten();
  if (owned_) ::close(fd_);
}

bool LogWriter::push(std::string_view line) {
  if (closed_.load(std::memory_order_acquire)) {
    channel_.count_dropped(1);
    return false;
  }
  if (!channel_.push(line)) return false;
  accepted_.fetch_add(1, std::memory_order_release);
  return true;
}

bool LogWriter::flush(std::chrono::milliseconds timeout) {
  uint64_t target = accepted_.load(std::memory_order_acquire);
  int64_t until = steady_ms() + timeout.count();
  while (done_.load(std::memory_order_acquire) < target) {
    if (closed_.load(std::memory_order_acquire) || steady_ms() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

bool LogWriter::reopen() {
  if (path_.empty()) return false;
  int fresh = ::open(path_.c_str(), kOpenFlags, 0644);
  if (fresh < 0) throw open_error(errno, path_);
  // dup3 swaps what fd_ refers to in one step: a writev under way finishes
  // on the old file, the next one goes to the new.
  int err = ::dup3(fresh, fd_, O_CLOEXEC) < 0 ? errno : 0;
  ::close(fresh);
  if (err != 0) throw open_error(err, path_);
  return true;
}

void LogWriter::stop(std::chrono::milliseconds give_up) {
  if (::getpid() != owner_) return stop_in_fork_child();
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (!stopping_.load(std::memory_order_relaxed)) {
      give_up_at_ms_.store(steady_ms() + give_up.count(), std::memory_order_relaxed);
      stopping_.store(true, std::memory_order_release);
    }
  }
  stop_cv_.notify_all();
  std::lock_guard<std::mutex> lock(join_mu_);
  if (paused_ && !closed_.exchange(true, std::memory_order_acq_rel)) {
    // No thread to drain the channel: write what waits here.
    std::vector<std::string> batch(kBatch);
    while (size_t n = channel_.take(batch.data(), kBatch)) write_batch(batch.data(), n);
    return;
  }
  if (!thread_.joinable()) return;
  thread_.join();
  closed_.store(true, std::memory_order_release);
  drop_unwritten();
}

// The thread did not follow the fork, and a mutex it held then stays
// locked here: write what this process queued without either.
void LogWriter::stop_in_fork_child() {
  if (closed_.exchange(true, std::memory_order_acq_rel)) return;
  std::vector<std::string> batch(kBatch);
  while (size_t n = channel_.take(batch.data(), kBatch)) write_batch(batch.data(), n);
  if (thread_.joinable()) thread_.detach();  // the parent's thread; nothing of it runs here
}

// A push that raced stop() past the thread's last drain is lost: count it.
void LogWriter::drop_unwritten() {
  std::vector<std::string> rest(kBatch);
  while (size_t n = channel_.take(rest.data(), kBatch)) channel_.count_dropped(n);
}

void LogWriter::run() {
  pthread_setname_np(pthread_self(), "kino-log-writer");
  std::vector<std::string> batch(kBatch);
  auto idle = std::chrono::milliseconds(1);
  for (;;) {
    if (size_t n = channel_.take(batch.data(), kBatch)) {
      write_batch(batch.data(), n);
      done_.fetch_add(n, std::memory_order_release);
      idle = std::chrono::milliseconds(1);
      continue;
    }
    if (stopping_.load(std::memory_order_acquire)) {
      // Everything pushed before stop() is in the channel or on its way
      // (counted in size() before it is enqueued): wait for those.
      if (channel_.size() == 0) return;
      std::this_thread::yield();
      continue;
    }
    std::unique_lock<std::mutex> lock(stop_mu_);
    stop_cv_.wait_for(lock, idle, [this] { return stopping_.load(std::memory_order_relaxed); });
    idle = std::min(idle * 2, kMaxIdle);
  }
}

void LogWriter::write_batch(std::string* lines, size_t n) {
  iovec iov[kBatch];
  for (size_t i = 0; i < n; ++i) iov[i] = {lines[i].data(), lines[i].size()};
  size_t first = 0;
  auto skip_written = [&] {
    while (first < n && iov[first].iov_len == 0) ++first;
  };
  skip_written();
  while (first < n) {
    size_t count = std::min<size_t>(n - first, IOV_MAX);
    // A pipe keeps a write of at most PIPE_BUF bytes whole; a longer one
    // may be cut where the pipe filled, and another writer's lines (the
    // other processes of a group, Ruby's $stdout) land in the cut. So a
    // pipe gets whole lines, at most PIPE_BUF bytes a write.
    if (pipe_) count = lines_within_pipe_buf(iov + first, count);
    ssize_t written = write_some(iov + first, count);
    if (written < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if ((err == EAGAIN || err == EWOULDBLOCK) && wait_writable()) continue;
      if (err == EPIPE) {
        // The SIGPIPE this write raised is pending on this thread (it is
        // blocked here): take it, so it is never delivered.
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        timespec now{0, 0};
        sigtimedwait(&pipe, nullptr, &now);
      }
      channel_.count_dropped(n - first);
      return;
    }
    writes_.fetch_add(1, std::memory_order_relaxed);
    auto left = static_cast<size_t>(written);
    while (left > 0) {
      size_t step = std::min(left, iov[first].iov_len);
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + step;
      iov[first].iov_len -= step;
      left -= step;
      skip_written();
    }
    skip_written();
  }
}

// A socket is written without blocking whatever its flags (they are
// shared with whoever handed it over), and never raises SIGPIPE.
ssize_t LogWriter::write_some(iovec* iov, size_t count) {
  if (!socket_) return ::writev(fd_, iov, static_cast<int>(count));
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = count;
  return ::sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

// A non-blocking descriptor that is full (a pipe nobody reads): wait for
// room. Lines pushed meanwhile are dropped at the full channel. Once
// stop() has waited long enough the rest is given up on.
bool LogWriter::wait_writable() {
  for (;;) {
    if (stopping_.load(std::memory_order_acquire) &&
        steady_ms() >= give_up_at_ms_.load(std::memory_order_relaxed))
      return false;
    pollfd p{fd_, POLLOUT, 0};
    int ready = ::poll(&p, 1, 20);
    if (ready > 0) return (p.revents & (POLLERR | POLLNVAL)) == 0 || (p.revents & POLLOUT) != 0;
    if (ready < 0 && errno != EINTR) return false;
  }
}

}  // namespace kino
