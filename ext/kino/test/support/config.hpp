// The configuration every test starts from, made in one place. The core
// keeps no defaults of its own: Ruby's table (Kino::Configuration::DEFAULTS
// in lib/kino/configuration.rb) is where they live, and the binding passes
// every value. These are that table's values, so a test runs the server a
// deploy would run.
#pragma once

#include <algorithm>
#include <chrono>
#include <thread>

#include "server_config.hpp"

namespace kino::test {

inline ParserLimits parser_limits() {
  ParserLimits limits;
  limits.max_header_size = 65'536;    // max_header_size
  limits.max_uri_size = 8192;         // max_uri_size
  limits.max_headers = 100;           // max_headers
  limits.max_body_size = 52'428'800;  // max_body_size: 50 MiB
  return limits;
}

// A server on an ephemeral loopback port.
inline ServerConfig server_config() {
  using std::chrono::milliseconds;
  ServerConfig config;
  config.listen = {"tcp://127.0.0.1:0"};
  config.io_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));  // Etc.nprocessors
  config.backlog = 1024;
  config.limits = parser_limits();
  config.body_storage.memory_limit = 114'688;  // body_buffer_size: 112 KiB
  config.stream_request_bodies = false;
  config.min_body_rate = 1024;
  config.min_body_rate_window = milliseconds(5000);
  config.max_spool_size = 1'073'741'824;  // 1 GiB
  config.first_data_timeout = milliseconds(30'000);
  config.persistent_timeout = milliseconds(20'000);
  config.queue_depth = 1024;
  config.queue_timeout = milliseconds(5000);
  config.request_timeout = milliseconds(0);  // nil: no limit
  config.batch = 1;
  // Ruby derives these two from the process (the open-file limit, the
  // workers' threads) and has no key for write_high_water; these are the
  // values the binding fell back to.
  config.max_connections = 0;  // no limit
  config.worker_slots = 1024;
  config.write_high_water = 1u << 20;
  config.tls_handshake_timeout = milliseconds(10'000);  // Kino::Server::TLS_HANDSHAKE_TIMEOUT
  config.control_fd = -1;                               // control_bind, if set, is bound
  return config;
}

}  // namespace kino::test
