#include "http1/response_writer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "test_sink.hpp"

using namespace kino;
using test::parse_response;

namespace {

std::string str(const Bytes& b) { return std::string(b.data(), b.size()); }

RequestCtx& http11(RequestCtx& r) {
  r.http_major = 1;
  r.http_minor = 1;
  r.keep_alive = true;
  return r;
}

std::string head(int status, std::vector<HeaderView> headers, const ResponsePlan& plan,
                 std::string_view date = "Thu, 01 Jan 2026 00:00:00 GMT", Bytes* dropped = nullptr) {
  Bytes out;
  write_head(out, status, headers, plan, date, dropped);
  return str(out);
}

ResponsePlan length_plan(uint64_t n, bool keep_alive = true) {
  ResponsePlan p;
  p.framing = BodyFraming::ContentLength;
  p.content_length = n;
  p.keep_alive = keep_alive;
  return p;
}

}  // namespace

TEST(ResponseWriter, StatusesWithoutBody) {
  EXPECT_TRUE(status_forbids_body(100));
  EXPECT_TRUE(status_forbids_body(101));
  EXPECT_TRUE(status_forbids_body(103));
  EXPECT_TRUE(status_forbids_body(199));
  EXPECT_TRUE(status_forbids_body(204));
  EXPECT_TRUE(status_forbids_body(304));
  EXPECT_FALSE(status_forbids_body(200));
  EXPECT_FALSE(status_forbids_body(205));
  EXPECT_FALSE(status_forbids_body(404));
  EXPECT_FALSE(status_forbids_body(500));
}

TEST(ResponseWriter, ReasonPhrases) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(204), "No Content");
  EXPECT_EQ(reason_phrase(404), "Not Found");
  EXPECT_EQ(reason_phrase(413), "Content Too Large");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(500), "Internal Server Error");
  EXPECT_EQ(reason_phrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(reason_phrase(599), "Unknown");
}

TEST(ResponseWriter, StatusLineAndReason) {
  std::string h = head(404, {}, length_plan(0));
  EXPECT_EQ(h.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u) << h;
  EXPECT_EQ(h.substr(h.size() - 4), "\r\n\r\n");
  std::string odd = head(299, {}, length_plan(0));
  EXPECT_EQ(odd.rfind("HTTP/1.1 299 Unknown\r\n", 0), 0u) << odd;
}

TEST(ResponseWriter, HeaderNameAndValueValidation) {
  EXPECT_TRUE(valid_header_name("content-type"));
  EXPECT_TRUE(valid_header_name("X-Custom_Header!#$%&'*+.^`|~9"));
  EXPECT_FALSE(valid_header_name(""));
  EXPECT_FALSE(valid_header_name("bad name"));
  EXPECT_FALSE(valid_header_name("bad:name"));
  EXPECT_FALSE(valid_header_name("x\r\ny"));
  EXPECT_FALSE(valid_header_name(std::string_view("x\0y", 3)));
  EXPECT_FALSE(valid_header_name("caf\xc3\xa9"));

  EXPECT_TRUE(valid_header_value(""));
  EXPECT_TRUE(valid_header_value("text/html; charset=utf-8"));
  EXPECT_TRUE(valid_header_value("tab\tand \xc3\xa9"));
  EXPECT_FALSE(valid_header_value("a\rb"));
  EXPECT_FALSE(valid_header_value("a\nb"));
  EXPECT_FALSE(valid_header_value(std::string_view("a\0b", 3)));
}

TEST(ResponseWriter, ReadAppFraming) {
  {
    HeaderView h[] = {{"Content-Length", "42"}, {"X-Other", "1"}};
    auto f = read_app_framing(h);
    ASSERT_TRUE(f.content_length);
    EXPECT_EQ(*f.content_length, 42u);
    EXPECT_FALSE(f.connection_close);
  }
  for (std::string_view bad : {"", "-1", "1a", " 5", "0x10", "99999999999999999999999"}) {
    HeaderView h[] = {{"content-length", bad}};
    EXPECT_FALSE(read_app_framing(h).content_length) << "'" << bad << "'";
  }
  {
    HeaderView h[] = {{"Connection", "keep-alive, Close"}};
    EXPECT_TRUE(read_app_framing(h).connection_close);
  }
  {
    HeaderView h[] = {{"connection", "  close  "}};
    EXPECT_TRUE(read_app_framing(h).connection_close);
  }
  {
    HeaderView h[] = {{"connection", "keep-alive"}, {"x-connection", "close"}};
    EXPECT_FALSE(read_app_framing(h).connection_close);
  }
  {
    HeaderView h[] = {{"connection", "closed"}};
    EXPECT_FALSE(read_app_framing(h).connection_close);
  }
}

TEST(ResponseWriter, PlanFullResponseUsesContentLength) {
  RequestCtx req;
  http11(req);
  auto p = plan_response(req, 200, {}, 11, false);
  EXPECT_EQ(p.framing, BodyFraming::ContentLength);
  EXPECT_EQ(p.content_length, 11u);
  EXPECT_TRUE(p.send_body);
  EXPECT_TRUE(p.keep_alive);
  EXPECT_FALSE(p.announce_keep_alive);
}

