// Shared objects addressed by integer id: Ruby holds only the id (ractors
// pass integers freely), and native code finds the object by it. The
// server Registry and the BoardRegistry are each one such table.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace kino {

template <class T>
class IdTable {
 public:
  uint64_t add(std::shared_ptr<T> value) {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t id = next_id_++;
    values_.emplace(id, std::move(value));
    return id;
  }

  std::shared_ptr<T> find(uint64_t id) const {  // null when unknown
    std::lock_guard<std::mutex> lock(mu_);
    auto it = values_.find(id);
    return it == values_.end() ? nullptr : it->second;
  }

  std::shared_ptr<T> remove(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = values_.find(id);
    if (it == values_.end()) return nullptr;
    std::shared_ptr<T> value = std::move(it->second);
    values_.erase(it);
    return value;
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return values_.size();
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, std::shared_ptr<T>> values_;
  uint64_t next_id_ = 1;
};

}  // namespace kino
