#include "http1/responder.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test_sink.hpp"

using namespace kino;
using test::parse_response;
using test::RecordingSink;

namespace {

struct Fixture {
  std::shared_ptr<RecordingSink> sink = std::make_shared<RecordingSink>();
  RequestRef req{new RequestCtx()};

  explicit Fixture(int minor = 1, bool keep_alive = true, bool head = false) {
    req->method = head ? "HEAD" : "GET";
    req->http_major = 1;
    req->http_minor = static_cast<uint8_t>(minor);
    req->keep_alive = keep_alive;
    req->head = head;
    req->sink = sink;
  }
};

using Headers = std::vector<HeaderView>;
using Body = std::vector<std::string_view>;

bool respond_with(RequestCtx& req, int status, Headers headers, Body body, bool closing = false) {
  return respond(req, status, headers, body, closing);
}

}  // namespace

TEST(Responder, FullResponse) {
  Fixture f;
  ASSERT_TRUE(respond_with(*f.req, 200, {{"content-type", "text/plain"}}, {"hello ", "world"}));
  auto sent = f.sink->sent();
  ASSERT_EQ(sent.size(), 1u) << "one write for a complete response";
  EXPECT_TRUE(sent[0].last);
  EXPECT_TRUE(sent[0].keep_alive);
  auto r = parse_response(sent[0].bytes);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.get("content-type"), "text/plain");
  EXPECT_EQ(r.get("content-length"), "11");
  EXPECT_TRUE(r.get("date"));
  EXPECT_EQ(r.count("connection"), 0u);
  EXPECT_EQ(r.count("transfer-encoding"), 0u);
  EXPECT_EQ(r.body, "hello world");
  EXPECT_FALSE(f.req->sink) << "the sink is let go once the response is complete";
  EXPECT_TRUE(f.req->claimed());
  EXPECT_TRUE(f.req->response.finished);
}

TEST(Responder, EmptyBodyHasContentLengthZero) {
  Fixture f;
  ASSERT_TRUE(respond_with(*f.req, 404, {}, {}));
  auto r = parse_response(f.sink->wire());
  EXPECT_EQ(r.status_line, "HTTP/1.1 404 Not Found");
  EXPECT_EQ(r.get("content-length"), "0");
  EXPECT_EQ(r.body, "");
}

TEST(Responder, StreamedHttp11IsChunked) {
  Fixture f;
  ASSERT_TRUE(start_response(*f.req, 200, Headers{{"content-type", "text/event-stream"}}));
  EXPECT_TRUE(write_body(*f.req, "hello"));
  EXPECT_TRUE(write_body(*f.req, " world!"));
  finish_response(*f.req);
  auto sent = f.sink->sent();
  ASSERT_GE(sent.size(), 4u);
  for (size_t i = 0; i + 1 < sent.size(); ++i) EXPECT_FALSE(sent[i].last) << i;
  EXPECT_TRUE(sent.back().last);
  EXPECT_TRUE(sent.back().keep_alive);
  auto r = parse_response(f.sink->wire());
  EXPECT_EQ(r.get("transfer-encoding"), "chunked");
  EXPECT_EQ(r.count("content-length"), 0u);
  EXPECT_EQ(r.body, "5\r\nhello\r\n7\r\n world!\r\n0\r\n\r\n");
  EXPECT_FALSE(f.req->sink);
  // Nothing more once finished.
  EXPECT_FALSE(write_body(*f.req, "late"));
  finish_response(*f.req);
  EXPECT_EQ(f.sink->sent().size(), sent.size());
}

TEST(Responder, StreamedWithAppContentLength) {
  Fixture f;
  ASSERT_TRUE(start_response(*f.req, 200, Headers{{"Content-Length", "8"}}));
  EXPECT_TRUE(write_body(*f.req, "abcde"));
  EXPECT_TRUE(write_body(*f.req, "fghij"));  // two bytes too many
  EXPECT_TRUE(write_body(*f.req, "k"));
  finish_response(*f.req);
  auto r = parse_response(f.sink->wire());
  EXPECT_EQ(r.get("content-length"), "8");
  EXPECT_EQ(r.count("transfer-encoding"), 0u);
  EXPECT_EQ(r.body, "abcdefgh") << "never more than declared";
  EXPECT_TRUE(f.sink->sent().back().keep_alive);
}

