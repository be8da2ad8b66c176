// Adapts llhttp (strict mode, no lenient flags) to RequestCtx records.
// The parser pauses after each complete request, so a connection handles
// one request at a time and answers pipelined requests in order.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "handoff/request_ctx.hpp"

namespace kino {

// Set by the binding from Ruby's table of defaults, but for
// max_chunk_extras_size, which no directive sets.
struct ParserLimits {
  size_t max_header_size{};  // whole request head
  size_t max_uri_size{};
  size_t max_headers{};
  uint64_t max_body_size{};  // 0 = unlimited
  // Chunk extensions and trailer fields of one message, together: both are
  // parsed and dropped, so without a budget of their own a client could
  // stream them for ever.
  size_t max_chunk_extras_size = 16 * 1024;
};

class RequestParser {
 public:
  enum class State { NeedMore, Complete, Error };

  struct Result {
    State state;
    size_t consumed;  // bytes of the input used; the rest belongs to the next request
  };

  // `storage` must outlive the parser and every body it creates is
  // written through it only while the parser feeds it.
  explicit RequestParser(const ParserLimits& limits, const BodyStorage& storage = kDefaultStorage);
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Feeds bytes. Stops at the end of a complete request (Complete), at an
  // error (Error) or when the input runs out (NeedMore).
  Result feed(const char* data, size_t len);

  // The peer closed its side: completes a request whose body runs to EOF,
  // otherwise reports whether bytes of an unfinished request were pending.
  Result finish();

  // After Complete: the request, and the parser ready for the next one.
  RequestRef take();

  // After Error: the status to answer with and a short reason for the body.
  int error_status() const noexcept { return error_status_; }
  const char* error_reason() const noexcept { return error_reason_; }  // a static string

  // The request whose head is complete and whose body is still being
  // parsed (null otherwise). It may go to a worker at once: from here on
  // the parser touches only its RequestBody, which is made for that.
  RequestRef request_awaiting_body() const;

  // Whether the current request's head is complete (its body may not be).
  bool head_complete() const noexcept { return in_message_ && headers_done_; }

  void set_peer(std::string_view peer, uint16_t local_port, bool https = false);
  std::string_view peer() const noexcept { return view(peer_); }

  // What was read of the current request's line, for the access log's
  // record of a request refused before its head was complete: empty parts
  // were not read, and `http_major` stays 0 until the version was (which
  // the parser notes only after note_versions()).
  struct RequestLine {
    std::string_view method;
    std::string_view target;
    uint8_t http_major = 0;
    uint8_t http_minor = 0;
  };
  RequestLine request_line() const;
  // Has the parser note when a request line's version has been read; only
  // the access log asks, so parsing pays nothing for it otherwise.
  void note_versions();

 private:
  static int on_message_begin(llhttp_t*);
  static int on_url(llhttp_t*, const char*, size_t);
  static int on_method(llhttp_t*, const char*, size_t);
  static int on_version_complete(llhttp_t*);
  static int on_header_field(llhttp_t*, const char*, size_t);
  static int on_header_value(llhttp_t*, const char*, size_t);
  static int on_header_value_complete(llhttp_t*);
  static int on_headers_complete(llhttp_t*);
  static int on_chunk_extension(llhttp_t*, const char*, size_t);
  static int on_chunk_header(llhttp_t*);
  static int on_body(llhttp_t*, const char*, size_t);
  static int on_message_complete(llhttp_t*);

  int fail(int status, const char* reason);
  int finish_header();
  int check_head_size(size_t more);
  int check_extras_size(size_t more);
  int analyse_target();
  void set_header_value(std::string_view key, std::string_view value);
  int analyse_host(std::string_view host, bool from_target);

  static const BodyStorage kDefaultStorage;

  llhttp_t parser_;
  llhttp_settings_t settings_;
  ParserLimits limits_;
  const BodyStorage& storage_;
  RequestRef current_;
  RequestRef complete_;
  Bytes field_;
  Bytes value_;
  bool value_started_ = false;
  bool in_message_ = false;
  bool saw_host_ = false;
  bool headers_done_ = false;
  bool host_from_target_ = false;
  bool expect_continue_ = false;
  bool version_read_ = false;  // of the current request; see note_versions
  size_t head_bytes_ = 0;      // head bytes seen by callbacks
  size_t head_wire_ = 0;       // bytes of feed() calls that ended inside the head
  size_t header_count_ = 0;
  size_t extras_bytes_ = 0;  // chunk extensions and trailers seen by callbacks
  // Chunked framing on the wire, for what no callback reports (a size's
  // leading zeros, whitespace): bytes of feed() calls that began after the
  // head, less the body bytes among them.
  bool chunked_ = false;
  uint64_t framing_wire_ = 0;
  uint64_t chunks_ = 0;
  uint64_t body_bytes_ = 0;
  int error_status_ = 0;
  const char* error_reason_ = "";
  Bytes peer_;
  uint16_t local_port_ = 0;
  bool https_ = false;
};

}  // namespace kino
