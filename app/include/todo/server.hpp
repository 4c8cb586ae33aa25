#pragma once
// The todo-app's HTTP/1.1 server on TCP. Each connection is one coroutine on its own strand;
// the io_context runs on several threads because a request blocks its thread while it waits
// for the database (ODBC is blocking). Limits: header size, body size, header and idle timeouts.

#include "todo/routes.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace todo {

struct ServerLimits {
  std::uint32_t header_limit = 8 * 1024;
  std::chrono::seconds header_timeout{10};
  std::chrono::seconds idle_timeout{60};
  std::size_t max_connections = 1024;
};

class Server {
 public:
  /// Binds HOST:PORT (port 0 picks a free one). Throws std::system_error naming the address
  /// when it cannot listen (start-up only).
  Server(boost::asio::io_context& io, const std::string& host, std::uint16_t port, App& app,
         ServerLimits limits = {});

  std::uint16_t port() const { return port_; }
  void start();
  /// Stops accepting new connections.
  void stop();
  /// Requests being handled right now (for a graceful stop).
  std::size_t busy() const { return busy_.load(); }

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  App& app_;
  ServerLimits limits_;
  std::uint16_t port_ = 0;
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::size_t> busy_{0};
};

}  // namespace todo
