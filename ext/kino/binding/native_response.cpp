// The response unit: Native.respond (a whole response), respond_start,
// respond_write and respond_finish (a streamed one) and respond_error,
// each handing the app's answer to the native responder.
#include <chrono>
#include <cstdlib>
#include <new>
#include <span>
#include <string_view>

#include "core/handoff/byte_lease.hpp"
#include "core/handoff/response_sink.hpp"
#include "core/http1/responder.hpp"
#include "native_request.hpp"
#include "native_seam.hpp"

namespace kino::binding {

namespace {

struct DiscardCall : Interruptible {
  RequestBody* body;
  void run() { body->discard(); }
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

// Lent bodies. A String part of an Array body at least lend_min_bytes long
// is not copied: the I/O thread writes it from the String's own bytes
// (ByteLease). Those bytes must stay where they are, unchanged, until the
// write is done, and the I/O thread can never tell Ruby when that is. So:
//
// - the part is lent as rb_str_new_frozen of it: a frozen String sharing
//   the part's buffer. An app that changes its String afterwards changes a
//   copy (copy on write); the frozen one keeps the bytes the app returned.
// - it is held by a LentBodies object of the ractor that called respond,
//   kept in that ractor's local storage: a String belongs to its ractor,
//   and only that ractor's GC may mark it (per-ractor GC on Ruby 4.1).
//   It marks its Strings with rb_gc_mark, which pins them, so GC.compact
//   cannot move an embedded String's bytes from under a write.
// - the I/O thread returns its loan when the bytes are written (or
//   dropped with the connection): a counter, no call. The ractor lets a
//   String go at its next respond (or lent_bodies) once its lease has no
//   loan out. Threads of one ractor share its LentBodies under its GVL.
//
// A ractor that ends with loans still out (a worker stopped while a slow
// client reads) would free Strings under a write: its LentBodies, freed
// with it, first recalls them (closes their connections, which drops the
// writes) and waits for the loans to come back.
size_t lend_min_bytes = 4096;  // set once by init_native_response
rb_ractor_local_key_t lent_bodies_key;

struct LentBody {
  VALUE string;  // frozen
  ByteLeaseRef lease;
};

class LentBodies {
 public:
  ~LentBodies() {
    for (const auto& b : bodies_)
      if (b.lease->loaned_out()) b.lease->recall();
    auto deadline = std::chrono::steady_clock::now() + kRecallWait;
    for (const auto& b : bodies_) b.lease->wait_returned(deadline);
  }

  void mark() const {
    for (const auto& b : bodies_) rb_gc_mark(b.string);
  }

  // Lets go of every String whose lease has no loan out; returns how many
  // are still held.
  size_t sweep() noexcept {
    for (size_t i = 0; i < bodies_.size();) {
      if (bodies_[i].lease->loaned_out()) {
        ++i;
        continue;
      }
      if (i + 1 != bodies_.size()) bodies_[i] = std::move(bodies_.back());
      bodies_.pop_back();
    }
    return bodies_.size();
  }

  // May throw (bad_alloc): call inside protect.
  void add(VALUE frozen) {
    auto lease = std::allocate_shared<ByteLease>(NativeAllocator<ByteLease>(), bytes_of(frozen));
    bodies_.push_back(LentBody{frozen, std::move(lease)});
  }

  size_t size() const noexcept { return bodies_.size(); }
  const LentBody& operator[](size_t i) const noexcept { return bodies_[i]; }
  size_t memsize() const noexcept { return sizeof(*this) + bodies_.capacity() * sizeof(LentBody); }

 private:
  // A recalled write ends as soon as an I/O thread closes its connection;
  // this bounds the wait should none run any more (a server stopped).
  static constexpr auto kRecallWait = std::chrono::seconds(10);
  NativeVector<LentBody> bodies_;
};

// Not freed immediately: the free may wait for recalled loans, which must
// not happen inside a GC pass.
const rb_data_type_t lent_bodies_type = {
    "Kino::Native::LentBodies",
    {[](void* p) {
       if (p) static_cast<LentBodies*>(p)->mark();
     },
     [](void* p) { delete static_cast<LentBodies*>(p); },
     [](const void* p) -> size_t { return p ? static_cast<const LentBodies*>(p)->memsize() : 0; },
     nullptr,
     {nullptr}},
    nullptr,
    nullptr,
    0,
};

// This ractor's LentBodies, made on first use; null if it has none and
// `make` is false.
LentBodies* lent_bodies(bool make) {
  VALUE holder = Qnil;
  if (rb_ractor_local_storage_value_lookup(lent_bodies_key, &holder) && !NIL_P(holder))
    return static_cast<LentBodies*>(DATA_PTR(holder));
  if (!make) return nullptr;
  // A hidden object (no class): nothing in Ruby can reach it.
  holder = TypedData_Wrap_Struct(0, &lent_bodies_type, nullptr);
  auto* bodies = new (std::nothrow) LentBodies();
  if (!bodies) rb_raise(rb_eNoMemError, "kino: native allocation failed");
  DATA_PTR(holder) = bodies;
  rb_ractor_local_storage_value_set(lent_bodies_key, holder);
  return bodies;
}

bool lendable(VALUE part) { return static_cast<size_t>(RSTRING_LEN(part)) >= lend_min_bytes; }

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
  long lent = 0;
  for (long i = 0; i < parts; ++i) lent += lendable(RARRAY_AREF(body, i)) ? 1 : 0;
  LentBodies* bodies = lent_bodies(lent > 0);
  size_t first = 0;
  if (bodies) {
    bodies->sweep();
    first = bodies->size();
  }
  // The frozen Strings join this ractor's LentBodies as they are made, so
  // a GC that the next one's allocation runs marks them already.
  for (long i = 0; lent > 0 && i < parts; ++i) {
    VALUE part = RARRAY_AREF(body, i);
    if (!lendable(part)) continue;
    VALUE frozen = rb_str_new_frozen(part);
    protect([&]() -> VALUE {
      bodies->add(frozen);
      return Qnil;
    });
    RB_GC_GUARD(frozen);
  }
  return with_headers(prepared, [&](std::span<const HeaderView> hv) {
    NativeVector<std::string_view> bv;
    bv.reserve(static_cast<size_t>(parts));
    NativeVector<ByteLeaseRef> leases;
    if (lent > 0) leases.resize(static_cast<size_t>(parts));
    size_t next = first;
    for (long i = 0; i < parts; ++i) {
      VALUE part = RARRAY_AREF(body, i);
      if (lent > 0 && lendable(part)) {
        const LentBody& b = (*bodies)[next++];
        bv.push_back(b.lease->bytes());
        leases[static_cast<size_t>(i)] = b.lease;
      } else {
        bv.push_back(bytes_of(part));
      }
    }
    bool sent = respond_lent(*req, code, hv, bv, leases);
    release_body(*req);
    return sent;
  });
}

// Native.lent_bodies -> Integer: how many Strings this ractor still holds
// for writes not yet done (after letting go of the others).
VALUE native_lent_bodies(VALUE) {
  LentBodies* bodies = lent_bodies(false);
  return SIZET2NUM(bodies ? bodies->sweep() : 0);
}

void init_native_response() {
  lent_bodies_key = rb_ractor_local_storage_value_newkey();
  // For measuring where lending pays (doc/benchmarks.md): the smallest
  // part lent; a huge value turns lending off.
  if (const char* min = std::getenv("KINO_LEND_MIN_BYTES"); min && *min)
    lend_min_bytes = static_cast<size_t>(std::strtoull(min, nullptr, 10));
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