TEST(ResponseWriter, PlanStreamedHttp11IsChunked) {
  RequestCtx req;
  http11(req);
  auto p = plan_response(req, 200, {}, std::nullopt, false);
  EXPECT_EQ(p.framing, BodyFraming::Chunked);
  EXPECT_TRUE(p.keep_alive);
}

TEST(ResponseWriter, PlanStreamedHttp10RunsUntilClose) {
  RequestCtx req;
  req.http_minor = 0;
  req.keep_alive = true;  // the client asked for keep-alive
  auto p = plan_response(req, 200, {}, std::nullopt, false);
  EXPECT_EQ(p.framing, BodyFraming::UntilClose);
  EXPECT_FALSE(p.keep_alive);
}

TEST(ResponseWriter, PlanHttp10KeepAliveIsAnnounced) {
  RequestCtx req;
  req.http_minor = 0;
  req.keep_alive = true;
  auto p = plan_response(req, 200, {}, 3, false);
  EXPECT_TRUE(p.keep_alive);
  EXPECT_TRUE(p.announce_keep_alive);
}

TEST(ResponseWriter, PlanAppContentLengthWins) {
  RequestCtx req;
  http11(req);
  AppFraming app;
  app.content_length = 5;
  auto full = plan_response(req, 200, app, 100, false);
  EXPECT_EQ(full.framing, BodyFraming::ContentLength);
  EXPECT_EQ(full.content_length, 5u);
  auto streamed = plan_response(req, 200, app, std::nullopt, false);
  EXPECT_EQ(streamed.framing, BodyFraming::ContentLength) << "a declared length needs no chunking";
  EXPECT_EQ(streamed.content_length, 5u);
}

TEST(ResponseWriter, PlanClosingWhenAppOrServerSaysSo) {
  RequestCtx req;
  http11(req);
  AppFraming close;
  close.connection_close = true;
  EXPECT_FALSE(plan_response(req, 200, close, 0, false).keep_alive);
  EXPECT_FALSE(plan_response(req, 200, {}, 0, true).keep_alive);
  req.keep_alive = false;
  EXPECT_FALSE(plan_response(req, 200, {}, 0, false).keep_alive);
}

TEST(ResponseWriter, PlanHead) {
  RequestCtx req;
  http11(req);
  req.head = true;
  auto full = plan_response(req, 200, {}, 10, false);
  EXPECT_FALSE(full.send_body);
  EXPECT_EQ(full.framing, BodyFraming::ContentLength);
  EXPECT_EQ(full.content_length, 10u);
  EXPECT_TRUE(full.keep_alive);
  auto streamed = plan_response(req, 200, {}, std::nullopt, false);
  EXPECT_FALSE(streamed.send_body);
  EXPECT_EQ(streamed.framing, BodyFraming::None) << "no chunked header for a body never sent";
  EXPECT_TRUE(streamed.keep_alive);
}

TEST(ResponseWriter, PlanBodylessStatuses) {
  RequestCtx req;
  http11(req);
  AppFraming app;
  app.content_length = 10;
  for (int status : {100, 204, 304}) {
    auto p = plan_response(req, status, app, 10, false);
    EXPECT_FALSE(p.send_body) << status;
    EXPECT_EQ(p.framing, BodyFraming::None) << status;
    EXPECT_TRUE(p.keep_alive) << status;
  }
}

TEST(ResponseWriter, HeadIncludesDateAndContentLength) {
  std::string h = head(200, {{"content-type", "text/plain"}}, length_plan(12));
  auto r = parse_response(h);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.get("content-type"), "text/plain");
  EXPECT_EQ(r.get("date"), "Thu, 01 Jan 2026 00:00:00 GMT");
  EXPECT_EQ(r.get("content-length"), "12");
  EXPECT_EQ(r.count("connection"), 0u) << "HTTP/1.1 keep-alive is the default";
  EXPECT_EQ(r.count("transfer-encoding"), 0u);
  EXPECT_TRUE(r.body.empty());
}

TEST(ResponseWriter, HeadChunked) {
  ResponsePlan p;
  p.framing = BodyFraming::Chunked;
  p.keep_alive = true;
  auto r = parse_response(head(200, {}, p));
  EXPECT_EQ(r.get("transfer-encoding"), "chunked");
  EXPECT_EQ(r.count("content-length"), 0u);
}

TEST(ResponseWriter, HeadConnectionHeaders) {
  auto closed = parse_response(head(200, {}, length_plan(0, false)));
  EXPECT_EQ(closed.get("connection"), "close");
  ResponsePlan ka = length_plan(0, true);
  ka.announce_keep_alive = true;
  auto announced = parse_response(head(200, {}, ka));
  EXPECT_EQ(announced.get("connection"), "keep-alive");
  ResponsePlan ka_closed = length_plan(0, false);
  ka_closed.announce_keep_alive = true;
  EXPECT_EQ(parse_response(head(200, {}, ka_closed)).get("connection"), "close");
}

