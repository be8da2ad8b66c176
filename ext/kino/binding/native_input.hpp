// What the input unit (native_input.cpp) offers the request unit.
#pragma once

#include "binding.hpp"
#include "core/handoff/request_ctx.hpp"

namespace kino::binding {

// rack.input for `req`, whose Kino::Native::Request is `handle`.
VALUE rack_input(const RequestCtx& req, VALUE handle);

}  // namespace kino::binding
