// Bytes -> Beast's request parser (the broker's limits) -> the broker's routing -> response, for
// the Unix socket listener and the drop-in listener. Up to 8 pipelined requests per input, as
// the session loop reads them from one buffer. The cache is replaced by a fixed token: what is
// fuzzed is everything the broker does with a request before and after it asks the cache.
//
// Invariants: every response has a status from 100 to 599, a JSON body whose Content-Length
// matches, an `error` and `error_description` on every error, and the token only on a 200.

#include "broker/api.hpp"
#include "fuzz_check.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using namespace std::chrono_literals;
namespace beast = boost::beast;
namespace http = beast::http;
using broker::HttpError;
using broker::Request;
using broker::Response;

constexpr std::size_t kHeaderLimit = 8 * 1024;
constexpr std::size_t kMaxRequests = 8;
constexpr std::string_view kAccessToken = "eyJ0eXAiOiJKV1QifQ.fuzz.token";
constexpr std::string_view kIdentityHeader = "fuzz-identity-header-0123456789abcdef";

const broker::ApiOptions& options() {
  static const broker::ApiOptions value{broker::Identity{}, 60s, 10'000ms,
                                        std::string(kIdentityHeader)};
  return value;
}

/// As tb/http/server.cpp answers a request it cannot parse.
Response parse_error_response(const beast::error_code& ec) {
  Request dummy;
  dummy.version(11);
  dummy.keep_alive(false);
  HttpError error{400, "invalid_request", "the request is not valid HTTP/1.1: " + ec.message(), 0s};
  if (ec == http::error::header_limit) {
    error = HttpError{431, "request_header_fields_too_large", "too large", 0s};
  } else if (ec == http::error::unexpected_body || ec == http::error::body_limit) {
    error =
        HttpError{413, "payload_too_large", "requests to this server must not carry a body", 0s};
  }
  auto response = broker::make_error(dummy, error);
  response.keep_alive(false);
  return response;
}

/// The cache's part, replaced by a token that is always there.
Response serve_token(const Request& request) {
  auto parsed = broker::parse_token_request(request, options());
  if (auto* error = std::get_if<HttpError>(&parsed)) return broker::make_error(request, *error);
  const auto& query = std::get<broker::TokenQuery>(parsed);
  FUZZ_CHECK(!query.key.resource.empty() && query.key.resource.size() <= 1024);
  FUZZ_CHECK(query.wait >= 1ms && query.wait <= options().max_wait);
  FUZZ_CHECK(query.min_validity >= options().min_validity && query.min_validity <= 86'400s);
  broker::Token token;
  token.upstream.access_token = std::string(kAccessToken);
  token.upstream.expires_in = 3600s;
  token.upstream.expires_on = 1'800'000'000;
  const auto now = broker::SteadyTime{} + 1000h;
  token.acquired_at = now;
  token.expires_at = now + 3600s;
  auto response =
      broker::make_response(request, http::status::ok, broker::token_body(token, query, now));
  const auto body = nlohmann::json::parse(response.body(), nullptr, false);
  FUZZ_CHECK(body.is_object() && body.value("access_token", "") == kAccessToken);
  return response;
}

Response method_not_allowed(const Request& request) {
  auto response = broker::make_error(
      request, HttpError{405, "method_not_allowed", "only GET is allowed on this route", 0s});
  response.set(http::field::allow, "GET");
  return response;
}

/// broker.cpp's handle_socket, without metrics and readiness.
Response socket_listener(const Request& request) {
  const auto path = broker::route_of(tb::http::target_path(request.target()));
  if (path == broker::kTokenRoute || path == broker::kImdsRoute) {
    return request.method() == http::verb::get ? serve_token(request) : method_not_allowed(request);
  }
  if (path == "/healthz") {
    return request.method() == http::verb::get
               ? broker::make_response(request, http::status::ok, R"({"status":"ok"})")
               : method_not_allowed(request);
  }
  return broker::make_error(request, HttpError{404, "not_found", "no such route", 0s});
}

/// broker.cpp's handle_drop_in.
Response drop_in_listener(const Request& request) {
  const auto path = broker::route_of(tb::http::target_path(request.target()));
  if (path != broker::kImdsRoute && path != broker::kAppServiceRoute) {
    return broker::make_error(request, HttpError{404, "not_found", "no such route", 0s});
  }
  if (request.method() != http::verb::get) return method_not_allowed(request);
  if (request.find("X-Forwarded-For") != request.end()) {
    return broker::make_error(request, HttpError{400, "invalid_request", "X-Forwarded-For", 0s});
  }
  return serve_token(request);
}

/// The token may only show up in an error when the request itself carried it (an echoed name).
bool g_input_has_token = false;

void check(const Response& response) {
  const unsigned status = response.result_int();
  FUZZ_CHECK(status >= 100 && status <= 599);
  FUZZ_CHECK(response[http::field::content_length] == std::to_string(response.body().size()));
  const auto body = nlohmann::json::parse(response.body(), nullptr, false);
  FUZZ_CHECK(body.is_object());
  if (status >= 400) {
    FUZZ_CHECK(body.contains("error") && body["error"].is_string());
    FUZZ_CHECK(body.contains("error_description") && body["error_description"].is_string());
    if (!g_input_has_token) FUZZ_CHECK(response.body().find(kAccessToken) == std::string::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool silenced = (fuzz::silence_logs(), true);
  (void)silenced;
  g_input_has_token =
      std::string_view(reinterpret_cast<const char*>(data), size).find(kAccessToken) !=
      std::string_view::npos;
  boost::asio::const_buffer input(data, size);
  for (std::size_t n = 0; n < kMaxRequests && input.size() > 0; ++n) {
    // As the session with the broker's limits: no body (body limit 0), so any is refused.
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(0);
    beast::error_code ec;
    while (!parser.is_done()) {
      const std::size_t used = parser.put(input, ec);
      input += used;
      if (ec == http::error::need_more) ec = {};
      if (ec) break;
      if (used == 0) {
        // What is left cannot complete the message: the peer closed the connection.
        parser.put_eof(ec);
        if (!ec && !parser.is_done()) ec = http::error::partial_message;
        break;
      }
    }
    if (ec == http::error::end_of_stream) return 0;
    if (ec) {
      check(parse_error_response(ec));
      return 0;  // the session closes the connection after a parse error
    }
    const Request& request = parser.get();
    check(socket_listener(request));
    check(drop_in_listener(request));
    if (!request.keep_alive()) return 0;
  }
  return 0;
}
