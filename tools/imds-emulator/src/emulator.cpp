#include "imds_emulator/emulator.hpp"

#include <tb/log.hpp>

#include <boost/beast/http/verb.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/parse_query.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <ctime>

namespace imds_emulator {
namespace {

namespace http = boost::beast::http;
using nlohmann::json;
using std::chrono::seconds;

constexpr std::string_view kTokenPath = "/metadata/identity/oauth2/token";
constexpr std::string_view kEntraSuffix = "/oauth2/v2.0/token";
constexpr std::string_view kAssertionType =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// "/{tenant}/oauth2/v2.0/token" -> tenant; empty for other paths.
std::string entra_tenant(std::string_view path) {
  if (!path.starts_with('/') || !path.ends_with(kEntraSuffix)) return {};
  path.remove_prefix(1);
  path.remove_suffix(kEntraSuffix.size());
  if (path.find('/') != std::string_view::npos) return {};
  return std::string(path);
}

std::string iso_time(Clock::time_point when) {
  const std::time_t t = Clock::to_time_t(when);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 32> text{};
  const auto size = std::strftime(text.data(), text.size(), "%Y-%m-%d %H:%M:%SZ", &tm);
  return {text.data(), size};
}

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

std::string unix_seconds(Clock::time_point when) {
  return std::to_string(std::chrono::floor<seconds>(when).time_since_epoch().count());
}

Reply json_reply(const json& body) {
  Reply reply;
  reply.body = body.dump();
  return reply;
}

Reply method_not_allowed(http::verb allowed) {
  Reply reply = error_reply(405, "method_not_allowed",
                            "this route only accepts " + std::string(http::to_string(allowed)));
  reply.allow = std::string(http::to_string(allowed));
  return reply;
}

}  // namespace

Reply error_reply(unsigned status, std::string_view error, std::string_view description) {
  Reply reply = json_reply({{"error", error}, {"error_description", description}});
  reply.status = status;
  return reply;
}

std::variant<TokenCall, Reply> validate_token_request(const Request& request,
                                                      std::span<const Identity> identities) {
  if (!iequals(request["Metadata"], "true")) {
    return error_reply(400, "invalid_request", "Required metadata header not specified");
  }
  auto url = boost::urls::parse_origin_form(request.target());
  if (!url) return error_reply(400, "invalid_request", "Malformed request target");
  const auto params = url->params();
  auto value_of = [&](std::string_view key) -> std::string {
    auto it = params.find(key);
    return it == params.end() ? std::string() : std::string((*it).value);
  };
  if (value_of("api-version").empty()) {
    return error_reply(400, "invalid_request", "Required query variable 'api-version' is missing");
  }
  TokenCall call;
  call.resource = value_of("resource");
  if (call.resource.empty()) {
    return error_reply(400, "invalid_request", "Required query variable 'resource' is missing");
  }
  // At most one identity selector; msi_res_id is IMDS's older spelling of mi_res_id.
  const Identity* found = identities.empty() ? nullptr : &identities.front();
  int selectors = 0;
  for (const auto& param : params) {
    std::string Identity::*field = nullptr;
    if (param.key == "client_id") field = &Identity::client_id;
    if (param.key == "object_id") field = &Identity::object_id;
    if (param.key == "mi_res_id" || param.key == "msi_res_id") field = &Identity::mi_res_id;
    if (field == nullptr) continue;
    if (++selectors > 1) {
      return error_reply(400, "invalid_request",
                         "Only one of client_id, object_id, mi_res_id or msi_res_id may be given");
    }
    auto it = std::find_if(identities.begin(), identities.end(), [&](const Identity& identity) {
      return !param.value.empty() && iequals(identity.*field, param.value);
    });
    found = it == identities.end() ? nullptr : &*it;
  }
  if (found == nullptr) return error_reply(400, "invalid_request", "Identity not found");
  call.identity = *found;
  return call;
}

Reply entra_error_reply(unsigned status, std::string_view error, int code,
                        std::string_view description) {
  const std::string trace = tb::random_base64url(12);
  Reply reply = json_reply(
      {{"error", error},
       {"error_description", "AADSTS" + std::to_string(code) + ": " + std::string(description) +
                                 "\r\nTrace ID: " + trace + "\r\nCorrelation ID: " + trace +
                                 "\r\nTimestamp: " + iso_time(Clock::now())},
       {"error_codes", json::array({code})},
       {"timestamp", iso_time(Clock::now())},
       {"trace_id", trace},
       {"correlation_id", trace},
       {"error_uri", "https://login.microsoftonline.com/error?code=" + std::to_string(code)}});
  reply.status = status;
  return reply;
}

std::variant<std::pair<TokenCall, EntraCall>, Reply> validate_entra_request(
    const Request& request, std::string_view tenant, std::span<const FederatedClient> clients) {
  auto url = boost::urls::parse_origin_form(request.target());
  if (!url || entra_tenant(url->path()) != tenant) {
    return entra_error_reply(400, "invalid_request", 90002,
                             "Tenant '" + (url ? entra_tenant(url->path()) : std::string()) +
                                 "' not found. Check to make sure you have the correct tenant ID.");
  }
  // A form body decodes '+' as a space; percent-decoding alone would keep it.
  std::string body = request.body();
  for (std::size_t at = body.find('+'); at != std::string::npos; at = body.find('+', at)) {
    body.replace(at, 1, "%20");
  }
  auto form = boost::urls::parse_query(body);
  if (!form) {
    return entra_error_reply(400, "invalid_request", 900144,
                             "The request body must be application/x-www-form-urlencoded.");
  }
  auto value_of = [&](std::string_view key) -> std::string {
    auto it = form->find(key);
    return it == form->end() || !(*it).has_value ? std::string() : (*it).value.decode();
  };
  for (const char* required : {"grant_type", "client_id", "scope"}) {
    if (value_of(required).empty()) {
      return entra_error_reply(400, "invalid_request", 900144,
                               std::string("The request body must contain the following "
                                           "parameter: '") +
                                   required + "'.");
    }
  }
  if (value_of("grant_type") != "client_credentials") {
    return entra_error_reply(
        400, "unsupported_grant_type", 70003,
        "The app requested an unsupported grant type '" + value_of("grant_type") + "'.");
  }
  const std::string scope = value_of("scope");
  constexpr std::string_view kDefault = "/.default";
  if (!std::string_view(scope).ends_with(kDefault) || scope.size() == kDefault.size()) {
    return entra_error_reply(400, "invalid_scope", 1002012,
                             "The provided value for scope " + scope +
                                 " is not valid. Client credential flows must have a scope value "
                                 "with /.default suffixed to the resource identifier.");
  }
  if (value_of("client_assertion").empty()) {
    return entra_error_reply(401, "invalid_client", 7000216,
                             "'client_assertion', 'client_secret' or 'request' is required for "
                             "the 'client_credentials' grant type.");
  }
  if (value_of("client_assertion_type") != kAssertionType) {
    return entra_error_reply(400, "invalid_request", 50027,
                             "client_assertion_type must be " + std::string(kAssertionType) + ".");
  }
  const std::string client_id = value_of("client_id");
  auto it = std::find_if(clients.begin(), clients.end(), [&](const FederatedClient& client) {
    return iequals(client.identity.client_id, client_id);
  });
  if (it == clients.end()) {
    return entra_error_reply(
        400, "unauthorized_client", 700016,
        "Application with identifier '" + client_id + "' was not found in the directory.");
  }
  TokenCall call{it->identity, scope.substr(0, scope.size() - kDefault.size())};
  return std::pair{std::move(call), EntraCall{value_of("client_assertion"), it->subject}};
}

std::optional<Reply> check_client_assertion(const EntraCall& call, EVP_PKEY* key,
                                            Clock::time_point now) {
  if (key == nullptr) {
    return entra_error_reply(401, "invalid_client", 700027,
                             "Client assertion failed signature validation (no service-account "
                             "issuer key is configured: --sa-issuer-key).");
  }
  auto decoded = tb::decode_jwt(call.assertion);
  std::optional<tb::JwtProblem> problem;
  if (auto* bad = std::get_if<tb::JwtProblem>(&decoded)) {
    problem = *bad;
  } else {
    problem = tb::check_rs256(std::get<tb::Jwt>(decoded), key);
  }
  if (problem) {
    return entra_error_reply(401, "invalid_client", 700027,
                             "Client assertion failed signature validation: " +
                                 std::string(tb::to_string(*problem)) + ".");
  }
  const auto* claims = &std::get<tb::Jwt>(decoded).claims;
  const auto aud = claims->value("aud", json());
  const bool audience_ok = (aud.is_string() && aud == kTokenExchangeAudience) ||
                           (aud.is_array() && std::find(aud.begin(), aud.end(),
                                                        json(kTokenExchangeAudience)) != aud.end());
  if (!audience_ok) {
    return entra_error_reply(401, "invalid_client", 700212,
                             "No matching federated identity record found for presented "
                             "assertion audience '" +
                                 (aud.is_string() ? aud.get<std::string>() : aud.dump()) + "'.");
  }
  const auto now_s = std::chrono::floor<seconds>(now).time_since_epoch().count();
  const auto exp = claims->value("exp", json());
  const auto nbf = claims->value("nbf", json());
  const bool expired = !exp.is_number_integer() || exp.get<std::int64_t>() <= now_s;
  const bool early = nbf.is_number_integer() && nbf.get<std::int64_t>() > now_s + 300;
  if (expired || early) {
    return entra_error_reply(
        401, "invalid_client", 700024,
        "Client assertion is not within its valid time range. Current time: " + iso_time(now) +
            ", expiry time of assertion " +
            (exp.is_number_integer() ? iso_time(Clock::from_time_t(exp.get<std::time_t>()))
                                     : std::string("(none)")) +
            ".");
  }
  const std::string sub = claims->value("sub", json("")).is_string()
                              ? claims->value("sub", std::string())
                              : std::string();
  if (sub != call.subject) {
    return entra_error_reply(401, "invalid_client", 70021,
                             "No matching federated identity record found for presented "
                             "assertion. Assertion Issuer: '" +
                                 claims->value("iss", std::string()) + "'. Assertion Subject: '" +
                                 sub + "'. Assertion Audience: '" +
                                 std::string(kTokenExchangeAudience) + "'.");
  }
  return std::nullopt;
}

Reply app_service_error_reply(unsigned status, std::string_view message) {
  Reply reply = json_reply(
      {{"statusCode", status}, {"message", message}, {"correlationId", tb::random_base64url(12)}});
  reply.status = status;
  return reply;
}

std::variant<TokenCall, Reply> validate_app_service_request(const Request& request,
                                                            std::string_view identity_header,
                                                            std::span<const Identity> identities) {
  const auto given = request["X-IDENTITY-HEADER"];
  if (given.empty()) {
    return app_service_error_reply(400, "Required header X-IDENTITY-HEADER not specified");
  }
  if (identity_header.empty() || given != identity_header) {
    return app_service_error_reply(401, "Unauthorized: X-IDENTITY-HEADER does not match");
  }
  auto url = boost::urls::parse_origin_form(request.target());
  if (!url) return app_service_error_reply(400, "Malformed request target");
  const auto params = url->params();
  auto value_of = [&](std::string_view key) -> std::string {
    auto it = params.find(key);
    return it == params.end() ? std::string() : std::string((*it).value);
  };
  if (value_of("api-version") != kAppServiceApiVersion) {
    return app_service_error_reply(400, "The HTTP resource does not support the API version '" +
                                            value_of("api-version") + "'; use " +
                                            std::string(kAppServiceApiVersion));
  }
  TokenCall call;
  call.resource = value_of("resource");
  if (call.resource.empty()) {
    return app_service_error_reply(400, "Required query variable 'resource' is missing");
  }
  // Kept for GET /_emulator/calls only: the clipped value, as a test needs it.
  call.token_sha256_to_refresh = value_of("token_sha256_to_refresh").substr(0, 64);
  // App Service 2019-08-01 names a user-assigned identity by client_id, principal_id (the
  // object id) or mi_res_id; MSAL (and so @azure/identity) sends object_id instead of
  // principal_id, which App Service accepts too.
  const Identity* found = identities.empty() ? nullptr : &identities.front();
  int selectors = 0;
  for (const auto& param : params) {
    std::string Identity::*field = nullptr;
    if (param.key == "client_id") field = &Identity::client_id;
    if (param.key == "principal_id" || param.key == "object_id") field = &Identity::object_id;
    if (param.key == "mi_res_id") field = &Identity::mi_res_id;
    if (field == nullptr) continue;
    if (++selectors > 1) {
      return app_service_error_reply(400,
                                     "Only one of client_id, principal_id (object_id) or "
                                     "mi_res_id may be given");
    }
    auto it = std::find_if(identities.begin(), identities.end(), [&](const Identity& identity) {
      return !param.value.empty() && iequals(identity.*field, param.value);
    });
    found = it == identities.end() ? nullptr : &*it;
  }
  if (found == nullptr) {
    return app_service_error_reply(400,
                                   "No managed identity found for the specified ClientId/"
                                   "PrincipalId/ResourceId");
  }
  call.identity = *found;
  return call;
}

Identity default_identity() {
  return {"11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222",
          "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/dev/providers/"
          "Microsoft.ManagedIdentity/userAssignedIdentities/token-broker-dev"};
}

Emulator::Emulator(Config config, Signer signer)
    : config_(std::move(config)), signer_(std::move(signer)) {
  if (config_.identities.empty()) config_.identities.push_back(default_identity());
  if (config_.issuer.empty()) config_.issuer = "https://sts.windows.net/" + config_.tenant + "/";
}

std::variant<Reply, TokenJob> Emulator::dispatch(const Request& request, SteadyTime now) {
  auto url = boost::urls::parse_origin_form(request.target());
  if (!url) return error_reply(400, "invalid_request", "Malformed request target");
  const std::string path = url->path();
  const http::verb method = request.method();

  const bool token_route = path == kTokenPath || !entra_tenant(path).empty() ||
                           (path == kAppServicePath && !config_.identity_header.empty());
  if (token_route) {
    if (auto refused = throttle(now)) {
      ++token_requests_;
      return count(std::move(*refused));
    }
  }
  if (path == kTokenPath) {
    ++token_requests_;
    auto checked = method == http::verb::get
                       ? validate_token_request(request, config_.identities)
                       : std::variant<TokenCall, Reply>(method_not_allowed(http::verb::get));
    if (auto* reply = std::get_if<Reply>(&checked)) {
      reply->log = {{"error", json::parse(reply->body).at("error_description")}};
      return count(std::move(*reply));
    }
    TokenJob job{std::move(std::get<TokenCall>(checked)), faults_.next()};
    ++by_resource_[job.call.resource];
    job.call.client_request_id = std::string(request["x-ms-client-request-id"].substr(0, 64));
    return job;
  }
  if (!entra_tenant(path).empty()) {
    ++token_requests_;
    if (method != http::verb::post) return count(method_not_allowed(http::verb::post));
    auto checked = validate_entra_request(request, config_.tenant, config_.federated_clients);
    if (auto* reply = std::get_if<Reply>(&checked)) {
      reply->log = {{"route", kEntraSuffix},
                    {"error", json::parse(reply->body).at("error_description")}};
      return count(std::move(*reply));
    }
    auto& [call, entra] = std::get<std::pair<TokenCall, EntraCall>>(checked);
    TokenJob job{std::move(call), faults_.next(), std::move(entra)};
    ++by_resource_[job.call.resource];
    job.call.client_request_id = std::string(request["x-ms-client-request-id"].substr(0, 64));
    return job;
  }
  if (path == kAppServicePath && !config_.identity_header.empty()) {
    ++token_requests_;
    auto checked =
        method == http::verb::get
            ? validate_app_service_request(request, config_.identity_header, config_.identities)
            : std::variant<TokenCall, Reply>(method_not_allowed(http::verb::get));
    if (auto* reply = std::get_if<Reply>(&checked)) {
      const json body = json::parse(reply->body);
      reply->log = {
          {"route", kAppServicePath},
          {"error", body.contains("message") ? body.at("message") : body.at("error_description")}};
      return count(std::move(*reply));
    }
    TokenJob job{std::move(std::get<TokenCall>(checked)), faults_.next()};
    job.app_service = true;
    ++by_resource_[job.call.resource];
    job.call.client_request_id = std::string(request["x-ms-client-request-id"].substr(0, 64));
    return job;
  }
  if (path == "/_emulator/jwks" || path == "/.well-known/jwks.json") {
    return method == http::verb::get ? json_reply(signer_.jwks())
                                     : method_not_allowed(http::verb::get);
  }
  if (path == "/_emulator/stats") {
    return method == http::verb::get ? json_reply(stats()) : method_not_allowed(http::verb::get);
  }
  if (path == "/_emulator/calls") {
    return method == http::verb::get ? json_reply(calls()) : method_not_allowed(http::verb::get);
  }
  if (path == "/_emulator/faults") {
    if (method != http::verb::post) return method_not_allowed(http::verb::post);
    std::string error;
    auto script = parse_fault_script(request.body(), error);
    if (!script) return error_reply(400, "invalid_fault_script", error);
    faults_.replace(std::move(*script));
    return json_reply({{"ok", true}});
  }
  if (path == "/_emulator/reset") {
    if (method != http::verb::post) return method_not_allowed(http::verb::post);
    faults_.clear();
    token_requests_ = tokens_issued_ = 0;
    responses_.clear();
    by_resource_.clear();
    calls_.clear();
    max_in_flight_ = in_flight_;
    throttled_ = 0;
    bucket_at_.reset();
    return json_reply({{"ok", true}});
  }
  return error_reply(404, "not_found", "no route for " + path);
}

Reply Emulator::complete_entra(const TokenJob& job, const EntraCall& entra, Clock::time_point now) {
  const FaultStep& step = job.step;
  if (auto refused = check_client_assertion(entra, config_.sa_issuer_key.get(), now)) {
    refused->log = {{"route", kEntraSuffix},
                    {"client_id", job.call.identity.client_id},
                    {"assertion_sha256", tb::log::fingerprint(entra.assertion)},
                    {"error", json::parse(refused->body).at("error_description")}};
    return count(std::move(*refused));
  }
  Reply reply;
  reply.status = step.status;
  reply.retry_after = step.retry_after;
  reply.action = step.action;
  reply.log = {{"route", kEntraSuffix},
               {"resource", job.call.resource},
               {"client_id", job.call.identity.client_id},
               {"assertion_sha256", tb::log::fingerprint(entra.assertion)}};
  if (step.action == Action::drop || step.action == Action::hang) return reply;
  if (step.action == Action::respond && step.status != 200) {
    Reply fault = entra_error_reply(step.status, "temporarily_unavailable", 50196,
                                    "emulated HTTP " + std::to_string(step.status));
    reply.body = std::move(fault.body);
    return count(std::move(reply));
  }
  const std::string key = "entra\n" + job.call.identity.client_id + '\n' + job.call.resource;
  if (step.action == Action::same_token) {
    if (auto it = last_response_.find(key); it != last_response_.end()) {
      reply.body = it->second;
      return count(std::move(reply));
    }
  }
  const auto issued = std::chrono::floor<seconds>(now) - seconds(1);
  const auto expires_on = issued + step.lifetime.value_or(config_.lifetime);
  const std::string token = mint(job.call, issued, expires_on);
  const auto expires_in = (expires_on - issued - seconds(1)).count();
  json body = {{"token_type", "Bearer"},
               {"expires_in", expires_in},
               {"ext_expires_in", expires_in},
               {"access_token", token}};
  if (step.action == Action::negative_expiry) body["expires_in"] = body["ext_expires_in"] = -5;
  return token_reply(std::move(reply), body, step, token, key);
}

Reply Emulator::complete_app_service(const TokenJob& job, Clock::time_point now) {
  const FaultStep& step = job.step;
  Reply reply;
  reply.status = step.status;
  reply.retry_after = step.retry_after;
  reply.action = step.action;
  reply.log = {{"route", kAppServicePath},
               {"resource", job.call.resource},
               {"client_id", job.call.identity.client_id}};
  if (step.action == Action::drop || step.action == Action::hang) return reply;
  if (step.action == Action::respond && step.status != 200) {
    reply.body =
        app_service_error_reply(step.status, "emulated HTTP " + std::to_string(step.status)).body;
    return count(std::move(reply));
  }
  const std::string key = "app-service\n" + job.call.identity.client_id + '\n' + job.call.resource;
  if (step.action == Action::same_token) {
    if (auto it = last_response_.find(key); it != last_response_.end()) {
      reply.body = it->second;
      return count(std::move(reply));
    }
  }
  const auto issued = std::chrono::floor<seconds>(now) - seconds(1);
  const auto expires_on = issued + step.lifetime.value_or(config_.lifetime);
  const std::string token = mint(job.call, issued, expires_on);
  // App Service 2019-08-01: five fields, expires_on a string of unix seconds, no expires_in.
  json body = {{"access_token", token},
               {"expires_on", unix_seconds(expires_on)},
               {"resource", job.call.resource},
               {"token_type", "Bearer"},
               {"client_id", job.call.identity.client_id}};
  if (step.action == Action::negative_expiry) body["expires_on"] = unix_seconds(now - seconds(5));
  return token_reply(std::move(reply), body, step, token, key);
}

Reply Emulator::complete(const TokenJob& job, Clock::time_point now) {
  if (job.entra) return complete_entra(job, *job.entra, now);
  if (job.app_service) return complete_app_service(job, now);
  const FaultStep& step = job.step;
  Reply reply;
  reply.status = step.status;
  reply.retry_after = step.retry_after;
  reply.action = step.action;
  reply.log = {{"resource", job.call.resource}, {"client_id", job.call.identity.client_id}};
  if (step.action == Action::drop || step.action == Action::hang) return reply;
  if (step.action == Action::respond && step.status != 200) {
    reply.body = json{{"error", "emulated_fault"},
                      {"error_description", "emulated HTTP " + std::to_string(step.status)}}
                     .dump();
    return count(std::move(reply));
  }

  const std::string key = job.call.identity.client_id + '\n' + job.call.resource;
  if (step.action == Action::same_token) {
    if (auto it = last_response_.find(key); it != last_response_.end()) {
      reply.body = it->second;
      reply.log["token_sha256"] =
          tb::log::fingerprint(json::parse(it->second).at("access_token").get<std::string>());
      return count(std::move(reply));
    }
  }
  // Like IMDS, the token looks issued a second ago: expires_in is lifetime - 1.
  const auto issued = std::chrono::floor<seconds>(now) - seconds(1);
  const auto expires_on = issued + step.lifetime.value_or(config_.lifetime);
  const std::string token = mint(job.call, issued, expires_on);
  const std::string expires_in = std::to_string((expires_on - issued - seconds(1)).count());
  json body = {{"access_token", token},         {"client_id", job.call.identity.client_id},
               {"expires_in", expires_in},      {"expires_on", unix_seconds(expires_on)},
               {"ext_expires_in", expires_in},  {"not_before", unix_seconds(issued)},
               {"resource", job.call.resource}, {"token_type", "Bearer"}};
  if (step.action == Action::negative_expiry) {
    body["expires_in"] = body["ext_expires_in"] = "-5";
    body["expires_on"] = unix_seconds(now - seconds(5));
  }
  return token_reply(std::move(reply), body, step, token, key);
}

Reply Emulator::token_reply(Reply reply, const json& body, const FaultStep& step,
                            const std::string& token, const std::string& key) {
  json shaped = body;
  switch (step.action) {
    case Action::missing_token:
      shaped.erase("access_token");
      break;
    case Action::malformed:
    case Action::reset: {
      const std::string full = shaped.dump();
      reply.body = full.substr(0, full.size() / 2);
      return step.action == Action::reset ? reply : count(std::move(reply));
    }
    default:
      break;
  }
  reply.body = shaped.dump();
  if (shaped.contains("access_token")) {
    ++tokens_issued_;
    reply.log["token_sha256"] = tb::log::fingerprint(token);
    if (step.action != Action::negative_expiry) last_response_[key] = reply.body;
  }
  return count(std::move(reply));
}

std::string Emulator::mint(const TokenCall& call, Clock::time_point issued,
                           Clock::time_point expires_on) const {
  const auto epoch = [](Clock::time_point t) {
    return std::chrono::floor<seconds>(t).time_since_epoch().count();
  };
  return signer_.sign({{"aud", call.resource},
                       {"iss", config_.issuer},
                       {"iat", epoch(issued)},
                       {"nbf", epoch(issued)},
                       {"exp", epoch(expires_on)},
                       {"oid", call.identity.object_id},
                       {"sub", call.identity.object_id},
                       {"appid", call.identity.client_id},
                       {"tid", config_.tenant},
                       {"xms_mirid", call.identity.mi_res_id},
                       {"idtyp", "app"},
                       {"ver", "1.0"},
                       {"uti", tb::random_base64url(16)}});
}

void Emulator::begin_in_flight() { max_in_flight_ = std::max(max_in_flight_, ++in_flight_); }
void Emulator::end_in_flight() { --in_flight_; }

std::optional<Reply> Emulator::throttle(SteadyTime now) {
  if (config_.rate_limit <= 0 && config_.max_concurrent == 0) return std::nullopt;
  std::chrono::duration<double> wait{0};
  if (config_.rate_limit > 0) {
    const double burst = std::max(1.0, config_.rate_limit);
    if (!bucket_at_) {
      bucket_ = burst;
    } else {
      const std::chrono::duration<double> passed = now - *bucket_at_;
      bucket_ = std::min(burst, bucket_ + std::max(0.0, passed.count()) * config_.rate_limit);
    }
    bucket_at_ = now;
    if (bucket_ < 1) wait = std::chrono::duration<double>((1 - bucket_) / config_.rate_limit);
  }
  const bool busy = config_.max_concurrent != 0 && in_flight_ >= config_.max_concurrent;
  if (wait.count() <= 0 && !busy) {
    if (config_.rate_limit > 0) bucket_ -= 1;
    return std::nullopt;
  }
  ++throttled_;
  Reply reply = error_reply(429, "too_many_requests",
                            busy ? "Too many concurrent requests for this VM's managed identity "
                                   "endpoint; retry after the Retry-After interval"
                                 : "Too many requests for this VM's managed identity endpoint; "
                                   "retry after the Retry-After interval");
  // Whole seconds, at least 1, as IMDS sends it.
  reply.retry_after =
      std::to_string(std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(wait.count()))));
  reply.log = {{"error", busy ? "throttled: too many in flight" : "throttled: over the rate"}};
  return reply;
}

