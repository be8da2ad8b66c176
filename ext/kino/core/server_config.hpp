#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "request_parser.hpp"

namespace kino {

struct ServerConfig {
  // "tcp://HOST:PORT" (HOST may be an [IPv6] literal; PORT 0 = ephemeral)
  // or "unix:///absolute/path.sock".
  std::vector<std::string> listen;
  int io_threads = 2;
  int backlog = 1024;
  ParserLimits limits;
  // Where request bodies are kept: memory up to a limit, then a spool file.
  BodyStorage body_storage;
  // Pending response bytes per connection above which a streaming body
  // waits for the socket to drain.
  size_t write_high_water = 1u << 20;
  // From accept, or from the end of the previous response, until the
  // request head is complete; also the longest a body may stall between
  // reads, and a response between write progress.
  std::chrono::milliseconds first_data_timeout{30000};
  // Open connections at most (0: no limit). At the limit the listeners
  // stop accepting; new clients wait in the kernel's backlog.
  size_t max_connections = 0;
  // Requests queued for the workers at most (0: no limit); beyond it a
  // request waits up to queue_timeout for a place, then gets 503.
  size_t queue_depth = 1024;
  std::chrono::milliseconds queue_timeout{5000};
  // Past this, a request still with the app is answered 504 (the handler
  // runs on; its late answer is dropped). Zero: no limit.
  std::chrono::milliseconds request_timeout{0};
  // Idle keep-alive connections are closed after this.
  std::chrono::milliseconds persistent_timeout{20000};
  // Worker threads whose current request is tracked (see WorkerSlots).
  size_t worker_slots = 1024;
};

}  // namespace kino
