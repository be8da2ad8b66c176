// A blocking HTTP/1 client over a loopback socket, for tests of a real
// server: it connects, writes, and reads a response, its head or all
// until EOF. Every read has a deadline (a receive timeout), so a server
// that never answers fails the test instead of hanging it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "../test_sink.hpp"

namespace kino::test {

class Client {
 public:
  static constexpr std::chrono::seconds kReadDeadline{5};

  // Adopts a connected socket.
  explicit Client(int fd) : fd_(fd) {
    timeval tv{static_cast<time_t>(kReadDeadline.count()), 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Null when nothing accepts the connection.
  static std::unique_ptr<Client> tcp(uint16_t port) {
    sockaddr_in addr = loopback(port);
    return connected(::socket(AF_INET, SOCK_STREAM, 0), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  static std::unique_ptr<Client> unix_socket(const std::string& path) {
    sockaddr_un addr = unix_address(path);
    return connected(::socket(AF_UNIX, SOCK_STREAM, 0), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }

  static sockaddr_in loopback(uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
  }
  static sockaddr_un unix_address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    return addr;
  }

  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one more piece into pending(); 0 at EOF, -1 on error or timeout.
  ssize_t read_some() {
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) in_.append(buf, static_cast<size_t>(n));
    return n;
  }

  // Reads until pending() holds a whole head (CRLF CRLF); false at EOF,
  // on an error or past the deadline.
  bool read_head() {
    while (in_.find("\r\n\r\n") == std::string::npos)
      if (read_some() <= 0) return false;
    return true;
  }

  // Reads one response framed by content-length (or to EOF without one)
  // and removes it from the input.
  std::string read_response() {
    for (;;) {
      size_t end = in_.find("\r\n\r\n");
      if (end != std::string::npos) {
        auto head = parse_response(in_.substr(0, end + 4));
        size_t total = end + 4;
        if (auto cl = head.get("content-length")) {
          total += std::stoul(*cl);
        } else if (head.status >= 200 && head.status != 204 && head.status != 304) {
          total = std::string::npos;  // to EOF
        }
        if (total != std::string::npos && in_.size() >= total) {
          std::string out = in_.substr(0, total);
          in_.erase(0, total);
          return out;
        }
      }
      ssize_t n = read_some();
      if (n <= 0) {
        std::string out = in_;
        in_.clear();
        return out;
      }
    }
  }

  // read_response(), parsed.
  ParsedResponse response() { return parse_response(read_response()); }

  // Reads until the server closes; true when it did (EOF), false on timeout.
  bool read_to_eof(std::string& out) {
    for (;;) {
      ssize_t n = read_some();
      if (n == 0) break;
      if (n < 0) {
        if (errno == ECONNRESET) break;
        out = in_;
        return false;
      }
    }
    out = in_;
    in_.clear();
    return true;
  }

  // All the server sent until it closed the connection, parsed.
  struct Closed {
    bool eof;  // read_to_eof(): the server closed before the deadline
    std::string wire;
    ParsedResponse response;
  };
  Closed until_closed() {
    Closed out;
    out.eof = read_to_eof(out.wire);
    out.response = parse_response(out.wire);
    return out;
  }

  // Whether the server closed the connection within `timeout`.
  bool closed_by_peer(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char c;
    ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  std::string& pending() { return in_; }

 private:
  static std::unique_ptr<Client> connected(int fd, const sockaddr* addr, socklen_t len) {
    if (::connect(fd, addr, len) != 0) {
      ::close(fd);
      return nullptr;
    }
    return std::make_unique<Client>(fd);
  }

  int fd_;
  std::string in_;
};

// The port of "tcp://HOST:PORT".
inline uint16_t port_of(const std::string& address) {
  auto colon = address.rfind(':');
  return static_cast<uint16_t>(std::stoi(address.substr(colon + 1)));
}

}  // namespace kino::test
