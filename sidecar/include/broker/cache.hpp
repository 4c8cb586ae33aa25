#pragma once
// The token cache: one entry per (identity, resource), each with its own refresh loop.
// Single flight: at most one upstream call per entry at a time; every waiter shares the result.
// Runs on one thread (the broker's io_context), so it needs no locks.

#include "broker/clock.hpp"
#include "broker/metrics.hpp"
#include "broker/retry.hpp"
#include "broker/source.hpp"
#include "broker/token.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace broker {

struct CacheOptions {
  RetryPolicy retry;
  std::chrono::milliseconds attempt_timeout{10'000};
  std::chrono::seconds error_ttl{5};  ///< how long a fail-fast upstream error is remembered
  int upstream_concurrency = 4;
  std::size_t max_entries = 256;
  /// The prefetched keys' first upstream calls wait a random time in [0, prefetch_jitter) (one
  /// draw for them all), so that many brokers starting at once on one node (a reboot) do not
  /// call its IMDS at once. A caller who needs the key sooner starts the call at once.
  std::chrono::milliseconds prefetch_jitter{0};
  /// At most one forced refresh (refresh()) per key in this time; further ones share the call
  /// in flight, get a token that already replaced the rejected one, or are refused.
  std::chrono::seconds force_refresh_interval{30};
  /// A key nobody asked for in this long is not refreshed any more but dropped, when its refresh
  /// comes (prefetched keys never are); 0: never.
  std::chrono::seconds idle_evict{3600};
};

/// Why the cache has no token to give: a domain error. The API layer alone turns it into an HTTP
/// status and body (api.hpp, to_http_error).
struct TokenError {
  enum class Kind {
    too_many_tokens,    ///< the cache holds CacheOptions::max_entries keys already
    shutting_down,      ///< stop() was called
    upstream_rejected,  ///< the upstream refused the request itself (a fail-fast status)
    unavailable,        ///< no valid token before the deadline (upstream failing, slow or busy)
    rate_limited,       ///< a forced refresh of this key came too soon after the last one
  };
  Kind kind = Kind::unavailable;
  std::string detail;                   ///< what happened and what to do, for people
  std::chrono::seconds retry_after{0};  ///< when asking again may help; 0: no advice
  unsigned upstream_status = 0;         ///< upstream_rejected: the upstream's HTTP status
};

/// The kind's short code, as callers and logs see it ("token_unavailable", …).
std::string_view to_string(TokenError::Kind kind);

using GetResult = std::variant<TokenPtr, TokenError>;

/// What a forced refresh got: the token to use, and whether it differs from the one it replaces.
struct Refreshed {
  TokenPtr token;
  /// False when the upstream handed back the very token that was rejected (an upstream cache
  /// that cannot be told to skip it, e.g. IMDS): asking again will not help until it expires.
  bool is_new = true;
  /// True when no upstream call was made for this caller: the held token had already replaced
  /// the rejected one, or another caller's forced call was shared.
  bool shared = false;
};
using RefreshResult = std::variant<Refreshed, TokenError>;

class TokenCache {
 public:
  TokenCache(boost::asio::any_io_executor executor, Source& source, const Clock& clock,
             Jitter jitter, CacheOptions options, Metrics& metrics);
  ~TokenCache();
  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;

  /// A token with at least `min_validity` left, waiting for an upstream call until `deadline`.
  boost::asio::awaitable<GetResult> get(TokenKey key, std::chrono::seconds min_validity,
                                        SteadyTime deadline);

  /// The token for `key` when one with at least `min_validity` left is held at `now` (counted
  /// as a cache hit, as get() counts it); nullptr otherwise, and then get() is the way. Lets a
  /// caller answer a cached token without suspending; it renders the answer for the same `now`,
  /// so that the expires_in it reports is never below `min_validity`.
  TokenPtr held(const TokenKey& key, std::chrono::seconds min_validity, SteadyTime now);

