#include "http1/session.hpp"

#include "http1/responder.hpp"
#include "server.hpp"
#include "util/steady_clock.hpp"

namespace kino {

namespace {
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
}  // namespace

using Waiting = Deadlines::Waiting;

Http1Session::Http1Session(SessionConnection& connection, Server& server, Deadlines& deadlines,
                           std::string_view peer, uint16_t local_port, bool https)
    : connection_(connection),
      server_(server),
      deadlines_(deadlines),
      parser_(server.config().limits, server.config().body_storage),
      access_log_(server.access_log()) {
  parser_.set_peer(peer, local_port, https);
  if (access_log_) parser_.note_versions();
}

void Http1Session::expect(Waiting what) { deadlines_.expect(what, steady_ms()); }

void Http1Session::on_read(size_t n) {
  if (n > 0 && deadlines_.waiting() == Waiting::FirstByte) {
    expect(Waiting::Head);
    note_request_began();
  }
  process_input();
}

void Http1Session::note_request_began() {
  if (access_log_) request_began_ns_ = steady_ns();
}

bool Http1Session::on_read_end(const error_code& ec) {
  if (streamed_upload_) {
    fail_streamed_upload(400, "connection closed mid-body");
    // A reset leaves nothing to write to, whatever the app still sends.
    return ec != asio::error::eof;
  }
  // The client closed its side. A response for a request already with
  // the workers may still be written if only the read half was shut.
  return !awaiting_response();
}

void Http1Session::on_expired(Deadlines::Expired expired) {
  if (expired == Deadlines::Expired::App) {
    // The client gets its answer now; the handler runs on, and whatever it
    // sends later loses the claim and is dropped.
    RequestRef req = std::move(in_flight_);
    if (req) {
      server_.counters().timeouts.fetch_add(1, std::memory_order_relaxed);
      respond_plain(*req, 504, "Gateway Timeout: the application took too long\n", false);
    }
    return;
  }
  server_.counters().timeouts.fetch_add(1, std::memory_order_relaxed);
  if (streamed_upload_)
    fail_streamed_upload(408, Deadlines::reason(expired));
  else
    reject(408, Deadlines::reason(expired));
}

void Http1Session::process_input() {
  ReadBuffer& in = connection_.input();
  // While a streamed body arrives its bytes are parsed even though the
  // request is with the workers; anything after it waits for the response.
  while (!connection_.closed() && wants_input() && !in.empty()) {
    auto r = parser_.feed(in.data(), in.size());
    in.consume(r.consumed);
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
          RequestRef req = parser_.request_awaiting_body();
          if (phase() != RequestPhase::ReadingBody) {
            // Marked before admission counts the body's spool file: a drain
            // (or a client of stats) that sees the file counted then sees a
            // body arriving too, and waits for it. A refusal from here on
            // holds the drain until its answer is out (RefusedMidBody).
            set_phase(RequestPhase::ReadingBody);
            if (!admit_body(*req)) return;
          }
          if (server_.config().stream_request_bodies && should_stream_upload(*req))
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
  if (!connection_.closed() && wants_input()) connection_.read_more();
}

// A body is coming (the head is complete, the body is not). It may spool
// only within the server's budget: an upload that cannot is refused now,
// before the client sends it. Unless bodies stream, a client waiting for
// `100 Continue` gets it from us at once: the body is read here, before
// any worker sees the request (a Content-Length past max_body_size was
// refused by the parser with 413, and never gets the 100).
bool Http1Session::admit_body(RequestCtx& req) {
  if (!req.body) return true;
  if (!req.body->reserve_spool()) {
    reject(req.body->failure_status(), req.body->failure_reason());
    return false;
  }
  if (!server_.config().stream_request_bodies && req.expect_continue && req.body->received() == 0)
    connection_.send_interim(Bytes(kContinue));
  return true;
}

// With stream_request_bodies only. Bodies that fit in memory are still
// read whole before the app runs: the app gets them in one piece, an app
// that answers without reading them does not cost the connection, and a
// client trickling a small body ties up no worker. Longer bodies (by
// Content-Length, or a chunked one once it has passed the memory limit)
// and bodies behind `Expect: 100-continue` go to the app as they arrive.
bool Http1Session::should_stream_upload(const RequestCtx& req) const {
  if (req.expect_continue) return true;
  size_t limit = server_.config().body_storage.memory_limit;
  uint64_t expected = req.body->expected_length();
  return expected == 0 ? req.body->received() > limit : expected > limit;
}

void Http1Session::dispatch(RequestRef req) {
  req->sink = connection_.sink();
  req->peer = req->sink;
  req->access_logged = access_log_ != nullptr;
  if (server_.config().request_timeout.count() > 0)
    in_flight_ = req;  // released by response_done: no cycle outlives it
  server_.dispatch(std::move(req));
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
void Http1Session::arm_app_deadline() {
  if (in_flight_) deadlines_.arm_app(steady_ms());
}

void Http1Session::start_streamed_upload(RequestRef req) {
  streamed_upload_ = req;  // released when the body ends or fails: no cycle outlives it
  bool owe = req->expect_continue && req->body->received() == 0;
  if (owe) req->body->owe_continue(std::weak_ptr<ResponseSink>(connection_.sink()));
  expect(owe ? Waiting::Continue : Waiting::Body);
  dispatch(std::move(req));
  if (owe) arm_app_deadline();
}

// The body of the request with the workers will not arrive whole. Its
// reader gets the error; the client gets `status` if the app has not
// answered yet, and otherwise a cut connection (its request was broken).
void Http1Session::fail_streamed_upload(int status, const char* reason) {
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
void Http1Session::reject(int status, std::string_view reason, RequestRef req) {
  // A full spool (503) is overload, not a malformed request.
  if (status != 503) server_.counters().parse_errors.fetch_add(1, std::memory_order_relaxed);
  server_.counters().rejected.fetch_add(1, std::memory_order_relaxed);
  expect(Waiting::Nothing);
  if (!req) {
    req = RequestRef(new RequestCtx());
    req->sink = connection_.sink();
    req->keep_alive = false;
    if (access_log_) {
      // What was read of the request, for its line in the access log. The
      // answer is unchanged by the version: it has a length and closes.
      RequestParser::RequestLine line = parser_.request_line();
      req->method.assign(line.method.data(), line.method.size());
      req->target.assign(line.target.data(), line.target.size());
      req->http_major = line.http_major;
      req->http_minor = line.http_minor;
      req->peer_address.assign(parser_.peer().data(), parser_.peer().size());
      req->access_logged = true;
    }
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

void Http1Session::response_begins() noexcept {
  if (phase() == RequestPhase::WithApp) set_phase(RequestPhase::Responding);
}

void Http1Session::continue_wanted(const RequestCtx* which) {
  // `which` is compared, never followed: the caller holds a reference to
  // it, so its address cannot have been reused by a later request.
  if (streamed_upload_.get() != which) return;
  // The app wants the body: from now on it waits for the client, and a
  // client that never sends is cut off by the body's stall deadline.
  if (deadlines_.waiting() == Waiting::Continue) {
    expect(Waiting::Body);
    deadlines_.disarm_app();
  }
  // A final response has begun: a 100 may not follow it. The client
  // sends the body anyway or the stall deadline ends the wait.
  if (phase() == RequestPhase::Responding) return;
  connection_.send_interim(Bytes(kContinue));
}

void Http1Session::response_done(bool keep_alive) {
  in_flight_.reset();
  deadlines_.disarm_app();
  RequestPhase was = phase();
  // A refused request, or one answered before its body arrived: the client
  // may still be sending the rest.
  bool input_pending = was == RequestPhase::Refused || was == RequestPhase::RefusedMidBody;
  if (streamed_upload_) {
    // Answered before its body arrived (the plan said close): the rest of
    // the body is read and dropped by the lingering close.
    input_pending = true;
    RequestRef req = std::move(streamed_upload_);
    req->body->fail(400, "the response was sent before the request body arrived");
    keep_alive = false;
  }
  if (was == RequestPhase::WithApp || was == RequestPhase::Responding) {
    server_.counters().in_flight.fetch_sub(1, std::memory_order_relaxed);
    server_.counters().served.fetch_add(1, std::memory_order_relaxed);
  }
  set_phase(RequestPhase::ReadingHead);
  if (connection_.closed()) return;
  if (!keep_alive || server_.draining()) {
    // Responses queued behind this one belong to nobody; close after the
    // last byte so the client sees a clean end.
    connection_.linger(input_pending);
    return;
  }
  deadlines_.begin_request(steady_ms(), true);
  // Pipelined bytes already here count as the next request's first data.
  bool pipelined = !connection_.input().empty();
  expect(pipelined ? Waiting::Head : Waiting::FirstByte);
  if (pipelined) note_request_began();
  process_input();
}

void Http1Session::on_closed() {
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
}

// The wait for a worker runs from the queue to the worker's take, or, for
// a request never taken (a 503 or 504 while queued), to its answer.
void Http1Session::log_response(const RequestCtx& req, uint64_t bytes_sent) {
  if (!access_log_) return;
  int64_t now = steady_ns();
  int64_t began = request_began_ns_ > 0 ? request_began_ns_ : now;
  int64_t unix_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  AccessRecord record;
  record.began_unix_us = (unix_ns - (now - began)) / 1000;
  record.peer = view(req.peer_address);
  record.method = view(req.method);
  record.target = view(req.target);
  record.http_major = req.http_major;
  record.http_minor = req.http_minor;
  record.status = req.response.status;
  record.bytes = bytes_sent;
  record.duration_us = (now - began) / 1000;
  if (req.queued_ns > 0) {
    int64_t taken = req.taken_ns();
    record.queue_wait_us = ((taken > 0 ? taken : now) - req.queued_ns) / 1000;
  }
  int32_t slot = req.taken_by_slot();
  if (slot >= 0)
    record.worker = static_cast<int64_t>(server_.config().worker_of_slot(static_cast<size_t>(slot)));
  access_log_->write(record);
}

}  // namespace kino
