// A GoogleTest fixture around one real Server: a test adjusts `config`
// (made by test::server_config()), calls start(), and talks to it through
// loopback clients. The server is stopped once, after the test body.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string_view>

#include "config.hpp"
#include "http1/responder.hpp"
#include "server.hpp"
#include "test_client.hpp"

namespace kino::test {

// Binds and starts a server of its own (for tests that own its lifetime).
inline std::shared_ptr<Server> start_server(const ServerConfig& config) {
  auto server = std::make_shared<Server>(config);
  server->bind();
  server->start();
  return server;
}

inline std::shared_ptr<Server> start_server(const std::string& listen) {
  ServerConfig config = server_config();
  config.listen = {listen};
  return start_server(config);
}

// A client of the server's first address.
inline std::unique_ptr<Client> client_of(Server& s) { return Client::tcp(port_of(s.addresses().at(0))); }

// Takes the next request as a worker would; null once `timeout` passes.
inline RequestRef pop(Server& s, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  return s.queue().pop_for(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
}

// Answers with a text/plain body.
inline bool reply(RequestCtx& req, int status, std::string_view body) {
  HeaderView headers[] = {{"content-type", "text/plain"}};
  std::string_view parts[] = {body};
  return respond(req, status, headers, parts);
}

class ServerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (server_) server_->stop(std::chrono::milliseconds(1000));
  }

  Server& start() {
    server_ = start_server(config);
    return *server_;
  }
  Server& server() { return *server_; }

  // A client of the server; the test fails with an exception when
  // nothing accepts the connection.
  std::unique_ptr<Client> connect() {
    auto client = client_of(*server_);
    if (!client) throw std::runtime_error("nothing accepts on " + server_->addresses().at(0));
    return client;
  }

  std::unique_ptr<Client> start_and_connect() {
    start();
    return connect();
  }

  RequestRef pop(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    return test::pop(*server_, timeout);
  }

  // Sends `wire` and takes the request it makes; null (and a failure)
  // when it could not be sent, null when no request came.
  RequestRef send_and_pop(Client& client, std::string_view wire) {
    if (!client.send(wire)) {
      ADD_FAILURE() << "could not send " << wire;
      return nullptr;
    }
    return pop();
  }

  ServerConfig config = server_config();

 private:
  std::shared_ptr<Server> server_;
};

}  // namespace kino::test
