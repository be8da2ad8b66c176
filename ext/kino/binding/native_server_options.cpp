#include "native_server_options.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <stdexcept>

#include "core/control/board_registry.hpp"

namespace kino::binding {

namespace {

ID id_listen, id_inherited_listeners, id_io_threads, id_backlog, id_max_header_size, id_max_uri_size,
    id_max_headers, id_max_body_size, id_write_high_water, id_worker_slots, id_first_data_timeout,
    id_persistent_timeout, id_request_timeout, id_queue_depth, id_queue_timeout, id_max_connections,
    id_body_memory_limit, id_spool_dir, id_stream_request_bodies, id_intern_header_values, id_min_body_rate,
    id_min_body_rate_window, id_max_spool_size, id_tls_cert, id_tls_key, id_tls_ca, id_tls_handshake_timeout,
    id_mode, id_workers, id_threads, id_control_bind, id_control_token, id_log_requests, id_log_format,
    id_json, id_log_fd, id_control_fd, id_process_board, id_process_index, id_batch;
ID id_lanes;

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

// A String option that may be nil.
VALUE optional_string(VALUE options, ID key) {
  VALUE v = required(options, key);
  if (!NIL_P(v)) StringValue(v);
  return v;
}

long long required_int(VALUE options, ID key) { return NUM2LL(required_number(options, key)); }

double required_seconds(VALUE options, ID key) { return NUM2DBL(required_number(options, key)); }

// :text or :json (Kino::DSL checked it; anything else is a caller's bug).
bool access_log_json(VALUE format) {
  if (format == ID2SYM(id_json)) return true;
  if (format == ID2SYM(rb_intern("text"))) return false;
  rb_raise(rb_eArgError, "log_format must be :text or :json");
}

// process_board and process_index: both nil, or a board's id and a row on
// it. The board is looked up in its own scope: the raise comes after.
void read_process_board(VALUE options, ServerOptions& o) {
  o.process_board = required(options, id_process_board);
  o.process_index = required(options, id_process_index);
  if (NIL_P(o.process_board) && NIL_P(o.process_index)) return;
  if (NIL_P(o.process_board) || NIL_P(o.process_index))
    rb_raise(rb_eArgError, "process_board and process_index go together");
  unsigned long long id = NUM2ULL(o.process_board);
  long long index = NUM2LL(o.process_index);
  size_t rows = 0;
  {
    auto board = BoardRegistry::instance().find(id);
    if (board) rows = board->size();
  }
  if (rows == 0) rb_raise(rb_eArgError, "process_board %llu is not a board of this process", id);
  if (index < 0 || static_cast<unsigned long long>(index) >= rows)
    rb_raise(rb_eArgError, "process_index %lld is not on a board of %zu processes", index, rows);
}

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
  // [[address, fd], ...]: sockets a parent (or systemd) bound already.
  VALUE inherited = required(options, id_inherited_listeners);
  Check_Type(inherited, T_ARRAY);
  o.inherited_listeners = rb_ary_new_capa(RARRAY_LEN(inherited));
  for (long i = 0; i < RARRAY_LEN(inherited); ++i) {
    VALUE pair = RARRAY_AREF(inherited, i);
    Check_Type(pair, T_ARRAY);
    if (RARRAY_LEN(pair) != 2) rb_raise(rb_eArgError, "inherited_listeners: each is [address, fd]");
    VALUE given = RARRAY_AREF(pair, 0);
    VALUE address = rb_str_new_frozen(StringValue(given));
    int fd = NUM2INT(RARRAY_AREF(pair, 1));
    if (fd < 0) rb_raise(rb_eArgError, "inherited_listeners: fd must not be negative");
    rb_ary_push(o.inherited_listeners, rb_assoc_new(address, INT2NUM(fd)));
  }
  o.spool_dir = optional_string(options, id_spool_dir);
  o.mode = required(options, id_mode);
  StringValue(o.mode);
  o.control_bind = optional_string(options, id_control_bind);
  o.control_token = optional_string(options, id_control_token);
  o.workers = required_int(options, id_workers);
  o.threads = required_int(options, id_threads);
  if (o.workers < 0 || o.threads < 0 || o.workers > (1 << 20) || o.threads > (1 << 20))
    rb_raise(rb_eArgError, "workers and threads must not be negative");
  o.body_memory_limit = required_int(options, id_body_memory_limit);
  o.stream_request_bodies = RTEST(required(options, id_stream_request_bodies));
  o.intern_header_values = RTEST(required(options, id_intern_header_values));
  o.lanes = RTEST(required(options, id_lanes));
  o.min_body_rate = required_int(options, id_min_body_rate);
  o.max_spool_size = required_int(options, id_max_spool_size);
  o.min_body_rate_window = required_seconds(options, id_min_body_rate_window);
  // Bounded so the rate arithmetic (bytes x 1000, rate x elapsed ms) stays
  // far from overflow; no network is that slow or that fast.
  if (o.min_body_rate < 0 || o.min_body_rate > (1ll << 40) || o.max_spool_size < 0)
    rb_raise(rb_eArgError, "min_body_rate and max_spool_size must not be negative");
  if (!(o.min_body_rate_window > 0) || o.min_body_rate_window > 3600)
    rb_raise(rb_eArgError, "min_body_rate_window must be between 0 and 3600 seconds");
  o.tls_cert = optional_string(options, id_tls_cert);
  o.tls_key = optional_string(options, id_tls_key);
  o.tls_ca = optional_string(options, id_tls_ca);
  if (NIL_P(o.tls_cert) != NIL_P(o.tls_key)) rb_raise(rb_eArgError, "tls_cert and tls_key go together");
  if (NIL_P(o.tls_cert) && !NIL_P(o.tls_ca)) rb_raise(rb_eArgError, "tls_ca needs tls_cert and tls_key");
  o.tls_handshake_timeout = required_seconds(options, id_tls_handshake_timeout);
  if (!(o.tls_handshake_timeout > 0) || o.tls_handshake_timeout > 3600)
    rb_raise(rb_eArgError, "tls_handshake_timeout must be between 0 and 3600 seconds");
  o.io_threads = required_int(options, id_io_threads);
  o.backlog = required_int(options, id_backlog);
  o.max_header_size = required_int(options, id_max_header_size);
  o.max_uri_size = required_int(options, id_max_uri_size);
  o.max_headers = required_int(options, id_max_headers);
  o.max_body_size = required_int(options, id_max_body_size);
  o.write_high_water = required_int(options, id_write_high_water);
  o.worker_slots = required_int(options, id_worker_slots);
  o.log_requests = RTEST(required(options, id_log_requests));
  o.log_format_json = access_log_json(required(options, id_log_format));
  o.first_data_timeout = required_seconds(options, id_first_data_timeout);
  o.persistent_timeout = required_seconds(options, id_persistent_timeout);
  if (!(o.first_data_timeout > 0) || !(o.persistent_timeout > 0))
    rb_raise(rb_eArgError, "timeouts must be positive");
  VALUE request_timeout = required(options, id_request_timeout);
  o.request_timeout = NIL_P(request_timeout) ? 0 : NUM2DBL(request_timeout);  // nil: no limit
  if (o.request_timeout < 0) rb_raise(rb_eArgError, "request_timeout must not be negative");
  o.queue_depth = required_int(options, id_queue_depth);
  o.log_fd = required_int(options, id_log_fd);
  o.control_fd = required_int(options, id_control_fd);
  if (o.control_fd < -1 || o.control_fd > INT32_MAX)
    rb_raise(rb_eArgError, "control_fd must be a descriptor, or -1");
  if (o.log_fd < -1 || o.log_fd > INT32_MAX) rb_raise(rb_eArgError, "log_fd must be a descriptor, or -1");
  o.max_connections = required_int(options, id_max_connections);
  if (o.max_connections < 0) rb_raise(rb_eArgError, "max_connections must not be negative");
  o.queue_timeout = required_seconds(options, id_queue_timeout);
  if (o.queue_depth < 0 || o.queue_timeout < 0)
    rb_raise(rb_eArgError, "queue_depth and queue_timeout must not be negative");
  o.batch = required_int(options, id_batch);
  if (o.batch < 1 || o.batch > 64) rb_raise(rb_eArgError, "batch must be from 1 to 64");
  read_process_board(options, o);
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
  for (long i = 0; i < RARRAY_LEN(o.inherited_listeners); ++i) {
    VALUE pair = RARRAY_AREF(o.inherited_listeners, i);
    config.inherited_listeners.push_back(
        {std::string(bytes_of(RARRAY_AREF(pair, 0))), FIX2INT(RARRAY_AREF(pair, 1))});
  }
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
  config.batch = static_cast<int>(o.batch);
  config.first_data_timeout = milliseconds(o.first_data_timeout);
  config.persistent_timeout = milliseconds(o.persistent_timeout);
  config.request_timeout = milliseconds(o.request_timeout);
  config.queue_depth = static_cast<size_t>(o.queue_depth);
  config.max_connections = static_cast<size_t>(o.max_connections);
  config.queue_timeout = milliseconds(o.queue_timeout);
  if (const char* spins = std::getenv("KINO_QUEUE_SPINS"); spins && *spins)
    config.queue_spins = static_cast<int>(std::clamp(std::strtol(spins, nullptr, 10), 0L, 1'000'000L));
  config.stream_request_bodies = o.stream_request_bodies;
  config.intern_header_values = o.intern_header_values;
  config.lanes = o.lanes;
  config.min_body_rate = static_cast<uint64_t>(o.min_body_rate);
  config.min_body_rate_window = milliseconds(o.min_body_rate_window);
  config.max_spool_size = static_cast<uint64_t>(o.max_spool_size);
  if (!NIL_P(o.tls_cert)) {
    config.tls.emplace();
    config.tls->cert = bytes_of(o.tls_cert);
    config.tls->key = bytes_of(o.tls_key);
    if (!NIL_P(o.tls_ca)) config.tls->ca = bytes_of(o.tls_ca);
  }
  config.tls_handshake_timeout = milliseconds(o.tls_handshake_timeout);
  config.mode = bytes_of(o.mode);
  config.workers = static_cast<int>(o.workers);
  config.threads = static_cast<int>(o.threads);
  if (!NIL_P(o.control_bind)) config.control_bind = bytes_of(o.control_bind);
  if (!NIL_P(o.control_token)) config.control_token = bytes_of(o.control_token);
  config.log_requests = o.log_requests;
  config.log_format = o.log_format_json ? AccessLogFormat::Json : AccessLogFormat::Text;
  config.log_fd = static_cast<int>(o.log_fd);
  if (!NIL_P(o.process_board)) {
    // Checked by read_server_options; gone since only if released in
    // between, which find_board names.
    config.board = BoardRegistry::instance().find(NUM2ULL(o.process_board));
    if (!config.board) throw std::runtime_error("the process board was released");
    config.board_index = static_cast<size_t>(NUM2LL(o.process_index));
  }
  config.control_fd = static_cast<int>(o.control_fd);
  return config;
}

void init_native_server_options() {
  id_listen = rb_intern("listen");
  id_inherited_listeners = rb_intern("inherited_listeners");
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
  id_intern_header_values = rb_intern("intern_header_values");
  id_lanes = rb_intern("lanes");
  id_min_body_rate = rb_intern("min_body_rate");
  id_min_body_rate_window = rb_intern("min_body_rate_window");
  id_max_spool_size = rb_intern("max_spool_size");
  id_tls_cert = rb_intern("tls_cert");
  id_tls_key = rb_intern("tls_key");
  id_tls_ca = rb_intern("tls_ca");
  id_tls_handshake_timeout = rb_intern("tls_handshake_timeout");
  id_mode = rb_intern("mode");
  id_workers = rb_intern("workers");
  id_threads = rb_intern("threads");
  id_control_bind = rb_intern("control_bind");
  id_control_token = rb_intern("control_token");
  id_log_requests = rb_intern("log_requests");
  id_log_format = rb_intern("log_format");
  id_json = rb_intern("json");
  id_log_fd = rb_intern("log_fd");
  id_process_board = rb_intern("process_board");
  id_process_index = rb_intern("process_index");
  id_control_fd = rb_intern("control_fd");
  id_batch = rb_intern("batch");
}

}  // namespace kino::binding
