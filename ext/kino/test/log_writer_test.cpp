#include "util/log_writer.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/terminal.hpp"

using namespace kino;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream s(text);
  for (std::string line; std::getline(s, line);) out.push_back(line);
  return out;
}

// Reads a pipe to its end (every writer closed).
std::string read_all(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLIN, 0};
      ::poll(&p, 1, 100);
    } else if (n == 0 || errno != EINTR) {
      return out;
    }
  }
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/kino_log_writer_XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const char* name) const { return (path / name).string(); }
};

// A pipe whose write end is non-blocking and already full: nothing more
// fits until the read end is read.
struct FullPipe {
  int fds[2];
  FullPipe() {
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    ::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    std::string chunk(4096, 'x');
    while (::write(fds[1], chunk.data(), chunk.size()) > 0) {
    }
    std::string byte = "x";
    while (::write(fds[1], byte.data(), 1) > 0) {
    }
  }
  ~FullPipe() {
    ::close(fds[0]);
    if (fds[1] >= 0) ::close(fds[1]);
  }
};

}  // namespace

TEST(LogWriter, StopWritesEveryLinePushedBeforeIt) {
  TempDir dir;
  auto log = LogWriter::open(dir.file("a.log"));
  uint64_t refused = 0;
  for (int i = 0; i < 20000; ++i) {
    // Room is freed as the thread drains: retry until every line is in.
    while (!log->push("line " + std::to_string(i) + "\n")) {
      ++refused;
      std::this_thread::yield();
    }
  }
  log->stop();
  auto lines = lines_of(read_file(dir.file("a.log")));
  ASSERT_EQ(lines.size(), 20000u);
  for (int i = 0; i < 20000; ++i) ASSERT_EQ(lines[i], "line " + std::to_string(i));
  EXPECT_EQ(log->dropped(), refused);
  // Many lines a syscall, not one each.
  EXPECT_LT(log->writes(), 20000u / 8);
}

TEST(LogWriter, ConcurrentProducersLoseNothingWithinCapacity) {
  TempDir dir;
  constexpr int kThreads = 4, kEach = 10000;
  auto log = LogWriter::open(dir.file("c.log"), kThreads * kEach);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i)
        EXPECT_TRUE(log->push(std::to_string(t) + ":" + std::to_string(i) + "\n"));
    });
  for (auto& t : threads) t.join();
  log->stop();
  auto lines = lines_of(read_file(dir.file("c.log")));
  EXPECT_EQ(lines.size(), size_t{kThreads * kEach});
  std::set<std::string> unique(lines.begin(), lines.end());
  EXPECT_EQ(unique.size(), size_t{kThreads * kEach});
  EXPECT_EQ(log->dropped(), 0u);
}

TEST(LogWriter, AppendsToAnExistingFile) {
  TempDir dir;
  { std::ofstream(dir.file("b.log")) << "before\n"; }
  auto log = LogWriter::open(dir.file("b.log"));
  EXPECT_EQ(log->path(), dir.file("b.log"));
  log->push("after\n");
  log->stop();
  EXPECT_EQ(read_file(dir.file("b.log")), "before\nafter\n");
}

TEST(LogWriter, OpenNamesThePathItCannotOpen) {
  try {
    LogWriter::open("/nonexistent-dir/kino.log");
    FAIL() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/kino.log"), std::string::npos) << e.what();
    EXPECT_EQ(e.code().value(), ENOENT);
  }
}

TEST(LogWriter, ReopenFollowsARenamedFile) {
  TempDir dir;
  auto log = LogWriter::open(dir.file("app.log"));
  log->push("old\n");
  std::filesystem::rename(dir.file("app.log"), dir.file("app.log.1"));
  log->push("still old\n");
  // What was pushed before the rotation is written before the reopen.
  while (read_file(dir.file("app.log.1")).size() < 14)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(log->reopen());
  log->push("new\n");
  log->stop();
  EXPECT_EQ(read_file(dir.file("app.log.1")), "old\nstill old\n");
  EXPECT_EQ(read_file(dir.file("app.log")), "new\n");
  // The descriptor keeps close-on-exec across the swap.
  EXPECT_TRUE(::fcntl(log->fd(), F_GETFD) & FD_CLOEXEC);
}

TEST(LogWriter, ReopenIsANoOpOnAGivenDescriptor) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  {
    LogWriter log(fds[1]);
    EXPECT_FALSE(log.reopen());
    EXPECT_FALSE(log.is_tty());
    EXPECT_TRUE(log.path().empty());
    log.push("hello\n");
  }
  // The writer did not close what it was given.
  EXPECT_NE(::fcntl(fds[1], F_GETFD), -1);
  ::close(fds[1]);
  EXPECT_EQ(read_all(fds[0]), "hello\n");
  ::close(fds[0]);
}

TEST(LogWriter, KnowsATerminal) {
  kino::test::Terminal terminal;
  LogWriter log(terminal.tty);
  EXPECT_TRUE(log.is_tty());
}

