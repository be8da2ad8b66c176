#include "net/connection.hpp"

#include <sys/socket.h>

#include <cerrno>

#include "http1/responder.hpp"
#include "server.hpp"
#include "util/steady_clock.hpp"

namespace kino {

namespace {
constexpr size_t kReadChunk = 16 * 1024;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
}  // namespace

Connection::Connection(std::shared_ptr<Server> server, Socket socket, std::string_view peer,
                       uint16_t local_port)
    : server_(std::move(server)),
      socket_(std::move(socket)),
      parser_(server_->config().limits, server_->config().body_storage),
      outbox_(server_->config().write_high_water),
      deadlines_(server_->config()) {
  parser_.set_peer(peer, local_port);
  peer_fd_ = socket_.native_handle();
  server_->counters().connections_accepted.fetch_add(1, std::memory_order_relaxed);
  server_->counters().connections_open.fetch_add(1, std::memory_order_relaxed);
}

Connection::~Connection() {
  if (!closed_) server_->connection_closed();
  server_->untrack(this);
}

void Connection::start() {
  deadlines_.begin_request(steady_ms(), false);
  expect(Waiting::FirstByte);
  server_->track(shared_from_this());
  // The accept handler runs on the listener's strand; move onto ours.
  asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->do_read(); });
}

void Connection::do_read() {
  if (closed_ || reading_ || (awaiting_response() && !streamed_upload_)) return;
  if (in_start_ > 0) {
    inbuf_.erase(0, in_start_);
    in_start_ = 0;
  }
  size_t offset = inbuf_.size();
  inbuf_.resize(offset + kReadChunk);
  reading_ = true;
  socket_.async_read_some(asio::buffer(inbuf_.data() + offset, kReadChunk),
                          [self = shared_from_this(), offset](const error_code& ec, size_t n) {
                            self->on_read(ec, n, offset);
                          });
}

void Connection::on_read(const error_code& ec, size_t n, size_t offset) {
  reading_ = false;
  if (deadlines_.waiting() == Waiting::Linger) {
    // The response ended while this read (of a body nobody wants now) was
    // under way: it becomes the first read of the lingering close.
    inbuf_.resize(kReadChunk);
    in_start_ = 0;
    on_linger_read(ec, n);
    return;
  }
  inbuf_.resize(offset + n);
  deadlines_.count_read(n);
  if (ec) {
    if (ec != asio::error::eof && ec != asio::error::operation_aborted &&
        ec != asio::error::connection_reset)
      server_->report(ec, "read");
    if (streamed_upload_) {
      fail_streamed_upload(400, "connection closed mid-body");
      // A reset leaves nothing to write to, whatever the app still sends.
      if (ec != asio::error::eof) close_socket();
      return;
    }
    // The client closed its side. A response for a request already with
    // the workers may still be written if only the read half was shut.
    if (!awaiting_response()) close_socket();
    return;
  }
  if (n > 0 && deadlines_.waiting() == Waiting::FirstByte) expect(Waiting::Head);
  process_input();
}

void Connection::expect(Waiting what) { deadlines_.expect(what, steady_ms()); }

void Connection::check_deadline() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->on_deadline(); });
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
      server_->log().push("closed a connection whose client stopped reading the response");
      close_socket();
      return;
    case Deadlines::Expired::App: {
      // The client gets its answer now; the handler runs on, and whatever it
      // sends later loses the claim and is dropped.
      RequestRef req = std::move(in_flight_);
      if (req) {
        server_->counters().timeouts.fetch_add(1, std::memory_order_relaxed);
        respond_plain(*req, 504, "Gateway Timeout: the application took too long\n", false);
      }
      return;
    }
    case Deadlines::Expired::Linger:
      close_socket();  // the client never closed its side: enough
      return;
    case Deadlines::Expired::FirstByte:
      server_->counters().timeouts.fetch_add(1, std::memory_order_relaxed);
      close_socket();  // nothing was asked: nothing to answer
      return;
    case Deadlines::Expired::Head:
    case Deadlines::Expired::BodyStall:
    case Deadlines::Expired::BodyRate:
      server_->counters().timeouts.fetch_add(1, std::memory_order_relaxed);
      if (streamed_upload_)
        fail_streamed_upload(408, Deadlines::reason(expired));
      else
        reject(408, Deadlines::reason(expired));
      return;
  }
}

