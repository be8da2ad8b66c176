#include "server.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <new>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "http1/responder.hpp"
#include "log_writers.hpp"
#include "net/connection.hpp"
#include "net/listener.hpp"
#include "net/tls_context.hpp"
#include "util/steady_clock.hpp"

namespace kino {

Server::Server(ServerConfig config)
    : config_(std::move(config)),
      queue_(config_.queue_depth, config_.queue_spins),
      slots_(config_.worker_slots) {
  if (config_.io_threads < 1) config_.io_threads = 1;
  if (config_.lanes) lanes_ = std::make_unique<Lanes>(config_.worker_slots, queue_);
  auto budget = std::make_shared<SpoolBudget>();
  budget->max_bytes = config_.max_spool_size;
  budget->max_descriptors = static_cast<int64_t>(config_.max_connections);
  // Read only while a connection spools, which keeps this server alive.
  budget->connections = &counters_.connections_open;
  config_.body_storage.budget = std::move(budget);
  // Before any socket: a certificate that does not load stops the boot.
  if (config_.tls) tls_ = std::make_unique<TlsContextHolder>(*config_.tls);
  if (config_.log_requests) access_log_ = std::make_unique<AccessLog>(STDOUT_FILENO, config_.log_format);
  if (config_.log_fd >= 0) {
    // A duplicate of our own, so the writer outlives the IO it came from.
    int fd = ::fcntl(config_.log_fd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot log to descriptor");
    try {
      log_writer_ = LogWriter::adopt(fd);
    } catch (...) {
      ::close(fd);
      throw;
    }
  }
  if (config_.board) board_generation_ = config_.board->claim(config_.board_index, ::getpid());
}

Server::~Server() {
  // stop() joins the threads; a server dropped without it (a failed boot)
  // still must not leave them running against freed memory.
  if (started_ && !stopped_) stop(std::chrono::milliseconds(0));
  publish_row(true);  // a server that never started leaves no row that says it boots
}

void Server::bind() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  std::vector<std::shared_ptr<Listener>> opened;
  for (const auto& address : config_.listen)
    opened.push_back(std::make_shared<Listener>(*this, address, config_.backlog));
  for (const auto& inherited : config_.inherited_listeners)
    opened.push_back(std::make_shared<Listener>(*this, inherited.address, InheritedFd{inherited.fd}));
  if (opened.empty()) throw std::runtime_error("no address to listen on");
  if (!config_.control_bind.empty()) {
    GroupStatsSource group;
    if (config_.board) {
      // Our own row first, so this answer shows this process as it is now.
      group = [this] {
        publish_row();
        return config_.board->read();
      };
    }
    if (config_.control_fd >= 0)
      control_ = std::make_unique<ControlListener>(
          config_.control_bind, InheritedFd{config_.control_fd}, config_.control_token,
          [this] { return stats(); }, std::move(group));
    else
      control_ = std::make_unique<ControlListener>(
          config_.control_bind, config_.control_token, [this] { return stats(); }, std::move(group));
  }
  std::lock_guard<std::mutex> listeners_lock(listeners_mu_);
  listeners_ = std::move(opened);
}

void Server::start() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (started_) return;
  if (listeners_.empty()) throw std::runtime_error("bind before start");
  work_.emplace(io_.get_executor());
  // A spool file let go (by a worker, after the response) frees a
  // descriptor: a listener paused at max_connections may go on. Weak: a
  // body may outlive the server.
  config_.body_storage.budget->file_released = [weak = weak_from_this()] {
    if (auto server = weak.lock()) server->resume_if_room();
  };
  for (auto& l : listeners_) l->start();
  if (control_) control_->start();
  sweeper_ = std::make_unique<asio::steady_timer>(asio::make_strand(io_));
  sweep();
  for (int i = 0; i < config_.io_threads; ++i) {
    threads_.emplace_back([this, i] {
      char name[16];
      snprintf(name, sizeof name, "kino-io-%d", i);
      pthread_setname_np(pthread_self(), name);
      for (;;) {
        try {
          io_.run();
          return;
        } catch (const std::exception& e) {
          // A handler threw (out of memory): log it and keep the thread.
          log_line(std::string("I/O thread error: ") + e.what());
        }
      }
    });
  }
  started_ = true;
  publish_row();
}

std::shared_ptr<TlsContext> Server::tls_context() const noexcept { return tls_ ? tls_->current() : nullptr; }

