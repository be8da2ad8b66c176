// Kino::Native server functions. A server is created, started, stopped and
// released by integer id; Ruby never holds the native object, so the id can
// be handed to worker ractors and the server's lifetime stays explicit
// (never a side effect of GC).
#include <chrono>
#include <string>
#include <vector>

#include "binding.hpp"
#include "core/handoff/registry.hpp"
#include "core/http1/responder.hpp"
#include "env_builder.hpp"

namespace kino::binding {

namespace {

ID id_listen, id_io_threads, id_backlog, id_max_header_size, id_max_uri_size, id_max_headers,
    id_max_body_size, id_write_high_water, id_worker_slots, id_first_data_timeout, id_persistent_timeout, id_request_timeout, id_queue_depth, id_queue_timeout, id_max_connections,
    id_body_memory_limit, id_spool_dir, id_wake, id_stream_request_bodies, id_min_body_rate,
    id_min_body_rate_window, id_max_spool_size;

std::shared_ptr<Server> find_server(uint64_t id) {
  auto s = Registry::instance().find(id);
  if (!s) throw std::runtime_error("no server with id " + std::to_string(id));
  return s;
}

// A new Array of the elements of `array` as Strings (StringValue of each).
// What to_str returns is kept, never read back from `array`, which an
// element's to_str may have changed (or emptied) meanwhile.
VALUE string_values(VALUE array) {
  Check_Type(array, T_ARRAY);
  VALUE elements = rb_ary_dup(array);
  long n = RARRAY_LEN(elements);
  VALUE strings = rb_ary_new_capa(n);
  for (long i = 0; i < n; ++i) {
    VALUE s = RARRAY_AREF(elements, i);
    rb_ary_push(strings, StringValue(s));
  }
  return strings;
}

VALUE opt(VALUE options, ID key) { return rb_hash_lookup2(options, ID2SYM(key), Qnil); }

long long opt_int(VALUE options, ID key, long long fallback) {
  VALUE v = opt(options, key);
  return NIL_P(v) ? fallback : NUM2LL(v);
}

// Native.server_create(options) -> Integer id. Binds every address now, so
// "address in use" surfaces before any worker starts.
VALUE native_server_create(VALUE, VALUE options) {
  Check_Type(options, T_HASH);
  VALUE listen = opt(options, id_listen);
  Check_Type(listen, T_ARRAY);
  // Read everything Ruby-side first: NUM2LL and StringValue may raise.
  // The addresses as Strings go into an Array of our own: an element's
  // to_str is Ruby code, and may change the caller's Array under us.
  VALUE addresses = string_values(listen);
  long n = RARRAY_LEN(addresses);
  VALUE spool_dir = opt(options, id_spool_dir);
  if (!NIL_P(spool_dir)) StringValue(spool_dir);
  long long body_memory = opt_int(options, id_body_memory_limit, 112 << 10);
  bool stream_bodies = RTEST(opt(options, id_stream_request_bodies));
  long long min_body_rate = opt_int(options, id_min_body_rate, 1024);
  long long max_spool = opt_int(options, id_max_spool_size, 1ll << 30);
  VALUE rate_window = opt(options, id_min_body_rate_window);
  double rate_window_s = NIL_P(rate_window) ? 5.0 : NUM2DBL(rate_window);
  // Bounded so the rate arithmetic (bytes x 1000, rate x elapsed ms) stays
  // far from overflow; no network is that slow or that fast.
  if (min_body_rate < 0 || min_body_rate > (1ll << 40) || max_spool < 0)
    rb_raise(rb_eArgError, "min_body_rate and max_spool_size must not be negative");
  if (!(rate_window_s > 0) || rate_window_s > 3600)
    rb_raise(rb_eArgError, "min_body_rate_window must be between 0 and 3600 seconds");
  long long io_threads = opt_int(options, id_io_threads, 2);
  long long backlog = opt_int(options, id_backlog, 1024);
  long long max_header = opt_int(options, id_max_header_size, 64 * 1024);
  long long max_uri = opt_int(options, id_max_uri_size, 8 * 1024);
  long long max_headers = opt_int(options, id_max_headers, 100);
  long long max_body = opt_int(options, id_max_body_size, 50ll * 1024 * 1024);
  long long high_water = opt_int(options, id_write_high_water, 1 << 20);
  long long worker_slots = opt_int(options, id_worker_slots, 1024);
  VALUE first_data = opt(options, id_first_data_timeout);
  VALUE persistent = opt(options, id_persistent_timeout);
  double first_data_s = NIL_P(first_data) ? 30.0 : NUM2DBL(first_data);
  double persistent_s = NIL_P(persistent) ? 20.0 : NUM2DBL(persistent);
  if (!(first_data_s > 0) || !(persistent_s > 0)) rb_raise(rb_eArgError, "timeouts must be positive");
  VALUE request_timeout = opt(options, id_request_timeout);
  double request_timeout_s = NIL_P(request_timeout) ? 0.0 : NUM2DBL(request_timeout);
  if (request_timeout_s < 0) rb_raise(rb_eArgError, "request_timeout must not be negative");
  long long queue_depth = opt_int(options, id_queue_depth, 1024);
  long long max_connections = opt_int(options, id_max_connections, 0);
  if (max_connections < 0) rb_raise(rb_eArgError, "max_connections must not be negative");
  VALUE queue_timeout = opt(options, id_queue_timeout);
  double queue_timeout_s = NIL_P(queue_timeout) ? 5.0 : NUM2DBL(queue_timeout);
  if (queue_depth < 0 || queue_timeout_s < 0) rb_raise(rb_eArgError, "queue_depth and queue_timeout must not be negative");
  if (io_threads < 1 || backlog < 1 || max_header < 1 || max_uri < 1 || max_headers < 1 ||
      max_body < 0 || body_memory < 0 || high_water < 1 || worker_slots < 0 || worker_slots > (1 << 20))
    rb_raise(rb_eArgError, "server options must be positive");

  VALUE created = protect([&]() -> VALUE {
    ServerConfig config;
    for (long i = 0; i < n; ++i) {
      VALUE a = RARRAY_AREF(addresses, i);
      config.listen.emplace_back(RSTRING_PTR(a), static_cast<size_t>(RSTRING_LEN(a)));
    }
    config.io_threads = static_cast<int>(io_threads);
    config.backlog = static_cast<int>(backlog);
    config.limits.max_header_size = static_cast<size_t>(max_header);
    config.limits.max_uri_size = static_cast<size_t>(max_uri);
    config.limits.max_headers = static_cast<size_t>(max_headers);
    config.limits.max_body_size = static_cast<uint64_t>(max_body);
    config.body_storage.memory_limit = static_cast<size_t>(body_memory);
    if (!NIL_P(spool_dir)) config.body_storage.spool_dir.assign(RSTRING_PTR(spool_dir), RSTRING_LEN(spool_dir));
    config.write_high_water = static_cast<size_t>(high_water);
    config.worker_slots = static_cast<size_t>(worker_slots);
    config.first_data_timeout = std::chrono::milliseconds(static_cast<long long>(first_data_s * 1000));
    config.persistent_timeout = std::chrono::milliseconds(static_cast<long long>(persistent_s * 1000));
    config.request_timeout = std::chrono::milliseconds(static_cast<long long>(request_timeout_s * 1000));
    config.queue_depth = static_cast<size_t>(queue_depth);
    config.max_connections = static_cast<size_t>(max_connections);
    config.queue_timeout = std::chrono::milliseconds(static_cast<long long>(queue_timeout_s * 1000));
    config.stream_request_bodies = stream_bodies;
    config.min_body_rate = static_cast<uint64_t>(min_body_rate);
    config.min_body_rate_window = std::chrono::milliseconds(static_cast<long long>(rate_window_s * 1000));
    config.max_spool_size = static_cast<uint64_t>(max_spool);
    auto server = std::make_shared<Server>(std::move(config));
    server->bind();
    return ULL2NUM(Registry::instance().add(std::move(server)));
  });
  RB_GC_GUARD(addresses);
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

struct StopCall : Interruptible {
  Server* server;
  std::chrono::milliseconds timeout;
  int64_t stragglers = 0;
  bool ran = false;
  void run() {
    stragglers = server->stop(timeout, &interrupted);
    ran = true;
  }
};

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
  protect([&]() -> VALUE {
    auto server = find_server(sid);
    StopCall call;
    call.server = server.get();
    call.timeout = std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
    without_gvl(call);
    if (call.failure) std::rethrow_exception(call.failure);  // raised by protect
    // With an interrupt pending Ruby skips the call entirely: stop anyway,
    // without the drain (the interrupt is usually the second signal).
    stragglers = call.ran ? call.stragglers : server->stop(std::chrono::milliseconds(0));
    return Qnil;
  });
  return LL2NUM(stragglers);
}

// Native.server_close_queue(id): workers parked in take_one return nil.
VALUE native_server_close_queue(VALUE, VALUE id) {
  uint64_t sid = NUM2ULL(id);
  return protect([&]() -> VALUE {
    find_server(sid)->queue().close();
    return Qnil;
  });
}

struct ReleaseCall : Interruptible {
  std::shared_ptr<Server> server;
  void run() {
    server->stop(std::chrono::milliseconds(0));
    server.reset();  // when it is the last reference, the server is freed here too
  }
};

// Native.server_release(id) -> true, or false for an unknown id. Stops
// the server if nobody did, and drops the registry's reference. Both wait
// (stop joins the I/O threads, and waits for a stop under way in another
// thread to finish its drain), so they run without the GVL: that drain
// may be waiting for this ractor's workers, which need it.
VALUE native_server_release(VALUE, VALUE id) {
  uint64_t sid = NUM2ULL(id);
  return protect([&]() -> VALUE {
    ReleaseCall call;
    call.server = Registry::instance().remove(sid);
    if (!call.server) return Qfalse;
    without_gvl(call);
    if (call.failure) std::rethrow_exception(call.failure);  // raised by protect
    // With an interrupt pending Ruby skips the call: stop with the GVL held.
    if (call.server) call.server->stop(std::chrono::milliseconds(0));
    return Qtrue;
  });
}

VALUE native_server_stats(VALUE, VALUE id) {
  uint64_t sid = NUM2ULL(id);
  Counters::Snapshot c{};
  size_t queued = 0;
  uint64_t log_dropped = 0;
  uint64_t spooled_bytes = 0;
  int64_t spool_files = 0;
  protect([&]() -> VALUE {
    auto server = find_server(sid);
    c = server->counters().snapshot();
    if (const auto& budget = server->config().body_storage.budget) {
      spooled_bytes = budget->bytes.load(std::memory_order_relaxed);
      spool_files = budget->files.load(std::memory_order_relaxed);
    }
    queued = server->queue().depth() + server->queue().waiting();
    log_dropped = server->log().dropped();
    return Qnil;
  });
  VALUE h = rb_hash_new();
  rb_hash_aset(h, ID2SYM(rb_intern("connections_accepted")), ULL2NUM(c.connections_accepted));
  rb_hash_aset(h, ID2SYM(rb_intern("connections_open")), LL2NUM(c.connections_open));
  rb_hash_aset(h, ID2SYM(rb_intern("requests_received")), ULL2NUM(c.requests_received));
  rb_hash_aset(h, ID2SYM(rb_intern("in_flight")), LL2NUM(c.in_flight));
  rb_hash_aset(h, ID2SYM(rb_intern("queued")), ULL2NUM(queued));
  rb_hash_aset(h, ID2SYM(rb_intern("served")), ULL2NUM(c.served));
  rb_hash_aset(h, ID2SYM(rb_intern("rejected")), ULL2NUM(c.rejected));
  rb_hash_aset(h, ID2SYM(rb_intern("timeouts")), ULL2NUM(c.timeouts));
  rb_hash_aset(h, ID2SYM(rb_intern("parse_errors")), ULL2NUM(c.parse_errors));
  rb_hash_aset(h, ID2SYM(rb_intern("log_dropped")), ULL2NUM(log_dropped));
  rb_hash_aset(h, ID2SYM(rb_intern("spooled_bytes")), ULL2NUM(spooled_bytes));
  rb_hash_aset(h, ID2SYM(rb_intern("spool_files")), LL2NUM(spool_files));
  return h;
}

// Native.server_drain_log(id) -> Array of lines the native side logged.
//
// The log pump calls it on the main ractor every tenth of a second, so it
// is also where the env values worker ractors met are created (see
// ValueCache in env_builder.cpp): before any C++ object here exists, since
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

// Native.server_fail_slots(id, first, count) -> Integer: answers 500 to
// every unanswered request held by worker slots [first, first + count),
// for a worker that died. Returns how many got that answer.
VALUE native_server_fail_slots(VALUE, VALUE id, VALUE first, VALUE count) {
  uint64_t sid = NUM2ULL(id);
  long f = NUM2LONG(first), n = NUM2LONG(count);
  if (f < 0 || n < 0) rb_raise(rb_eArgError, "slots must be non-negative");
  long answered = 0;
  protect([&]() -> VALUE {
    auto server = find_server(sid);
    for (auto& req : server->slots().take(static_cast<size_t>(f), static_cast<size_t>(n))) {
      // A response the dead worker had started is not ours to touch: its
      // connection's write deadline closes it.
      if (respond_plain(*req, 500, "Internal Server Error\n", false)) ++answered;
    }
    return Qnil;
  });
  return LONG2NUM(answered);
}

// Native.server_worker_exited(id, token, report) -> nil. A worker says,
// from inside its own ractor or thread, that it ends: report is nil for a
// clean end, or [class name, message, [backtrace lines]] for a crash.
VALUE native_server_worker_exited(VALUE, VALUE id, VALUE token, VALUE report) {
  uint64_t sid = NUM2ULL(id);
  uint64_t tok = NUM2ULL(token);
  VALUE error_class = Qnil, message = Qnil, backtrace = Qnil;
  if (!NIL_P(report)) {
    Check_Type(report, T_ARRAY);
    error_class = rb_ary_entry(report, 0);
    message = rb_ary_entry(report, 1);
    backtrace = rb_ary_entry(report, 2);
    StringValue(error_class);
    StringValue(message);
    backtrace = string_values(backtrace);
  }
  VALUE posted = protect([&]() -> VALUE {
    WorkerExit exit;
    exit.token = tok;
    exit.crashed = !NIL_P(report);
    if (exit.crashed) {
      exit.error_class.assign(RSTRING_PTR(error_class), static_cast<size_t>(RSTRING_LEN(error_class)));
      exit.message.assign(RSTRING_PTR(message), static_cast<size_t>(RSTRING_LEN(message)));
      for (long i = 0; i < RARRAY_LEN(backtrace); ++i) {
        VALUE line = RARRAY_AREF(backtrace, i);
        exit.backtrace.emplace_back(RSTRING_PTR(line), static_cast<size_t>(RSTRING_LEN(line)));
      }
    }
    find_server(sid)->worker_exits().post(std::move(exit));
    return Qnil;
  });
  RB_GC_GUARD(error_class);
  RB_GC_GUARD(message);
  RB_GC_GUARD(backtrace);
  return posted;
}

struct ExitWaitCall : Interruptible {
  WorkerExits* exits;
  WorkerExit exit;
  WorkerExits::Outcome outcome = WorkerExits::Outcome::Timeout;
  void run() noexcept {
    try {
      outcome = exits->next(exit, std::chrono::steady_clock::now() + std::chrono::milliseconds(50));
    } catch (...) {
      outcome = WorkerExits::Outcome::Timeout;
    }
  }
};

// Native.server_next_worker_exit(id) -> [token, report or nil], or :wake.
// Waits, without the GVL, for the next worker to report its end (see
// WorkerExits) or for server_wake_worker_exits. Raises Kino::Error once
// the server has been released.
VALUE native_server_next_worker_exit(VALUE, VALUE id) {
  uint64_t sid = NUM2ULL(id);
  for (;;) {
    // Heap-held so that no C++ destructor is skipped if a Ruby call below
    // raises; freed on every path before one does.
    auto* call = new (std::nothrow) ExitWaitCall();
    if (!call) rb_raise(rb_eNoMemError, "kino: native allocation failed");
    bool missing = false;
    {
      auto server = Registry::instance().find(sid);
      if (!server) {
        missing = true;
      } else {
        call->exits = &server->worker_exits();
        without_gvl(*call);
      }
    }
    if (missing) {
      delete call;
      rb_raise(eKinoError, "no server with id %llu", static_cast<unsigned long long>(sid));
    }
    if (call->outcome == WorkerExits::Outcome::Wake) {
      delete call;
      return ID2SYM(id_wake);
    }
    if (call->outcome == WorkerExits::Outcome::Exit) {
      int state = 0;
      VALUE result = rb_protect(
          [](VALUE arg) -> VALUE {
            auto* c = reinterpret_cast<ExitWaitCall*>(arg);
            const WorkerExit& e = c->exit;
            VALUE report = Qnil;
            if (e.crashed) {
              VALUE lines = rb_ary_new_capa(static_cast<long>(e.backtrace.size()));
              for (const auto& line : e.backtrace)
                rb_ary_push(lines, rb_utf8_str_new(line.data(), static_cast<long>(line.size())));
              report = rb_ary_new_from_args(
                  3, rb_utf8_str_new(e.error_class.data(), static_cast<long>(e.error_class.size())),
                  rb_utf8_str_new(e.message.data(), static_cast<long>(e.message.size())), lines);
            }
            return rb_ary_new_from_args(2, ULL2NUM(e.token), report);
          },
          reinterpret_cast<VALUE>(call), &state);
      delete call;
      if (state) rb_jump_tag(state);
      return result;
    }
    delete call;
    rb_thread_check_ints();  // Thread#kill, shutdown: raises or returns
  }
}

// Native.server_wake_worker_exits(id) -> nil: one server_next_worker_exit
// returns :wake.
VALUE native_server_wake_worker_exits(VALUE, VALUE id) {
  uint64_t sid = NUM2ULL(id);
  return protect([&]() -> VALUE {
    find_server(sid)->worker_exits().wake();
    return Qnil;
  });
}

// Native.server_slot_busy_ms(id, first, count) -> [Integer]: how long each
// slot's current request has run unanswered (-1 when idle), for quarantine.
VALUE native_server_slot_busy_ms(VALUE, VALUE id, VALUE first, VALUE count) {
  uint64_t sid = NUM2ULL(id);
  long f = NUM2LONG(first), n = NUM2LONG(count);
  if (f < 0 || n < 0 || n > (1 << 20)) rb_raise(rb_eArgError, "invalid slot range");
  VALUE out = rb_ary_new_capa(n);
  // One registry lookup for the whole range. Milliseconds are Fixnums and
  // the Array has the capacity: storing them allocates nothing and cannot
  // raise while the server reference is alive.
  protect([&]() -> VALUE {
    auto server = find_server(sid);
    for (long i = 0; i < n; ++i)
      rb_ary_store(out, i, LONG2FIX(static_cast<long>(server->slots().busy_ms(static_cast<size_t>(f + i)))));
    return Qnil;
  });
  return out;
}

// Native.server_log(id, text): queues text for the server's log (app
// errors from workers); never blocks, from any ractor.
VALUE native_server_log(VALUE, VALUE id, VALUE text) {
  uint64_t sid = NUM2ULL(id);
  StringValue(text);
  return protect([&]() -> VALUE {
    find_server(sid)->log().push({RSTRING_PTR(text), static_cast<size_t>(RSTRING_LEN(text))});
    return Qnil;
  });
}

}  // namespace

void init_native_server(VALUE mNative) {
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
  id_wake = rb_intern("wake");
  // Interned here, on the main ractor, so stats never interns in a worker.
  for (const char* name : {"connections_accepted", "connections_open", "requests_received", "in_flight",
                           "queued", "served", "rejected", "timeouts", "parse_errors", "log_dropped"})
    rb_intern(name);

  rb_define_module_function(mNative, "server_create", RUBY_METHOD_FUNC(native_server_create), 1);
  rb_define_module_function(mNative, "server_start", RUBY_METHOD_FUNC(native_server_start), 1);
  rb_define_module_function(mNative, "server_addresses", RUBY_METHOD_FUNC(native_server_addresses), 1);
  rb_define_module_function(mNative, "server_stop", RUBY_METHOD_FUNC(native_server_stop), 2);
  rb_define_module_function(mNative, "server_close_queue", RUBY_METHOD_FUNC(native_server_close_queue), 1);
  rb_define_module_function(mNative, "server_release", RUBY_METHOD_FUNC(native_server_release), 1);
  rb_define_module_function(mNative, "server_stats", RUBY_METHOD_FUNC(native_server_stats), 1);
  rb_define_module_function(mNative, "server_fail_slots", RUBY_METHOD_FUNC(native_server_fail_slots), 3);
  rb_define_module_function(mNative, "server_slot_busy_ms", RUBY_METHOD_FUNC(native_server_slot_busy_ms), 3);
  rb_define_module_function(mNative, "server_worker_exited", RUBY_METHOD_FUNC(native_server_worker_exited), 3);
  rb_define_module_function(mNative, "server_next_worker_exit",
                            RUBY_METHOD_FUNC(native_server_next_worker_exit), 1);
  rb_define_module_function(mNative, "server_wake_worker_exits",
                            RUBY_METHOD_FUNC(native_server_wake_worker_exits), 1);
  rb_define_module_function(mNative, "server_log", RUBY_METHOD_FUNC(native_server_log), 2);
  rb_define_module_function(mNative, "server_drain_log", RUBY_METHOD_FUNC(native_server_drain_log), 1);
}

}  // namespace kino::binding
