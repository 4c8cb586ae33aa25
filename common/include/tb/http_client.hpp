#pragma once
// A small HTTP/1.1 client (one request per connection) over a Unix socket, TCP or TLS, with one
// deadline for the whole exchange and a cap on the response body. Used by the broker's
// upstream sources, by tokenctl and by the tests.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tb::http {

using Response = boost::beast::http::response<boost::beast::http::string_body>;

struct Request {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string target = "/";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string host = "localhost";  ///< the Host header
};

struct Limits {
  std::chrono::milliseconds timeout{10'000};  ///< connect + write + read, all together
  std::uint64_t max_body = std::uint64_t{1024} * 1024;
};

/// Sends `request` to the Unix socket at `socket_path`.
boost::asio::awaitable<boost::system::result<Response>> async_request_unix(std::string socket_path,
                                                                           Request request,
                                                                           Limits limits = {});

/// Resolves `host` and sends `request` to `host:port` over plain TCP.
boost::asio::awaitable<boost::system::result<Response>> async_request_tcp(std::string host,
                                                                          std::string port,
                                                                          Request request,
                                                                          Limits limits = {});

/// A TLS client context: TLS 1.2 or newer, peer verification on, trusting the system CA bundle
/// (`ca_file` empty) or only the PEM certificates in `ca_file`. Throws std::runtime_error naming
/// the file when it cannot be loaded. Share one context between requests.
std::shared_ptr<boost::asio::ssl::context> make_tls_client_context(const std::string& ca_file = {});

/// The same, trusting only the PEM certificates in `pem` (e.g. from an environment variable);
/// throws std::runtime_error when it holds none.
std::shared_ptr<boost::asio::ssl::context> make_tls_client_context_from_pem(std::string_view pem);

/// Resolves `host` and sends `request` to `host:port` over TLS with `tls`: the certificate chain
/// is verified, the certificate must name `server_name` (default: `host`; a DNS name or IP
/// address), SNI carries it when it is a DNS name. TLS failures come back as errors in
/// boost::asio::error::get_ssl_category() (or ssl::error::stream_truncated); describe_tls_error()
/// turns them into a sentence.
boost::asio::awaitable<boost::system::result<Response>> async_request_https(
    std::shared_ptr<boost::asio::ssl::context> tls, std::string host, std::string port,
    Request request, Limits limits = {}, std::string server_name = {});

/// True when `ec` came from the TLS layer (handshake, certificate verification, record layer).
bool is_tls_error(const boost::system::error_code& ec);

/// Blocking forms for command-line tools and tests (each runs its own io_context).
boost::system::result<Response> request_unix(const std::string& socket_path, Request request,
                                             Limits limits = {});
boost::system::result<Response> request_tcp(const std::string& host, const std::string& port,
                                            Request request, Limits limits = {});
boost::system::result<Response> request_https(std::shared_ptr<boost::asio::ssl::context> tls,
                                              const std::string& host, const std::string& port,
                                              Request request, Limits limits = {});

}  // namespace tb::http
