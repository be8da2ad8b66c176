// One HTTP server: its io_context and I/O threads, listeners, the request
// queue its workers drain, counters and log channel. Ruby refers to it by
// an integer id through the Registry and never holds it directly.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "control/control_listener.hpp"
#include "control/process_board.hpp"
#include "control/server_stats.hpp"
#include "handoff/lanes.hpp"
#include "handoff/request_queue.hpp"
#include "handoff/thread_slots.hpp"
#include "handoff/worker_exits.hpp"
#include "server_config.hpp"
#include "util/asio.hpp"
#include "util/counters.hpp"
#include "util/log_channel.hpp"
#include "util/log_writer.hpp"

namespace kino {

class Connection;
class Listener;
class TlsContext;
class TlsContextHolder;

class Server : public std::enable_shared_from_this<Server> {
 public:
  explicit Server(ServerConfig config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Opens every listen address. Throws std::runtime_error naming the
  // address on failure (in use, permission, bad address); nothing stays
  // open then.
  void bind();

  // Starts the I/O threads; connections are accepted from here on.
  void start();

  // The addresses actually bound ("tcp://127.0.0.1:41234"), so a server
  // started on port 0 can say where it listens.
  std::vector<std::string> addresses() const;

  // Graceful stop: stop accepting, close idle connections, let queued and
  // in-flight requests finish until `timeout`, then close everything and
  // join the I/O threads. `interrupted` is polled so a second signal can cut
  // the wait short. Returns how many requests were still unanswered. Never
  // call it from an I/O thread.
  int64_t stop(std::chrono::milliseconds timeout, const std::atomic<bool>* interrupted = nullptr);

  bool draining() const noexcept { return draining_.load(std::memory_order_acquire); }

  // True once a stop gave up waiting for requests in flight: handlers
  // still sleeping through Kino.sleep are woken (and abort) then.
  bool aborting() const noexcept { return aborting_.load(std::memory_order_acquire); }

  // True once stop() has joined the I/O threads: nothing runs handlers any
  // more, so connections must not post to them.
  bool stopped() const noexcept { return stopped_flag_.load(std::memory_order_acquire); }

  // Posts `handler` to `executor` (a connection's strand) from any thread,
  // unless stop() has begun its last run of queued handlers; false then,
  // with nothing posted. A handler posted later would never run, and would
  // keep its connection, and through it this server, alive for ever.
  template <class Executor, class Handler>
  bool post_while_running(const Executor& executor, Handler&& handler) {
    struct Entry {
      std::atomic<int>& posting;
      ~Entry() { posting.fetch_sub(1, std::memory_order_seq_cst); }
    } entry{posting_};
    posting_.fetch_add(1, std::memory_order_seq_cst);
    if (stopped_flag_.load(std::memory_order_seq_cst)) return false;
    asio::post(executor, std::forward<Handler>(handler));
    return true;
  }

  // Everything stats show, read from atomics on any thread (the control
  // plane's included).
  ServerStats stats() const;

  // What the Ruby supervisor knows, pushed whenever it changes: workers
  // running now, restarts after crashes, workers set aside as stuck.
  void report_pool(int64_t workers_up, uint64_t respawns, uint64_t quarantined) noexcept;

  // With a process board (config().board): writes this process's row now,
  // as `stopped` when `final` (after which nothing more is written). Also
  // done every sweep (250 ms) and at each change of state. Any thread.
  void publish_row(bool final = false) noexcept;

  // Where the control plane listens, as bound; empty without control_bind.
  std::string control_address() const;

  RequestQueue& queue() noexcept { return queue_; }
  // Null unless config().lanes.
  Lanes* lanes() noexcept { return lanes_.get(); }
  Counters& counters() noexcept { return counters_; }
  LogChannel& log() noexcept { return log_; }
  const ServerConfig& config() const noexcept { return config_; }
  // Null unless config().log_requests.
  AccessLog* access_log() noexcept { return access_log_.get(); }
  asio::io_context& io() noexcept { return io_; }
  ThreadSlots& slots() noexcept { return slots_; }
  // What worker slots [first, first + count) hold from a batch goes back
  // to the front of the queue, for the other workers; how many. Only if
  // memory runs out are they let go (each answered 500).
  size_t requeue_held(size_t first, size_t count) noexcept;
  WorkerExits& worker_exits() noexcept { return worker_exits_; }

  // The TLS context new connections take; null when the server is
  // plaintext. Any thread.
  std::shared_ptr<TlsContext> tls_context() const noexcept;
  // Loads the certificate and key again from where config().tls says; new
  // connections get them, those open keep theirs. Throws TlsError (naming
  // the file and OpenSSL's reason) and keeps the current ones when they do
  // not load; std::logic_error on a plaintext server. Any thread.
  void reload_tls();

  // Hands a complete request to the workers; answers 503 itself when the
  // queue no longer takes requests.
  void dispatch(RequestRef req);

  // Every line the server logs about itself (the I/O path's errors, and
  // Ruby's: the workers', main's once the server exists). One not yet
  // labelled is said by main: "kino[<pid>] main: ...". To the server's
  // LogWriter when it has one (the label tinted on a terminal), else into
  // log() for Ruby to drain. Never blocks.
  void log_line(std::string_view text);

  // Lines lost by the server's log channel and writers, the access log's
  // included (stats).
  uint64_t log_dropped() const noexcept;

  // Waits up to `timeout` until the server's writer has written what was
  // logged before (a stop, before the process may exit).
  void flush_log(std::chrono::milliseconds timeout);

  // Funnel for errors on the I/O path (Beast's `fail`): one line to the
  // log channel, never a write to stderr from an I/O thread.
  void report(const error_code& ec, const char* what);

  // Descriptor accounting for max_connections (connections and spool
  // files): a listener asks before it accepts, a connection says when it
  // is gone, or when its request let go of a spool file.
  bool at_capacity() const noexcept;
  void accept_paused() noexcept { accept_paused_.store(true, std::memory_order_release); }
  void connection_closed();
  void resume_if_room();

  void track(const std::shared_ptr<Connection>& c);
  void untrack(Connection* c);

 private:
  template <class F>
  void for_each_connection(F&& f);
  void sweep();  // fires every kSweepInterval: connections past a deadline
  void refuse_overdue(int64_t now_ms);

  ServerConfig config_;
  std::unique_ptr<TlsContextHolder> tls_;  // set in the constructor, when config_.tls is
  asio::io_context io_;
  // Declared after io_ so it is destroyed before it.
  std::unique_ptr<asio::steady_timer> sweeper_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::shared_ptr<Listener>> listeners_;  // written in bind() and stop() only
  mutable std::mutex listeners_mu_;                   // for readers outside the lifecycle lock
  std::vector<std::thread> threads_;
  RequestQueue queue_;
  ThreadSlots slots_;
  std::unique_ptr<Lanes> lanes_;  // after queue_, which it holds
  WorkerExits worker_exits_;
  Counters counters_;
  LogChannel log_;
  std::unique_ptr<AccessLog> access_log_;  // stopped (flushed) by stop()
  std::unique_ptr<LogWriter> log_writer_;  // with config.log_fd only

  std::mutex connections_mu_;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections_;

  std::atomic<bool> draining_{false};
  std::atomic<bool> stopped_flag_{false};
  std::atomic<int> posting_{0};  // threads inside post_while_running
  std::atomic<bool> aborting_{false};
  std::atomic<bool> accept_paused_{false};
  bool started_ = false;
  bool stopped_ = false;
  std::mutex lifecycle_mu_;
  // This process's row on config_.board: the generation claim() gave it,
  // and publishes one at a time (the seqlock has one writer).
  uint64_t board_generation_ = 0;
  bool board_final_ = false;  // under board_mu_
  std::mutex board_mu_;
  // Last, so it is gone before anything its stats() calls read.
  std::unique_ptr<ControlListener> control_;  // written in bind() only
};

}  // namespace kino
