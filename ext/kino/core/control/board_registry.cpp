#include "control/board_registry.hpp"

namespace kino {

BoardRegistry& BoardRegistry::instance() {
  // Never destroyed, like the server Registry: a server released by a
  // finalizer at exit may still hold a board.
  static BoardRegistry* registry = new BoardRegistry();
  return *registry;
}

uint64_t BoardRegistry::add(std::shared_ptr<ProcessBoard> board) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = next_id_++;
  boards_.emplace(id, std::move(board));
  return id;
}

std::shared_ptr<ProcessBoard> BoardRegistry::find(uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = boards_.find(id);
  return it == boards_.end() ? nullptr : it->second;
}

std::shared_ptr<ProcessBoard> BoardRegistry::remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = boards_.find(id);
  if (it == boards_.end()) return nullptr;
  auto board = std::move(it->second);
  boards_.erase(it);
  return board;
}

}  // namespace kino
