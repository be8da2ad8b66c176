// The response unit: Native.respond (a whole response), respond_start,
// respond_write and respond_finish (a streamed one) and respond_error,
// each handing the app's answer to the native responder.
#include <chrono>
#include <span>
#include <string_view>

#include "core/handoff/response_sink.hpp"
#include "core/http1/responder.hpp"
#include "native_request.hpp"
#include "native_seam.hpp"

namespace kino::binding {

namespace {

struct DiscardCall : Interruptible {
  RequestBody* body;
  bool ran = false;
  void run() {
    body->discard();
    ran = true;
  }
};

// Once the response is out nobody reads the body again: its memory and
// spool file go now, not when the handle is collected (the worker slot
// keeps the request until its next one).
//
// discard() waits for the body's lock, which the connection holds while it
// spools arriving bytes to disk, and for another thread's read of the spool
// file to end. Those waits happen without the GVL, so the other threads of
// this worker (or, in :threaded mode, every Ruby thread) go on meanwhile. A
// body that is complete and in memory has nothing to wait for but a copy,
// and is let go in place: most requests with a body pay no GVL hand-off.
void release_body(RequestCtx& req) {
  if (!req.body) return;
  if (req.body->complete() && !req.body->spooled()) {
    req.body->discard();
    return;
  }
  DiscardCall call;
  call.body = req.body.get();
  without_gvl(call);
  // With an interrupt pending Ruby skips the call; discard anyway. And an
  // exception from the wait (a failed lock) leaves the body to be let go
  // with the request, as before this early release.
  if (!call.ran && !call.failure) req.body->discard();
}

// Response headers. Most apps answer with String names and String (or
// Rack 3 Array of String) values: those are read in place from the app's
// Hash, names and values pointing into Ruby strings, valid while we hold
// the GVL, and nothing is allocated on the Ruby heap.
//
// Other values are written the way Puma writes them: a value that is not a
// String or an Array (an Integer, a Symbol, true) as its `to_s`, and a
// String holding "\n" (Rack 2's way of repeating a field) as one field per
// line. Those are converted first, into a flat Array of name and value
// Strings, before any native object exists: `to_s` is app code and may
// raise.
HeaderView header_view(VALUE name, VALUE value) { return {bytes_of(name), bytes_of(value)}; }

bool has_newline(VALUE s) { return bytes_of(s).find('\n') != std::string_view::npos; }

// Whether every value can be read in place.
int plain_header(VALUE, VALUE value, VALUE arg) {
  bool plain = true;
  if (RB_TYPE_P(value, T_STRING)) {
    plain = !has_newline(value);
  } else if (RB_TYPE_P(value, T_ARRAY)) {
    for (long i = 0; plain && i < RARRAY_LEN(value); ++i) plain = RB_TYPE_P(RARRAY_AREF(value, i), T_STRING);
  } else {
    plain = false;
  }
  if (plain) return ST_CONTINUE;
  *reinterpret_cast<bool*>(arg) = false;
  return ST_STOP;
}

void push_line(VALUE lines, VALUE name, VALUE value) {
  rb_ary_push(lines, name);
  rb_ary_push(lines, value);
}

// One field per line of a String value; an empty value is one empty field.
// A value with a CR in it is not split: the response writer drops it whole
// and logs its name, where Puma would drop only its line with the CR and
// send the rest ("a\r\nx-injected: b" would go out as a field whose value
// looks like another field).
void push_lines(VALUE lines, VALUE name, VALUE value) {
  if (!has_newline(value) || bytes_of(value).find('\r') != std::string_view::npos)
    return push_line(lines, name, value);
  VALUE parts = rb_str_split(value, "\n");
  for (long i = 0; i < RARRAY_LEN(parts); ++i) push_line(lines, name, RARRAY_AREF(parts, i));
}

// Calls `each(name, value)` for each field of `headers`, and stops at the
// first name that is not a String: returns it, or nil when every name is
// one. `each` runs inside rb_hash_foreach, and may raise.
template <class Each>
VALUE each_header(VALUE headers, const Each& each) {
  struct Walk {
    const Each* each;
    VALUE bad;
  } walk{&each, Qnil};
  rb_hash_foreach(
      headers,
      [](VALUE name, VALUE value, VALUE arg) -> int {
        auto* w = reinterpret_cast<Walk*>(arg);
        if (!RB_TYPE_P(name, T_STRING)) {
          w->bad = name;
          return ST_STOP;
        }
        (*w->each)(name, value);
        return ST_CONTINUE;
      },
      reinterpret_cast<VALUE>(&walk));
  return walk.bad;
}

int check_status(VALUE status) {
  if (!RB_INTEGER_TYPE_P(status)) rb_raise(rb_eTypeError, "status must be an Integer");
  long s = NUM2LONG(status);
  if (s < 100 || s > 999) rb_raise(rb_eArgError, "status %ld is not a valid HTTP status", s);
  return static_cast<int>(s);
}

void raise_bad_header(VALUE bad) {
  rb_raise(rb_eTypeError, "response header %" PRIsVALUE " must have a String name", rb_inspect(bad));
}

// The app's headers, ready to be read without calling Ruby: the Hash
// itself when every value can be read in place, else the flat Array of
// converted lines. Raises TypeError for a name that is not a String.
VALUE prepare_headers(VALUE headers) {
  Check_Type(headers, T_HASH);
  bool plain = true;
  rb_hash_foreach(headers, plain_header, reinterpret_cast<VALUE>(&plain));
  if (plain) return headers;
  VALUE lines = rb_ary_new_capa(2 * static_cast<long>(RHASH_SIZE(headers)) + 2);  // [name, value, ...]
  VALUE bad = each_header(headers, [&](VALUE name, VALUE value) {
    if (!RB_TYPE_P(value, T_ARRAY)) return push_lines(lines, name, rb_obj_as_string(value));
    // Rack 3: one field per element, each taken as it is (as Puma does).
    // The elements are copied first: an element's to_s may change the Array.
    VALUE elements = rb_ary_dup(value);
    for (long i = 0; i < RARRAY_LEN(elements); ++i)
      push_line(lines, name, rb_obj_as_string(RARRAY_AREF(elements, i)));
  });
  if (!NIL_P(bad)) raise_bad_header(bad);
  return lines;
}

// Runs `send` with the headers `prepare_headers` made; true/false from
// `send` becomes Qtrue/Qfalse. Calls no Ruby code before `send` runs, so
// what the caller checked (the body's Strings) still holds then. A name
// that is not a String raises TypeError, after every C++ object is gone.
template <class Send>
VALUE with_headers(VALUE prepared, Send&& send) {
  VALUE bad = Qnil;
  VALUE sent = protect([&]() -> VALUE {
    NativeVector<HeaderView> hv;
    if (RB_TYPE_P(prepared, T_ARRAY)) {
      long n = RARRAY_LEN(prepared);
      hv.reserve(static_cast<size_t>(n / 2));
      for (long i = 0; i + 1 < n; i += 2)
        hv.push_back(header_view(RARRAY_AREF(prepared, i), RARRAY_AREF(prepared, i + 1)));
    } else {
      hv.reserve(static_cast<size_t>(RHASH_SIZE(prepared)) + 2);
      bad = each_header(prepared, [&](VALUE name, VALUE value) {
        if (RB_TYPE_P(value, T_STRING)) return hv.push_back(header_view(name, value));
        // Only Arrays of Strings get here (plain_header said so).
        for (long i = 0; i < RARRAY_LEN(value); ++i) hv.push_back(header_view(name, RARRAY_AREF(value, i)));
      });
      if (!NIL_P(bad)) return Qnil;
    }
    return send(std::span<const HeaderView>(hv)) ? Qtrue : Qfalse;
  });
  RB_GC_GUARD(prepared);
  if (!NIL_P(bad)) raise_bad_header(bad);
  return sent;
}

struct WritableCall : Interruptible {
  ResponseSink* sink;
  bool open = true;
  void run() { open = sink->wait_writable(std::chrono::steady_clock::now() + kWaitTick); }
};

}  // namespace

// Native.respond(req, status, headers, body_array) -> true, or false when
// the request was already answered (a timeout, a supervisor).
VALUE native_respond(VALUE, VALUE handle, VALUE status, VALUE headers, VALUE body) {
  return respond_array(handle, status, headers, body);
}

VALUE respond_array(VALUE handle, VALUE status, VALUE headers, VALUE body) {
  RequestCtx* req = unwrap_request(handle);
  int code = check_status(status);
  VALUE prepared = prepare_headers(headers);  // may run the app's to_s
  Check_Type(body, T_ARRAY);
  long parts = RARRAY_LEN(body);
  for (long i = 0; i < parts; ++i)
    if (!RB_TYPE_P(RARRAY_AREF(body, i), T_STRING))
      rb_raise(rb_eTypeError, "response body must yield Strings, got %" PRIsVALUE,
               rb_obj_class(RARRAY_AREF(body, i)));
  return with_headers(prepared, [&](std::span<const HeaderView> hv) {
    NativeVector<std::string_view> bv;
    bv.reserve(static_cast<size_t>(parts));
    for (long i = 0; i < parts; ++i) bv.push_back(bytes_of(RARRAY_AREF(body, i)));
    bool sent = respond(*req, code, hv, bv);
    release_body(*req);
    return sent;
  });
}

// Native.respond_start(req, status, headers) -> true/false (see respond).
VALUE native_respond_start(VALUE, VALUE handle, VALUE status, VALUE headers) {
  RequestCtx* req = unwrap_request(handle);
  int code = check_status(status);
  return with_headers(prepare_headers(headers), [&](std::span<const HeaderView> hv) {
    bool started = start_response(*req, code, hv);
    if (!started) release_body(*req);  // answered already: nobody reads on
    return started;
  });
}

// Native.respond_write(req, chunk) -> true, or false once the client is
// gone (stop producing). Waits, without the GVL, while the connection has
// more than its high-water mark of bytes not yet written: a slow reader
// slows the producer instead of growing memory.
VALUE native_respond_write(VALUE, VALUE handle, VALUE chunk) {
  RequestCtx* req = unwrap_request(handle);
  StringValue(chunk);
  bool ok = protect([&]() -> VALUE { return write_body(*req, bytes_of(chunk)) ? Qtrue : Qfalse; }) == Qtrue;
  while (ok && req->sink && req->sink->backlogged()) {
    CarriedError error;
    {
      WritableCall call;
      call.sink = req->sink.get();
      without_gvl(call);
      ok = call.open;
      error.take(call.failure);
    }
    error.raise_if_any();
    // Always: with an interrupt already pending (a time slice ending, say)
    // the wait never ran, and only handling it lets the next one run.
    rb_thread_check_ints();
  }
  return ok ? Qtrue : Qfalse;
}

VALUE native_respond_finish(VALUE, VALUE handle) {
  RequestCtx* req = unwrap_request(handle);
  return protect([&]() -> VALUE {
    finish_response(*req);
    release_body(*req);
    return Qnil;
  });
}

// Native.respond_error(req, status, text) -> true if this answer went out.
// For failures: answers with a plain-text error when nothing was sent yet,
// or cuts off a response whose head already left.
VALUE native_respond_error(VALUE, VALUE handle, VALUE status, VALUE text) {
  RequestCtx* req = unwrap_request(handle);
  int code = check_status(status);
  StringValue(text);
  return protect([&]() -> VALUE {
    release_body(*req);
    if (respond_plain(*req, code, bytes_of(text), false)) return Qtrue;
    // Cut the response short only if this thread is the one that started
    // it; if a timeout answered first, the response is not ours to touch.
    if (req->response_streamed()) abort_response(*req);
    return Qfalse;
  });
}

}  // namespace kino::binding
