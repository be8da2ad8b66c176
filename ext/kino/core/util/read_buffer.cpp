#include "util/read_buffer.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

#include "util/memory.hpp"

namespace kino {

namespace {

// mimalloc's malloc, like every other native allocation of the core (the
// system's under AddressSanitizer, see memory.hpp). Neither initialises.
char* allocate(size_t n) {
#ifndef KINO_SYSTEM_ALLOCATOR
  void* p = mi_malloc(n);
#else
  void* p = std::malloc(n);
#endif
  if (!p) throw std::bad_alloc();
  return static_cast<char*>(p);
}

void deallocate(char* p) noexcept {
#ifndef KINO_SYSTEM_ALLOCATOR
  mi_free(p);
#else
  std::free(p);
#endif
}

}  // namespace

ReadBuffer::~ReadBuffer() { deallocate(storage_); }

std::span<char> ReadBuffer::prepare(size_t min) {
  if (capacity_ - end_ < min) {
    size_t unread = size();
    if (capacity_ - unread >= min) {
      std::memmove(storage_, storage_ + start_, unread);
      ++compactions_;
    } else {
      size_t grown = capacity_ * 2;
      if (grown < unread + min) grown = unread + min;
      char* bigger = allocate(grown);
      if (unread > 0) std::memcpy(bigger, storage_ + start_, unread);
      deallocate(storage_);
      storage_ = bigger;
      capacity_ = grown;
      ++allocations_;
    }
    start_ = 0;
    end_ = unread;
  }
  return {storage_ + end_, capacity_ - end_};
}

}  // namespace kino
