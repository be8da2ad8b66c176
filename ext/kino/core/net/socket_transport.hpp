// The byte stream under a connection: a stream socket, TCP or unix (the
// listener accepts both through one generic type). It carries bytes and
// knows nothing of HTTP. A TLS transport is to offer the same operations
// over asio::ssl::stream, its handshake done before the first read.
//
// All but peer_gone() belong to the connection's strand (the socket's
// executor).
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <utility>

#include "util/asio.hpp"

namespace kino {

class SocketTransport {
 public:
  using Socket = asio::generic::stream_protocol::socket;

  explicit SocketTransport(Socket socket) : socket_(std::move(socket)), fd_(socket_.native_handle()) {}

  Socket::executor_type executor() noexcept { return socket_.get_executor(); }

  template <class Handler>
  void async_read_some(asio::mutable_buffer buffer, Handler&& handler) {
    socket_.async_read_some(buffer, std::forward<Handler>(handler));
  }

  template <class Buffers, class Handler>
  void async_write(const Buffers& buffers, Handler&& handler) {
    asio::async_write(socket_, buffers, std::forward<Handler>(handler));
  }

  // Ends the send side; the receive side stays open (a lingering close).
  void shutdown_send() noexcept {
    error_code ignored;
    socket_.shutdown(Socket::shutdown_send, ignored);
  }

  void close() noexcept {
    error_code ignored;
    socket_.close(ignored);
  }

  // Any thread, while nothing reads the socket: whether the client has
  // left. A peek takes nothing off the socket. End of stream counts as
  // gone, as nginx counts it: a client that sends a request and shuts its
  // side has, in practice, given up on it. If the descriptor was closed
  // (even reused) after the connection's open() said true, that connection
  // is closed anyway and no answer is lost either way.
  bool peer_gone() const noexcept {
    char byte;
    ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;
    return n < 0 && (errno == ECONNRESET || errno == ENOTCONN || errno == EPIPE);
  }

 private:
  Socket socket_;
  int fd_;  // the socket's descriptor, for peer_gone() from other threads
};

}  // namespace kino
