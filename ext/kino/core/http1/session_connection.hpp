// The connection under a protocol session, as the session sees it: the
// bytes read, the reading, the bytes the protocol sends of its own, the
// close. net/connection implements it, so the session needs nothing from
// the networking layer but this. Everything here runs on the connection's
// strand.
#pragma once

#include <cstddef>
#include <memory>

#include "handoff/response_sink.hpp"
#include "util/memory.hpp"
#include "util/read_buffer.hpp"

namespace kino {

class SessionConnection {
 public:
  // What was read; the session consumes what it parsed.
  virtual ReadBuffer& input() noexcept = 0;
  // Whether the connection closed: nothing more is read or sent.
  virtual bool closed() const noexcept = 0;
  // Reads more input, unless a read is under way or the session wants none
  // (Http1Session::wants_input).
  virtual void read_more() = 0;
  // Queues bytes of the protocol's own ahead of any response still to
  // come (HTTP/1's `100 Continue`).
  virtual void send_interim(Bytes bytes) = 0;
  // After the last response: shut the send side, drop what still comes.
  // `input_pending` says the client may still be sending (the rest of a
  // refused request): over TLS, that must be read before close_notify.
  virtual void linger(bool input_pending) = 0;
  // The connection as the sink its requests are answered through.
  virtual std::shared_ptr<ResponseSink> sink() = 0;

 protected:
  ~SessionConnection() = default;
};

}  // namespace kino
