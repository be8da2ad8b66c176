#include "control/process_board.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "server.hpp"
#include "support/config.hpp"

using namespace kino;
using namespace std::chrono_literals;

namespace {

// Stats whose every number is `v`, with `v % 40` slots each of `v` served:
// a reader that sees any two numbers differ saw a torn row.
ServerStats uniform_stats(uint64_t v) {
  ServerStats s;
  s.mode = "threaded";
  s.workers = static_cast<int64_t>(v);
  s.threads = static_cast<int64_t>(v);
  s.workers_up = static_cast<int64_t>(v);
  s.respawns = s.quarantined = s.queued = s.served = s.rejected = s.timeouts = s.parse_errors = v;
  s.connections_accepted = s.requests_received = s.log_dropped = s.logger_dropped = s.spooled_bytes = v;
  s.in_flight = s.connections_open = s.spool_files = static_cast<int64_t>(v);
  for (auto& c : s.queue_wait.cumulative) c = v;
  s.queue_wait.count = v;
  s.queue_wait.sum_seconds = static_cast<double>(v);
  for (size_t i = 0; i < v % 40; ++i)
    s.slots.push_back(SlotStats{i, i, v, (v & 1) != 0, static_cast<int64_t>(v)});
  return s;
}

// Empty when the row is whole, else what differs.
std::string torn(const ServerStats& s) {
  uint64_t v = s.served;
  auto differs = [v](uint64_t x) { return x != v; };
  if (differs(static_cast<uint64_t>(s.workers)) || differs(s.respawns) || differs(s.rejected) ||
      differs(s.timeouts) || differs(s.parse_errors) || differs(s.requests_received) ||
      differs(s.spooled_bytes) || differs(static_cast<uint64_t>(s.spool_files)) ||
      differs(s.queue_wait.count) || s.queue_wait.sum_seconds != static_cast<double>(v))
    return "counters differ around served=" + std::to_string(v);
  for (auto c : s.queue_wait.cumulative)
    if (differs(c)) return "histogram differs at served=" + std::to_string(v);
  if (s.slots.size() != v % 40) return "slot count differs at served=" + std::to_string(v);
  for (const auto& slot : s.slots)
    if (differs(slot.served) || differs(static_cast<uint64_t>(slot.busy_ms)))
      return "a slot differs at served=" + std::to_string(v);
  return {};
}

}  // namespace

TEST(ProcessBoard, StartsWithEveryRowEmptyAndTheGroupBooting) {
  ProcessBoard board(3);
  EXPECT_EQ(board.size(), 3u);
  GroupStats g = board.read();
  EXPECT_EQ(g.group, GroupState::Booting);
  ASSERT_EQ(g.processes.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(g.processes[i].index, i);
    EXPECT_EQ(g.processes[i].pid, 0);
    EXPECT_EQ(g.processes[i].state, ProcessState::Empty);
    EXPECT_EQ(g.processes[i].stats.state, "empty");
    EXPECT_FALSE(g.processes[i].stale);
  }
  EXPECT_EQ(g.totals.state, "booting");
  EXPECT_EQ(g.totals.served, 0u);
}

TEST(ProcessBoard, RefusesNoRowsAndTooManyAndIndexesPastItsEnd) {
  EXPECT_THROW(ProcessBoard(0), std::invalid_argument);
  EXPECT_THROW(ProcessBoard(ProcessBoard::kMaxProcesses + 1), std::invalid_argument);
  ProcessBoard board(2);
  EXPECT_THROW(board.claim(2, ::getpid()), std::out_of_range);
  EXPECT_THROW(board.reset(5), std::out_of_range);
  EXPECT_FALSE(board.publish(2, 1, ProcessState::Ready, ServerStats{}));
}

TEST(ProcessBoard, AClaimedRowReadsBackWhatItsProcessPublished) {
  ProcessBoard board(2);
  uint64_t generation = board.claim(1, ::getpid());
  ProcessRow booting = board.row(1);
  EXPECT_EQ(booting.pid, ::getpid());
  EXPECT_EQ(booting.state, ProcessState::Booting);
  EXPECT_GT(booting.started_unix_ms, 1'600'000'000'000);

  ServerStats s = uniform_stats(7);
  s.mode = "ractor";
  s.slots[3].in_flight = true;
  s.slots[3].worker = 1;
  ASSERT_TRUE(board.publish(1, generation, ProcessState::Ready, s));
  ProcessRow row = board.row(1);
  EXPECT_EQ(row.pid, ::getpid());
  EXPECT_EQ(row.generation, generation);
  EXPECT_EQ(row.started_unix_ms, booting.started_unix_ms) << "the claim's start stays";
  EXPECT_EQ(row.state, ProcessState::Ready);
  EXPECT_EQ(row.stats.state, "ready");
  EXPECT_EQ(row.stats.mode, "ractor");
  EXPECT_EQ(row.stats.served, 7u);
  EXPECT_EQ(row.stats.connections_open, 7);
  ASSERT_EQ(row.stats.slots.size(), 7u);
  EXPECT_EQ(row.stats.slots[3].slot, 3u);
  EXPECT_EQ(row.stats.slots[3].worker, 1u);
  EXPECT_TRUE(row.stats.slots[3].in_flight);
  EXPECT_EQ(row.stats.queue_wait.cumulative.back(), 7u);
  EXPECT_DOUBLE_EQ(row.stats.queue_wait.sum_seconds, 7.0);
  EXPECT_EQ(board.row(0).state, ProcessState::Empty) << "the other row is untouched";
}

