#include "http1/request_parser.hpp"

#include <cstring>

namespace kino {

namespace {

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
char upper(char c) noexcept { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

bool is_reg_name_char(unsigned char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(static_cast<char>(c))) return true;
  return std::strchr("-._~!$&'()*+,;=%", c) != nullptr && c != '\0';
}

RequestParser* self(llhttp_t* p) { return static_cast<RequestParser*>(p->data); }

// Browsers send 10 to 20 header fields; room for them up front costs one
// allocation where growing one field at a time costs five copies.
constexpr size_t kTypicalHeaders = 16;

}  // namespace

const BodyStorage RequestParser::kDefaultStorage{};

RequestParser::RequestParser(const ParserLimits& limits, const BodyStorage& storage)
    : limits_(limits), storage_(storage) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &RequestParser::on_message_begin;
  settings_.on_url = &RequestParser::on_url;
  settings_.on_method = &RequestParser::on_method;
  settings_.on_header_field = &RequestParser::on_header_field;
  settings_.on_header_value = &RequestParser::on_header_value;
  settings_.on_header_value_complete = &RequestParser::on_header_value_complete;
  settings_.on_headers_complete = &RequestParser::on_headers_complete;
  settings_.on_chunk_extension_name = &RequestParser::on_chunk_extension;
  settings_.on_chunk_extension_value = &RequestParser::on_chunk_extension;
  settings_.on_chunk_header = &RequestParser::on_chunk_header;
  settings_.on_body = &RequestParser::on_body;
  settings_.on_message_complete = &RequestParser::on_message_complete;
  llhttp_init(&parser_, HTTP_REQUEST, &settings_);
  parser_.data = this;
}

void RequestParser::set_peer(std::string_view peer, uint16_t local_port, bool https) {
  peer_.assign(peer.data(), peer.size());
  local_port_ = local_port;
  https_ = https;
}

void RequestParser::note_versions() { settings_.on_version_complete = &RequestParser::on_version_complete; }

int RequestParser::on_version_complete(llhttp_t* p) {
  self(p)->version_read_ = true;
  return 0;
}

RequestParser::RequestLine RequestParser::request_line() const {
  RequestLine line;
  if (!current_) return line;
  line.method = view(current_->method);
  line.target = view(current_->target);
  if (version_read_) {
    line.http_major = parser_.http_major;
    line.http_minor = parser_.http_minor;
  }
  return line;
}

int RequestParser::fail(int status, const char* reason) {
  if (error_status_ == 0) {
    error_status_ = status;
    error_reason_ = reason;
  }
  return -1;
}

int RequestParser::check_head_size(size_t more) {
  head_bytes_ += more;
  if (head_bytes_ > limits_.max_header_size) return fail(431, "request header fields too large");
  return 0;
}

int RequestParser::check_extras_size(size_t more) {
  extras_bytes_ += more;
  if (extras_bytes_ > limits_.max_chunk_extras_size)
    return fail(400, "chunk extensions or trailers too large");
  return 0;
}

int RequestParser::on_message_begin(llhttp_t* p) {
  auto* s = self(p);
  s->current_ = RequestRef(new RequestCtx());
  s->current_->headers.reserve(kTypicalHeaders);
  s->current_->peer_address = s->peer_;
  s->current_->local_port = s->local_port_;
  s->current_->https = s->https_;
  s->field_.clear();
  s->value_.clear();
  s->value_started_ = false;
  s->in_message_ = true;
  s->saw_host_ = false;
  s->headers_done_ = false;
  s->host_from_target_ = false;
  s->expect_continue_ = false;
  s->version_read_ = false;
  s->head_bytes_ = 0;
  s->head_wire_ = 0;
  s->header_count_ = 0;
  s->extras_bytes_ = 0;
  s->chunked_ = false;
  s->framing_wire_ = 0;
  s->chunks_ = 0;
  return 0;
}

int RequestParser::on_method(llhttp_t* p, const char* at, size_t len) {
  auto* s = self(p);
  if (s->check_head_size(len)) return -1;
  s->current_->method.append(at, len);
  return 0;
}

int RequestParser::on_url(llhttp_t* p, const char* at, size_t len) {
  auto* s = self(p);
  if (s->check_head_size(len)) return -1;
  s->current_->target.append(at, len);
  if (s->current_->target.size() > s->limits_.max_uri_size) return s->fail(414, "request target too long");
  return 0;
}

