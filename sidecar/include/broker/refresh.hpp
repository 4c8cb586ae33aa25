#pragma once
// Cache timing decisions (pure functions).

#include "broker/token.hpp"

#include <chrono>

namespace broker {

/// Never refresh later than this before expiry (when the lifetime allows it).
inline constexpr std::chrono::seconds kRefreshBeforeExpiry{300};

/// When to refresh a token with `lifetime` left: at half-life ±10 % (`jitter` in [0,1) maps to
/// 0.9..1.1), never later than expiry - 5 min, or at `refresh_in` when the upstream gave one.
std::chrono::milliseconds refresh_delay(std::chrono::seconds lifetime,
                                        std::optional<std::chrono::seconds> refresh_in,
                                        double jitter);

/// Seconds left on `token` at `now` (negative once expired).
std::chrono::seconds time_left(const Token& token, SteadyTime now);

/// True when `token` may be served to a caller who needs `min_validity`.
bool usable(const Token& token, SteadyTime now, std::chrono::seconds min_validity);

/// True when `candidate` is worth replacing `held` with: it expires later.
bool is_newer(const UpstreamToken& candidate, const Token& held);

}  // namespace broker
