#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http1/access_log.hpp"
#include "http1/request_parser.hpp"

namespace kino {

class ProcessBoard;

// Where a TLS server's certificate, key and client CA come from: each a
// file path or the PEM text itself (anything holding "-----BEGIN"). `ca`
// empty: no client certificate is asked for; otherwise one it signed is
// required.
struct TlsSources {
  std::string cert;
  std::string key;
  std::string ca;
};

// What one server runs with. No field has a default here: the defaults
// live in Ruby's table (Kino::Configuration::DEFAULTS) and the binding
// sets every field; `{}` only keeps a forgotten one from being garbage.
struct ServerConfig {
  // "tcp://HOST:PORT" (HOST may be an [IPv6] literal; PORT 0 = ephemeral)
  // or "unix:///absolute/path.sock".
  std::vector<std::string> listen;
  // Sockets bound and listening already (by a parent process that forks
  // this one, or by systemd), served as they are and never bound again:
  // the address each was bound as, and its descriptor, which stays the
  // caller's.
  struct InheritedListener {
    std::string address;
    int fd = -1;
  };
  std::vector<InheritedListener> inherited_listeners;
  int io_threads{};
  int backlog{};
  ParserLimits limits;
  // Where request bodies are kept: memory up to a limit, then a spool file.
  // The Server gives it its SpoolBudget (max_spool_size, max_connections).
  BodyStorage body_storage;
  // A request reaches the workers once its whole body is here (false), or
  // as soon as its head is, the body streaming to the app (true: for apps
  // that read while they answer; a slow upload then holds a worker).
  bool stream_request_bodies{};
  // Not the core's: the binding's env builder reads it (native_request.cpp).
  bool intern_header_values{};
  // Bytes per second a body must arrive at: its first window is free (slow
  // start, a client's pause before it sends), and each window after it
  // must bring min_body_rate x window bytes, or 408. 0: no minimum (the
  // stall deadline, first_data_timeout between reads, still holds).
  uint64_t min_body_rate{};
  std::chrono::milliseconds min_body_rate_window{};
  // Bytes of request bodies spooled to disk at once, over every connection
  // (0: no limit); an upload that would pass it gets 503.
  uint64_t max_spool_size{};
  // Pending response bytes per connection above which a streaming body
  // waits for the socket to drain.
  size_t write_high_water{};
  // From accept, or from the end of the previous response, until the
  // request head is complete; also the longest a body may stall between
  // reads, and a response between write progress.
  std::chrono::milliseconds first_data_timeout{};
  // Descriptors for clients at most (0: no limit): open connections plus
  // the spool files of their bodies. At the limit the listeners stop
  // accepting (new clients wait in the kernel's backlog), and a body that
  // would need a spool file gets 503.
  size_t max_connections{};
  // Requests queued for the workers at most (0: no limit); beyond it a
  // request waits up to queue_timeout for a place, then gets 503.
  size_t queue_depth{};
  std::chrono::milliseconds queue_timeout{};
  // How many times a worker looks at an empty queue before it parks on
  // the queue's futex; negative for the queue's default. Not a directive:
  // KINO_QUEUE_SPINS sets it, for measuring (doc/benchmarks.md).
  int queue_spins{-1};
  // Past this, a request still with the app is answered 504 (the handler
  // runs on; its late answer is dropped). Zero: no limit.
  std::chrono::milliseconds request_timeout{};
  // Idle keep-alive connections are closed after this.
  std::chrono::milliseconds persistent_timeout{};
  // Worker threads whose current request is tracked (see ThreadSlots).
  size_t worker_slots{};
  // A small lane per worker slot in front of the queue (handoff/lanes).
  bool lanes{};
  // Requests a worker thread takes per visit to the queue, 1 to 64 (`batch`;
  // not the core's: the binding's Taker reads it).
  int batch{};
  // Every listen address serves HTTPS when set (see net/tls_context).
  std::optional<TlsSources> tls;
  // From accept until the TLS handshake is done (10 s; not a directive).
  std::chrono::milliseconds tls_handshake_timeout{};
  // The worker pool Ruby runs, as stats show it: "threaded" or "ractor",
  // workers, and threads in each (worker w's threads hold slots
  // w * threads up to (w + 1) * threads).
  std::string mode;
  int workers{};
  int threads{};
  // Where the control plane listens ("tcp://HOST:PORT" or
  // "unix:///path"); empty for none. With a token, /stats and /metrics
  // require `Authorization: Bearer <token>`.
  std::string control_bind;
  std::string control_token;
  // One process of a group (multi-process mode): the board every process
  // of the group publishes its stats on, and this one's row there. Null
  // for a server on its own.
  std::shared_ptr<ProcessBoard> board;
  size_t board_index{};
  // A descriptor bound and listening on control_bind already (a process
  // group's parent binds it once); -1: bind control_bind here.
  int control_fd{-1};  // -1, not 0: a forgotten field must never adopt stdin

  // The worker whose thread holds `slot`: worker w holds slots
  // [w * threads, (w + 1) * threads), and replacements take the next ones.
  size_t worker_of_slot(size_t slot) const noexcept {
    return threads > 0 ? slot / static_cast<size_t>(threads) : slot;
  }
  // The access log (log_requests): a line per request on stdout, in this
  // format.
  bool log_requests{};
  AccessLogFormat log_format{};
  // The server's own lines go to a LogWriter on a duplicate of this
  // descriptor; -1: into Server::log() for Ruby to drain (a log IO with no
  // descriptor, such as a StringIO).
  int log_fd = -1;
};

}  // namespace kino
