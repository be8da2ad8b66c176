#include "server.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "http1/responder.hpp"
#include "net/listener.hpp"
#include "support/server_fixture.hpp"
#include "support/terminal.hpp"

using namespace kino;
using namespace kino::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

std::string str(const Bytes& b) { return std::string(b.data(), b.size()); }

std::string temp_socket_path(const char* tag) {
  static std::atomic<int> n{0};
  return "/tmp/kino-test-" + std::to_string(::getpid()) + "-" + tag + "-" + std::to_string(n++) + ".sock";
}

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Whether a TCP connect to the loopback `port` is refused: nothing listens.
bool connect_refused(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = Client::loopback(port);
  bool refused = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno == ECONNREFUSED;
  ::close(fd);
  return refused;
}

size_t count_lines(const std::vector<std::string>& lines, std::string_view what) {
  size_t n = 0;
  for (const auto& line : lines)
    if (line.find(what) != std::string::npos) ++n;
  return n;
}

}  // namespace

TEST_F(ServerTest, StatsShowSlotsTheQueueWaitAndTheControlPlane) {
  config.workers = 2;
  config.threads = 1;
  config.worker_slots = 4;  // room for quarantine replacements: not shown
  config.mode = "threaded";
  config.control_bind = "tcp://127.0.0.1:0";
  start();
  EXPECT_EQ(server().stats().state, "booting") << "no worker reported yet";
  server().report_pool(2, 1, 0);
  auto client = connect();
  RequestRef req = send_and_pop(*client, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(req);
  server().slots().hold(1, req.get());
  ServerStats busy = server().stats();
  EXPECT_EQ(busy.state, "ready");
  EXPECT_EQ(busy.respawns, 1u);
  ASSERT_EQ(busy.slots.size(), 2u);
  EXPECT_TRUE(busy.slots[1].in_flight);
  EXPECT_EQ(busy.slots[1].worker, 1u);
  EXPECT_EQ(busy.queue_wait.count, 1u);
  ASSERT_TRUE(reply(*req, 200, "ok"));
  EXPECT_EQ(server().stats().slots[1].served, 1u);

  auto control = Client::tcp(port_of(server().control_address()));
  ASSERT_TRUE(control);
  ASSERT_TRUE(control->send("GET /stats HTTP/1.1\r\n\r\n"));
  std::string wire = control->read_response();
  EXPECT_NE(wire.find("\"workers_up\":2"), std::string::npos) << wire;
}

TEST_F(ServerTest, ServesARequestOverTcp) {
  start();
  auto addresses = server().addresses();
  ASSERT_EQ(addresses.size(), 1u);
  uint16_t port = port_of(addresses[0]);
  auto client = Client::tcp(port);
  ASSERT_TRUE(client) << "the started server accepts no connection";
  RequestRef req =
      send_and_pop(*client, "GET /hello?name=kino HTTP/1.1\r\nHost: localhost\r\nX-Test: 1\r\n\r\n");
  ASSERT_TRUE(req) << "the request never reached the queue";
  EXPECT_EQ(str(req->method), "GET");
  EXPECT_EQ(str(req->path), "/hello");
  EXPECT_EQ(str(req->query), "name=kino");
  EXPECT_EQ(str(req->peer_address), "127.0.0.1");
  EXPECT_EQ(req->local_port, port);
  EXPECT_TRUE(req->sink);
  EXPECT_EQ(server().counters().in_flight.load(), 1);
  EXPECT_GT(req->queued_ns, 0) << "dispatch marks when it queued the request";
  EXPECT_GE(req->taken_ns(), req->queued_ns);
  ASSERT_TRUE(reply(*req, 200, "hello, kino"));

  auto r = client->response();
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.get("content-length"), "11");
  EXPECT_TRUE(r.get("date"));
  EXPECT_EQ(r.body, "hello, kino");

  // The connection is kept alive for a second request.
  RequestRef again = send_and_pop(*client, "GET /again HTTP/1.1\r\nHost: localhost\r\n\r\n");
  ASSERT_TRUE(again);
  EXPECT_EQ(str(again->path), "/again");
  ASSERT_TRUE(reply(*again, 201, "again"));
  auto r2 = client->response();
  EXPECT_EQ(r2.status, 201);
  EXPECT_EQ(r2.body, "again");

  auto snap = server().counters().snapshot();
  EXPECT_EQ(snap.requests_received, 2u);
  EXPECT_EQ(snap.connections_accepted, 1u);
  EXPECT_EQ(server().stop(2000ms), 0);
  EXPECT_TRUE(connect_refused(port)) << "something still listens after stop()";
}

TEST_F(ServerTest, AddressesReportTheRealPort) {
  start();
  auto addresses = server().addresses();
  ASSERT_EQ(addresses.size(), 1u);
  EXPECT_EQ(addresses[0].rfind("tcp://127.0.0.1:", 0), 0u) << addresses[0];
  uint16_t port = port_of(addresses[0]);
  EXPECT_NE(port, 0);
  EXPECT_TRUE(Client::tcp(port)) << "something listens on the reported port";
}

