// Servers addressed by integer id. Ractors can pass integers freely, so
// this table is how a worker in any ractor finds the server whose queue it
// drains, without any Ruby object crossing a ractor boundary.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "server.hpp"

namespace kino {

class Registry {
 public:
  static Registry& instance();

  uint64_t add(std::shared_ptr<Server> server);
  std::shared_ptr<Server> find(uint64_t id) const;  // null when unknown
  std::shared_ptr<Server> remove(uint64_t id);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, std::shared_ptr<Server>> servers_;
  uint64_t next_id_ = 1;
};

}  // namespace kino
