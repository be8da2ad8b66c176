#include "util/log_channel.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace kino;

TEST(LogChannel, PushAndDrainInOrder) {
  LogChannel log;
  EXPECT_TRUE(log.drain().empty());
  log.push("one");
  log.push("two");
  log.push(std::string_view("three\0x", 5));
  auto lines = log.drain();
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_TRUE(log.drain().empty());
  EXPECT_EQ(log.dropped(), 0u);
}

TEST(LogChannel, DrainTakesAtMostMax) {
  LogChannel log;
  for (int i = 0; i < 10; ++i) log.push("line " + std::to_string(i));
  auto first = log.drain(4);
  ASSERT_EQ(first.size(), 4u);
  EXPECT_EQ(first[0], "line 0");
  EXPECT_EQ(first[3], "line 3");
  auto rest = log.drain();
  ASSERT_EQ(rest.size(), 6u);
  EXPECT_EQ(rest[5], "line 9");
}

TEST(LogChannel, PastCapacityLinesAreCountedAndDropped) {
  LogChannel log(3);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(log.push("l" + std::to_string(i)), i < 3);
  EXPECT_EQ(log.dropped(), 2u);
  EXPECT_EQ(log.size(), 3u);
  auto lines = log.drain();
  EXPECT_EQ(lines, (std::vector<std::string>{"l0", "l1", "l2"}));
  // Draining frees the room again.
  log.push("again");
  EXPECT_EQ(log.drain(), (std::vector<std::string>{"again"}));
  EXPECT_EQ(log.dropped(), 2u);
  EXPECT_EQ(log.size(), 0u);
}

TEST(LogChannel, TakeMovesIntoReusedStorage) {
  LogChannel log;
  log.push("a");
  log.push("b");
  std::vector<std::string> batch(8);
  EXPECT_EQ(log.take(batch.data(), batch.size()), 2u);
  EXPECT_EQ(batch[0], "a");
  EXPECT_EQ(batch[1], "b");
  EXPECT_EQ(log.take(batch.data(), batch.size()), 0u);
}

TEST(LogChannel, ConcurrentProducersNeverExceedCapacity) {
  constexpr size_t kCapacity = 1000;
  LogChannel log(kCapacity);
  constexpr int kThreads = 4, kEach = 1000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) log.push(std::to_string(t) + ":" + std::to_string(i));
    });
  for (auto& t : threads) t.join();
  auto lines = log.drain(kThreads * kEach);
  EXPECT_EQ(lines.size(), kCapacity);
  EXPECT_EQ(log.dropped(), uint64_t{kThreads * kEach - kCapacity});
  std::set<std::string> unique(lines.begin(), lines.end());
  EXPECT_EQ(unique.size(), lines.size());
}
