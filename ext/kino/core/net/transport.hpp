// A connection's byte stream: plaintext (SocketTransport) or TLS
// (TlsTransport), chosen at accept. A variant rather than a virtual
// interface: each operation is one well-predicted branch, and the
// handlers stay the concrete lambdas the connection passes (no type
// erasure, no allocation) on either path.
#pragma once

#include <utility>
#include <variant>

#include "net/socket_transport.hpp"
#include "net/tls_transport.hpp"

namespace kino {

class Transport {
 public:
  using Socket = SocketTransport::Socket;

  explicit Transport(SocketTransport plain) : stream_(std::move(plain)) {}
  explicit Transport(TlsTransport tls) : stream_(std::move(tls)) {}

  // Null on plaintext.
  TlsTransport* tls() noexcept { return std::get_if<TlsTransport>(&stream_); }
  const TlsTransport* tls() const noexcept { return std::get_if<TlsTransport>(&stream_); }

  Socket::executor_type executor() noexcept {
    return std::visit([](auto& s) { return s.executor(); }, stream_);
  }

  template <class Handler>
  void async_read_some(asio::mutable_buffer buffer, Handler&& handler) {
    if (auto* plain = std::get_if<SocketTransport>(&stream_)) {
      plain->async_read_some(buffer, std::forward<Handler>(handler));
    } else {
      std::get<TlsTransport>(stream_).async_read_some(buffer, std::forward<Handler>(handler));
    }
  }

  template <class Buffers, class Handler>
  void async_write(const Buffers& buffers, Handler&& handler) {
    if (auto* plain = std::get_if<SocketTransport>(&stream_)) {
      plain->async_write(buffers, std::forward<Handler>(handler));
    } else {
      std::get<TlsTransport>(stream_).async_write(buffers, std::forward<Handler>(handler));
    }
  }

  void close() noexcept {
    std::visit([](auto& s) { s.close(); }, stream_);
  }

  bool peer_gone() const noexcept {
    return std::visit([](const auto& s) { return s.peer_gone(); }, stream_);
  }

  // Plaintext only: shuts the socket's send side (TLS ends with
  // TlsTransport::async_shutdown instead).
  SocketTransport* plain() noexcept { return std::get_if<SocketTransport>(&stream_); }

 private:
  std::variant<SocketTransport, TlsTransport> stream_;
};

}  // namespace kino