Reply Emulator::count(Reply reply) {
  ++responses_[std::to_string(reply.status)];
  return reply;
}

void Emulator::record_call(const TokenJob& job, Clock::time_point arrived) {
  if (calls_.size() >= kMaxCalls) calls_.pop_front();
  calls_.push_back(
      {std::chrono::duration_cast<std::chrono::milliseconds>(arrived.time_since_epoch()).count(),
       job.call.resource, job.call.identity.client_id, job.step.status, job.step.action,
       job.call.token_sha256_to_refresh, job.call.client_request_id});
}

json Emulator::calls() const {
  json list = json::array();
  for (const auto& call : calls_) {
    json item = {{"at_ms", call.at_ms},
                 {"resource", call.resource},
                 {"client_id", call.client_id},
                 {"status", call.status},
                 {"action", std::string(to_string(call.action))}};
    if (!call.token_sha256_to_refresh.empty()) {
      item["token_sha256_to_refresh"] = call.token_sha256_to_refresh;
    }
    if (!call.client_request_id.empty()) item["client_request_id"] = call.client_request_id;
    list.push_back(std::move(item));
  }
  return {{"calls", std::move(list)}};
}

json Emulator::stats() const {
  return {{"token_requests", token_requests_},
          {"tokens_issued", tokens_issued_},
          {"responses", json(responses_)},
          {"by_resource", json(by_resource_)},
          {"in_flight", in_flight_},
          {"max_in_flight", max_in_flight_},
          {"throttled", throttled_}};
}

}  // namespace imds_emulator
