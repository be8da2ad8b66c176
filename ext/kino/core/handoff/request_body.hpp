// A request body on its way from the connection to the app. The
// connection's strand appends bytes as they arrive; the worker that took
// the request reads them: by default once the last byte is in, and with
// stream_request_bodies possibly before (the app may start on a large
// upload at once). A body of up to `memory_limit` bytes lives in memory; a
// longer one goes to an unlinked temporary file (from its first byte when
// its Content-Length says so, from the limit on for a chunked one), so an
// upload costs disk, not RAM, however large it is, within the server's
// SpoolBudget. Every byte stays until the body is discarded, which is what
// makes `rewind` possible.
#pragma once

#include <atomic>
#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "handoff/response_sink.hpp"
#include "util/memory.hpp"

namespace kino {

// What every spooled body of one server shares: the bytes it may put on
// disk at once, and the descriptors its spool files may hold. A spool file
// is a descriptor a connection already counted does not pay for, so it is
// counted with the server's connections against one descriptor budget
// (`max_descriptors`, which is max_connections): together they stay
// within it, and a listener at the budget stops accepting.
struct SpoolBudget {
  uint64_t max_bytes = 0;       // 0: no limit
  int64_t max_descriptors = 0;  // connections + spool files; 0: no limit
  std::atomic<uint64_t> bytes{0};
  std::atomic<int64_t> files{0};
  // The server's open connections (null: none counted, as in unit tests).
  const std::atomic<int64_t>* connections = nullptr;
  // Called, on whatever thread lets a spool file go, so a listener paused
  // at the descriptor budget can resume. Set before the first connection.
  std::function<void()> file_released;

  bool take_bytes(uint64_t n) noexcept;
  // Whether n more bytes would fit now; takes nothing.
  bool has_room(uint64_t n) const noexcept {
    uint64_t now = bytes.load(std::memory_order_relaxed);
    return max_bytes == 0 || (now + n >= now && now + n <= max_bytes);
  }
  void give_bytes(uint64_t n) noexcept { bytes.fetch_sub(n, std::memory_order_acq_rel); }
  bool take_file() noexcept;
  void give_file() noexcept {
    files.fetch_sub(1, std::memory_order_acq_rel);
    if (file_released) file_released();
  }
  int64_t descriptors() const noexcept {
    int64_t open = connections ? connections->load(std::memory_order_relaxed) : 0;
    return open + files.load(std::memory_order_relaxed);
  }
};

struct BodyStorage {
  BodyStorage() = default;
  BodyStorage(size_t limit, std::string dir, std::shared_ptr<SpoolBudget> shared = nullptr)
      : memory_limit(limit), spool_dir(std::move(dir)), budget(std::move(shared)) {}

  size_t memory_limit{};           // bytes kept in memory before spooling (body_buffer_size)
  std::string spool_dir = "/tmp";  // where the unlinked spool file is made
  // Shared by every body of a server; null: no limits (unit tests).
  std::shared_ptr<SpoolBudget> budget;
};

class RequestBody : public NativeAllocated {
 public:
  RequestBody(const BodyStorage& storage, uint64_t expected_length);
  RequestBody(const RequestBody&) = delete;
  RequestBody& operator=(const RequestBody&) = delete;
  ~RequestBody();

  // --- The producer: the connection's strand. ---

  // Stores bytes; false when they could not be spooled (the body is then
  // failed with status 500 and a reason naming the error, or 503 when the
  // server's spool budget is spent).
  bool append(std::string_view bytes);
  // At the head of an announced body past the memory limit: refuses it at
  // once when the spool could not take its whole length now, and claims
  // its file's descriptor. The bytes themselves are claimed as they
  // arrive, never ahead: a head announcing a large body and sending
  // nothing must not hold room that real uploads need. False (and the
  // body failed with 503) when refused; true for a body with nothing to
  // spool.
  bool reserve_spool();
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

  friend void intrusive_ptr_add_ref(RequestBody* b) noexcept {
    b->refs_.fetch_add(1, std::memory_order_relaxed);
  }
  friend void intrusive_ptr_release(RequestBody* b) noexcept {
    if (b->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete b;
  }

 private:
  bool spool_locked(std::string_view more);
  const char* claim_spool_locked(uint64_t total);
  void release_spool_locked();
  bool write_all(std::string_view bytes, uint64_t offset);
  void fail_locked(int status, const char* reason);

  const BodyStorage& storage_;
  // Held, not borrowed from storage_: a body can outlive its server (a
  // Ruby handle collected late) and still has to give its room back.
  const std::shared_ptr<SpoolBudget> budget_;
  const uint64_t expected_;
  uint64_t reserved_ = 0;    // spool bytes claimed from budget_
  bool holds_file_ = false;  // a descriptor claimed from budget_
  mutable std::mutex mu_;
  std::condition_variable arrived_;
  Bytes memory_;
  int fd_ = -1;
  uint64_t size_ = 0;      // bytes stored
  uint64_t read_pos_ = 0;  // the consumer's position
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
