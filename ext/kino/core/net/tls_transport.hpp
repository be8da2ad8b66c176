// The byte stream of an HTTPS connection: asio::ssl::stream over the
// accepted socket. It offers SocketTransport's operations (read, write,
// the end of the send side, the close, whether the client has left) plus
// the handshake, which the connection runs before its first read; what it
// reads and writes is application data.
//
// All but peer_gone() belong to the connection's strand (the socket's
// executor).
#pragma once

#include <poll.h>

#include <memory>
#include <utility>

#include "net/socket_transport.hpp"
#include "net/tls_context.hpp"

namespace kino {

class TlsTransport {
 public:
  using Socket = SocketTransport::Socket;
  using Stream = asio::ssl::stream<Socket>;

  // `context` is the server's current one; the connection keeps it to the
  // end, whatever a reload does meanwhile.
  TlsTransport(Socket socket, std::shared_ptr<TlsContext> context)
      : context_(std::move(context)),
        stream_(std::make_unique<Stream>(std::move(socket), context_->native())),
        fd_(stream_->next_layer().native_handle()) {}

  Socket::executor_type executor() noexcept { return stream_->get_executor(); }

  template <class Handler>
  void async_handshake(Handler&& handler) {
    stream_->async_handshake(asio::ssl::stream_base::server, std::forward<Handler>(handler));
  }

  template <class Handler>
  void async_read_some(asio::mutable_buffer buffer, Handler&& handler) {
    stream_->async_read_some(buffer, std::forward<Handler>(handler));
  }

  template <class Buffers, class Handler>
  void async_write(const Buffers& buffers, Handler&& handler) {
    asio::async_write(*stream_, buffers, std::forward<Handler>(handler));
  }

  // The TLS end of the send side: close_notify, then (once the client's
  // answer to it, its end of stream or an error comes back) the handler.
  // Application data arriving meanwhile is fatal to OpenSSL, so the
  // connection first reads to the client's end what a client may still be
  // sending (Connection::linger), and bounds the wait with its linger
  // deadline.
  template <class Handler>
  void async_shutdown(Handler&& handler) {
    stream_->async_shutdown(std::forward<Handler>(handler));
  }

  void close() noexcept {
    error_code ignored;
    stream_->next_layer().close(ignored);
  }

  // Any thread, while nothing reads the socket: whether the client has
  // left. A client that leaves a TLS connection first sends close_notify,
  // so bytes waiting do not mean it is there, as they do in plaintext:
  // what counts is whether its side of the TCP stream has ended (POLLRDHUP)
  // or the socket failed.
  bool peer_gone() const noexcept {
    pollfd p{fd_, POLLRDHUP, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
  }

  // The protocol ALPN chose ("http/1.1"), empty when none was.
  std::string_view alpn() const noexcept {
    const unsigned char* data = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(stream_->native_handle(), &data, &len);
    return {reinterpret_cast<const char*>(data), len};
  }

 private:
  std::shared_ptr<TlsContext> context_;  // outlives the stream
  std::unique_ptr<Stream> stream_;       // on the heap: plaintext connections stay small
  int fd_;
};

}  // namespace kino
