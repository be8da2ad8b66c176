// The request unit of Kino::Native: the Kino::Native::Request handle,
// take_one (block for the next request) and the Rack env it returns, built
// inside the worker that will use it.
//
// Every env key, and every value that repeats across requests (methods,
// protocols, common hosts and peers), is a frozen String created once and
// shared by all ractors: frozen strings are the one kind of object ractors
// may share freely, and a frozen String key goes into a Hash as it is. On
// Ruby 3.1 allocation does not scale across ractors, so each object not
// allocated per request is parallelism kept.
//
// Every such shared object is created on the main ractor and marked
// shareable (rb_ractor_make_shareable) when it is made, not found to be
// shareable later by a walk. Ruby 4.1 collects each ractor's objects on
// their own: an object every ractor reaches must belong to none of the
// worker ractors, which come and go (a crashed worker is replaced).
#include "native_request.hpp"

#include <ruby/ractor.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <functional>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/util/steady_clock.hpp"
#include "native_input.hpp"
#include "native_seam.hpp"

namespace kino::binding {

namespace {

// A String every ractor may use: frozen, shareable, never collected.
// Main ractor only.
VALUE shared_string(std::string_view s) {
  return shareable_forever(rb_str_new(s.data(), static_cast<long>(s.size())));
}

// Set to true for the main ractor in Init_, unset in every other one.
rb_ractor_local_key_t main_ractor_key;

bool on_main_ractor() {
  VALUE v = Qfalse;
  return rb_ractor_local_storage_value_lookup(main_ractor_key, &v) && RTEST(v);
}

struct EnvStrings {
  VALUE request_method, script_name, path_info, query_string, server_name, server_port, server_protocol,
      remote_addr, rack_url_scheme, rack_input, rack_errors, rack_multithread, rack_multiprocess,
      rack_run_once, rack_hijack_p, kino_request, https_key;
  VALUE http, https, on, http_1_1, http_1_0, empty, localhost;
  struct HeaderKey {
    VALUE key;      // "HTTP_ACCEPT" as a frozen String
    bool interned;  // its values come from header_value_cache
  };
  std::unordered_map<std::string_view, HeaderKey> headers;
  std::unordered_map<std::string_view, VALUE> methods;  // "GET" -> frozen value
};

// Written once in Init_ on the main ractor, read-only afterwards.
EnvStrings* strings = nullptr;

// Request header names common enough to deserve a frozen key.
constexpr std::string_view kCommonHeaders[] = {
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "HTTP_ACCEPT",
    "HTTP_ACCEPT_CHARSET",
    "HTTP_ACCEPT_ENCODING",
    "HTTP_ACCEPT_LANGUAGE",
    "HTTP_ACCESS_CONTROL_REQUEST_HEADERS",
    "HTTP_ACCESS_CONTROL_REQUEST_METHOD",
    "HTTP_AUTHORIZATION",
    "HTTP_CACHE_CONTROL",
    "HTTP_CONNECTION",
    "HTTP_COOKIE",
    "HTTP_DNT",
    "HTTP_EXPECT",
    "HTTP_FORWARDED",
    "HTTP_FROM",
    "HTTP_HOST",
    "HTTP_IF_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_RANGE",
    "HTTP_IF_UNMODIFIED_SINCE",
    "HTTP_KEEP_ALIVE",
    "HTTP_ORIGIN",
    "HTTP_PRAGMA",
    "HTTP_PRIORITY",
    "HTTP_PROXY_AUTHORIZATION",
    "HTTP_RANGE",
    "HTTP_REFERER",
    "HTTP_SEC_CH_UA",
    "HTTP_SEC_CH_UA_MOBILE",
    "HTTP_SEC_CH_UA_PLATFORM",
    "HTTP_SEC_FETCH_DEST",
    "HTTP_SEC_FETCH_MODE",
    "HTTP_SEC_FETCH_SITE",
    "HTTP_SEC_FETCH_USER",
    "HTTP_TE",
    "HTTP_TRAILER",
    "HTTP_TRANSFER_ENCODING",
    "HTTP_UPGRADE",
    "HTTP_UPGRADE_INSECURE_REQUESTS",
    "HTTP_USER_AGENT",
    "HTTP_VIA",
    "HTTP_X_CSRF_TOKEN",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_REAL_IP",
    "HTTP_X_REQUEST_ID",
    "HTTP_X_REQUESTED_WITH",
};

// Request headers whose values are few and repeat from request to request
// (one per browser version, per client library, per site), so each value
// is one frozen String shared by every request and ractor, not a new one
// a request: with `intern_header_values` only, since an app that changes
// such a value in place (force_encoding, <<), as it may on Puma, would
// get a FrozenError. Never a header that carries a credential, a token, or
// something unique to a request or a user (Cookie, Authorization,
// Referer, X-Request-Id, If-None-Match, X-Forwarded-For): its value would
// stay in memory for the life of the process and fill the cache with
// values seen once.
constexpr std::string_view kInternedHeaders[] = {
    "HTTP_ACCEPT",
    "HTTP_ACCEPT_CHARSET",
    "HTTP_ACCEPT_ENCODING",
    "HTTP_ACCEPT_LANGUAGE",
    "HTTP_CACHE_CONTROL",
    "HTTP_CONNECTION",
    "HTTP_DNT",
    "HTTP_HOST",
    "HTTP_KEEP_ALIVE",
    "HTTP_ORIGIN",
    "HTTP_PRAGMA",
    "HTTP_PRIORITY",
    "HTTP_SEC_CH_UA",
    "HTTP_SEC_CH_UA_MOBILE",
    "HTTP_SEC_CH_UA_PLATFORM",
    "HTTP_SEC_FETCH_DEST",
    "HTTP_SEC_FETCH_MODE",
    "HTTP_SEC_FETCH_SITE",
    "HTTP_SEC_FETCH_USER",
    "HTTP_TE",
    "HTTP_UPGRADE_INSECURE_REQUESTS",
    "HTTP_USER_AGENT",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_REQUESTED_WITH",
};

// Bounds of the header value cache: a user agent is about 120 bytes, so
// 256 values of up to 256 bytes hold what a site's clients send, in at
// most about 100 KiB, never freed.
constexpr size_t kInternedValues = 256;
constexpr size_t kInternedValueLength = 256;

constexpr std::string_view kMethods[] = {"GET",     "HEAD",  "POST",  "PUT",     "DELETE",
                                         "OPTIONS", "PATCH", "TRACE", "PROPFIND"};

// Hosts, ports, peer addresses and the common header values repeat, but
// they come from clients, so each cache is bounded: the first `limit`
// distinct values no longer than `max_length` are kept (frozen, for every
// ractor), later ones are allocated per request.
//
// Readers never lock, never allocate on a hit and never write shared
// memory: every worker of every ractor reads these tables on every
// request, and a mutex (or a reference count) they all touch is a cache
// line bounced between cores, and a lock a worker may have to wait for
// in the middle of building an env. The table is an open-addressed array of
// atomic pointers to entries that, once published, never change and are
// never freed (at most `limit` of them): a reader sees an entry whole or
// not at all, and probes with the request's bytes as they are (no
// std::string made for the lookup).
//
// Values are created on the main ractor only. In :threaded mode the
// workers are main-ractor threads and a miss is cached at once. A worker
// ractor's miss is allocated for that request and remembered (the bytes
// only, if the list's lock is free at that moment: a reader never waits
// for it); the main ractor creates the shared value at its next
// share_wanted(), which the log pump runs every tenth of a second, and
// requests after that use it.
class ValueCache {
 public:
  ValueCache(size_t limit, size_t max_length)
      : limit_(limit), max_length_(max_length), slots_(std::bit_ceil(2 * limit)) {}

