// Bytes a response writes without copying them: a large body part lent by
// its owner (the binding lends a frozen Ruby string's bytes) to the
// connection that writes it. Copying a 10 KiB body into the outbox costs
// more than everything else on the way to the socket; lending it costs a
// counter.
//
// The owner keeps the bytes alive and unchanged while a Loan of the lease
// is out, and learns that none is out by asking (loaned_out), never by
// being called: the writer runs on an I/O thread, which must never run the
// owner's code (for the binding: never touch Ruby). A Loan is returned when
// its bytes are written, or dropped with the connection.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <thread>

#include "util/memory.hpp"

namespace kino {

class ResponseSink;

class ByteLease : public NativeAllocated {
 public:
  explicit ByteLease(std::string_view bytes) noexcept : bytes_(bytes) {}
  ByteLease(const ByteLease&) = delete;
  ByteLease& operator=(const ByteLease&) = delete;

  std::string_view bytes() const noexcept { return bytes_; }

  // Whether a Loan still reads the bytes. Once false it stays false (no
  // loan is made after the owner's respond call returns), and every read
  // of the bytes by a writer happened before it turned false.
  bool loaned_out() const noexcept { return loans_.load(std::memory_order_acquire) > 0; }

  // The owner must let the bytes go while a Loan is out (its ractor ends,
  // say): the sink the loan went to is closed, which returns every loan
  // it holds at once. Any thread.
  void recall() const;

  // Waits until no loan is out, or `deadline`; returns !loaned_out().
  bool wait_returned(std::chrono::steady_clock::time_point deadline) const {
    while (loaned_out()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

 private:
  friend class Loan;
  std::string_view bytes_;
  std::atomic<uint32_t> loans_{0};
  // Set when a loan is made, by the thread making it (the owner's).
  std::weak_ptr<ResponseSink> sink_;
};

using ByteLeaseRef = std::shared_ptr<ByteLease>;

// Some of a lease's bytes, held by the writer; returned on destruction.
class Loan {
 public:
  Loan() = default;
  Loan(ByteLeaseRef lease, std::string_view part, const std::shared_ptr<ResponseSink>& sink)
      : lease_(std::move(lease)), part_(part) {
    lease_->loans_.fetch_add(1, std::memory_order_relaxed);
    lease_->sink_ = sink;
  }
  Loan(Loan&& other) noexcept : lease_(std::move(other.lease_)), part_(other.part_) { other.part_ = {}; }
  Loan& operator=(Loan&& other) noexcept {
    if (this != &other) {
      give_back();
      lease_ = std::move(other.lease_);
      part_ = other.part_;
      other.part_ = {};
    }
    return *this;
  }
  Loan(const Loan&) = delete;
  Loan& operator=(const Loan&) = delete;
  ~Loan() { give_back(); }

  explicit operator bool() const noexcept { return lease_ != nullptr; }
  std::string_view bytes() const noexcept { return part_; }

 private:
  void give_back() noexcept {
    if (!lease_) return;
    // Release: the writer's reads of the bytes happen before the owner
    // sees the count fall (loaned_out's acquire).
    lease_->loans_.fetch_sub(1, std::memory_order_release);
    lease_.reset();
    part_ = {};
  }

  ByteLeaseRef lease_;
  std::string_view part_;
};

}  // namespace kino
