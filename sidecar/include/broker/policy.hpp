#pragma once
// Per-caller policy on the Unix socket: which uid or gid may ask for which resources and
// identities (--allow), and how much upstream-bound work one uid may cause (--caller-rate). The
// caller is known by its kernel credentials (peer.hpp), which it cannot forge.

#include "broker/clock.hpp"
#include "broker/peer.hpp"
#include "broker/token.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

namespace broker {

struct AllowRule {
  /// Whom it is for: the caller's uid, or its primary gid (exactly one is set).
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::vector<std::string> resources;   ///< empty: any ("*")
  std::vector<std::string> identities;  ///< as to_string(Identity) says them; empty: any
  std::string text;                     ///< as given, for messages and logs
};

/// One rule, "uid=N|gid=N;resource=R[;resource=R2…][;identity=default|client_id=ID|…]"
/// (`*` for any); returns what is wrong with it.
std::variant<AllowRule, std::string> parse_allow_rule(std::string_view text);

/// Whether `peer` may ask for `key` under `rules` (no rules: anyone the socket admits). The first
/// rule whose uid, else the first whose gid, is the caller's decides. A rule's `default` identity
/// is `default_identity` (--client-id): what a request naming no identity gets. nullopt:
/// allowed; else why not, naming the rule (or saying that none names the caller).
std::optional<std::string> refusal(const std::vector<AllowRule>& rules, const PeerCredentials& peer,
                                   const TokenKey& key, const Identity& default_identity = {});

/// A token bucket per uid: `rate` requests a second, `rate` at once. take() is false (with the
/// wait until the next one) when the caller's bucket is empty. rate 0: no limit.
class CallerLimiter {
 public:
  explicit CallerLimiter(double rate) : rate_(rate) {}
  bool take(uid_t uid, SteadyTime now, std::chrono::seconds& retry_after);
  bool enabled() const { return rate_ > 0; }

 private:
  struct Bucket {
    double tokens = 0;
    SteadyTime updated{};
  };
  double rate_;
  std::unordered_map<uid_t, Bucket> buckets_;
};

}  // namespace broker