TEST(Responder, StreamedShortOfAppContentLengthCloses) {
  Fixture f;
  ASSERT_TRUE(start_response(*f.req, 200, Headers{{"Content-Length", "8"}}));
  EXPECT_TRUE(write_body(*f.req, "abc"));
  finish_response(*f.req);
  EXPECT_FALSE(f.sink->sent().back().keep_alive) << "the client would wait for 5 more bytes";
}

TEST(Responder, StreamedHttp10RunsUntilClose) {
  Fixture f(0, true);
  ASSERT_TRUE(start_response(*f.req, 200, Headers{}));
  EXPECT_TRUE(write_body(*f.req, "part1-"));
  EXPECT_TRUE(write_body(*f.req, "part2"));
  finish_response(*f.req);
  auto r = parse_response(f.sink->wire());
  EXPECT_EQ(r.count("transfer-encoding"), 0u) << "HTTP/1.0 has no chunked coding";
  EXPECT_EQ(r.count("content-length"), 0u);
  EXPECT_EQ(r.get("connection"), "close");
  EXPECT_EQ(r.body, "part1-part2");
  for (const auto& s : f.sink->sent()) EXPECT_FALSE(s.keep_alive);
}

TEST(Responder, Http10KeepAliveIsAnnounced) {
  Fixture f(0, true);
  ASSERT_TRUE(respond_with(*f.req, 200, {}, {"ok"}));
  auto r = parse_response(f.sink->wire());
  EXPECT_EQ(r.get("connection"), "keep-alive");
  EXPECT_EQ(r.get("content-length"), "2");
  EXPECT_TRUE(f.sink->sent().back().keep_alive);
}

TEST(Responder, Http10WithoutKeepAliveCloses) {
  Fixture f(0, false);
  ASSERT_TRUE(respond_with(*f.req, 200, {}, {"ok"}));
  auto r = parse_response(f.sink->wire());
  EXPECT_EQ(r.get("connection"), "close");
  EXPECT_FALSE(f.sink->sent().back().keep_alive);
}

TEST(Responder, Http11ClientCloseIsAnswered) {
  Fixture f(1, false);
  ASSERT_TRUE(respond_with(*f.req, 200, {}, {"ok"}));
  EXPECT_EQ(parse_response(f.sink->wire()).get("connection"), "close");
  EXPECT_FALSE(f.sink->sent().back().keep_alive);
}

TEST(Responder, HeadSendsLengthButNoBody) {
  Fixture f(1, true, true);
  ASSERT_TRUE(respond_with(*f.req, 200, {{"content-type", "text/html"}}, {"<html></html>"}));
  std::string wire = f.sink->wire();
  auto r = parse_response(wire);
  EXPECT_EQ(r.get("content-length"), "13");
  EXPECT_EQ(r.body, "") << "no body bytes for HEAD";
  EXPECT_EQ(wire.substr(wire.size() - 4), "\r\n\r\n");
  EXPECT_TRUE(f.sink->sent().back().keep_alive);
}

TEST(Responder, HeadStreamedSendsNoBodyAndNoChunking) {
  Fixture f(1, true, true);
  ASSERT_TRUE(start_response(*f.req, 200, Headers{}));
  EXPECT_TRUE(write_body(*f.req, "ignored"));
  finish_response(*f.req);
  auto r = parse_response(f.sink->wire());
  EXPECT_EQ(r.count("transfer-encoding"), 0u);
  EXPECT_EQ(r.body, "");
  EXPECT_TRUE(f.sink->sent().back().keep_alive);
}

