// The control plane: a small HTTP/1.1 listener for operators and probes
// (/stats, /metrics, /ready, /live), on its own thread and io_context, so
// it answers while every worker is busy or stuck and while the request
// I/O threads are saturated. Every answer is made here, natively, from a
// ServerStats snapshot; nothing here calls into Ruby.
//
// One request per connection (each answer says `connection: close`), a
// bounded head, a deadline for the whole exchange and a bound on
// connections open at once: a slow or idle client costs a socket and a
// timer until the deadline, never the thread.
#pragma once

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "net/listener.hpp"
#include "util/asio.hpp"

namespace kino {

struct ServerStats;
struct GroupStats;

// What a group's control plane reads besides its own server: the process
// board of every process (empty for a server on its own).
using GroupStatsSource = std::function<GroupStats()>;

class ControlListener {
 public:
  struct Limits {
    size_t max_head = 8192;                         // bytes of request line and headers
    std::chrono::milliseconds head_deadline{2000};  // from accept until the whole head is in
    std::chrono::milliseconds deadline{5000};       // from accept until the answer is written
    std::chrono::milliseconds linger{1000};         // after the answer, for the client to close
    // Beyond it, a newcomer takes the place of the oldest session still
    // waiting for its head (one that sends nothing must not keep a scrape
    // out); when every session is past its head, the newcomer is closed.
    size_t max_connections = 64;
  };

  // `stats` is called on the control thread for every /stats, /metrics and
  // /ready request. `token`: empty for none; otherwise /stats and /metrics
  // require `Authorization: Bearer <token>`. `group`, when set, is what
  // /stats and /metrics show instead (every process of the board), and
  // /ready is 503 while the group drains.
  ControlListener(const std::string& address, std::string token, std::function<ServerStats()> stats,
                  GroupStatsSource group, Limits limits);
  ControlListener(const std::string& address, std::string token, std::function<ServerStats()> stats,
                  GroupStatsSource group = {})
      : ControlListener(address, std::move(token), std::move(stats), std::move(group), Limits{}) {}
  ControlListener(const std::string& address, std::string token, std::function<ServerStats()> stats,
                  Limits limits)
      : ControlListener(address, std::move(token), std::move(stats), GroupStatsSource{}, limits) {}
  // Serves a socket bound already (by a process group's parent, which
  // binds the control address once for all its children), known as
  // `address`; `fd` stays the caller's and a unix socket's file is left to
  // its binder.
  ControlListener(const std::string& address, InheritedFd fd, std::string token,
                  std::function<ServerStats()> stats, GroupStatsSource group = {});
  ~ControlListener();
  ControlListener(const ControlListener&) = delete;
  ControlListener& operator=(const ControlListener&) = delete;

  void start();  // starts the thread
  void stop();   // closes everything and joins the thread; idempotent

  // As bound: "tcp://127.0.0.1:41235" (the real port for port 0), or
  // "unix:///path".
  const std::string& address() const noexcept { return address_; }

  class Session;

 private:
  void do_accept();

  asio::io_context io_;
  asio::basic_socket_acceptor<asio::generic::stream_protocol> acceptor_;
  std::string address_;
  std::string unix_path_;
  std::string token_;
  std::function<ServerStats()> stats_;
  GroupStatsSource group_;
  Limits limits_;
  // Sessions alive, and those still reading their head, oldest first;
  // control thread only. Shared with each session, whose destructor may
  // run when io_ is destroyed, after this listener's other members.
  struct Sessions {
    size_t open = 0;
    std::list<Session*> reading;
  };
  std::shared_ptr<Sessions> sessions_ = std::make_shared<Sessions>();
  std::thread thread_;
  bool started_ = false;
  bool stopped_ = false;

  friend class Session;
};

// What the control plane answers to one request head: exposed for tests.
struct ControlResponse {
  int status = 200;
  std::string content_type;
  std::string body;
  bool challenge = false;  // 401: add `www-authenticate`
  std::string allow;       // 405: the methods the path takes
};

// `head` is the request line and headers up to and including the blank
// line. `stats` and `group` are only called when the answer needs them;
// `group` empty: a server on its own.
ControlResponse answer_control_request(std::string_view head, std::string_view token,
                                       const std::function<ServerStats()>& stats,
                                       const GroupStatsSource& group = {});

// The whole response on the wire, `connection: close` included.
std::string serialize_control_response(const ControlResponse& response, bool head_only);

}  // namespace kino
