// The seam between the responder and the transport. A connection implements
// it; the responder only ever hands it finished bytes, in order, from the
// one thread that claimed the response.
#pragma once

#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <chrono>
#include <string_view>

#include "handoff/byte_lease.hpp"
#include "util/memory.hpp"

namespace kino {

class RequestCtx;

// One piece of a response handed over in several: bytes of its own, or,
// when `loan` is set, bytes lent (see ByteLease) and `bytes` empty.
struct OutPiece {
  Bytes bytes;
  Loan loan;
  size_t size() const noexcept { return loan ? loan.bytes().size() : bytes.size(); }
};

class ResponseSink {
 public:
  virtual ~ResponseSink() = default;

  // Queue bytes for the socket. `last` ends the current response; after it
  // the connection reads the next request when `keep_alive`, or closes.
  // `logged`, with the last bytes only, is the request they end when the
  // access log wants it (RequestCtx::access_logged); null otherwise.
  virtual void send(Bytes bytes, bool last, bool keep_alive, boost::intrusive_ptr<RequestCtx> logged) = 0;

  // The same for bytes in pieces, written in order as if one: `last` is
  // said of the final piece. Loans among them are returned once their
  // bytes are written or the connection drops them.
  virtual void send_pieces(NativeVector<OutPiece> pieces, bool last, bool keep_alive,
                           boost::intrusive_ptr<RequestCtx> logged) = 0;

  // Any thread: closes the connection now, dropping what it has not
  // written (a lease's owner recalls its loans, see ByteLease::recall).
  virtual void close_now() = 0;

  // Blocks until the socket has drained below its high-water mark, the
  // deadline passes, or the peer is gone. Returns false once the peer is
  // gone, so a streaming body can stop producing.
  virtual bool wait_writable(std::chrono::steady_clock::time_point deadline) = 0;

  // Whether more bytes wait for the socket than the high-water mark allows:
  // a producer should wait_writable before sending more.
  virtual bool backlogged() const = 0;

  // The app started reading the body of `req`, whose client waits for
  // `100 Continue` before sending it: send that, unless the response to
  // `req` has begun (or `req` is no longer the connection's request).
  virtual void send_continue(const RequestCtx& req) = 0;

  // Whether the peer is still there to receive a response.
  virtual bool open() const = 0;

  // Any thread, for a request not yet taken: whether the client has left
  // (closed or reset its connection) though the transport was not reading
  // and so has not noticed. May look at the socket.
  virtual bool peer_gone() const { return !open(); }

  // Whether the server is draining: responses then say `connection: close`.
  virtual bool draining() const = 0;

  // A line for the server's log channel (never written from here directly).
  virtual void log(std::string_view line) = 0;
};

}  // namespace kino
