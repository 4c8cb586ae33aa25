#include "broker/api.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <boost/beast/core/string.hpp>
#include <boost/url/parse.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <charconv>
#include <cmath>

namespace broker {
namespace {

using namespace std::chrono_literals;
constexpr std::size_t kMaxResource = 1024;
constexpr std::size_t kMaxIdentity = 1024;
constexpr std::int64_t kMaxMinValidity = 24 * 3600;

ServeError bad_request(std::string description) {
  return ServeError{400, "invalid_request", std::move(description), 0s};
}

/// Resources (URIs) and identities (GUIDs, ARM paths) are printable ASCII; anything else is a
/// mistake or an attack, and would otherwise end up in logs, /readyz and /metrics.
bool printable_ascii(std::string_view text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}

std::string json_string(std::string_view text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string_view target_path(std::string_view target) { return target.substr(0, target.find('?')); }

std::string_view route_of(std::string_view path) {
  for (std::string_view route : {kImdsRoute, kAppServiceRoute}) {
    if (path == route ||
        (path.size() == route.size() + 1 && path.starts_with(route) && path.back() == '/')) {
      return route;
    }
  }
  return path;
}

bool secret_equals(std::string_view given, std::string_view expected) {
  using Digest = std::array<unsigned char, EVP_MAX_MD_SIZE>;
  auto digest = [](std::string_view text, Digest& out) {
    unsigned int size = 0;
    return EVP_Digest(text.data(), text.size(), out.data(), &size, EVP_sha256(), nullptr) == 1 &&
           size == 32;
  };
  Digest a{};
  Digest b{};
  if (!digest(given, a) || !digest(expected, b)) return false;
  return CRYPTO_memcmp(a.data(), b.data(), 32) == 0 && !expected.empty();
}

std::variant<TokenQuery, ServeError> parse_token_request(const Request& request,
                                                         const ApiOptions& options) {
  auto parsed = boost::urls::parse_origin_form(request.target());
  if (!parsed) return bad_request("the request target is not a valid URL path and query");
  const std::string path = parsed->path();
  const auto route = route_of(path);
  const bool imds = route == kImdsRoute;
  const bool app_service = route == kAppServiceRoute;

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
    if (!secret_equals(header->value(), options.identity_header)) {
      return ServeError{401, "unauthorized",
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
  for (auto param : parsed->params()) {
    const std::string& name = param.key;
    const std::string& value = param.value;
    auto set_identity = [&](Identity::Kind kind) -> std::optional<ServeError> {
      if (identity_seen) {
        return bad_request("name at most one identity (client_id, object_id or mi_res_id)");
      }
      if (value.empty() || value.size() > kMaxIdentity || !printable_ascii(value)) {
        return bad_request("parameter '" + name + "' must be a non-empty identifier");
      }
      identity_seen = true;
      query.key.identity = Identity{kind, value};
      return std::nullopt;
    };
    std::optional<ServeError> problem;
    if (name == "resource") {
      if (resource_seen) return bad_request("parameter 'resource' given more than once");
      resource_seen = true;
      if (value.empty())
        return bad_request(
            "parameter 'resource' is empty; name the resource, e.g. https://database.windows.net/");
      if (value.size() > kMaxResource || !printable_ascii(value)) {
        return bad_request(
            "parameter 'resource' must be at most 1024 printable ASCII characters (percent-encode "
            "it in the query)");
      }
      query.key.resource = value;
    } else if (name == "client_id") {
      problem = set_identity(Identity::Kind::client_id);
    } else if (name == "object_id" || name == "principal_id") {
      problem = set_identity(Identity::Kind::object_id);
    } else if (name == "mi_res_id" || name == "msi_res_id") {
      problem = set_identity(Identity::Kind::mi_res_id);
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
    } else if (!imds && !app_service) {
      // IMDS and App Service ignore parameters they do not know; our own route names typos.
      return bad_request("unknown parameter '" + name +
                         "' (known: resource, client_id, object_id, mi_res_id, min_validity, "
                         "timeout)");
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

std::string token_body(const Token& token, const TokenQuery& query, SteadyTime now) {
  const auto& up = token.upstream;
  std::string escaped;
  const std::string& access_token = token.access_token_json.empty()
                                        ? (escaped = json_string(up.access_token))
                                        : token.access_token_json;
  const auto left = std::max<std::int64_t>(
      0, std::chrono::floor<std::chrono::seconds>(token.expires_at - now).count());
  const std::string& resource = up.resource.empty() ? query.key.resource : up.resource;
  if (query.shape == Shape::v1) {
    return fmt::format(
        R"({{"access_token":{},"token_type":{},"expires_on":{},"expires_in":{},"resource":{}}})",
        access_token, json_string(up.token_type), up.expires_on, left, json_string(resource));
  }
  if (query.shape == Shape::app_service) {
    // App Service 2019-08-01 sends these five, expires_on as a string of unix seconds; client_id
    // is the identity's, echoed by the upstream or named by the caller.
    const std::string& client_id = !up.client_id.empty() ? up.client_id
                                   : query.key.identity.kind == Identity::Kind::client_id
                                       ? query.key.identity.value
                                       : up.client_id;
    std::string body = fmt::format(R"({{"access_token":{},"expires_on":"{}","resource":{},)",
                                   access_token, up.expires_on, json_string(resource));
    body += fmt::format(R"("token_type":{})", json_string(up.token_type));
    if (!client_id.empty()) body += fmt::format(R"(,"client_id":{})", json_string(client_id));
    body += '}';
    return body;
  }
  // IMDS sends every numeric field as a string; some drivers depend on it.
  std::string body = fmt::format(R"({{"access_token":{},)", access_token);
  if (!up.client_id.empty()) body += fmt::format(R"("client_id":{},)", json_string(up.client_id));
  body += fmt::format(R"("expires_in":"{}","expires_on":"{}",)", left, up.expires_on);
  // The upstream's ext_expires_in is passed on only when it is the number IMDS sends; it must
  // never break the JSON (it is not escaped).
  const bool ext_is_number = !up.ext_expires_in.empty() && up.ext_expires_in.size() <= 12 &&
                             up.ext_expires_in.find_first_not_of("0123456789") == std::string::npos;
  body += fmt::format(R"("ext_expires_in":"{}",)",
                      ext_is_number ? up.ext_expires_in : std::to_string(left));
  if (!up.not_before.empty())
    body += fmt::format(R"("not_before":{},)", json_string(up.not_before));
  body += fmt::format(R"("resource":{},"token_type":{}}})", json_string(resource),
                      json_string(up.token_type));
  return body;
}

std::string error_body(std::string_view error, std::string_view description) {
  return fmt::format(R"({{"error":{},"error_description":{}}})", json_string(error),
                     json_string(description));
}

Response make_response(const Request& request, http::status status, std::string body) {
  Response response{status, request.version()};
  response.set(http::field::server, "token-broker");
  response.set(http::field::content_type, "application/json");
  response.set(http::field::cache_control, "no-store");
  response.keep_alive(request.keep_alive());
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

Response make_error(const Request& request, const ServeError& error) {
  auto response = make_response(request, static_cast<http::status>(error.status),
                                error_body(error.error, error.description));
  if (error.retry_after.count() > 0) {
    response.set(http::field::retry_after, std::to_string(error.retry_after.count()));
  }
  return response;
}

}  // namespace broker
