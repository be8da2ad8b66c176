// A request body on its way from the connection to the app. The
// connection's strand appends bytes as they arrive; the worker that took
// the request reads them, possibly before the last byte is in (the app may
// start on a large upload at once). A body of up to `memory_limit` bytes
// lives in memory; a longer one goes to an unlinked temporary file (from
// its first byte when its Content-Length says so, from the limit on for a
// chunked one), so an upload costs disk, not RAM, however large it is. Every byte stays until the body
// is discarded, which is what makes `rewind` possible.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include <boost/smart_ptr/intrusive_ptr.hpp>

#include "memory.hpp"
#include "response_sink.hpp"

namespace kino {

struct BodyStorage {
  size_t memory_limit = 1u << 20;  // bytes kept in memory before spooling
  std::string spool_dir = "/tmp";  // where the unlinked spool file is made
};

class RequestBody : public NativeAllocated {
 public:
  RequestBody(const BodyStorage& storage, uint64_t expected_length);
  RequestBody(const RequestBody&) = delete;
  RequestBody& operator=(const RequestBody&) = delete;
  ~RequestBody();

  // --- The producer: the connection's strand. ---

  // Stores bytes; false when they could not be spooled (the body is then
  // failed with status 500 and a reason naming the error).
  bool append(std::string_view bytes);
  // The last byte has arrived.
  void finish();
  // The body will not arrive whole: a reader that runs out of bytes gets
  // this status and reason (a static string) instead of more data.
  void fail(int status, const char* reason);

  // --- Any thread. ---

  // The Content-Length, or 0 for a chunked body.
  uint64_t expected_length() const noexcept { return expected_; }
  bool complete() const noexcept { return complete_.load(std::memory_order_acquire); }
  bool failed() const noexcept { return failed_.load(std::memory_order_acquire); }
  uint64_t received() const;
  bool spooled() const;
  // Lets go of the bytes (memory and spool file) once nobody will read
  // them; later reads end at once.
  void discard();

  // The sender waits for `100 Continue` before sending the body, which
  // `sink` (the connection, held weakly) will send when asked. The first
  // reader to ask takes that duty: take_continue returns the sink exactly
  // once, and null if nothing is owed or the connection is gone. The
  // connection takes it back when body bytes come anyway.
  void owe_continue(std::weak_ptr<ResponseSink> sink);
  std::shared_ptr<ResponseSink> take_continue();
  bool continue_owed() const noexcept { return continue_owed_.load(std::memory_order_acquire); }

  // When the last byte arrived (steady clock, ms); 0 while incomplete.
  int64_t completed_ms() const noexcept { return completed_ms_.load(std::memory_order_acquire); }

  // --- The consumer: one reader at a time. ---

  enum class ReadStatus { Data, End, Failed, Waiting };
  struct ReadResult {
    ReadStatus status;
    size_t bytes;
  };
  // Copies up to `max` bytes from the read position into `out`. Waits
  // until `deadline` for bytes that have not arrived yet (Waiting if none
  // came); End once every byte was read, Failed when the body cannot be
  // completed (see failure_status / failure_reason).
  ReadResult read(char* out, size_t max, std::chrono::steady_clock::time_point deadline);
  // Back to the first byte.
  void rewind();
  // After Failed: what went wrong.
  int failure_status() const;
  const char* failure_reason() const;

  // The whole body, when it is complete and still in memory; used to hand
  // small bodies to the app in one piece. Empty otherwise.
  std::string_view in_memory() const;

  friend void intrusive_ptr_add_ref(RequestBody* b) noexcept { b->refs_.fetch_add(1, std::memory_order_relaxed); }
  friend void intrusive_ptr_release(RequestBody* b) noexcept {
    if (b->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete b;
  }

 private:
  bool spool_locked(std::string_view more);
  bool write_all(std::string_view bytes, uint64_t offset);
  void fail_locked(int status, const char* reason);

  const BodyStorage& storage_;
  const uint64_t expected_;
  mutable std::mutex mu_;
  std::condition_variable arrived_;
  Bytes memory_;
  int fd_ = -1;
  uint64_t size_ = 0;       // bytes stored
  uint64_t read_pos_ = 0;   // the consumer's position
  bool discarded_ = false;
  int reading_ = 0;  // reads of the spool file under way, unlocked
  int failure_status_ = 0;
  const char* failure_reason_ = "";
  std::string spool_error_;  // keeps the text failure_reason_ points to
  std::atomic<bool> complete_{false};
  std::atomic<bool> failed_{false};
  std::atomic<bool> continue_owed_{false};
  std::weak_ptr<ResponseSink> continue_sink_;  // under mu_
  std::atomic<int64_t> completed_ms_{0};
  std::atomic<uint32_t> refs_{0};
};

using BodyRef = boost::intrusive_ptr<RequestBody>;

}  // namespace kino
