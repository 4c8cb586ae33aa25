#include "broker/retry.hpp"

#include "tb/http_date.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace broker {

using namespace std::chrono_literals;

Retry classify(unsigned status) {
  // 404: NMI has not been assigned the identity yet (the classic start-up race).
  // 410: IMDS is being upgraded and will be back within 70 s.
  if (status == 0 || status == 404 || status == 408 || status == 410 || status == 429 ||
      status >= 500) {
    return Retry::retry;
  }
  return Retry::fail_fast;
}

std::chrono::milliseconds backoff_delay(int attempt, const RetryPolicy& policy, double jitter) {
  attempt = std::clamp(attempt, 1, 32);
  const double ceiling =
      std::min(static_cast<double>(policy.cap.count()),
               static_cast<double>(policy.base.count()) * std::ldexp(1.0, attempt - 1));
  jitter = std::clamp(jitter, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(ceiling * jitter));
}

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value, SystemTime now) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  constexpr auto kMax = std::chrono::milliseconds(1h);
  if (std::isdigit(static_cast<unsigned char>(value.front()))) {
    std::int64_t seconds = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc::result_out_of_range) return kMax;
    if (ec != std::errc{} || ptr != value.data() + value.size()) return std::nullopt;
    // Clamp in seconds: converting a huge value to milliseconds first would overflow.
    return std::chrono::milliseconds(std::chrono::seconds(std::min<std::int64_t>(seconds, 3600)));
  }
  auto when = tb::parse_http_date(value);
  if (!when) return std::nullopt;
  auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(*when - now);
  return std::clamp<std::chrono::milliseconds>(delay, 0ms, kMax);
}

std::chrono::milliseconds next_attempt_delay(int attempt, const RetryPolicy& policy, double jitter,
                                             const FetchError& error) {
  const auto backoff = backoff_delay(attempt, policy, jitter);
  // After Retry-After, not at it: every broker on a node that IMDS throttled was told the same
  // instant, and would otherwise all come back in it.
  return error.retry_after ? *error.retry_after + backoff : backoff;
}

}  // namespace broker