TEST(Responder, NoBodyStatusesHaveNoBodyAndNoLength) {
  for (int status : {204, 304}) {
    Fixture f;
    ASSERT_TRUE(respond_with(*f.req, status, {{"content-length", "5"}, {"etag", "\"x\""}}, {"hello"}));
    auto r = parse_response(f.sink->wire());
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(r.count("content-length"), 0u) << status;
    EXPECT_EQ(r.count("transfer-encoding"), 0u) << status;
    EXPECT_EQ(r.body, "") << status;
    EXPECT_TRUE(f.sink->sent().back().keep_alive) << status;
  }
  Fixture streamed;
  ASSERT_TRUE(start_response(*streamed.req, 204, Headers{}));
  EXPECT_TRUE(write_body(*streamed.req, "dropped"));
  finish_response(*streamed.req);
  auto r = parse_response(streamed.sink->wire());
  EXPECT_EQ(r.count("transfer-encoding"), 0u);
  EXPECT_EQ(r.body, "");
}

TEST(Responder, AppContentLengthHonouredAndBodyTruncated) {
  Fixture f;
  ASSERT_TRUE(respond_with(*f.req, 200, {{"Content-Length", "3"}}, {"he", "llo"}));
  auto r = parse_response(f.sink->wire());
  EXPECT_EQ(r.all("content-length"), (std::vector<std::string>{"3"}));
  EXPECT_EQ(r.body, "hel");
  EXPECT_TRUE(f.sink->sent().back().keep_alive);
}

TEST(Responder, AppContentLengthLongerThanBodyClosesConnection) {
  Fixture f;
  ASSERT_TRUE(respond_with(*f.req, 200, {{"Content-Length", "10"}}, {"short"}));
  auto r = parse_response(f.sink->wire());
  EXPECT_EQ(r.get("content-length"), "10");
  EXPECT_EQ(r.body, "short");
  EXPECT_FALSE(f.sink->sent().back().keep_alive) << "the connection cannot be reused";
}

TEST(Responder, AppFramingHeadersAreReplaced) {
  Fixture f;
  ASSERT_TRUE(respond_with(*f.req, 200,
                           {{"Transfer-Encoding", "chunked"},
                            {"Connection", "upgrade"},
                            {"Date", "Mon, 01 Jan 1990 00:00:00 GMT"},
                            {"X-App", "1"}},
                           {"body"}));
  auto r = parse_response(f.sink->wire());
  EXPECT_EQ(r.count("transfer-encoding"), 0u);
  EXPECT_EQ(r.count("connection"), 0u);
  ASSERT_EQ(r.count("date"), 1u);
  EXPECT_NE(r.get("date"), "Mon, 01 Jan 1990 00:00:00 GMT");
  EXPECT_EQ(r.get("content-length"), "4");
  EXPECT_EQ(r.body, "body") << "not chunk-framed because the app said chunked";
  EXPECT_EQ(r.get("x-app"), "1");
}

TEST(Responder, AppConnectionCloseIsHonoured) {
  Fixture f;
  ASSERT_TRUE(respond_with(*f.req, 200, {{"Connection", "close"}}, {"x"}));
  auto r = parse_response(f.sink->wire());
  EXPECT_EQ(r.all("connection"), (std::vector<std::string>{"close"}));
  EXPECT_FALSE(f.sink->sent().back().keep_alive);
}

TEST(Responder, ServerClosingSaysClose) {
  Fixture f;
  ASSERT_TRUE(respond_with(*f.req, 200, {}, {"x"}, true));
  EXPECT_EQ(parse_response(f.sink->wire()).get("connection"), "close");
  EXPECT_FALSE(f.sink->sent().back().keep_alive);

  Fixture g;
  g.sink->draining_ = true;  // the sink's server is draining
  ASSERT_TRUE(respond_with(*g.req, 200, {}, {"x"}));
  EXPECT_EQ(parse_response(g.sink->wire()).get("connection"), "close");
  EXPECT_FALSE(g.sink->sent().back().keep_alive);
}