  VALUE get(std::string_view bytes) {
    size_t hash = std::hash<std::string_view>{}(bytes);
    if (const Entry* e = find(bytes, hash)) return e->value;
    if (bytes.size() > max_length_ || count_.load(std::memory_order_relaxed) >= limit_) return Qnil;
    if (on_main_ractor()) return insert(bytes, hash);
    remember(bytes);
    return Qnil;
  }

  // Main ractor: creates the values worker ractors asked for. The bytes are
  // moved to the heap first (with_held): creating a value may raise.
  void share_wanted() {
    if (!on_main_ractor()) return;
    auto* wanted = new (std::nothrow) std::vector<std::string>();
    if (!wanted) return;
    {
      std::lock_guard<std::mutex> lock(wanted_mu_);
      wanted->swap(wanted_);
    }
    with_held(wanted, [this](const std::vector<std::string>& all) -> VALUE {
      for (const auto& bytes : all) insert(bytes, std::hash<std::string_view>{}(bytes));
      return Qnil;
    });
  }

 private:
  struct Entry {
    size_t hash;
    VALUE value;
    std::string bytes;
  };

  const Entry* find(std::string_view bytes, size_t hash) const noexcept {
    size_t mask = slots_.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      const Entry* e = slots_[i].load(std::memory_order_acquire);
      if (!e) return nullptr;  // the table is never full: a probe ends
      if (e->hash == hash && e->bytes == bytes) return e;
    }
  }

