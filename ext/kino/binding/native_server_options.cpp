#include "native_server_options.hpp"

#include <chrono>

namespace kino::binding {

namespace {

ID id_listen, id_io_threads, id_backlog, id_max_header_size, id_max_uri_size, id_max_headers,
    id_max_body_size, id_write_high_water, id_worker_slots, id_first_data_timeout, id_persistent_timeout,
    id_request_timeout, id_queue_depth, id_queue_timeout, id_max_connections, id_body_memory_limit,
    id_spool_dir, id_stream_request_bodies, id_min_body_rate, id_min_body_rate_window, id_max_spool_size,
    id_log_fd;

// Kino::Server#native_options passes every key: the defaults live in
// Ruby's table (Kino::Configuration::DEFAULTS), not here.
VALUE required(VALUE options, ID key) {
  VALUE v = rb_hash_lookup2(options, ID2SYM(key), Qundef);
  if (v == Qundef) rb_raise(rb_eArgError, "missing server option: %s", rb_id2name(key));
  return v;
}

// A number Ruby must give: nil once meant "the native fallback", so it is
// named as plainly as a key left out, not left to NUM2LL's TypeError.
VALUE required_number(VALUE options, ID key) {
  VALUE v = required(options, key);
  if (NIL_P(v)) rb_raise(rb_eArgError, "server option %s is nil: give a number", rb_id2name(key));
  return v;
}

long long required_int(VALUE options, ID key) { return NUM2LL(required_number(options, key)); }

double required_seconds(VALUE options, ID key) { return NUM2DBL(required_number(options, key)); }

std::chrono::milliseconds milliseconds(double seconds) {
  return std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}

}  // namespace

ServerOptions read_server_options(VALUE options) {
  Check_Type(options, T_HASH);
  VALUE listen = required(options, id_listen);
  Check_Type(listen, T_ARRAY);
  ServerOptions o{};
  // The addresses as Strings go into an Array of our own: an element's
  // to_str is Ruby code, and may change the caller's Array under us.
  o.listen = string_values(listen);
  o.spool_dir = required(options, id_spool_dir);
  if (!NIL_P(o.spool_dir)) StringValue(o.spool_dir);
  o.body_memory_limit = required_int(options, id_body_memory_limit);
  o.stream_request_bodies = RTEST(required(options, id_stream_request_bodies));
  o.min_body_rate = required_int(options, id_min_body_rate);
  o.max_spool_size = required_int(options, id_max_spool_size);
  o.min_body_rate_window = required_seconds(options, id_min_body_rate_window);
  // Bounded so the rate arithmetic (bytes x 1000, rate x elapsed ms) stays
  // far from overflow; no network is that slow or that fast.
  if (o.min_body_rate < 0 || o.min_body_rate > (1ll << 40) || o.max_spool_size < 0)
    rb_raise(rb_eArgError, "min_body_rate and max_spool_size must not be negative");
  if (!(o.min_body_rate_window > 0) || o.min_body_rate_window > 3600)
    rb_raise(rb_eArgError, "min_body_rate_window must be between 0 and 3600 seconds");
  o.io_threads = required_int(options, id_io_threads);
  o.backlog = required_int(options, id_backlog);
  o.max_header_size = required_int(options, id_max_header_size);
  o.max_uri_size = required_int(options, id_max_uri_size);
  o.max_headers = required_int(options, id_max_headers);
  o.max_body_size = required_int(options, id_max_body_size);
  o.write_high_water = required_int(options, id_write_high_water);
  o.worker_slots = required_int(options, id_worker_slots);
  o.first_data_timeout = required_seconds(options, id_first_data_timeout);
  o.persistent_timeout = required_seconds(options, id_persistent_timeout);
  if (!(o.first_data_timeout > 0) || !(o.persistent_timeout > 0))
    rb_raise(rb_eArgError, "timeouts must be positive");
  VALUE request_timeout = required(options, id_request_timeout);
  o.request_timeout = NIL_P(request_timeout) ? 0 : NUM2DBL(request_timeout);  // nil: no limit
  if (o.request_timeout < 0) rb_raise(rb_eArgError, "request_timeout must not be negative");
  o.queue_depth = required_int(options, id_queue_depth);
  o.log_fd = required_int(options, id_log_fd);
  if (o.log_fd < -1 || o.log_fd > INT32_MAX) rb_raise(rb_eArgError, "log_fd must be a descriptor, or -1");
  o.max_connections = required_int(options, id_max_connections);
  if (o.max_connections < 0) rb_raise(rb_eArgError, "max_connections must not be negative");
  o.queue_timeout = required_seconds(options, id_queue_timeout);
  if (o.queue_depth < 0 || o.queue_timeout < 0)
    rb_raise(rb_eArgError, "queue_depth and queue_timeout must not be negative");
  if (o.io_threads < 1 || o.backlog < 1 || o.max_header_size < 1 || o.max_uri_size < 1 || o.max_headers < 1 ||
      o.max_body_size < 0 || o.body_memory_limit < 0 || o.write_high_water < 1 || o.worker_slots < 0 ||
      o.worker_slots > (1 << 20))
    rb_raise(rb_eArgError, "server options must be positive");
  return o;
}

ServerConfig server_config(const ServerOptions& o) {
  ServerConfig config;
  for (long i = 0; i < RARRAY_LEN(o.listen); ++i)
    config.listen.emplace_back(bytes_of(RARRAY_AREF(o.listen, i)));
  config.io_threads = static_cast<int>(o.io_threads);
  config.backlog = static_cast<int>(o.backlog);
  config.limits.max_header_size = static_cast<size_t>(o.max_header_size);
  config.limits.max_uri_size = static_cast<size_t>(o.max_uri_size);
  config.limits.max_headers = static_cast<size_t>(o.max_headers);
  config.limits.max_body_size = static_cast<uint64_t>(o.max_body_size);
  config.body_storage.memory_limit = static_cast<size_t>(o.body_memory_limit);
  if (!NIL_P(o.spool_dir)) config.body_storage.spool_dir = bytes_of(o.spool_dir);
  config.write_high_water = static_cast<size_t>(o.write_high_water);
  config.worker_slots = static_cast<size_t>(o.worker_slots);
  config.first_data_timeout = milliseconds(o.first_data_timeout);
  config.persistent_timeout = milliseconds(o.persistent_timeout);
  config.request_timeout = milliseconds(o.request_timeout);
  config.queue_depth = static_cast<size_t>(o.queue_depth);
  config.max_connections = static_cast<size_t>(o.max_connections);
  config.queue_timeout = milliseconds(o.queue_timeout);
  config.stream_request_bodies = o.stream_request_bodies;
  config.min_body_rate = static_cast<uint64_t>(o.min_body_rate);
  config.min_body_rate_window = milliseconds(o.min_body_rate_window);
  config.max_spool_size = static_cast<uint64_t>(o.max_spool_size);
  config.log_fd = static_cast<int>(o.log_fd);
  return config;
}

void init_native_server_options() {
  id_listen = rb_intern("listen");
  id_io_threads = rb_intern("io_threads");
  id_backlog = rb_intern("backlog");
  id_max_header_size = rb_intern("max_header_size");
  id_max_uri_size = rb_intern("max_uri_size");
  id_max_headers = rb_intern("max_headers");
  id_max_body_size = rb_intern("max_body_size");
  id_write_high_water = rb_intern("write_high_water");
  id_worker_slots = rb_intern("worker_slots");
  id_first_data_timeout = rb_intern("first_data_timeout");
  id_persistent_timeout = rb_intern("persistent_timeout");
  id_request_timeout = rb_intern("request_timeout");
  id_queue_depth = rb_intern("queue_depth");
  id_queue_timeout = rb_intern("queue_timeout");
  id_max_connections = rb_intern("max_connections");
  id_body_memory_limit = rb_intern("body_memory_limit");
  id_spool_dir = rb_intern("spool_dir");
  id_stream_request_bodies = rb_intern("stream_request_bodies");
  id_min_body_rate = rb_intern("min_body_rate");
  id_min_body_rate_window = rb_intern("min_body_rate_window");
  id_max_spool_size = rb_intern("max_spool_size");
  id_log_fd = rb_intern("log_fd");
}

}  // namespace kino::binding
