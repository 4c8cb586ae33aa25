#include "broker/imds.hpp"
#include "tb/asio_frame_warning.hpp"  // gcc 12 false positive, see there

#include "broker/retry.hpp"
#include "broker/source.hpp"

#include "tb/crypto.hpp"
#include "tb/flags.hpp"
#include "tb/http_client.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/pchars.hpp>
#include <boost/url/url.hpp>
#include <nlohmann/json.hpp>

#include <cctype>
#include <ctime>
#include <limits>
#include <stdexcept>

namespace broker {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::size_t kMaxUpstreamBody = std::size_t{64} * 1024;

/// What may stay unencoded in a query parameter value: the RFC 3986 query characters minus the
/// separators '&' and '=', and minus '+', which form decoders read as a space.
constexpr auto kQueryValueChars = boost::urls::pchars + '/' + '?' - '&' - '=' - '+';

FetchError malformed(std::string description) {
  return FetchError{0, "malformed_response", std::move(description), std::nullopt};
}

/// A numeric field that may arrive as a JSON number or a string of digits.
std::optional<std::int64_t> numeric_field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_number_float()) {
    // Casting a double outside the int64 range is undefined behaviour.
    const double value = it->get<double>();
    if (!(value > -9.2e18 && value < 9.2e18)) return std::nullopt;
    return static_cast<std::int64_t>(value);
  }
  if (it->is_string()) return tb::flags::to_int(it->get_ref<const std::string&>());
  return std::nullopt;
}

/// App Service (2017-09-01) and some NMI versions send "11/28/2026 11:45:12 PM +00:00".
std::optional<std::int64_t> parse_date_expiry(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%m/%d/%Y %I:%M:%S %p", &tm);
  if (end == nullptr) return std::nullopt;
  std::int64_t offset_seconds = 0;
  std::string_view rest(end);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (!rest.empty()) {
    // "+00:00" / "-05:30"
    if (rest.size() != 6 || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':') {
      return std::nullopt;
    }
    auto hours = tb::flags::to_int(rest.substr(1, 2));
    auto minutes = tb::flags::to_int(rest.substr(4, 2));
    if (!hours || !minutes) return std::nullopt;
    offset_seconds = (*hours * 3600 + *minutes * 60) * (rest[0] == '+' ? 1 : -1);
  }
  return static_cast<std::int64_t>(timegm(&tm)) - offset_seconds;
}

std::string optional_string(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number()) return it->dump();
  return {};
}

bool credential_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
}

/// A run of base64url characters and dots (a JWT is three such parts) that holds a credential.
bool looks_like_credential(std::string_view run) {
  if (auto head = run.find("eyJ");
      head != std::string_view::npos && run.find('.', head) != std::string_view::npos) {
    return true;
  }
  std::size_t start = 0;
  while (start < run.size()) {
    auto end = run.find('.', start);
    if (end == std::string_view::npos) end = run.size();
    const auto part = run.substr(start, end - start);
    bool upper = false;
    bool lower = false;
    bool digit = false;
    for (char c : part) {
      const auto u = static_cast<unsigned char>(c);
      upper = upper || std::isupper(u) != 0;
      lower = lower || std::islower(u) != 0;
      digit = digit || std::isdigit(u) != 0;
    }
    if (part.size() >= 32 && upper && lower && digit) return true;
    start = end + 1;
  }
  return false;
}

std::string redact_text(std::string_view text, std::size_t limit) {
  std::string out;
  for (std::size_t i = 0; i < text.size() && out.size() < limit;) {
    if (credential_char(text[i])) {
      std::size_t end = i;
      while (end < text.size() && (credential_char(text[end]) || text[end] == '.')) ++end;
      const auto run = text.substr(i, end - i);
      out += looks_like_credential(run) ? std::string("[redacted]") : std::string(run);
      i = end;
      continue;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    out += c < 0x20 || c == 0x7f ? ' ' : text[i];
    ++i;
  }
  if (out.size() > limit) out.resize(limit);
  return out;
}

}  // namespace

