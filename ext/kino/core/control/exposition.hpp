// The two renderings of ServerStats the control plane serves.
#pragma once

#include <string>

#include "control/server_stats.hpp"

namespace kino {

// /stats: one JSON object, the fields of Kino::Server#stats.
std::string stats_json(const ServerStats& stats);

// /metrics: Prometheus text exposition format 0.0.4, every family with its
// HELP and TYPE lines; counters end in `_total`, the queue wait is the
// histogram `kino_request_queue_seconds`, per-slot series carry `slot` and
// `worker` labels.
std::string metrics_text(const ServerStats& stats);

inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace kino
