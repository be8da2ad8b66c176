// The server unit of Kino::Native: a server's lifecycle (create, start,
// stop, release), its bound addresses, stats and log. A server is
// created, started, stopped and released by integer id; Ruby never holds
// the native object, so the id can be handed to worker ractors and the
// server's lifetime stays explicit (never a side effect of GC).
#include "native_server.hpp"

#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "core/net/listener.hpp"
#include "core/net/tls_context.hpp"
#include "native_request.hpp"
#include "native_seam.hpp"
#include "native_server_options.hpp"

namespace kino::binding {

namespace {

struct StopCall : Interruptible {
  Server* server;
  std::chrono::milliseconds timeout;
  int64_t stragglers = 0;
  void run() { stragglers = server->stop(timeout, &interrupted); }
};

struct ReleaseCall : Interruptible {
  std::shared_ptr<Server> server;
  void run() {
    server->stop(std::chrono::milliseconds(0));
    // What workers logged during the drain is written before the process
    // may exit.
    server->flush_log(std::chrono::seconds(5));
    server.reset();  // when it is the last reference, the server is freed here too
  }
};

// Kino::ConfigError: a certificate or key that does not load is a mistake
// in the configuration, like any other.
VALUE eConfigError = Qnil;

// A TlsError's message, kept as plain data so that it is raised (as a
// Kino::ConfigError) only after `protect` has left the C++ scope.
struct TlsFailure {
  bool failed = false;
  char message[1024];

