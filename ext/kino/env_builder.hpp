#pragma once

#include "binding.hpp"
#include "core/request_ctx.hpp"

namespace kino::binding {

// Builds the Rack env Hash for `req` in the calling thread's ractor, with
// `handle` (the Kino::Native::Request) stored under "kino.request".
VALUE build_env(const RequestCtx& req, VALUE handle);

}  // namespace kino::binding
