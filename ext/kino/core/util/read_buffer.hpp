// Bytes read from a socket and not yet parsed. A std::string or vector
// resized before each read zero-fills the room it makes (16 KiB a read),
// and erasing a parsed prefix moves the rest each time: on a small request
// those two cost more than parsing it. This buffer instead hands out its
// free tail as it is (never initialised: the read writes it), and skips a
// parsed prefix by moving an offset. The unparsed bytes move to the front
// only when the free tail is too small for the next read, and the storage
// grows only when moving them would not make room: pipelined requests and a
// head longer than one read keep their bytes without a copy per request.
//
// Belongs to one connection's strand; no member is thread safe.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace kino {

class ReadBuffer {
 public:
  ReadBuffer() = default;
  ~ReadBuffer();
  ReadBuffer(const ReadBuffer&) = delete;
  ReadBuffer& operator=(const ReadBuffer&) = delete;

  // The bytes read and not yet consumed.
  const char* data() const noexcept { return storage_ + start_; }
  size_t size() const noexcept { return end_ - start_; }
  bool empty() const noexcept { return start_ == end_; }
  std::string_view unread() const noexcept { return {data(), size()}; }

  // The parser used the first `n` unread bytes (n <= size()). Once none
  // is left the next read starts at the front again, for free.
  void consume(size_t n) noexcept {
    start_ += n;
    if (start_ == end_) start_ = end_ = 0;
  }

  // Room for a read of at least `min` bytes after the unread ones (the whole
  // free tail, which may be larger), made by moving the unread bytes to the
  // front or, when that is not enough, by growing. Valid until the next
  // prepare, release or destruction; the bytes read go in with commit.
  std::span<char> prepare(size_t min);
  void commit(size_t n) noexcept { end_ += n; }  // n <= what prepare gave

  // Drops the unread bytes, keeping the storage.
  void clear() noexcept { start_ = end_ = 0; }

  size_t capacity() const noexcept { return capacity_; }
  // How many times storage was allocated, and unread bytes moved: the two
  // costs this buffer exists to avoid, counted for its tests.
  size_t allocations() const noexcept { return allocations_; }
  size_t compactions() const noexcept { return compactions_; }

 private:
  char* storage_ = nullptr;
  size_t capacity_ = 0;
  size_t start_ = 0;  // first unread byte
  size_t end_ = 0;    // one past the last byte read
  size_t allocations_ = 0;
  size_t compactions_ = 0;
};

}  // namespace kino
