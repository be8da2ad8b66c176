#include "registry.hpp"

namespace kino {

Registry& Registry::instance() {
  // Deliberately never destroyed: at process exit Ruby may still run
  // finalizers that release servers after static destructors would run.
  static Registry* registry = new Registry();
  return *registry;
}

uint64_t Registry::add(std::shared_ptr<Server> server) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t id = next_id_++;
  servers_.emplace(id, std::move(server));
  return id;
}

std::shared_ptr<Server> Registry::find(uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = servers_.find(id);
  return it == servers_.end() ? nullptr : it->second;
}

std::shared_ptr<Server> Registry::remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = servers_.find(id);
  if (it == servers_.end()) return nullptr;
  auto s = std::move(it->second);
  servers_.erase(it);
  return s;
}

size_t Registry::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return servers_.size();
}

}  // namespace kino
