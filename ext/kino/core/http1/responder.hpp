// Turns an application's answer into bytes on the request's connection.
// Every function here may be called from any thread, but for one request
// only by the party that won `RequestCtx::claim()`; the connection's strand
// serialises the actual writes.
#pragma once

#include <span>
#include <string_view>

#include "handoff/byte_lease.hpp"
#include "handoff/request_ctx.hpp"
#include "http1/response_writer.hpp"

namespace kino {

// Claims the request and sends a complete response in one write.
// Returns false (and sends nothing) when another party answered first.
bool respond(RequestCtx& req, int status, std::span<const HeaderView> headers,
             std::span<const std::string_view> body, bool server_closing = false);

// The same, with some body parts lent instead of copied: `leases` has one
// entry per part of `body`, null for a part to copy, else the lease whose
// bytes are that part. A lease gets a Loan only when its bytes go out (not
// for a HEAD request, say, nor when the claim is lost); the caller keeps
// the bytes while any is out (ByteLease::loaned_out).
bool respond_lent(RequestCtx& req, int status, std::span<const HeaderView> headers,
                  std::span<const std::string_view> body, std::span<const ByteLeaseRef> leases,
                  bool server_closing = false);

// Streaming: claim and send the head, then body pieces, then finish.
bool start_response(RequestCtx& req, int status, std::span<const HeaderView> headers,
                    bool server_closing = false);
// Returns false once the peer is gone: stop producing.
bool write_body(RequestCtx& req, std::string_view data);
void finish_response(RequestCtx& req);

// For answers the server gives on its own (errors, overload): a short plain
// text body and `connection: close` when `close` is set.
bool respond_plain(RequestCtx& req, int status, std::string_view text, bool close);

// A response that cannot be completed (the app failed after the head was
// sent): end it so the client sees a truncated body, never a valid one.
void abort_response(RequestCtx& req);

}  // namespace kino
