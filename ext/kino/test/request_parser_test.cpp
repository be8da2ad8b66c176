#include "http1/request_parser.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "support/config.hpp"

using namespace kino;
using namespace std::string_literals;
using State = RequestParser::State;

namespace kino {
// Readable gtest messages for the parser's states.
inline void PrintTo(RequestParser::State s, std::ostream* os) {
  *os << (s == RequestParser::State::NeedMore   ? "NeedMore"
          : s == RequestParser::State::Complete ? "Complete"
                                                : "Error");
}
}  // namespace kino

namespace {

std::string str(const Bytes& b) { return std::string(b.data(), b.size()); }

// The whole body, read from its start (empty without one).
std::string str(const BodyRef& body) {
  if (!body) return {};
  body->rewind();
  std::string out;
  char buf[4096];
  for (;;) {
    auto r = body->read(buf, sizeof buf, std::chrono::steady_clock::now());
    if (r.status != RequestBody::ReadStatus::Data) break;
    out.append(buf, r.bytes);
  }
  body->rewind();
  return out;
}

std::optional<std::string> env(const RequestCtx& req, std::string_view key) {
  for (const auto& h : req.headers)
    if (view(h.key) == key) return str(h.value);
  return std::nullopt;
}

size_t env_count(const RequestCtx& req, std::string_view key) {
  size_t n = 0;
  for (const auto& h : req.headers)
    if (view(h.key) == key) ++n;
  return n;
}

struct Parsed {
  RequestParser::Result result{State::NeedMore, 0};
  RequestRef req;
  int status = 0;
  std::string reason;
};

// Feeds the whole input at once.
Parsed parse(std::string_view input, const ParserLimits& limits = test::parser_limits()) {
  RequestParser p(limits);
  Parsed out;
  out.result = p.feed(input.data(), input.size());
  if (out.result.state == State::Complete) out.req = p.take();
  out.status = p.error_status();
  out.reason = std::string(p.error_reason());
  return out;
}

// Feeds one byte at a time until the parser stops.
Parsed parse_bytewise(std::string_view input, const ParserLimits& limits = test::parser_limits()) {
  RequestParser p(limits);
  Parsed out;
  size_t used = 0;
  for (size_t i = 0; i < input.size(); ++i) {
    out.result = p.feed(input.data() + i, 1);
    if (out.result.state == State::Error) break;
    EXPECT_EQ(out.result.consumed, 1u) << "at byte " << i;
    used = i + 1;
    if (out.result.state == State::Complete) {
      out.req = p.take();
      break;
    }
  }
  out.result.consumed = used;
  out.status = p.error_status();
  out.reason = std::string(p.error_reason());
  return out;
}

void expect_error(std::string_view input, int status, const ParserLimits& limits = test::parser_limits()) {
  Parsed r = parse(input, limits);
  EXPECT_EQ(r.result.state, State::Error) << "input: " << input;
  EXPECT_EQ(r.status, status) << "input: " << input << " reason: " << r.reason;
  EXPECT_FALSE(r.reason.empty());
  EXPECT_FALSE(r.req);
  // The same input split byte by byte fails the same way.
  Parsed b = parse_bytewise(input, limits);
  EXPECT_EQ(b.result.state, State::Error) << "bytewise input: " << input;
  EXPECT_EQ(b.status, status) << "bytewise input: " << input;
}

// Whether the peer closing after `input` would cut a request short: what
// finish() says of a parser fed it (finish() ends a message under way, so
// a test that goes on feeding its own parser asks a second one).
bool cut_by_eof(std::string_view input) {
  RequestParser p(test::parser_limits());
  while (!input.empty()) {
    auto r = p.feed(input.data(), input.size());
    if (r.state == State::Error) return false;
    if (r.state == State::Complete) p.take();
    input.remove_prefix(r.consumed);
    if (r.state == State::NeedMore) break;
  }
  return p.finish().state == State::Error;
}

RequestRef expect_complete(std::string_view input, const ParserLimits& limits = test::parser_limits()) {
  Parsed r = parse(input, limits);
  EXPECT_EQ(r.result.state, State::Complete) << "status " << r.status << " " << r.reason;
  EXPECT_EQ(r.result.consumed, input.size());
  if (!r.req) return RequestRef(new RequestCtx());  // keeps callers from crashing
  return r.req;
}

}  // namespace

