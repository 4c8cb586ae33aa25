#pragma once
// The token API's request validation and response bodies, as pure functions.
// The transport (sessions, sockets) lives in http_server.cpp; the wiring in broker.cpp.

#include "broker/cache.hpp"
#include "broker/token.hpp"

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <variant>

namespace broker {

namespace http = boost::beast::http;
using Request = http::request<http::empty_body>;
using Response = http::response<http::string_body>;

inline constexpr std::string_view kTokenRoute = "/v1/token";
inline constexpr std::string_view kImdsRoute = "/metadata/identity/oauth2/token";

struct ApiOptions {
  Identity default_identity;                   ///< used when a request names none
  std::chrono::seconds min_validity{60};       ///< a request may ask for more, never less
  std::chrono::milliseconds max_wait{10'000};  ///< default and upper bound of ?timeout=
};

/// A validated token request.
struct TokenQuery {
  TokenKey key;
  std::chrono::seconds min_validity{60};
  std::chrono::milliseconds wait{10'000};
  bool imds_shape = false;  ///< answer in IMDS's byte-for-byte shape (numbers as strings)
};

/// Validates a GET on kTokenRoute or kImdsRoute: parameters, the Metadata header on the IMDS
/// route. Bad input becomes a 400 ServeError whose description says what to fix.
std::variant<TokenQuery, ServeError> parse_token_request(const Request& request,
                                                         const ApiOptions& options);

/// The 200 body for `token` at `now`.
std::string token_body(const Token& token, const TokenQuery& query, SteadyTime now);

/// `{"error":…,"error_description":…}`.
std::string error_body(std::string_view error, std::string_view description);

/// A complete response with the headers every API answer carries (JSON, no-store).
Response make_response(const Request& request, http::status status, std::string body);
Response make_error(const Request& request, const ServeError& error);

/// The path part of a request target ("/v1/token?x=y" -> "/v1/token").
std::string_view target_path(std::string_view target);

}  // namespace broker
