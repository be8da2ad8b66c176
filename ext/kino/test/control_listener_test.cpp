#include "control/control_listener.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "control/exposition.hpp"
#include "control/process_board.hpp"
#include "control/server_stats.hpp"
#include "support/test_client.hpp"

using namespace kino;
using namespace kino::test;
using namespace std::chrono_literals;

namespace {

ServerStats sample_stats(std::string state = "ready") {
  ServerStats s;
  s.state = std::move(state);
  s.mode = "threaded";
  s.workers = 2;
  s.threads = 1;
  s.workers_up = 2;
  s.served = 7;
  s.slots = {SlotStats{0, 0, 4, false, 0}, SlotStats{1, 1, 3, true, 1500}};
  QueueWaitHistogram h;
  h.observe(200'000);         // 0.2 ms
  h.observe(3'000'000);       // 3 ms
  h.observe(20'000'000'000);  // 20 s: only +Inf
  s.queue_wait = h.snapshot();
  return s;
}

ControlResponse ask(std::string_view head, std::string_view token = {}, std::string state = "ready") {
  return answer_control_request(head, token, [&] { return sample_stats(state); });
}

}  // namespace

TEST(QueueWaitHistogram, BucketsAreCumulativeAndTheLastIsTheCount) {
  QueueWaitHistogram h;
  h.observe(500'000);  // exactly 0.5 ms: in the 0.0005 bucket (le is inclusive)
  h.observe(600'000);
  h.observe(-5);  // a clock step backwards counts as no wait
  auto s = h.snapshot();
  EXPECT_EQ(s.cumulative[0], 2u);
  EXPECT_EQ(s.cumulative[1], 3u);
  EXPECT_EQ(s.cumulative.back(), 3u);
  EXPECT_EQ(s.count, 3u);
  EXPECT_NEAR(s.sum_seconds, 0.0011, 1e-9);
}

TEST(ControlPlane, ProbesAnswerWithoutAToken) {
  EXPECT_EQ(ask("GET /live HTTP/1.1\r\n\r\n", "secret").status, 200);
  EXPECT_EQ(ask("GET /ready HTTP/1.1\r\nHost: x\r\n\r\n", "secret").status, 200);
  auto booting = ask("GET /ready HTTP/1.1\r\n\r\n", {}, "booting");
  EXPECT_EQ(booting.status, 503);
  EXPECT_EQ(booting.body, "booting\n");
  EXPECT_EQ(ask("GET /ready HTTP/1.1\r\n\r\n", {}, "draining").status, 503);
}

TEST(ControlPlane, TheTokenGuardsStatsAndMetrics) {
  auto denied = ask("GET /stats HTTP/1.1\r\n\r\n", "secret");
  EXPECT_EQ(denied.status, 401);
  EXPECT_TRUE(denied.challenge);
  EXPECT_EQ(ask("GET /metrics HTTP/1.1\r\nAuthorization: Bearer secreT\r\n\r\n", "secret").status, 401);
  EXPECT_EQ(ask("GET /metrics HTTP/1.1\r\nAuthorization: Bearer secre\r\n\r\n", "secret").status, 401);
  EXPECT_EQ(ask("GET /metrics HTTP/1.1\r\nAuthorization: Basic c2VjcmV0\r\n\r\n", "secret").status, 401);
  EXPECT_EQ(ask("GET /metrics HTTP/1.1\r\nauthorization:  bearer secret \r\n\r\n", "secret").status, 200);
  EXPECT_EQ(ask("GET /stats?pretty HTTP/1.1\r\nAuthorization: Bearer secret\r\n\r\n", "secret").status, 200);
}

TEST(ControlPlane, UnknownPathsMethodsAndBadHeads) {
  EXPECT_EQ(ask("GET /nope HTTP/1.1\r\n\r\n").status, 404);
  auto post = ask("POST /stats HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.allow, "GET, HEAD");
  EXPECT_EQ(ask("HEAD /live HTTP/1.1\r\n\r\n").status, 200);
  for (std::string_view bad :
       {"GET /stats\r\n\r\n", "GET  /stats HTTP/1.1\r\n\r\n", "GET stats HTTP/1.1\r\n\r\n",
        "GET /stats HTTP/2.0\r\n\r\n", "GET /stats HTTP/1.1\r\nno colon\r\n\r\n",
        "GET /stats HTTP/1.1\r\n: empty name\r\n\r\n", "G(T /stats HTTP/1.1\r\n\r\n"})
    EXPECT_EQ(ask(bad).status, 400) << bad;
  std::string wire = serialize_control_response(ask("GET /nope HTTP/1.1\r\n\r\n"), false);
  EXPECT_NE(wire.find("connection: close\r\n"), std::string::npos);
  std::string head_only = serialize_control_response(ask("HEAD /live HTTP/1.1\r\n\r\n"), true);
  EXPECT_NE(head_only.find("content-length: 5\r\n"), std::string::npos);
  EXPECT_EQ(head_only.substr(head_only.size() - 4), "\r\n\r\n") << "no body after HEAD";
}

TEST(ControlPlane, StatsJsonCarriesSlotsAndTheHistogram) {
  std::string json = stats_json(sample_stats());
  EXPECT_NE(json.find("\"state\":\"ready\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"served\":7"), std::string::npos) << json;
  EXPECT_NE(json.find("{\"slot\":1,\"worker\":1,\"served\":3,\"in_flight\":true,\"busy_ms\":1500}"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("{\"le\":0.0005,\"count\":1}"), std::string::npos) << json;
  EXPECT_NE(json.find("{\"le\":\"+Inf\",\"count\":3}"), std::string::npos) << json;
}

TEST(ControlPlane, MetricsAreAPrometheusHistogramAndLabelledSlots) {
  std::string text = metrics_text(sample_stats());
  EXPECT_NE(text.find("# TYPE kino_request_queue_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("kino_request_queue_seconds_bucket{le=\"0.0005\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("kino_request_queue_seconds_bucket{le=\"0.005\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("kino_request_queue_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("kino_request_queue_seconds_count 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("kino_slot_request_age_seconds{slot=\"1\",worker=\"1\"} 1.5\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE kino_requests_served_total counter\nkino_requests_served_total 7\n"),
            std::string::npos);
}

TEST(ControlListener, AnswersOverTcpWhileAnotherClientStalls) {
  ControlListener control("tcp://127.0.0.1:0", "", [] { return sample_stats(); });
  control.start();
  uint16_t port = port_of(control.address());
  auto stalled = Client::tcp(port);
  ASSERT_TRUE(stalled);
  ASSERT_TRUE(stalled->send("GET /stats HTTP/1.1\r\nHost: a"));  // never finished
  auto client = Client::tcp(port);
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send("GET /live HTTP/1.1\r\n\r\n"));
  std::string wire = client->read_response();
  EXPECT_EQ(wire.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << wire;
  EXPECT_EQ(wire.substr(wire.size() - 5), "live\n");
}

TEST(ControlListener, ServesASocketBoundBeforeIt) {
  // A process group's parent binds the control address once; each child
  // serves the same socket.
  ListeningSocket bound = open_listening_socket("tcp://127.0.0.1:0", 16);
  for (int child = 0; child < 2; ++child) {
    ControlListener control(bound.address, InheritedFd{bound.fd}, "", [] { return sample_stats(); });
    control.start();
    EXPECT_EQ(control.address(), bound.address);
    auto client = Client::tcp(port_of(bound.address));
    ASSERT_TRUE(client);
    ASSERT_TRUE(client->send("GET /live HTTP/1.1\r\n\r\n"));
    std::string wire = client->read_response();
    EXPECT_EQ(wire.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << wire;
  }
  ::close(bound.fd);
}

TEST(ControlListener, AStalledClientIsClosedAtTheDeadline) {
  ControlListener::Limits limits;
  limits.deadline = 200ms;
  ControlListener control(
      "tcp://127.0.0.1:0", "", [] { return sample_stats(); }, limits);
  control.start();
  auto stalled = Client::tcp(port_of(control.address()));
  ASSERT_TRUE(stalled);
  ASSERT_TRUE(stalled->send("GET /stats HTTP/1.1\r\n"));
  EXPECT_TRUE(stalled->closed_by_peer(3000ms));
}

TEST(ControlListener, AnOversizedHeadGets431) {
  ControlListener::Limits limits;
  limits.max_head = 256;
  ControlListener control(
      "tcp://127.0.0.1:0", "", [] { return sample_stats(); }, limits);
  control.start();
  auto client = Client::tcp(port_of(control.address()));
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send("GET /live HTTP/1.1\r\nX-Pad: " + std::string(400, 'a') + "\r\n\r\n"));
  std::string wire = client->read_response();
  EXPECT_EQ(wire.rfind("HTTP/1.1 431 ", 0), 0u) << wire;
}

namespace {

ControlListener::Limits bounded(size_t max_connections) {
  ControlListener::Limits limits;
  limits.max_connections = max_connections;
  return limits;
}

}  // namespace

// Clients that connect and send nothing must not keep a scrape out: past
// the bound, the oldest still sending its head makes room.
TEST(ControlListener, PastItsConnectionBoundTheOldestWaitingForItsHeadMakesRoom) {
  ControlListener control(
      "tcp://127.0.0.1:0", "", [] { return sample_stats(); }, bounded(2));
  control.start();
  uint16_t port = port_of(control.address());
  auto idle_one = Client::tcp(port);
  ASSERT_TRUE(idle_one && idle_one->send("G"));
  std::this_thread::sleep_for(100ms);  // accepted first
  auto idle_two = Client::tcp(port);
  ASSERT_TRUE(idle_two && idle_two->send("G"));
  std::this_thread::sleep_for(100ms);  // both accepted and reading
  auto scrape = Client::tcp(port);
  ASSERT_TRUE(scrape && scrape->send("GET /live HTTP/1.1\r\n\r\n"));
  std::string wire = scrape->read_response();
  EXPECT_EQ(wire.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << wire;
  EXPECT_TRUE(idle_one->closed_by_peer(3000ms)) << "the oldest idle one made room";
  ASSERT_TRUE(idle_two->send("ET /live HTTP/1.1\r\n\r\n"));
  wire = idle_two->read_response();
  EXPECT_EQ(wire.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << wire;
}

TEST(ControlListener, PastItsBoundWithEverySessionAnsweredANewcomerIsClosed) {
  ControlListener control(
      "tcp://127.0.0.1:0", "", [] { return sample_stats(); }, bounded(2));
  control.start();
  uint16_t port = port_of(control.address());
  // Answered, and lingering: neither closes its end.
  auto one = Client::tcp(port), two = Client::tcp(port);
  ASSERT_TRUE(one && two);
  for (auto* c : {one.get(), two.get()}) {
    ASSERT_TRUE(c->send("GET /live HTTP/1.1\r\n\r\n"));
    std::string wire = c->read_response();
    ASSERT_EQ(wire.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << wire;
  }
  auto refused = Client::tcp(port);
  ASSERT_TRUE(refused);
  EXPECT_TRUE(refused->closed_by_peer(3000ms));
  std::string rest;
  EXPECT_TRUE(refused->read_to_eof(rest));
  EXPECT_EQ(rest, "") << "closed without an answer";
}

TEST(ControlListener, AHeadMustArriveWithinTheHeadDeadline) {
  ControlListener::Limits limits;
  limits.head_deadline = 200ms;
  ControlListener control(
      "tcp://127.0.0.1:0", "", [] { return sample_stats(); }, limits);
  control.start();
  auto slow = Client::tcp(port_of(control.address()));
  ASSERT_TRUE(slow && slow->send("GET /stats HTTP/1.1\r\n"));
  auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(slow->closed_by_peer(3000ms));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3000ms) << "well before the 5 s deadline";
}

TEST(ControlListener, ABareLineFeedGets400AtOnce) {
  ControlListener control("tcp://127.0.0.1:0", "", [] { return sample_stats(); });
  control.start();
  auto client = Client::tcp(port_of(control.address()));
  ASSERT_TRUE(client && client->send("GET /live HTTP/1.1\n\n"));
  std::string wire = client->read_response();
  EXPECT_EQ(wire.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << wire;
}

// Bytes the control plane never reads (a body, a pipelined request) must
// not turn its close into a reset that loses the answer.
TEST(ControlListener, TheAnswerSurvivesBytesSentAfterTheHead) {
  ControlListener control("tcp://127.0.0.1:0", "", [] { return sample_stats(); });
  control.start();
  auto client = Client::tcp(port_of(control.address()));
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send("GET /live HTTP/1.1\r\n\r\n" + std::string(64 * 1024, 'x')));
  std::this_thread::sleep_for(200ms);  // answered and closed, had it not lingered
  std::string wire;
  EXPECT_TRUE(client->read_to_eof(wire));
  EXPECT_EQ(wire.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << wire;
  EXPECT_EQ(wire.size() >= 5 ? wire.substr(wire.size() - 5) : wire, "live\n");
}

// A server of a group: /stats and /metrics show the board, /ready also
// follows the group's word.
TEST(ControlPlane, AGroupMembersAnswersShowEveryProcessAndDrainWithTheGroup) {
  ProcessBoard board(2);
  for (size_t i = 0; i < 2; ++i) {
    uint64_t generation = board.claim(i, ::getpid());
    ServerStats s = sample_stats();
    s.served = 10 + i;
    ASSERT_TRUE(board.publish(i, generation, ProcessState::Ready, s));
  }
  GroupStatsSource group = [&] { return board.read(); };
  auto own = [] { return sample_stats(); };
  auto stats = answer_control_request("GET /stats HTTP/1.1\r\n\r\n", {}, own, group);
  EXPECT_EQ(stats.status, 200);
  EXPECT_NE(stats.body.find("\"served\":21,"), std::string::npos) << stats.body;
  EXPECT_NE(stats.body.find("\"group\":\"booting\",\"processes\":[{\"index\":0,\"pid\":"), std::string::npos);
  EXPECT_NE(stats.body.find("{\"index\":1,"), std::string::npos);
  auto metrics = answer_control_request("GET /metrics HTTP/1.1\r\n\r\n", {}, own, group);
  EXPECT_NE(metrics.body.find("kino_requests_served_total{process=\"1\"} 11\n"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("kino_group_requests_served_total 21\n"), std::string::npos);
  EXPECT_NE(metrics.body.find("kino_slot_busy{process=\"0\",slot=\"1\",worker=\"1\"} 1\n"),
            std::string::npos);

  EXPECT_EQ(answer_control_request("GET /ready HTTP/1.1\r\n\r\n", {}, own, group).status, 200);
  auto booting = answer_control_request(
      "GET /ready HTTP/1.1\r\n\r\n", {}, [] { return sample_stats("booting"); }, group);
  EXPECT_EQ(booting.body, "booting\n") << "this process first";
  board.set_group_state(GroupState::Draining);
  auto draining = answer_control_request("GET /ready HTTP/1.1\r\n\r\n", {}, own, group);
  EXPECT_EQ(draining.status, 503);
  EXPECT_EQ(draining.body, "draining\n");
}