void Connection::process_input() {
  // While a streamed body arrives its bytes are parsed even though the
  // request is with the workers; anything after it waits for the response.
  while (!closed_ && (!awaiting_response() || streamed_upload_) && in_start_ < inbuf_.size()) {
    auto r = parser_.feed(inbuf_.data() + in_start_, inbuf_.size() - in_start_);
    in_start_ += r.consumed;
    switch (r.state) {
      case RequestParser::State::NeedMore:
        if (streamed_upload_) {
          // Body bytes came (perhaps without waiting for a 100, which is
          // then owed no more); each read of the body restarts the clock,
          // and the app's clock waits for the body's end.
          streamed_upload_->body->take_continue();
          if (deadlines_.waiting() == Waiting::Continue) deadlines_.disarm_app();
          expect(Waiting::Body);
        } else if (parser_.head_complete()) {
          RequestRef req = parser_.streaming();
          if (phase() != RequestPhase::ReadingBody) {
            if (!admit_body(*req)) return;
            set_phase(RequestPhase::ReadingBody);
          }
          if (server_->config().stream_request_bodies && should_stream_upload(*req))
            start_streamed_upload(std::move(req));
          else
            expect(Waiting::Body);
        }
        break;
      case RequestParser::State::Complete: {
        RequestRef req = parser_.take();
        if (streamed_upload_) {
          // The end of a body already being read by the app; from now on
          // the app alone is what the client waits for.
          streamed_upload_.reset();
          expect(Waiting::Nothing);
          arm_app_deadline();
          return;
        }
        expect(Waiting::Nothing);
        dispatch(std::move(req));
        arm_app_deadline();
        return;
      }
      case RequestParser::State::Error:
        if (streamed_upload_)
          fail_streamed_upload(parser_.error_status(), parser_.error_reason());
        else
          reject(parser_.error_status(), parser_.error_reason());
        return;
    }
  }
  if (!closed_ && (!awaiting_response() || streamed_upload_)) do_read();
}

// A body is coming (the head is complete, the body is not). It may spool
// only within the server's budget: an upload that cannot is refused now,
// before the client sends it. Unless bodies stream, a client waiting for
// `100 Continue` gets it from us at once: the body is read here, before
// any worker sees the request (a Content-Length past max_body_size was
// refused by the parser with 413, and never gets the 100).
bool Connection::admit_body(RequestCtx& req) {
  if (!req.body) return true;
  if (!req.body->reserve_spool()) {
    reject(req.body->failure_status(), req.body->failure_reason());
    return false;
  }
  if (!server_->config().stream_request_bodies && req.expect_continue && req.body->received() == 0) {
    outbox_.promise(kContinue.size());
    enqueue(Outbox::Item{Bytes(kContinue), false, true});
  }
  return true;
}

// With stream_request_bodies only. Bodies that fit in memory are still
// read whole before the app runs: the app gets them in one piece, an app
// that answers without reading them does not cost the connection, and a
// client trickling a small body ties up no worker. Longer bodies (by
// Content-Length, or a chunked one once it has passed the memory limit)
// and bodies behind `Expect: 100-continue` go to the app as they arrive.
bool Connection::should_stream_upload(const RequestCtx& req) const {
  if (req.expect_continue) return true;
  size_t limit = server_->config().body_storage.memory_limit;
  uint64_t expected = req.body->expected_length();
  return expected == 0 ? req.body->received() > limit : expected > limit;
}

void Connection::dispatch(RequestRef req) {
  req->sink = shared_from_this();
  req->peer = req->sink;
  if (server_->config().request_timeout.count() > 0)
    in_flight_ = req;  // released by response_done: no cycle outlives it
  server_->dispatch(std::move(req));
  // Only now that it counts as in flight: a drain must see the one or
  // the other (body_arriving). Nothing on this strand reads the phase
  // while Server::dispatch runs; what it answers is posted.
  set_phase(RequestPhase::WithApp);
}

// request_timeout measures the app, not the client: for a streamed body
// it runs while the app has the client's attention (before it asks for a
// body behind `Expect: 100-continue`, and once the body is complete), not
// while the upload is under way (the body's own stall deadline rules
// then).
void Connection::arm_app_deadline() {
  if (in_flight_) deadlines_.arm_app(steady_ms());
}

void Connection::start_streamed_upload(RequestRef req) {
  streamed_upload_ = req;  // released when the body ends or fails: no cycle outlives it
  bool owe = req->expect_continue && req->body->received() == 0;
  if (owe) req->body->owe_continue(std::weak_ptr<ResponseSink>(shared_from_this()));
  expect(owe ? Waiting::Continue : Waiting::Body);
  dispatch(std::move(req));
  if (owe) arm_app_deadline();
}

