// Kino::Native.sleep: waits on the OS clock with the GVL (in a worker
// ractor: that ractor's lock) released, so other threads and ractors run
// meanwhile. It sleeps in short chunks and checks Ruby interrupts between
// them, so Thread#kill and shutdown end it promptly.
#include <chrono>
#include <cmath>
#include <thread>

#include "binding.hpp"

namespace kino::binding {

namespace {

constexpr auto kChunk = std::chrono::milliseconds(20);

struct SleepCall : Interruptible {
  std::chrono::steady_clock::time_point until;
  void run() {
    // Short chunks, so the interrupt flag is seen soon after it is raised.
    while (!interrupted.load(std::memory_order_acquire)) {
      auto now = std::chrono::steady_clock::now();
      if (now >= until) return;
      std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(until - now, kChunk));
    }
  }
};

VALUE native_sleep(VALUE, VALUE seconds) {
  double s = NUM2DBL(seconds);
  if (std::isnan(s) || s < 0) rb_raise(rb_eArgError, "sleep time must be a non-negative number");
  auto until = std::chrono::steady_clock::now() +
               std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(s));
  while (std::chrono::steady_clock::now() < until) {
    SleepCall call;  // trivially destructible members only
    call.until = until;
    without_gvl(call);
    // Raises here for Thread#kill or a pending exception; nothing with a
    // destructor is alive.
    rb_thread_check_ints();
  }
  return seconds;
}

}  // namespace

void init_native_sleep(VALUE mNative) {
  rb_define_module_function(mNative, "sleep", RUBY_METHOD_FUNC(native_sleep), 1);
}

}  // namespace kino::binding
