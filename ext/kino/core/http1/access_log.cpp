#include "http1/access_log.hpp"

#include <ctime>

#include "util/log_writer.hpp"

namespace kino {

namespace {

constexpr char kHex[] = "0123456789abcdef";

void append_hex_byte(std::string& out, unsigned char c) {
  out.push_back(kHex[c >> 4]);
  out.push_back(kHex[c & 0xf]);
}

void append_uint(std::string& out, uint64_t n) {
  char digits[20];
  size_t len = 0;
  do {
    digits[len++] = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n > 0);
  while (len > 0) out.push_back(digits[--len]);
}

// Microseconds as milliseconds with three decimals, without floating point.
void append_ms(std::string& out, int64_t us) {
  if (us < 0) us = 0;
  append_uint(out, static_cast<uint64_t>(us / 1000));
  out.push_back('.');
  int64_t frac = us % 1000;
  out.push_back(static_cast<char>('0' + frac / 100));
  out.push_back(static_cast<char>('0' + frac / 10 % 10));
  out.push_back(static_cast<char>('0' + frac % 10));
}

// ISO 8601 in UTC with milliseconds: `2026-12-02T02:24:12.123Z`. At full
// load a thread writes thousands of lines a second, nearly all in the
// second of the one before: the date and time are made once per second
// and thread, not with gmtime_r and strftime on every line.
void append_time(std::string& out, int64_t unix_us) {
  thread_local int64_t cached_second = -1;
  thread_local char cached[32];
  thread_local size_t cached_length = 0;
  int64_t second = unix_us / 1000000;
  if (second != cached_second) {
    time_t seconds = static_cast<time_t>(second);
    struct tm parts {};
    gmtime_r(&seconds, &parts);
    cached_length = strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &parts);
    cached_second = second;
  }
  out.append(cached, cached_length);
  out.push_back('.');
  int64_t ms = unix_us / 1000 % 1000;
  out.push_back(static_cast<char>('0' + ms / 100));
  out.push_back(static_cast<char>('0' + ms / 10 % 10));
  out.push_back(static_cast<char>('0' + ms % 10));
  out.push_back('Z');
}

// Printable ASCII stays; everything else (controls, DEL, bytes past 0x7f)
// and the quote and backslash that delimit the field become `\xHH`.
void append_text_escaped(std::string& out, std::string_view bytes) {
  if (bytes.empty()) {
    out.push_back('-');
    return;
  }
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out.push_back(ch);
    } else {
      out.append("\\x");
      append_hex_byte(out, c);
    }
  }
}

