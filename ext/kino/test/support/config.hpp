// The configuration every test starts from, made in one place.
#pragma once

#include "server_config.hpp"

namespace kino::test {

// A server on an ephemeral loopback port with two I/O threads.
inline ServerConfig server_config() {
  ServerConfig config;
  config.listen = {"tcp://127.0.0.1:0"};
  config.io_threads = 2;
  return config;
}

}  // namespace kino::test
