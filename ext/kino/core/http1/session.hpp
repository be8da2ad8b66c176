// HTTP/1 on one connection: feeds the bytes read to the parser, turns them
// into RequestCtx records for the workers, one at a time so pipelined
// requests are answered in order, and answers itself what never reaches
// them (a malformed request, a body that stalls, a full spool). Responses
// come back through the connection (its ResponseSink); the session hears
// when one has been written, and decides whether the next request may
// follow.
//
// The connection owns the session, the socket, the outbox and the deadlines;
// everything here runs on the connection's strand but body_arriving().
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

#include "handoff/request_ctx.hpp"
#include "http1/access_log.hpp"
#include "http1/deadlines.hpp"
#include "http1/request_parser.hpp"
#include "http1/session_connection.hpp"
#include "util/asio.hpp"

namespace kino {

class Server;

class Http1Session {
 public:
  // `https`: the connection is over TLS (its requests say so to the app).
  Http1Session(SessionConnection& connection, Server& server, Deadlines& deadlines, std::string_view peer,
               uint16_t local_port, bool https = false);
  Http1Session(const Http1Session&) = delete;
  Http1Session& operator=(const Http1Session&) = delete;

  // The connection read `n` bytes into its input (n may be 0): parse what
  // is there.
  void on_read(size_t n);
  // The read side ended with `ec` (end of stream, a reset). Returns whether
  // the connection should close now.
  bool on_read_end(const error_code& ec);
  // Whether the connection should go on reading: always between requests,
  // and while a streamed upload arrives; never while a response is awaited.
  bool wants_input() const noexcept { return !awaiting_response() || streamed_upload_; }

  // The read side's Head or Body deadline, or the app's, has passed.
  void on_expired(Deadlines::Expired expired);

  // The first bytes of a response reached the connection's strand.
  void response_begins() noexcept;
  // The app began reading the body of `which`, whose client waits for
  // `100 Continue` (ResponseSink::send_continue).
  void continue_wanted(const RequestCtx* which);
  // The end of a response was written (or dropped with the connection).
  void response_done(bool keep_alive);
  // The connection closed: nothing more arrives, nothing more is sent.
  void on_closed();
  // With the access log on: the response to `req` (the connection's
  // current request) is over, `bytes_sent` of it written; log it.
  void log_response(const RequestCtx& req, uint64_t bytes_sent);

  // Whether the connection may be closed at once by a drain: no response is
  // awaited and no upload is under way (a request begun is read to its end
  // and answered, as one with the workers is).
  bool idle() const noexcept {
    return !awaiting_response() && deadlines_.waiting() != Deadlines::Waiting::Body;
  }

  // Any thread. A body being read before its request goes to the workers
  // (or the answer to one refused mid-body): not in flight yet, but a drain
  // must wait for it. Cleared only once the request counts as in flight, so
  // a drain that reads this before `in_flight` never sees neither.
  bool body_arriving() const noexcept {
    RequestPhase p = phase_.load(std::memory_order_seq_cst);
    return p == RequestPhase::ReadingBody || p == RequestPhase::RefusedMidBody;
  }

  // Whether a response is what the connection waits for.
  bool awaiting_response() const noexcept {
    RequestPhase p = phase();
    return p != RequestPhase::ReadingHead && p != RequestPhase::ReadingBody;
  }

 private:
  // Where the connection's current request stands. A request whose body
  // streams to the app is WithApp or Responding while streamed_upload_
  // holds it.
  enum class RequestPhase : uint8_t {
    ReadingHead,     // no request yet, or its head arriving
    ReadingBody,     // its body read here before any worker sees it: spool
                     // room claimed, any 100 sent
    Refused,         // answered by the connection itself, never in flight
    RefusedMidBody,  // the same, refused while its body arrived
    WithApp,         // with the workers, counted in flight
    Responding,      // ...and bytes of its response were queued
  };
  RequestPhase phase() const noexcept { return phase_.load(std::memory_order_relaxed); }
  // Only the strand writes the phase; Server::stop reads it (body_arriving).
  void set_phase(RequestPhase p) noexcept { phase_.store(p, std::memory_order_seq_cst); }

  void process_input();
  bool admit_body(RequestCtx& req);
  bool should_stream_upload(const RequestCtx& req) const;
  void dispatch(RequestRef req);
  void start_streamed_upload(RequestRef req);
  void fail_streamed_upload(int status, const char* reason);
  void arm_app_deadline();
  void reject(int status, std::string_view reason, RequestRef req = {});
  void expect(Deadlines::Waiting what);
  void note_request_began();

  SessionConnection& connection_;
  Server& server_;
  Deadlines& deadlines_;
  RequestParser parser_;
  std::atomic<RequestPhase> phase_{RequestPhase::ReadingHead};
  RequestRef in_flight_;  // the request with the workers, while request_timeout may answer it
  // A request already with the workers whose body is still arriving: the
  // connection goes on reading for it, and answers it itself (408, 413,
  // 400) if the body goes wrong.
  RequestRef streamed_upload_;
  // Null unless log_requests is on; then the first byte of each request is
  // timed (steady_ns: the only clock read the access log adds before the
  // response is written).
  AccessLog* access_log_;
  int64_t request_began_ns_ = 0;
};

}  // namespace kino
