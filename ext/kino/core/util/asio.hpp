// One place that includes Boost.Asio, with what g++ 12 in C++20 mode needs
// first: Boost 1.74's awaitable.hpp uses std::exchange without <utility>.
#pragma once

#include <utility>

#include <boost/asio.hpp>

namespace kino {
namespace asio = boost::asio;
using error_code = boost::system::error_code;
}  // namespace kino
