#pragma once

#include "binding.hpp"
#include "core/handoff/request_ctx.hpp"

namespace kino::binding {

// Builds the Rack env Hash for `req` in the calling thread's ractor, with
// `handle` (the Kino::Native::Request) stored under "kino.request".
VALUE build_env(const RequestCtx& req, VALUE handle);

// On the main ractor: creates the shared env values (hosts, ports, peers)
// that worker ractors met but may not create themselves. Elsewhere: nothing.
void share_wanted_env_values();

}  // namespace kino::binding
