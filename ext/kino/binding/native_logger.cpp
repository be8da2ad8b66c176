// The logger unit of Kino::Native: the native log writers behind
// Kino::Logger::Device, known by integer id (LogWriters), so a frozen
// device holding only that id is shareable and logs from any ractor.
// Writing a line copies it into the writer's channel and returns: no lock,
// no syscall, no wait; a full channel drops the line and counts it.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>
#include <system_error>

#include "core/log_writers.hpp"
#include "native_seam.hpp"

namespace kino::binding {

namespace {

LogWriter& find_writer(uint64_t id) {
  LogWriter* writer = LogWriters::instance().find(id);
  if (!writer) throw std::runtime_error("no such log writer: " + std::to_string(id));
  return *writer;
}

struct FlushCall : Interruptible {
  std::vector<LogWriter*> writers;
  std::chrono::milliseconds timeout{0};
  bool flushed = true;
  void run() {
    for (auto* w : writers) flushed = w->flush(timeout) && flushed;
  }
};

VALUE flush(std::vector<LogWriter*> writers, VALUE timeout) {
  double seconds = NUM2DBL(timeout);
  auto ms = std::chrono::milliseconds(static_cast<int64_t>(std::clamp(seconds, 0.0, 3600.0) * 1000));
  bool flushed = false;
  int raised = 0;
  CarriedError error;
  {
    FlushCall call;
    call.writers = std::move(writers);
    call.timeout = ms;
    raised = without_gvl_until_run(call);
    flushed = call.ran && call.flushed;
    error.take(call.failure);
  }
  error.raise_if_any();
  if (raised) rb_jump_tag(raised);
  return flushed ? Qtrue : Qfalse;
}

}  // namespace

// Native.logger_open(target, capacity) -> Integer id. A String is a path,
// opened for append; an Integer is a descriptor, duplicated so the writer
// outlives the IO it came from.
VALUE native_logger_open(VALUE, VALUE target, VALUE capacity) {
  size_t lines = NUM2SIZET(capacity);
  if (lines == 0) rb_raise(rb_eArgError, "capacity must be at least 1 line");
  if (RB_INTEGER_TYPE_P(target)) {
    int fd = NUM2INT(target);
    return protect([&]() -> VALUE {
      int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
      if (own < 0)
        throw std::system_error(errno, std::generic_category(),
                                "cannot log to descriptor " + std::to_string(fd));
      std::unique_ptr<LogWriter> writer;
      try {
        writer = LogWriter::adopt(own, lines);
      } catch (...) {
        ::close(own);
        throw;
      }
      return ULL2NUM(LogWriters::instance().add(std::move(writer)));
    });
  }
  std::string path(StringValueCStr(target));
  VALUE id =
      protect([&]() -> VALUE { return ULL2NUM(LogWriters::instance().add(LogWriter::open(path, lines))); });
  RB_GC_GUARD(target);
  return id;
}

// Native.logger_write(id, text) -> true, or false when the line was dropped.
VALUE native_logger_write(VALUE, VALUE id, VALUE text) {
  uint64_t wid = NUM2ULL(id);
  StringValue(text);
  return protect([&]() -> VALUE { return find_writer(wid).push(bytes_of(text)) ? Qtrue : Qfalse; });
}

VALUE native_logger_dropped(VALUE, VALUE id) {
  uint64_t wid = NUM2ULL(id);
  return protect([&]() -> VALUE { return ULL2NUM(find_writer(wid).dropped()); });
}

VALUE native_logger_tty_p(VALUE, VALUE id) {
  uint64_t wid = NUM2ULL(id);
  return protect([&]() -> VALUE { return find_writer(wid).is_tty() ? Qtrue : Qfalse; });
}

// Native.logger_reopen(id) -> whether it was a path, opened again.
VALUE native_logger_reopen(VALUE, VALUE id) {
  uint64_t wid = NUM2ULL(id);
  return protect([&]() -> VALUE { return find_writer(wid).reopen() ? Qtrue : Qfalse; });
}

// Native.logger_flush(id, timeout) -> whether every line logged before the
// call is written. Waits without the GVL.
VALUE native_logger_flush(VALUE, VALUE id, VALUE timeout) {
  uint64_t wid = NUM2ULL(id);
  LogWriter* writer = LogWriters::instance().find(wid);
  if (!writer) rb_raise(eKinoError, "no such log writer: %llu", static_cast<unsigned long long>(wid));
  return flush({writer}, timeout);
}

// Native.logger_flush_all(timeout): every writer of the process, at a
// graceful stop.
VALUE native_logger_flush_all(VALUE, VALUE timeout) { return flush(LogWriters::instance().all(), timeout); }

// Native.logger_reopen_all -> Integer files reopened (SIGHUP, after
// logrotate has renamed them). Raises for a path that cannot be opened,
// after trying every other one.
VALUE native_logger_reopen_all(VALUE) {
  return protect([&]() -> VALUE {
    size_t reopened = 0;
    std::string failures;
    for (auto* writer : LogWriters::instance().all()) {
      try {
        reopened += writer->reopen();
      } catch (const std::system_error& e) {
        failures += (failures.empty() ? "" : "; ") + std::string(e.what());
      }
    }
    if (!failures.empty()) throw std::runtime_error(failures);
    return SIZET2NUM(reopened);
  });
}

// Native.logger_pause_all -> Integer writers paused. Before a fork: every
// writer writes what it holds and its thread ends, so the child is not
// left a copy of a thread's half-done work (see LogWriter::pause). Lines
// logged meanwhile wait. Joins without the GVL.
VALUE native_logger_pause_all(VALUE) {
  CarriedError error;
  size_t paused = 0;
  int raised = 0;
  {
    struct PauseCall : Interruptible {
      std::vector<LogWriter*> writers;
      size_t* paused = nullptr;
      void run() {
        for (auto* w : writers) {
          w->pause();
          ++*paused;
        }
      }
    } call;
    call.writers = LogWriters::instance().all();
    call.paused = &paused;
    raised = without_gvl_until_run(call);
    error.take(call.failure);
  }
  error.raise_if_any();
  if (raised) rb_jump_tag(raised);
  return SIZET2NUM(paused);
}

// Native.logger_resume_all -> Integer writers. After a fork, in the parent
// and in the child: each paused writer starts a thread of this process.
VALUE native_logger_resume_all(VALUE) {
  return protect([&]() -> VALUE {
    auto writers = LogWriters::instance().all();
    for (auto* w : writers) w->resume();
    return SIZET2NUM(writers.size());
  });
}

}  // namespace kino::binding
