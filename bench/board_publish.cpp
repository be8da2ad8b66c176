// What the process board costs a server. Nothing on the request path
// changed: a request touches the same counters and slot as without a board.
// What a board adds is a publish of the process's row on the sweep timer
// (every 250 ms, on an I/O thread) and at each change of state, and a read
// of every row for the control plane's /stats and /metrics. Both are
// measured here, with a row of 16 slots (4 workers x 4 threads) and with a
// full one (256), and a read of an 8-process board.
//
//   g++ -std=c++20 -O2 -I ext/kino/core bench/board_publish.cpp \
//       ext/kino/core/control/process_board.cpp -o tmp/board_publish -pthread
//   tmp/board_publish
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "control/process_board.hpp"

namespace {

double us_per_op(auto&& op, int rounds) {
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < rounds; ++i) op(i);
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / rounds;
}

kino::ServerStats stats_with(size_t slots) {
  kino::ServerStats s;
  s.mode = "threaded";
  for (size_t i = 0; i < slots; ++i) s.slots.push_back(kino::SlotStats{i, i / 4, i * 10, false, 0});
  return s;
}

}  // namespace

int main() {
  constexpr int kRounds = 200'000;
  kino::ProcessBoard board(8);
  uint64_t generations[8];
  for (size_t i = 0; i < 8; ++i) generations[i] = board.claim(i, ::getpid());
  for (size_t slots : {16, 256}) {
    kino::ServerStats s = stats_with(slots);
    double publish = us_per_op(
        [&](int i) {
          s.served = static_cast<uint64_t>(i);
          board.publish(0, generations[0], kino::ProcessState::Ready, s);
        },
        kRounds);
    for (size_t i = 1; i < 8; ++i) board.publish(i, generations[i], kino::ProcessState::Ready, s);
    double read = us_per_op([&](int) { (void)board.read(); }, kRounds / 20);
    // Four publishes a second on one I/O thread: the share of that thread.
    std::printf("%zu slots a row: publish %.2f us (%.4f%% of an I/O thread at 4/s), read of 8 rows %.1f us\n",
                slots, publish, publish * 4 / 1e6 * 100, read);
  }
}