  void take(const TlsError& e) noexcept {
    failed = true;
    snprintf(message, sizeof message, "%s", e.what());
  }
  void raise_if_failed() const {
    if (failed) rb_raise(eConfigError, "%s", message);
  }
};

}  // namespace

// Native.server_create(options) -> Integer id. Binds every address now, so
// "address in use" surfaces before any worker starts.
VALUE native_server_create(VALUE, VALUE options) {
  // Read everything Ruby-side first: NUM2LL and StringValue may raise.
  ServerOptions read = read_server_options(options);
  TlsFailure tls;
  VALUE created = protect([&]() -> VALUE {
    std::shared_ptr<Server> server;
    try {
      server = std::make_shared<Server>(server_config(read));
    } catch (const TlsError& e) {
      tls.take(e);
      return Qnil;
    }
    server->bind();
    return ULL2NUM(Registry::instance().add(std::move(server)));
  });
  RB_GC_GUARD(read.listen);
  RB_GC_GUARD(read.inherited_listeners);
  RB_GC_GUARD(read.spool_dir);
  RB_GC_GUARD(read.tls_cert);
  RB_GC_GUARD(read.tls_key);
  RB_GC_GUARD(read.tls_ca);
  RB_GC_GUARD(read.mode);
  RB_GC_GUARD(read.control_bind);
  RB_GC_GUARD(read.control_token);
  tls.raise_if_failed();
  return created;
}

VALUE native_server_start(VALUE, VALUE id) {
  uint64_t sid = NUM2ULL(id);
  return protect([&]() -> VALUE {
    find_server(sid)->start();
    return Qtrue;
  });
}

VALUE native_server_addresses(VALUE, VALUE id) {
  uint64_t sid = NUM2ULL(id);
  std::vector<std::string> addresses;
  protect([&]() -> VALUE {
    addresses = find_server(sid)->addresses();
    return Qnil;
  });
  return string_array(std::move(addresses));
}

// Native.server_stop(id, timeout_seconds) -> Integer requests left
// unanswered. Waits without the GVL: the workers need it to finish the
// requests being drained.
VALUE native_server_stop(VALUE, VALUE id, VALUE timeout) {
  uint64_t sid = NUM2ULL(id);
  double seconds = NUM2DBL(timeout);
  // NaN and negative stop at once; an unbounded drain (Float::INFINITY)
  // waits about 31 years. Converting larger values to milliseconds would
  // overflow, which is undefined (it came out as a deadline in the past).
  if (!(seconds >= 0)) seconds = 0;
  if (seconds > 1e9) seconds = 1e9;
  int64_t stragglers = 0;
  int raised = 0;
  protect([&]() -> VALUE {
    auto server = find_server(sid);
    StopCall call;
    call.server = server.get();
    call.timeout = std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
    raised = without_gvl_until_run(call);
    if (call.failure) std::rethrow_exception(call.failure);  // raised by protect
    // An interrupt that raises (a second signal, Thread#kill) cuts the
    // drain short: stop anyway, at once, before it goes on.
    stragglers = call.ran ? call.stragglers : server->stop(std::chrono::milliseconds(0));
    return Qnil;
  });
  if (raised) rb_jump_tag(raised);
  return LL2NUM(stragglers);
}

// Native.server_close_queue(id): workers parked in take_one return nil.
VALUE native_server_close_queue(VALUE, VALUE id) {
  uint64_t sid = NUM2ULL(id);
  return protect([&]() -> VALUE {
    auto server = find_server(sid);
    if (Lanes* lanes = server->lanes()) lanes->close();
    server->queue().close();
    return Qnil;
  });
}

// Native.server_release(id) -> true, or false for an unknown id. Stops
// the server if nobody did, and drops the registry's reference. Both wait
// (stop joins the I/O threads, and waits for a stop under way in another
// thread to finish its drain), so they run without the GVL: that drain
// may be waiting for this ractor's workers, which need it.
VALUE native_server_release(VALUE, VALUE id) {
  uint64_t sid = NUM2ULL(id);
  int raised = 0;
  VALUE released = protect([&]() -> VALUE {
    ReleaseCall call;
    call.server = Registry::instance().remove(sid);
    if (!call.server) return Qfalse;
    raised = without_gvl_until_run(call);
    if (call.failure) std::rethrow_exception(call.failure);  // raised by protect
    // Not run (an interrupt that raises came first): stop with the GVL
    // held, then the interrupt goes on.
    if (call.server) call.server->stop(std::chrono::milliseconds(0));
    return Qtrue;
  });
  if (raised) rb_jump_tag(raised);
  return released;
}

// Native.server_reload_tls(id) -> true. Loads the certificate and key
// again from where server_create's options said; raises Kino::ConfigError
// (and the server keeps what it had) when they do not load.
VALUE native_server_reload_tls(VALUE, VALUE id) {
  uint64_t sid = NUM2ULL(id);
  TlsFailure tls;
  protect([&]() -> VALUE {
    auto server = find_server(sid);
    try {
      server->reload_tls();
    } catch (const TlsError& e) {
      tls.take(e);
    }
    return Qnil;
  });
  tls.raise_if_failed();
  return Qtrue;
}

// Native.server_stats(id) -> Hash: Server::stats() (see ServerStats), with
// `slots` an Array of Hashes and `queue_wait` a Hash of cumulative
// `buckets` ({upper bound in seconds => count}, the last Float::INFINITY),
// `count` and `sum` (seconds).
VALUE native_server_stats(VALUE, VALUE id) {
  uint64_t sid = NUM2ULL(id);
  ServerStats* held = nullptr;
  protect([&]() -> VALUE {
    held = new ServerStats(find_server(sid)->stats());
    return Qnil;
  });
  return with_held(held, [](const ServerStats& s) { return server_stats_hash(s); });
}

VALUE server_stats_hash(const ServerStats& s) {
  auto sym = [](const char* name) { return ID2SYM(rb_intern(name)); };
  VALUE h = rb_hash_new();
  rb_hash_aset(h, sym("state"), sym(s.state.c_str()));
  rb_hash_aset(h, sym("mode"), s.mode.empty() ? Qnil : sym(s.mode.c_str()));
  rb_hash_aset(h, sym("workers"), LL2NUM(s.workers));
  rb_hash_aset(h, sym("threads"), LL2NUM(s.threads));
  rb_hash_aset(h, sym("batch"), LL2NUM(s.batch));
  rb_hash_aset(h, sym("workers_up"), LL2NUM(s.workers_up));
  rb_hash_aset(h, sym("respawns"), ULL2NUM(s.respawns));
  rb_hash_aset(h, sym("quarantined"), ULL2NUM(s.quarantined));
  rb_hash_aset(h, sym("connections_accepted"), ULL2NUM(s.connections_accepted));
  rb_hash_aset(h, sym("connections_open"), LL2NUM(s.connections_open));
  rb_hash_aset(h, sym("requests_received"), ULL2NUM(s.requests_received));
  rb_hash_aset(h, sym("in_flight"), LL2NUM(s.in_flight));
  rb_hash_aset(h, sym("queued"), ULL2NUM(s.queued));
  rb_hash_aset(h, sym("lanes"), s.lanes ? Qtrue : Qfalse);
  if (s.lanes) rb_hash_aset(h, sym("lane_dispatched"), ULL2NUM(s.lane_dispatched));
  rb_hash_aset(h, sym("served"), ULL2NUM(s.served));
  rb_hash_aset(h, sym("rejected"), ULL2NUM(s.rejected));
  rb_hash_aset(h, sym("timeouts"), ULL2NUM(s.timeouts));
  rb_hash_aset(h, sym("parse_errors"), ULL2NUM(s.parse_errors));
  rb_hash_aset(h, sym("log_dropped"), ULL2NUM(s.log_dropped));
  rb_hash_aset(h, sym("logger_dropped"), ULL2NUM(s.logger_dropped));
  rb_hash_aset(h, sym("spooled_bytes"), ULL2NUM(s.spooled_bytes));
  rb_hash_aset(h, sym("spool_files"), LL2NUM(s.spool_files));
  VALUE slots = rb_ary_new_capa(static_cast<long>(s.slots.size()));
  for (const SlotStats& slot : s.slots) {
    VALUE row = rb_hash_new();
    rb_hash_aset(row, sym("slot"), ULL2NUM(slot.slot));
    rb_hash_aset(row, sym("worker"), ULL2NUM(slot.worker));
    rb_hash_aset(row, sym("served"), ULL2NUM(slot.served));
    rb_hash_aset(row, sym("in_flight"), slot.in_flight ? Qtrue : Qfalse);
    rb_hash_aset(row, sym("busy_ms"), LL2NUM(slot.busy_ms));
    if (s.lanes) rb_hash_aset(row, sym("lane_depth"), ULL2NUM(slot.lane_depth));
    rb_ary_push(slots, row);
  }
  rb_hash_aset(h, sym("slots"), slots);
  VALUE buckets = rb_hash_new();
  const auto& bounds = QueueWaitHistogram::kBoundsSeconds;
  for (size_t i = 0; i < QueueWaitHistogram::kBuckets; ++i) {
    double le = i < bounds.size() ? bounds[i] : HUGE_VAL;
    rb_hash_aset(buckets, DBL2NUM(le), ULL2NUM(s.queue_wait.cumulative[i]));
  }
  VALUE wait = rb_hash_new();
  rb_hash_aset(wait, sym("buckets"), buckets);
  rb_hash_aset(wait, sym("count"), ULL2NUM(s.queue_wait.count));
  rb_hash_aset(wait, sym("sum"), DBL2NUM(s.queue_wait.sum_seconds));
  rb_hash_aset(h, sym("queue_wait"), wait);
  return h;
}

// Native.server_control_address(id) -> String, or nil without control_bind:
// where the control plane listens, as bound (the real port for port 0).
VALUE native_server_control_address(VALUE, VALUE id) {
  uint64_t sid = NUM2ULL(id);
  std::vector<std::string> address;
  protect([&]() -> VALUE {
    std::string bound = find_server(sid)->control_address();
    if (!bound.empty()) address.push_back(std::move(bound));
    return Qnil;
  });
  VALUE out = string_array(std::move(address));
  return RARRAY_LEN(out) > 0 ? RARRAY_AREF(out, 0) : Qnil;
}

// Native.server_log(id, text): queues text for the server's log (app
// errors from workers); never blocks, from any ractor.
VALUE native_server_log(VALUE, VALUE id, VALUE text) {
  uint64_t sid = NUM2ULL(id);
  StringValue(text);
  return protect([&]() -> VALUE {
    find_server(sid)->log_line(bytes_of(text));
    return Qnil;
  });
}

// Native.server_drain_log(id) -> Array of lines the native side logged.
//
// The log pump calls it on the main ractor every tenth of a second, so it
// is also where the env values worker ractors met are created (see
// ValueCache in native_request.cpp): before any C++ object here exists, since
// creating them may raise.
VALUE native_server_drain_log(VALUE, VALUE id) {
  uint64_t sid = NUM2ULL(id);
  share_wanted_env_values();
  std::vector<std::string> lines;
  protect([&]() -> VALUE {
    lines = find_server(sid)->log().drain();
    return Qnil;
  });
  return string_array(std::move(lines));
}

// Native.listen_socket(address, backlog) -> [address as bound, fd]. Opens,
// binds and listens as server_create does (a stale unix socket replaced, a
// live one refused, port 0 made real), and hands the descriptor over: it
// is the caller's to pass to children (server_create's
// inherited_listeners) and to close. No thread is started, so a process
// that only binds may still fork safely.
VALUE native_listen_socket(VALUE, VALUE address, VALUE backlog) {
  StringValue(address);
  int depth = NUM2INT(backlog);
  if (depth < 1) rb_raise(rb_eArgError, "backlog must be positive");
  int fd = -1;
  std::vector<std::string> bound;
  protect([&]() -> VALUE {
    ListeningSocket socket = open_listening_socket(std::string(bytes_of(address)), depth);
    fd = socket.fd;
    bound.push_back(std::move(socket.address));
    return Qnil;
  });
  RB_GC_GUARD(address);
  VALUE pair = rb_ary_new_capa(2);
  rb_ary_push(pair, RARRAY_AREF(string_array(std::move(bound)), 0));
  rb_ary_push(pair, INT2NUM(fd));
  return pair;
}

void init_native_server() {
  init_native_server_options();
  eConfigError = rb_define_class_under(rb_define_module("Kino"), "ConfigError", eKinoError);
  // Interned here, on the main ractor, so stats never interns in a worker.
  for (const char* name : {"state",
                           "mode",
                           "workers",
                           "threads",
                           "batch",
                           "workers_up",
                           "respawns",
                           "quarantined",
                           "connections_accepted",
                           "connections_open",
                           "requests_received",
                           "in_flight",
                           "queued",
                           "lanes",
                           "lane_dispatched",
                           "lane_depth",
                           "served",
                           "rejected",
                           "timeouts",
                           "parse_errors",
                           "log_dropped",
                           "logger_dropped",
                           "spooled_bytes",
                           "spool_files",
                           "slots",
                           "slot",
                           "worker",
                           "busy_ms",
                           "queue_wait",
                           "buckets",
                           "count",
                           "sum",
                           "booting",
                           "ready",
                           "draining",
                           "threaded",
                           "ractor"})
    rb_intern(name);
}

}  // namespace kino::binding
