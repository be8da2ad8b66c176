#include "handoff/worker_exits.hpp"

#include <gtest/gtest.h>

#include <thread>

using namespace kino;
using namespace std::chrono_literals;

namespace {
std::chrono::steady_clock::time_point in(std::chrono::milliseconds ms) {
  return std::chrono::steady_clock::now() + ms;
}
}  // namespace

TEST(WorkerExits, ExitsComeInOrderBeforeWakes) {
  WorkerExits board;
  board.wake();
  board.post({1, false, "", "", {}});
  board.post({2, true, "RuntimeError", "boom", {"app.rb:3"}});
  WorkerExit e;
  ASSERT_EQ(board.next(e, in(0ms)), WorkerExits::Outcome::Exit);
  EXPECT_EQ(e.token, 1u);
  EXPECT_FALSE(e.crashed);
  ASSERT_EQ(board.next(e, in(0ms)), WorkerExits::Outcome::Exit);
  EXPECT_EQ(e.token, 2u);
  EXPECT_EQ(e.error_class, "RuntimeError");
  EXPECT_EQ(e.backtrace.at(0), "app.rb:3");
  EXPECT_EQ(board.next(e, in(0ms)), WorkerExits::Outcome::Wake);
  EXPECT_EQ(board.next(e, in(10ms)), WorkerExits::Outcome::Timeout);
}

TEST(WorkerExits, AWaitingSupervisorWakesForAnExitPostedElsewhere) {
  WorkerExits board;
  std::thread worker([&] {
    std::this_thread::sleep_for(30ms);
    board.post({9, false, "", "", {}});
  });
  WorkerExit e;
  EXPECT_EQ(board.next(e, in(5000ms)), WorkerExits::Outcome::Exit);
  EXPECT_EQ(e.token, 9u);
  worker.join();
}

TEST(WorkerExits, EachWakeEndsOneWait) {
  WorkerExits board;
  board.wake();
  board.wake();
  WorkerExit e;
  EXPECT_EQ(board.next(e, in(0ms)), WorkerExits::Outcome::Wake);
  EXPECT_EQ(board.next(e, in(0ms)), WorkerExits::Outcome::Wake);
  EXPECT_EQ(board.next(e, in(0ms)), WorkerExits::Outcome::Timeout);
}
