#include "registry.hpp"

namespace kino {

Registry& Registry::instance() {
  // Deliberately never destroyed: at process exit Ruby may still run
  // finalizers that release servers after static destructors would run.
  static Registry* registry = new Registry();
  return *registry;
}

}  // namespace kino
