#include "http1/responder.hpp"

#include <cstdio>

#include "handoff/response_sink.hpp"

namespace kino {

namespace {

void report_dropped(RequestCtx& req, const Bytes& dropped) {
  if (dropped.empty() || !req.sink) return;
  Bytes line("response header dropped (invalid name or value): ");
  line.append(dropped);
  req.sink->log(view(line));
}

bool must_close(const RequestCtx& req, bool server_closing) {
  return server_closing || (req.sink && req.sink->draining());
}

void deliver(RequestCtx& req, Bytes bytes, bool last) {
  if (!req.sink) return;
  // The connection logs the request once its last byte is written, so the
  // end of the response carries it there (only with the access log on).
  RequestRef logged = last && req.access_logged ? RequestRef(&req) : RequestRef();
  req.sink->send(std::move(bytes), last, req.response.keep_alive, std::move(logged));
  // The Ruby handle may outlive the response until GC; the connection
  // must not live that long with it.
  if (last) req.sink.reset();
}

// The end of a response whose body has lent parts: the head and the parts
// copied go in pieces of their own between the loans, in order.
void deliver_pieces(RequestCtx& req, Bytes out, std::span<const std::string_view> body,
                    std::span<const ByteLeaseRef> leases, uint64_t budget) {
  if (!req.sink) return;
  NativeVector<OutPiece> pieces;
  pieces.reserve(2 * leases.size() + 1);
  for (size_t i = 0; i < body.size() && budget > 0; ++i) {
    std::string_view part = body[i];
    size_t n = part.size() < budget ? part.size() : static_cast<size_t>(budget);
    budget -= n;
    if (!leases[i] || n == 0) {
      out.append(part.data(), n);
      continue;
    }
    if (!out.empty()) pieces.push_back(OutPiece{std::move(out), Loan()});
    out = Bytes();
    pieces.push_back(OutPiece{Bytes(), Loan(leases[i], part.substr(0, n), req.sink)});
  }
  if (!out.empty()) pieces.push_back(OutPiece{std::move(out), Loan()});
  RequestRef logged = req.access_logged ? RequestRef(&req) : RequestRef();
  req.sink->send_pieces(std::move(pieces), true, req.response.keep_alive, std::move(logged));
  req.sink.reset();  // as deliver does for the last bytes
}

// The whole response, for the party that won the claim.
void send_whole(RequestCtx& req, int status, std::span<const HeaderView> headers,
                std::span<const std::string_view> body, std::span<const ByteLeaseRef> leases,
                bool server_closing) {
  uint64_t total = 0;
  for (auto part : body) total += part.size();
  AppFraming app = read_app_framing(headers);
  ResponsePlan plan = plan_response(req, status, app, total, must_close(req, server_closing));
  // A body shorter than the app's declared content-length leaves the
  // client waiting for the rest: the connection cannot be reused, and the
  // head says so.
  if (plan.send_body && app.content_length && *app.content_length > total) plan.keep_alive = false;
  bool lending = false;
  if (plan.send_body)
    for (const auto& lease : leases) lending = lending || lease != nullptr;
  uint64_t copied = total;
  if (lending)
    for (size_t i = 0; i < body.size(); ++i) copied -= leases[i] ? body[i].size() : 0;
  Bytes out;
  out.reserve(256 + (plan.send_body ? copied : 0));
  Bytes dropped;
  write_head(out, status, headers, plan, http_date(), &dropped);
  // An app that declared a content-length owns that promise; we never put
  // more bytes on the wire than it declared.
  uint64_t budget = plan.framing == BodyFraming::ContentLength ? plan.content_length : total;
  if (plan.send_body && !lending) {
    for (auto part : body) {
      if (budget == 0) break;
      size_t n = part.size() < budget ? part.size() : static_cast<size_t>(budget);
      out.append(part.data(), n);
      budget -= n;
    }
  }
  req.response.framing = plan.framing;
  req.response.keep_alive = plan.keep_alive;
  req.response.status = status;
  req.response.started = req.response.finished = true;
  report_dropped(req, dropped);
  if (lending)
    deliver_pieces(req, std::move(out), body, leases, budget);
  else
    deliver(req, std::move(out), true);
}

// A 1xx is never the end of an exchange: a client given one as the final
// answer waits for another (101 would even switch protocols on it). The
// app's answer is a bug; the client gets a 500 and the log says why.
void answer_interim_as_error(RequestCtx& req, int status, bool server_closing) {
  if (req.sink) {
    char line[120];
    snprintf(line, sizeof line,
             "the application answered with status %d, which is not a final status; answered 500", status);
    req.sink->log(line);
  }
  HeaderView headers[] = {{"content-type", "text/plain"}};
  std::string_view body[] = {"Internal Server Error\n"};
  send_whole(req, 500, headers, body, {}, server_closing);
}

bool is_interim(int status) { return status >= 100 && status < 200; }

}  // namespace

bool respond(RequestCtx& req, int status, std::span<const HeaderView> headers,
             std::span<const std::string_view> body, bool server_closing) {
  return respond_lent(req, status, headers, body, {}, server_closing);
}

bool respond_lent(RequestCtx& req, int status, std::span<const HeaderView> headers,
                  std::span<const std::string_view> body, std::span<const ByteLeaseRef> leases,
                  bool server_closing) {
  if (!req.claim()) return false;
  if (is_interim(status))
    answer_interim_as_error(req, status, server_closing);
  else
    send_whole(req, status, headers, body,
               leases.size() == body.size() ? leases : std::span<const ByteLeaseRef>(), server_closing);
  return true;
}

bool start_response(RequestCtx& req, int status, std::span<const HeaderView> headers, bool server_closing) {
  if (!req.claim()) return false;
  if (is_interim(status)) {
    // Answered in full here: there is no body to stream for the caller.
    answer_interim_as_error(req, status, server_closing);
    return false;
  }
  AppFraming app = read_app_framing(headers);
  ResponsePlan plan = plan_response(req, status, app, std::nullopt, must_close(req, server_closing));
  Bytes out;
  Bytes dropped;
  write_head(out, status, headers, plan, http_date(), &dropped);
  auto& st = req.response;
  st.framing = plan.framing;
  st.keep_alive = plan.keep_alive;
  st.status = status;
  st.send_body = plan.send_body;
  st.declared_length = plan.content_length;
  st.started = true;
  req.mark_response_streamed();
  report_dropped(req, dropped);
  deliver(req, std::move(out), false);
  return true;
}

bool write_body(RequestCtx& req, std::string_view data) {
  auto& st = req.response;
  if (!st.started || st.finished) return false;
  if (!req.sink || !req.sink->open()) return false;
  if (!st.send_body || data.empty()) return true;
  Bytes out;
  switch (st.framing) {
    case BodyFraming::Chunked:
      write_chunk(out, data);
      break;
    case BodyFraming::ContentLength: {
      uint64_t left = st.declared_length - st.body_written;
      if (data.size() > left) data = data.substr(0, static_cast<size_t>(left));
      out.append(data.data(), data.size());
      break;
    }
    case BodyFraming::UntilClose:
      out.append(data.data(), data.size());
      break;
    case BodyFraming::None:
      return true;
  }
  st.body_written += data.size();
  if (!out.empty()) deliver(req, std::move(out), false);
  return true;
}

void finish_response(RequestCtx& req) {
  auto& st = req.response;
  if (!st.started || st.finished) return;
  st.finished = true;
  Bytes out;
  if (st.framing == BodyFraming::Chunked && st.send_body) append(out, kLastChunk);
  if (st.framing == BodyFraming::ContentLength && st.send_body && st.body_written < st.declared_length)
    st.keep_alive = false;  // short body: the client will notice the close
  deliver(req, std::move(out), true);
}

bool respond_plain(RequestCtx& req, int status, std::string_view text, bool close) {
  // Closing is asked for like an app would, through a header, so the
  // request is only touched by whoever wins the claim inside respond().
  HeaderView headers[] = {{"content-type", "text/plain"}, {"connection", "close"}};
  std::string_view body[] = {text};
  return respond(req, status, std::span<const HeaderView>(headers, close ? 2 : 1), body);
}

void abort_response(RequestCtx& req) {
  auto& st = req.response;
  if (!st.started || st.finished) return;
  st.finished = true;
  st.keep_alive = false;
  deliver(req, Bytes(), true);  // no terminating chunk: the body is visibly cut
}

}  // namespace kino
