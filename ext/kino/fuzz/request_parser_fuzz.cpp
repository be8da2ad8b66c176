// libFuzzer target over the request parser: arbitrary bytes, fed in
// pieces of varying size (the first input byte picks the size), must never
// crash, hang, leak or trip a sanitizer. `rake fuzz` builds and runs it.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "http1/request_parser.hpp"

using namespace kino;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  ParserLimits limits;
  limits.max_header_size = 4096;
  limits.max_uri_size = 512;
  limits.max_headers = 32;
  limits.max_body_size = 1 << 16;
  // Bodies past 1 KiB spool to a file, so spooling is fuzzed too.
  static const BodyStorage storage{1024, "/tmp"};
  RequestParser parser(limits, storage);
  parser.set_peer("127.0.0.1", 80);

  size_t step = 1 + data[0] % 64;
  const char* bytes = reinterpret_cast<const char*>(data + 1);
  size_t left = size - 1, pos = 0;
  int stalls = 0;
  while (pos < left) {
    size_t n = std::min(step, left - pos);
    auto r = parser.feed(bytes + pos, n);
    if (r.state == RequestParser::State::Error) return 0;
    if (r.state == RequestParser::State::Complete) {
      RequestRef req = parser.take();
      // Touch what the env builder reads.
      size_t total = req->method.size() + req->path.size() + req->query.size();
      for (const auto& h : req->headers) total += h.key.size() + h.value.size();
      if (req->body) {
        char buf[4096];
        for (;;) {
          auto got = req->body->read(buf, sizeof buf, std::chrono::steady_clock::now());
          if (got.status != RequestBody::ReadStatus::Data) break;
          total += got.bytes;
        }
      }
      (void)total;
    }
    if (r.consumed == 0 && ++stalls > 4) return 0;  // a complete message at the very end of a piece
    pos += r.consumed;
  }
  parser.finish();
  return 0;
}
