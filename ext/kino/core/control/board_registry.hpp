// Process boards addressed by integer id, as servers are (Registry): Ruby
// holds the id, and a server given one finds its board here. Made in the
// parent before fork, the table is copied into every child with the id
// still naming the same shared mapping.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "control/process_board.hpp"

namespace kino {

class BoardRegistry {
 public:
  static BoardRegistry& instance();

  uint64_t add(std::shared_ptr<ProcessBoard> board);
  std::shared_ptr<ProcessBoard> find(uint64_t id) const;  // null when unknown
  std::shared_ptr<ProcessBoard> remove(uint64_t id);

 private:
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, std::shared_ptr<ProcessBoard>> boards_;
  uint64_t next_id_ = 1;
};

}  // namespace kino