int RequestParser::on_header_field(llhttp_t* p, const char* at, size_t len) {
  auto* s = self(p);
  // After the head these are trailers, which are dropped: only their size matters.
  if (s->headers_done_) return s->check_extras_size(len);
  if (s->check_head_size(len)) return -1;
  s->field_.append(at, len);
  return 0;
}

int RequestParser::on_header_value(llhttp_t* p, const char* at, size_t len) {
  auto* s = self(p);
  if (s->headers_done_) return s->check_extras_size(len);
  if (s->check_head_size(len)) return -1;
  s->value_.append(at, len);
  return 0;
}

int RequestParser::on_header_value_complete(llhttp_t* p) {
  auto* s = self(p);
  int rc = s->finish_header();
  s->field_.clear();
  s->value_.clear();
  return rc;
}

int RequestParser::finish_header() {
  RequestCtx& req = *current_;
  // Trailer fields arrive through the same callbacks after the body; they
  // must never reach the env, or a trailer could rewrite CONTENT_LENGTH.
  if (headers_done_) return 0;
  if (++header_count_ > limits_.max_headers) return fail(431, "too many header fields");

  std::string_view name = view(field_);
  std::string_view value = view(value_);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);

  if (iequals(name, "host")) {
    if (saw_host_) return fail(400, "more than one Host header");
    saw_host_ = true;
    if (!host_from_target_ && analyse_host(value, false)) return -1;
  } else if (iequals(name, "expect")) {
    if (iequals(value, "100-continue")) expect_continue_ = true;
  }

  // A header spelled with underscores could pose as its dashed twin once
  // both become HTTP_X_FOO; it is dropped (the fix for Puma's CVE-2024-45614).
  if (name.find('_') != std::string_view::npos) return 0;

  Bytes key;
  if (iequals(name, "content-type")) {
    key = "CONTENT_TYPE";
  } else if (iequals(name, "content-length")) {
    key = "CONTENT_LENGTH";
  } else {
    key.reserve(5 + name.size());
    key = "HTTP_";
    for (char c : name) key.push_back(c == '-' ? '_' : upper(c));
  }
  for (auto& h : req.headers) {
    if (h.key == key) {
      // Repeated fields are one list (RFC 9110 5.3); cookies use "; ".
      h.value.append(key == "HTTP_COOKIE" ? "; " : ", ");
      h.value.append(value.data(), value.size());
      return 0;
    }
  }
  req.headers.push_back(EnvHeader{std::move(key), Bytes(value.data(), value.size())});
  return 0;
}

int RequestParser::analyse_host(std::string_view host, bool from_target) {
  RequestCtx& req = *current_;
  std::string_view name = host, port;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return fail(400, "invalid Host");
    name = host.substr(0, close + 1);
    std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return fail(400, "invalid Host");
      port = rest.substr(1);
    }
    for (char c : name.substr(1, name.size() - 2))
      if (!(is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'f') || c == ':' || c == '.'))
        return fail(400, "invalid Host");
  } else {
    size_t colon = host.rfind(':');
    if (colon != std::string_view::npos) {
      name = host.substr(0, colon);
      port = host.substr(colon + 1);
    }
    for (char c : name)
      if (!is_reg_name_char(static_cast<unsigned char>(c))) return fail(400, "invalid Host");
  }
  for (char c : port)
    if (!is_digit(c)) return fail(400, "invalid Host");
  if (port.size() > 5) return fail(400, "invalid Host");
  req.server_name.assign(name.data(), name.size());
  req.server_port.assign(port.data(), port.size());
  host_from_target_ = from_target;
  return 0;
}

void RequestParser::set_header_value(std::string_view key, std::string_view value) {
  for (auto& h : current_->headers) {
    if (view(h.key) == key) {
      h.value.assign(value.data(), value.size());
      return;
    }
  }
  current_->headers.push_back(EnvHeader{Bytes(key.data(), key.size()), Bytes(value.data(), value.size())});
}