void Server::reload_tls() {
  if (!tls_) throw std::logic_error("this server does not serve TLS");
  tls_->reload();
}

std::vector<std::string> Server::addresses() const {
  // Any thread may ask, while stop() may be clearing the listeners.
  std::lock_guard<std::mutex> lock(listeners_mu_);
  std::vector<std::string> out;
  for (const auto& l : listeners_) out.push_back(l->address());
  return out;
}

std::string Server::control_address() const { return control_ ? control_->address() : std::string(); }

void Server::report_pool(int64_t workers_up, uint64_t respawns, uint64_t quarantined) noexcept {
  counters_.workers_up.store(workers_up, std::memory_order_relaxed);
  counters_.respawns.store(respawns, std::memory_order_relaxed);
  counters_.quarantined.store(quarantined, std::memory_order_relaxed);
  publish_row();  // booting to ready, or a worker lost: the board shows it at once
}

void Server::publish_row(bool final) noexcept {
  if (!config_.board) return;
  std::lock_guard<std::mutex> lock(board_mu_);
  if (board_final_) return;
  try {
    ServerStats s = stats();
    ProcessState state = final                   ? ProcessState::Stopped
                         : s.state == "ready"    ? ProcessState::Ready
                         : s.state == "draining" ? ProcessState::Draining
                                                 : ProcessState::Booting;
    config_.board->publish(config_.board_index, board_generation_, state, s);
    board_final_ = final;
  } catch (const std::exception&) {
    // Out of memory making the snapshot: the row keeps its last one.
  }
}

ServerStats Server::stats() const {
  ServerStats s;
  auto r = std::memory_order_relaxed;
  Counters::Snapshot c = counters_.snapshot();
  s.mode = config_.mode;
  s.workers = config_.workers;
  s.threads = config_.threads;
  s.batch = config_.batch;
  s.workers_up = counters_.workers_up.load(r);
  s.respawns = counters_.respawns.load(r);
  s.quarantined = counters_.quarantined.load(r);
  s.queued = queue_.depth() + queue_.waiting() + (lanes_ ? lanes_->queued() : 0);
  s.lanes = lanes_ != nullptr;
  s.lane_dispatched = lanes_ ? lanes_->dispatched() : 0;
  s.in_flight = c.in_flight;
  s.served = c.served;
  s.rejected = c.rejected;
  s.timeouts = c.timeouts;
  s.parse_errors = c.parse_errors;
  s.requests_received = c.requests_received;
  s.connections_accepted = c.connections_accepted;
  s.connections_open = c.connections_open;
  s.log_dropped = log_dropped();
  s.logger_dropped = LogWriters::instance().dropped();
  if (const auto& budget = config_.body_storage.budget) {
    s.spooled_bytes = budget->bytes.load(r);
    // Acquire: pairs with take_file's release, after which the
    // connection's body already counts as arriving (Http1Session).
    s.spool_files = budget->files.load(std::memory_order_acquire);
  }
  s.state = draining() ? "draining" : s.workers_up > 0 ? "ready" : "booting";
  size_t threads = config_.threads > 0 ? static_cast<size_t>(config_.threads) : 1;
  size_t started = static_cast<size_t>(std::max(config_.workers, 0)) + static_cast<size_t>(s.quarantined);
  size_t rows = std::min(slots_.size(), started * threads);
  s.slots.reserve(rows);
  for (size_t i = 0; i < rows; ++i) {
    ThreadSlots::Row row = slots_.row(i);
    s.slots.push_back(SlotStats{i, config_.worker_of_slot(i), row.served, row.in_flight, row.busy_ms,
                                lanes_ ? lanes_->depth(i) : 0});
  }
  s.queue_wait = slots_.queue_wait();
  return s;
}

void Server::dispatch(RequestRef req) {
  counters_.requests_received.fetch_add(1, std::memory_order_relaxed);
  counters_.in_flight.fetch_add(1, std::memory_order_relaxed);
  req->queued_ns = steady_ns();
  if (lanes_ && lanes_->offer(req)) return;
  int64_t until = ns_to_ms(req->queued_ns) + config_.queue_timeout.count();
  switch (queue_.admit(req, until)) {
    case RequestQueue::Admission::Queued:
    case RequestQueue::Admission::Waiting:
      return;
    case RequestQueue::Admission::Refused:
      counters_.rejected.fetch_add(1, std::memory_order_relaxed);
      respond_plain(*req, 503, "Service Unavailable: the server is shutting down\n", true);
      return;
    case RequestQueue::Admission::NoMemory:
      counters_.rejected.fetch_add(1, std::memory_order_relaxed);
      log_line("out of memory queueing a request; answered 503");
      respond_plain(*req, 503, "Service Unavailable: the server is out of memory\n", true);
      return;
  }
}

