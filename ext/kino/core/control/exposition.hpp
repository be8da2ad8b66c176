// The two renderings of ServerStats the control plane serves.
#pragma once

#include <string>

#include "control/process_board.hpp"
#include "control/server_stats.hpp"

namespace kino {

// /stats: one JSON object, the fields of Kino::Server#stats.
std::string stats_json(const ServerStats& stats);

// /metrics: Prometheus text exposition format 0.0.4, every family with its
// HELP and TYPE lines; counters end in `_total`, the queue wait is the
// histogram `kino_request_queue_seconds`, per-slot series carry `slot` and
// `worker` labels.
std::string metrics_text(const ServerStats& stats);

// The same for a group of processes sharing a ProcessBoard. /stats: the
// totals' fields, `group` (the parent's word) and `processes`, one object
// a row (index, pid or null, generation, started_at in Unix seconds, then
// that process's fields). /metrics: the group's families
// (`kino_group_processes`, `kino_group_processes_running`,
// `kino_group_draining`), the totals as `kino_group_*` families, and the
// single-server families with a `process` label, one series a process that
// reported (an empty or stale row has none).
std::string group_stats_json(const GroupStats& group);
std::string group_metrics_text(const GroupStats& group);

inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace kino
