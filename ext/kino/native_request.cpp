// Kino::Native::Request and the request functions of the seam: take_one
// (block for the next request, build its env here), and the respond_*
// family (hand the app's answer to the native responder).
#include <chrono>
#include <cstring>
#include <exception>
#include <span>
#include <string_view>

#include "binding.hpp"
#include "core/handoff/registry.hpp"
#include "core/http1/responder.hpp"
#include "core/handoff/response_sink.hpp"
#include "core/util/steady_clock.hpp"
#include "env_builder.hpp"

namespace kino::binding {

namespace {

VALUE cRequest = Qnil;

void request_free(void* p) {
  if (p) intrusive_ptr_release(static_cast<RequestCtx*>(p));
}

size_t request_size(const void* p) {
  auto* r = static_cast<const RequestCtx*>(p);
  if (!r) return 0;  // a handle made before its request was taken
  return sizeof(RequestCtx) + (r->body ? sizeof(RequestBody) : 0) + r->headers.capacity() * sizeof(EnvHeader);
}

// The handle is created in the worker that took the request and never
// leaves that ractor. Freeing it only drops a reference, which is safe on
// any thread, so it can be freed immediately during GC.
const rb_data_type_t request_type = {
    "Kino::Native::Request",
    {nullptr, request_free, request_size, nullptr, {nullptr}},
    nullptr,
    nullptr,
    RUBY_TYPED_FREE_IMMEDIATELY,
};

RequestCtx* unwrap(VALUE handle) {
  auto* r = static_cast<RequestCtx*>(rb_check_typeddata(handle, &request_type));
  if (!r) rb_raise(eKinoError, "request handle is empty");
  return r;
}

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
  snprintf(message, sizeof message, "%s (%d)", req.body ? req.body->failure_reason() : "no request body", status);
  rb_raise(eInputError, "%s", message);
}

constexpr auto kTick = std::chrono::milliseconds(50);

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

struct TakeCall : Interruptible {
  RequestQueue* queue;
  RequestCtx* taken = nullptr;
  void run() {
    while (!interrupted.load(std::memory_order_acquire)) {
      RequestRef r = queue->pop_for(kTick);
      if (r) {
        taken = r.detach();
        return;
      }
      if (queue->drained()) return;
    }
  }
};

// Ruby 3.1 moves the GVL between threads of a ractor only when the holder
// blocks or its 100 ms time slice ends. A worker thread that finds the
// queue full keeps the GVL and serves request after request, while a
// thread it preempted in the middle of a request waits for every other
// thread's slice: with 6 threads on a CPU-bound app that was 0.5 s at p99.
// So a thread that has held the GVL for a few milliseconds offers it to the
// others between requests. Not after every request: handing the GVL over
// costs a thread switch, which would halve the rate of tiny requests.
//
// When the thread last (re)took the GVL is kept with the Ruby thread, not
// the OS thread: on Ruby 3.3 and later the threads of a non-main ractor
// may run M:N, several Ruby threads taking turns on one native thread, so
// a C++ thread_local would mix their clocks. It is a Fixnum in the
// thread's (root fiber's) locals, read and written without allocating.
constexpr int64_t kYieldAfterMs = 10;
ID id_gvl_since_ms;

int64_t gvl_since_ms() {
  VALUE v = rb_thread_local_aref(rb_thread_current(), id_gvl_since_ms);
  return FIXNUM_P(v) ? FIX2LONG(v) : 0;
}

void gvl_taken_now() { rb_thread_local_aset(rb_thread_current(), id_gvl_since_ms, LONG2FIX(steady_ms())); }

void share_gvl_between_requests() {
  int64_t since = gvl_since_ms();
  if (since == 0) {
    gvl_taken_now();
  } else if (steady_ms() - since > kYieldAfterMs) {
    rb_thread_schedule();
    gvl_taken_now();
  }
}

// Native.take_one(server_id, slot = nil) -> env Hash, or nil once the
// server's queue is closed and empty. With a slot, the request is recorded
// as that worker thread's current one (see ThreadSlots). Blocks with the GVL released; a request already queued
// is taken without releasing it.
VALUE native_take_one(int argc, VALUE* argv, VALUE) {
  VALUE id, rb_slot;
  rb_scan_args(argc, argv, "11", &id, &rb_slot);
  uint64_t sid = NUM2ULL(id);
  long slot = NIL_P(rb_slot) ? -1 : NUM2LONG(rb_slot);
  share_gvl_between_requests();
  // The handle exists before a request is taken: the queue's reference
  // moves straight into it, so a NoMemoryError (here or while the env is
  // built) leaves the request owned by a handle whose collection answers
  // it, never by nobody.
  VALUE handle = TypedData_Wrap_Struct(cRequest, &request_type, nullptr);
  for (;;) {
    RequestCtx* taken = nullptr;
    bool missing = false, closed = false, waited = false;
    protect([&]() -> VALUE {
      auto server = Registry::instance().find(sid);
      if (!server) {
        missing = true;
        return Qnil;
      }
      RequestQueue& queue = server->queue();
      RequestRef r = queue.try_pop();
      if (r) {
        taken = r.detach();
        RTYPEDDATA_DATA(handle) = taken;
      } else if (queue.drained()) {
        closed = true;
      } else {
        TakeCall call;
        call.queue = &queue;
        // gvl2: a request dequeued while an interrupt arrives is kept,
        // not lost; the interrupt is handled by the next check below.
        without_gvl(call);
        waited = true;
        // Raised by protect once the server reference is gone.
        if (call.failure) std::rethrow_exception(call.failure);
        taken = call.taken;
        RTYPEDDATA_DATA(handle) = taken;
        closed = !taken && queue.drained();
      }
      if (taken && slot >= 0) server->slots().hold(static_cast<size_t>(slot), taken);
      return Qnil;
    });
    if (waited) gvl_taken_now();
    if (missing) rb_raise(eKinoError, "no server with id %llu", static_cast<unsigned long long>(sid));
    if (taken) return build_env(*taken, handle);
    if (closed) return Qnil;
    rb_thread_check_ints();  // Thread#kill, Ractor shutdown: raises or returns
  }
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

// Native.respond(req, status, headers, body_array) -> true, or false when
// the request was already answered (a timeout, a supervisor).
VALUE native_respond(VALUE, VALUE handle, VALUE status, VALUE headers, VALUE body) {
  RequestCtx* req = unwrap(handle);
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
  RequestCtx* req = unwrap(handle);
  int code = check_status(status);
  return with_headers(prepare_headers(headers), [&](std::span<const HeaderView> hv) {
    bool started = start_response(*req, code, hv);
    if (!started) release_body(*req);  // answered already: nobody reads on
    return started;
  });
}

struct WritableCall : Interruptible {
  ResponseSink* sink;
  bool open = true;
  void run() { open = sink->wait_writable(std::chrono::steady_clock::now() + kTick); }
};

// Native.respond_write(req, chunk) -> true, or false once the client is
// gone (stop producing). Waits, without the GVL, while the connection has
// more than its high-water mark of bytes not yet written: a slow reader
// slows the producer instead of growing memory.
VALUE native_respond_write(VALUE, VALUE handle, VALUE chunk) {
  RequestCtx* req = unwrap(handle);
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
  RequestCtx* req = unwrap(handle);
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
  RequestCtx* req = unwrap(handle);
  int code = check_status(status);
  StringValue(text);
  return protect([&]() -> VALUE {
    release_body(*req);
    if (respond_plain(*req, code, {RSTRING_PTR(text), static_cast<size_t>(RSTRING_LEN(text))}, false))
      return Qtrue;
    // Cut the response short only if this thread is the one that started
    // it; if a timeout answered first, the response is not ours to touch.
    if (req->response_streamed()) abort_response(*req);
    return Qfalse;
  });
}

struct BodyReadCall : Interruptible {
  RequestCtx* req;
  char* out;
  size_t max;
  RequestBody::ReadResult result{RequestBody::ReadStatus::Waiting, 0};
  void run() noexcept {
    while (result.status == RequestBody::ReadStatus::Waiting && !interrupted.load(std::memory_order_acquire))
      result = read_body_until(*req, out, max, std::chrono::steady_clock::now() + kTick);
  }
};

constexpr long kMaxRead = 1L << 20;

// Native.input_read(req, max, buffer) -> buffer with 1..max more bytes
// appended, or nil once the body has been read to its end. Waits, without
// the GVL, for bytes that have not arrived yet; raises Kino::InputError
// when the body will not arrive whole (client gone, stalled, too large).
// The first read sends the `100 Continue` an expecting client waits for.
// Appending in place lets Kino::Input fill one String instead of making
// a new one per piece.
VALUE native_input_read(VALUE, VALUE handle, VALUE rb_max, VALUE buf) {
  RequestCtx* req = unwrap(handle);
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
  RequestCtx* req = unwrap(handle);
  if (req->body) req->body->rewind();
  return Qnil;
}

// Request#claimed? — whether some response has been started.
VALUE request_claimed_p(VALUE self) { return unwrap(self)->claimed() ? Qtrue : Qfalse; }

}  // namespace

void init_native_request(VALUE mNative) {
  id_gvl_since_ms = rb_intern("__kino_gvl_since_ms");
  cRequest = rb_define_class_under(mNative, "Request", rb_cObject);
  rb_undef_alloc_func(cRequest);
  rb_define_method(cRequest, "claimed?", RUBY_METHOD_FUNC(request_claimed_p), 0);

  rb_define_module_function(mNative, "take_one", RUBY_METHOD_FUNC(native_take_one), -1);
  rb_define_module_function(mNative, "respond", RUBY_METHOD_FUNC(native_respond), 4);
  rb_define_module_function(mNative, "respond_start", RUBY_METHOD_FUNC(native_respond_start), 3);
  rb_define_module_function(mNative, "respond_write", RUBY_METHOD_FUNC(native_respond_write), 2);
  rb_define_module_function(mNative, "respond_finish", RUBY_METHOD_FUNC(native_respond_finish), 1);
  rb_define_module_function(mNative, "respond_error", RUBY_METHOD_FUNC(native_respond_error), 3);
  rb_define_module_function(mNative, "input_read", RUBY_METHOD_FUNC(native_input_read), 3);
  rb_define_module_function(mNative, "input_rewind", RUBY_METHOD_FUNC(native_input_rewind), 1);
}

}  // namespace kino::binding