// The body of the request with the workers will not arrive whole. Its
// reader gets the error; the client gets `status` if the app has not
// answered yet, and otherwise a cut connection (its request was broken).
void Connection::fail_streamed_upload(int status, const char* reason) {
  RequestRef req = std::move(streamed_upload_);
  // If the app's response is under way this answer loses the claim and
  // that response may finish (the client may well have stopped sending
  // because it saw it begin). Nothing more is read; the lingering close
  // after it drops what still comes. The answer is claimed before the
  // reader hears of the failure: told first, the app could answer the
  // failed read with its own 500 ahead of this one.
  RequestRef reader = req;
  reject(status, reason, std::move(req));
  reader->body->fail(status, reason);
}

// Whatever else the client sent is not trusted: answer and close. `req` is
// the request already with the workers, or null for one never dispatched.
void Connection::reject(int status, std::string_view reason, RequestRef req) {
  // A full spool (503) is overload, not a malformed request.
  if (status != 503) server_->counters().parse_errors.fetch_add(1, std::memory_order_relaxed);
  server_->counters().rejected.fetch_add(1, std::memory_order_relaxed);
  expect(Waiting::Nothing);
  if (!req) {
    req = RequestRef(new RequestCtx());
    req->sink = shared_from_this();
    req->keep_alive = false;
    // Refused mid-body, it still holds a drain until its answer is out.
    set_phase(phase() == RequestPhase::ReadingBody ? RequestPhase::RefusedMidBody : RequestPhase::Refused);
  }
  Bytes text(reason.data(), reason.size());
  text.push_back('\n');
  if (status == 503) {
    // Overload (the spool is full): the client may try again shortly.
    HeaderView headers[] = {{"content-type", "text/plain"}, {"retry-after", "1"}};
    std::string_view body[] = {view(text)};
    respond(*req, status, headers, body, true);
    return;
  }
  respond_plain(*req, status, view(text), true);
}

void Connection::send(Bytes bytes, bool last, bool keep_alive) {
  // A response finished after the server stopped has nobody to write it:
  // it is dropped here, never left in a handler that would not run.
  size_t size = bytes.size();
  outbox_.promise(size);
  bool posted = server_->post_while_running(
      socket_.get_executor(),
      [self = shared_from_this(), item = Outbox::Item{std::move(bytes), last, keep_alive}]() mutable {
        if (self->phase() == RequestPhase::WithApp) self->set_phase(RequestPhase::Responding);
        self->enqueue(std::move(item));
      });
  if (!posted) outbox_.withdraw(size);
}

void Connection::send_continue(const RequestCtx& req) {
  // The caller holds a reference to `req`, so its address cannot have been
  // reused by a later request of this connection.
  server_->post_while_running(socket_.get_executor(), [self = shared_from_this(), which = &req] {
    if (self->closed_ || self->streamed_upload_.get() != which) return;
    // The app wants the body: from now on it waits for the client, and a
    // client that never sends is cut off by the body's stall deadline.
    if (self->deadlines_.waiting() == Waiting::Continue) {
      self->expect(Waiting::Body);
      self->deadlines_.disarm_app();
    }
    // A final response has begun: a 100 may not follow it. The client
    // sends the body anyway or the stall deadline ends the wait.
    if (self->phase() == RequestPhase::Responding) return;
    self->outbox_.promise(kContinue.size());
    self->enqueue(Outbox::Item{Bytes(kContinue), false, true});
  });
}

void Connection::enqueue(Outbox::Item item) {
  if (closed_) {
    outbox_.withdraw(item.bytes.size());
    if (item.last) response_done(false);
    return;
  }
  outbox_.push(std::move(item));
  if (!writing_) do_write();
}

void Connection::do_write() {
  const auto& slice = outbox_.next_slice();
  writing_ = true;
  deadlines_.write_started(steady_ms());
  asio::async_write(socket_, slice, [self = shared_from_this()](const error_code& ec, size_t) {
    self->on_write(ec);
  });
}

void Connection::on_write(const error_code& ec) {
  writing_ = false;
  Outbox::Written w = outbox_.written();
  bool done = w.response_done;
  deadlines_.write_ended();  // do_write sets it again
  if (ec) {
    if (ec != asio::error::operation_aborted && ec != asio::error::broken_pipe &&
        ec != asio::error::connection_reset)
      server_->report(ec, "write");
    close_socket();
    if (outbox_.discard()) done = true;
    if (done) response_done(false);
    return;
  }
  if (done) response_done(w.keep_alive);
  // response_done may have queued (100 Continue) and started a write itself.
  if (!closed_ && !writing_ && !outbox_.empty()) do_write();
}

