#include "pg_token_auth/verify.hpp"

#include "tb/crypto.hpp"

#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <fstream>
#include <sstream>

namespace pg_token_auth {
namespace {

using nlohmann::json;

// Values that come from the client (role names, header fields) are cut before they reach a log.
std::string clip(std::string_view text, std::size_t max = 64) {
  return std::string(text.substr(0, max));
}

// A NumericDate claim (seconds since the epoch, integer or fractional).
std::optional<std::int64_t> numeric_date(const json& claims, const char* name) {
  const auto it = claims.find(name);
  if (it == claims.end() || !it->is_number()) return std::nullopt;
  const double value = it->get<double>();
  if (!std::isfinite(value) || std::fabs(value) > 1e15) return std::nullopt;
  return static_cast<std::int64_t>(std::floor(value));
}

std::string claim_string(const json& claims, const char* name) {
  const auto it = claims.find(name);
  return it != claims.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool audience_matches(const json& claims, const std::string& audience) {
  const auto it = claims.find("aud");
  if (it == claims.end()) return false;
  if (it->is_string()) return it->get<std::string>() == audience;
  if (!it->is_array()) return false;
  return std::any_of(it->begin(), it->end(), [&](const json& a) {
    return a.is_string() && a.get<std::string>() == audience;
  });
}

std::optional<std::string> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return out.str();
}

}  // namespace

std::string fingerprint(std::string_view token) { return tb::hex(tb::sha256(token), 6); }

std::shared_ptr<EVP_PKEY> parse_public_key(std::string_view pem) {
  auto key = tb::load_public_key_pem(pem);
  if (!key || !EVP_PKEY_is_a(key.get(), "RSA") || EVP_PKEY_get_bits(key.get()) < 2048) {
    return nullptr;
  }
  return key;
}

ConfigResult parse_config(std::string_view json_text,
                          std::optional<std::string> (*read_file)(const std::string& path)) {
  const json doc = json::parse(json_text, nullptr, false);
  if (!doc.is_object()) return {.error = "config is not a JSON object"};
  Config config;
  auto string_field = [&](const char* name, std::string& out, bool required) -> std::string {
    const auto it = doc.find(name);
    if (it == doc.end()) return required ? std::string("\"") + name + "\" is missing" : "";
    if (!it->is_string() || it->get<std::string>().empty()) {
      return std::string("\"") + name + "\" must be a non-empty string";
    }
    out = it->get<std::string>();
    return "";
  };
  std::string key_path;
  for (const auto& error :
       {string_field("public_key", key_path, true),
        string_field("audience", config.audience, false),
        string_field("issuer", config.issuer, false), string_field("log", config.log_path, true)}) {
    if (!error.empty()) return {.error = error};
  }
  if (const auto it = doc.find("clock_skew_seconds"); it != doc.end()) {
    if (!it->is_number_unsigned() || it->get<std::uint64_t>() > 600) {
      return {.error = "\"clock_skew_seconds\" must be an integer from 0 to 600"};
    }
    config.clock_skew = std::chrono::seconds(it->get<std::int64_t>());
  }
  const auto roles = doc.find("roles");
  if (roles == doc.end() || !roles->is_object() || roles->empty()) {
    return {.error = "\"roles\" must be an object mapping role names to lists of oid/appid"};
  }
  for (const auto& [role, ids] : roles->items()) {
    if (!ids.is_array() || ids.empty()) {
      return {.error = "\"roles\".\"" + role + "\" must be a non-empty list of oid/appid strings"};
    }
    auto& allowed = config.roles[role];
    for (const auto& id : ids) {
      if (!id.is_string() || id.get<std::string>().empty()) {
        return {.error = "\"roles\".\"" + role + "\" must contain only non-empty strings"};
      }
      allowed.push_back(id.get<std::string>());
    }
  }
  if (const auto it = doc.find("revoked"); it != doc.end()) {
    if (!it->is_string() || it->get<std::string>().empty()) {
      return {.error = "\"revoked\" must be a non-empty string (a file path)"};
    }
    const auto path = it->get<std::string>();
    const auto list = read_file(path);
    if (!list) {
      return {.error = "cannot read the revocation list " + path +
                       " (create it, empty, or remove \"revoked\")"};
    }
    std::istringstream lines(*list);
    std::string line;
    for (int number = 1; std::getline(lines, line); ++number) {
      const auto first = line.find_first_not_of(" \t\r");
      if (first == std::string::npos || line[first] == '#') continue;
      const auto last = line.find_last_not_of(" \t\r");
      std::string hash = line.substr(first, last - first + 1);
      std::transform(hash.begin(), hash.end(), hash.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (hash.size() != 64 || hash.find_first_not_of("0123456789abcdef") != std::string::npos) {
        return {.error = path + " line " + std::to_string(number) +
                         " is not a token's SHA-256 (64 hex digits)"};
      }
      config.revoked.insert(std::move(hash));
    }
  }
  const auto pem = read_file(key_path);
  if (!pem) return {.error = "cannot read public key file " + key_path};
  config.public_key = parse_public_key(*pem);
  if (!config.public_key) {
    return {.error = key_path + " is not a PEM RSA public key of 2048 bits or more"};
  }
  return {.config = std::move(config)};
}

ConfigResult load_config(const std::string& path) {
  const auto text = read_whole_file(path);
  if (!text) return {.error = "cannot read config file " + path};
  auto result = parse_config(*text, read_whole_file);
  if (!result.config) result.error = path + ": " + result.error;
  return result;
}

Verdict verify(std::string_view token, std::string_view role, const Config& config,
               std::chrono::system_clock::time_point now) {
  Verdict verdict;
  verdict.fingerprint = fingerprint(token);
  auto refuse = [&](std::string reason) {
    verdict.reason = std::move(reason);
    return verdict;
  };
  if (token.empty()) return refuse("empty password");
  if (token.size() > kMaxTokenSize) return refuse("token longer than 16 KiB");

  auto decoded = tb::decode_jwt(token);
  if (const auto* problem = std::get_if<tb::JwtProblem>(&decoded)) {
    switch (*problem) {
      case tb::JwtProblem::not_three_parts:
        return refuse("not a JWT (expected header.payload.signature)");
      case tb::JwtProblem::not_base64url:
        return refuse("bad base64url in token");
      case tb::JwtProblem::header_not_object:
        return refuse("header is not a JSON object");
      case tb::JwtProblem::claims_not_object:
        return refuse("payload is not a JSON object");
      default:
        return refuse(std::string(tb::to_string(*problem)));
    }
  }
  const auto& jwt = std::get<tb::Jwt>(decoded);
  // The signature covers the encoded header and payload exactly as sent.
  if (const auto problem = tb::check_rs256(jwt, config.public_key.get())) {
    if (*problem != tb::JwtProblem::not_rs256) return refuse("bad signature");
    const auto alg = jwt.header.find("alg");
    if (alg == jwt.header.end() || !alg->is_string()) return refuse("header has no alg");
    return refuse("alg " + clip(alg->get<std::string>(), 16) + " is not RS256");
  }
  if (!config.revoked.empty() && config.revoked.contains(tb::hex(tb::sha256(token)))) {
    return refuse("revoked");
  }
  const json& claims = jwt.claims;
  verdict.iat = numeric_date(claims, "iat");
  verdict.exp = numeric_date(claims, "exp");
  verdict.oid = clip(claim_string(claims, "oid"));
  verdict.appid = clip(claim_string(claims, "appid"));
  const std::int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();

  if (!verdict.exp) return refuse("no exp claim");
  if (*verdict.exp <= now_s) return refuse("expired");
  if (claims.contains("nbf")) {
    const auto nbf = numeric_date(claims, "nbf");
    if (!nbf) return refuse("nbf is not a number");
    if (*nbf > now_s + config.clock_skew.count()) return refuse("not valid yet (nbf)");
  }
  if (!audience_matches(claims, config.audience)) return refuse("wrong audience");
  if (!config.issuer.empty() && claim_string(claims, "iss") != config.issuer) {
    return refuse("wrong issuer");
  }

  const auto allowed = config.roles.find(std::string(role));
  if (allowed == config.roles.end()) return refuse("role not mapped");
  const auto& ids = allowed->second;
  auto listed = [&](const std::string& id) {
    return !id.empty() && std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  if (!listed(claim_string(claims, "oid")) && !listed(claim_string(claims, "appid"))) {
    return refuse("identity not allowed for role");
  }
  verdict.accepted = true;
  verdict.reason = "ok";
  return verdict;
}

std::string log_line(const Verdict& verdict, std::string_view role,
                     std::chrono::system_clock::time_point now) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char time_text[40];
  const auto n = std::strftime(time_text, sizeof time_text, "%Y-%m-%dT%H:%M:%S", &utc);
  if (std::snprintf(time_text + n, sizeof time_text - n, ".%03dZ", static_cast<int>(ms % 1000)) <
      0) {
    time_text[n] = '\0';  // the log line then has whole seconds only
  }

  json line = {{"time", time_text},
               {"role", clip(role)},
               {"result", verdict.accepted ? "accepted" : "refused"},
               {"reason", verdict.reason},
               {"fingerprint", verdict.fingerprint},
               {"iat", verdict.iat ? json(*verdict.iat) : json(nullptr)},
               {"exp", verdict.exp ? json(*verdict.exp) : json(nullptr)},
               {"oid", verdict.oid},
               {"appid", verdict.appid}};
  // Role names come from the client: replace bytes that are not UTF-8 instead of throwing.
  return line.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace pg_token_auth