  // A worker ractor's miss, for share_wanted. Skipped when the lock is
  // taken (the next request with these bytes asks again) or memory is short.
  void remember(std::string_view bytes) noexcept {
    std::unique_lock<std::mutex> lock(wanted_mu_, std::try_to_lock);
    if (!lock.owns_lock()) return;
    if (count_.load(std::memory_order_relaxed) + wanted_.size() >= limit_) return;
    if (std::find(wanted_.begin(), wanted_.end(), bytes) != wanted_.end()) return;
    try {
      wanted_.emplace_back(bytes);
    } catch (const std::bad_alloc&) {
    }
  }

  // Main ractor. The String is made before the table's lock is taken:
  // making it may run a GC, which waits for every ractor to reach a safe
  // point, and one blocked on this mutex never would. A string made by
  // the loser of a race (two :threaded workers missing at once) stays
  // registered: at most one per race, bounded by the limit.
  VALUE insert(std::string_view bytes, size_t hash) {
    VALUE v = shared_string(bytes);
    std::lock_guard<std::mutex> lock(insert_mu_);
    if (const Entry* e = find(bytes, hash)) return e->value;
    if (count_.load(std::memory_order_relaxed) >= limit_) return v;
    Entry* e = new (std::nothrow) Entry{hash, v, {}};
    if (!e) return v;  // not cached, still correct; and no C++ exception into Ruby
    try {
      e->bytes.assign(bytes);
    } catch (const std::bad_alloc&) {
      delete e;
      return v;
    }
    size_t mask = slots_.size() - 1;
    size_t i = hash & mask;
    while (slots_[i].load(std::memory_order_relaxed)) i = (i + 1) & mask;
    slots_[i].store(e, std::memory_order_release);
    count_.fetch_add(1, std::memory_order_relaxed);
    return v;
  }

  const size_t limit_;
  const size_t max_length_;
  // A power of two, twice the limit: probes stay short and always end at
  // an empty slot.
  std::vector<std::atomic<const Entry*>> slots_;
  std::atomic<size_t> count_{0};
  std::mutex insert_mu_;  // main ractor's writers only
  std::mutex wanted_mu_;
  std::vector<std::string> wanted_;  // worker ractors' misses, for share_wanted
};

ValueCache* host_cache = nullptr;
ValueCache* port_cache = nullptr;
ValueCache* peer_cache = nullptr;
// Values of the headers EnvStrings marks as interned (see kInternedHeaders).
ValueCache* header_value_cache = nullptr;

VALUE str(const Bytes& b) { return rb_str_new(b.data(), static_cast<long>(b.size())); }

VALUE cached(ValueCache* cache, std::string_view bytes) {
  VALUE v = cache->get(bytes);
  return NIL_P(v) ? rb_str_new(bytes.data(), static_cast<long>(bytes.size())) : v;
}

VALUE new_hash() {
#ifdef HAVE_RB_HASH_NEW_CAPA
  return rb_hash_new_capa(24);
#else
  return rb_hash_new();
#endif
}

// The Rack env Hash for `req`, with `handle` (the Kino::Native::Request)
// stored under "kino.request".
VALUE build_env(const RequestCtx& req, VALUE handle, bool intern_header_values) {
  const EnvStrings& s = *strings;
  VALUE env = new_hash();

  auto m = s.methods.find(view(req.method));
  rb_hash_aset(env, s.request_method, m != s.methods.end() ? m->second : str(req.method));
  rb_hash_aset(env, s.script_name, s.empty);
  rb_hash_aset(env, s.path_info, str(req.path));
  rb_hash_aset(env, s.query_string, req.query.empty() ? s.empty : str(req.query));
  rb_hash_aset(env, s.server_name,
               req.server_name.empty() ? s.localhost : cached(host_cache, view(req.server_name)));
  if (!req.server_port.empty()) {
    rb_hash_aset(env, s.server_port, cached(port_cache, view(req.server_port)));
  } else if (!req.server_name.empty()) {
    // A Host without a port means the scheme's default port (RFC 9110
    // 4.2.1); the port we accepted on may be behind a proxy's.
    rb_hash_aset(env, s.server_port, cached(port_cache, req.https ? "443" : "80"));
  } else {
    // No Host at all (HTTP/1.0): the port the client connected to.
    char buf[8];
    int n = snprintf(buf, sizeof buf, "%u",
                     static_cast<unsigned>(req.local_port ? req.local_port : (req.https ? 443 : 80)));
    rb_hash_aset(env, s.server_port, cached(port_cache, std::string_view(buf, static_cast<size_t>(n))));
  }
  rb_hash_aset(env, s.server_protocol, req.http_minor == 0 ? s.http_1_0 : s.http_1_1);
  rb_hash_aset(env, s.remote_addr, cached(peer_cache, view(req.peer_address)));
  for (const auto& h : req.headers) {
    auto k = s.headers.find(view(h.key));
    if (k == s.headers.end()) {
      rb_hash_aset(env, rb_obj_freeze(str(h.key)), str(h.value));
    } else {
      const auto& [key, interned] = k->second;
      bool shared = interned && intern_header_values;
      rb_hash_aset(env, key, shared ? cached(header_value_cache, view(h.value)) : str(h.value));
    }
  }
  if (req.https) {
    rb_hash_aset(env, s.rack_url_scheme, s.https);
    rb_hash_aset(env, s.https_key, s.on);
  } else {
    rb_hash_aset(env, s.rack_url_scheme, s.http);
  }
  rb_hash_aset(env, s.rack_input, rack_input(req, handle));
  // The ractor's own $stderr, read without a global variable lookup.
  rb_hash_aset(env, s.rack_errors, rb_ractor_stderr());
  rb_hash_aset(env, s.rack_multithread, Qtrue);
  rb_hash_aset(env, s.rack_multiprocess, Qfalse);
  rb_hash_aset(env, s.rack_run_once, Qfalse);
  rb_hash_aset(env, s.rack_hijack_p, Qfalse);
  rb_hash_aset(env, s.kino_request, handle);
  return env;
}

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
    "Kino::Native::Request",     {nullptr, request_free, request_size, nullptr, {nullptr}}, nullptr, nullptr,
    RUBY_TYPED_FREE_IMMEDIATELY,
};

