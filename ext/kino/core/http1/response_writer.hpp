// HTTP/1.1 response serialisation: pure functions over bytes, so the rules
// (framing, which statuses carry a body, header hygiene) are testable
// without sockets.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "handoff/request_ctx.hpp"
#include "util/memory.hpp"

namespace kino {

struct HeaderView {
  std::string_view name;
  std::string_view value;
};

// What the app's headers say about framing; everything else passes through.
struct AppFraming {
  std::optional<uint64_t> content_length;  // a valid content-length header
  bool connection_close = false;           // the app asked to close
};

struct ResponsePlan {
  BodyFraming framing = BodyFraming::None;
  bool send_body = true;
  bool keep_alive = false;
  bool announce_keep_alive = false;  // HTTP/1.0 keeps the connection only when told
  uint64_t content_length = 0;       // meaningful with BodyFraming::ContentLength
};

// Statuses 1xx, 204 and 304 never carry a body, whatever the app says.
bool status_forbids_body(int status) noexcept;

std::string_view reason_phrase(int status) noexcept;

// Header names must be tokens (RFC 9110 5.6.2); values must not contain CR,
// LF or NUL, or the app could split the response in two.
bool valid_header_name(std::string_view name) noexcept;
bool valid_header_value(std::string_view value) noexcept;

// Decides framing: `known_length` is the body size when the whole body is
// at hand, nullopt when it will be streamed.
ResponsePlan plan_response(const RequestCtx& req, int status, const AppFraming& app,
                           std::optional<uint64_t> known_length, bool server_closing) noexcept;

// Scans the app's headers for content-length and connection.
AppFraming read_app_framing(std::span<const HeaderView> headers) noexcept;

// Writes the status line and headers. Headers that would corrupt the
// response are skipped and their names appended to `dropped` (comma
// separated) for the log; framing headers from the app are replaced by
// ours.
void write_head(Bytes& out, int status, std::span<const HeaderView> headers, const ResponsePlan& plan,
                std::string_view date, Bytes* dropped);

// Chunked transfer coding pieces.
void write_chunk(Bytes& out, std::string_view data);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// The IMF-fixdate of now, cached per second.
std::string_view http_date();

}  // namespace kino
