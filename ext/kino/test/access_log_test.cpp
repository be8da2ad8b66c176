#include "http1/access_log.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace kino;

namespace {

// 2026-12-02T02:24:12.123456Z
constexpr int64_t kBegan = 1796178252123456;

AccessRecord served() {
  AccessRecord r;
  r.began_unix_us = kBegan;
  r.peer = "127.0.0.1";
  r.method = "GET";
  r.target = "/users?q=1";
  r.http_major = 1;
  r.http_minor = 1;
  r.status = 200;
  r.bytes = 1234;
  r.duration_us = 412;
  r.queue_wait_us = 31;
  r.worker = 2;
  return r;
}

// What the server answers alone, before the head was read whole.
AccessRecord refused() {
  AccessRecord r;
  r.began_unix_us = kBegan;
  r.peer = "::1";
  r.status = 400;
  r.bytes = 97;
  r.duration_us = 1500250;
  return r;
}

std::string text(const AccessRecord& r, bool tint = false) {
  std::string out;
  format_access_text(r, tint, out);
  return out;
}

std::string json(const AccessRecord& r) {
  std::string out;
  format_access_json(r, out);
  return out;
}

}  // namespace

TEST(AccessLogText, ServedRequest) {
  EXPECT_EQ(text(served()),
            "2026-12-02T02:24:12.123Z 127.0.0.1 \"GET /users?q=1 HTTP/1.1\" 200 1234 0.412ms wait=0.031ms "
            "worker=2\n");
}

TEST(AccessLogText, UnknownFieldsAreDashes) {
  EXPECT_EQ(text(refused()), "2026-12-02T02:24:12.123Z ::1 \"- - -\" 400 97 1500.250ms wait=- worker=-\n");
}

TEST(AccessLogText, HttpOneZero) {
  AccessRecord r = served();
  r.http_minor = 0;
  EXPECT_NE(text(r).find("\"GET /users?q=1 HTTP/1.0\""), std::string::npos);
}

TEST(AccessLogText, AppendsToWhatIsThere) {
  std::string out = "before\n";
  format_access_text(served(), false, out);
  EXPECT_EQ(out.rfind("before\n2026-", 0), 0u);
}

TEST(AccessLogText, ClientBytesAreEscaped) {
  AccessRecord r = served();
  r.method = "G\"T";
  // A terminal escape, a newline, a backslash, a byte past ASCII and DEL.
  r.target = std::string_view("/\x1b[2J\n\\\xc3\xa9\x7f", 10);
  std::string line = text(r);
  EXPECT_NE(line.find("\"G\\x22T /\\x1b[2J\\x0a\\x5c\\xc3\\xa9\\x7f HTTP/1.1\""), std::string::npos) << line;
  EXPECT_EQ(line.find('\x1b'), std::string::npos);
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";
}

TEST(AccessLogText, TintFollowsTheStatusClass) {
  AccessRecord r = served();
  struct Case {
    int status;
    const char* colour;
  } cases[] = {{200, "\x1b[32m"}, {204, "\x1b[32m"}, {301, "\x1b[33m"}, {404, "\x1b[31m"}, {503, "\x1b[91m"}};
  for (auto c : cases) {
    r.status = c.status;
    std::string line = text(r, true);
    EXPECT_EQ(line.rfind(c.colour, 0), 0u) << c.status;
    EXPECT_EQ(line.substr(line.size() - 5), "\x1b[0m\n") << "reset before the newline";
    std::string plain = text(r, false);
    EXPECT_EQ(line, std::string(c.colour) + plain.substr(0, plain.size() - 1) + "\x1b[0m\n");
  }
}

TEST(AccessLogText, NoTintWithoutATerminal) {
  EXPECT_EQ(text(served(), false).find('\x1b'), std::string::npos);
}

TEST(AccessLogJson, ServedRequest) {
  EXPECT_EQ(json(served()),
            "{\"time\":\"2026-12-02T02:24:12.123Z\",\"peer\":\"127.0.0.1\",\"method\":\"GET\","
            "\"target\":\"/users?q=1\",\"protocol\":\"HTTP/1.1\",\"status\":200,\"bytes\":1234,"
            "\"duration_ms\":0.412,\"wait_ms\":0.031,\"worker\":2}\n");
}

TEST(AccessLogJson, UnknownFieldsAreNull) {
  EXPECT_EQ(json(refused()),
            "{\"time\":\"2026-12-02T02:24:12.123Z\",\"peer\":\"::1\",\"method\":null,\"target\":null,"
            "\"protocol\":null,\"status\":400,\"bytes\":97,\"duration_ms\":1500.250,\"wait_ms\":null,"
            "\"worker\":null}\n");
}

TEST(AccessLogJson, EscapesQuotesBackslashesAndControls) {
  AccessRecord r = served();
  r.target = std::string_view("/a\"b\\c\n\t\x01\x7f", 10);
  EXPECT_NE(json(r).find("\"target\":\"/a\\\"b\\\\c\\u000a\\u0009\\u0001\\u007f\""), std::string::npos)
      << json(r);
}

TEST(AccessLogJson, Utf8StaysAndOtherBytesBecomeCodePoints) {
  AccessRecord r = served();
  // é, €, 😀 are well formed; then a lone continuation byte, an overlong
  // '/', a surrogate, a truncated sequence and 0xff.
  r.target = "/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82|\xff";
  EXPECT_NE(json(r).find("\"target\":\"/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\\u0080|\\u00c0\\u00af|"
                         "\\u00ed\\u00a0\\u0080|\\u00e2\\u0082|\\u00ff\""),
            std::string::npos)
      << json(r);
}

TEST(AccessLogJson, LongDurations) {
  AccessRecord r = served();
  r.duration_us = 123456789012;
  EXPECT_NE(json(r).find("\"duration_ms\":123456789.012,"), std::string::npos);
}

TEST(AccessLogText, EachSecondHasItsOwnTime) {
  AccessRecord r = served();
  EXPECT_EQ(text(r).substr(0, 24), "2026-12-02T02:24:12.123Z");
  r.began_unix_us += 1000000;
  EXPECT_EQ(text(r).substr(0, 24), "2026-12-02T02:24:13.123Z");
  r.began_unix_us -= 86400 * 1000000ll;
  EXPECT_EQ(text(r).substr(0, 24), "2026-12-01T02:24:13.123Z");
  r.began_unix_us += 86400 * 1000000ll - 1000000 + 999;
  EXPECT_EQ(json(r).substr(9, 24), "2026-12-02T02:24:12.124Z");
}

TEST(AccessLog, CutsALongTargetAndMarksIt) {
  std::string target = "/" + std::string(kMaxLoggedTarget + 500, 'a');
  AccessRecord r = served();
  r.target = target;
  std::string kept = "/" + std::string(kMaxLoggedTarget - 1, 'a');
  EXPECT_NE(text(r).find("\"GET " + kept + "... HTTP/1.1\""), std::string::npos) << text(r).size();
  EXPECT_NE(json(r).find("\"target\":\"" + kept + "...\","), std::string::npos) << json(r).size();
  EXPECT_LT(json(r).size(), kMaxLoggedTarget + 300);
}
