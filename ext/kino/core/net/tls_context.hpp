// The OpenSSL side of a TLS server: what a certificate, key and optional
// client CA become (an asio::ssl::context set up once with the protocol
// policy below), and the holder the server swaps on reload. A connection
// takes the current context when it is accepted and keeps it: a reload
// reaches new connections only, and one that fails leaves the current
// context in place.
//
// Policy, fixed here and nowhere else: TLS 1.2 and 1.3 only; Mozilla's
// "intermediate" cipher list for TLS 1.2, the server's order preferred;
// no compression, no renegotiation; session tickets on; ALPN offers
// kAlpnProtocols (http/1.1 alone until HTTP/2 is built on this transport).
#pragma once

// clang-format off
#include "util/asio.hpp"
#include <boost/asio/ssl.hpp>
// clang-format on

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "server_config.hpp"

namespace kino {

// A certificate, key or CA that cannot be used: the message names the
// part, its file (or "inline PEM") and OpenSSL's reason.
class TlsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The protocols ALPN may choose, in the server's order of preference, in
// ALPN's wire form (length-prefixed). The one place an HTTP/2 transport
// would add "h2".
inline constexpr std::string_view kAlpnProtocols{"\x08http/1.1", 9};

// One loaded certificate and key, immutable once built.
class TlsContext {
 public:
  // Reads and checks everything; throws TlsError.
  explicit TlsContext(const TlsSources& sources);
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  asio::ssl::context& native() noexcept { return context_; }

 private:
  asio::ssl::context context_;
};

// The server's current TLS context: read by every accept, replaced by a
// reload, from any thread.
class TlsContextHolder {
 public:
  explicit TlsContextHolder(TlsSources sources)
      : sources_(std::move(sources)), current_(std::make_shared<TlsContext>(sources_)) {}

  std::shared_ptr<TlsContext> current() const noexcept { return current_.load(std::memory_order_acquire); }

  // Loads the sources again (the files may have changed); throws TlsError
  // and keeps the current context when they do not load.
  void reload() { current_.store(std::make_shared<TlsContext>(sources_), std::memory_order_release); }

 private:
  const TlsSources sources_;
  std::atomic<std::shared_ptr<TlsContext>> current_;
};

}  // namespace kino
