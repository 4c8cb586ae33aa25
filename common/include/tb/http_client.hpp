#pragma once
// A small HTTP/1.1 client (one request per connection) over a Unix socket or TCP, with one
// deadline for the whole exchange and a cap on the response body. Used by the broker's
// upstream sources, by tokenctl and by the tests.

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
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

/// Blocking forms for command-line tools and tests (each runs its own io_context).
boost::system::result<Response> request_unix(const std::string& socket_path, Request request,
                                             Limits limits = {});
boost::system::result<Response> request_tcp(const std::string& host, const std::string& port,
                                            Request request, Limits limits = {});

}  // namespace tb::http
