#include "net/listener.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace kino;
using Socket = asio::generic::stream_protocol::socket;

namespace {

// An open TCP socket bound to a loopback port but connected to nobody:
// getpeername fails on it with ENOTCONN, as on a client that vanished.
Socket bound_unconnected(asio::io_context& io, const asio::ip::tcp::endpoint& at) {
  asio::ip::tcp::socket tcp(io);
  tcp.open(at.protocol());
  tcp.bind(at);
  return Socket(std::move(tcp));
}

}  // namespace

TEST(PeerAddress, APeerThatIsGoneIsTheUnspecifiedAddressNotLoopback) {
  asio::io_context io;
  Socket v4 = bound_unconnected(io, {asio::ip::make_address("127.0.0.1"), 0});
  uint16_t port = 0;
  EXPECT_EQ(peer_address(v4, &port), "0.0.0.0");
  EXPECT_NE(port, 0) << "the local port is still known";

  error_code ec;
  asio::ip::tcp::socket probe(io);
  probe.open(asio::ip::tcp::v6(), ec);
  if (!ec) probe.bind({asio::ip::make_address("::1"), 0}, ec);
  if (ec) GTEST_SKIP() << "no IPv6 loopback here";
  probe.close();
  Socket v6 = bound_unconnected(io, {asio::ip::make_address("::1"), 0});
  EXPECT_EQ(peer_address(v6, &port), "::");
}

TEST(PeerAddress, ConnectedPeersAreReportedAsTheyAre) {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ip::tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  Socket accepted(acceptor.accept());
  uint16_t port = 0;
  EXPECT_EQ(peer_address(accepted, &port), "127.0.0.1");
  EXPECT_EQ(port, acceptor.local_endpoint().port());

  asio::local::stream_protocol::socket a(io), b(io);
  asio::local::connect_pair(a, b);
  Socket unix_side(std::move(a));
  EXPECT_EQ(peer_address(unix_side, &port), "127.0.0.1") << "a Unix socket's peer is this machine";
  EXPECT_EQ(port, 0);
}
