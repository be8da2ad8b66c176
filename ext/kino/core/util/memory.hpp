// Native allocations of the core go through mimalloc explicitly, by
// allocator type, instead of replacing operator new for the whole
// extension: libstdc++ instantiates some templates inside its own library,
// and memory allocated there must never be freed by another allocator.
#pragma once

#include <mimalloc.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kino {

// Under AddressSanitizer the standard allocator is used instead, so the
// sanitizer sees (and checks) every allocation of the core.
#if defined(__SANITIZE_ADDRESS__)
#define KINO_SYSTEM_ALLOCATOR 1
template <class T>
using NativeAllocator = std::allocator<T>;
#else
template <class T>
using NativeAllocator = mi_stl_allocator<T>;
#endif

// Request and response bytes: heads, bodies, serialized responses.
using Bytes = std::basic_string<char, std::char_traits<char>, NativeAllocator<char>>;

template <class T>
using NativeVector = std::vector<T, NativeAllocator<T>>;

inline void append(Bytes& out, std::string_view s) { out.append(s.data(), s.size()); }

inline std::string_view view(const Bytes& b) { return {b.data(), b.size()}; }

// moodycamel queues allocate their blocks through their traits: the
// request queue's and the log channel's come from mimalloc too.
struct NativeQueueTraits {
#ifndef KINO_SYSTEM_ALLOCATOR
  static void* malloc(std::size_t n) { return mi_malloc(n); }
  static void free(void* p) { mi_free(p); }
#else
  static void* malloc(std::size_t n) { return std::malloc(n); }
  static void free(void* p) { std::free(p); }
#endif
};

// Base for objects created once per request or connection: their own
// storage comes from mimalloc too.
struct NativeAllocated {
#ifndef KINO_SYSTEM_ALLOCATOR
  static void* operator new(std::size_t n) { return mi_new(n); }
  static void operator delete(void* p) noexcept { mi_free(p); }
#endif
};

}  // namespace kino
