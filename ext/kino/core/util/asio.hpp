// One place that includes Boost.Asio, with what g++ 12 in C++20 mode needs
// first: Boost 1.74's awaitable.hpp uses std::exchange without <utility>.
#pragma once

// clang-format off
#include <utility>

#include <boost/asio.hpp>
// clang-format on

namespace kino {
namespace asio = boost::asio;
using error_code = boost::system::error_code;
}  // namespace kino
