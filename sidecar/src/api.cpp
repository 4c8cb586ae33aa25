#include "broker/api.hpp"

#include "tb/crypto.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/url/parse.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <charconv>
#include <cmath>
#include <optional>
#include <string_view>

namespace broker {
namespace {

using namespace std::chrono_literals;
constexpr std::int64_t kMaxMinValidity = std::int64_t{24} * 3600;

HttpError bad_request(std::string description) {
  return HttpError{400, "invalid_request", std::move(description), 0s};
}

/// Printable ASCII other than '"' and '\\' is copied into a JSON string as it is: nlohmann's
/// serializer would not change it either.
bool json_plain(std::string_view text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') return false;
  }
  return true;
}

/// Appends `text` as a JSON string literal: quoted as it is when nothing needs escaping (the
/// common case: resources, token types, client ids), else through nlohmann's serializer
/// (control characters, invalid UTF-8 replaced).
void append_json_string(std::string& out, std::string_view text) {
  if (json_plain(text)) {
    out += '"';
    out += text;
    out += '"';
    return;
  }
  out += nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void append_int(std::string& out, std::int64_t value) {
  std::array<char, 24> digits{};
  const auto end = std::to_chars(digits.data(), digits.data() + digits.size(), value).ptr;
  out.append(digits.data(), end);
}

/// Decodes `text` (a query value made only of unreserved characters and %XX escapes, see
/// simple_resource_query) into `out`.
void percent_decode(std::string_view text, std::string& out) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return c - 'A' + 10;
  };
  out.resize(text.size());
  std::size_t n = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      out[n++] = static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else {
      out[n++] = text[i];
    }
  }
  out.resize(n);
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/// The common request, "/v1/token?resource=VALUE" with VALUE made only of RFC 3986 unreserved
/// characters and well-formed %XX escapes: returns VALUE (still encoded). Anything else (other
/// routes, parameters, characters, malformed escapes) returns nullopt and takes the general path
/// through Boost.URL, so this shortcut accepts nothing that path would refuse.
std::optional<std::string_view> simple_resource_query(std::string_view target) {
  constexpr std::string_view prefix = "/v1/token?resource=";
  if (!target.starts_with(prefix)) return std::nullopt;
  const auto value = target.substr(prefix.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      continue;
    }
    if (c == '%' && i + 2 < value.size() && is_hex(value[i + 1]) && is_hex(value[i + 2])) {
      i += 2;
      continue;
    }
    return std::nullopt;
  }
  return value;
}

/// The checks of a `resource` value, the same on every path.
std::optional<HttpError> check_resource(std::string_view value) {
  if (value.empty())
    return bad_request(
        "parameter 'resource' is empty; name the resource, e.g. https://database.windows.net/");
  if (!valid_key_text(value)) {
    return bad_request(
        "parameter 'resource' must be at most 1024 printable ASCII characters (percent-encode "
        "it in the query)");
  }
  return std::nullopt;
}

}  // namespace

std::string_view route_of(std::string_view path) {
  for (std::string_view route : {kImdsRoute, kAppServiceRoute}) {
    if (path == route ||
        (path.size() == route.size() + 1 && path.starts_with(route) && path.back() == '/')) {
      return route;
    }
  }
  return path;
}

