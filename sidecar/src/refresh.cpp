#include "broker/refresh.hpp"

#include <algorithm>

namespace broker {

using namespace std::chrono_literals;

std::chrono::milliseconds refresh_delay(std::chrono::seconds lifetime,
                                        std::optional<std::chrono::seconds> refresh_in,
                                        double jitter) {
  const auto life = std::chrono::milliseconds(lifetime);
  if (life <= 0ms) return 0ms;
  std::chrono::milliseconds delay;
  if (refresh_in && *refresh_in > 0s) {
    delay = std::min<std::chrono::milliseconds>(*refresh_in, life);
  } else {
    const double factor = 0.9 + 0.2 * std::clamp(jitter, 0.0, 1.0);  // ±10 %
    delay = std::chrono::milliseconds(
        static_cast<std::int64_t>(static_cast<double>(life.count()) * 0.5 * factor));
  }
  // Never later than expiry - 5 min, where the lifetime leaves room for that.
  if (life > 2 * kRefreshBeforeExpiry) delay = std::min(delay, life - kRefreshBeforeExpiry);
  return delay;
}

std::chrono::seconds time_left(const Token& token, SteadyTime now) {
  return std::chrono::floor<std::chrono::seconds>(token.expires_at - now);
}

bool usable(const Token& token, SteadyTime now, std::chrono::seconds min_validity) {
  return token.expires_at - now >= min_validity;
}

bool is_newer(const UpstreamToken& candidate, const Token& held) {
  return candidate.expires_on > held.upstream.expires_on;
}

}  // namespace broker