  /// A forced refresh: the token for `key` whose SHA-256 (lower-case hex) is `rejected_sha256`
  /// (empty: whichever is held) was refused by the resource, so a new one is fetched from the
  /// upstream now, skipping the refresh schedule and the check that a token be newer. Until it
  /// arrives, get() and held() do not serve the suspect token. When the held token already differs
  /// from the rejected one, it is answered without a call; a caller who comes while a forced call
  /// is in flight shares it; one more within CacheOptions::force_refresh_interval is refused
  /// (rate_limited, with Retry-After). When the forced call fails, the old token stays held and
  /// is served again (it may still be good for other uses); the caller gets the error.
  boost::asio::awaitable<RefreshResult> refresh(TokenKey key, std::string rejected_sha256,
                                                std::chrono::seconds min_validity,
                                                SteadyTime deadline);

  /// Called on the cache's thread each time a key gets a token from the upstream (at start, a
  /// refresh, a forced refresh), once it is held; the token may equal the one it replaces (see
  /// Refreshed::is_new).
  using TokenListener = std::function<void(const TokenKey&, const TokenPtr&)>;
  void on_new_token(TokenListener listener) { listeners_.push_back(std::move(listener)); }

  /// A get() of `key` now would start an upstream call of its own: nobody fetches it yet
  /// (callers who arrive while a call is in flight share it).
  bool would_fetch(const TokenKey& key) const;
  /// A refresh(key, rejected_sha256) now would make an upstream call of its own: no forced
  /// refresh of the key is in flight to share, and the held token is the rejected one.
  bool would_force(const TokenKey& key, const std::string& rejected_sha256) const;

  /// A watcher of `key` came (+1) or went (-1): while it has any, --idle-evict does not drop it.
  void watched(const TokenKey& key, int delta);

  /// Marks `key` as needed from the start and starts fetching it.
  void prefetch(const TokenKey& key);

  struct Status {
    TokenKey key;
    bool prefetched = false;
    bool held = false;
    std::chrono::seconds time_left{0};
    std::string last_error;  ///< empty when the last upstream call succeeded
  };
  std::vector<Status> status() const;

  /// Held tokens' time left, for /metrics.
  std::vector<Metrics::Expiry> expiries() const;

  /// Cancels every timer and waiter; the entries' loops end.
  void stop();

 private:
  struct Entry;

  Entry* find_or_create(const TokenKey& key);
  /// Starts the entry's loop; its first upstream call after `delay`, or when a caller needs it.
  void start(Entry& entry, std::chrono::milliseconds delay = {});
  boost::asio::awaitable<void> run(Entry& entry, std::chrono::milliseconds first_delay);
  boost::asio::awaitable<void> acquire_slot();
  void release_slot();
  void notify(Entry& entry);
  bool wanted(const Entry& entry) const;
  /// Nobody asked for it in idle_evict (and it is not prefetched, nor waited for).
  bool idle(const Entry& entry) const;
  /// The held token is suspected bad: a forced refresh is asked for or in flight.
  static bool suspect(const Entry& entry);
  /// `error` is `entry.last_error`'s value.
  TokenError fail_fast_error(const Entry& entry, const FetchError& error, SteadyTime now) const;
  /// The held token was shorter than `min_validity` from the start.
  TokenError too_short_error(const Entry& entry, std::chrono::seconds min_validity) const;
  /// The next upstream attempt starts after the caller's deadline.
  TokenError backing_off_error(const Entry& entry, SteadyTime now) const;
  TokenError timeout_error(const Entry& entry, SteadyTime now) const;
  TokenError too_many_error() const;
  /// "; the held token has N s left, …" when `entry` holds one, else "".
  static std::string held_note(const Entry& entry, SteadyTime now);

  boost::asio::any_io_executor executor_;
  Source& source_;
  const Clock& clock_;
  std::optional<double> prefetch_share_;  ///< this broker's share of prefetch_jitter, drawn once
  Jitter jitter_;
  CacheOptions options_;
  Metrics& metrics_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;
  int slots_in_use_ = 0;
  std::deque<boost::asio::steady_timer*> slot_waiters_;
  std::vector<TokenListener> listeners_;
  bool stopped_ = false;
};

}  // namespace broker
