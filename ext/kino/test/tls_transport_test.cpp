// A real server over TLS (TlsTransport under the connection), talked to by
// an in-process OpenSSL client over loopback: the handshake and its
// deadline, requests and keep-alive, the lingering close with
// close_notify, peer_gone, and what happens to clients that speak no TLS.
#include "net/tls_transport.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "support/server_fixture.hpp"
#include "support/tls_client.hpp"

namespace kino {
namespace {

using namespace std::chrono_literals;
using test::CertificatePem;
using test::Client;
using test::parse_response;
using test::reply;
using test::self_signed;
using test::TlsClient;

class TlsTransportTest : public test::ServerTest {
 protected:
  Server& start_tls() {
    config.tls = TlsSources{pem_.cert, pem_.key, ""};
    return start();
  }
  uint16_t port() { return test::port_of(server().addresses().at(0)); }

  // One GET over `client`, answered with `body`: the body the client read.
  std::string round_trip(TlsClient& client, std::string_view body) {
    if (!client.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")) return "(not sent)";
    RequestRef req = pop();
    if (!req) return "(no request)";
    if (!reply(*req, 200, body)) return "(not answered)";
    return parse_response(client.read_response()).body;
  }

  CertificatePem pem_ = self_signed();
};

TEST_F(TlsTransportTest, ServesARequestOverTls13WithAlpnHttp11) {
  start_tls();
  TlsClient client(port(), pem_.cert);
  ASSERT_TRUE(client.handshake_ok()) << client.handshake_error();
  EXPECT_EQ(client.version(), "TLSv1.3");
  EXPECT_EQ(client.alpn(), "http/1.1");  // offered h2 too: not chosen
  ASSERT_TRUE(client.send("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  RequestRef req = pop();
  ASSERT_TRUE(req);
  EXPECT_TRUE(req->https);
  EXPECT_EQ(view(req->path), "/hello");
  ASSERT_TRUE(reply(*req, 200, "over tls"));
  auto response = parse_response(client.read_response());
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "over tls");
}

TEST_F(TlsTransportTest, ServesTls12) {
  start_tls();
  TlsClient client(port(), pem_.cert, {.max_version = TLS1_2_VERSION});
  ASSERT_TRUE(client.handshake_ok()) << client.handshake_error();
  EXPECT_EQ(client.version(), "TLSv1.2");
}

TEST_F(TlsTransportTest, RefusesTls11) {
  start_tls();
  TlsClient client(port(), pem_.cert, {.max_version = TLS1_1_VERSION});
  EXPECT_FALSE(client.handshake_ok());
  EXPECT_NE(client.handshake_error().find("protocol version"), std::string::npos) << client.handshake_error();
}

TEST_F(TlsTransportTest, KeepsTheConnectionAliveAndReadsRequestsSplitAcrossRecords) {
  start_tls();
  TlsClient client(port(), pem_.cert);
  ASSERT_TRUE(client.handshake_ok()) << client.handshake_error();
  for (int i = 0; i < 3; ++i) {
    std::string body(100'000 + i, 'x');
    std::string wire =
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    ASSERT_TRUE(client.send(wire, 7 + i * 1000));  // partial records: the head arrives in pieces
    RequestRef req = pop();
    ASSERT_TRUE(req);
    ASSERT_TRUE(req->body);
    EXPECT_EQ(req->body->received(), body.size());
    ASSERT_TRUE(reply(*req, 200, "got " + std::to_string(i)));
    EXPECT_EQ(parse_response(client.read_response()).body, "got " + std::to_string(i));
  }
}

TEST_F(TlsTransportTest, EndsWithCloseNotifyAfterAConnectionCloseResponse) {
  start_tls();
  TlsClient client(port(), pem_.cert);
  ASSERT_TRUE(client.handshake_ok()) << client.handshake_error();
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
  RequestRef req = pop();
  ASSERT_TRUE(req);
  ASSERT_TRUE(reply(*req, 200, "bye"));
  // The client stays: nothing more was expected of it, so close_notify
  // comes at once, not after the linger deadline.
  auto started = std::chrono::steady_clock::now();
  std::string wire;
  EXPECT_EQ(client.read_to_end(wire), "close_notify");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
  EXPECT_EQ(parse_response(wire).body, "bye");
}

TEST_F(TlsTransportTest, LingersThroughTheRestOfARefusedBody) {
  config.limits.max_body_size = 1000;
  start_tls();
  TlsClient client(port(), pem_.cert);
  ASSERT_TRUE(client.handshake_ok()) << client.handshake_error();
  // The head says too much: 413 at once, while the client goes on sending.
  // Every record must be taken: close_notify sent into arriving data would
  // make OpenSSL fail the shutdown and the close reset the connection.
  ASSERT_TRUE(client.send("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200000\r\n\r\n"));
  std::this_thread::sleep_for(50ms);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(client.send(std::string(10'000, 'y'))) << "record " << i;
    std::this_thread::sleep_for(10ms);
  }
  client.leave();
  std::string wire;
  EXPECT_EQ(client.read_to_end(wire), "close_notify");
  EXPECT_EQ(parse_response(wire).status, 413) << wire;
}

TEST_F(TlsTransportTest, SeesAClientThatLeftWhileItsRequestWaited) {
  start_tls();
  TlsClient client(port(), pem_.cert);
  ASSERT_TRUE(client.handshake_ok()) << client.handshake_error();
  ASSERT_TRUE(client.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  RequestRef req = pop();
  ASSERT_TRUE(req);
  EXPECT_FALSE(req->sink->peer_gone());
  client.leave();
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::this_thread::sleep_for(10ms);
    gone = req->sink->peer_gone();
  }
  EXPECT_TRUE(gone);
  reply(*req, 200, "nobody");
}

TEST_F(TlsTransportTest, ClosesAHandshakeThatStallsAtItsDeadline) {
  config.tls_handshake_timeout = 300ms;
  start_tls();
  auto silent = Client::tcp(port());
  ASSERT_TRUE(silent);
  auto partial = Client::tcp(port());
  ASSERT_TRUE(partial);
  ASSERT_TRUE(partial->send(std::string_view("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)));
  auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(silent->closed_by_peer(3000ms));
  EXPECT_TRUE(partial->closed_by_peer(3000ms));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2500ms);
  EXPECT_GE(server().counters().timeouts.load(), 2u);
}

TEST_F(TlsTransportTest, TheHandshakeDeadlineEndsWithTheHandshake) {
  config.tls_handshake_timeout = 300ms;
  start_tls();
  TlsClient client(port(), pem_.cert);
  ASSERT_TRUE(client.handshake_ok()) << client.handshake_error();
  std::this_thread::sleep_for(600ms);  // idle past the handshake's deadline, within first_data_timeout
  EXPECT_EQ(round_trip(client, "still here"), "still here");
}

TEST_F(TlsTransportTest, ClosesPlaintextSentToTheTlsPortAndServesOn) {
  start_tls();
  auto plain = Client::tcp(port());
  ASSERT_TRUE(plain);
  ASSERT_TRUE(plain->send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  auto closed = plain->until_closed();
  EXPECT_TRUE(closed.eof);
  EXPECT_NE(closed.wire.rfind("HTTP/", 0), 0u);  // no HTTP answer in the clear
  TlsClient client(port(), pem_.cert);
  ASSERT_TRUE(client.handshake_ok()) << client.handshake_error();
}

TEST_F(TlsTransportTest, AReloadReachesNewConnectionsOnly) {
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("kino-tls-reload-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  test::write_file(cert, pem_.cert);
  test::write_file(key, pem_.key);
  config.tls = TlsSources{cert, key, ""};
  start();
  TlsClient before(port(), pem_.cert);
  ASSERT_TRUE(before.handshake_ok()) << before.handshake_error();

  CertificatePem next = self_signed("next");
  test::write_file(cert, next.cert);
  test::write_file(key, next.key);
  server().reload_tls();
  TlsClient after(port(), next.cert);
  ASSERT_TRUE(after.handshake_ok()) << after.handshake_error();
  EXPECT_EQ(after.peer_common_name(), "next");

  test::write_file(key, "not a key\n");
  EXPECT_THROW(server().reload_tls(), TlsError);
  TlsClient still(port(), next.cert);
  EXPECT_TRUE(still.handshake_ok()) << still.handshake_error();

  // The connection made before the reload goes on with its certificate.
  EXPECT_EQ(round_trip(before, "old"), "old");
  EXPECT_EQ(before.peer_common_name(), "localhost");
  std::filesystem::remove_all(dir);
}

TEST_F(TlsTransportTest, RequiresAClientCertificateSignedByTheCa) {
  CertificatePem client_pem = self_signed("client");
  config.tls = TlsSources{pem_.cert, pem_.key, client_pem.cert};
  start();
  TlsClient anonymous(port(), pem_.cert);
  if (anonymous.handshake_ok()) {
    // TLS 1.3: the server's refusal arrives after the client's Finished.
    anonymous.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    std::string wire;
    EXPECT_NE(anonymous.read_to_end(wire), "close_notify");
    EXPECT_EQ(wire, "");
  }
  TlsClient stranger(port(), pem_.cert, {.client_cert = &pem_});
  if (stranger.handshake_ok()) {
    stranger.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    std::string wire;
    stranger.read_to_end(wire);
    EXPECT_EQ(wire, "");
  }
  TlsClient known(port(), pem_.cert, {.client_cert = &client_pem});
  ASSERT_TRUE(known.handshake_ok()) << known.handshake_error();
  EXPECT_EQ(round_trip(known, "known"), "known");
}

TEST_F(TlsTransportTest, ADrainAnswersWhatIsInFlightAndClosesIdleConnections) {
  start_tls();
  TlsClient idle(port(), pem_.cert);
  ASSERT_TRUE(idle.handshake_ok()) << idle.handshake_error();
  TlsClient busy(port(), pem_.cert);
  ASSERT_TRUE(busy.handshake_ok()) << busy.handshake_error();
  ASSERT_TRUE(busy.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  RequestRef req = pop();
  ASSERT_TRUE(req);
  auto started = std::chrono::steady_clock::now();
  std::thread stopper([this] { server().stop(5000ms); });
  std::string wire;
  idle.read_to_end(wire);  // the drain closes it at once
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2000ms);
  EXPECT_EQ(wire, "");
  ASSERT_TRUE(reply(*req, 200, "drained"));
  EXPECT_EQ(parse_response(busy.read_response()).body, "drained");
  stopper.join();
}

TEST_F(TlsTransportTest, PlaintextServersStayPlaintext) {
  start();
  EXPECT_EQ(server().tls_context(), nullptr);
  EXPECT_THROW(server().reload_tls(), std::logic_error);
  auto client = connect();
  ASSERT_TRUE(client->send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  RequestRef req = pop();
  ASSERT_TRUE(req);
  EXPECT_FALSE(req->https);
  reply(*req, 200, "plain");
  EXPECT_EQ(client->response().body, "plain");
}

}  // namespace
}  // namespace kino
