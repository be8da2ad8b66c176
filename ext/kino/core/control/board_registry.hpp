// Process boards addressed by integer id, as servers are (Registry): Ruby
// holds the id, and a server given one finds its board here. Made in the
// parent before fork, the table is copied into every child with the id
// still naming the same shared mapping.
#pragma once

#include "control/process_board.hpp"
#include "util/id_table.hpp"

namespace kino {

class BoardRegistry : public IdTable<ProcessBoard> {
 public:
  static BoardRegistry& instance();
};

}  // namespace kino
