#include "net/listener.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "net/connection.hpp"
#include "net/tls_context.hpp"
#include "server.hpp"

namespace kino {

namespace {

using generic_endpoint = asio::generic::stream_protocol::endpoint;

std::runtime_error bind_error(const std::string& address, const std::string& why) {
  return std::runtime_error("cannot listen on " + address + ": " + why);
}

// "tcp://HOST:PORT" -> endpoint; HOST may be a name, IPv4 or [IPv6].
asio::ip::tcp::endpoint parse_tcp(asio::io_context& io, const std::string& address) {
  std::string rest = address.substr(6);
  std::string host, port;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      throw bind_error(address, "expected tcp://[IPV6]:PORT");
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    size_t colon = rest.rfind(':');
    if (colon == std::string::npos) throw bind_error(address, "expected tcp://HOST:PORT");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
      std::stoi(port) > 65535)
    throw bind_error(address, "invalid port");
  error_code ec;
  auto ip = asio::ip::make_address(host, ec);
  if (!ec) return {ip, static_cast<unsigned short>(std::stoi(port))};
  asio::ip::tcp::resolver resolver(io);
  auto results = resolver.resolve(host, port, asio::ip::tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) throw bind_error(address, "cannot resolve host " + host);
  return results.begin()->endpoint();
}

std::string describe(const asio::ip::tcp::endpoint& ep) {
  auto a = ep.address();
  std::string host = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return "tcp://" + host + ":" + std::to_string(ep.port());
}

// The system is out of something every accept needs: retrying at once
// fails again at once.
bool is_exhaustion(const error_code& ec) {
  if (ec.category() != asio::error::get_system_category()) return false;
  int e = ec.value();
  return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

}  // namespace

std::string peer_address(const asio::generic::stream_protocol::socket& s, uint16_t* local_port) {
  error_code local_ec, remote_ec;
  auto local = s.local_endpoint(local_ec);
  auto remote = s.remote_endpoint(remote_ec);
  *local_port = 0;
  int family = local_ec ? AF_UNSPEC : local.data()->sa_family;
  if (family == AF_INET)
    *local_port = ntohs(reinterpret_cast<const sockaddr_in*>(local.data())->sin_port);
  else if (family == AF_INET6)
    *local_port = ntohs(reinterpret_cast<const sockaddr_in6*>(local.data())->sin6_port);
  if (remote_ec) {
    // The client left between accept and here (ENOTCONN). Naming any real
    // host would lie; the unspecified address says "unknown", as Puma does.
    if (family == AF_INET6) return "::";
    if (family == AF_INET) return "0.0.0.0";
    return "";
  }
  char buf[INET6_ADDRSTRLEN] = {0};
  const sockaddr* sa = remote.data();
  if (sa->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
    return buf;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    // An IPv4 client on a dual-stack socket is reported as plain IPv4.
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      inet_ntop(AF_INET, reinterpret_cast<const char*>(&in6->sin6_addr) + 12, buf, sizeof buf);
      return buf;
    }
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    return buf;
  }
  // Unix sockets have no peer address; Rack apps expect an IP, and the
  // peer is on this machine.
  if (sa->sa_family == AF_UNIX) return "127.0.0.1";
  return "";
}

