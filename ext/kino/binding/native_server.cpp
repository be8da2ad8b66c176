// The server unit of Kino::Native: a server's lifecycle (create, start,
// stop, release), its bound addresses, stats and log. A server is
// created, started, stopped and released by integer id; Ruby never holds
// the native object, so the id can be handed to worker ractors and the
// server's lifetime stays explicit (never a side effect of GC).
#include <chrono>
#include <string>
#include <vector>

#include "native_request.hpp"
#include "native_seam.hpp"
#include "native_server_options.hpp"

namespace kino::binding {

namespace {

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

}  // namespace

// Native.server_create(options) -> Integer id. Binds every address now, so
// "address in use" surfaces before any worker starts.
VALUE native_server_create(VALUE, VALUE options) {
  // Read everything Ruby-side first: NUM2LL and StringValue may raise.
  ServerOptions read = read_server_options(options);
  VALUE created = protect([&]() -> VALUE {
    auto server = std::make_shared<Server>(server_config(read));
    server->bind();
    return ULL2NUM(Registry::instance().add(std::move(server)));
  });
  RB_GC_GUARD(read.listen);
  RB_GC_GUARD(read.spool_dir);
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
      // Acquire: pairs with take_file's release, after which the
      // connection's body already counts as arriving (Http1Session).
      spool_files = budget->files.load(std::memory_order_acquire);
    }
    queued = server->queue().depth() + server->queue().waiting();
    log_dropped = server->log_dropped();
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

void init_native_server() {
  init_native_server_options();
  // Interned here, on the main ractor, so stats never interns in a worker.
  for (const char* name : {"connections_accepted", "connections_open", "requests_received", "in_flight",
                           "queued", "served", "rejected", "timeouts", "parse_errors", "log_dropped"})
    rb_intern(name);
}

}  // namespace kino::binding