// Overload is answered here, natively, without touching Ruby: a request
// that found no place in the queue within queue_timeout gets 503 and a hint
// of when to retry.
void Server::refuse_overdue(int64_t now) {
  for (auto& req : queue_.expire_waiting(now)) {
    counters_.rejected.fetch_add(1, std::memory_order_relaxed);
    HeaderView headers[] = {{"content-type", "text/plain"}, {"retry-after", "1"}};
    std::string_view body[] = {"Service Unavailable: the server is overloaded\n"};
    respond(*req, 503, headers, body);
  }
}

void Server::report(const error_code& ec, const char* what) {
  log_line(std::string(what) + ": " + ec.message());
}

namespace {

constexpr std::string_view kLabelled = "kino[";
constexpr std::string_view kMainTint = "\033[36m", kWorkerTint = "\033[35m", kReset = "\033[0m";

// "kino[4242] worker-3: ..." with the speaker in colour.
std::string tinted(std::string_view line) {
  size_t open = line.find("] ");
  size_t colon = open == std::string_view::npos ? open : line.find(':', open);
  if (colon == std::string_view::npos) return std::string(line);
  std::string_view speaker = line.substr(open + 2, colon - open - 2);
  std::string out;
  out.reserve(line.size() + 16);
  out.append(line.substr(0, open + 2));
  out.append(speaker == "main" ? kMainTint : kWorkerTint);
  out.append(speaker);
  out.append(kReset);
  out.append(line.substr(colon));
  return out;
}

}  // namespace

void Server::log_line(std::string_view text) {
  std::string line;
  if (text.substr(0, kLabelled.size()) != kLabelled) {
    line = "kino[" + std::to_string(::getpid()) + "] main: ";
    if (text.substr(0, 6) == "kino: ") text.remove_prefix(6);
  }
  line.append(text);
  if (line.empty() || line.back() != '\n') line.push_back('\n');
  if (!log_writer_) {
    log_.push(line);
  } else if (log_writer_->is_tty()) {
    log_writer_->push(tinted(line));
  } else {
    log_writer_->push(line);
  }
}

uint64_t Server::log_dropped() const noexcept {
  return log_.dropped() + (log_writer_ ? log_writer_->dropped() : 0) +
         (access_log_ ? access_log_->dropped() : 0);
}

void Server::flush_log(std::chrono::milliseconds timeout) {
  if (log_writer_) log_writer_->flush(timeout);
}

bool Server::at_capacity() const noexcept {
  return config_.max_connections > 0 &&
         config_.body_storage.budget->descriptors() >= static_cast<int64_t>(config_.max_connections);
}

void Server::connection_closed() {
  counters_.connections_open.fetch_sub(1, std::memory_order_relaxed);
  resume_if_room();
}

void Server::resume_if_room() {
  if (!accept_paused_.load(std::memory_order_acquire) || at_capacity() || draining()) return;
  if (accept_paused_.exchange(false, std::memory_order_acq_rel)) {
    // Connections close on any thread; stop() may be dropping the listeners.
    std::lock_guard<std::mutex> lock(listeners_mu_);
    for (auto& l : listeners_) l->resume();
  }
}

void Server::track(const std::shared_ptr<Connection>& c) {
  std::lock_guard<std::mutex> lock(connections_mu_);
  connections_.emplace(c.get(), c);
}

void Server::untrack(Connection* c) {
  std::lock_guard<std::mutex> lock(connections_mu_);
  connections_.erase(c);
}

template <class F>
void Server::for_each_connection(F&& f) {
  std::vector<std::shared_ptr<Connection>> live;
  {
    std::lock_guard<std::mutex> lock(connections_mu_);
    live.reserve(connections_.size());
    for (auto& [raw, weak] : connections_)
      if (auto c = weak.lock()) live.push_back(std::move(c));
  }
  for (auto& c : live) f(*c);
}

