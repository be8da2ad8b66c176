// Kino::Native.sleep: waits on the OS clock with the GVL (in a worker
// ractor: that ractor's lock) released, so other threads and ractors run
// meanwhile. It sleeps in short chunks and checks Ruby interrupts between
// them, so Thread#kill ends it promptly. Given the id of the server whose
// request the thread is serving, it also ends when that server's stop gives
// up on requests in flight, and raises Kino::Error: a handler asleep past
// the shutdown deadline is aborted instead of holding the worker.
#include <chrono>
#include <cmath>
#include <thread>

#include "native_seam.hpp"

namespace kino::binding {

namespace {

constexpr auto kChunk = std::chrono::milliseconds(20);

// The longest sleep: about 31 years, forever for a request handler. Longer
// ones (Float::INFINITY, 1e300, 10**30) sleep this long; converting them
// to clock ticks as they are would overflow, which is undefined behaviour
// (on x86 the deadline came out in the past, and the sleep returned at
// once).
constexpr double kMaxSeconds = 1e9;

struct SleepCall : Interruptible {
  std::chrono::steady_clock::time_point until;
  const Server* server = nullptr;  // kept alive by the caller
  bool aborted = false;
  void run() {
    // Short chunks, so the interrupt flag is seen soon after it is raised.
    while (!interrupted.load(std::memory_order_acquire)) {
      if (server && server->aborting()) {
        aborted = true;
        return;
      }
      auto now = std::chrono::steady_clock::now();
      if (now >= until) return;
      std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(until - now, kChunk));
    }
  }
};

}  // namespace

// Native.sleep(seconds, server_id = nil)
VALUE native_sleep(int argc, VALUE* argv, VALUE) {
  VALUE seconds, rb_server;
  rb_scan_args(argc, argv, "11", &seconds, &rb_server);
  double s = NUM2DBL(seconds);
  if (std::isnan(s) || s < 0) rb_raise(rb_eArgError, "sleep time must be a non-negative number");
  if (s > kMaxSeconds) s = kMaxSeconds;
  uint64_t server_id = NIL_P(rb_server) ? 0 : NUM2ULL(rb_server);
  auto until =
      std::chrono::steady_clock::now() +
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
  while (std::chrono::steady_clock::now() < until) {
    bool aborted = false;
    CarriedError error;
    {
      std::shared_ptr<Server> server = server_id ? Registry::instance().find(server_id) : nullptr;
      SleepCall call;
      call.until = until;
      call.server = server.get();
      without_gvl(call);
      aborted = call.aborted;
      error.take(call.failure);
    }
    error.raise_if_any();
    if (aborted) rb_raise(eKinoError, "Kino.sleep aborted: the server stopped waiting for this request");
    // Raises here for Thread#kill or a pending exception; nothing with a
    // destructor is alive.
    rb_thread_check_ints();
  }
  return seconds;
}

}  // namespace kino::binding
