#include "handoff/request_body.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/steady_clock.hpp"

namespace kino {

namespace {

// An unlinked file: nothing to clean up if the process dies, and no other
// process can open it by name. O_TMPFILE where the filesystem has it.
int open_spool(const std::string& dir) {
  int fd = -1;
#ifdef O_TMPFILE
  fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
#endif
  std::string path = dir + "/kino-body-XXXXXX";
  fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd >= 0) ::unlink(path.c_str());
  return fd;
}

constexpr const char* kSpoolFull = "the server's spool for request bodies is full; retry later";
constexpr const char* kNoDescriptor = "no descriptor is free for spooling the request body; retry later";

}  // namespace

bool SpoolBudget::take_bytes(uint64_t n) noexcept {
  uint64_t now = bytes.load(std::memory_order_relaxed);
  do {
    if (max_bytes > 0 && (now + n < now || now + n > max_bytes)) return false;
  } while (!bytes.compare_exchange_weak(now, now + n, std::memory_order_acq_rel));
  return true;
}

// Connections and spool files are counted at different moments on
// different threads, so two spools may both take the last descriptor:
// the budget is a bound within a few descriptors, which the headroom left
// by max_connections (a tenth of the open-file limit) absorbs.
bool SpoolBudget::take_file() noexcept {
  if (max_descriptors > 0 && descriptors() >= max_descriptors) return false;
  files.fetch_add(1, std::memory_order_acq_rel);
  return true;
}

RequestBody::RequestBody(const BodyStorage& storage, uint64_t expected_length)
    : storage_(storage), budget_(storage.budget), expected_(expected_length) {
  // Memory follows the bytes that came, not the length announced: a head
  // promising a body and sending none must cost next to nothing.
  constexpr uint64_t kReserveAhead = 16 * 1024;
  if (expected_length > 0 && expected_length <= storage_.memory_limit)
    memory_.reserve(static_cast<size_t>(std::min(expected_length, kReserveAhead)));
}

RequestBody::~RequestBody() {
  if (fd_ >= 0) ::close(fd_);
  release_spool_locked();  // nobody else holds the body any more
}

// Room for `total` bytes of spool, and a descriptor for the file. Null when
// granted, otherwise why not.
const char* RequestBody::claim_spool_locked(uint64_t total) {
  if (!budget_) return nullptr;
  uint64_t more = total > reserved_ ? total - reserved_ : 0;
  if (more && !budget_->take_bytes(more)) return kSpoolFull;
  if (!holds_file_ && !budget_->take_file()) {
    if (more) budget_->give_bytes(more);
    return kNoDescriptor;
  }
  holds_file_ = true;
  reserved_ += more;
  return nullptr;
}

void RequestBody::release_spool_locked() {
  if (!budget_) return;
  if (reserved_) budget_->give_bytes(reserved_);
  reserved_ = 0;
  if (holds_file_) budget_->give_file();
  holds_file_ = false;
}

bool RequestBody::reserve_spool() {
  std::lock_guard<std::mutex> lock(mu_);
  if (failure_status_) return false;
  if (discarded_ || expected_ <= storage_.memory_limit) return true;
  if (budget_ && !budget_->has_room(expected_ > reserved_ ? expected_ - reserved_ : 0)) {
    fail_locked(503, kSpoolFull);
    return false;
  }
  if (const char* refusal = claim_spool_locked(reserved_)) {
    fail_locked(503, refusal);
    return false;
  }
  return true;
}

bool RequestBody::write_all(std::string_view bytes, uint64_t offset) {
  while (!bytes.empty()) {
    ssize_t n = ::pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

// Past the memory limit the bytes so far move to the spool file, and from
// then on every byte goes there.
bool RequestBody::spool_locked(std::string_view more) {
  if (fd_ < 0) {
    fd_ = open_spool(storage_.spool_dir);
    if (fd_ < 0 || !write_all(view(memory_), 0)) return false;
    Bytes().swap(memory_);
  }
  return write_all(more, size_);
}

bool RequestBody::append(std::string_view bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (discarded_ || failure_status_) return !failure_status_;
  // A body announced as longer than the limit goes to the file from its
  // first byte: buffering a mebibyte only to copy it out would make every
  // large upload cost that much memory while it starts.
  bool in_memory =
      fd_ < 0 && expected_ <= storage_.memory_limit && size_ + bytes.size() <= storage_.memory_limit;
  if (in_memory) {
    memory_.append(bytes.data(), bytes.size());
  } else if (const char* refusal = claim_spool_locked(size_ + bytes.size())) {
    fail_locked(503, refusal);
    return false;
  } else if (!spool_locked(bytes)) {
    spool_error_ = "could not spool the request body to ";
    spool_error_ += storage_.spool_dir;
    spool_error_ += ": ";
    spool_error_ += std::strerror(errno);
    fail_locked(500, spool_error_.c_str());
    return false;
  }
  size_ += bytes.size();
  arrived_.notify_all();
  return true;
}

void RequestBody::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (failure_status_) return;
  completed_ms_.store(steady_ms(), std::memory_order_release);
  complete_.store(true, std::memory_order_release);
  arrived_.notify_all();
}

void RequestBody::fail(int status, const char* reason) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_locked(status, reason);
}