// One timer per server instead of one per connection: a request costs an
// atomic store, and the sweeper reads every connection's deadline a few
// times a second.
void Server::sweep() {
  constexpr auto kSweepInterval = std::chrono::milliseconds(250);
  int64_t now = steady_ms();
  refuse_overdue(now);
  publish_row();
  for_each_connection([now](Connection& c) {
    if (c.deadline_ms() <= now) c.check_deadline();
  });
  sweeper_->expires_after(kSweepInterval);
  sweeper_->async_wait([this](const error_code& ec) {
    // Deadlines keep running during a drain: a slow client or app is cut
    // off on time then too.
    if (!ec && !stopped_flag_.load(std::memory_order_acquire)) sweep();
  });
}

size_t Server::requeue_held(size_t first, size_t count) noexcept {
  try {
    std::vector<RequestRef> held = slots_.take_held(first, count);
    if (!held.empty() && queue_.requeue(held.data(), held.size())) return held.size();
  } catch (const std::bad_alloc&) {
  }
  return 0;
}

int64_t Server::stop(std::chrono::milliseconds timeout, const std::atomic<bool>* interrupted) {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (stopped_) return 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  draining_.store(true, std::memory_order_release);
  publish_row();
  for (auto& l : listeners_) l->close();

  // Keep-alive connections between requests are closed now; busy ones
  // close after their current response (Connection::response_done).
  auto tick = std::chrono::milliseconds(5);
  for (;;) {
    // Uploads are read before in_flight: a body that became a request in
    // between is then counted there.
    bool bodies_arriving = false;
    for_each_connection([&bodies_arriving](Connection& c) {
      c.close_if_idle();
      bodies_arriving = bodies_arriving || c.body_arriving();
    });
    if (!bodies_arriving && counters_.in_flight.load() <= 0) break;
    if (std::chrono::steady_clock::now() >= deadline) break;
    if (interrupted && interrupted->load()) break;
    std::this_thread::sleep_for(tick);
    if (tick < std::chrono::milliseconds(50)) tick *= 2;
  }
  int64_t stragglers = counters_.in_flight.load();
  if (stragglers < 0) stragglers = 0;
  if (stragglers > 0) aborting_.store(true, std::memory_order_release);

  if (lanes_) lanes_->close();
  queue_.close();
  for_each_connection([](Connection& c) { c.close_now(); });
  if (sweeper_) asio::post(sweeper_->get_executor(), [this] { sweeper_->cancel(); });
  work_.reset();
  if (started_) {
    // Handlers finish quickly once every socket is closed; io_.stop() is the
    // backstop so joining can never hang on a stuck peer.
    auto join_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (counters_.connections_open.load() > stragglers && std::chrono::steady_clock::now() < join_deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    io_.stop();
    // A server whose last owner was one of its own handlers (possible only
    // when nobody called stop first) is destroyed on an I/O thread, which
    // cannot join itself.
    for (auto& t : threads_) {
      if (t.get_id() == std::this_thread::get_id())
        t.detach();
      else
        t.join();
    }
    threads_.clear();
    // From here on nobody posts (post_while_running); a post already under
    // way finishes first, so the run below sees it.
    stopped_flag_.store(true, std::memory_order_seq_cst);
    while (posting_.load(std::memory_order_seq_cst) > 0) std::this_thread::yield();
    // Handlers still queued (aborted reads, closes) each hold a connection,
    // which holds this server: run them here so nothing is left behind.
    io_.restart();
    while (io_.poll() > 0) {
    }
  }
  stopped_flag_.store(true, std::memory_order_release);
  // Requests still queued, waiting or held by a worker slot each hold their
  // connection, which holds this server: let them go so a released server
  // is freed. Unanswered ones get their 500 (sent nowhere: we stopped).
  if (lanes_) lanes_->release_all();
  while (queue_.try_pop()) {
  }
  for (auto& req : queue_.expire_waiting(INT64_MAX)) req.reset();
  slots_.take(0, slots_.size());
  slots_.take_held(0, slots_.size());
  // Every response that was written has been logged by now. Lines the
  // writer had to drop (stdout did not keep up) are told once, here.
  if (access_log_) {
    access_log_->stop();
    if (uint64_t lost = access_log_->dropped(); lost > 0)
      log_.push("access log: " + std::to_string(lost) + " lines dropped, stdout did not keep up");
  }
  {
    std::lock_guard<std::mutex> lock(listeners_mu_);
    listeners_.clear();
  }
  // It answered through the drain (/ready said draining); now it goes too.
  if (control_) control_->stop();
  stopped_ = true;
  publish_row(true);
  return stragglers;
}

}  // namespace kino