std::string imds_target(const TokenKey& key) {
  boost::urls::url url("/metadata/identity/oauth2/token");
  // encoded_params with our own encoding: Boost.URL 1.81's params() leaves '+' bare in values,
  // and IMDS (like most servers) decodes a bare '+' in a query as a space.
  auto params = url.encoded_params();
  auto append = [&](std::string_view name, std::string_view value) {
    params.append({name, boost::urls::encode(value, kQueryValueChars)});
  };
  append("api-version", "2018-02-01");
  append("resource", key.resource);
  switch (key.identity.kind) {
    case Identity::Kind::none:
      break;
    case Identity::Kind::client_id:
      append("client_id", key.identity.value);
      break;
    case Identity::Kind::object_id:
      append("object_id", key.identity.value);
      break;
    case Identity::Kind::mi_res_id:
      append("mi_res_id", key.identity.value);
      break;
  }
  return std::string(url.buffer());
}

FetchResult parse_token_response(std::string_view body, SystemTime now) {
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return malformed("upstream sent a body that is not JSON");
  if (!parsed.is_object()) return malformed("upstream sent JSON that is not an object");

  UpstreamToken token;
  auto access = parsed.find("access_token");
  if (access == parsed.end() || !access->is_string() ||
      access->get_ref<const std::string&>().empty()) {
    return malformed("upstream response has no access_token");
  }
  token.access_token = access->get<std::string>();

  const auto now_unix = std::chrono::floor<std::chrono::seconds>(now.time_since_epoch()).count();
  auto expires_in = numeric_field(parsed, "expires_in");
  std::optional<std::int64_t> expires_on = numeric_field(parsed, "expires_on");
  if (!expires_on) {
    auto it = parsed.find("expires_on");
    if (it != parsed.end() && it->is_string()) {
      expires_on = parse_date_expiry(it->get<std::string>());
      if (!expires_on) return malformed("upstream expires_on is neither unix seconds nor a date");
    }
  }
  if (!expires_in && parsed.contains("expires_in")) {
    return malformed("upstream expires_in is not a number");
  }
  if (!expires_in && !expires_on) {
    return malformed("upstream response has neither expires_in nor expires_on");
  }
  // Range checks before any sum: far-out-of-range values must not overflow.
  constexpr std::int64_t kMaxLifetime = 366LL * 24 * 3600;
  if (expires_in && *expires_in <= 0) {
    return malformed("upstream sent a token that is already expired (expires_in " +
                     std::to_string(*expires_in) + ")");
  }
  if (expires_in && *expires_in > kMaxLifetime) {
    return malformed("upstream expires_in is implausibly large");
  }
  if (expires_on && *expires_on <= now_unix) {
    return malformed("upstream sent a token that is already expired (expires_on " +
                     std::to_string(*expires_on) + ")");
  }
  if (!expires_in && *expires_on - now_unix > kMaxLifetime) {
    return malformed("upstream expires_on is implausibly far away");
  }
  token.said.expires_on = expires_on;
  if (expires_in) token.said.expires_in = now_unix + *expires_in;
  // The token itself, when it is a JWT: its exp is what a database checks.
  if (const auto jwt = tb::decode_jwt(token.access_token); std::holds_alternative<tb::Jwt>(jwt)) {
    const auto& claims = std::get<tb::Jwt>(jwt).claims;
    if (const auto exp = claims.find("exp"); exp != claims.end() && exp->is_number_integer()) {
      const auto value = exp->get<std::int64_t>();
      if (value <= now_unix) {
        return malformed("upstream sent a token whose own exp has passed (exp " +
                         std::to_string(value) + ")");
      }
      token.said.jwt_exp = value;
    }
  }
  std::int64_t effective = std::numeric_limits<std::int64_t>::max();
  for (const auto& said : {token.said.expires_on, token.said.expires_in, token.said.jwt_exp}) {
    if (said) effective = std::min(effective, *said);
  }
  token.expires_on = effective;
  token.expires_in = std::chrono::seconds(effective - now_unix);

  if (auto refresh_in = numeric_field(parsed, "refresh_in"); refresh_in && *refresh_in > 0) {
    token.refresh_in = std::chrono::seconds(*refresh_in);
  }
  if (auto type = optional_string(parsed, "token_type"); !type.empty()) token.token_type = type;
  token.resource = optional_string(parsed, "resource");
  token.client_id = optional_string(parsed, "client_id");
  token.not_before = optional_string(parsed, "not_before");
  token.ext_expires_in = optional_string(parsed, "ext_expires_in");
  return token;
}

FetchError redact_upstream_error(FetchError error) {
  error.error = redact_text(error.error, 64);
  error.description = redact_text(error.description, 300);
  return error;
}

