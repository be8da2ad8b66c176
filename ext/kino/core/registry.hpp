// Servers addressed by integer id. Ractors can pass integers freely, so
// this table is how a worker in any ractor finds the server whose queue it
// drains, without any Ruby object crossing a ractor boundary.
#pragma once

#include "server.hpp"
#include "util/id_table.hpp"

namespace kino {

class Registry : public IdTable<Server> {
 public:
  static Registry& instance();
};

}  // namespace kino
