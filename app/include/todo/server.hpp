#pragma once
// The todo-app's HTTP/1.1 server: the project's one server core (tb::http::HttpServer) on TCP,
// with the app's limits (8 KiB of headers, 64 KiB of body) and its error shape (JSON, `Server:
// todo-app`). The core runs on the io_context's one thread; App::handle blocks while it waits
// for the database (ODBC is blocking), so every request runs on a pool of worker threads.

#include "tb/http/server.hpp"
#include "todo/routes.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>

#include <cstdint>
#include <functional>
#include <string>

namespace todo {

/// The app's limits: the core's defaults, with request bodies up to kMaxRequestBody.
tb::http::ServerLimits default_limits();

class Server {
 public:
  /// What answers a request; it may block (it runs on a worker).
  using Handler = std::function<Response(const Request&)>;

  /// Binds HOST:PORT (port 0 picks a free one); `workers` threads run `handler`. `flag` names
  /// the option in errors. Throws tb::http::ListenError naming the address when it cannot
  /// listen (start-up only).
  Server(boost::asio::io_context& io, const std::string& flag, const std::string& host,
         std::uint16_t port, Handler handler, int workers,
         tb::http::ServerLimits limits = default_limits());
  /// Waits for the requests the workers are running.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::uint16_t port() const { return port_; }
  void start() { server_.start(); }
  /// Graceful stop (tb::http::HttpServer::drain): `on_drained` is posted when no connection is
  /// left.
  void drain(std::function<void()> on_drained) { server_.drain(std::move(on_drained)); }
  /// The end of the grace: requests still running are answered 503 shutting_down.
  void close_busy();
  /// Requests being handled right now.
  std::size_t busy() const { return server_.busy(); }

 private:
  Handler handler_;
  boost::asio::thread_pool workers_;
  std::uint16_t port_ = 0;
  tb::http::HttpServer<boost::asio::ip::tcp> server_;
};

}  // namespace todo