// `batch N`: the requests a Taker took beyond the one it serves, in
// queue order. They are held by the worker's slot (ThreadSlots), served
// before the queue is visited again, and go back to it
// (RequestQueue::requeue) when the taker closes or is collected with some
// still held, or when the supervisor sets the worker aside or finds it
// dead: a worker that ends or sticks never keeps one from the others, and
// never has one answered 500 that its app did not start. A taker without
// a slot takes one request a visit.
constexpr size_t kMaxBatch = ThreadSlots::kMaxHeld + 1;  // the directive's bound
struct Batch {
  size_t size = 1;  // N; 1 takes one request a visit, as take_one does
  ThreadSlots* slots = nullptr;
  RequestQueue* queue = nullptr;
  size_t slot = 0;

  bool holds() const noexcept { return size > 1 && slots->holds_batch(slot); }

  // Taken only when nothing is held, so the slot has room for all of
  // them; should it not, the rest go back rather than be lost.
  void hold(RequestRef* refs, size_t n) noexcept {
    size_t added = slots->hold_batch(slot, refs, n);
    if (added < n) queue->requeue(refs + added, n - added);
  }

  // The next held request that is still to be served, its reference the
  // caller's; null when none is. One answered while it was held (its 504
  // from request_timeout, a stop) is let go: the app never runs it.
  RequestCtx* next() noexcept {
    while (RequestRef r = slots->next_held(slot)) {
      if (!r->claimed()) {
        // Its wait in the queue lasted until now, when it starts.
        r->mark_taken(steady_ns());
        return r.detach();
      }
    }
    return nullptr;
  }

  // Back to the queue, in front, for another worker.
  void give_back(Server& server) noexcept {
    if (size > 1) server.requeue_held(slot, 1);
  }
};

// One visit to the queue that takes up to `batch.size` requests: the
// first is returned, the others held. `wait`: block up to a tick for the
// first (the GVL released).
RequestRef take_batch(RequestQueue& queue, Batch& batch, bool wait) {
  RequestRef got[kMaxBatch];
  size_t n = wait ? queue.pop_many_for(got, batch.size, kWaitTick) : queue.try_pop_many(got, batch.size);
  if (n > 1) batch.hold(got + 1, n - 1);
  return std::move(got[0]);
}

