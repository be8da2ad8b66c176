#include "handoff/request_ctx.hpp"

#include "handoff/response_sink.hpp"
#include "http1/responder.hpp"

namespace kino {

// The last reference to a request going away without an answer means a
// worker lost it (killed thread, crashed ractor, a bug). The client still
// gets a response instead of a connection that hangs forever.
RequestCtx::~RequestCtx() {
  if (!sink) return;
  // A request being destroyed cannot be carried to its connection to be
  // logged (see deliver): this answer goes unlogged.
  access_logged = false;
  try {
    if (!claimed()) {
      sink->log("a request was released without a response; answered 500");
      respond_plain(*this, 500, "Internal Server Error\n", false);
    } else if (response.started && !response.finished) {
      abort_response(*this);
    }
  } catch (...) {
    // Out of memory while answering: the connection closes with the sink.
  }
}

RequestBody::ReadResult RequestCtx::read_body(char* out, size_t max,
                                              std::chrono::steady_clock::time_point deadline) {
  if (!body) return {RequestBody::ReadStatus::End, 0};
  // Reading is how the app says it wants the body: the client that asked
  // before sending it hears `100 Continue` now, and only now.
  if (auto owed = body->take_continue()) owed->send_continue(*this);
  return body->read(out, max, deadline);
}

}  // namespace kino