TEST(Responder, InvalidHeadersDroppedAndLogged) {
  Fixture f;
  ASSERT_TRUE(respond_with(*f.req, 200,
                           {{"X-Split", "a\r\nSet-Cookie: evil=1"},
                            {"X-Nul", std::string_view("a\0b", 3)},
                            {"Bad Name", "v"},
                            {"X-Fine", "ok"}},
                           {"x"}));
  std::string wire = f.sink->wire();
  auto r = parse_response(wire);
  EXPECT_EQ(r.count("set-cookie"), 0u);
  EXPECT_EQ(r.count("x-split"), 0u);
  EXPECT_EQ(r.count("x-nul"), 0u);
  EXPECT_EQ(wire.find('\0'), std::string::npos);
  EXPECT_EQ(r.get("x-fine"), "ok");
  EXPECT_EQ(r.body, "x");
  auto logs = f.sink->logs();
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].find("X-Split"), std::string::npos) << logs[0];
  EXPECT_NE(logs[0].find("X-Nul"), std::string::npos) << logs[0];
  EXPECT_NE(logs[0].find("Bad Name"), std::string::npos) << logs[0];
  EXPECT_EQ(logs[0].find("X-Fine"), std::string::npos) << logs[0];
}

TEST(Responder, ValidHeadersAreNotLogged) {
  Fixture f;
  ASSERT_TRUE(respond_with(*f.req, 200, {{"X-Fine", "ok"}}, {"x"}));
  EXPECT_TRUE(f.sink->logs().empty());
}

TEST(Responder, StreamedInvalidHeadersDroppedAndLogged) {
  Fixture f;
  ASSERT_TRUE(start_response(*f.req, 200, Headers{{"X-Split", "a\nb"}}));
  finish_response(*f.req);
  EXPECT_EQ(parse_response(f.sink->wire()).count("x-split"), 0u);
  ASSERT_EQ(f.sink->logs().size(), 1u);
  EXPECT_NE(f.sink->logs()[0].find("X-Split"), std::string::npos);
}

TEST(Responder, RepeatedHeaderLinesAllEmitted) {
  Fixture f;
  ASSERT_TRUE(respond_with(*f.req, 200, {{"Set-Cookie", "a=1; Path=/"}, {"Set-Cookie", "b=2"}}, {}));
  auto r = parse_response(f.sink->wire());
  EXPECT_EQ(r.all("set-cookie"), (std::vector<std::string>{"a=1; Path=/", "b=2"}));
}

TEST(Responder, FirstClaimantWins) {
  Fixture f;
  ASSERT_TRUE(respond_with(*f.req, 200, {}, {"first"}));
  size_t sends = f.sink->sent().size();
  f.req->sink = f.sink;  // even with the sink put back, nothing more goes out
  EXPECT_FALSE(respond_with(*f.req, 500, {}, {"second"}));
  EXPECT_FALSE(start_response(*f.req, 500, Headers{}));
  EXPECT_FALSE(respond_plain(*f.req, 503, "third", true));
  EXPECT_EQ(f.sink->sent().size(), sends);
  EXPECT_EQ(f.sink->wire().find("second"), std::string::npos);
  EXPECT_EQ(parse_response(f.sink->wire()).body, "first");
  f.req->sink.reset();
}

TEST(Responder, FirstClaimantWinsAcrossThreads) {
  for (int round = 0; round < 50; ++round) {
    Fixture f;
    std::atomic<int> wins{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        while (!go.load()) std::this_thread::yield();
        if (t % 2 ? respond_with(*f.req, 200, {}, {"ok"}) : respond_plain(*f.req, 503, "busy", t == 0))
          wins.fetch_add(1);
      });
    go = true;
    for (auto& t : threads) t.join();
    EXPECT_EQ(wins.load(), 1);
    EXPECT_EQ(f.sink->sent().size(), 1u);
    EXPECT_EQ(f.sink->lasts(), 1u);
  }
}