TEST(ResponseWriter, HeadReplacesAppFramingHeaders) {
  std::vector<HeaderView> app = {{"Transfer-Encoding", "chunked"},
                                 {"Connection", "keep-alive"},
                                 {"Date", "Mon, 01 Jan 1990 00:00:00 GMT"},
                                 {"Keep-Alive", "timeout=5"},
                                 {"Content-Length", "999"},
                                 {"X-Kept", "yes"}};
  auto r = parse_response(head(200, app, length_plan(3, false)));
  EXPECT_EQ(r.count("transfer-encoding"), 0u);
  EXPECT_EQ(r.all("connection"), (std::vector<std::string>{"close"}));
  EXPECT_EQ(r.all("date"), (std::vector<std::string>{"Thu, 01 Jan 2026 00:00:00 GMT"}));
  EXPECT_EQ(r.count("keep-alive"), 0u);
  EXPECT_EQ(r.all("content-length"), (std::vector<std::string>{"3"}));
  EXPECT_EQ(r.get("x-kept"), "yes");
}

TEST(ResponseWriter, HeadDropsInvalidHeadersAndNamesThem) {
  std::vector<HeaderView> app = {{"X-Split", "a\r\nSet-Cookie: evil=1"},
                                 {"Bad Name", "v"},
                                 {"X-Nul", std::string_view("a\0b", 3)},
                                 {"X-Lf", "a\nb"},
                                 {"X-Good", "fine"}};
  Bytes dropped;
  std::string h = head(200, app, length_plan(0), "d", &dropped);
  auto r = parse_response(h);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.count("set-cookie"), 0u);
  EXPECT_EQ(r.count("x-split"), 0u);
  EXPECT_EQ(r.count("x-nul"), 0u);
  EXPECT_EQ(r.count("x-lf"), 0u);
  EXPECT_EQ(h.find("Bad Name"), std::string::npos);
  EXPECT_EQ(h.find('\0'), std::string::npos);
  EXPECT_EQ(r.get("x-good"), "fine");
  EXPECT_EQ(str(dropped), "X-Split, Bad Name, X-Nul, X-Lf");
  // Without a place to name them they are still dropped.
  std::string quiet = head(200, app, length_plan(0), "d", nullptr);
  EXPECT_EQ(quiet.find("evil"), std::string::npos);
}

TEST(ResponseWriter, HeadRepeatedHeadersAllEmitted) {
  std::vector<HeaderView> app = {{"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}, {"Vary", "Accept"}};
  auto r = parse_response(head(200, app, length_plan(0)));
  EXPECT_EQ(r.all("set-cookie"), (std::vector<std::string>{"a=1", "b=2"}));
  EXPECT_EQ(r.get("vary"), "Accept");
}

TEST(ResponseWriter, HeadWithoutDate) {
  auto r = parse_response(head(200, {}, length_plan(0), ""));
  EXPECT_EQ(r.count("date"), 0u);
}

TEST(ResponseWriter, WriteChunk) {
  Bytes out;
  write_chunk(out, "hello");
  EXPECT_EQ(str(out), "5\r\nhello\r\n");
  out.clear();
  write_chunk(out, std::string(255, 'x'));
  EXPECT_EQ(str(out).substr(0, 4), "ff\r\n");
  EXPECT_EQ(out.size(), 4u + 255u + 2u);
  out.clear();
  write_chunk(out, std::string(4096, 'y'));
  EXPECT_EQ(str(out).substr(0, 6), "1000\r\n");
}

TEST(ResponseWriter, WriteChunkEmptyWritesNothing) {
  Bytes out("prefix");
  write_chunk(out, "");
  EXPECT_EQ(str(out), "prefix") << "an empty chunk would end the body";
  EXPECT_EQ(kLastChunk, "0\r\n\r\n");
}

TEST(ResponseWriter, HttpDateIsImfFixdate) {
  // "Sun, 06 Nov 1994 08:49:37 GMT"
  std::string d(http_date());
  ASSERT_EQ(d.size(), 29u) << d;
  static const std::vector<std::string> days = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static const std::vector<std::string> months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  EXPECT_NE(std::find(days.begin(), days.end(), d.substr(0, 3)), days.end()) << d;
  EXPECT_NE(std::find(months.begin(), months.end(), d.substr(8, 3)), months.end()) << d;
  const std::string shape = "XXX, 00 XXX 0000 00:00:00 GMT";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == '0') {
      EXPECT_TRUE(d[i] >= '0' && d[i] <= '9') << d << " at " << i;
    } else if (shape[i] != 'X') {
      EXPECT_EQ(d[i], shape[i]) << d << " at " << i;
    }
  }
  std::string again(http_date());
  EXPECT_EQ(again.size(), d.size());
}
