#include "tokenctl/broker.hpp"

#include <tb/http_date.hpp>
#include <tb/log.hpp>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/system/errc.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <optional>

namespace tokenctl {
namespace {

namespace http = boost::beast::http;
namespace errc = boost::system::errc;
using nlohmann::json;

// Everything but RFC 3986 unreserved characters is escaped, so resources such as
// "https://database.windows.net/" reach the broker unambiguously whatever its query parser.
std::string encode(std::string_view value) {
  return boost::urls::encode(value, boost::urls::unreserved_chars);
}

std::string with_prefix(const std::string& message) { return "tokenctl: " + message + "\n"; }

Outcome failure(const std::string& message) { return {kExitError, "", with_prefix(message)}; }

std::string not_ours_hint(const Options& options) {
  return "is " + options.socket + " a token-broker socket?";
}

// A JSON object, or null for anything else (not JSON, an array, invalid UTF-8 …).
json parse_object(const std::string& body) {
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  return parsed.is_object() ? parsed : json();
}

std::optional<std::string> string_field(const json& object, const char* name) {
  if (!object.is_object()) return std::nullopt;
  auto it = object.find(name);
  if (it == object.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

// Whole seconds from a JSON number; unix times and lifetimes fit well inside ±1e12.
std::optional<std::int64_t> seconds_field(const json& object, const char* name) {
  auto it = object.find(name);
  if (it == object.end() || !it->is_number()) return std::nullopt;
  const double value = it->get<double>();
  if (!std::isfinite(value) || std::fabs(value) > 1e12) return std::nullopt;
  return static_cast<std::int64_t>(std::floor(value));
}

std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Outcome malformed(const Options& options, const std::string& what) {
  return failure("malformed answer from the broker: " + what + " — " + not_ours_hint(options));
}

Outcome interpret_token(const Options& options, const tb::http::Response& response) {
  if (response.result() != http::status::ok) {
    return failure(describe_http_error(options, response));
  }
  json body = parse_object(response.body());
  if (body.is_null()) return malformed(options, "the body is not a JSON object");
  auto token = string_field(body, "access_token");
  if (!token || token->empty()) return malformed(options, "no \"access_token\" string");
  auto token_type = string_field(body, "token_type");
  if (!token_type) return malformed(options, "no \"token_type\" string");
  auto resource = string_field(body, "resource");
  if (!resource) return malformed(options, "no \"resource\" string");
  auto expires_on = seconds_field(body, "expires_on");
  if (!expires_on) return malformed(options, "no numeric \"expires_on\"");
  auto expires_in = seconds_field(body, "expires_in");
  if (!expires_in) return malformed(options, "no numeric \"expires_in\"");

  if (options.json) {
    if (!options.show_token) body.erase("access_token");
    return {kExitOk, dump(body), ""};
  }
  // Only the token, so that TOKEN=$(tokenctl get R --show-token) needs no parsing.
  if (options.show_token) return {kExitOk, *token + "\n", ""};
  std::string out;
  out += "resource: " + printable(*resource) + "\n";
  out += "expires_on: " + format_utc(*expires_on) + " (unix " + std::to_string(*expires_on) + ")\n";
  out += "expires_in: " + format_duration(*expires_in) + "\n";
  out += "token_type: " + printable(*token_type) + "\n";
  out += "token_sha256: " + tb::log::fingerprint(*token) + "\n";
  return {kExitOk, std::move(out), ""};
}

// Why /readyz said 503, from whatever the body offers.
std::string not_ready_reason(const tb::http::Response& response) {
  const json body = parse_object(response.body());
  if (body.is_object()) {
    if (auto it = body.find("missing"); it != body.end() && it->is_array() && !it->empty()) {
      std::string list;
      for (const auto& item : *it) {
        if (!list.empty()) list += ", ";
        list += item.is_string() ? printable(item.get<std::string>()) : printable(item.dump());
      }
      return "no token yet for " + list;
    }
    for (const char* name : {"error_description", "reason", "error", "status"}) {
      if (auto text = string_field(body, name); text && !text->empty()) return printable(*text);
    }
  }
  return "the broker answered 503";
}

Outcome interpret_ready(const Options& options, const tb::http::Response& response) {
  if (response.result() == http::status::ok) return {kExitOk, "ready\n", ""};
  if (response.result() == http::status::service_unavailable) {
    return {kExitError, "not ready: " + not_ready_reason(response) + "\n", ""};
  }
  return failure(describe_http_error(options, response));
}

bool is_http_category(boost::system::error_code ec) {
  return ec.category() == http::make_error_code(http::error::end_of_stream).category();
}

}  // namespace

std::int64_t broker_timeout_seconds(const Options& options) {
  return std::max<std::int64_t>(1, options.timeout.count() - 1);
}

std::string token_target(const Options& options) {
  std::string target(kTokenPath);
  target += "?resource=" + encode(options.resource);
  if (options.identity.kind != IdentityKind::system_assigned) {
    target +=
        "&" + std::string(query_name(options.identity.kind)) + "=" + encode(options.identity.value);
  }
  if (options.min_validity) {
    target += "&min_validity=" + std::to_string(options.min_validity->count());
  }
  target += "&timeout=" + std::to_string(broker_timeout_seconds(options));
  return target;
}

tb::http::Request build_request(const Options& options) {
  tb::http::Request request;
  request.target =
      options.command == Command::get ? token_target(options) : std::string(kReadyPath);
  request.headers.emplace_back("Accept", "application/json");
  return request;
}

tb::http::Limits build_limits(const Options& options) {
  tb::http::Limits limits;
  limits.timeout = options.timeout;
  return limits;
}

Outcome interpret(const Options& options, const boost::system::result<tb::http::Response>& answer) {
  if (!answer) return failure(describe_transport_error(options, answer.error()));
  switch (options.command) {
    case Command::get:
      return interpret_token(options, *answer);
    case Command::health:
      return interpret_ready(options, *answer);
    case Command::none:
      break;
  }
  return failure("internal error: no command to interpret the answer for");
}

std::string describe_transport_error(const Options& options, boost::system::error_code ec) {
  const std::string& path = options.socket;
  if (ec == errc::no_such_file_or_directory || ec == errc::connection_refused ||
      ec == errc::not_a_socket || ec == errc::not_a_directory) {
    return "cannot connect to " + path + ": " + ec.message() +
           " — is token-broker running? (set --socket or TOKEN_BROKER_SOCKET)";
  }
  if (ec == errc::permission_denied || ec == errc::operation_not_permitted) {
    return "cannot connect to " + path + ": " + ec.message() +
           " — run tokenctl as a user the broker allows (the socket's group or the broker's uid)";
  }
  if (ec == boost::beast::error::timeout || ec == errc::timed_out) {
    return "timed out after " + std::to_string(options.timeout.count()) +
           " s waiting for the broker — raise --timeout or check the broker's logs";
  }
  if (ec == http::error::end_of_stream || ec == errc::connection_reset || ec == errc::broken_pipe) {
    return "the broker at " + path + " closed the connection without answering (" + ec.message() +
           ") — check its logs; it closes connections from callers it does not "
           "allow";
  }
  if (ec == http::error::body_limit) {
    return "the answer from " + path + " is larger than 1 MiB — " + not_ours_hint(options);
  }
  if (is_http_category(ec)) {
    return "the answer from " + path + " is not valid HTTP (" + ec.message() + ") — " +
           not_ours_hint(options);
  }
  return "request to " + path + " failed: " + ec.message();
}

std::string describe_http_error(const Options& options, const tb::http::Response& response) {
  std::string message = "broker answered " + std::to_string(response.result_int());
  const json body = parse_object(response.body());
  if (auto error = string_field(body, "error")) {
    message += ": " + printable(*error);
    if (auto description = string_field(body, "error_description");
        description && !description->empty()) {
      message += ": " + printable(*description);
    }
  } else if (!response.body().empty()) {
    message += ": " + printable(response.body(), 200);
  }
  if (auto it = response.find(http::field::retry_after); it != response.end()) {
    const std::string_view value(it->value().data(), it->value().size());
    const bool delta = !value.empty() && std::all_of(value.begin(), value.end(),
                                                     [](char c) { return c >= '0' && c <= '9'; });
    if (delta) {
      message += " (retry after " + std::string(value) + " s)";
    } else if (tb::parse_http_date(value)) {
      message += " (retry after " + std::string(value) + ")";
    }
  }
  switch (response.result()) {
    case http::status::forbidden:
      message +=
          " — the broker refused this caller or identity: check which user runs tokenctl "
          "and the broker's allow-list and identity settings";
      break;
    case http::status::not_found:
    case http::status::method_not_allowed:
      message += " — " + not_ours_hint(options);
      break;
    default:
      break;
  }
  return message;
}

std::string format_duration(std::int64_t seconds) {
  if (seconds < 0) return "expired";
  const std::int64_t hours = seconds / 3600;
  const std::int64_t minutes = seconds % 3600 / 60;
  const std::int64_t rest = seconds % 60;
  std::string out;
  if (hours > 0) out += std::to_string(hours) + "h ";
  if (hours > 0 || minutes > 0) out += std::to_string(minutes) + "m ";
  out += std::to_string(rest) + "s";
  return out;
}

std::string format_utc(std::int64_t unix_seconds) {
  const auto when = static_cast<std::time_t>(unix_seconds);
  std::tm parts{};
  char text[32];
  if (gmtime_r(&when, &parts) == nullptr ||
      std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts) == 0) {
    return "unix " + std::to_string(unix_seconds);
  }
  return text;
}

std::string printable(std::string_view text, std::size_t max_size) {
  bool cut = false;
  if (text.size() > max_size) {
    std::size_t end = max_size;
    // Do not split a UTF-8 sequence: back up over continuation bytes.
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    text = text.substr(0, end);
    cut = true;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  if (cut) out += "…";
  return out;
}

}  // namespace tokenctl