// The length of the well-formed UTF-8 sequence at the start of `s`, or 0
// (overlong forms, surrogates and code points past U+10FFFF are not).
size_t utf8_sequence(std::string_view s) {
  auto at = [&s](size_t i) { return static_cast<unsigned char>(s[i]); };
  auto continuation = [&](size_t i) { return i < s.size() && (at(i) & 0xc0) == 0x80; };
  unsigned char c = at(0);
  if (c >= 0xc2 && c <= 0xdf) return continuation(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!continuation(1) || !continuation(2)) return 0;
    if (c == 0xe0 && at(1) < 0xa0) return 0;   // overlong
    if (c == 0xed && at(1) >= 0xa0) return 0;  // a surrogate
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!continuation(1) || !continuation(2) || !continuation(3)) return 0;
    if (c == 0xf0 && at(1) < 0x90) return 0;   // overlong
    if (c == 0xf4 && at(1) >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

void append_json_string(std::string& out, std::string_view bytes) {
  out.push_back('"');
  size_t i = 0;
  while (i < bytes.size()) {
    auto c = static_cast<unsigned char>(bytes[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (size_t n = c >= 0x80 ? utf8_sequence(bytes.substr(i)) : 0; n > 0) {
      out.append(bytes.data() + i, n);
      i += n;
    } else {
      // A control character, DEL, or a byte that is not part of UTF-8.
      out.append("\\u00");
      append_hex_byte(out, c);
      ++i;
    }
  }
  out.push_back('"');
}

void append_json_string_or_null(std::string& out, std::string_view bytes) {
  if (bytes.empty())
    out.append("null");
  else
    append_json_string(out, bytes);
}

void append_protocol(std::string& out, const AccessRecord& r) {
  out.append("HTTP/");
  out.push_back(static_cast<char>('0' + r.http_major % 10));
  out.push_back('.');
  out.push_back(static_cast<char>('0' + r.http_minor % 10));
}

// What the record lacks is written `absent` ("-" in text, null in JSON).
void append_uint_or(std::string& out, int64_t n, std::string_view absent) {
  if (n >= 0)
    append_uint(out, static_cast<uint64_t>(n));
  else
    out.append(absent);
}

void append_ms_or(std::string& out, int64_t us, std::string_view unit, std::string_view absent) {
  if (us < 0) {
    out.append(absent);
    return;
  }
  append_ms(out, us);
  out.append(unit);
}

void append_protocol_or(std::string& out, const AccessRecord& r, std::string_view quote,
                        std::string_view absent) {
  if (r.http_major == 0) {
    out.append(absent);
    return;
  }
  out.append(quote);
  append_protocol(out, r);
  out.append(quote);
}

const char* tint_for(int status) {
  if (status >= 200 && status < 300) return "\x1b[32m";
  if (status >= 300 && status < 400) return "\x1b[33m";
  if (status >= 400 && status < 500) return "\x1b[31m";
  if (status >= 500 && status < 600) return "\x1b[91m";
  return nullptr;
}

// The one thing the two formats differ in: what comes before each field,
// how strings are escaped, and what stands for a value the record lacks.
// Both write the fields in the same order.
struct Layout {
  const char* before[10];  // time, peer, method, target, protocol, status, bytes, duration, wait, worker
  const char* end;
  void (*string)(std::string& out, std::string_view bytes);
  std::string_view quote;  // around the protocol
  std::string_view ms;     // after a duration
  std::string_view absent;
  size_t string_close;  // bytes `string` writes after the content (a quote)
};

constexpr Layout kText = {{"", " ", " \"", " ", " ", "\" ", " ", " ", "ms wait=", " worker="},
                          "",
                          append_text_escaped,
                          "",
                          "ms",
                          "-",
                          0};

constexpr Layout kJson = {
    {"{\"time\":", ",\"peer\":", ",\"method\":", ",\"target\":", ",\"protocol\":", ",\"status\":",
     ",\"bytes\":", ",\"duration_ms\":", ",\"wait_ms\":", ",\"worker\":"},
    "}",
    append_json_string_or_null,
    "\"",
    "",
    "null",
    1};

void append_record(const Layout& l, const AccessRecord& r, std::string& out) {
  out.append(l.before[0]);
  out.append(l.quote);
  append_time(out, r.began_unix_us);
  out.append(l.quote);
  out.append(l.before[1]);
  l.string(out, r.peer);
  out.append(l.before[2]);
  l.string(out, r.method);
  out.append(l.before[3]);
  if (r.target.size() > kMaxLoggedTarget) {
    l.string(out, r.target.substr(0, kMaxLoggedTarget));
    out.insert(out.size() - l.string_close, "...");
  } else {
    l.string(out, r.target);
  }
  out.append(l.before[4]);
  append_protocol_or(out, r, l.quote, l.absent);
  out.append(l.before[5]);
  append_uint(out, static_cast<uint64_t>(r.status));
  out.append(l.before[6]);
  append_uint(out, r.bytes);
  out.append(l.before[7]);
  append_ms(out, r.duration_us);
  out.append(l.before[8]);
  append_ms_or(out, r.queue_wait_us, l.ms, l.absent);
  out.append(l.before[9]);
  append_uint_or(out, r.worker, l.absent);
  out.append(l.end);
}

}  // namespace

void format_access_text(const AccessRecord& r, bool tint, std::string& out) {
  const char* colour = tint ? tint_for(r.status) : nullptr;
  if (colour) out.append(colour);
  append_record(kText, r, out);
  if (colour) out.append("\x1b[0m");
  out.push_back('\n');
}

void format_access_json(const AccessRecord& r, std::string& out) {
  append_record(kJson, r, out);
  out.push_back('\n');
}

AccessLog::AccessLog(int fd, AccessLogFormat format)
    : format_(format),
      writer_(std::make_unique<LogWriter>(fd)),
      tint_(format == AccessLogFormat::Text && writer_->is_tty()) {}

AccessLog::~AccessLog() = default;

void AccessLog::write(const AccessRecord& record) {
  // One buffer a thread: a line costs no allocation once it has grown.
  thread_local std::string line;
  line.clear();
  if (format_ == AccessLogFormat::Json)
    format_access_json(record, line);
  else
    format_access_text(record, tint_, line);
  writer_->push(line);
}

void AccessLog::stop() { writer_->stop(); }

uint64_t AccessLog::dropped() const noexcept { return writer_->dropped(); }

}  // namespace kino
