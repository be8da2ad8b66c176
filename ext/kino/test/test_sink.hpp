// A ResponseSink for tests: it records what the responder hands it instead
// of writing to a socket, plus small helpers to read an HTTP response back.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "handoff/request_ctx.hpp"
#include "handoff/response_sink.hpp"
#include "util/memory.hpp"

namespace kino::test {

struct Sent {
  std::string bytes;
  bool last;
  bool keep_alive;
  bool logged;  // it carried its request, for the access log
};

class RecordingSink : public ResponseSink {
 public:
  void send(Bytes bytes, bool last, bool keep_alive, RequestRef logged) override {
    std::lock_guard<std::mutex> lock(mu_);
    sent_.push_back(Sent{std::string(bytes.data(), bytes.size()), last, keep_alive, logged != nullptr});
  }
  // Recorded as one send of all the bytes; loans are returned at once,
  // as if written.
  void send_pieces(NativeVector<OutPiece> pieces, bool last, bool keep_alive, RequestRef logged) override {
    std::string bytes;
    for (const auto& p : pieces) {
      std::string_view b = p.loan ? p.loan.bytes() : view(p.bytes);
      bytes.append(b.data(), b.size());
      lent_pieces_ += p.loan ? 1 : 0;
    }
    std::lock_guard<std::mutex> lock(mu_);
    sent_.push_back(Sent{std::move(bytes), last, keep_alive, logged != nullptr});
  }
  void close_now() override { open_ = false; }
  bool wait_writable(std::chrono::steady_clock::time_point) override { return open_; }
  void send_continue(const RequestCtx&) override { continues_.fetch_add(1); }
  bool backlogged() const override { return false; }
  bool open() const override { return open_; }
  bool draining() const override { return draining_; }
  void log(std::string_view line) override {
    std::lock_guard<std::mutex> lock(mu_);
    logs_.emplace_back(line);
  }

  std::vector<Sent> sent() const {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }
  std::vector<std::string> logs() const {
    std::lock_guard<std::mutex> lock(mu_);
    return logs_;
  }
  // Every byte sent, in order.
  std::string wire() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& s : sent_) out += s.bytes;
    return out;
  }
  // How many sends ended a response.
  size_t lasts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<size_t>(
        std::count_if(sent_.begin(), sent_.end(), [](const Sent& s) { return s.last; }));
  }

  bool open_ = true;
  bool draining_ = false;
  std::atomic<int> continues_{0};    // send_continue calls
  std::atomic<int> lent_pieces_{0};  // pieces that came as loans

 private:
  mutable std::mutex mu_;
  std::vector<Sent> sent_;
  std::vector<std::string> logs_;
};

// An HTTP/1.1 response split into its parts; header names lowercased.
struct ParsedResponse {
  bool ok = false;  // a head terminated by CRLF CRLF was found
  std::string status_line;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // everything after the head, as sent

  size_t count(std::string_view name) const {
    size_t n = 0;
    for (const auto& h : headers)
      if (h.first == name) ++n;
    return n;
  }
  std::optional<std::string> get(std::string_view name) const {
    for (const auto& h : headers)
      if (h.first == name) return h.second;
    return std::nullopt;
  }
  std::vector<std::string> all(std::string_view name) const {
    std::vector<std::string> out;
    for (const auto& h : headers)
      if (h.first == name) out.push_back(h.second);
    return out;
  }
};

inline ParsedResponse parse_response(std::string_view wire) {
  ParsedResponse r;
  size_t end = wire.find("\r\n\r\n");
  if (end == std::string_view::npos) return r;
  std::string_view head = wire.substr(0, end + 2);
  r.body = std::string(wire.substr(end + 4));
  size_t eol = head.find("\r\n");
  r.status_line = std::string(head.substr(0, eol));
  if (r.status_line.size() >= 12 && r.status_line.compare(0, 5, "HTTP/") == 0)
    r.status = std::stoi(r.status_line.substr(9, 3));
  size_t pos = eol + 2;
  while (pos < head.size()) {
    size_t next = head.find("\r\n", pos);
    std::string_view line = head.substr(pos, next - pos);
    size_t colon = line.find(':');
    std::string name(line.substr(0, colon));
    for (auto& c : name) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    r.headers.emplace_back(std::move(name), std::string(value));
    pos = next + 2;
  }
  r.ok = true;
  return r;
}

}  // namespace kino::test