// lanes true (core/handoff/lanes): a parked worker also steals from its
// siblings' lanes on every tick, so the tick is short: it bounds how long
// a request waits behind a slow one.
constexpr auto kLaneTick = std::chrono::milliseconds(5);

// The wait for the next request, without the GVL, a tick at a time so
// that an interrupt is seen: `wait_tick()` returns a request, or null
// after at most a tick; `drained()` says none will come. The same for the
// shared queue (a batch or one at a time) and for lanes.
template <class WaitTick, class Drained>
struct TakeCall : Interruptible {
  WaitTick wait_tick;
  Drained drained;
  RequestCtx* taken = nullptr;
  TakeCall(WaitTick w, Drained d) : wait_tick(w), drained(d) {}
  void run() {
    while (!interrupted.load(std::memory_order_acquire)) {
      if (RequestRef r = wait_tick()) {
        taken = r.detach();
        return;
      }
      if (drained()) return;
    }
  }
};

// take_next's take, inside its `protect`: a request ready now
// (`try_take()`, with the GVL held), else nothing once `drained()`, else
// the wait. `closed`: no request will come.
template <class TryTake, class WaitTick, class Drained>
void take_or_wait(TryTake try_take, WaitTick wait_tick, Drained drained, VALUE handle, RequestCtx*& taken,
                  bool& closed, bool& waited) {
  if (RequestRef r = try_take()) {
    taken = r.detach();
  } else if (drained()) {
    closed = true;
    return;
  } else {
    TakeCall<WaitTick, Drained> call(wait_tick, drained);
    // gvl2: a request dequeued while an interrupt arrives is kept, not
    // lost; the interrupt is handled by take_next's next check.
    without_gvl(call);
    waited = true;
    // Raised by protect once the server reference is gone.
    if (call.failure) std::rethrow_exception(call.failure);
    taken = call.taken;
    closed = !taken && drained();
  }
  RTYPEDDATA_DATA(handle) = taken;
}

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
// a C++ thread_local would mix their clocks. A Taker, made for one worker
// thread, holds it; a bare take_one keeps it as a Fixnum in the thread's
// (root fiber's) locals, read and written without allocating.
constexpr int64_t kYieldAfterMs = 10;
ID id_gvl_since_ms;
ID id_close, id_take, id_unanswered;

// `since`: when the GVL was last taken, in steady_ms(); 0 before the
// thread's first take.
void share_gvl_between_requests(int64_t& since) {
  if (since == 0) {
    since = steady_ms();
  } else if (steady_ms() - since > kYieldAfterMs) {
    rb_thread_schedule();
    since = steady_ms();
  }
}

// The next request's env, or nil once the queue is closed and empty.
// `with_server(f)` runs `f(Server&)` inside `protect`, or says there is no
// server (returns false). Blocks with the GVL released; a request already
// queued is taken without releasing it.
// `batch`: a Taker's held requests (served first) and its N; null for
// take_one.
template <class WithServer>
VALUE take_next(const WithServer& with_server, long slot, int64_t& gvl_since, bool& missing, Batch* batch) {
  share_gvl_between_requests(gvl_since);
  // The handle exists before a request is taken: the queue's reference
  // moves straight into it, so a NoMemoryError (here or while the env is
  // built) leaves the request owned by a handle whose collection answers
  // it, never by nobody.
  VALUE handle = TypedData_Wrap_Struct(cRequest, &request_type, nullptr);
  for (;;) {
    RequestCtx* taken = nullptr;
    bool closed = false, waited = false, intern = false;
    protect([&]() -> VALUE {
      missing = !with_server([&](Server& server) {
        intern = server.config().intern_header_values;
        RequestQueue& queue = server.queue();
        // Requests a batch holds come first; with lanes, a batch is never
        // taken (a lane holds at most a few requests anyway).
        RequestCtx* held = batch && batch->holds() ? batch->next() : nullptr;
        Lanes* lanes = !held && slot >= 0 ? server.lanes() : nullptr;
        if (held) {
          taken = held;
          RTYPEDDATA_DATA(handle) = taken;
        } else if (lanes) {
          // The worker's own lane, the shared queue, a sibling's lane, then
          // the wait.
          auto own = static_cast<size_t>(slot);
          take_or_wait([&] { return lanes->try_take(own); }, [&] { return lanes->take_for(own, kLaneTick); },
                       [&] { return lanes->drained(); }, handle, taken, closed, waited);
        } else if (batch && batch->size > 1) {
          take_or_wait([&] { return take_batch(queue, *batch, false); },
                       [&] { return take_batch(queue, *batch, true); }, [&] { return queue.drained(); },
                       handle, taken, closed, waited);
        } else {
          take_or_wait([&] { return queue.try_pop(); }, [&] { return queue.pop_for(kWaitTick); },
                       [&] { return queue.drained(); }, handle, taken, closed, waited);
        }
        if (taken && slot >= 0) server.slots().hold(static_cast<size_t>(slot), taken);
      });
      return Qnil;
    });
    if (waited) gvl_since = steady_ms();
    if (missing) return Qnil;
    if (taken) return build_env(*taken, handle, intern);
    if (closed) return Qnil;
    rb_thread_check_ints();  // Thread#kill, Ractor shutdown: raises or returns
  }
}

