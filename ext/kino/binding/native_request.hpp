// What the request unit (native_request.cpp) offers the other units.
#pragma once

#include "binding.hpp"
#include "core/handoff/request_ctx.hpp"

namespace kino::binding {

// The request behind a Kino::Native::Request; raises Kino::Error for a
// handle that holds none.
RequestCtx* unwrap_request(VALUE handle);

// On the main ractor: creates the shared env values (hosts, ports, peers)
// that worker ractors met but may not create themselves. Elsewhere: nothing.
void share_wanted_env_values();

}  // namespace kino::binding