BoundAcceptor bind_acceptor(BoundAcceptor::Acceptor& acceptor, asio::io_context& io,
                            const std::string& address, int backlog) {
  BoundAcceptor bound;
  error_code ec;
  if (address.rfind("tcp://", 0) == 0) {
    auto ep = parse_tcp(io, address);
    generic_endpoint gep(ep);
    acceptor.open(gep.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(gep, ec);
    if (!ec) acceptor.listen(backlog, ec);
    if (ec) throw bind_error(address, ec.message());
    generic_endpoint actual = acceptor.local_endpoint(ec);
    asio::ip::tcp::endpoint tcp_actual;
    std::memcpy(tcp_actual.data(), actual.data(), actual.size());
    bound.address = describe(tcp_actual);
  } else if (address.rfind("unix://", 0) == 0) {
    bound.tcp = false;
    std::string path = address.substr(7);
    if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path))
      throw bind_error(address, "invalid unix socket path");
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) throw bind_error(address, "the path exists and is not a socket");
      // A socket file nobody answers on is left over from a crash.
      asio::local::stream_protocol::socket probe(io);
      probe.connect(asio::local::stream_protocol::endpoint(path), ec);
      if (!ec) throw bind_error(address, "another server is listening there");
      ::unlink(path.c_str());
      ec.clear();
    }
    generic_endpoint gep(asio::local::stream_protocol::endpoint{path});
    acceptor.open(gep.protocol(), ec);
    if (!ec) acceptor.bind(gep, ec);
    if (!ec) acceptor.listen(backlog, ec);
    if (ec) throw bind_error(address, ec.message());
    bound.unix_path = path;
    bound.address = "unix://" + path;
  } else {
    throw bind_error(address, "expected tcp://HOST:PORT or unix:///PATH");
  }
  return bound;
}

ListeningSocket open_listening_socket(const std::string& address, int backlog) {
  // A private io_context: it starts no thread, and dies with this call.
  asio::io_context io;
  BoundAcceptor::Acceptor acceptor(io);
  BoundAcceptor bound = bind_acceptor(acceptor, io, address, backlog);
  error_code ec;
  int fd = acceptor.release(ec);
  if (ec) {
    if (!bound.unix_path.empty()) ::unlink(bound.unix_path.c_str());
    throw bind_error(address, ec.message());
  }
  // Close-on-exec: forked children inherit it all the same, and a program
  // the app runs must not hold the port open after the server has gone. A
  // restart that execs hands it over explicitly.
  if (::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    int err = errno;
    ::close(fd);
    if (!bound.unix_path.empty()) ::unlink(bound.unix_path.c_str());
    throw bind_error(address, std::strerror(err));
  }
  return ListeningSocket{fd, std::move(bound.address), std::move(bound.unix_path)};
}