TEST(Responder, RespondPlainClose) {
  Fixture f;
  ASSERT_TRUE(respond_plain(*f.req, 400, "bad request\n", true));
  auto r = parse_response(f.sink->wire());
  EXPECT_EQ(r.status_line, "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(r.get("connection"), "close");
  EXPECT_EQ(r.get("content-type"), "text/plain");
  EXPECT_EQ(r.get("content-length"), "12");
  EXPECT_EQ(r.body, "bad request\n");
  EXPECT_FALSE(f.sink->sent().back().keep_alive);
}

TEST(Responder, LosingRespondPlainLeavesTheRequestAlone) {
  // Whoever lost the claim must not write to the request: the winner may be
  // reading it on another thread at that moment.
  Fixture f;
  ASSERT_TRUE(f.req->claim());
  EXPECT_FALSE(respond_plain(*f.req, 503, "late", true));
  EXPECT_TRUE(f.req->keep_alive);
  EXPECT_TRUE(f.sink->sent().empty());
}

TEST(Responder, RespondPlainKeepsAliveWhenAllowed) {
  Fixture f;
  ASSERT_TRUE(respond_plain(*f.req, 503, "busy\n", false));
  auto r = parse_response(f.sink->wire());
  EXPECT_EQ(r.count("connection"), 0u);
  EXPECT_TRUE(f.sink->sent().back().keep_alive);
}

TEST(Responder, AbortAfterStartSendsNoTerminator) {
  Fixture f;
  ASSERT_TRUE(start_response(*f.req, 200, Headers{}));
  EXPECT_TRUE(write_body(*f.req, "partial"));
  abort_response(*f.req);
  auto sent = f.sink->sent();
  ASSERT_FALSE(sent.empty());
  EXPECT_TRUE(sent.back().last);
  EXPECT_FALSE(sent.back().keep_alive);
  EXPECT_TRUE(sent.back().bytes.empty());
  EXPECT_EQ(f.sink->lasts(), 1u);
  std::string wire = f.sink->wire();
  EXPECT_EQ(wire.find("0\r\n\r\n"), std::string::npos) << "the body must look cut";
  EXPECT_EQ(parse_response(wire).body, "7\r\npartial\r\n");
  EXPECT_FALSE(f.req->response.keep_alive);
  EXPECT_TRUE(f.req->response.finished);
  // Finishing after an abort changes nothing.
  finish_response(*f.req);
  EXPECT_EQ(f.sink->sent().size(), sent.size());
}

TEST(Responder, AbortBeforeStartDoesNothing) {
  Fixture f;
  abort_response(*f.req);
  EXPECT_TRUE(f.sink->sent().empty());
  EXPECT_FALSE(f.req->claimed());
  ASSERT_TRUE(respond_with(*f.req, 200, {}, {}));
}

TEST(Responder, WriteBodyWithEmptyDataSendsNothing) {
  Fixture f;
  ASSERT_TRUE(start_response(*f.req, 200, Headers{}));
  size_t sends = f.sink->sent().size();
  EXPECT_TRUE(write_body(*f.req, ""));
  EXPECT_EQ(f.sink->sent().size(), sends) << "an empty chunk would end the body";
  finish_response(*f.req);
  EXPECT_EQ(parse_response(f.sink->wire()).body, "0\r\n\r\n");
}

TEST(Responder, WriteBodyReportsPeerGone) {
  Fixture f;
  ASSERT_TRUE(start_response(*f.req, 200, Headers{}));
  f.sink->open_ = false;
  EXPECT_FALSE(write_body(*f.req, "data"));
  abort_response(*f.req);
}

TEST(Responder, WriteBodyBeforeStartFails) {
  Fixture f;
  EXPECT_FALSE(write_body(*f.req, "data"));
  EXPECT_TRUE(f.sink->sent().empty());
}

TEST(Responder, NoSinkIsHarmless) {
  RequestRef req(new RequestCtx());
  req->keep_alive = true;
  EXPECT_TRUE(respond_with(*req, 200, {}, {"x"}));
  EXPECT_TRUE(req->response.finished);
}

TEST(Responder, FinalInterimStatusBecomes500) {
  for (int status : {100, 101, 103, 199}) {
    Fixture whole;
    ASSERT_TRUE(respond_with(*whole.req, status, {{"upgrade", "websocket"}, {"x-app", "1"}}, {"app body"}));
    auto r = parse_response(whole.sink->wire());
    ASSERT_TRUE(r.ok) << status;
    EXPECT_EQ(r.status_line, "HTTP/1.1 500 Internal Server Error") << status;
    EXPECT_EQ(r.count("x-app"), 0u) << "nothing of the app's answer goes out";
    EXPECT_EQ(r.body, "Internal Server Error\n");
    EXPECT_EQ(whole.sink->lasts(), 1u);
    auto logs = whole.sink->logs();
    ASSERT_EQ(logs.size(), 1u);
    EXPECT_NE(logs[0].find("status " + std::to_string(status)), std::string::npos) << logs[0];

    Fixture streamed;
    EXPECT_FALSE(start_response(*streamed.req, status, Headers{{"x-app", "1"}}))
        << "nothing to stream: the answer is complete";
    EXPECT_FALSE(write_body(*streamed.req, "more"));
    finish_response(*streamed.req);
    auto s = parse_response(streamed.sink->wire());
    ASSERT_TRUE(s.ok);
    EXPECT_EQ(s.status_line, "HTTP/1.1 500 Internal Server Error");
    EXPECT_EQ(s.body, "Internal Server Error\n");
    EXPECT_EQ(streamed.sink->lasts(), 1u);
    EXPECT_EQ(streamed.sink->logs().size(), 1u);
  }
}

namespace {

ByteLeaseRef lease_of(const std::string& s) { return std::make_shared<ByteLease>(std::string_view(s)); }

}  // namespace

TEST(Responder, LentPartsGoOutInOrderBetweenCopiedOnes) {
  Fixture f;
  std::string big1(5000, 'a'), big2(7000, 'b');
  ByteLeaseRef l1 = lease_of(big1), l2 = lease_of(big2);
  Body body{"<", big1, "|", big2};
  std::vector<ByteLeaseRef> leases{nullptr, l1, nullptr, l2};
  ASSERT_TRUE(respond_lent(*f.req, 200, Headers{}, body, leases));
  EXPECT_EQ(f.sink->lent_pieces_.load(), 2);
  auto sent = f.sink->sent();
  ASSERT_EQ(sent.size(), 1u) << "one hand-over for the whole response";
  EXPECT_TRUE(sent[0].last);
  auto r = parse_response(sent[0].bytes);
  EXPECT_EQ(r.get("content-length"), "12002");
  EXPECT_EQ(r.body, "<" + big1 + "|" + big2);
  EXPECT_FALSE(l1->loaned_out()) << "the sink let the pieces go: every loan came back";
  EXPECT_FALSE(l2->loaned_out());
  EXPECT_FALSE(f.req->sink);
}

TEST(Responder, ALentPartIsCutToTheDeclaredLength) {
  Fixture f;
  std::string big(5000, 'z');
  ByteLeaseRef l = lease_of(big);
  Body body{big};
  std::vector<ByteLeaseRef> leases{l};
  ASSERT_TRUE(respond_lent(*f.req, 200, Headers{{"content-length", "10"}}, body, leases));
  auto r = parse_response(f.sink->wire());
  EXPECT_EQ(r.body, std::string(10, 'z')) << "never more than the app declared";
}

TEST(Responder, NothingIsLentForABodyNotSent) {
  // HEAD, 204 and a lost claim send no body: no loan is made, so the
  // owner may let its bytes go at once.
  std::string big(5000, 'h');
  {
    Fixture f(1, true, true);
    ByteLeaseRef l = lease_of(big);
    std::vector<ByteLeaseRef> leases{l};
    Body body{big};
    ASSERT_TRUE(respond_lent(*f.req, 200, Headers{}, body, leases));
    EXPECT_EQ(f.sink->lent_pieces_.load(), 0);
    EXPECT_EQ(parse_response(f.sink->wire()).get("content-length"), "5000");
  }
  {
    Fixture f;
    ByteLeaseRef l = lease_of(big);
    std::vector<ByteLeaseRef> leases{l};
    Body body{big};
    ASSERT_TRUE(respond_lent(*f.req, 204, Headers{}, body, leases));
    EXPECT_EQ(f.sink->lent_pieces_.load(), 0);
  }
  {
    Fixture f;
    ASSERT_TRUE(f.req->claim());
    ByteLeaseRef l = lease_of(big);
    std::vector<ByteLeaseRef> leases{l};
    Body body{big};
    EXPECT_FALSE(respond_lent(*f.req, 200, Headers{}, body, leases));
    EXPECT_TRUE(f.sink->sent().empty());
  }
}
