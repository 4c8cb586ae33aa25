#include "tb/http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

namespace tb::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using boost::system::error_code;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

beast::http::request<beast::http::string_body> to_beast(Request& request) {
  beast::http::request<beast::http::string_body> out{request.method, request.target, 11};
  out.set(beast::http::field::host, request.host);
  out.set(beast::http::field::user_agent, "token-broker");
  for (auto& [name, value] : request.headers) out.set(name, value);
  if (!request.body.empty() || request.method == beast::http::verb::post ||
      request.method == beast::http::verb::put) {
    out.body() = std::move(request.body);
    out.prepare_payload();
  }
  return out;
}

template <class Stream>
asio::awaitable<boost::system::result<Response>> exchange(Stream& stream, Request& request,
                                                          const Limits& limits) {
  auto message = to_beast(request);
  auto [write_ec, written] = co_await beast::http::async_write(stream, message, use_nothrow);
  if (write_ec) co_return write_ec;
  beast::flat_buffer buffer;
  beast::http::response_parser<beast::http::string_body> parser;
  parser.body_limit(limits.max_body);
  parser.header_limit(16 * 1024);
  auto [read_ec, read] = co_await beast::http::async_read(stream, buffer, parser, use_nothrow);
  if (read_ec) co_return read_ec;
  co_return parser.release();
}

template <class T>
boost::system::result<Response> run_blocking(asio::awaitable<boost::system::result<T>> task) {
  asio::io_context io;
  auto future = asio::co_spawn(io, std::move(task), asio::use_future);
  io.run();
  return future.get();
}

}  // namespace

asio::awaitable<boost::system::result<Response>> async_request_unix(std::string socket_path,
                                                                    Request request,
                                                                    Limits limits) {
  beast::basic_stream<asio::local::stream_protocol> stream(co_await asio::this_coro::executor);
  stream.expires_after(limits.timeout);
  auto [ec] = co_await stream.async_connect(asio::local::stream_protocol::endpoint(socket_path),
                                            use_nothrow);
  if (ec) co_return ec;
  co_return co_await exchange(stream, request, limits);
}

asio::awaitable<boost::system::result<Response>> async_request_tcp(std::string host,
                                                                   std::string port,
                                                                   Request request, Limits limits) {
  auto executor = co_await asio::this_coro::executor;
  beast::tcp_stream stream(executor);
  stream.expires_after(limits.timeout);
  asio::ip::tcp::resolver resolver(executor);
  auto [resolve_ec, endpoints] = co_await resolver.async_resolve(host, port, use_nothrow);
  if (resolve_ec) co_return resolve_ec;
  auto [connect_ec, endpoint] = co_await stream.async_connect(endpoints, use_nothrow);
  if (connect_ec) co_return connect_ec;
  stream.socket().set_option(asio::ip::tcp::no_delay(true));
  if (request.host == "localhost") request.host = host + ":" + port;
  co_return co_await exchange(stream, request, limits);
}

boost::system::result<Response> request_unix(const std::string& socket_path, Request request,
                                             Limits limits) {
  return run_blocking(async_request_unix(socket_path, std::move(request), limits));
}

boost::system::result<Response> request_tcp(const std::string& host, const std::string& port,
                                            Request request, Limits limits) {
  return run_blocking(async_request_tcp(host, port, std::move(request), limits));
}

}  // namespace tb::http
