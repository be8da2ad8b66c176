// Shared pieces of the Ruby binding: the protect wrapper every entry point
// goes through, the GVL-release helper, and one init function per unit
// (native_*.cpp, one Ruby unit each).
//
// Two rules hold everywhere in the binding:
// - Never touch a VALUE while the GVL is released.
// - Ruby may longjmp out of any call that raises (and out of
//   rb_thread_check_ints), skipping C++ destructors. So no object with a
//   destructor may be alive across such a call: C++ work happens in an
//   inner scope (or inside `protect`), and Ruby raises happen after it.
#pragma once

// Ruby's headers are included as system headers (-isystem), so their
// warnings don't bury ours.
#include <ruby.h>
#include <ruby/ractor.h>
#include <ruby/thread.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/registry.hpp"

namespace kino::binding {

// Kino::Error, defined in Init_kino (lib/kino/errors.rb reopens it).
extern VALUE eKinoError;
// Kino::InputError < EOFError: the request body will not arrive whole.
extern VALUE eInputError;
extern VALUE mNative;

// What a C++ exception becomes in Ruby: NoMemoryError for a failed
// allocation, Kino::Error otherwise. Fills `message`; call it only from a
// catch block (it rethrows the exception being handled to look at it).
inline VALUE describe_current_exception(char* message, size_t size) noexcept {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    snprintf(message, size, "kino: native allocation failed");
    return rb_eNoMemError;
  } catch (const std::exception& e) {
    snprintf(message, size, "%s", e.what());
  } catch (...) {
    snprintf(message, size, "kino: unknown native error");
  }
  return eKinoError;
}

// Runs `f`, mapping C++ exceptions to Ruby exceptions. The exception is
// raised only after the try block is left, so every C++ destructor inside
// `f` has run before Ruby unwinds the stack.
template <class F>
VALUE protect(F&& f) {
  char message[512];
  VALUE klass = Qnil;
  try {
    return f();
  } catch (...) {
    klass = describe_current_exception(message, sizeof message);
  }
  rb_raise(klass, "%s", message);
}

// A blocking wait run without the GVL. `ubf` is called from another thread
// (possibly another ractor, or the main thread at exit) to interrupt it:
// it only raises the flag, the wait notices it within one tick.
//
// A C++ exception thrown by the wait must not unwind through the Ruby VM's
// C frames between us and `run()`: without_gvl catches it there and keeps
// it in `failure`, for the caller to raise once it holds the GVL again and
// has left its C++ scope (CarriedError), or to rethrow inside `protect`.
struct Interruptible {
  std::atomic<bool> interrupted{false};
  // False when Ruby did not run the call at all: an interrupt was pending.
  bool ran = false;
  std::exception_ptr failure;

  static void ubf(void* self) {
    static_cast<Interruptible*>(self)->interrupted.store(true, std::memory_order_release);
  }
};

template <class Call>
void without_gvl(Call& call) noexcept {
  rb_thread_call_without_gvl2(
      [](void* p) noexcept -> void* {
        auto* c = static_cast<Call*>(p);
        c->ran = true;
        try {
          c->run();
        } catch (...) {
          c->failure = std::current_exception();
        }
        return nullptr;
      },
      &call, &Interruptible::ubf, static_cast<Interruptible*>(&call));
}

// rb_thread_call_without_gvl2 does not run the call while any interrupt
// is pending, and the commonest is no request to stop: the timer's mark
// that this thread's time slice is over (another thread wants the GVL).
// A wait that must happen (a drain, a flush) goes through this instead:
// the pending interrupts are handled (for the timer's, a turn for the
// other threads) and the call is tried again. One that raises
// (Thread#kill, Thread#raise, a signal's trap) ends the tries: its tag
// is returned, for the caller to pass to rb_jump_tag once it has left
// its C++ scope; 0 when the call ran. A few tries bound the loop should
// something keep an interrupt pending that handling does not clear.
inline int handle_pending_interrupts() noexcept {
  int state = 0;
  rb_protect(
      [](VALUE) -> VALUE {
        rb_thread_check_ints();
        return Qnil;
      },
      Qnil, &state);
  return state;
}

template <class Call>
int without_gvl_until_run(Call& call) noexcept {
  for (int tries = 0; tries < 100; ++tries) {
    without_gvl(call);
    if (call.ran) return 0;
    if (int state = handle_pending_interrupts()) return state;
  }
  return 0;
}

