#include "handoff/byte_lease.hpp"

#include "handoff/response_sink.hpp"

namespace kino {

void ByteLease::recall() const {
  if (std::shared_ptr<ResponseSink> sink = sink_.lock()) sink->close_now();
}

}  // namespace kino
