// One server's numbers at one moment, as Kino::Server#stats, the control
// plane's /stats and /metrics all show them: made by Server::stats() from
// relaxed atomics, so reading never slows a request down and never calls
// into Ruby (what only the Ruby supervisor knows was pushed in already).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/counters.hpp"

namespace kino {

// One worker thread's slot (see ThreadSlots).
struct SlotStats {
  size_t slot = 0;
  size_t worker = 0;  // the worker (ractor or thread group) it belongs to
  uint64_t served = 0;
  bool in_flight = false;
  int64_t busy_ms = 0;    // age of its current unanswered request; 0 when idle
  size_t lane_depth = 0;  // requests in its lane (lanes true), not yet taken
};

struct ServerStats {
  // The pool as configured, and as the supervisor last reported it.
  std::string mode;
  int64_t workers = 0, threads = 0, workers_up = 0;
  int64_t batch = 1;  // requests a worker thread takes a visit to the queue
  uint64_t respawns = 0, quarantined = 0;

  uint64_t queued = 0;  // in the queue or a lane, or waiting for a place in it
  // lanes true (handoff/lanes), and the requests that went to a lane
  // (shown only with lanes, as each slot's lane_depth is).
  bool lanes = false;
  uint64_t lane_dispatched = 0;
  int64_t in_flight = 0;
  uint64_t served = 0, rejected = 0, timeouts = 0, parse_errors = 0;
  uint64_t connections_accepted = 0, requests_received = 0;
  int64_t connections_open = 0;
  uint64_t log_dropped = 0;     // this server's own lines and access log
  uint64_t logger_dropped = 0;  // Kino::Logger devices, the process's all
  uint64_t spooled_bytes = 0;
  int64_t spool_files = 0;

  // "booting" until the supervisor reports a worker up, "ready", then
  // "draining" from the start of a graceful stop.
  std::string state;
  bool ready() const { return state == "ready"; }

  std::vector<SlotStats> slots;  // every slot of every worker started so far
  QueueWaitHistogram::Snapshot queue_wait;
};

}  // namespace kino
