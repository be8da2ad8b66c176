#include "log_writers.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

using namespace kino;

TEST(LogWriters, FindsAWriterByTheIdItWasGiven) {
  auto& writers = LogWriters::instance();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  uint64_t id = writers.add(LogWriter::adopt(fds[1]));
  ASSERT_NE(writers.find(id), nullptr);
  EXPECT_GE(writers.find(id)->fd(), 0);
  EXPECT_EQ(writers.find(0), nullptr);
  EXPECT_EQ(writers.find(id + 1000), nullptr);
  auto all = writers.all();
  EXPECT_NE(std::find(all.begin(), all.end(), writers.find(id)), all.end());
  EXPECT_TRUE(writers.find(id)->push("hi\n"));
  EXPECT_TRUE(writers.find(id)->flush(std::chrono::seconds(5)));
  char buf[8];
  EXPECT_EQ(::read(fds[0], buf, sizeof buf), 3);
  ::close(fds[0]);
}

TEST(LogWriters, DroppedSumsWhatEveryWriterLost) {
  auto& writers = LogWriters::instance();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  uint64_t before = writers.dropped();
  // Room for one line: pushed faster than its thread wakes, the rest drop.
  LogWriter* writer = writers.find(writers.add(LogWriter::adopt(fds[1], 1)));
  ASSERT_NE(writer, nullptr);
  for (int i = 0; i < 1000; ++i) writer->push("line\n");
  EXPECT_GT(writer->dropped(), 0u);
  EXPECT_GE(writers.dropped() - before, writer->dropped());
  EXPECT_TRUE(writer->flush(std::chrono::seconds(5)));
  ::close(fds[0]);
}

// A native thread may still read the writers while the process exits
// (a control plane answering /stats): they must not be freed under it.
// Seen by AddressSanitizer, which fails the child with a use after free.
TEST(LogWritersDeathTest, ExitWhileAThreadReadsTheWritersIsClean) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        auto& writers = LogWriters::instance();
        int fd = ::open("/dev/null", O_WRONLY);
        writers.add(LogWriter::adopt(fd));
        std::atomic<bool> reading{false};
        std::thread reader([&] {
          for (;;) {
            uint64_t sum = 0;
            for (LogWriter* w : writers.all()) sum += w->dropped() + w->writes();
            reading.store(sum < UINT64_MAX, std::memory_order_release);
          }
        });
        while (!reading.load(std::memory_order_acquire)) std::this_thread::yield();
        reader.detach();
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}