std::variant<TokenQuery, HttpError> parse_token_request(const Request& request,
                                                        const ApiOptions& options) {
  if (const auto simple = simple_resource_query(request.target())) {
    TokenQuery query;
    query.shape = Shape::v1;
    query.min_validity = options.min_validity;
    query.wait = options.max_wait;
    query.key.identity = options.default_identity;
    percent_decode(*simple, query.key.resource);
    if (auto problem = check_resource(query.key.resource)) return *problem;
    return query;
  }
  auto parsed = boost::urls::parse_origin_form(request.target());
  if (!parsed) return bad_request("the request target is not a valid URL path and query");
  const std::string path = parsed->path();
  const auto route = route_of(path);
  const bool imds = route == kImdsRoute;
  const bool app_service = route == kAppServiceRoute;
  const bool refresh = route == kRefreshRoute;
  const bool watch = route == kWatchRoute;

  TokenQuery query;
  query.shape = imds ? Shape::imds : app_service ? Shape::app_service : Shape::v1;
  query.min_validity = options.min_validity;
  query.wait = options.max_wait;
  query.key.identity = options.default_identity;

  if (imds) {
    // As IMDS itself: the header guards against server-side request forgery.
    if (!boost::beast::iequals(request["Metadata"], "true")) {
      return bad_request("Required metadata header not specified (send 'Metadata: true')");
    }
  }
  if (app_service) {
    // The caller proves it may ask for tokens with the secret (an SSRF guard, as on App
    // Service): checked before anything else so that a stranger learns nothing more.
    const auto header = request.find(kIdentityHeader);
    if (header == request.end()) {
      return bad_request(
          "Required header X-IDENTITY-HEADER not specified (send the value of IDENTITY_HEADER)");
    }
    if (!tb::secret_equals(header->value(), options.identity_header)) {
      return HttpError{401, "unauthorized",
                       "X-IDENTITY-HEADER does not match this broker's identity header (read it "
                       "from --identity-header-file)",
                       0s};
    }
  }

  bool resource_seen = false;
  bool api_version_seen = false;
  bool identity_seen = false;
  bool min_validity_seen = false;
  bool timeout_seen = false;
  bool hash_seen = false;
  bool include_seen = false;
  for (auto param : parsed->params()) {
    const std::string& name = param.key;
    const std::string& value = param.value;
    auto set_identity = [&](Identity::Kind kind) -> std::optional<HttpError> {
      if (identity_seen) {
        return bad_request("name at most one identity (client_id, object_id or mi_res_id)");
      }
      if (!valid_key_text(value)) {
        return bad_request("parameter '" + name + "' must be a non-empty identifier");
      }
      identity_seen = true;
      query.key.identity = Identity{kind, value};
      return std::nullopt;
    };
    std::optional<HttpError> problem;
    if (name == "resource") {
      if (resource_seen) return bad_request("parameter 'resource' given more than once");
      resource_seen = true;
      if (auto invalid = check_resource(value)) return *invalid;
      query.key.resource = value;
    } else if (const auto kind = identity_parameter(name)) {
      problem = set_identity(*kind);
    } else if (name == "min_validity") {
      if (min_validity_seen) return bad_request("parameter 'min_validity' given more than once");
      min_validity_seen = true;
      std::int64_t seconds = 0;
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
      if (ec != std::errc{} || ptr != value.data() + value.size() || seconds < 0 ||
          seconds > kMaxMinValidity) {
        return bad_request("parameter 'min_validity' must be whole seconds from 0 to 86400");
      }
      // A caller may ask for more validity than the default, never for less.
      query.min_validity = std::max(options.min_validity, std::chrono::seconds(seconds));
    } else if (name == "timeout") {
      if (timeout_seen) return bad_request("parameter 'timeout' given more than once");
      timeout_seen = true;
      double seconds = 0;
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
      if (ec != std::errc{} || ptr != value.data() + value.size() || !std::isfinite(seconds) ||
          seconds <= 0) {
        return bad_request("parameter 'timeout' must be a positive number of seconds");
      }
      const auto wanted =
          std::chrono::milliseconds(static_cast<std::int64_t>(std::min(seconds, 3600.0) * 1000.0));
      query.wait = std::max(1ms, std::min(options.max_wait, wanted));
    } else if (name == "api-version") {
      api_version_seen = true;
      if (app_service && value != kAppServiceApiVersion) {
        return bad_request("api-version '" + value + "' is not supported on " +
                           std::string(kAppServiceRoute) + "; use " +
                           std::string(kAppServiceApiVersion) + " (header X-IDENTITY-HEADER)");
      }
    } else if (refresh && name == "token_sha256") {
      if (hash_seen) return bad_request("parameter 'token_sha256' given more than once");
      hash_seen = true;
      if (value.size() != 64 || value.find_first_not_of("0123456789abcdef") != std::string::npos) {
        return bad_request(
            "parameter 'token_sha256' must be the rejected token's SHA-256 as 64 lower-case hex "
            "digits");
      }
      query.rejected_sha256 = value;
    } else if (watch && name == "include_token") {
      if (include_seen) return bad_request("parameter 'include_token' given more than once");
      include_seen = true;
      if (value != "true" && value != "false") {
        return bad_request("parameter 'include_token' must be true or false");
      }
      query.include_token = value == "true";
    } else if (!imds && !app_service) {
      // IMDS and App Service ignore parameters they do not know; our own routes name typos.
      return bad_request("unknown parameter '" + name +
                         "' (known: resource, client_id, object_id, mi_res_id, min_validity, "
                         "timeout" +
                         (refresh ? std::string(", token_sha256") : std::string()) +
                         (watch ? std::string(", include_token") : std::string()) + ")");
    }
    if (problem) return *problem;
  }
  if (imds && !api_version_seen) {
    return bad_request("parameter 'api-version' is required on the IMDS route (e.g. 2018-02-01)");
  }
  if (app_service && !api_version_seen) {
    return bad_request("parameter 'api-version' is required on the App Service route (" +
                       std::string(kAppServiceApiVersion) + ")");
  }
  if (!resource_seen) {
    return bad_request(
        "parameter 'resource' is required, e.g. ?resource=https://database.windows.net/");
  }
  return query;
}

