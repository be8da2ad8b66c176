// One parsed HTTP request, from the moment its head is complete until its
// response has been handed to the connection. It lives in native memory and
// is reference counted: the connection's parser creates it, the request
// queue carries one reference, and the Ruby handle built inside a worker
// takes that reference over. Nothing in it is a Ruby object, which is what
// lets any ractor pick it up.
#pragma once

#include <atomic>
#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

#include "handoff/request_body.hpp"
#include "util/memory.hpp"

namespace kino {

class ResponseSink;

// A request header already in its CGI form: `HTTP_ACCEPT`, `CONTENT_TYPE`.
// Repeated fields are merged into one value while parsing.
struct EnvHeader {
  Bytes key;
  Bytes value;
};

enum class BodyFraming : uint8_t { None, ContentLength, Chunked, UntilClose };

// What the claimant of a response decided when it sent the head; only the
// thread that won `claim()` reads or writes it.
struct ResponseState {
  BodyFraming framing = BodyFraming::None;
  bool started = false;
  bool finished = false;
  bool send_body = true;
  bool keep_alive = false;
  int status = 0;  // the final status sent
  uint64_t declared_length = 0;
  uint64_t body_written = 0;
};

class RequestCtx : public NativeAllocated {
 public:
  RequestCtx() = default;
  RequestCtx(const RequestCtx&) = delete;
  RequestCtx& operator=(const RequestCtx&) = delete;
  ~RequestCtx();

  // Request line.
  Bytes method;
  Bytes target;  // as sent: origin-form or absolute-form
  Bytes path;    // PATH_INFO: the path part of the target, still percent-encoded
  Bytes query;   // QUERY_STRING, without the '?'
  uint8_t http_major = 1;
  uint8_t http_minor = 1;

  NativeVector<EnvHeader> headers;
  // Null when the request has no body. Otherwise it may still be arriving
  // when the request reaches a worker (see RequestBody).
  BodyRef body;

  // Where the request was addressed: the absolute-form target's authority
  // wins over Host; both empty when neither was sent.
  Bytes server_name;
  Bytes server_port;

  Bytes peer_address;       // REMOTE_ADDR
  uint16_t local_port = 0;  // the port the connection was accepted on
  bool https = false;       // it came over TLS
  bool keep_alive = false;  // what the request itself allows
  bool head = false;        // HEAD: the response carries no body
  // `Expect: 100-continue` with a body: the client waits for our interim
  // answer before sending it, and gets it only if the app reads the body.
  bool expect_continue = false;

  // When Server::dispatch handed the request to the queue, in steady_ns();
  // 0 for a request answered without reaching the queue (400, 408, 413).
  int64_t queued_ns = 0;

  // When a worker took the request from the queue (steady_ns(); 0 until
  // then), and which worker thread slot holds it (ThreadSlots; -1 until
  // then, or for a taker without a slot). Written by the taking worker and
  // read by any thread (an I/O thread answering a 504, stats), so atomic.
  int64_t taken_ns() const noexcept { return taken_ns_.load(std::memory_order_relaxed); }
  int32_t taken_by_slot() const noexcept { return taken_by_slot_.load(std::memory_order_relaxed); }
  void mark_taken(int64_t now_ns) noexcept { taken_ns_.store(now_ns, std::memory_order_relaxed); }
  void mark_taken_by_slot(int32_t slot) noexcept { taken_by_slot_.store(slot, std::memory_order_relaxed); }

  // Set by the session when the access log is on: the end of the response
  // then carries the request back to its connection, which logs it.
  bool access_logged = false;

  // The connection that wants the answer; null in unit tests of parsing.
  std::shared_ptr<ResponseSink> sink;
  // The same connection, set with `sink` before the request is queued and
  // never written after: a worker asks it whether the client is still
  // there while the I/O thread may be resetting `sink` (a 504 won).
  std::weak_ptr<ResponseSink> peer;

  // Exactly one party may answer: the worker that took the request, or
  // whoever gives up on it (a supervisor, a timeout). The first to claim
  // wins; every later response for the same request is dropped.
  bool claim() noexcept { return !claimed_.exchange(true, std::memory_order_acq_rel); }
  bool claimed() const noexcept { return claimed_.load(std::memory_order_acquire); }

  ResponseState response;

  // The consumer's read of the body (see RequestBody::read); the first one
  // sends the `100 Continue` the client may be waiting for. End at once
  // for a request without a body.
  RequestBody::ReadResult read_body(char* out, size_t max, std::chrono::steady_clock::time_point deadline);

  // Set by the claimant when it sends a streamed head; any thread may read
  // it to learn that the response in progress belongs to a streaming
  // claimant (and so may be cut off by it).
  void mark_response_streamed() noexcept { response_streamed_.store(true, std::memory_order_release); }
  bool response_streamed() const noexcept { return response_streamed_.load(std::memory_order_acquire); }

  friend void intrusive_ptr_add_ref(RequestCtx* r) noexcept {
    r->refs_.fetch_add(1, std::memory_order_relaxed);
  }
  friend void intrusive_ptr_release(RequestCtx* r) noexcept {
    if (r->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete r;
  }
  uint32_t use_count() const noexcept { return refs_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> claimed_{false};
  std::atomic<bool> response_streamed_{false};
  std::atomic<uint32_t> refs_{0};
  std::atomic<int64_t> taken_ns_{0};
  std::atomic<int32_t> taken_by_slot_{-1};
};

using RequestRef = boost::intrusive_ptr<RequestCtx>;

}  // namespace kino