TEST(LogWriter, AFullPipeDropsAndCountsWithoutBlocking) {
  FullPipe pipe;
  constexpr size_t kCapacity = 100;
  LogWriter log(pipe.fds[1], kCapacity);
  constexpr int kPushed = 5000;
  int refused = 0;
  for (int i = 0; i < kPushed; ++i)
    if (!log.push("line " + std::to_string(i) + "\n")) ++refused;
  // The thread holds at most a batch it could not write, the channel at
  // most its capacity: the rest was refused, and every refusal counted.
  EXPECT_GE(refused, kPushed - static_cast<int>(kCapacity) - 512);
  EXPECT_EQ(log.dropped(), static_cast<uint64_t>(refused));
  // Once the pipe is read, what was accepted arrives.
  std::thread reader([&] {
    std::string got = read_all(pipe.fds[0]);
    size_t lines = 0;
    for (char c : got) lines += c == '\n';
    EXPECT_EQ(lines, static_cast<size_t>(kPushed - refused));
  });
  log.stop();
  EXPECT_EQ(log.dropped(), static_cast<uint64_t>(refused));
  ::close(pipe.fds[1]);
  pipe.fds[1] = -1;
  reader.join();
}

TEST(LogWriter, StopGivesUpOnAPipeNobodyReads) {
  FullPipe pipe;
  LogWriter log(pipe.fds[1], 10);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(log.push("waiting\n"));
  log.stop(std::chrono::milliseconds(50));
  EXPECT_EQ(log.dropped(), 10u);
}

namespace {

// A full pipe or socket pair whose writing end, as handed over, blocks.
struct BlockingFull {
  int fds[2];
  explicit BlockingFull(bool socket) {
    if (socket) {
      EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    } else {
      EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    }
    int flags = ::fcntl(fds[1], F_GETFL);
    ::fcntl(fds[1], F_SETFL, flags | O_NONBLOCK);
    std::string byte = "x";
    while (::write(fds[1], byte.data(), 1) > 0) {
    }
    ::fcntl(fds[1], F_SETFL, flags);
  }
  ~BlockingFull() {
    if (fds[0] >= 0) ::close(fds[0]);
    ::close(fds[1]);
  }
};

// stop() must come back though nobody reads; should it hang, closing the
// reading end frees the writer (EPIPE) and the test fails instead.
void expect_stop_gives_up(bool socket) {
  BlockingFull full(socket);
  auto log = LogWriter::adopt(::fcntl(full.fds[1], F_DUPFD_CLOEXEC, 3), 10);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(log->push("waiting\n"));
  auto stopping = std::async(std::launch::async, [&] { log->stop(std::chrono::milliseconds(50)); });
  bool returned = stopping.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  if (!returned) {
    ::close(full.fds[0]);
    full.fds[0] = -1;
  }
  stopping.wait();
  EXPECT_TRUE(returned) << "stop() waited on a blocking write";
  EXPECT_EQ(log->dropped(), 10u);
  int flags = ::fcntl(full.fds[1], F_GETFL);
  EXPECT_EQ(flags & O_NONBLOCK, 0) << "the caller's description was left as it was";
}

}  // namespace

TEST(LogWriter, StopGivesUpOnABlockingPipeNobodyReads) { expect_stop_gives_up(false); }

TEST(LogWriter, StopGivesUpOnABlockingSocketNobodyReads) { expect_stop_gives_up(true); }

TEST(LogWriter, AnAdoptedBlockingPipeGetsEveryLineInOrder) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  auto log = LogWriter::adopt(fds[1]);
  std::string expected;
  for (int i = 0; i < 2000; ++i) {
    std::string line = "line " + std::to_string(i) + "\n";
    expected += line;
    while (!log->push(line)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::thread reader([&] { EXPECT_EQ(read_all(fds[0]), expected); });
  log->stop();
  log.reset();  // closes the writing end: the reader sees its end
  reader.join();
  ::close(fds[0]);
}

TEST(LogWriter, AClosedPipeCountsLinesAsDroppedAndRaisesNoSignal) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);
  {
    LogWriter log(fds[1]);
    EXPECT_TRUE(log.push("nobody reads this\n"));
    log.stop();
    EXPECT_EQ(log.dropped(), 1u);
  }
  // SIGPIPE was taken by the writer thread, not left for the process.
  sigset_t pending;
  sigpending(&pending);
  EXPECT_FALSE(sigismember(&pending, SIGPIPE));
  ::close(fds[1]);
}

TEST(LogWriter, PushAfterStopIsDroppedAndCounted) {
  TempDir dir;
  auto log = LogWriter::open(dir.file("s.log"));
  log->push("kept\n");
  log->stop();
  log->stop();
  EXPECT_FALSE(log->push("late\n"));
  EXPECT_EQ(log->dropped(), 1u);
  EXPECT_EQ(read_file(dir.file("s.log")), "kept\n");
}

TEST(LogWriter, WritesEmptyAndPartialLinesAsGiven) {
  TempDir dir;
  auto log = LogWriter::open(dir.file("e.log"));
  log->push("");
  log->push("no newline");
  log->push("\n");
  log->stop();
  EXPECT_EQ(read_file(dir.file("e.log")), "no newline\n");
}

