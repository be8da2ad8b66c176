#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "http1/request_parser.hpp"

namespace kino {

// What one server runs with. No field has a default here: the defaults
// live in Ruby's table (Kino::Configuration::DEFAULTS) and the binding
// sets every field; `{}` only keeps a forgotten one from being garbage.
struct ServerConfig {
  // "tcp://HOST:PORT" (HOST may be an [IPv6] literal; PORT 0 = ephemeral)
  // or "unix:///absolute/path.sock".
  std::vector<std::string> listen;
  int io_threads{};
  int backlog{};
  ParserLimits limits;
  // Where request bodies are kept: memory up to a limit, then a spool file.
  // The Server gives it its SpoolBudget (max_spool_size, max_connections).
  BodyStorage body_storage;
  // A request reaches the workers once its whole body is here (false), or
  // as soon as its head is, the body streaming to the app (true: for apps
  // that read while they answer; a slow upload then holds a worker).
  bool stream_request_bodies{};
  // Bytes per second a body must arrive at: its first window is free (slow
  // start, a client's pause before it sends), and each window after it
  // must bring min_body_rate x window bytes, or 408. 0: no minimum (the
  // stall deadline, first_data_timeout between reads, still holds).
  uint64_t min_body_rate{};
  std::chrono::milliseconds min_body_rate_window{};
  // Bytes of request bodies spooled to disk at once, over every connection
  // (0: no limit); an upload that would pass it gets 503.
  uint64_t max_spool_size{};
  // Pending response bytes per connection above which a streaming body
  // waits for the socket to drain.
  size_t write_high_water{};
  // From accept, or from the end of the previous response, until the
  // request head is complete; also the longest a body may stall between
  // reads, and a response between write progress.
  std::chrono::milliseconds first_data_timeout{};
  // Descriptors for clients at most (0: no limit): open connections plus
  // the spool files of their bodies. At the limit the listeners stop
  // accepting (new clients wait in the kernel's backlog), and a body that
  // would need a spool file gets 503.
  size_t max_connections{};
  // Requests queued for the workers at most (0: no limit); beyond it a
  // request waits up to queue_timeout for a place, then gets 503.
  size_t queue_depth{};
  std::chrono::milliseconds queue_timeout{};
  // Past this, a request still with the app is answered 504 (the handler
  // runs on; its late answer is dropped). Zero: no limit.
  std::chrono::milliseconds request_timeout{};
  // Idle keep-alive connections are closed after this.
  std::chrono::milliseconds persistent_timeout{};
  // Worker threads whose current request is tracked (see ThreadSlots).
  size_t worker_slots{};
  // The server's own lines go to a LogWriter on a duplicate of this
  // descriptor; -1: into Server::log() for Ruby to drain (a log IO with no
  // descriptor, such as a StringIO).
  int log_fd = -1;
};

}  // namespace kino