// A Kino::Native::Taker: one worker thread's hold on its server, made
// when the thread starts serving and closed when it stops. Taking through
// it finds the server without the registry (a mutex every worker of every
// ractor would take on every request) and without copying a shared_ptr
// (a reference count they would all write): the taker's reference keeps
// the server alive, so a plain pointer does.
//
// The taker never leaves the thread's ractor. `pending` is an exception a
// respond_and_take met after its response was out (see there), raised by
// the next take.
struct Taker {
  std::shared_ptr<Server> server;
  long slot = -1;
  Batch batch;
  int64_t gvl_since = 0;
  bool busy = false;  // inside a take: close must wait for it to end
  VALUE pending = Qnil;
};

VALUE cTaker = Qnil;

void taker_mark(void* p) { rb_gc_mark(static_cast<Taker*>(p)->pending); }

// A taker collected unclosed gives back what it held, as close does.
void taker_free(void* p) {
  auto* t = static_cast<Taker*>(p);
  if (t->server) t->batch.give_back(*t->server);
  delete t;
}

size_t taker_size(const void*) { return sizeof(Taker); }

// Not freed immediately: dropping the last reference to a server that was
// never stopped stops it, which must not happen inside a GC.
const rb_data_type_t taker_type = {
    "Kino::Native::Taker", {taker_mark, taker_free, taker_size, nullptr, {nullptr}}, nullptr, nullptr, 0,
};

Taker* unwrap_taker(VALUE self) {
  auto* t = static_cast<Taker*>(rb_check_typeddata(self, &taker_type));
  if (!t || !t->server) rb_raise(eKinoError, "the taker is closed");
  if (t->busy) rb_raise(eKinoError, "the taker is in use by another thread");
  return t;
}

// Taker#take's work; `t` is unwrapped. A pending exception is raised
// first.
VALUE taker_take_next(Taker* t) {
  if (!NIL_P(t->pending)) {
    VALUE error = t->pending;
    t->pending = Qnil;
    rb_exc_raise(error);
  }
  Server* server = t->server.get();
  bool missing = false;
  t->busy = true;
  struct Take {
    Taker* t;
    Server* server;
    bool* missing;
  } take{t, server, &missing};
  // busy is cleared on every path, a raise included.
  return rb_ensure(
      [](VALUE arg) -> VALUE {
        auto* k = reinterpret_cast<Take*>(arg);
        Server* server = k->server;
        auto with_server = [server](auto&& f) {
          f(*server);
          return true;
        };
        return take_next(with_server, k->t->slot, k->t->gvl_since, *k->missing, &k->t->batch);
      },
      reinterpret_cast<VALUE>(&take),
      [](VALUE arg) -> VALUE {
        reinterpret_cast<Take*>(arg)->t->busy = false;
        return Qnil;
      },
      reinterpret_cast<VALUE>(&take));
}

}  // namespace

// Native.take_one(server_id, slot = nil) -> env Hash, or nil once the
// server's queue is closed and empty. With a slot, the request is recorded
// as that worker thread's current one (see ThreadSlots). Blocks with the
// GVL released; a request already queued is taken without releasing it.
// Finds the server in the registry on every call: a worker serving many
// requests makes a Taker instead.
VALUE native_take_one(int argc, VALUE* argv, VALUE) {
  VALUE id, rb_slot;
  rb_scan_args(argc, argv, "11", &id, &rb_slot);
  uint64_t sid = NUM2ULL(id);
  long slot = NIL_P(rb_slot) ? -1 : NUM2LONG(rb_slot);
  VALUE since = rb_thread_local_aref(rb_thread_current(), id_gvl_since_ms);
  int64_t gvl_since = FIXNUM_P(since) ? FIX2LONG(since) : 0;
  bool missing = false;
  // The server is found anew for each wait, and its reference dropped
  // inside `protect`, before anything may raise.
  auto with_server = [sid](auto&& f) {
    auto server = Registry::instance().find(sid);
    if (!server) return false;
    f(*server);
    return true;
  };
  // A raise inside loses the clock's update, which only delays a yield.
  VALUE env = take_next(with_server, slot, gvl_since, missing, nullptr);
  rb_thread_local_aset(rb_thread_current(), id_gvl_since_ms, LONG2FIX(gvl_since));
  if (missing) raise_no_server(sid);
  return env;
}