FetchError upstream_error(unsigned status, std::string_view body, std::string_view retry_after,
                          SystemTime now) {
  FetchError error{status, "upstream_http_" + std::to_string(status), {}, std::nullopt};
  json parsed = json::parse(body, nullptr, false);
  if (parsed.is_object()) {
    if (auto it = parsed.find("error"); it != parsed.end() && it->is_string()) {
      error.error = it->get<std::string>();
    }
    if (auto it = parsed.find("error_description"); it != parsed.end() && it->is_string()) {
      error.description = it->get<std::string>();
    }
  }
  // Keep descriptions short: they end up in logs and client errors.
  if (error.description.size() > 300) error.description.resize(300);
  if (!retry_after.empty()) error.retry_after = parse_retry_after(retry_after, now);
  return error;
}

FetchError transport_error(const boost::system::error_code& ec, const std::string& url,
                           std::chrono::milliseconds timeout, const std::string& host,
                           const std::string& ca_file) {
  if (ec == boost::beast::error::timeout) {
    return FetchError{
        0, "upstream_timeout",
        "no answer from " + url + " within " + std::to_string(timeout.count()) + " ms",
        std::nullopt};
  }
  if (tb::http::is_tls_error(ec)) {
    return FetchError{
        0, "upstream_tls_error",
        "TLS with " + url + " failed: " + ec.message() + "; the server certificate must chain to " +
            (ca_file.empty() ? std::string("the system CA bundle") : "--ca-file " + ca_file) +
            " and name " + host,
        std::nullopt};
  }
  // The request went out (or the connection was up): the upstream is there but broke off.
  namespace http = boost::beast::http;
  if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
      ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset ||
      ec == boost::asio::error::broken_pipe) {
    return FetchError{
        0, "upstream_connection_lost",
        "the connection to " + url + " broke before the answer was complete: " + ec.message(),
        std::nullopt};
  }
  if (ec.category() == make_error_code(http::error::body_limit).category()) {
    return FetchError{0, "upstream_bad_response",
                      "the answer from " + url + " is not usable HTTP: " + ec.message(),
                      std::nullopt};
  }
  return FetchError{0, "upstream_unreachable", "cannot reach " + url + ": " + ec.message(),
                    std::nullopt};
}

ImdsSource::ImdsSource(std::string endpoint, const Clock& clock)
    : endpoint_(std::move(endpoint)), clock_(clock) {
  auto parsed = boost::urls::parse_absolute_uri(endpoint_);
  if (!parsed) throw std::invalid_argument("is not an absolute URL (e.g. http://169.254.169.254)");
  if (parsed->scheme() != "http") {
    throw std::invalid_argument("must use http:// (IMDS and NMI do not speak TLS)");
  }
  if (parsed->host().empty()) throw std::invalid_argument("has no host");
  if (parsed->has_query() || parsed->has_fragment() || parsed->has_userinfo()) {
    throw std::invalid_argument("must not have a query, fragment or user info");
  }
  host_ = parsed->host();
  if (parsed->host_type() == boost::urls::host_type::ipv6)
    host_ = std::string(parsed->host_address());
  port_ = parsed->has_port() ? std::string(parsed->port()) : "80";
  base_path_ = parsed->path();
  while (!base_path_.empty() && base_path_.back() == '/') base_path_.pop_back();
}

boost::asio::awaitable<FetchResult> ImdsSource::fetch(const TokenKey& key,
                                                      std::chrono::milliseconds timeout) {
  const std::string request_id = tb::random_uuid();
  tb::http::Request request;
  request.target = base_path_ + imds_target(key);
  request.headers.emplace_back("Metadata", "true");
  request.headers.emplace_back(kClientRequestIdHeader, request_id);
  request.host = host_;
  // Named arguments only: GCC 12 mishandles class temporaries that live across a co_await.
  const tb::http::Limits limits{timeout, kMaxUpstreamBody};
  auto response = co_await tb::http::async_request_tcp(host_, port_, std::move(request), limits);
  if (!response) {
    co_return with_request_id(transport_error(response.error(), endpoint_, timeout), request_id);
  }
  const auto status = response->result_int();
  if (status != 200) {
    co_return with_request_id(
        upstream_error(status, response->body(),
                       response->base()[boost::beast::http::field::retry_after],
                       clock_.system_now()),
        request_id);
  }
  co_return with_request_id(parse_token_response(response->body(), clock_.system_now()),
                            request_id);
}

}  // namespace broker
