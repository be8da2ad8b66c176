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
  // Pending response bytes per connection above which a streaming body
  // waits for the socket to drain.
  size_t write_high_water = 1u << 20;
  // Worker threads whose current request is tracked (see WorkerSlots).
  size_t worker_slots = 1024;
};

}  // namespace kino