// Native.taker(server_id, slot = nil) -> Kino::Native::Taker, for one
// worker thread, in its own ractor. Raises Kino::Error for an unknown id.
VALUE native_taker(int argc, VALUE* argv, VALUE) {
  VALUE id, rb_slot;
  rb_scan_args(argc, argv, "11", &id, &rb_slot);
  uint64_t sid = NUM2ULL(id);
  long slot = NIL_P(rb_slot) ? -1 : NUM2LONG(rb_slot);
  auto* t = new (std::nothrow) Taker();
  if (!t) rb_raise(rb_eNoMemError, "kino: native allocation failed");
  t->slot = slot;
  // Wrapped at once, so a raise below frees it with the object.
  VALUE self = TypedData_Wrap_Struct(cTaker, &taker_type, t);
  protect([&]() -> VALUE {
    t->server = find_server(sid);
    // A batch is held by the worker's slot: none without one.
    if (slot >= 0 && static_cast<size_t>(slot) < t->server->slots().size()) {
      t->batch.size =
          static_cast<size_t>(std::clamp(t->server->config().batch, 1, static_cast<int>(kMaxBatch)));
      t->batch.slots = &t->server->slots();
      t->batch.queue = &t->server->queue();
      t->batch.slot = static_cast<size_t>(slot);
    }
    return Qnil;
  });
  return self;
}

// Taker#take -> env Hash, or nil once the server's queue is closed and
// empty: take_one without the registry.
VALUE taker_take(VALUE self) { return taker_take_next(unwrap_taker(self)); }

// Taker#respond_and_take(req, status, headers, body) -> env, nil,
// :take or :unanswered. Answers `req` as Native.respond does, then takes
// the next request as Taker#take does: one native call a request where
// there were two.
//
// Only a plain answer goes this way: a status from 100 to 999, a Hash of
// headers, and a body that is an Array (not a subclass, no singleton
// methods) with no `close`. For anything else nothing is done and
// :unanswered is returned, so the caller answers (and validates) as it
// always did; deciding here costs the caller no Ruby method calls.
//
// A failure to answer (a TypeError for a body element that is no String,
// an app's to_s raising) is raised before anything is taken, as respond
// raises it. A failure of the take that follows, with the answer already
// out, is not raised here: the caller would take it for the answer's.
// It is kept, :take is returned, and the caller's next take raises it.
VALUE taker_respond_and_take(VALUE self, VALUE handle, VALUE status, VALUE headers, VALUE body) {
  Taker* t = unwrap_taker(self);
  bool plain = RB_TYPE_P(body, T_ARRAY) && RBASIC_CLASS(body) == rb_cArray && RB_TYPE_P(headers, T_HASH) &&
               FIXNUM_P(status) && FIX2LONG(status) >= 100 && FIX2LONG(status) <= 999 &&
               !rb_respond_to(body, id_close);
  if (!plain) return ID2SYM(id_unanswered);
  respond_array(handle, status, headers, body);
  int state = 0;
  VALUE env =
      rb_protect([](VALUE taker) -> VALUE { return taker_take_next(reinterpret_cast<Taker*>(taker)); },
                 reinterpret_cast<VALUE>(t), &state);
  if (!state) return env;
  VALUE error = rb_errinfo();
  // Only an exception is kept; a kill or a throw goes on at once.
  if (NIL_P(error) || !rb_obj_is_kind_of(error, rb_eException)) rb_jump_tag(state);
  rb_set_errinfo(Qnil);
  t->pending = error;
  return ID2SYM(id_take);
}

