// One client connection, in the shape of Boost.Beast's async session: kept
// alive by shared_from_this in every pending handler, all socket work on
// the connection's strand (the socket's executor), one request in flight
// at a time so pipelined requests are answered in order.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "util/asio.hpp"
#include "util/memory.hpp"
#include "http1/request_parser.hpp"
#include "handoff/response_sink.hpp"
#include "net/deadlines.hpp"
#include "net/outbox.hpp"

namespace kino {

class Server;

class Connection : public ResponseSink,
                   public std::enable_shared_from_this<Connection>,
                   public NativeAllocated {
 public:
  using Socket = asio::generic::stream_protocol::socket;

  Connection(std::shared_ptr<Server> server, Socket socket, std::string_view peer,
             uint16_t local_port);
  ~Connection() override;

  void start();

  // Any thread: close if no request is being handled (drain), or now.
  void close_if_idle();
  // A body being read before its request goes to the workers (or the
  // answer to one refused mid-body): not in flight yet, but a drain must
  // wait for it. Cleared only once the request counts as in flight, so a
  // drain that reads this before `in_flight` never sees neither.
  bool body_arriving() const {
    RequestPhase p = phase_.load(std::memory_order_seq_cst);
    return p == RequestPhase::ReadingBody || p == RequestPhase::RefusedMidBody;
  }
  void close_now();

  // The earliest time (steady clock, ms) something is due on this
  // connection; the server's sweeper reads it from its own thread and
  // calls check_deadline() once it has passed.
  int64_t deadline_ms() const noexcept { return deadlines_.due_ms(); }
  void check_deadline();  // any thread: re-checks on the strand

  // ResponseSink, called from the thread that claimed the response.
  void send(Bytes bytes, bool last, bool keep_alive) override;
  bool wait_writable(std::chrono::steady_clock::time_point deadline) override;
  void send_continue(const RequestCtx& req) override;
  bool open() const override { return open_.load(std::memory_order_acquire); }
  bool peer_gone() const override;
  bool draining() const override;
  bool backlogged() const override;
  void log(std::string_view line) override;

 private:
  void do_read();
  void on_read(const error_code& ec, size_t n, size_t offset);
  void process_input();
  bool admit_body(RequestCtx& req);
  bool should_stream_upload(const RequestCtx& req) const;
  void dispatch(RequestRef req);
  void start_streamed_upload(RequestRef req);
  void fail_streamed_upload(int status, const char* reason);
  void arm_app_deadline();
  void reject(int status, std::string_view reason, RequestRef req = {});
  void enqueue(Outbox::Item item);
  void do_write();
  void on_write(const error_code& ec);
  void response_done(bool keep_alive);
  void close_socket();
  void on_deadline();
  using Waiting = Deadlines::Waiting;
  void linger();
  void on_linger_read(const error_code& ec, size_t n);
  void expect(Waiting what);

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
  // Its response is what the connection waits for: nothing more is read
  // (but a streamed upload's body).
  bool awaiting_response() const noexcept {
    RequestPhase p = phase();
    return p != RequestPhase::ReadingHead && p != RequestPhase::ReadingBody;
  }

  std::shared_ptr<Server> server_;
  Socket socket_;
  RequestParser parser_;

  // Bytes read but not yet parsed are [in_start_, inbuf_.size()).
  Bytes inbuf_;
  size_t in_start_ = 0;

  Outbox outbox_;

  bool reading_ = false;
  bool writing_ = false;
  std::atomic<RequestPhase> phase_{RequestPhase::ReadingHead};
  RequestRef in_flight_;  // the request with the workers, while request_timeout may answer it
  // A request already with the workers whose body is still arriving: the
  // connection goes on reading for it, and answers it itself (408, 413,
  // 400) if the body goes wrong.
  RequestRef streamed_upload_;
  bool closed_ = false;

  Deadlines deadlines_;

  std::atomic<bool> open_{true};
  int peer_fd_ = -1;  // the socket's descriptor, for peer_gone() from other threads
};

}  // namespace kino
