#include "net/connection.hpp"

#include <sys/socket.h>

#include <cerrno>

#include "http1/responder.hpp"
#include "server.hpp"
#include "util/steady_clock.hpp"

namespace kino {

namespace {
constexpr size_t kReadChunk = 16 * 1024;
constexpr int64_t kNever = INT64_MAX;
constexpr size_t kMaxGather = 64;
constexpr size_t kMaxWriteBytes = 256 * 1024;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
}  // namespace

Connection::Connection(std::shared_ptr<Server> server, Socket socket, std::string_view peer,
                       uint16_t local_port)
    : server_(std::move(server)),
      socket_(std::move(socket)),
      parser_(server_->config().limits, server_->config().body_storage) {
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
  phase_start_ms_ = steady_ms();
  expect(Waiting::FirstByte);
  server_->track(shared_from_this());
  // The accept handler runs on the listener's strand; move onto ours.
  asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->do_read(); });
}

void Connection::do_read() {
  if (closed_ || reading_ || (awaiting_response_ && !streamed_upload_)) return;
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
  if (waiting_ == Waiting::Linger) {
    // The response ended while this read (of a body nobody wants now) was
    // under way: it becomes the first read of the lingering close.
    inbuf_.resize(kReadChunk);
    in_start_ = 0;
    on_linger_read(ec, n);
    return;
  }
  inbuf_.resize(offset + n);
  if (waiting_ == Waiting::Body) body_window_bytes_ += n;
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
    if (!awaiting_response_) close_socket();
    return;
  }
  if (n > 0 && waiting_ == Waiting::FirstByte) expect(Waiting::Head);
  process_input();
}

// Deadlines, in the spirit of Puma's first_data_timeout and
// persistent_timeout. A slow client must not hold a connection (and its
// buffers) for ever: dribbling bytes never extends the time allowed for a
// request head, a body may stall only so long between reads, and a body
// must keep up a minimum rate (see body_rate_kept).
void Connection::expect(Waiting what) {
  Waiting before = waiting_;
  waiting_ = what;
  // Nothing keeps the flag: it follows a finished body until dispatch()
  // has counted the request in flight.
  if (what == Waiting::Body && !awaiting_response_)
    body_arriving_.store(true, std::memory_order_seq_cst);
  else if (what != Waiting::Body && what != Waiting::Nothing)
    body_arriving_.store(false, std::memory_order_seq_cst);
  const auto& cfg = server_->config();
  int64_t first_data = cfg.first_data_timeout.count();
  int64_t deadline = kNever;
  switch (what) {
    case Waiting::FirstByte:
      deadline = phase_start_ms_ + (idle_keep_alive_ ? cfg.persistent_timeout.count() : first_data);
      break;
    case Waiting::Head:
      deadline = phase_start_ms_ + first_data;
      break;
    case Waiting::Body: {
      int64_t now = steady_ms();
      if (before != Waiting::Body) {
        // The body's first window is its grace period.
        body_window_start_ms_ = now;
        body_window_bytes_ = 0;
        body_grace_ = true;
      }
      stall_deadline_ms_ = now + first_data;
      deadline = body_deadline();
      break;
    }
    case Waiting::Continue:
    case Waiting::Nothing:
    case Waiting::Linger:
      break;
  }
  read_deadline_ms_.store(deadline, std::memory_order_relaxed);
}

int64_t Connection::body_deadline() const {
  const auto& cfg = server_->config();
  if (cfg.min_body_rate == 0) return stall_deadline_ms_;
  int64_t window_end = body_window_start_ms_ + cfg.min_body_rate_window.count();
  return window_end < stall_deadline_ms_ ? window_end : stall_deadline_ms_;
}

// Averaged over windows of min_body_rate_window, so a client may pause and
// burst (TCP does), but one byte every few seconds is cut off within two
// windows, and a fast start banks no credit for trickling afterwards. The
// first window is free: the client may take a moment before it sends.
bool Connection::body_rate_kept(int64_t now) {
  const auto& cfg = server_->config();
  if (cfg.min_body_rate == 0 || now < body_window_start_ms_ + cfg.min_body_rate_window.count()) return true;
  uint64_t elapsed = static_cast<uint64_t>(now - body_window_start_ms_);
  bool kept = body_grace_ || body_window_bytes_ * 1000 >= cfg.min_body_rate * elapsed;
  body_grace_ = false;
  body_window_start_ms_ = now;
  body_window_bytes_ = 0;
  return kept;
}