// Taker#close -> nil: gives back the requests it held and not started
// (`batch`), for other workers, and lets go of the server. Taking
// afterwards raises.
VALUE taker_close(VALUE self) {
  auto* t = static_cast<Taker*>(rb_check_typeddata(self, &taker_type));
  if (t->busy) rb_raise(eKinoError, "the taker is in use by another thread");
  if (t->server) t->batch.give_back(*t->server);
  int raised = 0;
  // Dropped without the GVL: when the registry let go first, this is the
  // last reference, and freeing the server joins what is left of it.
  struct DropCall : Interruptible {
    std::shared_ptr<Server> server;
    void run() { server.reset(); }
  };
  protect([&]() -> VALUE {
    // A thread that stops taking (killed, or its loop ended) leaves its
    // lane's requests to the others.
    if (Lanes* lanes = t->server ? t->server->lanes() : nullptr; lanes && t->slot >= 0)
      lanes->evict(static_cast<size_t>(t->slot), 1);
    DropCall call;
    call.server = std::move(t->server);
    // Not run (an interrupt that raises came first): the reference goes
    // with `call`, with the GVL held.
    raised = without_gvl_until_run(call);
    call.failure = nullptr;  // a server's destructor does not throw
    return Qnil;
  });
  t->pending = Qnil;
  if (raised) rb_jump_tag(raised);
  return Qnil;
}

// Request#claimed?: whether some response has been started.
VALUE request_claimed_p(VALUE self) { return unwrap_request(self)->claimed() ? Qtrue : Qfalse; }

RequestCtx* unwrap_request(VALUE handle) {
  auto* r = static_cast<RequestCtx*>(rb_check_typeddata(handle, &request_type));
  if (!r) rb_raise(eKinoError, "request handle is empty");
  return r;
}

void share_wanted_env_values() {
  host_cache->share_wanted();
  port_cache->share_wanted();
  peer_cache->share_wanted();
  header_value_cache->share_wanted();
}

void init_native_request(VALUE mNative) {
  auto* s = new EnvStrings();
  s->request_method = shared_string("REQUEST_METHOD");
  s->script_name = shared_string("SCRIPT_NAME");
  s->path_info = shared_string("PATH_INFO");
  s->query_string = shared_string("QUERY_STRING");
  s->server_name = shared_string("SERVER_NAME");
  s->server_port = shared_string("SERVER_PORT");
  s->server_protocol = shared_string("SERVER_PROTOCOL");
  s->remote_addr = shared_string("REMOTE_ADDR");
  s->rack_url_scheme = shared_string("rack.url_scheme");
  s->rack_input = shared_string("rack.input");
  s->rack_errors = shared_string("rack.errors");
  s->rack_multithread = shared_string("rack.multithread");
  s->rack_multiprocess = shared_string("rack.multiprocess");
  s->rack_run_once = shared_string("rack.run_once");
  s->rack_hijack_p = shared_string("rack.hijack?");
  s->kino_request = shared_string("kino.request");
  s->http = shared_string("http");
  s->https = shared_string("https");
  s->https_key = shared_string("HTTPS");
  s->on = shared_string("on");
  s->http_1_1 = shared_string("HTTP/1.1");
  s->http_1_0 = shared_string("HTTP/1.0");
  s->empty = shared_string("");
  s->localhost = shared_string("localhost");
  for (auto name : kCommonHeaders) {
    bool interned = std::find(std::begin(kInternedHeaders), std::end(kInternedHeaders), name) !=
                    std::end(kInternedHeaders);
    s->headers.emplace(name, EnvStrings::HeaderKey{shared_string(name), interned});
  }
  for (auto name : kMethods) s->methods.emplace(name, shared_string(name));
  strings = s;
  main_ractor_key = rb_ractor_local_storage_value_newkey();
  rb_ractor_local_storage_value_set(main_ractor_key, Qtrue);
  host_cache = new ValueCache(64, 255);
  port_cache = new ValueCache(64, 5);
  peer_cache = new ValueCache(64, 64);
  header_value_cache = new ValueCache(kInternedValues, kInternedValueLength);
  // What nearly every server sees, shared from the first request on.
  for (auto host : {"localhost", "127.0.0.1"}) host_cache->get(host);
  for (auto port : {"80", "443"}) port_cache->get(port);
  for (auto peer : {"127.0.0.1", "::1"}) peer_cache->get(peer);
  id_gvl_since_ms = rb_intern("__kino_gvl_since_ms");
  id_close = rb_intern("close");
  id_take = rb_intern("take");
  id_unanswered = rb_intern("unanswered");
  cRequest = rb_define_class_under(mNative, "Request", rb_cObject);
  rb_undef_alloc_func(cRequest);
  cTaker = rb_define_class_under(mNative, "Taker", rb_cObject);
  rb_undef_alloc_func(cTaker);
}

}  // namespace kino::binding
