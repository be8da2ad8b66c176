// The extension's single entry point: one init function per Ruby unit.
#include "binding.hpp"

namespace kino::binding {
VALUE eKinoError = Qnil;
VALUE eInputError = Qnil;
VALUE mNative = Qnil;
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

  init_native_server(mNative);
  init_native_workers(mNative);
  init_native_input(mKino, mNative);
  init_native_request(mNative);
  init_native_response(mNative);
  init_native_sleep(mNative);
}
