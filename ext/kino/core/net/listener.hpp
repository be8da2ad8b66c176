// Accepts connections on one address (TCP over IPv4/IPv6, or a Unix
// socket) through a generic stream acceptor, so the same Connection code
// serves every kind of socket, plaintext or TLS (when the server has a
// TLS context, every connection it accepts is HTTPS).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "util/asio.hpp"

namespace kino {

class Server;

// A descriptor handed to a Listener rather than an address to bind.
struct InheritedFd {
  int fd = -1;
};

// REMOTE_ADDR for an accepted socket, and the local port it came in on.
// A peer that is already gone (getpeername fails) is the unspecified
// address of the socket's family, never a made-up host.
std::string peer_address(const asio::generic::stream_protocol::socket& s, uint16_t* local_port);

// An acceptor opened, bound and listening on `address` ("tcp://HOST:PORT"
// or "unix:///path"; a stale socket file is replaced, a live one refused).
// Throws std::runtime_error naming the address.
struct BoundAcceptor {
  using Acceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol>;
  std::string address;    // as bound: the real port when 0 was asked for
  std::string unix_path;  // for the owner to remove at close; empty for TCP
  bool tcp = true;
};
BoundAcceptor bind_acceptor(BoundAcceptor::Acceptor& acceptor, asio::io_context& io,
                            const std::string& address, int backlog);

// A socket opened, bound and listening on `address` exactly as
// bind_acceptor does it, handed over as a raw descriptor that belongs to
// the caller: for a parent process that binds once and forks children to
// serve on it (no io_context or thread outlives the call). Throws
// std::runtime_error naming the address.
struct ListeningSocket {
  int fd = -1;
  std::string address;    // as bound: the real port when 0 was asked for
  std::string unix_path;  // empty for TCP; the caller removes the file when done
};
ListeningSocket open_listening_socket(const std::string& address, int backlog);

// Puts `fd` (a socket someone else bound and made listen) into `acceptor`
// as a duplicate, so `fd` stays the caller's. Returns whether it is TCP.
// Throws std::runtime_error naming `address` when `fd` is not a listening
// stream socket.
bool adopt_acceptor(BoundAcceptor::Acceptor& acceptor, const std::string& address, InheritedFd fd);

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  using Acceptor = BoundAcceptor::Acceptor;

  // Opens, binds and listens; throws std::runtime_error naming `address`.
  Listener(Server& server, const std::string& address, int backlog);
  // Serves a socket someone else bound and made listen (`fd`, inherited
  // from a parent or from systemd), known as `address`. The listener
  // accepts on a duplicate, so `fd` stays the caller's; a unix socket's
  // file is never removed here (its binder owns it). Throws
  // std::runtime_error naming `address` when `fd` is not a listening
  // stream socket.
  Listener(Server& server, const std::string& address, InheritedFd fd);
  ~Listener();

  void start();
  void close();   // any thread
  void resume();  // any thread: accept again after max_connections paused us

  const std::string& address() const noexcept { return bound_; }

 private:
  void do_accept();
  void open_connection(asio::generic::stream_protocol::socket socket, const std::string& peer,
                       uint16_t local_port);
  void back_off(const error_code& ec);

  Server& server_;
  asio::strand<asio::io_context::executor_type> strand_;
  Acceptor acceptor_;
  // Out of descriptors or memory, accept fails at once and would fail again
  // at once: accepting pauses instead, for a while growing from 10 to
  // 100 ms, and the episode is logged once. Strand-confined.
  asio::steady_timer backoff_timer_;
  int backoff_ms_ = 0;  // 0: not backing off
  std::string bound_;
  std::string unix_path_;  // removed again on close
  bool tcp_ = true;
  bool paused_ = false;  // strand-confined
};

}  // namespace kino