namespace {
/// The expires_in a body says at `now`: whole seconds, never negative.
std::int64_t seconds_left(const Token& token, SteadyTime now) {
  return std::max<std::int64_t>(
      0, std::chrono::floor<std::chrono::seconds>(token.expires_at - now).count());
}
}  // namespace

std::string token_body(const Token& token, const TokenQuery& query, SteadyTime now) {
  const auto& up = token.upstream;
  const auto left = seconds_left(token, now);
  const std::string& resource = up.resource.empty() ? query.key.resource : up.resource;
  std::string body;
  body.reserve(up.access_token.size() + 16 + resource.size() + up.client_id.size() +
               up.not_before.size() + 192);
  body += R"({"access_token":)";
  append_json_string(body, up.access_token);
  if (query.shape == Shape::v1) {
    body += R"(,"token_type":)";
    append_json_string(body, up.token_type);
    body += R"(,"expires_on":)";
    append_int(body, up.expires_on);
    body += R"(,"expires_in":)";
    append_int(body, left);
    body += R"(,"resource":)";
    append_json_string(body, resource);
    body += '}';
    return body;
  }
  if (query.shape == Shape::app_service) {
    // App Service 2019-08-01 sends these five, expires_on as a string of unix seconds; client_id
    // is the identity's, echoed by the upstream or named by the caller.
    const std::string& client_id = !up.client_id.empty() ? up.client_id
                                   : query.key.identity.kind == Identity::Kind::client_id
                                       ? query.key.identity.value
                                       : up.client_id;
    body += R"(,"expires_on":")";
    append_int(body, up.expires_on);
    body += R"(","resource":)";
    append_json_string(body, resource);
    body += R"(,"token_type":)";
    append_json_string(body, up.token_type);
    if (!client_id.empty()) {
      body += R"(,"client_id":)";
      append_json_string(body, client_id);
    }
    body += '}';
    return body;
  }
  // IMDS sends every numeric field as a string; some drivers depend on it.
  body += ',';
  if (!up.client_id.empty()) {
    body += R"("client_id":)";
    append_json_string(body, up.client_id);
    body += ',';
  }
  body += R"("expires_in":")";
  append_int(body, left);
  body += R"(","expires_on":")";
  append_int(body, up.expires_on);
  body += R"(",)";
  // The upstream's ext_expires_in is passed on only when it is the number IMDS sends; it must
  // never break the JSON (it is not escaped).
  const bool ext_is_number = !up.ext_expires_in.empty() && up.ext_expires_in.size() <= 12 &&
                             up.ext_expires_in.find_first_not_of("0123456789") == std::string::npos;
  body += R"("ext_expires_in":")";
  if (ext_is_number) {
    body += up.ext_expires_in;
  } else {
    append_int(body, left);
  }
  body += R"(",)";
  if (!up.not_before.empty()) {
    body += R"("not_before":)";
    append_json_string(body, up.not_before);
    body += ',';
  }
  body += R"("resource":)";
  append_json_string(body, resource);
  body += R"(,"token_type":)";
  append_json_string(body, up.token_type);
  body += '}';
  return body;
}

std::string refresh_body(const Token& token, const TokenQuery& query, SteadyTime now, bool is_new) {
  TokenQuery v1 = query;
  v1.shape = Shape::v1;
  std::string body = token_body(token, v1, now);
  body.pop_back();  // the closing brace
  body += is_new ? R"(,"new":true})" : R"(,"new":false})";
  return body;
}

const std::string& TokenBodies::body(const TokenPtr& token, const TokenQuery& query,
                                     SteadyTime now) {
  auto& rendered = rendered_.at(static_cast<std::size_t>(query.shape));
  const auto left = seconds_left(*token, now);
  if (rendered.token != token || rendered.seconds_left != left || !(rendered.key == query.key)) {
    rendered.body = token_body(*token, query, now);
    rendered.token = token;
    rendered.key = query.key;
    rendered.seconds_left = left;
  }
  return rendered.body;
}

Response make_response(const Request& request, http::status status, std::string body) {
  return tb::http::json_response(request, status, std::move(body), "token-broker");
}

Response make_error(const Request& request, const HttpError& error) {
  return tb::http::error_response(request, error, "token-broker");
}

HttpError to_http_error(const TokenError& error) {
  unsigned status = 503;
  if (error.kind == TokenError::Kind::rate_limited) status = 429;
  if (error.kind == TokenError::Kind::upstream_rejected) {
    if (error.upstream_status == 400) status = 400;
    if (error.upstream_status == 401 || error.upstream_status == 403) status = 403;
  }
  return HttpError{status, std::string(to_string(error.kind)), error.detail, error.retry_after};
}

}  // namespace broker
