#include "broker/app_service.hpp"
#include "tb/asio_frame_warning.hpp"  // gcc 12 false positive, see there

#include "broker/imds.hpp"

#include "tb/crypto.hpp"
#include "tb/http_client.hpp"

#include <boost/beast/core/error.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <stdexcept>

namespace broker {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxUpstreamBody = std::size_t{64} * 1024;
constexpr std::string_view kApiVersion = "2019-08-01";

std::string encode(std::string_view value) {
  return boost::urls::encode(value, boost::urls::unreserved_chars);
}

/// A string member of `body` under any of `names` (App Service capitalises inconsistently).
std::string string_member(const json& body, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (auto it = body.find(name); it != body.end() && it->is_string())
      return it->get<std::string>();
  }
  return {};
}

}  // namespace

std::string app_service_query(const TokenKey& key) {
  std::string query = "api-version=" + std::string(kApiVersion);
  query += "&resource=" + encode(key.resource);
  switch (key.identity.kind) {
    case Identity::Kind::none:
      break;
    case Identity::Kind::client_id:
      query += "&client_id=" + encode(key.identity.value);
      break;
    case Identity::Kind::object_id:
      // App Service calls the object id of a user-assigned identity its principal id.
      query += "&principal_id=" + encode(key.identity.value);
      break;
    case Identity::Kind::mi_res_id:
      query += "&mi_res_id=" + encode(key.identity.value);
      break;
  }
  return query;
}

FetchError app_service_error(unsigned status, std::string_view body, std::string_view retry_after,
                             SystemTime now) {
  FetchError error = upstream_error(status, body, retry_after, now);
  json parsed = json::parse(body, nullptr, false);
  if (parsed.is_object() && error.description.empty()) {
    error.description = string_member(parsed, {"message", "Message"});
    if (error.description.size() > 300) error.description.resize(300);
  }
  if (error.description.empty()) {
    error.description = "the App Service identity endpoint answered HTTP " + std::to_string(status);
  }
  if (status == 401) {
    error.error = "identity_header_rejected";
    error.description +=
        " (the endpoint refused X-IDENTITY-HEADER: the broker must run with the current "
        "IDENTITY_HEADER; restart it after the platform rotates the secret, or set "
        "IDENTITY_HEADER_FILE)";
  } else if (status == 400) {
    error.description +=
        " (check that the requested identity is assigned to this app and that IDENTITY_ENDPOINT "
        "speaks api-version 2019-08-01)";
  }
  return error;
}

bool is_header_value(std::string_view value) {
  return std::all_of(value.begin(), value.end(),
                     [](char c) { return c == ' ' || (c > 0x20 && c < 0x7f); });
}

AppServiceSource::AppServiceSource(AppServiceSettings settings, const Clock& clock)
    : settings_(std::move(settings)), clock_(clock) {
  const std::string& endpoint = settings_.endpoint;
  auto parsed = boost::urls::parse_absolute_uri(endpoint);
  if (!parsed || parsed->host().empty()) {
    throw std::invalid_argument("IDENTITY_ENDPOINT " + endpoint +
                                " is not an absolute URL such as "
                                "http://127.0.0.1:41741/msi/token");
  }
  const bool https = parsed->scheme() == "https";
  if (!https && parsed->scheme() != "http") {
    throw std::invalid_argument("IDENTITY_ENDPOINT " + endpoint + " must use http:// or https://");
  }
  if (parsed->has_fragment() || parsed->has_userinfo()) {
    throw std::invalid_argument("IDENTITY_ENDPOINT " + endpoint +
                                " must not have a fragment or user info");
  }
  host_ = parsed->host();
  if (parsed->host_type() == boost::urls::host_type::ipv6) {
    host_ = std::string(parsed->host_address());
  }
  port_ = parsed->has_port() ? std::string(parsed->port()) : (https ? "443" : "80");
  host_header_ = std::string(parsed->encoded_host_and_port());
  path_ = parsed->encoded_path().empty() ? std::string("/") : std::string(parsed->encoded_path());
  path_ += parsed->has_query() ? "?" + std::string(parsed->encoded_query()) + "&" : "?";
  if (https) {
    try {
      tls_ = tb::http::make_tls_client_context(settings_.ca_file);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(settings_.ca_file.empty() ? "TLS: " : "--ca-file: ") +
                               e.what());
    }
  }
}

boost::asio::awaitable<FetchResult> AppServiceSource::fetch(const TokenKey& key,
                                                            std::chrono::milliseconds timeout) {
  // A named local, not a temporary across the co_await (GCC 12).
  std::string target = path_ + app_service_query(key);
  co_return co_await call(std::move(target), timeout);
}

boost::asio::awaitable<FetchResult> AppServiceSource::fetch_replacing(
    const TokenKey& key, std::chrono::milliseconds timeout,
    const std::string& token_sha256_to_refresh) {
  std::string target = path_ + app_service_query(key);
  // Lower-case hex needs no encoding.
  if (!token_sha256_to_refresh.empty())
    target += "&token_sha256_to_refresh=" + token_sha256_to_refresh;
  co_return co_await call(std::move(target), timeout);
}

boost::asio::awaitable<FetchResult> AppServiceSource::call(std::string target,
                                                           std::chrono::milliseconds timeout) {
  std::string header = settings_.identity_header;
  if (!settings_.identity_header_file.empty()) {
    // Re-read for every call, so that a rotated secret needs no restart.
    std::string problem;
    auto from_file =
        read_secret_file(settings_.identity_header_file, "IDENTITY_HEADER_FILE", problem);
    if (!from_file) {
      co_return FetchError{0, "identity_header_unreadable", std::move(problem), std::nullopt};
    }
    header = std::move(*from_file);
  }
  if (!is_header_value(header)) {
    co_return FetchError{0, "identity_header_invalid",
                         "the identity header holds characters an HTTP header cannot carry; "
                         "check IDENTITY_HEADER / IDENTITY_HEADER_FILE",
                         std::nullopt};
  }

  const std::string request_id = tb::random_uuid();
  tb::http::Request request;
  request.target = std::move(target);
  request.headers.emplace_back(kClientRequestIdHeader, request_id);
  request.host = host_header_;
  request.headers.emplace_back("X-IDENTITY-HEADER", std::move(header));
  request.headers.emplace_back("Accept", "application/json");
  // Named arguments only: GCC 12 mishandles class temporaries that live across a co_await.
  const tb::http::Limits limits{timeout, kMaxUpstreamBody};
  boost::system::result<tb::http::Response> response;
  if (tls_) {
    auto tls = tls_;
    response = co_await tb::http::async_request_https(std::move(tls), host_, port_,
                                                      std::move(request), limits);
  } else {
    response = co_await tb::http::async_request_tcp(host_, port_, std::move(request), limits);
  }
  if (!response) {
    co_return with_request_id(
        transport_error(response.error(), settings_.endpoint, timeout, host_, settings_.ca_file),
        request_id);
  }
  const auto status = response->result_int();
  if (status != 200) {
    co_return with_request_id(
        app_service_error(status, response->body(),
                          response->base()[boost::beast::http::field::retry_after],
                          clock_.system_now()),
        request_id);
  }
  co_return with_request_id(parse_token_response(response->body(), clock_.system_now()),
                            request_id);
}

}  // namespace broker
