#include "imds_emulator/emulator.hpp"

#include <tb/log.hpp>

#include <boost/beast/http/verb.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <array>

namespace imds_emulator {
namespace {

namespace http = boost::beast::http;
using nlohmann::json;
using std::chrono::seconds;

constexpr std::string_view kTokenPath = "/metadata/identity/oauth2/token";

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

std::variant<Reply, TokenJob> Emulator::dispatch(const Request& request) {
  auto url = boost::urls::parse_origin_form(request.target());
  if (!url) return error_reply(400, "invalid_request", "Malformed request target");
  const std::string path = url->path();
  const http::verb method = request.method();

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
    return job;
  }
  if (path == "/_emulator/jwks" || path == "/.well-known/jwks.json") {
    return method == http::verb::get ? json_reply(signer_.jwks())
                                     : method_not_allowed(http::verb::get);
  }
  if (path == "/_emulator/stats") {
    return method == http::verb::get ? json_reply(stats()) : method_not_allowed(http::verb::get);
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
    max_in_flight_ = in_flight_;
    return json_reply({{"ok", true}});
  }
  return error_reply(404, "not_found", "no route for " + path);
}

Reply Emulator::complete(const TokenJob& job, Clock::time_point now) {
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
  switch (step.action) {
    case Action::negative_expiry:
      body["expires_in"] = body["ext_expires_in"] = "-5";
      body["expires_on"] = unix_seconds(now - seconds(5));
      break;
    case Action::missing_token:
      body.erase("access_token");
      break;
    case Action::malformed:
    case Action::reset: {
      const std::string full = body.dump();
      reply.body = full.substr(0, full.size() / 2);
      return step.action == Action::reset ? reply : count(std::move(reply));
    }
    default:
      break;
  }
  reply.body = body.dump();
  if (body.contains("access_token")) {
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
                       {"uti", random_base64url(16)}});
}

void Emulator::begin_in_flight() { max_in_flight_ = std::max(max_in_flight_, ++in_flight_); }
void Emulator::end_in_flight() { --in_flight_; }

Reply Emulator::count(Reply reply) {
  ++responses_[std::to_string(reply.status)];
  return reply;
}

json Emulator::stats() const {
  return {{"token_requests", token_requests_}, {"tokens_issued", tokens_issued_},
          {"responses", json(responses_)},     {"by_resource", json(by_resource_)},
          {"in_flight", in_flight_},           {"max_in_flight", max_in_flight_}};
}

}  // namespace imds_emulator
