#pragma once
// Retry decisions for upstream calls (pure functions; time and jitter are parameters).

#include "broker/clock.hpp"
#include "broker/token.hpp"

#include <chrono>
#include <optional>
#include <string_view>

namespace broker {

struct RetryPolicy {
  std::chrono::milliseconds base{1000};
  std::chrono::milliseconds cap{30'000};
};

enum class Retry {
  retry,      ///< transient: try again after a backoff
  fail_fast,  ///< the request itself is wrong: remember the error briefly, don't hammer
};

/// What to do after an upstream answered with `status` (0 = connection/timeout/parse failure).
Retry classify(unsigned status);

/// Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^(attempt-1))).
/// `attempt` counts failures so far (1 for the first); `jitter` is in [0, 1).
std::chrono::milliseconds backoff_delay(int attempt, const RetryPolicy& policy, double jitter);

/// Parses a Retry-After value: delay-seconds or an HTTP-date (relative to `now`).
/// Values are clamped to [0, 1 h]; nullopt for anything unparseable.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, SystemTime now);

/// The delay before the next attempt: the backoff, after the Retry-After interval when the
/// upstream sent one (Retry-After + backoff, so that callers throttled together spread out).
std::chrono::milliseconds next_attempt_delay(int attempt, const RetryPolicy& policy, double jitter,
                                             const FetchError& error);

}  // namespace broker
