#include "broker/policy.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cmath>

namespace broker {

namespace {

std::optional<unsigned> whole_number(std::string_view text) {
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

bool listed(const std::vector<std::string>& list, const std::string& value) {
  return list.empty() || std::find(list.begin(), list.end(), value) != list.end();
}

std::string who(const AllowRule& rule) {
  if (rule.uid) return "uid=" + std::to_string(*rule.uid);
  return "gid=" + std::to_string(rule.gid.value_or(0));
}

}  // namespace

std::variant<AllowRule, std::string> parse_allow_rule(std::string_view text) {
  AllowRule rule;
  rule.text = std::string(text);
  bool any_resource = false;
  bool any_identity = false;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(';', start);
    if (end == std::string_view::npos) end = text.size();
    const auto field = text.substr(start, end - start);
    start = end + 1;
    if (field.empty()) continue;
    const auto eq = field.find('=');
    if (eq == std::string_view::npos) {
      return fmt::format(
          "has '{}' where NAME=VALUE was expected (e.g. "
          "uid=1000;resource=https://database.windows.net/)",
          field);
    }
    const auto name = field.substr(0, eq);
    const std::string value(field.substr(eq + 1));
    if (name == "uid" || name == "gid") {
      if (rule.uid || rule.gid) return "names more than one uid or gid; write one rule each";
      const auto id = whole_number(value);
      if (!id) return fmt::format("{} must be a whole number, got '{}'", name, value);
      (name == "uid" ? rule.uid : rule.gid) = id;
    } else if (name == "resource") {
      if (value == "*") {
        any_resource = true;
      } else if (!valid_key_text(value)) {
        return fmt::format("resource must be 1 to 1024 printable ASCII characters, got '{}'",
                           value);
      } else {
        rule.resources.push_back(value);
      }
    } else if (name == "identity") {
      // The forms the broker logs: default, client_id=…, object_id=…, mi_res_id=….
      const auto inner = value.find('=');
      const auto kind = inner == std::string::npos
                            ? std::nullopt
                            : identity_parameter(std::string_view(value).substr(0, inner));
      if (value == "*") {
        any_identity = true;
      } else if (value == "default") {
        rule.identities.push_back(value);
      } else if (kind && valid_key_text(std::string_view(value).substr(inner + 1))) {
        rule.identities.push_back(to_string(Identity{*kind, value.substr(inner + 1)}));
      } else {
        return fmt::format(
            "identity must be default, client_id=ID, object_id=ID, mi_res_id=ID or *, got '{}'",
            value);
      }
    } else {
      return fmt::format("has an unknown field '{}' (known: uid, gid, resource, identity)", name);
    }
  }
  if (!rule.uid && !rule.gid) return "needs uid=N or gid=N (whom the rule is for)";
  if (rule.resources.empty() && !any_resource) {
    return "needs resource=R (or resource=* for any): which resources the caller may ask for";
  }
  if (any_resource) rule.resources.clear();
  if (any_identity) rule.identities.clear();
  return rule;
}

std::optional<std::string> refusal(const std::vector<AllowRule>& rules, const PeerCredentials& peer,
                                   const TokenKey& key, const Identity& default_identity) {
  if (rules.empty()) return std::nullopt;
  const AllowRule* match = nullptr;
  std::size_t index = 0;
  for (std::size_t i = 0; i < rules.size() && match == nullptr; ++i) {
    if (rules[i].uid == peer.uid) match = &rules[index = i];
  }
  for (std::size_t i = 0; i < rules.size() && match == nullptr; ++i) {
    if (rules[i].gid == peer.gid) match = &rules[index = i];
  }
  if (match == nullptr) {
    return fmt::format(
        "no --allow rule names uid {} or gid {}; add one (e.g. --allow "
        "'uid={};resource={}')",
        peer.uid, peer.gid, peer.uid, key.resource);
  }
  const auto identity = to_string(key.identity);
  const bool as_default = key.identity == default_identity &&
                          std::find(match->identities.begin(), match->identities.end(),
                                    "default") != match->identities.end();
  if (listed(match->resources, key.resource) &&
      (as_default || listed(match->identities, identity))) {
    return std::nullopt;
  }
  return fmt::format(
      "--allow rule {} ('{}', for {}) lets this caller ask for {} with {}, not {} with {}; "
      "widen the rule or ask for what it allows",
      index + 1, match->text, who(*match),
      match->resources.empty() ? std::string("any resource")
                               : fmt::format("{}", fmt::join(match->resources, ", ")),
      match->identities.empty() ? std::string("any identity")
                                : fmt::format("{}", fmt::join(match->identities, ", ")),
      key.resource, identity);
}

bool CallerLimiter::take(uid_t uid, SteadyTime now, std::chrono::seconds& retry_after) {
  if (rate_ <= 0) return true;
  auto [it, fresh] = buckets_.try_emplace(uid, Bucket{rate_, now});
  auto& bucket = it->second;
  if (!fresh) {
    const double elapsed = std::chrono::duration<double>(now - bucket.updated).count();
    bucket.tokens = std::min(rate_, bucket.tokens + std::max(0.0, elapsed) * rate_);
    bucket.updated = now;
  }
  if (bucket.tokens >= 1.0) {
    bucket.tokens -= 1.0;
    return true;
  }
  retry_after = std::chrono::seconds(std::max<std::int64_t>(
      1, static_cast<std::int64_t>(std::ceil((1.0 - bucket.tokens) / rate_))));
  return false;
}

}  // namespace broker
