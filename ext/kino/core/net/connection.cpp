#include "net/connection.hpp"

#include "server.hpp"
#include "util/steady_clock.hpp"

namespace kino {

namespace {
// A read asks for the whole free tail of the input buffer, at least this
// much: the first read of a connection allocates it, and a tail shorter
// than this (pipelined bytes waiting near the end) is made by moving them.
constexpr size_t kReadChunk = 16 * 1024;
}  // namespace

Connection::Connection(std::shared_ptr<Server> server, Transport transport, std::string_view peer,
                       uint16_t local_port)
    : server_(std::move(server)),
      transport_(std::move(transport)),
      outbox_(server_->config().write_high_water),
      deadlines_(server_->config()),
      session_(*this, *server_, deadlines_, peer, local_port, transport_.tls() != nullptr) {
  server_->counters().connections_accepted.fetch_add(1, std::memory_order_relaxed);
  server_->counters().connections_open.fetch_add(1, std::memory_order_relaxed);
}

Connection::~Connection() {
  if (!closed_) server_->connection_closed();
  server_->untrack(this);
}

void Connection::start() {
  server_->track(shared_from_this());
  if (TlsTransport* tls = transport_.tls()) {
    // The request's clocks start once the handshake is done; until then
    // only the handshake's runs, so a stalled one cannot pin the slot.
    deadlines_.handshake(steady_ms());
    asio::dispatch(transport_.executor(), [self = shared_from_this(), tls] {
      tls->async_handshake([self](const error_code& ec) { self->on_handshake(ec); });
    });
    return;
  }
  deadlines_.begin_request(steady_ms(), false);
  deadlines_.expect(Waiting::FirstByte, steady_ms());
  // The accept handler runs on the listener's strand; move onto ours.
  asio::dispatch(transport_.executor(), [self = shared_from_this()] { self->read_more(); });
}

void Connection::on_handshake(const error_code& ec) {
  if (closed_) return;
  if (ec) {
    // Plaintext on the TLS port, an old protocol, no common cipher: the
    // client hears an alert (or nothing); the server says nothing.
    if (!client_trouble(ec)) server_->report(ec, "tls handshake");
    close_socket();
    return;
  }
  deadlines_.begin_request(steady_ms(), false);
  deadlines_.expect(Waiting::FirstByte, steady_ms());
  read_more();
}

bool Connection::client_trouble(const error_code& ec) noexcept {
  return ec == asio::error::eof || ec == asio::error::operation_aborted ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::ssl::error::stream_truncated || ec.category() == asio::error::get_ssl_category();
}

void Connection::read_more() {
  if (closed_ || reading_ || !session_.wants_input()) return;
  std::span<char> tail = inbuf_.prepare(kReadChunk);
  reading_ = true;
  transport_.async_read_some(
      asio::buffer(tail.data(), tail.size()),
      [self = shared_from_this()](const error_code& ec, size_t n) { self->on_read(ec, n); });
}

void Connection::on_read(const error_code& ec, size_t n) {
  reading_ = false;
  if (deadlines_.waiting() == Waiting::Linger) {
    // The response ended while this read (of a body nobody wants now) was
    // under way: it becomes the first read of the lingering close.
    inbuf_.clear();
    on_linger_read(ec, n);
    return;
  }
  inbuf_.commit(n);
  deadlines_.count_read(n);
  if (ec) {
    if (!client_trouble(ec)) server_->report(ec, "read");
    if (session_.on_read_end(ec)) close_socket();
    return;
  }
  session_.on_read(n);
}

void Connection::check_deadline() {
  asio::post(transport_.executor(), [self = shared_from_this()] { self->on_deadline(); });
}

void Connection::on_deadline() {
  if (closed_) return;
  Deadlines::Expired expired = deadlines_.expire(steady_ms());
  switch (expired) {
    case Deadlines::Expired::None:
      return;
    case Deadlines::Expired::Write:
      // The client stopped reading what we send: let its buffers go.
      server_->counters().timeouts.fetch_add(1, std::memory_order_relaxed);
      server_->log_line("closed a connection whose client stopped reading the response");
      close_socket();
      return;
    case Deadlines::Expired::Linger:
      close_socket();  // the client never closed its side: enough
      return;
    case Deadlines::Expired::FirstByte:
    case Deadlines::Expired::Handshake:
      server_->counters().timeouts.fetch_add(1, std::memory_order_relaxed);
      close_socket();  // nothing was asked: nothing to answer
      return;
    case Deadlines::Expired::App:
    case Deadlines::Expired::Head:
    case Deadlines::Expired::BodyStall:
    case Deadlines::Expired::BodyRate:
      session_.on_expired(expired);  // a request is answered
      return;
  }
}

void Connection::send(Bytes bytes, bool last, bool keep_alive, RequestRef logged) {
  // A response finished after the server stopped has nobody to write it:
  // it is dropped here, never left in a handler that would not run.
  size_t size = bytes.size();
  outbox_.promise(size);
  bool posted = server_->post_while_running(
      transport_.executor(),
      [self = shared_from_this(), item = Outbox::Item{std::move(bytes), last, keep_alive},
       logged = std::move(logged)]() mutable {
        self->session_.response_begins();
        if (logged) self->logged_ = std::move(logged);
        self->enqueue(std::move(item));
      });
  if (!posted) outbox_.withdraw(size);
}

void Connection::send_pieces(NativeVector<OutPiece> pieces, bool last, bool keep_alive, RequestRef logged) {
  size_t size = 0;
  for (const auto& p : pieces) size += p.size();
  outbox_.promise(size);
  // Dropped with the lambda when the server has stopped: the loans are
  // returned then too.
  bool posted = server_->post_while_running(
      transport_.executor(), [self = shared_from_this(), pieces = std::move(pieces), last, keep_alive,
                              logged = std::move(logged)]() mutable {
        self->session_.response_begins();
        if (logged) self->logged_ = std::move(logged);
        self->enqueue_pieces(std::move(pieces), last, keep_alive);
      });
  if (!posted) outbox_.withdraw(size);
}

void Connection::send_continue(const RequestCtx& req) {
  // The caller holds a reference to `req`, so its address cannot have been
  // reused by a later request of this connection.
  server_->post_while_running(transport_.executor(), [self = shared_from_this(), which = &req] {
    if (!self->closed_) self->session_.continue_wanted(which);
  });
}

void Connection::send_interim(Bytes bytes) {
  outbox_.promise(bytes.size());
  enqueue(Outbox::Item{std::move(bytes), false, true});
}

void Connection::enqueue(Outbox::Item item) {
  if (closed_) {
    outbox_.withdraw(item.size());
    if (item.last) end_response(false);
    return;
  }
  outbox_.push(std::move(item));
  if (!writing_) do_write();
}

// All pieces queue before the write starts, so the head and the lent body
// go out in one gathered write.
void Connection::enqueue_pieces(NativeVector<OutPiece> pieces, bool last, bool keep_alive) {
  if (closed_) {
    size_t size = 0;
    for (const auto& p : pieces) size += p.size();
    outbox_.withdraw(size);
    if (last) end_response(false);
    return;
  }
  if (pieces.empty()) return enqueue(Outbox::Item{Bytes(), last, keep_alive});
  for (size_t i = 0; i < pieces.size(); ++i) {
    bool final_piece = i + 1 == pieces.size();
    outbox_.push(
        Outbox::Item{std::move(pieces[i].bytes), last && final_piece, keep_alive, std::move(pieces[i].loan)});
  }
  if (!writing_ && !outbox_.empty()) do_write();
}

void Connection::do_write() {
  const auto& slice = outbox_.next_slice();
  writing_ = true;
  deadlines_.write_started(steady_ms());
  transport_.async_write(
      slice, [self = shared_from_this()](const error_code& ec, size_t n) { self->on_write(ec, n); });
}

void Connection::on_write(const error_code& ec, size_t n) {
  writing_ = false;
  response_bytes_ += n;
  Outbox::Written w = outbox_.written();
  bool done = w.response_done;
  deadlines_.write_ended();  // do_write sets it again
  if (ec) {
    if (!client_trouble(ec) || ec == asio::error::eof) server_->report(ec, "write");
    close_socket();
    if (outbox_.discard()) done = true;
    if (done) end_response(false);
    return;
  }
  if (done) end_response(w.keep_alive);
  // response_done may have queued (100 Continue) and started a write itself.
  if (!closed_ && !writing_ && !outbox_.empty()) do_write();
}

// The last byte of a response was written, or the response was dropped
// with the connection: the access log hears of it before the session
// moves on to the next request.
void Connection::end_response(bool keep_alive) {
  if (logged_) {
    RequestRef req = std::move(logged_);
    session_.log_response(*req, response_bytes_);
  }
  response_bytes_ = 0;
  session_.response_done(keep_alive);
}

// Closing right after the last byte would make the kernel answer anything
// the client still sends (the rest of a rejected request) with a reset,
// which can destroy our response before the client has read it. So the
// send side is shut, and what still arrives is read and dropped for a
// short while, until the client closes too (nginx's lingering close).
//
// Over TLS the send side ends with close_notify (end_tls). OpenSSL treats
// application data that arrives after its close_notify as fatal, and the
// close that follows would reset the connection as above. So when the
// client may still be sending (the rest of a refused request), what comes
// is read and dropped first, and close_notify goes once the client ends
// its side; otherwise it goes at once. The same linger deadline bounds
// both waits.
void Connection::linger(bool input_pending) {
  deadlines_.linger(steady_ms());
  if (SocketTransport* plain = transport_.plain()) {
    plain->shutdown_send();
  } else {
    linger_drains_ = input_pending;
    if (!input_pending) {
      if (!reading_) end_tls();  // else that read's completion does (see on_read)
      return;
    }
  }
  if (reading_) return;  // that read's completion carries on (see on_read)
  inbuf_.clear();
  linger_read();
}

// What still arrives is dropped: it lands in the free input buffer, which
// is never committed.
void Connection::linger_read() {
  std::span<char> tail = inbuf_.prepare(kReadChunk);
  transport_.async_read_some(
      asio::buffer(tail.data(), tail.size()),
      [self = shared_from_this()](const error_code& ec, size_t n) { self->on_linger_read(ec, n); });
}

void Connection::on_linger_read(const error_code& ec, size_t) {
  if (closed_) return;
  if (transport_.tls() && (!ec ? !linger_drains_ : ec == asio::error::eof)) {
    // Nothing more was expected, or the client sent its own close_notify:
    // ours answers it.
    end_tls();
    return;
  }
  if (ec) {
    close_socket();
    return;
  }
  linger_read();
}

void Connection::end_tls() {
  if (tls_ending_) return;
  tls_ending_ = true;
  transport_.tls()->async_shutdown([self = shared_from_this()](const error_code&) { self->close_socket(); });
}

void Connection::close_socket() {
  if (closed_) return;
  closed_ = true;
  session_.on_closed();
  server_->connection_closed();
  open_.store(false, std::memory_order_release);
  transport_.close();
  // While a write is under way its completion handler discards the rest.
  if (!writing_ && outbox_.discard() && session_.awaiting_response()) end_response(false);
  outbox_.notify_writers();
}

void Connection::close_if_idle() {
  asio::post(transport_.executor(), [self = shared_from_this()] {
    if (self->session_.idle()) self->close_socket();
  });
}

void Connection::close_now() {
  asio::post(transport_.executor(), [self = shared_from_this()] { self->close_socket(); });
}

bool Connection::wait_writable(std::chrono::steady_clock::time_point deadline) {
  return outbox_.wait_below_high_water(deadline, open_);
}

// Called by a worker about to take this connection's request. The
// connection does not read while its request waits for a worker, so a
// client that left meanwhile shows only here (see SocketTransport).
bool Connection::peer_gone() const { return !open() || transport_.peer_gone(); }

void Connection::log(std::string_view line) { server_->log_line(line); }

bool Connection::draining() const { return server_->draining(); }

bool Connection::backlogged() const { return open() && outbox_.above_high_water(); }

}  // namespace kino
