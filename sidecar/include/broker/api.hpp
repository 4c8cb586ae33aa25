#pragma once
// The token API's request validation and response bodies, as pure functions, and the one place
// where the cache's domain errors become HTTP. The transport (sessions, sockets) is the HTTP
// layer's (tb/http/server.hpp); the wiring is broker.cpp's.

#include "broker/cache.hpp"
#include "broker/token.hpp"
#include "tb/http/message.hpp"
#include "token_client/routes.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace broker {

namespace http = boost::beast::http;
using tb::http::Request;
using tb::http::Response;
/// An error answer of the API (status, code, description, Retry-After).
using HttpError = tb::http::Error;

// The routes, as the client library defines them for every caller (token_client/routes.hpp).
inline constexpr std::string_view kTokenRoute = token_client::routes::kToken;
inline constexpr std::string_view kRefreshRoute = token_client::routes::kRefresh;
inline constexpr std::string_view kWatchRoute = token_client::routes::kWatch;
inline constexpr std::string_view kImdsRoute = token_client::routes::kImds;
/// App Service's managed-identity route (api-version 2019-08-01), served on the drop-in listener.
inline constexpr std::string_view kAppServiceRoute = token_client::routes::kAppService;
inline constexpr std::string_view kAppServiceApiVersion =
    token_client::routes::kAppServiceApiVersion;
inline constexpr std::string_view kIdentityHeader = token_client::routes::kIdentityHeader;
inline constexpr std::string_view kHealthRoute = token_client::routes::kHealth;
inline constexpr std::string_view kReadyRoute = token_client::routes::kReady;
inline constexpr std::string_view kMetricsRoute = "/metrics";

struct ApiOptions {
  Identity default_identity;                   ///< used when a request names none
  std::chrono::seconds min_validity{60};       ///< a request may ask for more, never less
  std::chrono::milliseconds max_wait{10'000};  ///< default and upper bound of ?timeout=
  /// The secret that callers of kAppServiceRoute send in X-IDENTITY-HEADER. Empty: every caller
  /// of that route is refused.
  std::string identity_header;
};

/// Which service's response shape a token request is answered in.
enum class Shape {
  v1,           ///< ours: numbers are numbers
  imds,         ///< IMDS, byte for byte: every numeric field a string
  app_service,  ///< App Service 2019-08-01: expires_on as a string of unix seconds, client_id
};

/// A validated token request.
struct TokenQuery {
  TokenKey key;
  std::chrono::seconds min_validity{60};
  std::chrono::milliseconds wait{10'000};
  Shape shape = Shape::v1;
  /// kRefreshRoute only: the rejected token's SHA-256, 64 lower-case hex digits (empty: not given).
  std::string rejected_sha256;
  /// kWatchRoute only: the events carry the access token too (include_token=true).
  bool include_token = false;
};

/// Validates a GET on kTokenRoute, kImdsRoute, kAppServiceRoute or kWatchRoute (which also takes
/// `include_token=true|false`), or a POST on kRefreshRoute (which also takes `token_sha256`):
/// parameters, the Metadata header
/// on the IMDS route, X-IDENTITY-HEADER on the App Service route (missing: 400, wrong: 401, as
/// App Service answers). Bad input becomes a 400 HttpError whose description says what to fix.
std::variant<TokenQuery, HttpError> parse_token_request(const Request& request,
                                                        const ApiOptions& options);

/// The answer to a request the cache could not serve: too_many_tokens and shutting_down are 503;
/// upstream_rejected passes the upstream's refusal on (400 stays 400, 401 and 403 become 403,
/// anything else 503) so that callers do not retry blindly; unavailable is 503 "token_unavailable";
/// rate_limited (a forced refresh too soon) is 429 "refresh_rate_limited".
/// Retry-After is the error's.
HttpError to_http_error(const TokenError& error);

/// The 200 body of a forced refresh: the kTokenRoute body plus "new" (whether the token differs
/// from the one it replaces).
std::string refresh_body(const Token& token, const TokenQuery& query, SteadyTime now, bool is_new);

/// The 200 body for `token` at `now`.
std::string token_body(const Token& token, const TokenQuery& query, SteadyTime now);

/// token_body, rendered once per token, request and second: callers that ask again for the same
/// token within the same second (the common case under load) get the bytes already rendered.
/// One remembered body per shape; not thread-safe (the broker runs on one thread).
class TokenBodies {
 public:
  /// The same bytes as token_body(*token, query, now); valid until the next call.
  const std::string& body(const TokenPtr& token, const TokenQuery& query, SteadyTime now);

 private:
  struct Rendered {
    TokenPtr token;  ///< held, so that the pointer compared cannot be a new token's
    TokenKey key;
    std::int64_t seconds_left = -1;
    std::string body;
  };
  std::array<Rendered, 3> rendered_;  ///< by Shape
};

/// A complete response with the headers every API answer carries (JSON, no-store, Server:
/// token-broker).
Response make_response(const Request& request, http::status status, std::string body);
/// The same for an error (`{"error","error_description"}`, Retry-After when it has one); also
/// the broker's renderer of the HTTP layer's own errors.
Response make_error(const Request& request, const HttpError& error);

/// The route a path names: `path` itself, except that the compatible routes also answer with one
/// trailing slash, as IMDS does ("/metadata/identity/oauth2/token/" is what @azure/msal-node
/// requests when AZURE_POD_IDENTITY_AUTHORITY_HOST is set).
std::string_view route_of(std::string_view path);

}  // namespace broker
