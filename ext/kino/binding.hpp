// Shared pieces of the Ruby binding: the protect wrapper every entry point
// goes through, the GVL-release helper, and one init function per file.
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
#include <ruby/thread.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <new>

namespace kino::binding {

// Kino::Error, defined in Init_kino (lib/kino/errors.rb reopens it).
extern VALUE eKinoError;
// Kino::InputError < EOFError: the request body will not arrive whole.
extern VALUE eInputError;
extern VALUE mNative;

// Runs `f`, mapping C++ exceptions to Ruby exceptions. The exception is
// raised only after the try block is left, so every C++ destructor inside
// `f` has run before Ruby unwinds the stack.
template <class F>
VALUE protect(F&& f) {
  char message[512];
  VALUE klass = Qnil;
  try {
    return f();
  } catch (const std::bad_alloc&) {
    klass = rb_eNoMemError;
    snprintf(message, sizeof message, "kino: native allocation failed");
  } catch (const std::exception& e) {
    klass = eKinoError;
    snprintf(message, sizeof message, "%s", e.what());
  } catch (...) {
    klass = eKinoError;
    snprintf(message, sizeof message, "kino: unknown native error");
  }
  rb_raise(klass, "%s", message);
}

// A blocking wait run without the GVL. `ubf` is called from another thread
// (possibly another ractor, or the main thread at exit) to interrupt it:
// it only raises the flag, the wait notices it within one tick.
struct Interruptible {
  std::atomic<bool> interrupted{false};

  static void ubf(void* self) {
    static_cast<Interruptible*>(self)->interrupted.store(true, std::memory_order_release);
  }
};

template <class Call>
void without_gvl(Call& call) {
  rb_thread_call_without_gvl2(
      [](void* p) -> void* {
        static_cast<Call*>(p)->run();
        return nullptr;
      },
      &call, &Interruptible::ubf, static_cast<Interruptible*>(&call));
}

void init_env_builder(VALUE mKino);
void init_native_server(VALUE mNative);
void init_native_request(VALUE mNative);
void init_native_sleep(VALUE mNative);

}  // namespace kino::binding
