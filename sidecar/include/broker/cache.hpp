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
#include <memory>
#include <optional>
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
};

/// Why the cache has no token to give: a domain error. The API layer alone turns it into an HTTP
/// status and body (api.hpp, to_http_error).
struct TokenError {
  enum class Kind {
    too_many_tokens,    ///< the cache holds CacheOptions::max_entries keys already
    shutting_down,      ///< stop() was called
    upstream_rejected,  ///< the upstream refused the request itself (a fail-fast status)
    unavailable,        ///< no valid token before the deadline (upstream failing, slow or busy)
  };
  Kind kind = Kind::unavailable;
  std::string detail;                   ///< what happened and what to do, for people
  std::chrono::seconds retry_after{0};  ///< when asking again may help; 0: no advice
  unsigned upstream_status = 0;         ///< upstream_rejected: the upstream's HTTP status
};

/// The kind's short code, as callers and logs see it ("token_unavailable", …).
std::string_view to_string(TokenError::Kind kind);

using TokenPtr = std::shared_ptr<const Token>;
using GetResult = std::variant<TokenPtr, TokenError>;

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
  /// `error` is `entry.last_error`'s value.
  TokenError fail_fast_error(const Entry& entry, const FetchError& error, SteadyTime now) const;
  /// The held token was shorter than `min_validity` from the start.
  TokenError too_short_error(const Entry& entry, std::chrono::seconds min_validity) const;
  /// The next upstream attempt starts after the caller's deadline.
  TokenError backing_off_error(const Entry& entry, SteadyTime now) const;
  TokenError timeout_error(const Entry& entry, SteadyTime now) const;
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
  bool stopped_ = false;
};

}  // namespace broker
