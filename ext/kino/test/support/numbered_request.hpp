// Requests told apart by a number, for tests of the hand-off that never
// parse one: the number is kept in the request's target.
#pragma once

#include <cstdint>
#include <string>

#include "handoff/request_ctx.hpp"

namespace kino::test {

inline RequestRef make_request(uint64_t number) {
  RequestRef r(new RequestCtx());
  std::string target = std::to_string(number);
  r->target.assign(target.data(), target.size());
  return r;
}

inline uint64_t number_of(const RequestCtx& r) {
  return std::stoull(std::string(r.target.data(), r.target.size()));
}

}  // namespace kino::test