void Connection::response_done(bool keep_alive) {
  in_flight_.reset();
  deadlines_.disarm_app();
  if (streamed_upload_) {
    // Answered before its body arrived (the plan said close): the rest of
    // the body is read and dropped by the lingering close.
    RequestRef req = std::move(streamed_upload_);
    req->body->fail(400, "the response was sent before the request body arrived");
    keep_alive = false;
  }
  RequestPhase was = phase();
  if (was == RequestPhase::WithApp || was == RequestPhase::Responding) {
    server_->counters().in_flight.fetch_sub(1, std::memory_order_relaxed);
    server_->counters().served.fetch_add(1, std::memory_order_relaxed);
  }
  set_phase(RequestPhase::ReadingHead);
  if (closed_) return;
  if (!keep_alive || server_->draining()) {
    // Responses queued behind this one belong to nobody; close after the
    // last byte so the client sees a clean end.
    linger();
    return;
  }
  deadlines_.begin_request(steady_ms(), true);
  // Pipelined bytes already here count as the next request's first data.
  expect(in_start_ < inbuf_.size() ? Waiting::Head : Waiting::FirstByte);
  process_input();
}

// Closing right after the last byte would make the kernel answer anything
// the client still sends (the rest of a rejected request) with a reset,
// which can destroy our response before the client has read it. So the
// send side is shut, and what still arrives is read and dropped for a
// short while, until the client closes too (nginx's lingering close).
void Connection::linger() {
  error_code ignored;
  socket_.shutdown(Socket::shutdown_send, ignored);
  deadlines_.linger(steady_ms());
  if (reading_) return;  // that read's completion carries on (see on_read)
  in_start_ = 0;
  inbuf_.resize(kReadChunk);
  socket_.async_read_some(asio::buffer(inbuf_.data(), kReadChunk),
                          [self = shared_from_this()](const error_code& ec, size_t n) {
                            self->on_linger_read(ec, n);
                          });
}

void Connection::on_linger_read(const error_code& ec, size_t) {
  if (closed_) return;
  if (ec) {
    close_socket();
    return;
  }
  socket_.async_read_some(asio::buffer(inbuf_.data(), kReadChunk),
                          [self = shared_from_this()](const error_code& ec2, size_t n) {
                            self->on_linger_read(ec2, n);
                          });
}

void Connection::close_socket() {
  if (closed_) return;
  closed_ = true;
  in_flight_.reset();  // nobody to answer with a 504 any more
  deadlines_.disarm_app();
  if (streamed_upload_) {
    RequestRef req = std::move(streamed_upload_);
    req->body->fail(400, "the connection closed before the request body arrived");
  }
  // Nothing more arrives: a drain waits for no body (but the answer to a
  // request still with the workers, which counts in flight).
  if (phase() == RequestPhase::ReadingBody)
    set_phase(RequestPhase::ReadingHead);
  else if (phase() == RequestPhase::RefusedMidBody)
    set_phase(RequestPhase::Refused);
  server_->connection_closed();
  open_.store(false, std::memory_order_release);
  error_code ignored;
  socket_.close(ignored);
  // While a write is under way its completion handler discards the rest.
  if (!writing_ && outbox_.discard() && awaiting_response()) response_done(false);
  outbox_.notify_writers();
}

void Connection::close_if_idle() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    // An upload under way is a request begun: it is read to its end and
    // answered, as one with the workers is.
    if (!self->awaiting_response() && self->deadlines_.waiting() != Waiting::Body) self->close_socket();
  });
}

void Connection::close_now() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->close_socket(); });
}

bool Connection::wait_writable(std::chrono::steady_clock::time_point deadline) {
  return outbox_.wait_below_high_water(deadline, open_);
}

// Called by a worker about to take this connection's request. The
// connection does not read while its request waits for a worker, so a
// client that left meanwhile shows only here; a peek takes nothing off the
// socket. End of stream counts as gone, as nginx counts it: a client that
// sends a request and shuts its side has, in practice, given up on it. If
// the descriptor was closed (even reused) after open() said true, this
// connection is closed anyway and no answer is lost either way.
bool Connection::peer_gone() const {
  if (!open()) return true;
  char byte;
  ssize_t n = ::recv(peer_fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return true;
  return n < 0 && (errno == ECONNRESET || errno == ENOTCONN || errno == EPIPE);
}

void Connection::log(std::string_view line) { server_->log().push(line); }

bool Connection::draining() const { return server_->draining(); }

bool Connection::backlogged() const {
  return open() && outbox_.above_high_water();
}

}  // namespace kino
