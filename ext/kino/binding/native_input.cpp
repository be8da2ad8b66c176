// The input unit: Kino::Input (rack.input for a body still arriving or
// spooled to disk; its Ruby methods are in lib/kino/input.rb), its
// shared empty instance Kino::Input::EMPTY, and the functions it reads
// the body through.
#include "native_input.hpp"

#include <chrono>
#include <string_view>

#include "native_request.hpp"
#include "native_seam.hpp"

namespace kino::binding {

namespace {

VALUE cInput = Qnil;
VALUE cStringIO = Qnil;
VALUE empty_input = Qnil;   // Kino::Input::EMPTY
VALUE empty_binary = Qnil;  // rb_str_new gives ASCII-8BIT, as rack.input wants

// A read of the body that waits until `deadline` at most; an exception
// (which cannot cross into Ruby) counts as a failed body.
RequestBody::ReadResult read_body_until(RequestCtx& req, char* out, size_t max,
                                        std::chrono::steady_clock::time_point deadline) noexcept {
  try {
    return req.read_body(out, max, deadline);
  } catch (...) {
    return {RequestBody::ReadStatus::Failed, 0};
  }
}

[[noreturn]] void raise_input_error(RequestCtx& req) {
  char message[512];
  int status = req.body ? req.body->failure_status() : 500;
  snprintf(message, sizeof message, "%s (%d)", req.body ? req.body->failure_reason() : "no request body",
           status);
  rb_raise(eInputError, "%s", message);
}

struct BodyReadCall : Interruptible {
  RequestCtx* req;
  char* out;
  size_t max;
  RequestBody::ReadResult result{RequestBody::ReadStatus::Waiting, 0};
  void run() noexcept {
    while (result.status == RequestBody::ReadStatus::Waiting && !interrupted.load(std::memory_order_acquire))
      result = read_body_until(*req, out, max, std::chrono::steady_clock::now() + kWaitTick);
  }
};

constexpr long kMaxRead = 1L << 20;

}  // namespace

// Native.input_read(req, max, buffer) -> buffer with 1..max more bytes
// appended, or nil once the body has been read to its end. Waits, without
// the GVL, for bytes that have not arrived yet; raises Kino::InputError
// when the body will not arrive whole (client gone, stalled, too large).
// The first read sends the `100 Continue` an expecting client waits for.
// Appending in place lets Kino::Input fill one String instead of making
// a new one per piece.
VALUE native_input_read(VALUE, VALUE handle, VALUE rb_max, VALUE buf) {
  RequestCtx* req = unwrap_request(handle);
  long max = NUM2LONG(rb_max);
  if (max <= 0) rb_raise(rb_eArgError, "read size must be positive, got %ld", max);
  if (max > kMaxRead) max = kMaxRead;
  StringValue(buf);
  for (;;) {
    long len = RSTRING_LEN(buf);
    rb_str_modify_expand(buf, max);  // raises for a frozen buffer
    char* out = RSTRING_PTR(buf) + len;
    // Bytes already here are taken with the GVL held.
    RequestBody::ReadResult result =
        read_body_until(*req, out, static_cast<size_t>(max), std::chrono::steady_clock::now());
    if (result.status == RequestBody::ReadStatus::Waiting) {
      rb_str_locktmp(buf);  // written without the GVL: nobody may resize it
      {
        BodyReadCall call;  // run() is noexcept: it never carries a failure
        call.req = req;
        call.out = out;
        call.max = static_cast<size_t>(max);
        without_gvl(call);
        result = call.result;
      }
      rb_str_unlocktmp(buf);
    }
    switch (result.status) {
      case RequestBody::ReadStatus::Data:
        rb_str_set_len(buf, len + static_cast<long>(result.bytes));
        return buf;
      case RequestBody::ReadStatus::End:
        return Qnil;
      case RequestBody::ReadStatus::Failed:
        raise_input_error(*req);
      case RequestBody::ReadStatus::Waiting:
        break;
    }
    rb_thread_check_ints();  // Thread#kill, Ractor shutdown: raises or returns
  }
}

// Native.input_rewind(req) -> nil: the next read starts at the first byte.
VALUE native_input_rewind(VALUE, VALUE handle) {
  RequestCtx* req = unwrap_request(handle);
  if (req->body) req->body->rewind();
  return Qnil;
}

// A body that is here whole and fits in memory becomes a StringIO, as with
// Puma; one still arriving, or spooled to disk, is read through Kino::Input
// as the app asks for it.
VALUE rack_input(const RequestCtx& req, VALUE handle) {
  // No body: one frozen, stateless input shared by every request and
  // ractor (Kino::Input::EMPTY), so a bodyless request allocates nothing
  // for it.
  if (!req.body) return empty_input;
  if (!req.body->complete() || req.body->spooled()) return rb_class_new_instance(1, &handle, cInput);
  std::string_view whole = req.body->in_memory();
  VALUE bytes = whole.empty() ? empty_binary : rb_str_new(whole.data(), static_cast<long>(whole.size()));
  req.body->discard();  // the StringIO has its own copy
  return rb_class_new_instance(1, &bytes, cStringIO);
}

void init_native_input(VALUE mKino) {
  rb_require("stringio");
  cStringIO = rb_path2class("StringIO");
  empty_binary = shareable_forever(rb_str_new("", 0));
  // Its methods are Ruby (lib/kino/input.rb); defined here so the class
  // exists whichever file loads first.
  cInput = rb_define_class_under(mKino, "Input", rb_cObject);
  // Its methods are Ruby too (lib/kino/input.rb). It holds no state, so
  // one frozen instance is shareable.
  VALUE cEmpty = rb_define_class_under(cInput, "Empty", rb_cObject);
  empty_input = shareable_forever(rb_obj_alloc(cEmpty));
  rb_define_const(cInput, "EMPTY", empty_input);
}

}  // namespace kino::binding