TEST(RequestParser, SimpleGet) {
  auto req = expect_complete("GET /hello HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(str(req->method), "GET");
  EXPECT_EQ(str(req->target), "/hello");
  EXPECT_EQ(str(req->path), "/hello");
  EXPECT_EQ(str(req->query), "");
  EXPECT_EQ(req->http_major, 1);
  EXPECT_EQ(req->http_minor, 1);
  EXPECT_EQ(env(*req, "HTTP_HOST"), "example.com");
  EXPECT_EQ(env(*req, "HTTP_ACCEPT"), "*/*");
  EXPECT_EQ(str(req->server_name), "example.com");
  EXPECT_EQ(str(req->server_port), "");
  EXPECT_FALSE(req->body);
  EXPECT_TRUE(req->keep_alive);
  EXPECT_FALSE(req->head);
  EXPECT_FALSE(req->sink);
  EXPECT_EQ(req->use_count(), 1u);
}

TEST(RequestParser, PeerAndLocalPortAreCopiedIntoEveryRequest) {
  RequestParser p(test::parser_limits());
  p.set_peer("10.1.2.3", 8080);
  std::string in = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(r.state, State::Complete);
  auto first = p.take();
  EXPECT_EQ(str(first->peer_address), "10.1.2.3");
  EXPECT_EQ(first->local_port, 8080);
  r = p.feed(in.data() + r.consumed, in.size() - r.consumed);
  ASSERT_EQ(r.state, State::Complete);
  auto second = p.take();
  EXPECT_EQ(str(second->peer_address), "10.1.2.3");
  EXPECT_EQ(second->local_port, 8080);
}

TEST(RequestParser, PathAndQuerySplit) {
  auto req = expect_complete("GET /a/b%20c?x=1&y=two%3F HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(str(req->target), "/a/b%20c?x=1&y=two%3F");
  EXPECT_EQ(str(req->path), "/a/b%20c");
  EXPECT_EQ(str(req->query), "x=1&y=two%3F");

  auto second_q = expect_complete("GET /p?a=1?b=2 HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(str(second_q->path), "/p");
  EXPECT_EQ(str(second_q->query), "a=1?b=2");

  auto empty_q = expect_complete("GET /p? HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(str(empty_q->path), "/p");
  EXPECT_EQ(str(empty_q->query), "");
}

TEST(RequestParser, AsteriskFormForOptions) {
  auto req = expect_complete("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(str(req->method), "OPTIONS");
  EXPECT_EQ(str(req->path), "*");
}

TEST(RequestParser, AbsoluteFormTargetAuthorityWinsOverHost) {
  auto req =
      expect_complete("GET http://origin.example:8080/p/q?x=1 HTTP/1.1\r\nHost: other.example:9090\r\n\r\n");
  EXPECT_EQ(str(req->target), "http://origin.example:8080/p/q?x=1");
  EXPECT_EQ(str(req->path), "/p/q");
  EXPECT_EQ(str(req->query), "x=1");
  EXPECT_EQ(str(req->server_name), "origin.example");
  EXPECT_EQ(str(req->server_port), "8080");
  // RFC 9112 3.2.2: the Host header is ignored, HTTP_HOST is the authority.
  EXPECT_EQ(env(*req, "HTTP_HOST"), "origin.example:8080");
  EXPECT_EQ(env_count(*req, "HTTP_HOST"), 1u);
  // HTTP/1.0 may send no Host at all: the authority is still the host.
  auto old = expect_complete("GET http://origin.example/ HTTP/1.0\r\n\r\n");
  EXPECT_EQ(env(*old, "HTTP_HOST"), "origin.example");
  EXPECT_EQ(str(old->server_name), "origin.example");
}

TEST(RequestParser, AbsoluteFormWithoutPortOrPath) {
  auto req = expect_complete("GET https://origin.example HTTP/1.1\r\nHost: other:81\r\n\r\n");
  EXPECT_EQ(str(req->path), "/");
  EXPECT_EQ(str(req->query), "");
  EXPECT_EQ(str(req->server_name), "origin.example");
  EXPECT_EQ(str(req->server_port), "")
      << "the Host header's port must not leak into an absolute-form request";

  auto q = expect_complete("GET http://origin.example?a=b HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(str(q->path), "/");
  EXPECT_EQ(str(q->query), "a=b");
}

TEST(RequestParser, AbsoluteFormRejectsUserinfoAndOtherSchemes) {
  expect_error("GET http://user@origin.example/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  expect_error("GET ftp://origin.example/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  expect_error("GET http:///p HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

TEST(RequestParser, HostWithPort) {
  auto req = expect_complete("GET / HTTP/1.1\r\nHost: example.com:8443\r\n\r\n");
  EXPECT_EQ(str(req->server_name), "example.com");
  EXPECT_EQ(str(req->server_port), "8443");
}

TEST(RequestParser, HostIPv6Literal) {
  auto req = expect_complete("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
  EXPECT_EQ(str(req->server_name), "[::1]");
  EXPECT_EQ(str(req->server_port), "8080");

  auto no_port = expect_complete("GET / HTTP/1.1\r\nHost: [2001:db8::a:1]\r\n\r\n");
  EXPECT_EQ(str(no_port->server_name), "[2001:db8::a:1]");
  EXPECT_EQ(str(no_port->server_port), "");
}

TEST(RequestParser, MissingHostOnHttp11Is400) { expect_error("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400); }

TEST(RequestParser, MissingHostOnHttp10IsFine) {
  auto req = expect_complete("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(req->http_minor, 0);
  EXPECT_EQ(str(req->server_name), "");
  EXPECT_EQ(str(req->server_port), "");
}

TEST(RequestParser, DuplicateHostIs400) {
  expect_error("GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: a.example\r\nhost: b.example\r\n\r\n", 400);
}

TEST(RequestParser, InvalidHostIs400) {
  expect_error("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: evil.example\"<x>\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: example.com:80a\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: example.com:123456\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: [zz::1]\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n", 400);
}

TEST(RequestParser, RepeatedHeadersAreMerged) {
  auto req = expect_complete(
      "GET / HTTP/1.1\r\nHost: h\r\nAccept: text/html\r\nX-List: a\r\nAccept: text/plain\r\n"
      "Cookie: a=1\r\nx-list: b\r\nCookie: b=2\r\n\r\n");
  EXPECT_EQ(env(*req, "HTTP_ACCEPT"), "text/html, text/plain");
  EXPECT_EQ(env(*req, "HTTP_X_LIST"), "a, b");
  EXPECT_EQ(env(*req, "HTTP_COOKIE"), "a=1; b=2");
  EXPECT_EQ(env_count(*req, "HTTP_ACCEPT"), 1u);
  EXPECT_EQ(env_count(*req, "HTTP_COOKIE"), 1u);
}

TEST(RequestParser, HeaderValueWhitespaceIsTrimmed) {
  auto req = expect_complete("GET / HTTP/1.1\r\nHost: h\r\nX-A:  \t spaced value \t \r\nX-B:\r\n\r\n");
  EXPECT_EQ(env(*req, "HTTP_X_A"), "spaced value");
  EXPECT_EQ(env(*req, "HTTP_X_B"), "");
}

TEST(RequestParser, ContentTypeAndLengthHaveNoHttpPrefix) {
  auto req = expect_complete(
      "POST /f HTTP/1.1\r\nHost: h\r\ncontent-type: application/json\r\nContent-Length: 2\r\n\r\n{}");
  EXPECT_EQ(env(*req, "CONTENT_TYPE"), "application/json");
  EXPECT_EQ(env(*req, "CONTENT_LENGTH"), "2");
  EXPECT_FALSE(env(*req, "HTTP_CONTENT_TYPE"));
  EXPECT_FALSE(env(*req, "HTTP_CONTENT_LENGTH"));
  EXPECT_EQ(str(req->body), "{}");
}

TEST(RequestParser, UnderscoreHeaderIsDropped) {
  auto req = expect_complete("GET / HTTP/1.1\r\nHost: h\r\nX-Foo: good\r\nX_Foo: evil\r\n\r\n");
  EXPECT_EQ(env(*req, "HTTP_X_FOO"), "good");
  EXPECT_EQ(env_count(*req, "HTTP_X_FOO"), 1u);

  // Order must not matter: the underscore spelling first, then the real one.
  auto rev = expect_complete("GET / HTTP/1.1\r\nHost: h\r\nX_Foo: evil\r\nX-Foo: good\r\n\r\n");
  EXPECT_EQ(env(*rev, "HTTP_X_FOO"), "good");

  auto alone = expect_complete("GET / HTTP/1.1\r\nHost: h\r\nX_Foo: evil\r\n\r\n");
  EXPECT_FALSE(env(*alone, "HTTP_X_FOO"));
  for (const auto& h : alone->headers) EXPECT_EQ(str(h.value).find("evil"), std::string::npos);

  // Not even Content_Length may pose as CONTENT_LENGTH.
  auto cl = expect_complete("GET / HTTP/1.1\r\nHost: h\r\nContent_Length: 5\r\n\r\n");
  EXPECT_FALSE(env(*cl, "CONTENT_LENGTH"));
}

TEST(RequestParser, BodyByContentLength) {
  auto req = expect_complete("POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world");
  EXPECT_EQ(str(req->body), "hello world");
  EXPECT_EQ(str(req->method), "POST");
}

TEST(RequestParser, ContentLengthZero) {
  auto req = expect_complete("POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
  EXPECT_FALSE(req->body);
  EXPECT_EQ(env(*req, "CONTENT_LENGTH"), "0");
}

TEST(RequestParser, BodyIncompleteNeedsMore) {
  RequestParser p(test::parser_limits());
  std::string in = "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello";
  auto r = p.feed(in.data(), in.size());
  EXPECT_EQ(r.state, State::NeedMore);
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_TRUE(p.head_complete()) << "in a message, its body under way";
  r = p.feed("world", 5);
  ASSERT_EQ(r.state, State::Complete);
  EXPECT_EQ(r.consumed, 5u);
  EXPECT_EQ(p.finish().state, State::NeedMore) << "no message under way: EOF cuts nothing";
  EXPECT_EQ(str(p.take()->body), "helloworld");
}

TEST(RequestParser, ChunkedBodyWithExtensionsAndTrailers) {
  std::string in =
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n"
      "6;quoted=\"a b\";flag\r\n world\r\n"
      "A\r\n0123456789\r\n"
      "0\r\nX-Trailer: t\r\nHost: evil.example\r\nCookie: injected=1\r\n\r\n";
  auto req = expect_complete(in);
  EXPECT_EQ(str(req->body), "hello world0123456789");
  EXPECT_FALSE(env(*req, "HTTP_X_TRAILER")) << "trailers are not request headers";
  EXPECT_FALSE(env(*req, "HTTP_COOKIE"));
  EXPECT_EQ(env(*req, "HTTP_HOST"), "h");
  EXPECT_EQ(str(req->server_name), "h");
  EXPECT_EQ(env(*req, "HTTP_TRANSFER_ENCODING"), "chunked");
  EXPECT_FALSE(env(*req, "CONTENT_LENGTH"));

  auto b = parse_bytewise(in);
  ASSERT_EQ(b.result.state, State::Complete);
  EXPECT_EQ(b.result.consumed, in.size());
  EXPECT_EQ(str(b.req->body), "hello world0123456789");
  EXPECT_FALSE(env(*b.req, "HTTP_X_TRAILER"));
  EXPECT_EQ(env(*b.req, "HTTP_HOST"), "h");
}

TEST(RequestParser, ChunkExtensionsBeyondTheirBudgetAre400) {
  std::string head = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  // Under the budget, spread over several chunks: still a request.
  std::string ok = head;
  for (int i = 0; i < 3; ++i) ok += "1;n=" + std::string(4000, 'v') + "\r\nx\r\n";
  expect_complete(ok + "0\r\n\r\n");
  // One 20 KB extension, as a name and as a value.
  expect_error(head + "1;" + std::string(20000, 'a') + "\r\nx\r\n0\r\n\r\n", 400);
  expect_error(head + "1;n=" + std::string(20000, 'a') + "\r\nx\r\n0\r\n\r\n", 400);
  // Many small ones add up, across chunks.
  std::string many = head;
  for (int i = 0; i < 20; ++i) many += "1;n=" + std::string(1000, 'v') + "\r\nx\r\n";
  expect_error(many + "0\r\n\r\n", 400);
}

TEST(RequestParser, AnEndlessChunkExtensionEndsInAnError) {
  RequestParser p(test::parser_limits());
  std::string head = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;";
  ASSERT_EQ(p.feed(head.data(), head.size()).state, State::NeedMore);
  std::string piece(16 * 1024, 'a');
  State state = State::NeedMore;
  size_t fed = 0;
  while (state == State::NeedMore && fed < 4 * 1024 * 1024) {
    state = p.feed(piece.data(), piece.size()).state;
    fed += piece.size();
  }
  EXPECT_EQ(state, State::Error);
  EXPECT_EQ(p.error_status(), 400);
  EXPECT_LE(fed, 32u * 1024) << "the budget is about 16 KiB";
}

// Fed in pieces, as a connection feeds it: what no callback reports
// (zeros before a chunk size, whitespace llhttp skips) is bounded too.
State feed_endless(std::string_view start, char filler, size_t* fed) {
  RequestParser p(test::parser_limits());
  std::string head = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  EXPECT_EQ(p.feed(head.data(), head.size()).state, State::NeedMore);
  State state = p.feed(start.data(), start.size()).state;
  std::string piece(16 * 1024, filler);
  *fed = 0;
  while (state == State::NeedMore && *fed < 4 * 1024 * 1024) {
    state = p.feed(piece.data(), piece.size()).state;
    *fed += piece.size();
  }
  if (state == State::Error) {
    EXPECT_EQ(p.error_status(), 400);
  }
  return state;
}

TEST(RequestParser, EndlessChunkFramingEndsInAnError) {
  size_t fed = 0;
  EXPECT_EQ(feed_endless("", '0', &fed), State::Error) << "leading zeros of a chunk size";
  EXPECT_LE(fed, 48u * 1024);
  EXPECT_EQ(feed_endless("1\r\nx\r\n0\r\nX-T:", ' ', &fed), State::Error)
      << "whitespace before a trailer value";
  EXPECT_LE(fed, 48u * 1024);
}

TEST(RequestParser, ManySmallChunksAreNotFraming) {
  RequestParser p(test::parser_limits());
  std::string in = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  ASSERT_EQ(p.feed(in.data(), in.size()).state, State::NeedMore);
  std::string chunks;
  for (int i = 0; i < 20000; ++i) chunks += "1\r\nx\r\n";
  chunks += "0000000000000010\r\n0123456789abcdef\r\n0\r\n\r\n";
  State state = State::NeedMore;
  for (size_t at = 0; at < chunks.size() && state == State::NeedMore; at += 1000) {
    auto r = p.feed(chunks.data() + at, std::min<size_t>(1000, chunks.size() - at));
    state = r.state;
  }
  ASSERT_EQ(state, State::Complete) << p.error_reason();
  EXPECT_EQ(p.take()->body->received(), 20016u);
}

TEST(RequestParser, TrailersBeyondTheBudgetAre400) {
  std::string head = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n";
  expect_complete(head + "X-T: " + std::string(8000, 't') + "\r\n\r\n");
  expect_error(head + "X-T: " + std::string(20000, 't') + "\r\n\r\n", 400);
  std::string many = head;
  for (int i = 0; i < 40; ++i) many += "X-T" + std::to_string(i) + ": " + std::string(500, 't') + "\r\n";
  expect_error(many + "\r\n", 400);
}

TEST(RequestParser, ContentLengthTrailerNeverBecomesContentLength) {
  // Refusing the request (what llhttp does) or ignoring the trailer are
  // both safe; a CONTENT_LENGTH of 999 is not.
  std::string in =
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\nContent-Length: 999\r\n\r\n";
  for (bool bytewise : {false, true}) {
    Parsed r = bytewise ? parse_bytewise(in) : parse(in);
    if (r.result.state == State::Error) {
      EXPECT_EQ(r.status, 400);
    } else {
      ASSERT_EQ(r.result.state, State::Complete);
      EXPECT_FALSE(env(*r.req, "CONTENT_LENGTH"));
      EXPECT_EQ(str(r.req->body), "abc");
    }
  }
}

TEST(RequestParser, ContentLengthWithTransferEncodingIs400) {
  expect_error(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n",
      400);
  expect_error(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n",
      400);
}

TEST(RequestParser, TransferEncodingOtherThanChunkedIs400) {
  // A request body that is not chunked last has no length (RFC 9112 6.3).
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabc", 400);
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc", 400);
}

TEST(RequestParser, BadContentLengthIs400) {
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400);
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1a\r\n\r\nab", 400);
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\na", 400);
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", 400);
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n", 400);
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400);
}

TEST(RequestParser, RepeatedContentLengthIs400) {
  Parsed same = parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab");
  EXPECT_EQ(same.result.state, State::Error);
  EXPECT_EQ(same.status, 400);
  EXPECT_EQ(same.reason.find("Transfer-Encoding"), std::string::npos)
      << "the reason names what was wrong: " << same.reason;
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400);
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\nab", 400);
}

TEST(RequestParser, InvalidChunkSizeIs400) {
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400);
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n", 400);
  // Chunk data longer than its size line says.
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", 400);
  // A chunk size that overflows 64 bits.
  expect_error(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n1ffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
      400);
}

TEST(RequestParser, SpaceInTargetIs400) {
  expect_error("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  expect_error("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", 400);
}

TEST(RequestParser, WhitespaceBeforeColonIs400) {
  expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-Foo : bar\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-Foo\t: bar\r\n\r\n", 400);
}

TEST(RequestParser, ObsFoldIs400) {
  expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-Foo: bar\r\n baz\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-Foo: bar\r\n\tbaz\r\n\r\n", 400);
}

TEST(RequestParser, ControlCharactersInHeaderValueAre400) {
  expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-Foo: a\0b\r\n\r\n"s, 400);
  expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-Foo: a\x01z\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-Foo: a\x7fz\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-Foo: a\rb\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-Foo: a\nb: c\r\n\r\n", 400);
}

TEST(RequestParser, BareLfLineEndingsAre400) { expect_error("GET / HTTP/1.1\nHost: h\n\n", 400); }

TEST(RequestParser, InvalidHeaderNameIs400) {
  expect_error("GET / HTTP/1.1\r\nHost: h\r\nX(Foo): bar\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\nHost: h\r\n: bar\r\n\r\n", 400);
}

TEST(RequestParser, TabAndObsTextInHeaderValueAreAllowed) {
  auto req = expect_complete("GET / HTTP/1.1\r\nHost: h\r\nX-Foo: a\tb \xc3\xa9\r\n\r\n");
  EXPECT_EQ(env(*req, "HTTP_X_FOO"), "a\tb \xc3\xa9");
}

TEST(RequestParser, UnsupportedHttpVersions) {
  // A well-formed version we do not speak is 505 (RFC 9110 15.6.6), not a
  // syntax error.
  for (const char* version : {"HTTP/2.0", "HTTP/1.2", "HTTP/3.0", "HTTP/0.9", "HTTP/1.9"}) {
    std::string in = std::string("GET / ") + version + "\r\nHost: h\r\n\r\n";
    Parsed r = parse(in);
    EXPECT_EQ(r.result.state, State::Error) << version;
    EXPECT_EQ(r.status, 505) << version << " gave " << r.status << " " << r.reason;
  }
  expect_error("GET / HTTP/1.x\r\nHost: h\r\n\r\n", 400);
  expect_error("GET / http/1.1\r\nHost: h\r\n\r\n", 400);
  expect_error("GET / HTTP/11.1\r\nHost: h\r\n\r\n", 400);
}

TEST(RequestParser, RejectionReasonsAreWordsNotErrorCodes) {
  Parsed r = parse("GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(std::string(r.reason).find("HPE_"), std::string::npos) << r.reason;
  EXPECT_FALSE(std::string(r.reason).empty());
}

TEST(RequestParser, ConnectIsRefused) {
  Parsed r = parse("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
  EXPECT_EQ(r.result.state, State::Error);
  EXPECT_EQ(r.status, 405);
}

TEST(RequestParser, UriTooLongIs414) {
  ParserLimits limits = test::parser_limits();
  limits.max_uri_size = 32;
  std::string ok = "GET /" + std::string(31, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  expect_complete(ok, limits);
  std::string too_long = "GET /" + std::string(32, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n";
  expect_error(too_long, 414, limits);
  // Default limit: 8 KiB.
  expect_error("GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n", 414);
}

TEST(RequestParser, HeadTooLargeIs431) {
  ParserLimits limits = test::parser_limits();
  limits.max_header_size = 256;
  expect_complete("GET / HTTP/1.1\r\nHost: h\r\nX-A: " + std::string(100, 'v') + "\r\n\r\n", limits);
  expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-A: " + std::string(300, 'v') + "\r\n\r\n", 431, limits);
  // Many small headers add up.
  std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 40; ++i) many += "X-" + std::to_string(i) + ": vvvvvvvvvv\r\n";
  expect_error(many + "\r\n", 431, limits);
  // A long header name counts too.
  expect_error("GET / HTTP/1.1\r\nHost: h\r\nX-" + std::string(300, 'n') + ": v\r\n\r\n", 431, limits);
}

TEST(RequestParser, WhitespacePaddingCountsTowardsHeadSize) {
  // llhttp passes no callback for the optional whitespace before a value;
  // a head padded with it and sent in pieces must still hit the limit.
  ParserLimits limits = test::parser_limits();
  limits.max_header_size = 256;
  std::string in = "GET / HTTP/1.1\r\nHost: h\r\nX-A:" + std::string(100000, ' ') + "v\r\n\r\n";
  RequestParser p(limits);
  RequestParser::Result r{State::NeedMore, 0};
  size_t at = 0;
  while (at < in.size() && r.state == State::NeedMore) {
    size_t n = std::min<size_t>(1000, in.size() - at);
    r = p.feed(in.data() + at, n);
    at += n;
  }
  EXPECT_EQ(r.state, State::Error);
  EXPECT_EQ(p.error_status(), 431);
  EXPECT_LT(at, 10000u) << "refused early, not after the whole padding";
}

TEST(RequestParser, HeadSpreadOverReadsWithinLimitIsFine) {
  ParserLimits limits = test::parser_limits();
  limits.max_header_size = 256;
  std::string in = "GET / HTTP/1.1\r\nHost: h\r\nX-A: " + std::string(150, 'v') + "\r\n\r\n";
  Parsed b = parse_bytewise(in, limits);
  EXPECT_EQ(b.result.state, State::Complete) << b.status << " " << b.reason;
}

TEST(RequestParser, TooManyHeadersIs431) {
  ParserLimits limits = test::parser_limits();
  limits.max_headers = 5;
  std::string head = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 4; ++i) head += "X-" + std::to_string(i) + ": v\r\n";
  expect_complete(head + "\r\n", limits);  // exactly 5
  expect_error(head + "X-Extra: v\r\n\r\n", 431, limits);
  // Repeated names count one by one as well.
  std::string repeated = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 6; ++i) repeated += "Accept: v\r\n";
  expect_error(repeated + "\r\n", 431, limits);
}

TEST(RequestParser, TrailersDoNotCountAsHeaders) {
  ParserLimits limits = test::parser_limits();
  limits.max_headers = 3;
  auto req = expect_complete(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "1\r\na\r\n0\r\nT1: a\r\nT2: b\r\nT3: c\r\n\r\n",
      limits);
  EXPECT_EQ(str(req->body), "a");
}

TEST(RequestParser, DeclaredBodyTooLargeIs413) {
  ParserLimits limits = test::parser_limits();
  limits.max_body_size = 10;
  expect_complete("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789", limits);
  // Refused from the head alone, before any body byte arrives.
  expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n", 413, limits);
}

TEST(RequestParser, ChunkedBodyTooLargeIs413) {
  ParserLimits limits = test::parser_limits();
  limits.max_body_size = 10;
  expect_complete(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n",
      limits);
  expect_error(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5\r\n01234\r\n6\r\n56789a\r\n0\r\n\r\n",
      413, limits);
}

TEST(RequestParser, UnlimitedBodyWhenMaxIsZero) {
  ParserLimits limits = test::parser_limits();
  limits.max_body_size = 0;
  std::string body(100000, 'b');
  auto req = expect_complete(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body,
      limits);
  EXPECT_EQ(str(req->body).size(), body.size());
}

TEST(RequestParser, PipelinedRequestsAreSplitExactly) {
  std::string first = "POST /one HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
  std::string second = "GET /two?x HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string third = "GET /three HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  std::string all = first + second + third;
  RequestParser p(test::parser_limits());

  auto r = p.feed(all.data(), all.size());
  ASSERT_EQ(r.state, State::Complete);
  EXPECT_EQ(r.consumed, first.size());
  auto one = p.take();
  EXPECT_EQ(str(one->path), "/one");
  EXPECT_EQ(str(one->body), "abc");
  EXPECT_FALSE(p.take()) << "take() hands a request out once";

  size_t at = r.consumed;
  r = p.feed(all.data() + at, all.size() - at);
  ASSERT_EQ(r.state, State::Complete);
  EXPECT_EQ(r.consumed, second.size());
  auto two = p.take();
  EXPECT_EQ(str(two->path), "/two");
  EXPECT_EQ(str(two->query), "x");
  EXPECT_FALSE(two->body);
  EXPECT_TRUE(two->keep_alive);

  at += r.consumed;
  r = p.feed(all.data() + at, all.size() - at);
  ASSERT_EQ(r.state, State::Complete);
  EXPECT_EQ(r.consumed, third.size());
  auto three = p.take();
  EXPECT_EQ(str(three->path), "/three");
  EXPECT_FALSE(three->keep_alive);
  EXPECT_NE(one.get(), two.get());
}

TEST(RequestParser, PipelinedPartialSecondRequest) {
  std::string first = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string second = "GET /two HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string in = first + second.substr(0, 10);
  RequestParser p(test::parser_limits());
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(r.state, State::Complete);
  EXPECT_EQ(r.consumed, first.size());
  EXPECT_EQ(str(p.take()->path), "/one");
  EXPECT_EQ(p.finish().state, State::NeedMore) << "no message under way: EOF cuts nothing";
  r = p.feed(in.data() + first.size(), 10);
  EXPECT_EQ(r.state, State::NeedMore);
  EXPECT_EQ(r.consumed, 10u);
  EXPECT_TRUE(cut_by_eof(in)) << "ten bytes of the next request are a message under way";
  r = p.feed(second.data() + 10, second.size() - 10);
  ASSERT_EQ(r.state, State::Complete);
  EXPECT_EQ(str(p.take()->path), "/two");
}

TEST(RequestParser, ByteByByteParsesIdentically) {
  std::string in =
      "POST /a/b?c=d HTTP/1.1\r\nHost: example.com:81\r\nCookie: a=1\r\nCookie: b=2\r\n"
      "Content-Type: text/plain\r\nX-Dup: 1\r\nX-Dup: 2\r\nContent-Length: 5\r\n\r\nhello";
  Parsed whole = parse(in);
  Parsed bytes = parse_bytewise(in);
  ASSERT_EQ(whole.result.state, State::Complete);
  ASSERT_EQ(bytes.result.state, State::Complete);
  EXPECT_EQ(bytes.result.consumed, in.size());
  const RequestCtx& a = *whole.req;
  const RequestCtx& b = *bytes.req;
  EXPECT_EQ(str(a.method), str(b.method));
  EXPECT_EQ(str(a.target), str(b.target));
  EXPECT_EQ(str(a.path), "/a/b");
  EXPECT_EQ(str(b.path), "/a/b");
  EXPECT_EQ(str(b.query), "c=d");
  EXPECT_EQ(str(b.body), "hello");
  EXPECT_EQ(str(b.server_name), "example.com");
  EXPECT_EQ(str(b.server_port), "81");
  ASSERT_EQ(a.headers.size(), b.headers.size());
  for (size_t i = 0; i < a.headers.size(); ++i) {
    EXPECT_EQ(str(a.headers[i].key), str(b.headers[i].key));
    EXPECT_EQ(str(a.headers[i].value), str(b.headers[i].value));
  }
  EXPECT_EQ(env(b, "HTTP_COOKIE"), "a=1; b=2");
  EXPECT_EQ(env(b, "HTTP_X_DUP"), "1, 2");
  EXPECT_EQ(env(b, "CONTENT_TYPE"), "text/plain");
  EXPECT_EQ(a.keep_alive, b.keep_alive);
}

TEST(RequestParser, ByteByBytePipelining) {
  std::string in = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
  RequestParser p(test::parser_limits());
  std::vector<std::string> paths;
  for (size_t i = 0; i < in.size(); ++i) {
    auto r = p.feed(in.data() + i, 1);
    ASSERT_NE(r.state, State::Error) << "at " << i;
    ASSERT_EQ(r.consumed, 1u);
    if (r.state == State::Complete) paths.push_back(str(p.take()->path));
  }
  EXPECT_EQ(paths, (std::vector<std::string>{"/1", "/2"}));
}

TEST(RequestParser, KeepAliveHttp10) {
  EXPECT_FALSE(expect_complete("GET / HTTP/1.0\r\n\r\n")->keep_alive);
  EXPECT_TRUE(expect_complete("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")->keep_alive);
  EXPECT_TRUE(expect_complete("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")->keep_alive);
  EXPECT_FALSE(expect_complete("GET / HTTP/1.0\r\nConnection: close\r\n\r\n")->keep_alive);
}

TEST(RequestParser, KeepAliveHttp11) {
  EXPECT_TRUE(expect_complete("GET / HTTP/1.1\r\nHost: h\r\n\r\n")->keep_alive);
  EXPECT_FALSE(expect_complete("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")->keep_alive);
  EXPECT_FALSE(expect_complete("GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n")->keep_alive);
  EXPECT_FALSE(
      expect_complete("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n")->keep_alive);
  EXPECT_TRUE(expect_complete("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")->keep_alive);
}

TEST(RequestParser, ExpectContinueIsMarkedOnTheRequest) {
  RequestParser p(test::parser_limits());
  std::string head = "POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
  auto r = p.feed(head.data(), head.size());
  EXPECT_EQ(r.state, State::NeedMore);
  ASSERT_TRUE(p.request_awaiting_body()) << "the head is complete: the request can go to a worker";
  EXPECT_TRUE(p.request_awaiting_body()->expect_continue);
  EXPECT_FALSE(p.request_awaiting_body()->body->complete());
  r = p.feed("data", 4);
  ASSERT_EQ(r.state, State::Complete);
  EXPECT_FALSE(p.request_awaiting_body()) << "no request awaits its body between requests";
  auto req = p.take();
  EXPECT_TRUE(req->body->complete());
  EXPECT_EQ(str(req->body), "data");
  EXPECT_EQ(env(*req, "HTTP_EXPECT"), "100-continue");
}

TEST(RequestParser, ExpectContinueNeedsABodyAndHttp11) {
  EXPECT_FALSE(expect_complete("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n")->expect_continue);
  {
    RequestParser p(test::parser_limits());
    std::string in = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    EXPECT_EQ(p.feed(in.data(), in.size()).state, State::NeedMore);
    EXPECT_FALSE(p.request_awaiting_body()->expect_continue);
  }
  {
    RequestParser p(test::parser_limits());
    std::string in =
        "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n";
    EXPECT_EQ(p.feed(in.data(), in.size()).state, State::NeedMore);
    EXPECT_TRUE(p.request_awaiting_body()->expect_continue);
    EXPECT_EQ(p.request_awaiting_body()->body->expected_length(), 0u);
  }
}

TEST(RequestParser, StreamingBodyGrowsWhileTheRequestIsOut) {
  RequestParser p(test::parser_limits());
  std::string head = "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n\r\nab";
  ASSERT_EQ(p.feed(head.data(), head.size()).state, State::NeedMore);
  RequestRef out = p.request_awaiting_body();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->body->expected_length(), 6u);
  char buf[16];
  auto r = out->body->read(buf, sizeof buf, std::chrono::steady_clock::now());
  ASSERT_EQ(r.status, RequestBody::ReadStatus::Data);
  EXPECT_EQ(std::string(buf, r.bytes), "ab");
  EXPECT_EQ(out->body->read(buf, sizeof buf, std::chrono::steady_clock::now()).status,
            RequestBody::ReadStatus::Waiting);
  ASSERT_EQ(p.feed("cdef", 4).state, State::Complete);
  EXPECT_EQ(p.take().get(), out.get()) << "the same record completes";
  r = out->body->read(buf, sizeof buf, std::chrono::steady_clock::now());
  ASSERT_EQ(r.status, RequestBody::ReadStatus::Data);
  EXPECT_EQ(std::string(buf, r.bytes), "cdef");
  EXPECT_EQ(out->body->read(buf, sizeof buf, std::chrono::steady_clock::now()).status,
            RequestBody::ReadStatus::End);
  EXPECT_TRUE(out->keep_alive) << "decided from the head";
}

TEST(RequestParser, ChunkedOnHttp10IsNeverKeptAlive) {
  auto req = expect_complete(
      "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  EXPECT_FALSE(req->keep_alive);
  EXPECT_EQ(str(req->body), "abc");
}

TEST(RequestParser, LargeBodySpoolsThroughTheGivenStorage) {
  BodyStorage storage{8, "/tmp"};
  RequestParser p(test::parser_limits(), storage);
  std::string in = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\n0123456789abcdefghij";
  ASSERT_EQ(p.feed(in.data(), in.size()).state, State::Complete);
  auto req = p.take();
  EXPECT_TRUE(req->body->spooled());
  EXPECT_EQ(str(req->body), "0123456789abcdefghij");
}

TEST(RequestParser, HeadSetsHeadFlag) {
  auto req = expect_complete("HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_TRUE(req->head);
  EXPECT_EQ(str(req->method), "HEAD");
  EXPECT_FALSE(expect_complete("GET /x HTTP/1.1\r\nHost: h\r\n\r\n")->head);
}

TEST(RequestParser, GarbageIs400) {
  expect_error("GARBAGE\r\n\r\n", 400);
  expect_error("\x01\x02\x03\x04 / HTTP/1.1\r\n\r\n", 400);
  expect_error("get / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  expect_error("GET\r\n\r\n", 400);
}

TEST(RequestParser, TlsClientHelloIs400) {
  // The start of a TLS 1.2/1.3 ClientHello record: someone spoke https to
  // a plain port.
  const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
                                 0x5a, 0x9b, 0x11, 0x00, 0x7f, 0xe0, 0x20, 0x41, 0x42, 0x43, 0x44};
  expect_error(std::string_view(reinterpret_cast<const char*>(hello), sizeof hello), 400);
}

TEST(RequestParser, FeedAfterErrorStaysError) {
  RequestParser p(test::parser_limits());
  std::string bad = "BAD\x01 / HTTP/1.1\r\n\r\n";
  EXPECT_EQ(p.feed(bad.data(), bad.size()).state, State::Error);
  int status = p.error_status();
  std::string good = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  auto r = p.feed(good.data(), good.size());
  EXPECT_EQ(r.state, State::Error);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(p.error_status(), status);
}

TEST(RequestParser, FinishMidRequestIsError) {
  {
    RequestParser p(test::parser_limits());
    std::string in = "GET / HTTP/1.1\r\nHost: h\r\n";
    EXPECT_EQ(p.feed(in.data(), in.size()).state, State::NeedMore);
    EXPECT_TRUE(cut_by_eof(in)) << "a head under way is a message under way";
    EXPECT_EQ(p.finish().state, State::Error);
    EXPECT_EQ(p.error_status(), 400);
  }
  {
    RequestParser p(test::parser_limits());
    std::string in = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc";
    EXPECT_EQ(p.feed(in.data(), in.size()).state, State::NeedMore);
    EXPECT_EQ(p.finish().state, State::Error);
  }
  {
    RequestParser p(test::parser_limits());
    std::string in = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
    EXPECT_EQ(p.feed(in.data(), in.size()).state, State::NeedMore);
    EXPECT_EQ(p.finish().state, State::Error);
  }
}

TEST(RequestParser, FinishBetweenRequestsIsClean) {
  RequestParser p(test::parser_limits());
  EXPECT_EQ(p.finish().state, State::NeedMore);
  std::string in = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  ASSERT_EQ(p.feed(in.data(), in.size()).state, State::Complete);
  p.take();
  auto r = p.finish();  // no message under way: EOF cuts nothing
  EXPECT_EQ(r.state, State::NeedMore);
  EXPECT_EQ(p.error_status(), 0);
}

TEST(RequestParser, UpgradeRequestIsAnsweredAsPlainRequest) {
  // We speak no Upgrade: the request is a normal one and whatever follows
  // on the connection is parsed as HTTP again.
  std::string first = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  std::string second = "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
  std::string all = first + second;
  RequestParser p(test::parser_limits());
  auto r = p.feed(all.data(), all.size());
  ASSERT_EQ(r.state, State::Complete);
  EXPECT_EQ(r.consumed, first.size());
  RequestRef upgrade = p.take();
  EXPECT_EQ(str(upgrade->path), "/ws");
  EXPECT_FALSE(upgrade->keep_alive) << "an Upgrade not honoured ends the connection after its response";
  // The caller loops while input is left, as the connection does.
  size_t at = r.consumed;
  RequestRef next;
  for (int i = 0; i < 4 && !next; ++i) {
    r = p.feed(all.data() + at, all.size() - at);
    ASSERT_NE(r.state, State::Error) << p.error_reason();
    at += r.consumed;
    if (r.state == State::Complete) next = p.take();
  }
  ASSERT_TRUE(next);
  EXPECT_EQ(str(next->path), "/next");
  EXPECT_TRUE(next->keep_alive);
  EXPECT_EQ(at, all.size());
  // An Upgrade header alone (no `Connection: upgrade`) asks for nothing.
  auto plain = expect_complete("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_TRUE(plain->keep_alive);
}

TEST(RequestParser, TransferCodingsOtherThanChunkedGet501) {
  ParserLimits limits = test::parser_limits();
  RequestParser parser(limits);
  std::string raw = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
  auto r = parser.feed(raw.data(), raw.size());
  EXPECT_EQ(r.state, RequestParser::State::Error);
  EXPECT_EQ(parser.error_status(), 501);
}

TEST(RequestParser, RequestLineOfARefusedRequest) {
  ParserLimits limits = test::parser_limits();
  limits.max_header_size = 64;
  RequestParser p(limits);
  p.note_versions();
  p.set_peer("10.1.2.3", 8080);
  EXPECT_EQ(p.peer(), "10.1.2.3");
  std::string in = "POST /up HTTP/1.0\r\nX-Big: " + std::string(100, 'a') + "\r\n\r\n";
  ASSERT_EQ(p.feed(in.data(), in.size()).state, State::Error);
  EXPECT_EQ(p.error_status(), 431);
  RequestParser::RequestLine line = p.request_line();
  EXPECT_EQ(line.method, "POST");
  EXPECT_EQ(line.target, "/up");
  EXPECT_EQ(line.http_major, 1);
  EXPECT_EQ(line.http_minor, 0);
}

TEST(RequestParser, RequestLineBeforeItsVersion) {
  ParserLimits limits = test::parser_limits();
  limits.max_uri_size = 8;
  RequestParser p(limits);
  p.note_versions();
  // The version of the request before stays that request's.
  std::string in = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /far-too-long HTTP/1.0\r\n";
  auto r = p.feed(in.data(), in.size());
  ASSERT_EQ(r.state, State::Complete);
  p.take();
  EXPECT_EQ(p.request_line().method, "") << "nothing read of the next request yet";
  ASSERT_EQ(p.feed(in.data() + r.consumed, in.size() - r.consumed).state, State::Error);
  EXPECT_EQ(p.error_status(), 414);
  RequestParser::RequestLine line = p.request_line();
  EXPECT_EQ(line.method, "GET");
  EXPECT_EQ(line.http_major, 0) << "the version was not read";
}

TEST(RequestParser, VersionsAreNotNotedUnlessAsked) {
  ParserLimits limits = test::parser_limits();
  limits.max_header_size = 64;
  RequestParser p(limits);
  std::string in = "GET / HTTP/1.1\r\nX-Big: " + std::string(100, 'a') + "\r\n\r\n";
  ASSERT_EQ(p.feed(in.data(), in.size()).state, State::Error);
  EXPECT_EQ(p.request_line().method, "GET");
  EXPECT_EQ(p.request_line().http_major, 0);
}
