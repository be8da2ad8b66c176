// The workers unit of Kino::Native: the worker slots (what each thread
// holds, for quarantine and for answering a dead worker's requests) and
// the exit board through which workers report their ends to the
// supervisor.
#include <chrono>
#include <string>

#include "core/http1/responder.hpp"
#include "native_seam.hpp"

namespace kino::binding {

namespace {

ID id_wake;

VALUE utf8_string(const std::string& s) { return rb_utf8_str_new(s.data(), static_cast<long>(s.size())); }

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

// A range of worker slots from Ruby: [first, first + count).
struct SlotRange {
  size_t first, count;
};

SlotRange slot_range(VALUE first, VALUE count) {
  long f = NUM2LONG(first), n = NUM2LONG(count);
  if (f < 0 || n < 0) rb_raise(rb_eArgError, "slots must be non-negative");
  return {static_cast<size_t>(f), static_cast<size_t>(n)};
}

}  // namespace

// Native.server_requeue_held(id, first, count) -> Integer: the requests
// worker slots [first, first + count) took from the queue beyond their
// current ones (`batch`) go back to its front, for a worker set aside as
// stuck: they would wait behind its stuck request. Returns how many.
VALUE native_server_requeue_held(VALUE, VALUE id, VALUE first, VALUE count) {
  uint64_t sid = NUM2ULL(id);
  SlotRange slots = slot_range(first, count);
  size_t requeued = 0;
  protect([&]() -> VALUE {
    requeued = find_server(sid)->requeue_held(slots.first, slots.count);
    return Qnil;
  });
  return SIZET2NUM(requeued);
}

// Native.server_fail_slots(id, first, count) -> Integer: answers 500 to
// every unanswered request held by worker slots [first, first + count),
// for a worker that died. Returns how many got that answer.
VALUE native_server_fail_slots(VALUE, VALUE id, VALUE first, VALUE count) {
  uint64_t sid = NUM2ULL(id);
  SlotRange slots = slot_range(first, count);
  long answered = 0;
  protect([&]() -> VALUE {
    auto server = find_server(sid);
    // What waited in the dead worker's lanes never ran: it goes to the
    // others, not to the 500.
    if (Lanes* lanes = server->lanes()) lanes->evict(slots.first, slots.count);
    // So did what its threads held from a batch.
    server->requeue_held(slots.first, slots.count);
    for (auto& req : server->slots().take(slots.first, slots.count)) {
      // A response the dead worker had started is not ours to touch: its
      // connection's write deadline closes it.
      if (respond_plain(*req, 500, "Internal Server Error\n", false)) ++answered;
    }
    return Qnil;
  });
  return LONG2NUM(answered);
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

// Native.server_report_pool(id, workers_up, respawns, quarantined) -> nil.
// The supervisor pushes what only it knows whenever it changes, so stats
// and the control plane read it natively and never call into Ruby.
VALUE native_server_report_pool(VALUE, VALUE id, VALUE workers_up, VALUE respawns, VALUE quarantined) {
  uint64_t sid = NUM2ULL(id);
  long long up = NUM2LL(workers_up), restarted = NUM2LL(respawns), set_aside = NUM2LL(quarantined);
  if (up < 0 || restarted < 0 || set_aside < 0) rb_raise(rb_eArgError, "pool counts must not be negative");
  return protect([&]() -> VALUE {
    find_server(sid)->report_pool(up, static_cast<uint64_t>(restarted), static_cast<uint64_t>(set_aside));
    return Qnil;
  });
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
      exit.error_class = bytes_of(error_class);
      exit.message = bytes_of(message);
      for (long i = 0; i < RARRAY_LEN(backtrace); ++i)
        exit.backtrace.emplace_back(bytes_of(RARRAY_AREF(backtrace, i)));
    }
    find_server(sid)->worker_exits().post(std::move(exit));
    return Qnil;
  });
  RB_GC_GUARD(error_class);
  RB_GC_GUARD(message);
  RB_GC_GUARD(backtrace);
  return posted;
}

// Native.server_next_worker_exit(id) -> [token, report or nil], or :wake.
// Waits, without the GVL, for the next worker to report its end (see
// WorkerExits) or for server_wake_worker_exits. Raises Kino::Error once
// the server has been released.
VALUE native_server_next_worker_exit(VALUE, VALUE id) {
  uint64_t sid = NUM2ULL(id);
  for (;;) {
    // Heap-held so that no C++ destructor is skipped if a Ruby call below
    // raises (see with_held); freed on every path before one does.
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
      raise_no_server(sid);
    }
    if (call->outcome == WorkerExits::Outcome::Wake) {
      delete call;
      return ID2SYM(id_wake);
    }
    if (call->outcome == WorkerExits::Outcome::Exit) {
      return with_held(call, [](const ExitWaitCall& c) -> VALUE {
        const WorkerExit& e = c.exit;
        VALUE report = Qnil;
        if (e.crashed) {
          VALUE lines = rb_ary_new_capa(static_cast<long>(e.backtrace.size()));
          for (const auto& line : e.backtrace) rb_ary_push(lines, utf8_string(line));
          report = rb_ary_new_from_args(3, utf8_string(e.error_class), utf8_string(e.message), lines);
        }
        return rb_ary_new_from_args(2, ULL2NUM(e.token), report);
      });
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

void init_native_workers() { id_wake = rb_intern("wake"); }

}  // namespace kino::binding