TEST(Server, ServesIPv6Loopback) {
  ServerConfig config = server_config();
  config.listen = {"tcp://[::1]:0"};
  auto server = std::make_shared<Server>(config);
  try {
    server->bind();
  } catch (const std::runtime_error& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  auto addresses = server->addresses();
  ASSERT_EQ(addresses.size(), 1u);
  EXPECT_EQ(addresses[0].rfind("tcp://[::1]:", 0), 0u) << addresses[0];
  EXPECT_NE(port_of(addresses[0]), 0);
}

TEST_F(ServerTest, PortInUseThrowsNamingTheAddress) {
  start();
  std::string address = server().addresses().at(0);
  config.listen = {address};
  auto second = std::make_shared<Server>(config);
  try {
    second->bind();
    FAIL() << "binding " << address << " twice succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(address), std::string::npos) << e.what();
  }
  EXPECT_TRUE(second->addresses().empty()) << "a failed bind left a listener open";
  // The first server still works.
  auto client = Client::tcp(port_of(address));
  ASSERT_TRUE(client);
  RequestRef req = send_and_pop(*client, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(req);
  reply(*req, 200, "ok");
  EXPECT_EQ(client->response().status, 200);
}

TEST(Server, BadAddressesThrow) {
  for (const char* bad :
       {"tcp://127.0.0.1", "tcp://127.0.0.1:99999", "udp://127.0.0.1:80", "unix://", "tcp://[::1:80"}) {
    ServerConfig config = server_config();
    config.listen = {bad};
    auto server = std::make_shared<Server>(config);
    try {
      server->bind();
      ADD_FAILURE() << bad << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

TEST(Server, UnixSocketServesAndIsRemovedAfterStop) {
  std::string path = temp_socket_path("serve");
  ::unlink(path.c_str());
  auto server = start_server("unix://" + path);
  EXPECT_EQ(server->addresses(), (std::vector<std::string>{"unix://" + path}));
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));

  auto client = Client::unix_socket(path);
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send("GET /sock HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  RequestRef req = pop(*server);
  ASSERT_TRUE(req);
  EXPECT_EQ(str(req->path), "/sock");
  EXPECT_EQ(str(req->peer_address), "127.0.0.1");
  ASSERT_TRUE(reply(*req, 200, "over unix"));
  auto r = client->response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "over unix");

  client.reset();
  req.reset();
  EXPECT_EQ(server->stop(2000ms), 0);
  server.reset();
  EXPECT_FALSE(exists(path)) << "the socket file outlived the server";
}

TEST(Server, ServesASocketBoundBeforeItAndLeavesItToItsOwner) {
  // What a parent process does before it forks: bind once, keep the fd.
  ListeningSocket tcp = open_listening_socket("tcp://127.0.0.1:0", 16);
  ASSERT_GE(tcp.fd, 0);
  EXPECT_NE(tcp.address, "tcp://127.0.0.1:0") << "port 0 is made real";
  std::string path = temp_socket_path("inherited");
  ::unlink(path.c_str());
  ListeningSocket unix_socket = open_listening_socket("unix://" + path, 16);
  EXPECT_EQ(unix_socket.unix_path, path);

  for (int round = 0; round < 2; ++round) {  // a second server (a replaced child) takes the same sockets
    ServerConfig config = server_config();
    config.listen = {};
    config.inherited_listeners = {{tcp.address, tcp.fd}, {unix_socket.address, unix_socket.fd}};
    auto server = start_server(config);
    EXPECT_EQ(server->addresses(), (std::vector<std::string>{tcp.address, unix_socket.address}));
    auto client = Client::tcp(port_of(tcp.address));
    ASSERT_TRUE(client->send("GET /inherited HTTP/1.1\r\nHost: x\r\n\r\n"));
    RequestRef req = pop(*server);
    ASSERT_TRUE(req);
    EXPECT_EQ(str(req->path), "/inherited");
    ASSERT_TRUE(reply(*req, 200, "ok"));
    EXPECT_EQ(client->response().status, 200);
    auto over_unix = Client::unix_socket(path);
    ASSERT_TRUE(over_unix);
    ASSERT_TRUE(over_unix->send("GET /u HTTP/1.1\r\nHost: x\r\n\r\n"));
    req = pop(*server);
    ASSERT_TRUE(req);
    ASSERT_TRUE(reply(*req, 200, "ok"));
    EXPECT_EQ(over_unix->response().status, 200);
    client.reset();
    over_unix.reset();
    req.reset();
    EXPECT_EQ(server->stop(2000ms), 0);
    server.reset();
    EXPECT_TRUE(exists(path)) << "the socket file is its binder's to remove";
    EXPECT_EQ(::fcntl(tcp.fd, F_GETFD), FD_CLOEXEC) << "the caller's descriptor stays open, closed on exec";
  }
  ::close(tcp.fd);
  ::close(unix_socket.fd);
  ::unlink(path.c_str());
}

TEST(Server, RefusesAnInheritedDescriptorThatIsNotAListeningSocket) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  int unbound = ::socket(AF_INET, SOCK_STREAM, 0);
  for (int fd : {fds[0], unbound}) {
    ServerConfig config = server_config();
    config.listen = {};
    config.inherited_listeners = {{"tcp://127.0.0.1:1", fd}};
    Server server(config);
    try {
      server.bind();
      ADD_FAILURE() << "fd " << fd << " was taken";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("is not a listening stream socket"), std::string::npos)
          << e.what();
    }
  }
  ::close(fds[0]);
  ::close(fds[1]);
  ::close(unbound);
}

TEST(Server, UnixSocketFileRemovedWhenStoppedServerIsReleased) {
  for (int i = 0; i < 5; ++i) {
    std::string path = temp_socket_path("idle");
    auto server = start_server("unix://" + path);
    ASSERT_TRUE(exists(path));
    server->stop(1000ms);
    server.reset();
    EXPECT_FALSE(exists(path)) << "round " << i;
    ::unlink(path.c_str());
  }
}

// The file must be gone when stop() returns, not when the last handler
// lets go of the listener: a new server may want the path at once.
TEST(Server, UnixSocketFileRemovedByStopItself) {
  for (int i = 0; i < 10; ++i) {
    std::string path = temp_socket_path("stop");
    auto server = start_server("unix://" + path);
    ASSERT_TRUE(exists(path));
    server->stop(1000ms);
    EXPECT_FALSE(exists(path)) << "round " << i;
    server.reset();
    ::unlink(path.c_str());
  }
}

TEST(Server, UnixSocketStaleFileIsReplacedButLiveOneIsNot) {
  std::string path = temp_socket_path("stale");
  {
    // A socket file nobody listens on, as a crashed server leaves it.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr = Client::unix_address(path);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
  }
  ASSERT_TRUE(exists(path));
  auto server = start_server("unix://" + path);
  EXPECT_TRUE(Client::unix_socket(path));

  ServerConfig config = server_config();
  config.listen = {"unix://" + path};
  auto second = std::make_shared<Server>(config);
  EXPECT_THROW(second->bind(), std::runtime_error);
  EXPECT_TRUE(Client::unix_socket(path)) << "the live server's socket was left alone";
  server->stop(1000ms);
  server.reset();
  ::unlink(path.c_str());
}

TEST_F(ServerTest, StopWithNothingInFlightIsQuick) {
  start();
  auto idle = connect();  // an idle keep-alive connection
  std::this_thread::sleep_for(20ms);
  auto t0 = Clock::now();
  EXPECT_EQ(server().stop(5000ms), 0);
  EXPECT_LT(Clock::now() - t0, 1000ms);
  EXPECT_TRUE(idle->closed_by_peer(1000ms)) << "idle connections are closed";
  EXPECT_TRUE(server().queue().closed());
  EXPECT_EQ(server().stop(5000ms), 0) << "a second stop is harmless";
}

TEST_F(ServerTest, StopReportsUnansweredRequests) {
  auto client = start_and_connect();
  RequestRef req = send_and_pop(*client, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(req);
  auto t0 = Clock::now();
  EXPECT_EQ(server().stop(100ms), 1);
  EXPECT_LT(Clock::now() - t0, 2000ms);
  // Answering afterwards goes nowhere and must not crash.
  reply(*req, 200, "too late");
  req.reset();
}

// A response posted after stop() (a straggler answered late) or the
// aborted read of a connection closed during stop() must not stay queued
// in the stopped io_context, keeping Connection -> Server alive forever.
TEST(Server, ServerIsFreedAfterStop) {
  std::weak_ptr<Server> weak;
  {
    auto server = start_server(server_config());
    weak = server;
    auto idle = client_of(*server);
    auto busy = client_of(*server);
    ASSERT_TRUE(idle && busy);
    ASSERT_TRUE(busy->send("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    RequestRef req = pop(*server);
    ASSERT_TRUE(req);
    EXPECT_EQ(server->stop(100ms), 1);
    reply(*req, 200, "late");
  }
  EXPECT_TRUE(weak.expired()) << "the Server outlived its last owner";
}

TEST_F(ServerTest, InFlightRequestFinishesDuringStop) {
  auto client = start_and_connect();
  RequestRef req = send_and_pop(*client, "GET /work HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(req);
  std::thread worker([&] {
    std::this_thread::sleep_for(100ms);
    reply(*req, 200, "done");
  });
  EXPECT_EQ(server().stop(5000ms), 0);
  worker.join();
  auto [closed, wire, r] = client->until_closed();
  EXPECT_TRUE(closed);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "done");
  EXPECT_EQ(r.get("connection"), "close") << "a draining server closes after the response";
}

TEST_F(ServerTest, ParseErrorGets400AndClose) {
  auto client = start_and_connect();
  ASSERT_TRUE(client->send("GARBAGE\r\n\r\n"));
  auto [closed, wire, r] = client->until_closed();
  EXPECT_TRUE(closed) << "the server did not close the connection";
  ASSERT_TRUE(r.ok) << wire;
  EXPECT_EQ(r.status_line, "HTTP/1.1 400 Bad Request");
  EXPECT_EQ(r.get("connection"), "close");
  EXPECT_EQ(r.get("content-length"), std::to_string(r.body.size()));
  EXPECT_FALSE(server().queue().try_pop()) << "a bad request never reaches the workers";
  auto snap = server().counters().snapshot();
  EXPECT_EQ(snap.parse_errors, 1u);
  EXPECT_EQ(snap.rejected, 1u);
  EXPECT_EQ(server().stop(1000ms), 0);
}

TEST_F(ServerTest, LimitErrorsUseTheirStatus) {
  config.limits.max_uri_size = 64;
  auto client = start_and_connect();
  ASSERT_TRUE(client->send("GET /" + std::string(200, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n"));
  auto answer = client->until_closed();
  EXPECT_TRUE(answer.eof);
  EXPECT_EQ(answer.response.status, 414);
}

TEST_F(ServerTest, PipelinedRequestsAnsweredInOrder) {
  auto client = start_and_connect();
  RequestRef first =
      send_and_pop(*client, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(first);
  EXPECT_EQ(str(first->path), "/1");
  EXPECT_FALSE(pop(100ms)) << "one request per connection at a time";
  reply(*first, 200, "one");
  RequestRef second = pop();
  ASSERT_TRUE(second);
  EXPECT_EQ(str(second->path), "/2");
  reply(*second, 200, "two");
  EXPECT_EQ(client->response().body, "one");
  EXPECT_EQ(client->response().body, "two");
}

TEST_F(ServerTest, PipelinedRequestsSplitOverReadsKeepEveryByte) {
  // The second request's head ends in a later read than the one that
  // brought the first request and its beginning; the third arrives whole
  // while the second waits for its answer.
  auto client = start_and_connect();
  std::string second = "GET /2?q=split HTTP/1.1\r\nHost: h\r\nX-Long: " + std::string(300, 'v') + "\r\n\r\n";
  ASSERT_TRUE(client->send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n" + second.substr(0, 40)));
  RequestRef first = pop();
  ASSERT_TRUE(first);
  EXPECT_EQ(str(first->path), "/1");
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(client->send(second.substr(40) + "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n"));
  reply(*first, 200, "one");
  RequestRef req2 = pop();
  ASSERT_TRUE(req2);
  EXPECT_EQ(str(req2->path), "/2");
  EXPECT_EQ(str(req2->query), "q=split");
  bool long_header = false;
  for (const auto& h : req2->headers)
    if (str(h.key) == "HTTP_X_LONG") long_header = str(h.value) == std::string(300, 'v');
  EXPECT_TRUE(long_header) << "the header split between two reads arrives whole";
  reply(*req2, 200, "two");
  RequestRef third = pop();
  ASSERT_TRUE(third);
  EXPECT_EQ(str(third->path), "/3");
  reply(*third, 200, "three");
  EXPECT_EQ(client->response().body, "one");
  EXPECT_EQ(client->response().body, "two");
  EXPECT_EQ(client->response().body, "three");
}

TEST_F(ServerTest, AHeadLongerThanOneReadIsParsedWhole) {
  // 40 KiB of header fields: more than one read's worth (16 KiB) of input.
  auto client = start_and_connect();
  std::string head = "GET /big HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 40; ++i)
    head += "X-F" + std::to_string(i) + ": " + std::string(1000, 'a' + i % 26) + "\r\n";
  head += "\r\n";
  ASSERT_GT(head.size(), 32u * 1024);
  ASSERT_TRUE(client->send(head + "GET /after HTTP/1.1\r\nHost: h\r\n\r\n"));
  RequestRef big = pop();
  ASSERT_TRUE(big);
  EXPECT_EQ(str(big->path), "/big");
  size_t fields = 0;
  for (const auto& h : big->headers)
    if (str(h.key).starts_with("HTTP_X_F")) {
      ++fields;
      EXPECT_EQ(h.value.size(), 1000u);
    }
  EXPECT_EQ(fields, 40u);
  reply(*big, 200, "big");
  RequestRef after = pop();
  ASSERT_TRUE(after);
  EXPECT_EQ(str(after->path), "/after");
  reply(*after, 200, "after");
  EXPECT_EQ(client->response().body, "big");
  EXPECT_EQ(client->response().body, "after");
}

namespace {

// What a worker reads of a request body, as the binding reads it:
// read_body until it ends, fails, or `timeout` passes.
struct BodyRead {
  std::string bytes;
  RequestBody::ReadStatus last = RequestBody::ReadStatus::Waiting;
};

BodyRead read_body(RequestCtx& req, std::chrono::milliseconds timeout = 5000ms) {
  BodyRead out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[64 * 1024];
  for (;;) {
    auto r = req.read_body(buf, sizeof buf, deadline);
    out.last = r.status;
    if (r.status != RequestBody::ReadStatus::Data) return out;
    out.bytes.append(buf, r.bytes);
  }
}

std::string upload_head(size_t length, bool expect_continue = false) {
  std::string head = "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(length) + "\r\n";
  if (expect_continue) head += "Expect: 100-continue\r\n";
  return head + "\r\n";
}

constexpr std::string_view kChunkedHead =
    "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";

std::string chunked_head(std::string_view first_chunk) {
  return std::string(kChunkedHead) + std::string(first_chunk);
}

// The opt-in path (stream_request_bodies): requests go to the workers
// at their head, bodies stream in while the app reads them.
class StreamedBodies : public ServerTest {
 protected:
  StreamedBodies() { config.stream_request_bodies = true; }
};

class SmallStreamedBodies : public StreamedBodies {
 protected:
  SmallStreamedBodies() { config.body_storage.memory_limit = 64; }  // anything longer streams and spools
};

// The default: a request reaches the workers once its whole body is here.
class BufferedBodies : public ServerTest {
 protected:
  BufferedBodies() { config.body_storage.memory_limit = 64; }  // anything longer spools
};

}  // namespace

TEST_F(StreamedBodies, ExpectContinueIsSentWhenTheAppReads) {
  auto client = start_and_connect();
  RequestRef req = send_and_pop(*client, upload_head(5, true));
  ASSERT_TRUE(req) << "the request goes to a worker before its body";
  EXPECT_FALSE(req->body->complete());
  EXPECT_FALSE(client->closed_by_peer(200ms));
  EXPECT_EQ(client->pending(), "") << "nothing is sent before the app reads";
  std::thread app([&] {
    BodyRead got = read_body(*req);
    EXPECT_EQ(got.bytes, "hello");
    EXPECT_EQ(got.last, RequestBody::ReadStatus::End);
    reply(*req, 200, "got it");
  });
  ASSERT_TRUE(client->read_head()) << "no 100 Continue";
  EXPECT_EQ(client->pending(), "HTTP/1.1 100 Continue\r\n\r\n");
  client->pending().clear();
  ASSERT_TRUE(client->send("hello"));
  app.join();
  auto r = client->response();
  EXPECT_EQ(r.body, "got it");
  EXPECT_FALSE(r.get("connection")) << "the body was read whole: the connection stays";
  RequestRef again = send_and_pop(*client, "GET /again HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(again);
  reply(*again, 200, "again");
  EXPECT_EQ(client->response().body, "again");
}

TEST_F(StreamedBodies, ExpectContinueIsNeverSentWhenTheAppAnswersWithoutReading) {
  auto client = start_and_connect();
  RequestRef req = send_and_pop(*client, upload_head(5, true));
  ASSERT_TRUE(req);
  reply(*req, 403, "no");
  auto [closed, wire, r] = client->until_closed();
  ASSERT_TRUE(closed) << "the unread body ends the connection";
  EXPECT_EQ(wire.find("100 Continue"), std::string::npos) << wire;
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.get("connection"), "close");
  // A read after the answer finds the body cut off, not a hang.
  EXPECT_EQ(read_body(*req, 1000ms).last, RequestBody::ReadStatus::Failed);
}

TEST_F(SmallStreamedBodies, LargeBodyReachesTheAppBeforeItsLastByte) {
  auto client = start_and_connect();
  std::string first(1000, 'a');
  RequestRef req = send_and_pop(*client, upload_head(2000) + first);
  ASSERT_TRUE(req) << "dispatched with half its body";
  char buf[4096];
  size_t got = 0;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (got < first.size()) {
    auto r = req->read_body(buf, sizeof buf, deadline);
    ASSERT_EQ(r.status, RequestBody::ReadStatus::Data);
    got += r.bytes;
  }
  EXPECT_FALSE(req->body->complete());
  EXPECT_TRUE(req->body->spooled()) << "past the memory limit the body is on disk";
  ASSERT_TRUE(client->send(std::string(1000, 'b')));
  BodyRead rest = read_body(*req);
  EXPECT_EQ(rest.bytes, std::string(1000, 'b'));
  EXPECT_EQ(rest.last, RequestBody::ReadStatus::End);
  req->body->rewind();
  EXPECT_EQ(read_body(*req).bytes, first + std::string(1000, 'b')) << "rewind reads it all again";
  reply(*req, 200, "stored");
  auto r = client->response();
  EXPECT_EQ(r.body, "stored");
  EXPECT_FALSE(r.get("connection"));
}

TEST_F(SmallStreamedBodies, ChunkedBodyStreamsAndThePipelinedRequestWaits) {
  auto client = start_and_connect();
  std::string first(80, 'a');  // past the 64-byte limit: dispatched while arriving
  RequestRef req = send_and_pop(*client, chunked_head("50\r\n" + first + "\r\n"));
  ASSERT_TRUE(req);
  ASSERT_TRUE(client->send("2\r\nde\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n"));
  BodyRead got = read_body(*req);
  EXPECT_EQ(got.bytes, first + "de");
  EXPECT_EQ(got.last, RequestBody::ReadStatus::End);
  EXPECT_FALSE(pop(100ms)) << "the next request waits for this response";
  reply(*req, 200, "one");
  RequestRef next = pop();
  ASSERT_TRUE(next);
  EXPECT_EQ(str(next->path), "/next");
  reply(*next, 200, "two");
  EXPECT_EQ(client->response().body, "one");
  EXPECT_EQ(client->response().body, "two");
}

TEST_F(SmallStreamedBodies, StalledStreamingBodyGets408AndTheReaderAnError) {
  config.first_data_timeout = 300ms;
  auto client = start_and_connect();
  RequestRef req = send_and_pop(*client, upload_head(1000) + std::string(100, 'x'));
  ASSERT_TRUE(req);
  BodyRead got = read_body(*req);
  EXPECT_EQ(got.bytes.size(), 100u) << "what arrived is readable";
  EXPECT_EQ(got.last, RequestBody::ReadStatus::Failed);
  EXPECT_EQ(req->body->failure_status(), 408);
  auto answer = client->until_closed();
  ASSERT_TRUE(answer.eof);
  EXPECT_EQ(answer.response.status, 408);
  EXPECT_FALSE(reply(*req, 200, "late")) << "the connection answered first";
}

TEST_F(SmallStreamedBodies, ChunkedBodyOverTheLimitGets413WhileStreaming) {
  config.limits.max_body_size = 100;
  auto client = start_and_connect();
  RequestRef req = send_and_pop(*client, chunked_head("50\r\n" + std::string(80, 'x') + "\r\n"));
  ASSERT_TRUE(req) << "past the 64-byte memory limit: dispatched";
  ASSERT_TRUE(client->send("28\r\n" + std::string(40, 'y') + "\r\n0\r\n\r\n"));
  BodyRead got = read_body(*req);
  EXPECT_EQ(got.last, RequestBody::ReadStatus::Failed);
  EXPECT_EQ(req->body->failure_status(), 413);
  auto [closed, wire, r] = client->until_closed();
  ASSERT_TRUE(closed);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.get("connection"), "close");
}

TEST_F(SmallStreamedBodies, ClientVanishingMidBodyFailsTheReader) {
  auto client = start_and_connect();
  RequestRef req = send_and_pop(*client, upload_head(1000) + std::string(100, 'x'));
  ASSERT_TRUE(req);
  client.reset();
  BodyRead got = read_body(*req);
  EXPECT_EQ(got.last, RequestBody::ReadStatus::Failed);
  EXPECT_EQ(got.bytes.size(), 100u);
}

TEST_F(SmallStreamedBodies, SmallChunkedBodyIsReadWholeBeforeDispatch) {
  config.body_storage.memory_limit = 1024;
  auto client = start_and_connect();
  ASSERT_TRUE(client->send(chunked_head("3\r\nabc\r\n")));
  EXPECT_FALSE(pop(200ms)) << "a trickling small body ties up no worker";
  RequestRef req = send_and_pop(*client, "0\r\n\r\n");
  ASSERT_TRUE(req);
  EXPECT_TRUE(req->body->complete());
  EXPECT_EQ(req->body->in_memory(), "abc");
  reply(*req, 200, "ok");
  EXPECT_EQ(client->response().body, "ok");
}

TEST_F(SmallStreamedBodies, ChunkedBodyPastTheMemoryLimitIsDispatchedWhileArriving) {
  start();  // 64-byte limit
  auto client = connect();
  RequestRef req = send_and_pop(*client, chunked_head("50\r\n" + std::string(80, 'c') + "\r\n"));
  ASSERT_TRUE(req);
  EXPECT_FALSE(req->body->complete());
  ASSERT_TRUE(client->send("0\r\n\r\n"));
  EXPECT_EQ(read_body(*req).bytes, std::string(80, 'c'));
  reply(*req, 200, "ok");
  EXPECT_EQ(client->response().body, "ok");
}

// An app that begins its response and then reads a body behind
// `Expect: 100-continue`: the 100 may not follow the response head, so a
// strict client never sends; the body's stall deadline ends the wait, the
// read fails, and the response already under way still completes.
TEST_F(SmallStreamedBodies, ContinueAfterTheResponseBeganFallsToTheStallDeadline) {
  config.first_data_timeout = 300ms;
  auto client = start_and_connect();
  RequestRef req = send_and_pop(*client, upload_head(5, true));
  ASSERT_TRUE(req);
  HeaderView headers[] = {{"content-type", "text/plain"}};
  ASSERT_TRUE(start_response(*req, 200, headers));
  ASSERT_TRUE(write_body(*req, "head start"));
  BodyRead got = read_body(*req, 3000ms);
  EXPECT_EQ(got.last, RequestBody::ReadStatus::Failed) << "no hang";
  EXPECT_EQ(req->body->failure_status(), 408);
  ASSERT_TRUE(write_body(*req, ", then the end"));
  finish_response(*req);
  auto [closed, wire, r] = client->until_closed();
  ASSERT_TRUE(closed);
  EXPECT_EQ(wire.find("100 Continue"), std::string::npos) << wire;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.get("connection"), "close");
  EXPECT_NE(r.body.find("0\r\n\r\n"), std::string::npos) << "the response was not cut: " << r.body;
}

TEST_F(SmallStreamedBodies, BodyStallingAfterTheResponseBeganDoesNotCutTheResponse) {
  config.first_data_timeout = 300ms;
  auto client = start_and_connect();
  RequestRef req = send_and_pop(*client, upload_head(1000) + std::string(100, 'x'));
  ASSERT_TRUE(req);
  HeaderView headers[] = {{"content-type", "text/plain"}};
  ASSERT_TRUE(start_response(*req, 200, headers));
  ASSERT_TRUE(write_body(*req, "part 1;"));
  std::this_thread::sleep_for(700ms);  // the client stopped sending: 408 is too late to send
  ASSERT_TRUE(write_body(*req, "part 2"));
  finish_response(*req);
  auto [closed, wire, r] = client->until_closed();
  ASSERT_TRUE(closed);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("part 2"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("0\r\n\r\n"), std::string::npos) << "complete: " << r.body;
}

TEST_F(SmallStreamedBodies, RequestTimeoutDoesNotCountTheUpload) {
  config.request_timeout = 300ms;
  auto client = start_and_connect();
  RequestRef req = send_and_pop(*client, upload_head(700));
  ASSERT_TRUE(req);
  std::thread app([&] {
    EXPECT_EQ(read_body(*req).bytes.size(), 700u);
    reply(*req, 200, "uploaded");
  });
  for (int i = 0; i < 7; ++i) {  // 700 ms of steady upload
    std::this_thread::sleep_for(100ms);
    ASSERT_TRUE(client->send(std::string(100, 'u')));
  }
  app.join();
  auto r = client->response();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "uploaded");
}

TEST_F(SmallStreamedBodies, RequestTimeoutStillCountsAnAppThatNeverAsksForTheBody) {
  config.request_timeout = 300ms;
  auto client = start_and_connect();
  RequestRef req = send_and_pop(*client, upload_head(5, true));
  ASSERT_TRUE(req);
  auto r = client->response();
  EXPECT_EQ(r.status, 504);
}

TEST_F(BufferedBodies, BufferedBodyReachesTheWorkersOnlyWhole) {
  auto client = start_and_connect();
  ASSERT_TRUE(client->send(upload_head(2000) + std::string(1000, 'a')));
  EXPECT_FALSE(pop(300ms)) << "half a body ties up no worker";
  RequestRef req = send_and_pop(*client, std::string(1000, 'b'));
  ASSERT_TRUE(req);
  EXPECT_TRUE(req->body->complete());
  EXPECT_TRUE(req->body->spooled()) << "past the memory limit the body is on disk";
  EXPECT_EQ(read_body(*req).bytes, std::string(1000, 'a') + std::string(1000, 'b'));
  reply(*req, 200, "stored");
  auto r = client->response();
  EXPECT_EQ(r.body, "stored");
  EXPECT_FALSE(r.get("connection"));
}

TEST_F(BufferedBodies, BufferedExpectContinueIsAnsweredByTheServer) {
  auto client = start_and_connect();
  ASSERT_TRUE(client->send(upload_head(5, true)));
  ASSERT_TRUE(client->read_head()) << "no 100 Continue";
  EXPECT_EQ(client->pending(), "HTTP/1.1 100 Continue\r\n\r\n");
  client->pending().clear();
  EXPECT_FALSE(pop(100ms)) << "the body comes before the request goes to a worker";
  RequestRef req = send_and_pop(*client, "hello");
  ASSERT_TRUE(req);
  EXPECT_EQ(req->body->in_memory(), "hello");
  reply(*req, 200, "got it");
  auto r = client->response();
  EXPECT_EQ(r.body, "got it");
  EXPECT_FALSE(r.get("connection"));
}

TEST_F(BufferedBodies, ExpectContinuePastMaxBodySizeGets413AndNoContinue) {
  config.limits.max_body_size = 100;
  auto client = start_and_connect();
  ASSERT_TRUE(client->send(upload_head(1000, true)));
  auto [closed, wire, r] = client->until_closed();
  ASSERT_TRUE(closed);
  EXPECT_EQ(wire.find("100 Continue"), std::string::npos) << wire;
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.get("connection"), "close");
}

// 10 bytes every 100 ms against 1000 bytes/s over 300 ms windows: the
// first window is free, the second fails. first_data_timeout (5 s) would
// never fire, each gap being short.
TEST_F(BufferedBodies, BodySlowerThanTheMinimumRateGets408) {
  for (bool streaming : {false, true}) {
    config.stream_request_bodies = streaming;
    config.first_data_timeout = 5000ms;
    config.min_body_rate = 1000;
    config.min_body_rate_window = 300ms;
    start();
    auto client = connect();
    ASSERT_TRUE(client->send(upload_head(100000)));
    // Streamed, the request goes to a worker at its head; take it then, as a
    // worker would (once answered, a queued request is never taken).
    RequestRef taken;
    if (streaming) {
      taken = pop();
      ASSERT_TRUE(taken) << "streamed: the request went to a worker at its head";
    }
    auto started = Clock::now();
    for (int i = 0; i < 30 && !client->closed_by_peer(100ms); ++i)
      if (!client->send(std::string(10, 't'))) break;
    auto took = Clock::now() - started;
    auto [closed, wire, r] = client->until_closed();
    ASSERT_TRUE(closed);
    EXPECT_EQ(r.status, 408) << "streaming " << streaming << ": " << wire;
    EXPECT_EQ(r.get("connection"), "close");
    EXPECT_NE(r.body.find("too slowly"), std::string::npos) << r.body;
    EXPECT_LT(took, 2000ms) << "cut off within about two windows";
    if (streaming) {
      EXPECT_EQ(read_body(*taken).last, RequestBody::ReadStatus::Failed);
      EXPECT_EQ(taken->body->failure_status(), 408);
    } else {
      EXPECT_FALSE(pop(10ms)) << "buffered: no worker ever saw it";
    }
    server().stop(1000ms);
  }
}

TEST_F(BufferedBodies, BodyKeepingTheMinimumRateIsServed) {
  config.min_body_rate = 1000;
  config.min_body_rate_window = 300ms;
  auto client = start_and_connect();
  ASSERT_TRUE(client->send(upload_head(3000)));
  for (int i = 0; i < 15; ++i) {  // 2000 bytes/s for 1.5 s, in bursts
    std::this_thread::sleep_for(100ms);
    ASSERT_TRUE(client->send(std::string(200, 'r')));
  }
  RequestRef req = pop();
  ASSERT_TRUE(req);
  EXPECT_EQ(read_body(*req).bytes.size(), 3000u);
  reply(*req, 200, "ok");
  EXPECT_EQ(client->response().status, 200);
}

TEST_F(BufferedBodies, UploadPastTheSpoolLimitGets503AtItsHead) {
  config.max_spool_size = 1500;
  start();
  auto first = connect();
  ASSERT_TRUE(first->send(upload_head(1000) + std::string(990, 'a')));  // 990 bytes spooled
  std::this_thread::sleep_for(100ms);
  auto second = connect();
  ASSERT_TRUE(second->send(upload_head(1000)));
  auto [closed, wire, r] = second->until_closed();
  ASSERT_TRUE(closed);
  EXPECT_EQ(r.status, 503) << wire;
  EXPECT_EQ(r.get("connection"), "close");
  EXPECT_EQ(r.get("retry-after"), "1");
  // A chunked body that grows past what is left is refused as it grows.
  auto chunked = connect();
  ASSERT_TRUE(chunked->send(chunked_head("258\r\n" + std::string(600, 'c') + "\r\n")));
  auto refused = chunked->until_closed();
  ASSERT_TRUE(refused.eof);
  EXPECT_EQ(refused.response.status, 503) << refused.wire;
  // The first upload is unaffected, and its room comes back with it.
  {
    RequestRef req = send_and_pop(*first, std::string(10, 'a'));
    ASSERT_TRUE(req);
    EXPECT_EQ(read_body(*req).bytes.size(), 1000u);
    reply(*req, 200, "ok");
    req->body->discard();  // what the binding does once the response is out
  }
  EXPECT_EQ(first->response().status, 200);
  auto third = connect();
  RequestRef again = send_and_pop(*third, upload_head(1000) + std::string(1000, 'z'));
  ASSERT_TRUE(again) << "the spool had room again";
  reply(*again, 200, "ok");
  EXPECT_EQ(third->response().status, 200);
}

// max_connections is a descriptor budget: a spool file takes a place in
// it, so a body that would need one when it is spent gets 503 instead of
// the process running out of descriptors.
TEST_F(BufferedBodies, SpoolFilesCountAgainstMaxConnections) {
  config.max_connections = 2;
  start();
  auto first = connect();
  ASSERT_TRUE(first->send(upload_head(1000) + std::string(10, 'a')));  // 1 connection + 1 spool file
  std::this_thread::sleep_for(100ms);
  auto second = connect();  // the accept already under way takes it
  ASSERT_TRUE(second->send(upload_head(1000)));
  auto [closed, wire, r] = second->until_closed();
  ASSERT_TRUE(closed);
  EXPECT_EQ(r.status, 503) << wire;
  EXPECT_EQ(r.get("retry-after"), "1");
  second.reset();  // its lingering close ends: one connection and one spool file remain
  RequestRef req = send_and_pop(*first, std::string(990, 'a'));
  ASSERT_TRUE(req);
  EXPECT_EQ(read_body(*req).bytes.size(), 1000u);
  reply(*req, 200, "ok");
  EXPECT_EQ(first->response().status, 200);
  // The first connection stays (keep-alive) and its spool file fills the
  // budget; letting the file go lets the listener accept again.
  std::this_thread::sleep_for(100ms);
  req->body->discard();  // what the binding does once the response is out
  auto third = connect();
  ASSERT_TRUE(third->send("GET /after HTTP/1.1\r\nHost: h\r\n\r\n"));
  RequestRef after = pop(2000ms);
  ASSERT_TRUE(after) << "the listener resumed once the spool file was gone";
  reply(*after, 200, "after");
  EXPECT_EQ(third->response().body, "after");
}

TEST_F(ServerTest, StreamedResponseIsChunkedOnTheWire) {
  auto client = start_and_connect();
  RequestRef req = send_and_pop(*client, "GET /stream HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(req);
  ASSERT_TRUE(start_response(*req, 200, {}));
  EXPECT_TRUE(write_body(*req, "abc"));
  EXPECT_TRUE(write_body(*req, "defg"));
  finish_response(*req);
  auto [closed, wire, r] = client->until_closed();
  EXPECT_TRUE(closed);
  EXPECT_EQ(r.get("transfer-encoding"), "chunked");
  EXPECT_EQ(r.get("connection"), "close");
  EXPECT_EQ(r.body, "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
}

TEST_F(ServerTest, ClientGoneBeforeAnswerIsHarmless) {
  auto client = start_and_connect();
  RequestRef req = send_and_pop(*client, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(req);
  client.reset();
  std::this_thread::sleep_for(50ms);
  reply(*req, 200, "nobody listens");
  req.reset();
  EXPECT_EQ(server().stop(2000ms), 0);
}

TEST_F(ServerTest, ReleasedUnansweredRequestGets500) {
  auto client = start_and_connect();
  RequestRef req = send_and_pop(*client, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(req);
  req.reset();  // a worker lost it
  auto r = client->response();
  EXPECT_EQ(r.status, 500);
  EXPECT_GE(count_lines(server().log().drain(), "without a response"), 1u);
}

namespace {

// Waits until the server's queue holds `depth` requests.
bool wait_for_depth(Server& s, size_t depth, std::chrono::milliseconds limit = 5000ms) {
  auto deadline = Clock::now() + limit;
  while (s.queue().depth() != depth) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

}  // namespace

TEST_F(ServerTest, ARequestTimedOutInTheQueueIsNeverTaken) {
  config.request_timeout = 200ms;
  auto client = start_and_connect();
  ASSERT_TRUE(client->send("POST /charge HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok"));
  // Nobody takes it: the client gets its 504 while it is still queued.
  auto r = client->response();
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(server().queue().depth(), 1u);
  EXPECT_FALSE(pop(100ms)) << "a worker must not run what the client was told failed";
  EXPECT_EQ(server().queue().skipped(), 1u);
  EXPECT_EQ(server().stop(1000ms), 0);
}

TEST_F(ServerTest, ARequestWhoseClientLeftWhileQueuedIsNeverTaken) {
  start();
  auto leaving = connect();
  auto staying = connect();
  ASSERT_TRUE(leaving->send("POST /charge HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok"));
  ASSERT_TRUE(wait_for_depth(server(), 1));
  leaving.reset();  // the client closes while its request waits
  ASSERT_TRUE(staying->send("GET /stay HTTP/1.1\r\nHost: h\r\n\r\n"));
  ASSERT_TRUE(wait_for_depth(server(), 2));
  std::this_thread::sleep_for(20ms);
  // The two came through different I/O threads: either may come first.
  std::vector<std::string> taken;
  for (int i = 0; i < 3; ++i) {
    RequestRef req = pop(100ms);
    if (!req) continue;
    taken.push_back(str(req->path));
    ASSERT_TRUE(reply(*req, 200, "taken"));
  }
  EXPECT_EQ(taken, std::vector<std::string>{"/stay"}) << "the request of the client that left is skipped";
  EXPECT_EQ(server().queue().skipped(), 1u);
  EXPECT_EQ(staying->response().status, 200);
  EXPECT_EQ(server().stop(1000ms), 0);
  EXPECT_EQ(server().counters().in_flight.load(), 0) << "the skipped request is accounted for";
}

TEST_F(ServerTest, AFailedEnqueueIsAnswered) {
  auto client = start_and_connect();
  // The queue has never been used from the I/O threads: enqueueing needs
  // allocations, and they fail.
  RequestQueue::fail_allocations_for_testing(1000000);
  bool sent = client->send("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  auto r = client->response();
  RequestQueue::fail_allocations_for_testing(0);
  ASSERT_TRUE(sent);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.get("connection"), "close");
  EXPECT_GE(count_lines(server().log().drain(), "out of memory"), 1u);
  EXPECT_EQ(server().stop(1000ms), 0);
}

TEST(Server, AddressesMayBeReadWhileTheServerStops) {
  for (int round = 0; round < 20; ++round) {
    auto server = start_server(server_config());
    std::atomic<bool> done{false};
    std::thread reader([&] {
      while (!done.load()) {
        auto addresses = server->addresses();
        EXPECT_LE(addresses.size(), 1u);
        for (auto& a : addresses) EXPECT_EQ(a.rfind("tcp://127.0.0.1:", 0), 0u);
      }
    });
    std::this_thread::sleep_for(1ms);
    server->stop(0ms);
    done.store(true);
    reader.join();
    EXPECT_TRUE(server->addresses().empty());
  }
}

TEST(Server, AResponseRacingStopLeavesNothingBehind) {
  // Whenever the answer comes (before, while or after stop() runs its last
  // handlers), the server and its connections must be freed once their
  // owners let go: no handler may be posted that never runs.
  for (int round = 0; round < 30; ++round) {
    std::weak_ptr<Server> weak;
    {
      auto server = start_server(server_config());
      weak = server;
      auto client = client_of(*server);
      ASSERT_TRUE(client);
      ASSERT_TRUE(client->send("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
      RequestRef req = pop(*server);
      ASSERT_TRUE(req);
      std::thread answer([&, round] {
        std::this_thread::sleep_for(std::chrono::microseconds(round * 150));
        ASSERT_TRUE(start_response(*req, 200, {}));
        for (int i = 0; i < 20; ++i) write_body(*req, "piece");
        finish_response(*req);
      });
      server->stop(0ms);
      answer.join();
      req.reset();
    }
    EXPECT_TRUE(weak.expired()) << "round " << round << ": the Server outlived its last owner";
  }
}

namespace {

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

TEST_F(ServerTest, OutOfDescriptorsAcceptPausesAndLogsOnce) {
  start();
  uint16_t port = port_of(server().addresses().at(0));
  // The clients' descriptors exist before the limit drops; connecting
  // needs no new one, accepting does.
  std::vector<int> fds;
  for (int i = 0; i < 8; ++i) fds.push_back(::socket(AF_INET, SOCK_STREAM, 0));
  int lowest_free = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(lowest_free, 0);
  ::close(lowest_free);
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(lowest_free);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);

  sockaddr_in addr = Client::loopback(port);
  for (int fd : fds) ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  std::this_thread::sleep_for(100ms);
  double before = cpu_seconds();
  std::this_thread::sleep_for(500ms);
  double used = cpu_seconds() - before;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);

  EXPECT_LT(used, 0.25) << "an I/O thread spun while accept failed";
  std::vector<std::string> log = server().log().drain();
  EXPECT_EQ(count_lines(log, "Too many open files"), 1u) << "one line per episode";

  // Descriptors are back: the clients in the backlog are served.
  Client client(fds[0]);
  fds.erase(fds.begin());
  RequestRef req = send_and_pop(client, "GET /back HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(req);
  EXPECT_EQ(str(req->path), "/back");
  ASSERT_TRUE(reply(*req, 200, "back"));
  EXPECT_EQ(client.response().status, 200);
  req.reset();
  // The accept that succeeds again may come before the first drain (the
  // limit is restored just before it), or after this request was served
  // (when a descriptor freed elsewhere let this client in earlier, the
  // backed-off retry is still waiting on its timer): it is logged once.
  size_t again = count_lines(log, "accepting connections again");
  auto until = std::chrono::steady_clock::now() + 2s;
  while (again == 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(10ms);
    again += count_lines(server().log().drain(), "accepting connections again");
  }
  EXPECT_EQ(again + count_lines(server().log().drain(), "accepting connections again"), 1u);
  for (int fd : fds) ::close(fd);
}

TEST(ServerLog, LinesNotYetLabelledAreSaidByMain) {
  Server server(server_config());
  server.log_line("accept: too many open files");
  server.log_line("kino: said by Ruby's main\n");
  server.log_line("kino[7] worker-3: a worker's line\n    with its backtrace\n");
  std::string main = "kino[" + std::to_string(::getpid()) + "] main: ";
  EXPECT_EQ(server.log().drain(),
            (std::vector<std::string>{main + "accept: too many open files\n", main + "said by Ruby's main\n",
                                      "kino[7] worker-3: a worker's line\n    with its backtrace\n"}));
}

TEST(ServerLog, AServerWithADescriptorWritesItsLinesThere) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  auto config = server_config();
  config.log_fd = fds[1];
  {
    Server server(config);
    ::close(fds[1]);  // the server writes to a duplicate of its own
    server.log_line("kino[7] worker-1: to the pipe");
    server.flush_log(5s);
    EXPECT_TRUE(server.log().drain().empty());
    EXPECT_EQ(server.log_dropped(), 0u);
  }
  char buf[256];
  ssize_t n = ::read(fds[0], buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), "kino[7] worker-1: to the pipe\n");
  ::close(fds[0]);
}

TEST(ServerLog, OnATerminalTheSpeakerIsTinted) {
  Terminal terminal;
  auto config = server_config();
  config.log_fd = terminal.tty;
  {
    Server server(config);
    server.log_line("kino[7] worker-2: hello");
    server.flush_log(5s);
  }
  char buf[256];
  ssize_t n = ::read(terminal.master, buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), "kino[7] \033[35mworker-2\033[0m: hello\n");
}

namespace {

// Answers `req` with one lent part, as the binding does for a large String.
bool reply_lent(RequestCtx& req, const ByteLeaseRef& lease) {
  std::string_view body[] = {lease->bytes()};
  ByteLeaseRef leases[] = {lease};
  return respond_lent(req, 200, {}, body, leases);
}

bool eventually_returned(const ByteLeaseRef& lease) { return lease->wait_returned(Clock::now() + 5s); }

}  // namespace

TEST_F(ServerTest, ALentBodyIsWrittenWholeAndItsLoanReturned) {
  auto client = start_and_connect();
  std::string owner(3 * 1024 * 1024 + 7, '\0');
  for (size_t i = 0; i < owner.size(); ++i) owner[i] = static_cast<char>('a' + i % 23);
  auto lease = std::make_shared<ByteLease>(std::string_view(owner));
  RequestRef req = send_and_pop(*client, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(req);
  ASSERT_TRUE(reply_lent(*req, lease));
  auto r = client->response();
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body == owner) << "the lent bytes arrive unchanged";
  EXPECT_TRUE(eventually_returned(lease));
  // The connection goes on: the next request is read and answered.
  RequestRef next = send_and_pop(*client, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(next);
  reply(*next, 200, "next");
  EXPECT_EQ(client->response().body, "next");
}

TEST_F(ServerTest, AClientLeavingMidWriteReturnsTheLoan) {
  auto client = start_and_connect();
  std::string owner(8 * 1024 * 1024, 'x');
  auto lease = std::make_shared<ByteLease>(std::string_view(owner));
  RequestRef req = send_and_pop(*client, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(req);
  ASSERT_TRUE(reply_lent(*req, lease));
  ASSERT_TRUE(client->read_head());
  EXPECT_TRUE(lease->loaned_out());
  client.reset();  // closes with most of the body unread
  EXPECT_TRUE(eventually_returned(lease)) << "the failed write drops the rest, loan and all";
}

TEST_F(ServerTest, ARecalledLeaseClosesItsConnection) {
  auto client = start_and_connect();
  std::string owner(8 * 1024 * 1024, 'r');
  auto lease = std::make_shared<ByteLease>(std::string_view(owner));
  RequestRef req = send_and_pop(*client, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(req);
  ASSERT_TRUE(reply_lent(*req, lease));
  ASSERT_TRUE(client->read_head());
  EXPECT_TRUE(lease->loaned_out()) << "the client reads nothing more";
  lease->recall();
  EXPECT_TRUE(eventually_returned(lease));
  std::string rest;
  EXPECT_TRUE(client->read_to_eof(rest)) << "the connection was closed";
  EXPECT_LT(rest.size(), owner.size()) << "the body was cut off";
}

// lanes true: Server::dispatch hands a request to an awake worker's lane,
// stats count it, and a stop drains what a lane holds.
TEST_F(ServerTest, WithLanesARequestGoesToAnAwakeWorkersLaneAndAStopDrainsIt) {
  config.lanes = true;
  config.worker_slots = 2;
  auto client = start_and_connect();
  Lanes* lanes = server().lanes();
  ASSERT_NE(lanes, nullptr);
  EXPECT_FALSE(lanes->try_take(0));  // worker 0 comes for a request: awake
  ASSERT_TRUE(client->send("GET /laned HTTP/1.1\r\nHost: h\r\n\r\n"));
  auto deadline = Clock::now() + 2s;
  while (lanes->depth(0) == 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(lanes->depth(0), 1u) << "the request never reached worker 0's lane";
  EXPECT_EQ(server().queue().depth(), 0u);
  ServerStats stats = server().stats();
  EXPECT_TRUE(stats.lanes);
  EXPECT_EQ(stats.lane_dispatched, 1u);
  EXPECT_EQ(stats.queued, 1u) << "a request in a lane still counts as queued";

  std::thread worker([&] {
    std::this_thread::sleep_for(100ms);  // the stop has begun
    RequestRef req = lanes->try_take(0);
    ASSERT_TRUE(req);
    EXPECT_EQ(str(req->path), "/laned");
    reply(*req, 200, "from the lane");
  });
  EXPECT_EQ(server().stop(5000ms), 0) << "the lane's request was answered in the drain";
  worker.join();
  auto [closed, wire, r] = client->until_closed();
  EXPECT_TRUE(closed);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "from the lane");
}

TEST_F(ServerTest, WithoutLanesTheServerHasNone) {
  start();
  EXPECT_EQ(server().lanes(), nullptr);
  EXPECT_FALSE(server().stats().lanes);
}
