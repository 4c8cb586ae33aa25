#include "tb/http/listen.hpp"

#include <boost/asio/ip/address.hpp>

namespace tb::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

tcp::acceptor listen_tcp(asio::io_context& io, const std::string& flag, const std::string& host,
                         std::uint16_t port) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) throw ListenError(flag + ": '" + host + "' is not an IP address");
  tcp::acceptor acceptor(io);
  tcp::endpoint endpoint(address, port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw ListenError(flag + " " + host + ":" + std::to_string(port) +
                      ": cannot listen: " + ec.message());
  }
  return acceptor;
}

std::string endpoint_text(const tcp::endpoint& endpoint) {
  const auto host = endpoint.address().to_string();
  const auto port = std::to_string(endpoint.port());
  return endpoint.address().is_v6() ? "[" + host + "]:" + port : host + ":" + port;
}

}  // namespace tb::http
