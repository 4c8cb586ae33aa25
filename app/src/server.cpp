#include "todo/server.hpp"

#include "tb/http/listen.hpp"

namespace todo {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view kServerName = "todo-app";

tb::http::ServerOptions options(tb::http::ServerLimits limits) {
  tb::http::ServerOptions out;
  out.limits = limits;
  out.render_error = [](const tb::http::Request& request, const tb::http::Error& error) {
    return tb::http::error_response(request, error, kServerName);
  };
  return out;
}

asio::ip::tcp::acceptor listen(asio::io_context& io, const std::string& flag,
                               const std::string& host, std::uint16_t port, std::uint16_t& bound) {
  auto acceptor = tb::http::listen_tcp(io, flag, host, port);
  bound = acceptor.local_endpoint().port();
  return acceptor;
}

}  // namespace

tb::http::ServerLimits default_limits() {
  tb::http::ServerLimits limits;
  limits.body_limit = kMaxRequestBody;
  return limits;
}

Server::Server(asio::io_context& io, const std::string& flag, const std::string& host,
               std::uint16_t port, Handler handler, int workers, tb::http::ServerLimits limits)
    : handler_(std::move(handler)),
      workers_(static_cast<std::size_t>(workers)),
      server_(
          listen(io, flag, host, port, port_),
          [this](const tb::http::Request& request) -> asio::awaitable<tb::http::Response> {
            co_return co_await tb::http::offload(workers_.get_executor(),
                                                 [this, &request] { return handler_(request); });
          },
          options(limits)) {}

Server::~Server() { workers_.join(); }

void Server::close_busy() {
  server_.close_busy(tb::http::Error{
      503, "shutting_down",
      "todo-app is shutting down and its grace ended before this request was answered; retry", 1s});
}

}  // namespace todo
