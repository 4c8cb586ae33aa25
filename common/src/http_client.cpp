#include "tb/http_client.hpp"
#include "tb/asio_frame_warning.hpp"  // gcc 12 false positive, see there

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <openssl/ssl.h>

#include <stdexcept>

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

namespace {
/// TLS 1.2 or newer, peer verification on, no CA yet.
std::shared_ptr<asio::ssl::context> make_tls_client_context_base() {
  auto context = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  if (SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION) != 1) {
    throw std::runtime_error("cannot require TLS 1.2 or newer");
  }
  context->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1);
  context->set_verify_mode(asio::ssl::verify_peer);
  return context;
}
}  // namespace

std::shared_ptr<asio::ssl::context> make_tls_client_context(const std::string& ca_file) {
  auto context = make_tls_client_context_base();
  error_code ec;
  if (ca_file.empty()) {
    context->set_default_verify_paths(ec);
    if (ec) throw std::runtime_error("cannot load the system CA certificates: " + ec.message());
  } else {
    context->load_verify_file(ca_file, ec);
    if (ec) {
      throw std::runtime_error("cannot load CA certificates from " + ca_file + ": " + ec.message());
    }
  }
  return context;
}

std::shared_ptr<asio::ssl::context> make_tls_client_context_from_pem(std::string_view pem) {
  auto context = make_tls_client_context_base();
  error_code ec;
  context->add_certificate_authority(asio::buffer(pem.data(), pem.size()), ec);
  if (ec) throw std::runtime_error("no PEM CA certificate could be read: " + ec.message());
  return context;
}

bool is_tls_error(const error_code& ec) {
  return ec.category() == asio::error::get_ssl_category() ||
         ec == asio::ssl::error::stream_truncated;
}

asio::awaitable<boost::system::result<Response>> async_request_https(
    std::shared_ptr<asio::ssl::context> tls, std::string host, std::string port, Request request,
    Limits limits, std::string server_name) {
  if (server_name.empty()) server_name = host;
  auto executor = co_await asio::this_coro::executor;
  beast::ssl_stream<beast::tcp_stream> stream(executor, *tls);
  auto& tcp = beast::get_lowest_layer(stream);
  tcp.expires_after(limits.timeout);
  // RFC 6066: SNI carries DNS names only, never IP literals.
  error_code address_ec;
  (void)asio::ip::make_address(server_name, address_ec);
  if (address_ec && SSL_set_tlsext_host_name(stream.native_handle(), server_name.c_str()) != 1) {
    co_return error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category());
  }
  // Checks the DNS name or IP address against the certificate's subjectAltName.
  stream.set_verify_callback(asio::ssl::host_name_verification(server_name));
  asio::ip::tcp::resolver resolver(executor);
  auto [resolve_ec, endpoints] = co_await resolver.async_resolve(host, port, use_nothrow);
  if (resolve_ec) co_return resolve_ec;
  auto [connect_ec, endpoint] = co_await tcp.async_connect(endpoints, use_nothrow);
  if (connect_ec) co_return connect_ec;
  tcp.socket().set_option(asio::ip::tcp::no_delay(true));
  auto [handshake_ec] =
      co_await stream.async_handshake(asio::ssl::stream_base::client, use_nothrow);
  if (handshake_ec) co_return handshake_ec;
  if (request.host == "localhost") request.host = port == "443" ? host : host + ":" + port;
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

boost::system::result<Response> request_https(std::shared_ptr<asio::ssl::context> tls,
                                              const std::string& host, const std::string& port,
                                              Request request, Limits limits) {
  return run_blocking(async_request_https(std::move(tls), host, port, std::move(request), limits));
}

}  // namespace tb::http
