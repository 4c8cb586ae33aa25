#include "todo/server.hpp"

#include "tb/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>

#include <system_error>

namespace todo {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using namespace std::chrono_literals;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
constexpr auto kWriteTimeout = 30s;

/// The answer to a request that could not be read: 400, 413 or 431, then close.
Response read_error_response(const beast::error_code& ec) {
  http::status status = http::status::bad_request;
  std::string error = "invalid_request";
  std::string description = "the request is not valid HTTP/1.1: " + ec.message();
  if (ec == http::error::header_limit) {
    status = http::status::request_header_fields_too_large;
    error = "request_header_fields_too_large";
    description = "the request line and headers exceed 8 KiB; send fewer or shorter headers";
  } else if (ec == http::error::body_limit) {
    status = http::status::payload_too_large;
    error = "payload_too_large";
    description = "the request body is larger than 64 KiB";
  }
  Response response{status, 11};
  response.set(http::field::server, "todo-app");
  response.set(http::field::content_type, "application/json");
  response.body() = nlohmann::json{{"error", error}, {"error_description", description}}.dump();
  response.keep_alive(false);
  response.prepare_payload();
  return response;
}

bool is_disconnect(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == beast::error::timeout ||
         ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
         ec == asio::error::eof || ec == http::error::partial_message;
}

}  // namespace

Server::Server(asio::io_context& io, const std::string& host, std::uint16_t port, App& app,
               ServerLimits limits)
    : io_(io), acceptor_(io), app_(app), limits_(limits) {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) {
    throw std::system_error(ec, "'" + host + "' is not an IP address to listen on");
  }
  const asio::ip::tcp::endpoint endpoint(address, port);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint, ec);
  if (ec) {
    throw std::system_error(ec, "cannot listen on " + host + ":" + std::to_string(port));
  }
  acceptor_.listen(asio::socket_base::max_listen_connections);
  port_ = acceptor_.local_endpoint().port();
}

void Server::start() { asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached); }

void Server::stop() {
  asio::post(acceptor_.get_executor(), [this] {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  });
}

asio::awaitable<void> Server::accept_loop() {
  while (acceptor_.is_open()) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::make_strand(io_), use_nothrow);
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) break;
    if (ec) {
      // Out of file descriptors and the like: pause instead of spinning.
      tb::log::warn("accept failed", {{"error", ec.message()}});
      asio::steady_timer pause(io_, 100ms);
      co_await pause.async_wait(use_nothrow);
      continue;
    }
    if (connections_.load() >= limits_.max_connections) {
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    socket.set_option(asio::ip::tcp::no_delay(true), ec);
    auto executor = socket.get_executor();
    asio::co_spawn(executor, serve(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> Server::serve(asio::ip::tcp::socket socket) {
  ++connections_;
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    if (buffer.size() == 0) {
      stream.expires_after(limits_.idle_timeout);
      auto [ec, n] = co_await stream.async_read_some(buffer.prepare(4096), use_nothrow);
      if (ec) break;
      buffer.commit(n);
    }
    http::request_parser<http::string_body> parser;
    parser.header_limit(limits_.header_limit);
    parser.body_limit(kMaxRequestBody);
    stream.expires_after(limits_.header_timeout);
    Response response;
    auto [header_ec, header_bytes] =
        co_await http::async_read_header(stream, buffer, parser, use_nothrow);
    beast::error_code read_ec = header_ec;
    if (!read_ec) {
      if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
        // curl and others wait for this before sending a body over 1 KiB.
        http::response<http::empty_body> go_on{http::status::continue_, 11};
        auto [continue_ec, continue_bytes] = co_await http::async_write(stream, go_on, use_nothrow);
        read_ec = continue_ec;
      }
      if (!read_ec && !parser.is_done()) {
        auto [body_ec, body_bytes] = co_await http::async_read(stream, buffer, parser, use_nothrow);
        read_ec = body_ec;
      }
    }
    if (read_ec) {
      if (is_disconnect(read_ec)) break;
      response = read_error_response(read_ec);
    } else {
      ++busy_;
      stream.expires_never();
      response = app_.handle(parser.get());  // blocks this thread while the database works
      --busy_;
    }
    stream.expires_after(kWriteTimeout);
    auto [write_ec, written] = co_await http::async_write(stream, response, use_nothrow);
    if (write_ec || !response.keep_alive()) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  stream.close();
  --connections_;
}

}  // namespace todo
