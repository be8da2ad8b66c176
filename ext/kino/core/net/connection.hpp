// One client connection, in the shape of Boost.Beast's async session: kept
// alive by shared_from_this in every pending handler, all socket work on
// the connection's strand (the socket's executor). It owns and wires four
// parts: the transport (the socket bytes travel over), the protocol
// session (HTTP/1: what the bytes mean, one request in flight at a time so
// pipelined requests are answered in order), the outbox (response bytes
// waiting for the socket) and the deadlines. It runs the read and write
// loops, the lingering close and the close, and is the ResponseSink the
// responder writes to.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "handoff/response_sink.hpp"
#include "http1/deadlines.hpp"
#include "http1/session.hpp"
#include "http1/session_connection.hpp"
#include "net/outbox.hpp"
#include "net/transport.hpp"
#include "util/asio.hpp"
#include "util/memory.hpp"

namespace kino {

class Server;

class Connection : public ResponseSink,
                   public SessionConnection,
                   public std::enable_shared_from_this<Connection>,
                   public NativeAllocated {
 public:
  using Socket = Transport::Socket;

  // Over TLS (a TlsTransport) the handshake comes first, within the
  // server's tls_handshake_timeout.
  Connection(std::shared_ptr<Server> server, Transport transport, std::string_view peer, uint16_t local_port);
  ~Connection() override;

  void start();

  // Any thread: close if no request is being handled (drain), or now.
  void close_if_idle();
  // Any thread: see Http1Session::body_arriving.
  bool body_arriving() const { return session_.body_arriving(); }
  void close_now() override;

  // The earliest time (steady clock, ms) something is due on this
  // connection; the server's sweeper reads it from its own thread and
  // calls check_deadline() once it has passed.
  int64_t deadline_ms() const noexcept { return deadlines_.due_ms(); }
  void check_deadline();  // any thread: re-checks on the strand

  // ResponseSink, called from the thread that claimed the response.
  void send(Bytes bytes, bool last, bool keep_alive, RequestRef logged) override;
  void send_pieces(NativeVector<OutPiece> pieces, bool last, bool keep_alive, RequestRef logged) override;
  bool wait_writable(std::chrono::steady_clock::time_point deadline) override;
  void send_continue(const RequestCtx& req) override;
  bool open() const override { return open_.load(std::memory_order_acquire); }
  bool peer_gone() const override;
  bool draining() const override;
  bool backlogged() const override;
  void log(std::string_view line) override;

  // SessionConnection, for the protocol session, on the strand.
  ReadBuffer& input() noexcept override { return inbuf_; }
  bool closed() const noexcept override { return closed_; }
  void read_more() override;
  void send_interim(Bytes bytes) override;
  void linger(bool input_pending) override;
  std::shared_ptr<ResponseSink> sink() override { return shared_from_this(); }

 private:
  using Waiting = Deadlines::Waiting;

  void on_handshake(const error_code& ec);
  void on_read(const error_code& ec, size_t n);
  void linger_read();
  void enqueue(Outbox::Item item);
  void enqueue_pieces(NativeVector<OutPiece> pieces, bool last, bool keep_alive);
  void do_write();
  void on_write(const error_code& ec, size_t n);
  void end_response(bool keep_alive);
  void close_socket();
  void on_deadline();
  void on_linger_read(const error_code& ec, size_t n);
  void end_tls();

  // Errors that are the client's doing (it left, it spoke no TLS): not
  // worth a log line each.
  static bool client_trouble(const error_code& ec) noexcept;

  std::shared_ptr<Server> server_;
  Transport transport_;
  ReadBuffer inbuf_;
  Outbox outbox_;
  Deadlines deadlines_;
  Http1Session session_;

  // The request whose response is being written, when the access log wants
  // it (see ResponseSink::send), and the bytes written for that response.
  RequestRef logged_;
  uint64_t response_bytes_ = 0;

  bool reading_ = false;
  bool writing_ = false;
  bool closed_ = false;
  bool tls_ending_ = false;     // close_notify sent (TLS linger)
  bool linger_drains_ = false;  // TLS linger: read to the client's end first
  std::atomic<bool> open_{true};
};

}  // namespace kino