TEST(ProcessBoard, KeepsTheFirstSlotsOfAProcessWithMoreThanItsRowHolds) {
  ProcessBoard board(1);
  uint64_t generation = board.claim(0, ::getpid());
  ServerStats s;
  for (size_t i = 0; i < ProcessBoard::kMaxSlots + 10; ++i) s.slots.push_back(SlotStats{i, i, i, false, 0});
  ASSERT_TRUE(board.publish(0, generation, ProcessState::Ready, s));
  ProcessRow row = board.row(0);
  ASSERT_EQ(row.stats.slots.size(), ProcessBoard::kMaxSlots);
  EXPECT_EQ(row.stats.slots.back().served, ProcessBoard::kMaxSlots - 1);
}

TEST(ProcessBoard, TotalsSumTheRowsThatWereClaimed) {
  ProcessBoard board(3);
  uint64_t g0 = board.claim(0, ::getpid());
  uint64_t g2 = board.claim(2, ::getpid());
  ServerStats a = uniform_stats(3), b = uniform_stats(5);
  a.workers = b.workers = 2;
  a.threads = b.threads = 4;
  ASSERT_TRUE(board.publish(0, g0, ProcessState::Ready, a));
  ASSERT_TRUE(board.publish(2, g2, ProcessState::Booting, b));
  GroupStats g = board.read();
  EXPECT_EQ(g.totals.served, 8u);
  EXPECT_EQ(g.totals.in_flight, 8);
  EXPECT_EQ(g.totals.workers_up, 8);
  EXPECT_EQ(g.totals.workers, 2) << "as configured, not summed";
  EXPECT_EQ(g.totals.threads, 4);
  EXPECT_EQ(g.totals.mode, "threaded");
  EXPECT_EQ(g.totals.queue_wait.count, 8u);
  EXPECT_EQ(g.totals.queue_wait.cumulative[0], 8u);
  EXPECT_DOUBLE_EQ(g.totals.queue_wait.sum_seconds, 8.0);
  EXPECT_TRUE(g.totals.slots.empty()) << "slots stay in the rows";
  EXPECT_EQ(g.totals.state, "ready") << "ready while any process is";
  board.set_group_state(GroupState::Draining);
  EXPECT_EQ(board.read().totals.state, "draining");
  EXPECT_EQ(board.read().group, GroupState::Draining);
}

TEST(ProcessBoard, AResetRowIsEmptyAndItsOldWriterStopsPublishing) {
  ProcessBoard board(1);
  uint64_t generation = board.claim(0, ::getpid());
  ASSERT_TRUE(board.publish(0, generation, ProcessState::Ready, uniform_stats(4)));
  board.reset(0);
  ProcessRow row = board.row(0);
  EXPECT_EQ(row.state, ProcessState::Empty);
  EXPECT_EQ(row.pid, 0);
  EXPECT_EQ(row.generation, generation + 1);
  EXPECT_FALSE(board.publish(0, generation, ProcessState::Ready, uniform_stats(9)));
  EXPECT_EQ(board.row(0).stats.served, 0u);
  // A new owner claims it; the old one still cannot write.
  uint64_t next = board.claim(0, ::getpid());
  EXPECT_GT(next, generation + 1);
  EXPECT_FALSE(board.publish(0, generation, ProcessState::Ready, uniform_stats(9)));
  EXPECT_TRUE(board.publish(0, next, ProcessState::Ready, uniform_stats(2)));
  EXPECT_EQ(board.row(0).stats.served, 2u);
}

// The seqlock: one writer publishing as fast as it can, rows of changing
// length; readers on other threads never see a row mixed from two writes.
TEST(ProcessBoard, ReadersNeverSeeATornRowWhileItsWriterPublishes) {
  ProcessBoard board(1);
  uint64_t generation = board.claim(0, ::getpid());
  ASSERT_TRUE(board.publish(0, generation, ProcessState::Ready, uniform_stats(1)));
  std::vector<ServerStats> prepared;
  for (uint64_t v = 1; v <= 97; ++v) prepared.push_back(uniform_stats(v));
  std::atomic<bool> done{false};
  std::atomic<uint64_t> published{0};
  std::thread writer([&] {
    for (uint64_t i = 0; !done.load(std::memory_order_relaxed); ++i) {
      if (board.publish(0, generation, ProcessState::Ready, prepared[i % prepared.size()]))
        published.fetch_add(1, std::memory_order_relaxed);
    }
  });
  std::atomic<uint64_t> reads{0};
  std::atomic<bool> found{false};
  std::vector<std::string> failures(2);
  std::vector<std::thread> readers;
  for (size_t r = 0; r < failures.size(); ++r) {
    readers.emplace_back([&, r] {
      while (!done.load(std::memory_order_relaxed)) {
        ProcessRow row = board.row(0);
        reads.fetch_add(1, std::memory_order_relaxed);
        if (row.stale) continue;  // a read that kept losing the race: allowed, never wrong
        std::string why = torn(row.stats);
        if (!why.empty() && failures[r].empty()) {
          failures[r] = why;
          found = true;
        }
      }
    });
  }
  // Two seconds of racing at most: a reader without the sequence check
  // was caught in every one of 10 runs on a loaded 2-core machine, most
  // within half a second. The first tear found ends it early.
  auto until = std::chrono::steady_clock::now() + 2000ms;
  while (std::chrono::steady_clock::now() < until && !found.load()) std::this_thread::sleep_for(5ms);
  done = true;
  writer.join();
  for (auto& t : readers) t.join();
  for (const auto& f : failures) EXPECT_EQ(f, "");
  EXPECT_GT(published.load(), 100u);
  EXPECT_GT(reads.load(), 100u);
}

