// What stats cost a request on the hot path. Per request the core now
// reads the clock twice (at Server::dispatch and at the pop), where it read
// it four times before (dispatch, admit, the pop's check for a departed
// client, ThreadSlots::hold): those reuse the two stamps. What it adds is, under the slot lock hold takes
// anyway, one queue-wait observation (plain increments, measured here) and
// the answered count (one increment). The clock is measured for scale.
//
//   g++ -std=c++20 -O2 -I ext/kino/core bench/stats_hot_path.cpp -o tmp/stats_hot_path -pthread
//   tmp/stats_hot_path          # one thread
//   tmp/stats_hot_path 2        # two threads sharing one histogram (contended)
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "util/counters.hpp"
#include "util/steady_clock.hpp"

namespace {

constexpr int kRounds = 20'000'000;

double ns_per_op(auto&& op, int threads) {
  std::vector<std::thread> pool;
  auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&op] {
      for (int i = 0; i < kRounds; ++i) op(i);
    });
  for (auto& t : pool) t.join();
  auto elapsed = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  return elapsed / kRounds;  // per operation of one thread: what a request waits
}

}  // namespace

int main(int argc, char** argv) {
  int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  // One histogram a thread, as one a slot in the server.
  std::vector<kino::QueueWaitHistogram> histograms(static_cast<size_t>(threads));
  std::atomic<int> next{0};
  std::atomic<int64_t> sink{0};
  // Waits spread over the buckets, as a loaded server's would be.
  auto wait_of = [](int i) { return (static_cast<int64_t>(i) * 7919) % 4'000'000; };
  thread_local kino::QueueWaitHistogram* mine = nullptr;
  double observe = ns_per_op(
      [&](int i) {
        if (!mine) mine = &histograms[static_cast<size_t>(next.fetch_add(1))];
        mine->observe(wait_of(i));
      },
      threads);
  double clock =
      ns_per_op([&](int) { sink.fetch_add(kino::steady_ns() & 1, std::memory_order_relaxed); }, threads);
  double baseline =
      ns_per_op([&](int i) { sink.fetch_add(wait_of(i) & 1, std::memory_order_relaxed); }, threads);
  std::printf("threads %d: observe %.1f ns, steady_ns %.1f ns, baseline loop %.1f ns (count %llu)\n", threads,
              observe, clock - baseline, baseline,
              static_cast<unsigned long long>(histograms[0].snapshot().count));
}
