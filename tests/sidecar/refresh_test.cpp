#include "broker/refresh.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace broker {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(RefreshDelay, ZeroJitterRefreshesAt45PercentOfTheLifetime) {
  EXPECT_EQ(refresh_delay(3600s, std::nullopt, 0.0), milliseconds(1'620'000));
  EXPECT_EQ(refresh_delay(1000s, std::nullopt, 0.0), milliseconds(450'000));
}

TEST(RefreshDelay, JitterNearOneRefreshesAt55PercentOfTheLifetime) {
  const auto delay = refresh_delay(3600s, std::nullopt, 0.999999);
  EXPECT_NEAR(static_cast<double>(delay.count()), 1'980'000.0, 100.0);
  EXPECT_LE(delay, milliseconds(1'980'000));
}

TEST(RefreshDelay, MidJitterRefreshesAtHalfLife) {
  EXPECT_EQ(refresh_delay(3600s, std::nullopt, 0.5), milliseconds(1'800'000));
}

TEST(RefreshDelay, EveryJitterValueStaysWithinTenPercentOfHalfLifeAndGrowsWithJitter) {
  for (const auto lifetime : {700s, 3600s, 5000s, 86399s}) {
    const double life_ms = static_cast<double>(milliseconds(lifetime).count());
    milliseconds previous{0};
    for (int i = 0; i < 1000; ++i) {
      const double jitter = i / 1000.0;
      const auto delay = refresh_delay(lifetime, std::nullopt, jitter);
      SCOPED_TRACE(::testing::Message()
                   << "lifetime " << lifetime.count() << " s, jitter " << jitter);
      EXPECT_GE(static_cast<double>(delay.count()), 0.45 * life_ms - 1);
      EXPECT_LE(static_cast<double>(delay.count()), 0.55 * life_ms);
      EXPECT_GE(delay, previous);
      previous = delay;
    }
  }
}

TEST(RefreshDelay, JitterOutsideZeroToOneIsClamped) {
  EXPECT_EQ(refresh_delay(3600s, std::nullopt, -5.0), refresh_delay(3600s, std::nullopt, 0.0));
  EXPECT_EQ(refresh_delay(3600s, std::nullopt, 7.0), milliseconds(1'980'000));
}

TEST(RefreshDelay, DayLongTokenIsNeverRefreshedLaterThanFiveMinutesBeforeExpiry) {
  for (int i = 0; i < 100; ++i) {
    const auto delay = refresh_delay(24h, std::nullopt, i / 100.0);
    EXPECT_LE(delay, milliseconds(24h - kRefreshBeforeExpiry));
    EXPECT_GE(delay, milliseconds(static_cast<std::int64_t>(0.45 * 86'400'000)));
  }
}

TEST(RefreshDelay, CapsAtFiveMinutesBeforeExpiryWhenJitteredHalfLifeWouldBeLater) {
  // 620 s: half-life +10 % would be 341 s, but expiry - 5 min is 320 s.
  EXPECT_EQ(refresh_delay(620s, std::nullopt, 0.99), milliseconds(320'000));
  // Below the cap, jitter still applies.
  EXPECT_EQ(refresh_delay(620s, std::nullopt, 0.0), milliseconds(279'000));
}

TEST(RefreshDelay, HonoursRefreshInFromTheUpstream) {
  EXPECT_EQ(refresh_delay(3600s, 600s, 0.0), milliseconds(600'000));
  EXPECT_EQ(refresh_delay(3600s, 600s, 0.99), milliseconds(600'000));
  // refresh_in may be later than half-life; it is still before expiry - 5 min here.
  EXPECT_EQ(refresh_delay(86'400s, 43'200s + 3600s, 0.5), milliseconds(46'800'000));
}

TEST(RefreshDelay, RefreshInBeyondExpiryIsPulledBackToFiveMinutesBeforeExpiry) {
  EXPECT_EQ(refresh_delay(24h, 24h + 1h, 0.5), milliseconds(24h - kRefreshBeforeExpiry));
  EXPECT_EQ(refresh_delay(24h, 24h - 1min, 0.5), milliseconds(24h - kRefreshBeforeExpiry));
}

TEST(RefreshDelay, NonPositiveRefreshInFallsBackToHalfLife) {
  EXPECT_EQ(refresh_delay(3600s, 0s, 0.5), milliseconds(1'800'000));
  EXPECT_EQ(refresh_delay(3600s, -10s, 0.5), milliseconds(1'800'000));
}

TEST(RefreshDelay, ShortThirtySecondTokenRefreshesAroundHalfLife) {
  EXPECT_EQ(refresh_delay(30s, std::nullopt, 0.0), milliseconds(13'500));
  EXPECT_EQ(refresh_delay(30s, std::nullopt, 0.5), milliseconds(15'000));
  const auto latest = refresh_delay(30s, std::nullopt, 0.999);
  EXPECT_GT(latest, milliseconds(16'000));
  EXPECT_LE(latest, milliseconds(16'500));
  // A short refresh_in is taken as given.
  EXPECT_EQ(refresh_delay(30s, 5s, 0.5), milliseconds(5'000));
}

TEST(RefreshDelay, ExpiredOrZeroLifetimeRefreshesImmediately) {
  EXPECT_EQ(refresh_delay(0s, std::nullopt, 0.5), milliseconds(0));
  EXPECT_EQ(refresh_delay(-30s, std::nullopt, 0.5), milliseconds(0));
  EXPECT_EQ(refresh_delay(-30s, 10s, 0.5), milliseconds(0));
}

Token token_expiring_at(SteadyTime expires_at, std::int64_t expires_on = 0) {
  Token token;
  token.expires_at = expires_at;
  token.upstream.expires_on = expires_on;
  return token;
}

const SteadyTime kNow = SteadyTime{} + 100h;

TEST(Usable, TokenWithExactlyMinValidityLeftIsUsable) {
  const auto token = token_expiring_at(kNow + 60s);
  EXPECT_TRUE(usable(token, kNow, 60s));
}

TEST(Usable, TokenWithJustUnderMinValidityLeftIsNotUsable) {
  const auto token = token_expiring_at(kNow + 60s);
  EXPECT_FALSE(usable(token, kNow + 1ms, 60s));
  EXPECT_FALSE(usable(token, kNow + 1ns, 60s));
}

TEST(Usable, HigherMinValidityMakesTheSameTokenUnusable) {
  const auto token = token_expiring_at(kNow + 600s);
  EXPECT_TRUE(usable(token, kNow, 60s));
  EXPECT_TRUE(usable(token, kNow, 600s));
  EXPECT_FALSE(usable(token, kNow, 601s));
}

TEST(Usable, ExpiredTokenIsNeverUsable) {
  const auto token = token_expiring_at(kNow - 1s);
  EXPECT_FALSE(usable(token, kNow, 0s));
  EXPECT_FALSE(usable(token, kNow, 60s));
}

TEST(TimeLeft, FloorsToWholeSecondsAndGoesNegativeAfterExpiry) {
  const auto token = token_expiring_at(kNow + 90s);
  EXPECT_EQ(time_left(token, kNow), 90s);
  EXPECT_EQ(time_left(token, kNow + 500ms), 89s);
  EXPECT_EQ(time_left(token, kNow + 90s), 0s);
  EXPECT_EQ(time_left(token, kNow + 100s), -10s);
}

TEST(IsNewer, OnlyALaterExpiresOnIsNewer) {
  const auto held = token_expiring_at(kNow + 3600s, 1'800'000'000);
  UpstreamToken candidate;
  candidate.expires_on = 1'800'000'001;
  EXPECT_TRUE(is_newer(candidate, held));
  candidate.expires_on = 1'800'000'000;
  EXPECT_FALSE(is_newer(candidate, held)) << "the same token handed back is not newer";
  candidate.expires_on = 1'799'999'000;
  EXPECT_FALSE(is_newer(candidate, held));
}

}  // namespace
}  // namespace broker
