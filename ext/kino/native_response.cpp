// The response unit: Native.respond (a whole response), respond_start,
// respond_write and respond_finish (a streamed one) and respond_error,
// each handing the app's answer to the native responder.
#include <chrono>
#include <cstring>
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
struct HeaderScan {
  NativeVector<HeaderView>* out;
  VALUE bad = Qnil;
};

HeaderView header_view(VALUE name, VALUE value) {
  return {{RSTRING_PTR(name), static_cast<size_t>(RSTRING_LEN(name))},
          {RSTRING_PTR(value), static_cast<size_t>(RSTRING_LEN(value))}};
}

bool has_newline(VALUE s) {
  return memchr(RSTRING_PTR(s), '\n', static_cast<size_t>(RSTRING_LEN(s))) != nullptr;
}

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

struct HeaderConversion {
  VALUE lines;  // [name, value, name, value, ...], all Strings
  VALUE bad = Qnil;
};

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
  long length = RSTRING_LEN(value);
  if (!has_newline(value) || memchr(RSTRING_PTR(value), '\r', static_cast<size_t>(length)))
    return push_line(lines, name, value);
  VALUE parts = rb_str_split(value, "\n");
  for (long i = 0; i < RARRAY_LEN(parts); ++i) push_line(lines, name, RARRAY_AREF(parts, i));
}

int convert_header(VALUE key, VALUE value, VALUE arg) {
  auto* conversion = reinterpret_cast<HeaderConversion*>(arg);
  if (!RB_TYPE_P(key, T_STRING)) {
    conversion->bad = key;
    return ST_STOP;
  }
  if (RB_TYPE_P(value, T_ARRAY)) {
    // Rack 3: one field per element, each taken as it is (as Puma does).
    // The elements are copied first: an element's to_s may change the Array.
    VALUE elements = rb_ary_dup(value);
    for (long i = 0; i < RARRAY_LEN(elements); ++i)
      push_line(conversion->lines, key, rb_obj_as_string(RARRAY_AREF(elements, i)));
  } else {
    push_lines(conversion->lines, key, rb_obj_as_string(value));
  }
  return ST_CONTINUE;
}

int scan_header(VALUE key, VALUE value, VALUE arg) {
  auto* scan = reinterpret_cast<HeaderScan*>(arg);
  if (!RB_TYPE_P(key, T_STRING)) {
    scan->bad = key;
    return ST_STOP;
  }
  if (RB_TYPE_P(value, T_STRING)) {
    scan->out->push_back(header_view(key, value));
  } else {
    // Only Arrays of Strings get here (plain_header said so).
    for (long i = 0; i < RARRAY_LEN(value); ++i)
      scan->out->push_back(header_view(key, RARRAY_AREF(value, i)));
  }
  return ST_CONTINUE;
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
  HeaderConversion conversion{rb_ary_new_capa(2 * static_cast<long>(RHASH_SIZE(headers)) + 2)};
  rb_hash_foreach(headers, convert_header, reinterpret_cast<VALUE>(&conversion));
  if (!NIL_P(conversion.bad)) raise_bad_header(conversion.bad);
  return conversion.lines;
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
      HeaderScan scan{&hv};
      rb_hash_foreach(prepared, scan_header, reinterpret_cast<VALUE>(&scan));
      if (!NIL_P(scan.bad)) {
        bad = scan.bad;
        return Qnil;
      }
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
    for (long i = 0; i < parts; ++i) {
      VALUE s = RARRAY_AREF(body, i);
      bv.emplace_back(RSTRING_PTR(s), static_cast<size_t>(RSTRING_LEN(s)));
    }
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
  bool ok = protect([&]() -> VALUE {
    return write_body(*req, {RSTRING_PTR(chunk), static_cast<size_t>(RSTRING_LEN(chunk))}) ? Qtrue : Qfalse;
  }) == Qtrue;
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
    if (respond_plain(*req, code, {RSTRING_PTR(text), static_cast<size_t>(RSTRING_LEN(text))}, false))
      return Qtrue;
    // Cut the response short only if this thread is the one that started
    // it; if a timeout answered first, the response is not ours to touch.
    if (req->streaming_started()) abort_response(*req);
    return Qfalse;
  });
}

}  // namespace kino::binding
