#pragma once
// Start-up of a TCP listener, for every program that serves HTTP on TCP (the broker's admin and
// drop-in listeners, the todo-app): bind HOST:PORT or say, naming the flag, why not.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace tb::http {

/// A listener that cannot be opened; what() names the flag, the address and the reason.
struct ListenError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Listens on host:port (port 0: any free one; see endpoint_text(acceptor.local_endpoint())).
/// `flag` names the option in errors, e.g. "--admin-listen". Throws ListenError.
boost::asio::ip::tcp::acceptor listen_tcp(boost::asio::io_context& io, const std::string& flag,
                                          const std::string& host, std::uint16_t port);

/// "127.0.0.1:8080" / "[::1]:8080".
std::string endpoint_text(const boost::asio::ip::tcp::endpoint& endpoint);

}  // namespace tb::http
