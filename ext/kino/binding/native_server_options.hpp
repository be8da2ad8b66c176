// The server options unit: the options Hash of Native.server_create (as
// Kino::Server#native_options builds it) turned into the core's
// ServerConfig.
#pragma once

#include "binding.hpp"
#include "core/server_config.hpp"

namespace kino::binding {

// Every key is required (a missing one raises ArgumentError naming it):
// the defaults are Ruby's (Kino::Configuration::DEFAULTS), and
// Kino::Server#native_options passes them all.
//
// The options as plain values. Reading them may raise (a wrong type, a
// value out of range), so it happens before any C++ object exists; this
// struct has no destructor. `listen` is an Array of Strings of our own,
// which the caller keeps alive (RB_GC_GUARD) until server_config.
struct ServerOptions {
  VALUE listen;
  VALUE inherited_listeners;          // an Array of [address String, fd Integer] of our own
  VALUE spool_dir;                    // a String, or nil
  VALUE mode;                         // a String: "threaded" or "ractor"
  VALUE control_bind, control_token;  // Strings, or nil
  // Each a String (a path or PEM text), or nil: tls_cert nil is plaintext.
  VALUE tls_cert, tls_key, tls_ca;
  long long io_threads, backlog, max_header_size, max_uri_size, max_headers, max_body_size, body_memory_limit,
      write_high_water, worker_slots, queue_depth, max_connections, min_body_rate, max_spool_size, workers,
      threads, log_fd, control_fd;
  double first_data_timeout, persistent_timeout, request_timeout, queue_timeout, min_body_rate_window,
      tls_handshake_timeout;
  // Multi-process mode: a Native.board_create id and this process's row
  // on it, both nil for a server on its own.
  VALUE process_board, process_index;
  bool stream_request_bodies;
  bool intern_header_values;
  bool lanes;
  bool log_requests, log_format_json;
  long long batch;
};

ServerOptions read_server_options(VALUE options);

// The core's configuration from `options`; C++ only, so call it inside
// `protect`.
ServerConfig server_config(const ServerOptions& options);

void init_native_server_options();

}  // namespace kino::binding
