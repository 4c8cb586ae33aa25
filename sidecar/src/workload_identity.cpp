#include "broker/workload_identity.hpp"
#include "tb/asio_frame_warning.hpp"  // gcc 12 false positive, see there

#include "broker/imds.hpp"
#include "broker/retry.hpp"

#include "tb/crypto.hpp"
#include "tb/http_client.hpp"
#include "tb/log.hpp"

#include <boost/beast/core/error.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace broker {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxUpstreamBody = std::size_t{64} * 1024;
constexpr std::size_t kMaxSecretFile = std::size_t{64} * 1024;
constexpr std::string_view kAssertionType =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

std::string form_encode(std::string_view value) {
  return boost::urls::encode(value, boost::urls::unreserved_chars);
}

FetchError refused(std::string description) {
  return FetchError{400, "unsupported_identity", std::move(description), std::nullopt};
}

/// What to do about the AADSTS codes a misconfigured pod typically meets.
std::string_view hint_for(std::int64_t code) {
  switch (code) {
    case 700024:
      return "the service-account token in AZURE_FEDERATED_TOKEN_FILE has expired or is not yet "
             "valid; kubelet rotates it, check that the projected volume is mounted and current";
    case 70021:
      return "no federated identity credential matches the token's issuer, subject and audience; "
             "check the credential on the managed identity or app registration";
    case 700016:
      return "the client id is not an application in this tenant; check AZURE_CLIENT_ID and "
             "AZURE_TENANT_ID";
    case 90002:
      return "the tenant does not exist; check AZURE_TENANT_ID";
    case 700027:
    case 7000215:
      return "the assertion's signature does not verify; check the cluster's OIDC issuer";
    default:
      return {};
  }
}

}  // namespace

std::variant<std::string, FetchError> workload_identity_client_id(const TokenKey& key,
                                                                  const std::string& fallback) {
  switch (key.identity.kind) {
    case Identity::Kind::client_id:
      return key.identity.value;
    case Identity::Kind::object_id:
      return refused(
          "workload identity selects an identity by client_id only; object_id/principal_id "
          "cannot be used with --source workload-identity");
    case Identity::Kind::mi_res_id:
      return refused(
          "workload identity selects an identity by client_id only; mi_res_id/msi_res_id "
          "cannot be used with --source workload-identity");
    case Identity::Kind::none:
      break;
  }
  if (fallback.empty()) {
    return refused("no client_id in the request and AZURE_CLIENT_ID is not set");
  }
  return fallback;
}

std::string scope_for(const std::string& resource) {
  std::string scope = resource;
  // Entra accepts "https://database.windows.net//.default" too, but the v1 resource form with a
  // trailing slash and the bare form both map to one clean scope.
  while (!scope.empty() && scope.back() == '/') scope.pop_back();
  return scope + "/.default";
}

std::string workload_identity_form(const std::string& client_id, const std::string& resource,
                                   const std::string& assertion) {
  std::string body = "grant_type=client_credentials";
  body += "&client_id=" + form_encode(client_id);
  body += "&scope=" + form_encode(scope_for(resource));
  body += "&client_assertion_type=" + form_encode(kAssertionType);
  body += "&client_assertion=" + form_encode(assertion);
  return body;
}

FetchError entra_error(unsigned status, std::string_view body, std::string_view retry_after,
                       SystemTime now) {
  FetchError error = upstream_error(status, {}, retry_after, now);
  json parsed = json::parse(body, nullptr, false);
  if (!parsed.is_object()) {
    error.description = "the token endpoint answered HTTP " + std::to_string(status) +
                        " without an Entra error body";
    return error;
  }
  if (auto it = parsed.find("error"); it != parsed.end() && it->is_string()) {
    error.error = it->get<std::string>();
  }
  std::string description;
  if (auto it = parsed.find("error_description"); it != parsed.end() && it->is_string()) {
    description = it->get<std::string>();
    // Entra appends "\r\nTrace ID: …\r\nCorrelation ID: …\r\nTimestamp: …".
    if (auto end = description.find_first_of("\r\n"); end != std::string::npos) {
      description.resize(end);
    }
  }
  std::int64_t code = 0;
  if (auto it = parsed.find("error_codes");
      it != parsed.end() && it->is_array() && !it->empty() && (*it)[0].is_number_integer()) {
    code = (*it)[0].get<std::int64_t>();
  }
  if (description.size() > 300) description.resize(300);
  if (description.empty() && code != 0) description = "AADSTS" + std::to_string(code);
  if (auto hint = hint_for(code); !hint.empty()) {
    description +=
        (description.empty() ? "" : " (") + std::string(hint) + (description.empty() ? "" : ")");
  }
  error.description = std::move(description);
  return error;
}

