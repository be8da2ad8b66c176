#include "control/control_listener.hpp"

#include <pthread.h>
#include <unistd.h>

#include <array>
#include <cstdio>

#include "control/exposition.hpp"
#include "control/server_stats.hpp"
#include "net/listener.hpp"

namespace kino {

namespace {

constexpr int kBacklog = 64;

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Takes as long for a wrong token as for a right one of the same length,
// however early they differ; only the length may show.
bool same_secret(std::string_view given, std::string_view expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= static_cast<unsigned char>(g ^ static_cast<unsigned char>(expected[i]));
  }
  return diff == 0;
}

bool is_token_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

struct RequestHead {
  std::string_view method, path;
  std::string_view authorization;
};

// A request line `METHOD /path HTTP/1.x`, then `Name: value` lines, each
// ending in CRLF, then the blank line. Anything else is a bad request.
bool parse_head(std::string_view head, RequestHead& out) {
  size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos) return false;
  std::string_view line = head.substr(0, eol);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) return false;
  out.method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (out.method.empty()) return false;
  for (char c : out.method)
    if (!is_token_char(c)) return false;
  if (target.empty() || target.front() != '/') return false;
  for (char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return false;
  out.path = target.substr(0, target.find('?'));
  std::string_view rest = head.substr(eol + 2);
  for (;;) {
    eol = rest.find("\r\n");
    if (eol == std::string_view::npos) return false;
    if (eol == 0) return true;  // the blank line
    std::string_view field = rest.substr(0, eol);
    size_t colon = field.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;
    std::string_view name = field.substr(0, colon);
    for (char c : name)
      if (!is_token_char(c)) return false;
    if (iequals(name, "authorization")) out.authorization = trim(field.substr(colon + 1));
    rest.remove_prefix(eol + 2);
  }
}

bool bearer_matches(std::string_view authorization, std::string_view token) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() < kScheme.size() || !iequals(authorization.substr(0, kScheme.size()), kScheme))
    return false;
  return same_secret(trim(authorization.substr(kScheme.size())), token);
}

ControlResponse text(int status, std::string body) {
  ControlResponse r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(body);
  return r;
}

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

}  // namespace

ControlResponse answer_control_request(std::string_view head, std::string_view token,
                                       const std::function<ServerStats()>& stats,
                                       const GroupStatsSource& group) {
  RequestHead req;
  if (!parse_head(head, req)) return text(400, "Bad Request\n");
  enum class Page { Stats, Metrics, Ready, Live } page;
  if (req.path == "/stats")
    page = Page::Stats;
  else if (req.path == "/metrics")
    page = Page::Metrics;
  else if (req.path == "/ready")
    page = Page::Ready;
  else if (req.path == "/live")
    page = Page::Live;
  else
    return text(404, "Not Found: the control plane serves /stats, /metrics, /ready and /live\n");
  if (req.method != "GET" && req.method != "HEAD") {
    ControlResponse r = text(405, "Method Not Allowed\n");
    r.allow = "GET, HEAD";
    return r;
  }
  // The probes stay open: a balancer or kubelet has no token to send.
  bool guarded = page == Page::Stats || page == Page::Metrics;
  if (guarded && !token.empty() && !bearer_matches(req.authorization, token)) {
    ControlResponse r = text(401, "Unauthorized: send Authorization: Bearer <control_token>\n");
    r.challenge = true;
    return r;
  }
  switch (page) {
    case Page::Live:
      return text(200, "live\n");
    case Page::Ready: {
      // This process must be ready, and its group not draining: a
      // balancer then stops sending before any process stops accepting.
      ServerStats s = stats();
      if (!s.ready()) return text(503, s.state + "\n");
      if (group && group().group == GroupState::Draining) return text(503, "draining\n");
      return text(200, "ready\n");
    }
    case Page::Stats: {
      ControlResponse r;
      r.content_type = "application/json";
      r.body = group ? group_stats_json(group()) : stats_json(stats());
      r.body += '\n';
      return r;
    }
    case Page::Metrics: {
      ControlResponse r;
      r.content_type = kMetricsContentType;
      r.body = group ? group_metrics_text(group()) : metrics_text(stats());
      return r;
    }
  }
  return text(404, "Not Found\n");
}

std::string serialize_control_response(const ControlResponse& r, bool head_only) {
  std::string out;
  out.reserve(256 + r.body.size());
  char line[64];
  snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", r.status, reason(r.status));
  out += line;
  out += "content-type: " + r.content_type + "\r\n";
  out += "content-length: " + std::to_string(r.body.size()) + "\r\n";
  out += "cache-control: no-store\r\n";
  if (r.challenge) out += "www-authenticate: Bearer realm=\"kino control\"\r\n";
  if (!r.allow.empty()) out += "allow: " + r.allow + "\r\n";
  out += "connection: close\r\n\r\n";
  if (!head_only) out += r.body;
  return out;
}

class ControlListener::Session : public std::enable_shared_from_this<Session> {
 public:
  using Socket = asio::basic_stream_socket<asio::generic::stream_protocol>;

  Session(ControlListener& owner, Socket socket)
      : owner_(owner), sessions_(owner.sessions_), socket_(std::move(socket)), timer_(owner.io_) {
    ++sessions_->open;
    reading_ = sessions_->reading.insert(sessions_->reading.end(), this);
  }
  ~Session() { leave(); }

  void start() {
    accepted_ = std::chrono::steady_clock::now();
    arm(std::min(owner_.limits_.head_deadline, owner_.limits_.deadline));
    read();
  }

  // Closes the session for a newcomer (ControlListener::do_accept).
  void evict() { close(); }