void Connection::check_deadline() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->on_deadline(); });
}

void Connection::on_deadline() {
  if (closed_) return;
  int64_t now = steady_ms();
  if (now >= write_deadline_ms_.load(std::memory_order_relaxed)) {
    // The client stopped reading what we send: let its buffers go.
    server_->counters().timeouts.fetch_add(1, std::memory_order_relaxed);
    server_->log().push("closed a connection whose client stopped reading the response");
    close_socket();
    return;
  }
  if (now >= app_deadline_ms_.load(std::memory_order_relaxed)) {
    app_deadline_ms_.store(kNever, std::memory_order_relaxed);
    // The client gets its answer now; the handler runs on, and whatever it
    // sends later loses the claim and is dropped.
    RequestRef req = std::move(in_flight_);
    if (req) {
      server_->counters().timeouts.fetch_add(1, std::memory_order_relaxed);
      respond_plain(*req, 504, "Gateway Timeout: the application took too long\n", false);
    }
    return;
  }
  if (now < read_deadline_ms_.load(std::memory_order_relaxed)) return;
  if (waiting_ == Waiting::Linger) {
    close_socket();  // the client never closed its side: enough
    return;
  }
  const char* body_reason = "request body stalled";
  if (waiting_ == Waiting::Body && now < stall_deadline_ms_) {
    // Not stalled: the deadline was the end of a rate window.
    if (body_rate_kept(now)) {
      read_deadline_ms_.store(body_deadline(), std::memory_order_relaxed);
      return;
    }
    body_reason = "request body arrived too slowly";
  }
  server_->counters().timeouts.fetch_add(1, std::memory_order_relaxed);
  read_deadline_ms_.store(kNever, std::memory_order_relaxed);
  if (waiting_ == Waiting::FirstByte) {
    close_socket();  // nothing was asked: nothing to answer
    return;
  }
  if (streamed_upload_) {
    fail_streamed_upload(408, body_reason);
    return;
  }
  reject(408, waiting_ == Waiting::Head ? "request head not received in time" : body_reason);
}