int RequestParser::analyse_target() {
  RequestCtx& req = *current_;
  std::string_view t = view(req.target);
  std::string_view rest;
  if (!t.empty() && t.front() == '/') {
    rest = t;
  } else if (t == "*") {
    req.path = "*";
    return 0;
  } else {
    // absolute-form: scheme "://" authority [path-abempty] [ "?" query ]
    size_t sep = t.find("://");
    if (sep == std::string_view::npos) return fail(400, "invalid request target");
    std::string_view scheme = t.substr(0, sep);
    if (!iequals(scheme, "http") && !iequals(scheme, "https")) return fail(400, "invalid request target");
    std::string_view after = t.substr(sep + 3);
    size_t end = after.find_first_of("/?#");
    std::string_view authority = after.substr(0, end);
    if (authority.empty() || authority.find('@') != std::string_view::npos)
      return fail(400, "invalid request target");
    if (analyse_host(authority, true)) return -1;
    // RFC 9112 3.2.2: the target's authority replaces whatever Host said,
    // so HTTP_HOST agrees with SERVER_NAME (Rack reads the host from it).
    set_header_value("HTTP_HOST", authority);
    rest = end == std::string_view::npos ? std::string_view() : after.substr(end);
  }
  size_t hash = rest.find('#');
  if (hash != std::string_view::npos) rest = rest.substr(0, hash);
  size_t q = rest.find('?');
  std::string_view path = rest.substr(0, q);
  if (path.empty()) path = "/";
  req.path.assign(path.data(), path.size());
  if (q != std::string_view::npos) req.query.assign(rest.data() + q + 1, rest.size() - q - 1);
  return 0;
}

int RequestParser::on_headers_complete(llhttp_t* p) {
  auto* s = self(p);
  RequestCtx& req = *s->current_;
  req.http_major = llhttp_get_http_major(p);
  req.http_minor = llhttp_get_http_minor(p);
  if (req.http_major != 1 || req.http_minor > 1) return s->fail(505, "HTTP version not supported");
  if (req.method == "CONNECT") return s->fail(405, "CONNECT is not supported");
  if (s->analyse_target()) return -1;
  if (req.http_minor == 1 && !s->saw_host_) return s->fail(400, "missing Host header");
  req.head = req.method == "HEAD";

  bool chunked = (p->flags & F_CHUNKED) != 0;
  bool has_length = (p->flags & F_CONTENT_LENGTH) != 0;
  // llhttp accepts any codings before a final "chunked"; we decode only
  // chunked, and handing the app a body still gzip-coded (say) would be
  // wrong, so other codings are refused (RFC 9112 6.1: 501). Without a
  // final chunked llhttp itself answers 400, as the RFC requires.
  for (const auto& h : req.headers) {
    if (!chunked || h.key != "HTTP_TRANSFER_ENCODING") continue;
    std::string_view codings = view(h.value);
    size_t pos = 0;
    while (pos <= codings.size()) {
      size_t comma = codings.find(',', pos);
      std::string_view coding =
          codings.substr(pos, comma == std::string_view::npos ? codings.npos : comma - pos);
      while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t')) coding.remove_prefix(1);
      while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t')) coding.remove_suffix(1);
      if (!iequals(coding, "chunked")) return s->fail(501, "unsupported transfer coding");
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
    }
  }
  if (has_length && s->limits_.max_body_size && p->content_length > s->limits_.max_body_size)
    return s->fail(413, "request body too large");
  bool has_body = chunked || (has_length && p->content_length > 0);
  if (has_body) req.body = BodyRef(new RequestBody(s->storage_, has_length ? p->content_length : 0));
  req.expect_continue = s->expect_continue_ && req.http_minor == 1 && has_body;
  // Decided now, not at the end of the message: the request may reach a
  // worker while its body is still arriving, and trailers (which could
  // say `Connection: close`) are ignored anyway. A Transfer-Encoding on
  // HTTP/1.0 means the framing cannot be trusted (RFC 9112 6.1): close.
  req.keep_alive = llhttp_should_keep_alive(p) != 0 && !(chunked && req.http_minor == 0);
  // We honour no Upgrade: the request is answered as a plain one, and the
  // connection ends after it, since what the client sends next may well
  // not be HTTP/1.1 any more.
  if ((p->flags & F_UPGRADE) && (p->flags & F_CONNECTION_UPGRADE)) req.keep_alive = false;
  s->body_bytes_ = 0;
  s->chunked_ = chunked;
  // From here on header callbacks carry trailers.
  s->headers_done_ = true;
  return 0;
}

int RequestParser::on_chunk_extension(llhttp_t* p, const char*, size_t len) {
  return self(p)->check_extras_size(len);
}

int RequestParser::on_chunk_header(llhttp_t* p) {
  ++self(p)->chunks_;
  return 0;
}

