#include "registry.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "server.hpp"
#include "support/config.hpp"

using namespace kino;

namespace {

std::shared_ptr<Server> make_server() {
  ServerConfig config = test::server_config();
  config.io_threads = 1;
  return std::make_shared<Server>(config);
}

}  // namespace

TEST(Registry, AddFindRemove) {
  auto& reg = Registry::instance();
  size_t before = reg.size();
  auto server = make_server();
  uint64_t id = reg.add(server);
  EXPECT_NE(id, 0u);
  EXPECT_EQ(reg.size(), before + 1);
  EXPECT_EQ(reg.find(id), server);
  EXPECT_EQ(server.use_count(), 2) << "the registry holds a reference";

  auto removed = reg.remove(id);
  EXPECT_EQ(removed, server);
  EXPECT_EQ(reg.size(), before);
  EXPECT_EQ(reg.find(id), nullptr);
  EXPECT_EQ(reg.remove(id), nullptr) << "removing twice finds nothing";
  removed.reset();
  EXPECT_EQ(server.use_count(), 1) << "the registry let go of it";
}

TEST(Registry, UnknownIdIsNull) {
  auto& reg = Registry::instance();
  EXPECT_EQ(reg.find(0), nullptr);
  EXPECT_EQ(reg.find(~uint64_t{0}), nullptr);
  EXPECT_EQ(reg.remove(~uint64_t{0}), nullptr);
}

TEST(Registry, IdsAreUniqueAndNeverReused) {
  auto& reg = Registry::instance();
  auto a = make_server(), b = make_server();
  uint64_t ia = reg.add(a);
  uint64_t ib = reg.add(b);
  EXPECT_NE(ia, ib);
  EXPECT_EQ(reg.find(ia), a);
  EXPECT_EQ(reg.find(ib), b);
  reg.remove(ia);
  uint64_t ic = reg.add(a);
  EXPECT_NE(ic, ia) << "a removed id is not handed out again";
  EXPECT_NE(ic, ib);
  EXPECT_EQ(reg.find(ia), nullptr);
  EXPECT_EQ(reg.find(ic), a);
  EXPECT_EQ(reg.find(ib), b);
  reg.remove(ib);
  reg.remove(ic);
}

TEST(Registry, ConcurrentAddsGiveDistinctIds) {
  auto& reg = Registry::instance();
  auto server = make_server();
  constexpr int kThreads = 4, kEach = 200;
  std::vector<std::vector<uint64_t>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) ids[t].push_back(reg.add(server));
    });
  for (auto& t : threads) t.join();
  std::set<uint64_t> all;
  for (auto& v : ids) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), size_t{kThreads * kEach});
  for (uint64_t id : all) EXPECT_EQ(reg.remove(id), server);
  EXPECT_EQ(server.use_count(), 1);
}
