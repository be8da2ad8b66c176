// A pseudo-terminal for tests of what is written differently to a
// terminal: `tty` is the side a program writes to, `master` the side that
// reads what it wrote. Raw, so the bytes arrive as written.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include <stdexcept>

namespace kino::test {

struct Terminal {
  int master = -1;
  int tty = -1;

  Terminal() {
    master = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) throw std::runtime_error("no pty");
    tty = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
    if (tty < 0) throw std::runtime_error("no pty slave");
    termios raw;
    ::tcgetattr(tty, &raw);
    ::cfmakeraw(&raw);
    ::tcsetattr(tty, TCSANOW, &raw);
  }
  ~Terminal() {
    ::close(tty);
    ::close(master);
  }
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;
};

}  // namespace kino::test