void RequestBody::fail_locked(int status, const char* reason) {
  if (failure_status_ || complete_.load(std::memory_order_relaxed)) return;
  failure_status_ = status;
  failure_reason_ = reason;
  failed_.store(true, std::memory_order_release);
  arrived_.notify_all();
}

uint64_t RequestBody::received() const {
  std::lock_guard<std::mutex> lock(mu_);
  return size_;
}

bool RequestBody::spooled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fd_ >= 0;
}

void RequestBody::discard() {
  std::unique_lock<std::mutex> lock(mu_);
  // Another thread of the app may be in a read of the file right now.
  arrived_.wait(lock, [&] { return reading_ == 0; });
  discarded_ = true;
  Bytes().swap(memory_);
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  release_spool_locked();
  arrived_.notify_all();
}

void RequestBody::owe_continue(std::weak_ptr<ResponseSink> sink) {
  std::lock_guard<std::mutex> lock(mu_);
  continue_sink_ = std::move(sink);
  continue_owed_.store(true, std::memory_order_release);
}

std::shared_ptr<ResponseSink> RequestBody::take_continue() {
  if (!continue_owed_.load(std::memory_order_acquire)) return nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  if (!continue_owed_.exchange(false, std::memory_order_acq_rel)) return nullptr;
  std::shared_ptr<ResponseSink> sink = continue_sink_.lock();
  continue_sink_.reset();
  return sink;
}

RequestBody::ReadResult RequestBody::read(char* out, size_t max,
                                          std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  auto ready = [&] {
    return discarded_ || read_pos_ < size_ || failure_status_ || complete_.load(std::memory_order_relaxed);
  };
  if (!arrived_.wait_until(lock, deadline, ready)) return {ReadStatus::Waiting, 0};
  if (discarded_) return {ReadStatus::End, 0};
  if (read_pos_ == size_) return {failure_status_ ? ReadStatus::Failed : ReadStatus::End, 0};
  size_t n = static_cast<size_t>(size_ - read_pos_ < max ? size_ - read_pos_ : max);
  if (fd_ < 0) {
    std::memcpy(out, memory_.data() + read_pos_, n);
    read_pos_ += n;
    return {ReadStatus::Data, n};
  }
  // The disk read happens outside the lock, so the connection appending
  // more is never held up by it. That is safe: the bytes below size_ never
  // change, and only the reader's own thread discards (closes the file).
  // The range is taken before the lock is let go, so two threads of an app
  // reading the same input (misuse, but possible) never get the same bytes.
  int fd = fd_;
  uint64_t pos = read_pos_;
  read_pos_ += n;
  ++reading_;  // discard() waits for every such read before closing the file
  lock.unlock();
  size_t done = 0;
  int error = 0;
  while (done < n) {
    ssize_t got = ::pread(fd, out + done, n - done, static_cast<off_t>(pos + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      error = got < 0 ? errno : EIO;
      break;
    }
    done += static_cast<size_t>(got);
  }
  lock.lock();
  --reading_;
  arrived_.notify_all();
  if (error) {
    if (!failure_status_) {
      spool_error_ = "could not read the spooled request body: ";
      spool_error_ += std::strerror(error);
      failure_status_ = 500;
      failure_reason_ = spool_error_.c_str();
      failed_.store(true, std::memory_order_release);
    }
    return {ReadStatus::Failed, 0};
  }
  return {ReadStatus::Data, n};
}

void RequestBody::rewind() {
  std::lock_guard<std::mutex> lock(mu_);
  read_pos_ = 0;
}

int RequestBody::failure_status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failure_status_;
}

const char* RequestBody::failure_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failure_reason_;
}

std::string_view RequestBody::in_memory() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!complete_.load(std::memory_order_relaxed) || fd_ >= 0 || discarded_) return {};
  return view(memory_);
}

}  // namespace kino
