#include "http1/response_writer.hpp"

#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>

namespace kino {

namespace {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool is_tchar(unsigned char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// Headers whose meaning is the server's business: the app may state a
// content-length (we honour it) or ask to close, but the bytes on the wire
// are always ours, so a body is never framed twice.
bool is_framing_header(std::string_view name) noexcept {
  return iequals(name, "content-length") || iequals(name, "transfer-encoding") ||
         iequals(name, "connection") || iequals(name, "date") || iequals(name, "keep-alive");
}

void append_uint(Bytes& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
}

}  // namespace

bool status_forbids_body(int status) noexcept {
  return (status >= 100 && status < 200) || status == 204 || status == 304;
}

std::string_view reason_phrase(int status) noexcept {
  // One status a line, as RFC 9110 lists them.
  // clang-format off
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
  // clang-format on
}

bool valid_header_name(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (unsigned char c : name)
    if (!is_tchar(c)) return false;
  return true;
}

bool valid_header_value(std::string_view value) noexcept {
  for (unsigned char c : value)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  return true;
}

AppFraming read_app_framing(std::span<const HeaderView> headers) noexcept {
  AppFraming f;
  for (const auto& h : headers) {
    if (iequals(h.name, "content-length")) {
      uint64_t n = 0;
      const char* b = h.value.data();
      const char* e = b + h.value.size();
      auto r = std::from_chars(b, e, n);
      if (!h.value.empty() && r.ec == std::errc() && r.ptr == e) f.content_length = n;
    } else if (iequals(h.name, "connection")) {
      // A comma-separated list; "close" anywhere in it means close.
      std::string_view v = h.value;
      size_t pos = 0;
      while (pos <= v.size()) {
        size_t comma = v.find(',', pos);
        std::string_view token = v.substr(pos, comma == std::string_view::npos ? v.npos : comma - pos);
        while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
        while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
        if (iequals(token, "close")) f.connection_close = true;
        if (comma == std::string_view::npos) break;
        pos = comma + 1;
      }
    }
  }
  return f;
}

ResponsePlan plan_response(const RequestCtx& req, int status, const AppFraming& app,
                           std::optional<uint64_t> known_length, bool server_closing) noexcept {
  ResponsePlan p;
  // A body not yet read to its end stands between this response and the
  // next request: the connection closes instead of reading it.
  p.keep_alive =
      req.keep_alive && !app.connection_close && !server_closing && !(req.body && !req.body->complete());
  p.announce_keep_alive = req.http_major == 1 && req.http_minor == 0;
  if (status_forbids_body(status)) {
    p.framing = BodyFraming::None;
    p.send_body = false;
    return p;
  }
  p.send_body = !req.head;
  if (app.content_length) {
    p.framing = BodyFraming::ContentLength;
    p.content_length = *app.content_length;
  } else if (known_length && !(req.head && *known_length == 0)) {
    p.framing = BodyFraming::ContentLength;
    p.content_length = *known_length;
  } else if (req.head) {
    // HEAD with an empty or streamed body: the app (Rack::Head, say) may
    // have dropped a body GET would send, so no length is claimed.
    p.framing = BodyFraming::None;
  } else if (req.http_major == 1 && req.http_minor >= 1) {
    p.framing = BodyFraming::Chunked;
  } else {
    // HTTP/1.0 has no chunked coding: the end of the body is the close.
    p.framing = BodyFraming::UntilClose;
    p.keep_alive = false;
  }
  return p;
}

void write_head(Bytes& out, int status, std::span<const HeaderView> headers, const ResponsePlan& plan,
                std::string_view date, Bytes* dropped) {
  out.append("HTTP/1.1 ");
  append_uint(out, static_cast<uint64_t>(status));
  out.push_back(' ');
  append(out, reason_phrase(status));
  out.append("\r\n");
  for (const auto& h : headers) {
    if (is_framing_header(h.name)) continue;
    if (!valid_header_name(h.name) || !valid_header_value(h.value)) {
      if (dropped) {
        if (!dropped->empty()) dropped->append(", ");
        append(*dropped, h.name.substr(0, 64));
      }
      continue;
    }
    append(out, h.name);
    out.append(": ");
    append(out, h.value);
    out.append("\r\n");
  }
  if (!date.empty()) {
    out.append("date: ");
    append(out, date);
    out.append("\r\n");
  }
  switch (plan.framing) {
    case BodyFraming::ContentLength:
      out.append("content-length: ");
      append_uint(out, plan.content_length);
      out.append("\r\n");
      break;
    case BodyFraming::Chunked:
      out.append("transfer-encoding: chunked\r\n");
      break;
    case BodyFraming::None:
    case BodyFraming::UntilClose:
      break;
  }
  if (!plan.keep_alive)
    out.append("connection: close\r\n");
  else if (plan.announce_keep_alive)
    out.append("connection: keep-alive\r\n");
  out.append("\r\n");
}

void write_chunk(Bytes& out, std::string_view data) {
  if (data.empty()) return;  // an empty chunk would end the body
  char buf[20];
  auto r = std::to_chars(buf, buf + sizeof buf, static_cast<uint64_t>(data.size()), 16);
  out.append(buf, static_cast<size_t>(r.ptr - buf));
  out.append("\r\n");
  append(out, data);
  out.append("\r\n");
}

std::string_view http_date() {
  // Formatting a date costs more than serialising a small response, so each
  // thread keeps the current second's text.
  thread_local time_t cached_second = 0;
  thread_local char cached[40];
  thread_local size_t cached_len = 0;
  time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  if (now != cached_second) {
    struct tm tm_utc;
    gmtime_r(&now, &tm_utc);
    cached_len = strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &tm_utc);
    cached_second = now;
  }
  return {cached, cached_len};
}

}  // namespace kino