TEST(LogWriter, FlushWaitsForWhatWasPushedAndKeepsRunning) {
  TempDir dir;
  auto log = LogWriter::open(dir.file("f.log"));
  for (int i = 0; i < 1000; ++i) log->push("x\n");
  EXPECT_TRUE(log->flush(std::chrono::seconds(5)));
  EXPECT_EQ(read_file(dir.file("f.log")).size(), 2000u);
  log->push("after\n");
  EXPECT_TRUE(log->flush(std::chrono::seconds(5)));
  EXPECT_EQ(read_file(dir.file("f.log")).size(), 2006u);
}

TEST(LogWriter, FlushGivesUpOnAPipeNobodyReads) {
  FullPipe pipe;
  LogWriter log(pipe.fds[1], 10);
  log.push("stuck\n");
  EXPECT_FALSE(log.flush(std::chrono::milliseconds(30)));
  log.stop(std::chrono::milliseconds(10));
}

TEST(LogWriter, AdoptedDescriptorsAreClosedWithTheWriter) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  { auto log = LogWriter::adopt(fds[1]); }
  EXPECT_EQ(::fcntl(fds[1], F_GETFD), -1);
  ::close(fds[0]);
}

TEST(LogWriter, AForkedChildWritesWhatItLoggedWhenItStops) {
  TempDir dir;
  auto log = LogWriter::open(dir.file("fork.log"));
  log->push("parent\n");
  ASSERT_TRUE(log->flush(std::chrono::seconds(5)));
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    log->push("child\n");
    log->stop();
    ::_exit(log->dropped() == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  log->stop();
  EXPECT_EQ(read_file(dir.file("fork.log")), "parent\nchild\n");
}

TEST(LogWriter, PausedAroundAForkBothProcessesGoOnWritingThroughAThread) {
  TempDir dir;
  auto log = LogWriter::open(dir.file("paused.log"));
  log->push("before\n");
  log->pause();
  EXPECT_EQ(read_file(dir.file("paused.log")), "before\n") << "pause writes what is queued";
  log->push("while paused\n");  // waits for a thread
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    log->resume();
    log->push("child\n");
    // A flush only succeeds when a thread of this process drains.
    bool flushed = log->flush(std::chrono::seconds(5));
    log->stop();
    ::_exit(flushed && log->dropped() == 0 ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  log->resume();
  log->push("parent\n");
  ASSERT_TRUE(log->flush(std::chrono::seconds(5)));
  log->stop();
  auto lines = lines_of(read_file(dir.file("paused.log")));
  std::multiset<std::string> seen(lines.begin(), lines.end());
  // The line queued during the pause was copied into the child too: each
  // process writes its copy.
  EXPECT_EQ(seen, (std::multiset<std::string>{"before", "while paused", "while paused", "child", "parent"}));
}

TEST(LogWriter, StopWhilePausedWritesWhatWaits) {
  TempDir dir;
  auto log = LogWriter::open(dir.file("stop.log"));
  log->pause();
  log->push("queued\n");
  log->stop();
  log->resume();  // a stopped writer stays stopped
  EXPECT_FALSE(log->push("late\n"));
  EXPECT_EQ(read_file(dir.file("stop.log")), "queued\n");
}

// Two writers on one pipe (as the processes of a group share stdout),
// read slowly so that the pipe keeps filling: a line is never cut by the
// other writer's lines, which a write of more than PIPE_BUF bytes allows.
TEST(LogWriter, WritersSharingAPipeNeverInterleaveWithinALine) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  constexpr int kLines = 4000;
  constexpr size_t kLength = 300;  // many to a batch, several batches past PIPE_BUF
  auto a = LogWriter::adopt(::dup(fds[1]), kLines);
  auto b = LogWriter::adopt(::dup(fds[1]), kLines);
  ::close(fds[1]);
  std::string line_a(kLength - 1, 'a'), line_b(kLength - 1, 'b');
  line_a.push_back('\n');
  line_b.push_back('\n');
  for (int i = 0; i < kLines; ++i) {
    ASSERT_TRUE(a->push(line_a));
    ASSERT_TRUE(b->push(line_b));
  }
  auto reader = std::async(std::launch::async, [&] {
    std::string out;
    char buf[1024];
    for (;;) {
      ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n == 0) return out;
      if (n < 0) {
        if (errno == EINTR) continue;
        return out;
      }
      out.append(buf, static_cast<size_t>(n));
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  a->stop();
  b->stop();
  a.reset();
  b.reset();
  std::string out = reader.get();
  ::close(fds[0]);
  auto lines = lines_of(out);
  ASSERT_EQ(lines.size(), size_t{2 * kLines});
  size_t torn = 0;
  for (const auto& l : lines)
    if (l != line_a.substr(0, kLength - 1) && l != line_b.substr(0, kLength - 1)) ++torn;
  EXPECT_EQ(torn, 0u);
}
