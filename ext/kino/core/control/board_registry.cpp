#include "control/board_registry.hpp"

namespace kino {

BoardRegistry& BoardRegistry::instance() {
  // Never destroyed, like the server Registry: a server released by a
  // finalizer at exit may still hold a board.
  static BoardRegistry* registry = new BoardRegistry();
  return *registry;
}

}  // namespace kino