std::optional<std::string> read_secret_file(const std::string& path, std::string_view what,
                                            std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + std::string(what) + " " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::string content(kMaxSecretFile + 1, '\0');
  in.read(content.data(), static_cast<std::streamsize>(content.size()));
  content.resize(static_cast<std::size_t>(in.gcount()));
  if (content.size() > kMaxSecretFile) {
    error = std::string(what) + " " + path + " is larger than 64 KiB: not a secret";
    return std::nullopt;
  }
  const auto first = content.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) {
    error = std::string(what) + " " + path + " is empty";
    return std::nullopt;
  }
  const auto last = content.find_last_not_of(" \t\r\n");
  return content.substr(first, last - first + 1);
}

std::optional<std::string> read_federated_token(const std::string& path, std::string& error) {
  auto token = read_secret_file(path, "AZURE_FEDERATED_TOKEN_FILE", error);
  if (!token && error.starts_with("cannot read")) {
    error += "; is the projected service-account token volume mounted?";
  }
  return token;
}

WorkloadIdentitySource::WorkloadIdentitySource(WorkloadIdentitySettings settings,
                                               const Clock& clock)
    : settings_(std::move(settings)), clock_(clock) {
  auto parsed = boost::urls::parse_absolute_uri(settings_.authority_host);
  if (!parsed || parsed->host().empty()) {
    throw std::invalid_argument("AZURE_AUTHORITY_HOST " + settings_.authority_host +
                                " is not an absolute URL such as "
                                "https://login.microsoftonline.com/");
  }
  if (parsed->scheme() != "https") {
    throw std::invalid_argument("AZURE_AUTHORITY_HOST " + settings_.authority_host +
                                " must use https://: the client assertion is a credential");
  }
  if (parsed->has_query() || parsed->has_fragment() || parsed->has_userinfo()) {
    throw std::invalid_argument("AZURE_AUTHORITY_HOST " + settings_.authority_host +
                                " must not have a query, fragment or user info");
  }
  const std::string tenant_path = form_encode(settings_.tenant_id) + "/oauth2/v2.0/token";
  std::string base = parsed->path();
  if (!settings_.token_proxy.empty()) {
    // Identity bindings: the same exchange, through the cluster's token proxy.
    auto proxy = boost::urls::parse_absolute_uri(settings_.token_proxy);
    if (!proxy || proxy->host().empty() || proxy->scheme() != "https") {
      throw std::invalid_argument("AZURE_KUBERNETES_TOKEN_PROXY " + settings_.token_proxy +
                                  " must be an https:// URL");
    }
    if (proxy->has_query() || proxy->has_fragment() || proxy->has_userinfo()) {
      throw std::invalid_argument("AZURE_KUBERNETES_TOKEN_PROXY " + settings_.token_proxy +
                                  " must not have a query, fragment or user info");
    }
    parsed = proxy;
    base = proxy->path();
  }
  host_ = parsed->host();
  if (parsed->host_type() == boost::urls::host_type::ipv6) {
    host_ = std::string(parsed->host_address());
  }
  port_ = parsed->has_port() ? std::string(parsed->port()) : "443";
  if (base.empty() || base.back() != '/') base += '/';
  target_ = base + tenant_path;
  token_url_ = "https://" + std::string(parsed->encoded_authority()) + target_;
  server_name_ = settings_.sni_name.empty() ? host_ : settings_.sni_name;
  if (!settings_.proxy_ca_data.empty()) {
    try {
      tls_ = tb::http::make_tls_client_context_from_pem(settings_.proxy_ca_data);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("AZURE_KUBERNETES_CA_DATA: ") + e.what());
    }
    return;
  }
  if (!settings_.proxy_ca_file.empty()) {
    std::string problem;
    if (!tls_for_call(problem)) throw std::runtime_error(problem);
    return;
  }
  const std::string& ca_file = settings_.token_proxy.empty() ? settings_.ca_file : std::string();
  try {
    tls_ = tb::http::make_tls_client_context(ca_file);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(ca_file.empty() ? "TLS: " : "--ca-file: ") + e.what());
  }
}