TEST(ProcessBoard, ARowWhoseProcessIsGoneIsStaleAndLeftOutOfTheTotals) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // reaped: the pid no longer exists
  ProcessBoard board(2);
  uint64_t gone = board.claim(0, child);
  ASSERT_TRUE(board.publish(0, gone, ProcessState::Ready, uniform_stats(5)));
  uint64_t here = board.claim(1, ::getpid());
  ASSERT_TRUE(board.publish(1, here, ProcessState::Ready, uniform_stats(2)));
  GroupStats g = board.read();
  EXPECT_TRUE(g.processes[0].stale);
  EXPECT_EQ(g.processes[0].stats.state, "stale");
  EXPECT_EQ(g.processes[0].pid, child);
  EXPECT_FALSE(g.processes[1].stale);
  EXPECT_EQ(g.totals.served, 2u);
}

// A real fork: the board made before it is the same memory in both
// processes. The child claims row 1 and publishes; the parent reads it
// while the child lives, and again once it has stopped.
TEST(ProcessBoard, WhatAForkedChildPublishesTheParentReads) {
  ProcessBoard board(2);
  int go[2], published[2];
  ASSERT_EQ(::pipe(go), 0);
  ASSERT_EQ(::pipe(published), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Nothing here may allocate through a lock another thread held at the
    // fork: the board and two pipes only.
    uint64_t generation = board.claim(1, ::getpid());
    ServerStats s;
    s.served = 42;
    s.workers_up = 1;
    bool ok = board.publish(1, generation, ProcessState::Ready, s);
    char c = ok ? '1' : '0';
    if (::write(published[1], &c, 1) != 1) ::_exit(2);
    if (::read(go[0], &c, 1) != 1) ::_exit(3);
    s.served = 43;
    ok = board.publish(1, generation, ProcessState::Stopped, s);
    ::_exit(ok ? 0 : 1);
  }
  char c = 0;
  ASSERT_EQ(::read(published[0], &c, 1), 1);
  EXPECT_EQ(c, '1');
  ProcessRow running = board.row(1);
  EXPECT_EQ(running.pid, child);
  EXPECT_EQ(running.state, ProcessState::Ready);
  EXPECT_FALSE(running.stale);
  EXPECT_EQ(running.stats.served, 42u);
  EXPECT_EQ(board.read().totals.served, 42u);
  ASSERT_EQ(::write(go[1], "x", 1), 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ProcessRow stopped = board.row(1);
  EXPECT_EQ(stopped.state, ProcessState::Stopped);
  EXPECT_FALSE(stopped.stale) << "a process that said it stopped is not lost";
  EXPECT_EQ(stopped.stats.served, 43u);
  // The parent, before forking a replacement:
  board.reset(1);
  EXPECT_EQ(board.row(1).state, ProcessState::Empty);
  for (int fd : {go[0], go[1], published[0], published[1]}) ::close(fd);
}

// A Server given a board claims its row when made, publishes as it starts
// and says it stopped once it has.
TEST(ProcessBoard, AServerPublishesItsRowFromBootToStop) {
  auto board = std::make_shared<ProcessBoard>(2);
  ServerConfig config = test::server_config();
  config.io_threads = 1;
  config.board = board;
  config.board_index = 1;
  auto server = std::make_shared<Server>(config);
  EXPECT_EQ(board->row(1).pid, ::getpid());
  EXPECT_EQ(board->row(1).state, ProcessState::Booting);
  server->bind();
  server->start();
  server->report_pool(1, 0, 0);
  EXPECT_EQ(board->row(1).state, ProcessState::Ready) << "a worker up is published at once";
  EXPECT_EQ(board->row(1).stats.workers_up, 1);
  server->stop(std::chrono::milliseconds(0));
  EXPECT_EQ(board->row(1).state, ProcessState::Stopped);
  server->report_pool(0, 0, 0);
  EXPECT_EQ(board->row(1).state, ProcessState::Stopped) << "nothing is written after the last row";
  EXPECT_EQ(board->row(0).state, ProcessState::Empty);
}
