#pragma once
// HTTP/1.1 (or HTTPS) transport for the Emulator: one coroutine per connection on a single-threaded
// io_context, keep-alive, read timeout, 8 KiB header and 64 KiB body limits.

#include "imds_emulator/emulator.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include <chrono>
#include <memory>

namespace imds_emulator {

class Server {
 public:
  /// Binds and listens on `endpoint` (port 0 picks a free port); throws system_error.
  /// With `tls`, every connection starts with a TLS handshake (server side).
  Server(boost::asio::io_context& io, Emulator& emulator,
         const boost::asio::ip::tcp::endpoint& endpoint,
         std::chrono::milliseconds read_timeout = std::chrono::seconds(30),
         std::shared_ptr<boost::asio::ssl::context> tls = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// The bound port.
  unsigned short port() const;
  /// Starts accepting connections (on the io_context).
  void start();
  /// Stops accepting and closes every connection, including delayed and hanging ones.
  /// Call on the io_context's thread; run() returns once the sessions have unwound.
  void stop();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace imds_emulator