std::shared_ptr<boost::asio::ssl::context> WorkloadIdentitySource::tls_for_call(
    std::string& problem) {
  if (settings_.proxy_ca_file.empty()) return tls_;
  std::ifstream in(settings_.proxy_ca_file, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  if (!in.good() && !in.eof()) {
    problem = "AZURE_KUBERNETES_CA_FILE " + settings_.proxy_ca_file + " cannot be read";
    return nullptr;
  }
  std::string pem = content.str();
  if (pem.empty()) {
    // The file is being rotated: keep the CA read last, if any.
    if (!tls_) problem = "AZURE_KUBERNETES_CA_FILE " + settings_.proxy_ca_file + " is empty";
    return tls_;
  }
  if (pem != tls_ca_pem_ || !tls_) {
    try {
      tls_ = tb::http::make_tls_client_context_from_pem(pem);
    } catch (const std::exception& e) {
      problem = "AZURE_KUBERNETES_CA_FILE " + settings_.proxy_ca_file + ": " + e.what();
      return nullptr;
    }
    tls_ca_pem_ = std::move(pem);
  }
  return tls_;
}

boost::asio::awaitable<FetchResult> WorkloadIdentitySource::fetch(
    const TokenKey& key, std::chrono::milliseconds timeout) {
  auto client_id = workload_identity_client_id(key, settings_.client_id);
  if (auto* error = std::get_if<FetchError>(&client_id)) co_return std::move(*error);
  // Re-read for every exchange: kubelet rotates the file and a stale token gives AADSTS700024.
  std::string problem;
  auto assertion = read_federated_token(settings_.federated_token_file, problem);
  if (!assertion) {
    co_return FetchError{0, "federated_token_unreadable", std::move(problem), std::nullopt};
  }
  tb::log::debug("token exchange", {{"url", token_url_},
                                    {"client_id", std::get<std::string>(client_id)},
                                    {"resource", key.resource},
                                    {"assertion_sha256", tb::log::fingerprint(*assertion)}});

  const std::string request_id = tb::random_uuid();
  tb::http::Request request;
  request.method = boost::beast::http::verb::post;
  request.target = target_;
  request.headers.emplace_back(kClientRequestIdHeader, request_id);
  request.host = port_ == "443" ? host_ : host_ + ":" + port_;
  request.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  request.headers.emplace_back("Accept", "application/json");
  request.body = workload_identity_form(std::get<std::string>(client_id), key.resource, *assertion);
  // Named arguments only: GCC 12 mishandles class temporaries that live across a co_await.
  const tb::http::Limits limits{timeout, kMaxUpstreamBody};
  std::string tls_problem;
  auto tls = tls_for_call(tls_problem);
  if (!tls) {
    co_return with_request_id(
        FetchError{0, "proxy_ca_unreadable", std::move(tls_problem), std::nullopt}, request_id);
  }
  auto response = co_await tb::http::async_request_https(std::move(tls), host_, port_,
                                                         std::move(request), limits, server_name_);
  if (!response) {
    co_return with_request_id(
        transport_error(
            response.error(), token_url_, timeout, server_name_,
            settings_.token_proxy.empty() ? settings_.ca_file : settings_.proxy_ca_file),
        request_id);
  }
  const auto status = response->result_int();
  if (status != 200) {
    co_return with_request_id(
        entra_error(status, response->body(),
                    response->base()[boost::beast::http::field::retry_after], clock_.system_now()),
        request_id);
  }
  co_return with_request_id(parse_token_response(response->body(), clock_.system_now()),
                            request_id);
}

}  // namespace broker
