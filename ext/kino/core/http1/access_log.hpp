// The access log (`log_requests`): one line per request, written by the
// core when the response is complete, for the requests the app answered
// and for those the server answered itself (408, 413, 431, 503, 504, ...).
// The connection fills an AccessRecord from what it saw; the formatters
// turn it into a plain text line (tinted by status class when the output
// is a terminal) or a JSON object per line.
//
// Methods and targets are the client's bytes: both formats escape them,
// so a request can neither break a line nor reach the terminal as a
// control sequence.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace kino {

class LogWriter;

enum class AccessLogFormat : uint8_t { Text, Json };

struct AccessRecord {
  int64_t began_unix_us = 0;  // wall clock, when the request's first byte came
  std::string_view peer;
  std::string_view method;  // empty when the request line was not read
  std::string_view target;
  uint8_t http_major = 0;  // 0: the protocol was not read
  uint8_t http_minor = 0;
  int status = 0;
  uint64_t bytes = 0;          // bytes written to the client for this request
  int64_t duration_us = 0;     // first byte in to last byte out
  int64_t queue_wait_us = -1;  // -1: no worker took it
  int64_t worker = -1;         // the worker that served it; -1: none
};

// A target longer than this is logged cut to it and marked `...`: the
// lines wait in memory while the log is slow, and a client must not be
// able to make each one as long as max_uri_size (and four times that once
// escaped).
constexpr size_t kMaxLoggedTarget = 2048;

// `2026-12-02T02:24:12.123Z 127.0.0.1 "GET /x HTTP/1.1" 200 1234 0.412ms
// wait=0.031ms worker=2`, then '\n'; what is unknown is `-`. With `tint`
// the line is coloured by the status's class (2xx green, 3xx yellow, 4xx
// red, 5xx bright red). Appends to `out`.
void format_access_text(const AccessRecord& record, bool tint, std::string& out);

// One JSON object and '\n'; what is unknown is null. Bytes of the method or
// target that are not UTF-8 appear as the code point of the same number
// (\u00XX), so every line parses. Appends to `out`.
void format_access_json(const AccessRecord& record, std::string& out);

// Where the lines go: a LogWriter of its own on `fd` (the server's stdout),
// whose thread makes the writes. Tinted only when `fd` is a terminal and
// the format is text.
class AccessLog {
 public:
  AccessLog(int fd, AccessLogFormat format);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Any thread: formats the record and queues its line; never blocks (a
  // full writer drops the line and counts it).
  void write(const AccessRecord& record);

  // Writes out every line written so far, then stops the writer.
  void stop();

  uint64_t dropped() const noexcept;

 private:
  AccessLogFormat format_;
  std::unique_ptr<LogWriter> writer_;
  bool tint_;
};

}  // namespace kino