bool adopt_acceptor(BoundAcceptor::Acceptor& acceptor, const std::string& address, InheritedFd inherited) {
  int accepting = 0;
  socklen_t len = sizeof accepting;
  int type = 0;
  socklen_t type_len = sizeof type;
  if (::getsockopt(inherited.fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 ||
      ::getsockopt(inherited.fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_STREAM ||
      accepting == 0)
    throw bind_error(address,
                     "descriptor " + std::to_string(inherited.fd) + " is not a listening stream socket");
  sockaddr_storage local{};
  socklen_t local_len = sizeof local;
  if (::getsockname(inherited.fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0)
    throw bind_error(address, std::strerror(errno));
  int family = local.ss_family;
  bool tcp = family == AF_INET || family == AF_INET6;
  // The duplicate is ours to close; close-on-exec, as asio's own sockets.
  int fd = ::fcntl(inherited.fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) throw bind_error(address, std::strerror(errno));
  error_code ec;
  acceptor.assign(asio::generic::stream_protocol(family, tcp ? IPPROTO_TCP : 0), fd, ec);
  if (ec) {
    ::close(fd);
    throw bind_error(address, ec.message());
  }
  return tcp;
}

Listener::Listener(Server& server, const std::string& address, InheritedFd inherited)
    : server_(server), strand_(asio::make_strand(server.io())), acceptor_(strand_), backoff_timer_(strand_) {
  tcp_ = adopt_acceptor(acceptor_, address, inherited);
  bound_ = address;
}

Listener::Listener(Server& server, const std::string& address, int backlog)
    : server_(server), strand_(asio::make_strand(server.io())), acceptor_(strand_), backoff_timer_(strand_) {
  BoundAcceptor bound = bind_acceptor(acceptor_, server.io(), address, backlog);
  bound_ = std::move(bound.address);
  unix_path_ = std::move(bound.unix_path);
  tcp_ = bound.tcp;
}

Listener::~Listener() {
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

void Listener::start() {
  asio::dispatch(strand_, [self = shared_from_this()] { self->do_accept(); });
}

void Listener::close() {
  // The socket file goes now, not when the last handler lets go of us:
  // a new server may want the path as soon as stop() returns.
  if (!unix_path_.empty()) {
    ::unlink(unix_path_.c_str());
    unix_path_.clear();
  }
  asio::post(strand_, [self = shared_from_this()] {
    error_code ignored;
    self->acceptor_.close(ignored);
    self->backoff_timer_.cancel();
  });
}

void Listener::resume() {
  asio::post(strand_, [self = shared_from_this()] {
    if (!self->paused_) return;
    self->paused_ = false;
    self->do_accept();
  });
}

void Listener::do_accept() {
  if (!acceptor_.is_open()) return;
  if (server_.at_capacity()) {
    // Leave new clients in the kernel backlog until a connection closes.
    // The flag is raised before the count is checked again, so a close in
    // between cannot be missed.
    paused_ = true;
    server_.accept_paused();
    if (server_.at_capacity()) return;
    paused_ = false;
  }
  // Each connection gets its own strand: handlers of one connection never
  // run concurrently, different connections run on all I/O threads.
  acceptor_.async_accept(asio::make_strand(server_.io()),
                         [self = shared_from_this()](const error_code& ec, Connection::Socket socket) {
                           if (ec) {
                             if (ec == asio::error::operation_aborted || !self->acceptor_.is_open()) return;
                             if (is_exhaustion(ec)) {
                               self->back_off(ec);
                               return;
                             }
                             self->server_.report(ec,
                                                  "accept");  // this client's trouble (ECONNABORTED): go on
                           } else if (self->backoff_ms_ > 0) {
                             self->backoff_ms_ = 0;
                             self->server_.log_line("accept: accepting connections again");
                           }
                           if (!ec && !self->server_.draining()) {
                             error_code ignored;
                             if (self->tcp_) socket.set_option(asio::ip::tcp::no_delay(true), ignored);
                             uint16_t local_port = 0;
                             std::string peer = peer_address(socket, &local_port);
                             self->open_connection(std::move(socket), peer, local_port);
                           }
                           self->do_accept();
                         });
}

void Listener::open_connection(Connection::Socket socket, const std::string& peer, uint16_t local_port) {
  std::shared_ptr<TlsContext> tls = server_.tls_context();
  if (!tls) {
    std::make_shared<Connection>(server_.shared_from_this(), Transport(SocketTransport(std::move(socket))),
                                 peer, local_port)
        ->start();
    return;
  }
  // OpenSSL allocates per connection, and may fail: that client is
  // dropped, the listener goes on.
  try {
    Transport transport(TlsTransport(std::move(socket), std::move(tls)));
    std::make_shared<Connection>(server_.shared_from_this(), std::move(transport), peer, local_port)->start();
  } catch (const std::exception& e) {
    server_.log_line(std::string("tls: cannot set up a connection: ") + e.what());
  }
}

// The kernel backlog holds new clients meanwhile; connections that close
// free descriptors, and the next try after the pause takes the backlog.
void Listener::back_off(const error_code& ec) {
  if (backoff_ms_ == 0) {
    server_.log_line("accept: " + ec.message() + "; pausing accepts until connections close");
    backoff_ms_ = 10;
  } else if (backoff_ms_ < 100) {
    backoff_ms_ = backoff_ms_ * 2 < 100 ? backoff_ms_ * 2 : 100;
  }
  backoff_timer_.expires_after(std::chrono::milliseconds(backoff_ms_));
  backoff_timer_.async_wait([self = shared_from_this()](const error_code& wait_ec) {
    if (!wait_ec) self->do_accept();
  });
}

}  // namespace kino
