// What the server unit shares with the process board unit.
#pragma once

#include "binding.hpp"
#include "core/control/server_stats.hpp"

namespace kino::binding {

// A ServerStats as Kino::Server#stats shows it (see native_server_stats).
// Allocates, so it may raise: hold `stats` where a longjmp loses nothing
// (with_held).
VALUE server_stats_hash(const ServerStats& stats);

}  // namespace kino::binding