int RequestParser::on_body(llhttp_t* p, const char* at, size_t len) {
  auto* s = self(p);
  RequestCtx& req = *s->current_;
  s->body_bytes_ += len;
  if (s->limits_.max_body_size && s->body_bytes_ > s->limits_.max_body_size)
    return s->fail(413, "request body too large");
  if (!req.body->append({at, len})) return s->fail(req.body->failure_status(), req.body->failure_reason());
  return 0;
}

int RequestParser::on_message_complete(llhttp_t* p) {
  auto* s = self(p);
  RequestCtx& req = *s->current_;
  if (req.body) req.body->finish();
  s->complete_ = std::move(s->current_);
  s->in_message_ = false;
  return HPE_PAUSED;
}

RequestParser::Result RequestParser::feed(const char* data, size_t len) {
  if (error_status_) return {State::Error, 0};
  bool in_framing = in_message_ && headers_done_ && chunked_;
  uint64_t body_before = body_bytes_;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  if (err == HPE_OK && in_framing) {
    // Each chunk's size line and CRLFs are allowed for, up to a 16-digit
    // size; extensions and trailers are allowed for as counted by their
    // callbacks. What is left (zeros before a size, whitespace llhttp
    // skips silently) shares the same budget.
    constexpr uint64_t kFramingPerChunk = 24;
    framing_wire_ += len - (body_bytes_ - body_before);
    if (framing_wire_ > limits_.max_chunk_extras_size + extras_bytes_ + kFramingPerChunk * chunks_) {
      fail(400, "chunk extensions or trailers too large");
      return {State::Error, len};
    }
  }
  if (err == HPE_OK) {
    // llhttp skips optional whitespace (around values, before the first
    // header) without a callback, so check_head_size never sees it; a head
    // padded with it and sent over many reads is bounded here instead.
    if (in_message_ && !headers_done_) {
      head_wire_ += len;
      if (head_wire_ > limits_.max_header_size) {
        fail(431, "request header fields too large");
        return {State::Error, len};
      }
    }
    return {State::NeedMore, len};
  }
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    const char* pos = llhttp_get_error_pos(&parser_);
    size_t consumed = pos ? static_cast<size_t>(pos - data) : len;
    // An Upgrade we do not speak is answered as a plain request; whatever
    // follows it on the connection is parsed as HTTP again.
    if (err == HPE_PAUSED)
      llhttp_resume(&parser_);
    else
      llhttp_resume_after_upgrade(&parser_);
    if (!complete_) return {State::NeedMore, consumed};
    return {State::Complete, consumed};
  }
  if (error_status_ == 0) {
    switch (err) {
      case HPE_INVALID_METHOD:
        fail(400, "invalid method");
        break;
      case HPE_INVALID_VERSION:
        // llhttp says "Invalid HTTP version" when it read two digits and
        // refuses their combination: HTTP/1.2 or HTTP/3.0 is well formed,
        // just not spoken here. Other reasons mean a malformed token.
        if (const char* why = llhttp_get_error_reason(&parser_);
            why && std::strcmp(why, "Invalid HTTP version") == 0)
          fail(505, "HTTP version not supported");
        else
          fail(400, "invalid HTTP version");
        break;
      case HPE_UNEXPECTED_CONTENT_LENGTH:
        // llhttp reports a repeated Content-Length with the same code.
        fail(400, (parser_.flags & F_TRANSFER_ENCODING) ? "Content-Length with Transfer-Encoding"
                                                        : "more than one Content-Length");
        break;
      case HPE_INVALID_TRANSFER_ENCODING:
        fail(400, "invalid Transfer-Encoding");
        break;
      default: {
        // llhttp's reasons are static strings ("Invalid header value
        // char"): they name the fault for the client better than a code.
        const char* reason = llhttp_get_error_reason(&parser_);
        fail(400, reason && *reason ? reason : llhttp_errno_name(err));
        break;
      }
    }
  }
  const char* pos = llhttp_get_error_pos(&parser_);
  return {State::Error, pos ? static_cast<size_t>(pos - data) : 0};
}

RequestParser::Result RequestParser::finish() {
  if (error_status_) return {State::Error, 0};
  if (!in_message_) return {State::NeedMore, 0};
  llhttp_errno_t err = llhttp_finish(&parser_);
  if (err == HPE_PAUSED && complete_) return {State::Complete, 0};
  fail(400, "connection closed mid-request");
  return {State::Error, 0};
}

RequestRef RequestParser::take() { return std::move(complete_); }

RequestRef RequestParser::request_awaiting_body() const {
  return headers_done_ && in_message_ ? current_ : RequestRef();
}

}  // namespace kino