void Connection::process_input() {
  // While a streamed body arrives its bytes are parsed even though the
  // request is with the workers; anything after it waits for the response.
  while (!closed_ && (!awaiting_response_ || streamed_upload_) && in_start_ < inbuf_.size()) {
    auto r = parser_.feed(inbuf_.data() + in_start_, inbuf_.size() - in_start_);
    in_start_ += r.consumed;
    switch (r.state) {
      case RequestParser::State::NeedMore:
        if (streamed_upload_) {
          // Body bytes came (perhaps without waiting for a 100, which is
          // then owed no more); each read of the body restarts the clock,
          // and the app's clock waits for the body's end.
          streamed_upload_->body->take_continue();
          if (waiting_ == Waiting::Continue) app_deadline_ms_.store(kNever, std::memory_order_relaxed);
          expect(Waiting::Body);
        } else if (parser_.head_complete()) {
          RequestRef req = parser_.streaming();
          if (!body_admitted_ && !admit_body(*req)) return;
          if (server_->config().stream_request_bodies && should_stream_upload(*req))
            start_streamed_upload(std::move(req));
          else
            expect(Waiting::Body);
        }
        break;
      case RequestParser::State::Complete: {
        RequestRef req = parser_.take();
        body_admitted_ = false;
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
  if (!closed_ && (!awaiting_response_ || streamed_upload_)) do_read();
}

// A body is coming (the head is complete, the body is not). It may spool
// only within the server's budget: an upload that cannot is refused now,
// before the client sends it. Unless bodies stream, a client waiting for
// `100 Continue` gets it from us at once: the body is read here, before
// any worker sees the request (a Content-Length past max_body_size was
// refused by the parser with 413, and never gets the 100).
bool Connection::admit_body(RequestCtx& req) {
  body_admitted_ = true;
  if (!req.body) return true;
  if (!req.body->reserve_spool()) {
    reject(req.body->failure_status(), req.body->failure_reason());
    return false;
  }
  if (!server_->config().stream_request_bodies && req.expect_continue && req.body->received() == 0) {
    pending_bytes_.fetch_add(kContinue.size(), std::memory_order_relaxed);
    enqueue(OutItem{Bytes(kContinue), false, true});
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
  awaiting_response_ = true;
  dispatched_ = true;
  response_begun_ = false;
  if (server_->config().request_timeout.count() > 0)
    in_flight_ = req;  // released by response_done: no cycle outlives it
  server_->dispatch(std::move(req));
  body_arriving_.store(false, std::memory_order_seq_cst);
}

// request_timeout measures the app, not the client: for a streamed body
// it runs while the app has the client's attention (before it asks for a
// body behind `Expect: 100-continue`, and once the body is complete), not
// while the upload is under way (the body's own stall deadline rules
// then).
void Connection::arm_app_deadline() {
  auto timeout = server_->config().request_timeout.count();
  if (timeout > 0 && in_flight_)
    app_deadline_ms_.store(steady_ms() + timeout, std::memory_order_relaxed);
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
    awaiting_response_ = true;
    dispatched_ = false;
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
  pending_bytes_.fetch_add(size, std::memory_order_relaxed);
  bool posted = server_->post_while_running(
      socket_.get_executor(),
      [self = shared_from_this(), item = OutItem{std::move(bytes), last, keep_alive}]() mutable {
        self->response_begun_ = true;
        self->enqueue(std::move(item));
      });
  if (!posted) pending_bytes_.fetch_sub(size, std::memory_order_relaxed);
}

void Connection::send_continue(const RequestCtx& req) {
  // The caller holds a reference to `req`, so its address cannot have been
  // reused by a later request of this connection.
  server_->post_while_running(socket_.get_executor(), [self = shared_from_this(), which = &req] {
    if (self->closed_ || self->streamed_upload_.get() != which) return;
    // The app wants the body: from now on it waits for the client, and a
    // client that never sends is cut off by the body's stall deadline.
    if (self->waiting_ == Waiting::Continue) {
      self->expect(Waiting::Body);
      self->app_deadline_ms_.store(kNever, std::memory_order_relaxed);
    }
    // A final response has begun: a 100 may not follow it. The client
    // sends the body anyway or the stall deadline ends the wait.
    if (self->response_begun_) return;
    self->pending_bytes_.fetch_add(kContinue.size(), std::memory_order_relaxed);
    self->enqueue(OutItem{Bytes(kContinue), false, true});
  });
}

void Connection::enqueue(OutItem item) {
  if (closed_) {
    pending_bytes_.fetch_sub(item.bytes.size(), std::memory_order_relaxed);
    if (item.last) response_done(false);
    return;
  }
  outbox_.push_back(std::move(item));
  if (!writing_) do_write();
}

// Writes go out in slices of at most kMaxWriteBytes, so the write deadline
// measures progress, not the size of a response: a slow but steady reader
// of a large body is never cut off, one that stops reading is.
void Connection::do_write() {
  gather_.clear();
  gather_take_.clear();
  size_t budget = kMaxWriteBytes;
  size_t offset = front_offset_;
  for (auto& item : outbox_) {
    if (gather_take_.size() == kMaxGather || budget == 0) break;
    size_t left = item.bytes.size() - offset;
    size_t take = left < budget ? left : budget;
    if (take > 0) gather_.emplace_back(item.bytes.data() + offset, take);
    gather_take_.push_back(take);
    budget -= take;
    offset = 0;
    if (take < left) break;  // this item continues in the next slice
  }
  writing_ = true;
  write_deadline_ms_.store(steady_ms() + server_->config().first_data_timeout.count(), std::memory_order_relaxed);
  asio::async_write(socket_, gather_, [self = shared_from_this()](const error_code& ec, size_t) {
    self->on_write(ec);
  });
}

void Connection::on_write(const error_code& ec) {
  writing_ = false;
  bool done = false, keep_alive = false;
  size_t written = 0;
  for (size_t take : gather_take_) {
    OutItem& item = outbox_.front();
    written += take;
    if (front_offset_ + take < item.bytes.size()) {
      front_offset_ += take;  // a slice of a large item: the rest goes next
      break;
    }
    front_offset_ = 0;
    if (item.last) {
      done = true;
      keep_alive = item.keep_alive;
    }
    outbox_.pop_front();
  }
  gather_take_.clear();
  pending_bytes_.fetch_sub(written, std::memory_order_relaxed);
  write_deadline_ms_.store(kNever, std::memory_order_relaxed);  // do_write sets it again
  notify_writers();
  if (ec) {
    if (ec != asio::error::operation_aborted && ec != asio::error::broken_pipe &&
        ec != asio::error::connection_reset)
      server_->report(ec, "write");
    close_socket();
    if (discard_outbox()) done = true;
    if (done) response_done(false);
    return;
  }
  if (done) response_done(keep_alive);
  // response_done may have queued (100 Continue) and started a write itself.
  if (!closed_ && !writing_ && !outbox_.empty()) do_write();
}

void Connection::response_done(bool keep_alive) {
  in_flight_.reset();
  app_deadline_ms_.store(kNever, std::memory_order_relaxed);
  response_begun_ = false;
  if (streamed_upload_) {
    // Answered before its body arrived (the plan said close): the rest of
    // the body is read and dropped by the lingering close.
    RequestRef req = std::move(streamed_upload_);
    req->body->fail(400, "the response was sent before the request body arrived");
    keep_alive = false;
  }
  if (dispatched_) {
    dispatched_ = false;
    server_->counters().in_flight.fetch_sub(1, std::memory_order_relaxed);
    server_->counters().served.fetch_add(1, std::memory_order_relaxed);
  }
  awaiting_response_ = false;
  if (closed_) return;
  if (!keep_alive || server_->draining()) {
    // Responses queued behind this one belong to nobody; close after the
    // last byte so the client sees a clean end.
    linger();
    return;
  }
  idle_keep_alive_ = true;
  phase_start_ms_ = steady_ms();
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
  waiting_ = Waiting::Linger;
  body_arriving_.store(false, std::memory_order_seq_cst);
  read_deadline_ms_.store(steady_ms() + 2000, std::memory_order_relaxed);
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
  app_deadline_ms_.store(kNever, std::memory_order_relaxed);
  if (streamed_upload_) {
    RequestRef req = std::move(streamed_upload_);
    req->body->fail(400, "the connection closed before the request body arrived");
  }
  body_arriving_.store(false, std::memory_order_seq_cst);
  server_->connection_closed();
  open_.store(false, std::memory_order_release);
  error_code ignored;
  socket_.close(ignored);
  // While a write is under way its completion handler discards the rest.
  if (!writing_ && discard_outbox() && awaiting_response_) response_done(false);
  notify_writers();
}

bool Connection::discard_outbox() {
  // Items still waiting were never written; their bytes no longer count.
  size_t dropped = 0;
  bool had_last = false;
  for (auto& item : outbox_) {
    dropped += item.bytes.size();
    had_last = had_last || item.last;
  }
  dropped -= front_offset_;  // already written, already uncounted
  front_offset_ = 0;
  outbox_.clear();
  pending_bytes_.fetch_sub(dropped, std::memory_order_relaxed);
  return had_last;
}

void Connection::close_if_idle() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    // An upload under way is a request begun: it is read to its end and
    // answered, as one with the workers is.
    if (!self->awaiting_response_ && self->waiting_ != Waiting::Body) self->close_socket();
  });
}

void Connection::close_now() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->close_socket(); });
}

bool Connection::wait_writable(std::chrono::steady_clock::time_point deadline) {
  size_t high = server_->config().write_high_water;
  if (!open()) return false;
  if (pending_bytes_.load(std::memory_order_relaxed) < high) return true;
  waiting_writers_.fetch_add(1, std::memory_order_acq_rel);
  {
    std::unique_lock<std::mutex> lock(wait_mu_);
    wait_cv_.wait_until(lock, deadline, [&] {
      return !open() || pending_bytes_.load(std::memory_order_relaxed) < high;
    });
  }
  waiting_writers_.fetch_sub(1, std::memory_order_acq_rel);
  return open();
}

void Connection::notify_writers() {
  if (waiting_writers_.load(std::memory_order_acquire) == 0) return;
  std::lock_guard<std::mutex> lock(wait_mu_);
  wait_cv_.notify_all();
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
  return open() && pending_bytes_.load(std::memory_order_relaxed) >= server_->config().write_high_water;
}

}  // namespace kino