 private:
  // One timer, re-armed for each phase: the head must arrive, then the
  // answer must be written, then the client has a moment to close.
  void arm(std::chrono::steady_clock::duration after) {
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) self->close();
    });
  }

  void read() {
    socket_.async_read_some(asio::buffer(chunk_),
                            [self = shared_from_this()](const error_code& ec, size_t n) {
                              if (ec) return self->close();
                              self->received(n);
                            });
  }

  void received(size_t n) {
    size_t searched_from = in_.size() >= 3 ? in_.size() - 3 : 0;
    // A line ending in a bare LF is no request of ours: answered at once,
    // not left to wait for a CRLF CRLF that never comes.
    for (size_t i = 0; i < n; ++i) {
      if (chunk_[i] != '\n') continue;
      char before = i > 0 ? chunk_[i - 1] : (in_.empty() ? '\0' : in_.back());
      if (before != '\r') return reply(text(400, "Bad Request\n"), false);
    }
    in_.append(chunk_.data(), n);
    size_t end = in_.find("\r\n\r\n", searched_from);
    size_t max_head = owner_.limits_.max_head;
    if (end == std::string::npos) {
      if (in_.size() > max_head) return reply(text(431, "Request Header Fields Too Large\n"), false);
      return read();
    }
    if (end + 4 > max_head) return reply(text(431, "Request Header Fields Too Large\n"), false);
    std::string_view head(in_.data(), end + 4);
    bool head_only = head.substr(0, 5) == "HEAD ";
    reply(answer_control_request(head, owner_.token_, owner_.stats_, owner_.group_), head_only);
  }

  void reply(const ControlResponse& response, bool head_only) {
    unlist();
    auto spent = std::chrono::steady_clock::now() - accepted_;
    arm(owner_.limits_.deadline > spent ? owner_.limits_.deadline - spent
                                        : std::chrono::steady_clock::duration{});
    out_ = serialize_control_response(response, head_only);
    asio::async_write(socket_, asio::buffer(out_), [self = shared_from_this()](const error_code& ec, size_t) {
      if (ec) return self->close();
      self->linger();
    });
  }

  // Closing with unread bytes in the socket (a body, a pipelined request)
  // would send a reset, and the client could lose the answer it has not
  // read yet. So the send side is shut and what comes is read and dropped
  // until the client closes, for at most the linger time.
  void linger() {
    error_code ignored;
    socket_.shutdown(asio::socket_base::shutdown_send, ignored);
    arm(owner_.limits_.linger);
    drain();
  }

  void drain() {
    socket_.async_read_some(asio::buffer(chunk_), [self = shared_from_this()](const error_code& ec, size_t) {
      if (ec) return self->close();
      self->drain();
    });
  }

  // A closed session holds no place, though its object lives until its
  // cancelled handlers have run: a newcomer can take its place at once.
  void close() {
    leave();
    error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
  }

  void unlist() {
    if (!listed_) return;
    listed_ = false;
    sessions_->reading.erase(reading_);
  }

  void leave() {
    unlist();
    if (!counted_) return;
    counted_ = false;
    --sessions_->open;
  }

  ControlListener& owner_;  // used by handlers only, which never run after stop()
  std::shared_ptr<Sessions> sessions_;
  std::list<Session*>::iterator reading_;
  bool listed_ = true;
  bool counted_ = true;
  Socket socket_;
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point accepted_;
  std::array<char, 2048> chunk_;
  std::string in_;
  std::string out_;
};

ControlListener::ControlListener(const std::string& address, std::string token,
                                 std::function<ServerStats()> stats, GroupStatsSource group, Limits limits)
    : acceptor_(io_),
      token_(std::move(token)),
      stats_(std::move(stats)),
      group_(std::move(group)),
      limits_(limits) {
  BoundAcceptor bound = bind_acceptor(acceptor_, io_, address, kBacklog);
  address_ = std::move(bound.address);
  unix_path_ = std::move(bound.unix_path);
}

ControlListener::ControlListener(const std::string& address, InheritedFd fd, std::string token,
                                 std::function<ServerStats()> stats, GroupStatsSource group)
    : acceptor_(io_),
      token_(std::move(token)),
      stats_(std::move(stats)),
      group_(std::move(group)),
      limits_(Limits{}) {
  adopt_acceptor(acceptor_, address, fd);
  address_ = address;
}

ControlListener::~ControlListener() { stop(); }

void ControlListener::start() {
  if (started_ || stopped_) return;
  started_ = true;
  do_accept();
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "kino-control");
    for (;;) {
      try {
        io_.run();
        return;
      } catch (const std::exception&) {
        // A handler ran out of memory: that client is dropped, the
        // control plane goes on.
      }
    }
  });
}

void ControlListener::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
  io_.stop();
  if (thread_.joinable()) thread_.join();
  error_code ignored;
  acceptor_.close(ignored);
}

void ControlListener::do_accept() {
  acceptor_.async_accept(io_, [this](const error_code& ec, Session::Socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) {
      if (sessions_->open >= limits_.max_connections && !sessions_->reading.empty()) {
        // The oldest still sending its head has had longest to send it.
        sessions_->reading.front()->evict();
      }
      if (sessions_->open >= limits_.max_connections) {
        error_code ignored;
        socket.close(ignored);  // every session is answering: this one is refused
      } else {
        std::make_shared<Session>(*this, std::move(socket))->start();
      }
    }
    // Out of descriptors, accept fails at once: try again shortly rather
    // than spin.
    if (ec) {
      auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(50));
      timer->async_wait([this, timer](const error_code& wait_ec) {
        if (!wait_ec) do_accept();
      });
      return;
    }
    do_accept();
  });
}

}  // namespace kino