// A C++ exception carried out of a wait (see Interruptible), turned into
// plain data inside the C++ scope, so that the Ruby raise after it skips
// no destructor:
//   CarriedError error;
//   { ...; without_gvl(call); error.take(call.failure); }
//   error.raise_if_any();
struct CarriedError {
  VALUE klass = Qnil;
  char message[512];

  void take(std::exception_ptr& failure) noexcept {
    if (!failure) return;
    try {
      std::rethrow_exception(std::exchange(failure, nullptr));
    } catch (...) {
      klass = describe_current_exception(message, sizeof message);
    }
  }

  void raise_if_any() const {
    if (!NIL_P(klass)) rb_raise(klass, "%s", message);
  }
};

// Runs `f(*held)`, which calls Ruby (and may raise), then deletes `held`
// on every path before a raise goes on: a longjmp out of `f` would skip
// the destructor of anything it held on the stack. `held` is new'd by the
// caller, and `f` throws no C++ exception.
template <class T, class F>
VALUE with_held(T* held, F&& f) {
  struct Work {
    T* held;
    std::remove_reference_t<F>* f;
  } work{held, &f};
  int state = 0;
  VALUE out = rb_protect(
      [](VALUE arg) -> VALUE {
        auto* w = reinterpret_cast<Work*>(arg);
        return (*w->f)(*w->held);
      },
      reinterpret_cast<VALUE>(&work), &state);
  delete held;
  if (state) rb_jump_tag(state);
  return out;
}

// Ruby Strings from native ones. Building them allocates and may raise
// (NoMemoryError), so the strings move to the heap (with_held). The
// caller's vector is left empty: nothing of it can leak.
inline VALUE string_array(std::vector<std::string>&& strings) {
  auto* held = new (std::nothrow) std::vector<std::string>(std::move(strings));
  if (!held) rb_raise(rb_eNoMemError, "kino: native allocation failed");
  return with_held(held, [](const std::vector<std::string>& v) {
    VALUE array = rb_ary_new_capa(static_cast<long>(v.size()));
    for (const auto& s : v) rb_ary_push(array, rb_str_new(s.data(), static_cast<long>(s.size())));
    return array;
  });
}

// The bytes of a Ruby String, in place: valid while the String lives
// unchanged and the GVL is held.
inline std::string_view bytes_of(VALUE s) { return {RSTRING_PTR(s), static_cast<size_t>(RSTRING_LEN(s))}; }

// A new Array of the elements of `array` as Strings (StringValue of each).
// What to_str returns is kept, never read back from `array`, which an
// element's to_str may have changed (or emptied) meanwhile.
inline VALUE string_values(VALUE array) {
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

// `v`, frozen, shareable with every ractor, and never collected. Main
// ractor only.
inline VALUE shareable_forever(VALUE v) {
  rb_obj_freeze(v);
  rb_ractor_make_shareable(v);
  rb_gc_register_mark_object(v);
  return v;
}

// The server with id `id`; throws (for `protect`) when there is none.
inline std::shared_ptr<Server> find_server(uint64_t id) {
  auto s = Registry::instance().find(id);
  if (!s) throw std::runtime_error("no server with id " + std::to_string(id));
  return s;
}

// The same failure raised from outside `protect`.
[[noreturn]] inline void raise_no_server(uint64_t id) {
  rb_raise(eKinoError, "no server with id %llu", static_cast<unsigned long long>(id));
}

// How long a wait without the GVL lasts before it looks at its interrupt
// flag and the server again.
constexpr auto kWaitTick = std::chrono::milliseconds(50);

// Native.respond's work, for Taker#respond_and_take (native_request.cpp)
// to answer a request the same way: `req` with a whole response, the body
// an Array of Strings. Raises before anything is sent for a bad status,
// header or body element; true, or false when the request was already
// answered. Defined in native_response.cpp.
VALUE respond_array(VALUE req, VALUE status, VALUE headers, VALUE body);

// What a unit sets up before the seam is registered (names interned,
// classes created), called from Init_kino. The sleep unit needs none.
void init_native_server();
void init_native_process_board();
void init_native_workers();
void init_native_input(VALUE mKino);
void init_native_request(VALUE mNative);
void init_native_response();

}  // namespace kino::binding
