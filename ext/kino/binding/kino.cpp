// The extension's single entry point: each unit sets itself up, then the
// seam (native_seam.hpp) is registered from its one list.
#include <cstring>

#include "native_seam.hpp"

namespace kino::binding {

VALUE eKinoError = Qnil;
VALUE eInputError = Qnil;
VALUE mNative = Qnil;

namespace {

// Where a row of the seam goes: for "Class#method", Kino::Native::Class
// (and `method` in `mid`); for any other name, nil.
VALUE method_owner(const char* name, const char** mid) {
  const char* hash = strchr(name, '#');
  if (!hash) return Qnil;
  *mid = hash + 1;
  return rb_const_get_at(mNative, rb_intern2(name, hash - name));
}

void define_seam() {
  VALUE seam = rb_ary_new();
  // Ruby's C++ headers check each function's signature against its arity.
#define KINO_SEAM_DEFINE(unit, name, function, arity)                                         \
  {                                                                                           \
    const char* mid = name;                                                                   \
    VALUE owner = method_owner(name, &mid);                                                   \
    if (NIL_P(owner)) {                                                                       \
      rb_define_module_function(mNative, name, function, arity);                              \
    } else {                                                                                  \
      rb_define_method(owner, mid, function, arity);                                          \
    }                                                                                         \
    rb_ary_push(seam, rb_ary_new_from_args(3, rb_usascii_str_new_cstr(name), INT2FIX(arity),  \
                                           rb_usascii_str_new_cstr("native_" #unit ".cpp"))); \
  }
  KINO_NATIVE_SEAM(KINO_SEAM_DEFINE)
#undef KINO_SEAM_DEFINE
  // [name, arity, unit file] a row, deep-frozen: readable from any ractor.
  rb_define_const(mNative, "SEAM", shareable_forever(seam));
}

}  // namespace

}  // namespace kino::binding

extern "C" __attribute__((visibility("default"))) void Init_kino() {
  // Must come first: the flag is read when each method is defined, and a
  // method defined without it raises Ractor::UnsafeError in a worker.
  rb_ext_ractor_safe(true);

  using namespace kino::binding;
  VALUE mKino = rb_define_module("Kino");
  eKinoError = rb_define_class_under(mKino, "Error", rb_eStandardError);
  eInputError = rb_define_class_under(mKino, "InputError", rb_eEOFError);
  mNative = rb_define_module_under(mKino, "Native");

  init_native_server();
  init_native_process_board();
  init_native_workers();
  init_native_input(mKino);
  init_native_request(mNative);
  init_native_response();
  define_seam();
}
