#include "broker/retry.hpp"

#include "tb/http_date.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace broker {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

// 2026-01-01T00:00:00Z
const SystemTime kNow = SystemTime{} + std::chrono::seconds(1'767'225'600);

TEST(Classify, TransportFailuresAndTimeoutsAreRetried) { EXPECT_EQ(classify(0), Retry::retry); }

TEST(Classify, NotFoundIsRetriedBecauseNmiMayNotHaveTheIdentityYet) {
  EXPECT_EQ(classify(404), Retry::retry);
}

TEST(Classify, RequestTimeoutGoneAndTooManyRequestsAreRetried) {
  EXPECT_EQ(classify(408), Retry::retry);
  EXPECT_EQ(classify(410), Retry::retry);
  EXPECT_EQ(classify(429), Retry::retry);
}

TEST(Classify, EveryServerErrorIsRetried) {
  for (unsigned status : {500u, 501u, 502u, 503u, 504u, 599u}) {
    EXPECT_EQ(classify(status), Retry::retry) << status;
  }
}

TEST(Classify, BadRequestUnauthorizedAndForbiddenFailFast) {
  EXPECT_EQ(classify(400), Retry::fail_fast);
  EXPECT_EQ(classify(401), Retry::fail_fast);
  EXPECT_EQ(classify(403), Retry::fail_fast);
}

TEST(Classify, OtherClientErrorsFailFast) {
  EXPECT_EQ(classify(405), Retry::fail_fast);
  EXPECT_EQ(classify(409), Retry::fail_fast);
  EXPECT_EQ(classify(422), Retry::fail_fast);
}

TEST(Classify, NonErrorStatusesAreNotRetried) {
  // A 200 never reaches classify in practice (a bad 200 body is a status-0 parse failure), and a
  // redirect from IMDS means a misconfigured endpoint: neither is worth hammering.
  EXPECT_EQ(classify(200), Retry::fail_fast);
  EXPECT_EQ(classify(301), Retry::fail_fast);
}

TEST(BackoffDelay, FirstAttemptIsFullJitterUpToTheBase) {
  const RetryPolicy policy{1000ms, 30'000ms};
  EXPECT_EQ(backoff_delay(1, policy, 0.0), 0ms);
  EXPECT_EQ(backoff_delay(1, policy, 0.5), 500ms);
  EXPECT_EQ(backoff_delay(1, policy, 0.999), 999ms);
}

TEST(BackoffDelay, CeilingDoublesWithEachFailure) {
  const RetryPolicy policy{1000ms, 30'000ms};
  EXPECT_EQ(backoff_delay(2, policy, 0.5), 1000ms);
  EXPECT_EQ(backoff_delay(3, policy, 0.5), 2000ms);
  EXPECT_EQ(backoff_delay(4, policy, 0.5), 4000ms);
  EXPECT_EQ(backoff_delay(5, policy, 0.5), 8000ms);
}

TEST(BackoffDelay, CeilingStopsAtTheCap) {
  const RetryPolicy policy{1000ms, 30'000ms};
  EXPECT_EQ(backoff_delay(6, policy, 0.5), 15'000ms);  // ceiling 30 s: 16 s capped
  EXPECT_EQ(backoff_delay(10, policy, 0.5), 15'000ms);
  EXPECT_EQ(backoff_delay(1000, policy, 0.5), 15'000ms);
  EXPECT_EQ(backoff_delay(std::numeric_limits<int>::max(), policy, 0.5), 15'000ms);
}

TEST(BackoffDelay, StaysBelowTheCeilingForEveryJitterAndAttempt) {
  const RetryPolicy policy{1000ms, 30'000ms};
  for (int attempt = 1; attempt <= 40; ++attempt) {
    const auto ceiling =
        std::min<std::int64_t>(30'000, attempt > 20 ? 30'000 : 1000LL << (attempt - 1));
    for (int i = 0; i < 100; ++i) {
      const auto delay = backoff_delay(attempt, policy, i / 100.0);
      EXPECT_GE(delay, 0ms);
      EXPECT_LT(delay.count(), ceiling) << "attempt " << attempt << ", jitter " << i / 100.0;
    }
  }
}

TEST(BackoffDelay, NonPositiveAttemptIsTreatedAsTheFirst) {
  const RetryPolicy policy{1000ms, 30'000ms};
  EXPECT_EQ(backoff_delay(0, policy, 0.5), 500ms);
  EXPECT_EQ(backoff_delay(-3, policy, 0.5), 500ms);
}

TEST(BackoffDelay, JitterOutsideZeroToOneIsClamped) {
  const RetryPolicy policy{1000ms, 30'000ms};
  EXPECT_EQ(backoff_delay(1, policy, -1.0), 0ms);
  EXPECT_EQ(backoff_delay(1, policy, 5.0), 1000ms);
}

TEST(ParseRetryAfter, DelaySeconds) {
  EXPECT_EQ(parse_retry_after("0", kNow), 0ms);
  EXPECT_EQ(parse_retry_after("5", kNow), 5000ms);
  EXPECT_EQ(parse_retry_after("120", kNow), 120'000ms);
}

TEST(ParseRetryAfter, SurroundingWhitespaceIsIgnored) {
  EXPECT_EQ(parse_retry_after("  7  ", kNow), 7000ms);
  EXPECT_EQ(parse_retry_after(" 7", kNow), 7000ms);
}

TEST(ParseRetryAfter, HttpDateBeyondTheYear2200IsIgnoredNotAnOverflow) {
  // Found by fuzz_upstream_json: system_clock (nanoseconds) overflows after 2262.
  EXPECT_FALSE(parse_retry_after("Sun, 29 Nov 2626 00:00:30 GMT", kNow));
  EXPECT_FALSE(tb::parse_http_date("Sun, 29 Nov 2626 00:00:30 GMT"));
}

TEST(ParseRetryAfter, HttpDateInTheFutureIsTheTimeUntilThen) {
  EXPECT_EQ(parse_retry_after(tb::format_http_date(kNow + 90s), kNow), 90'000ms);
  EXPECT_EQ(parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", kNow), 30'000ms);
}

TEST(ParseRetryAfter, ObsoleteHttpDateFormsAreAccepted) {
  EXPECT_EQ(parse_retry_after("Thursday, 01-Jan-26 00:00:30 GMT", kNow), 30'000ms);
  EXPECT_EQ(parse_retry_after("Thu Jan  1 00:00:30 2026", kNow), 30'000ms);
}

TEST(ParseRetryAfter, HttpDateInThePastMeansNow) {
  EXPECT_EQ(parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", kNow), 0ms);
  EXPECT_EQ(parse_retry_after(tb::format_http_date(kNow - 1s), kNow), 0ms);
}

TEST(ParseRetryAfter, LargeValuesAreClampedToOneHour) {
  EXPECT_EQ(parse_retry_after("3600", kNow), milliseconds(1h));
  EXPECT_EQ(parse_retry_after("3601", kNow), milliseconds(1h));
  EXPECT_EQ(parse_retry_after("86400", kNow), milliseconds(1h));
  EXPECT_EQ(parse_retry_after(tb::format_http_date(kNow + 48h), kNow), milliseconds(1h));
}

TEST(ParseRetryAfter, HugeDelaySecondsAreClampedToOneHourWithoutOverflowing) {
  // Fits in 64 bits as seconds, but not as milliseconds.
  EXPECT_EQ(parse_retry_after("10000000000000000", kNow), milliseconds(1h));
  EXPECT_EQ(parse_retry_after("9223372036854775807", kNow), milliseconds(1h));
  // Does not fit in 64 bits at all.
  EXPECT_EQ(parse_retry_after("99999999999999999999999", kNow), milliseconds(1h));
}

TEST(ParseRetryAfter, GarbageIsRejected) {
  for (const char* value : {"", "   ", "soon", "-5", "+5", "5s", "1.5", "5 6", "0x10",
                            "Thu, 01 Jan 2026 00:00:30", "Thu, 32 Jan 2026 00:00:30 GMT"}) {
    EXPECT_EQ(parse_retry_after(value, kNow), std::nullopt) << "'" << value << "'";
  }
}

TEST(NextAttemptDelay, IsTheBackoffWithoutRetryAfter) {
  const RetryPolicy policy{1000ms, 30'000ms};
  const FetchError error{503, "busy", "", std::nullopt};
  EXPECT_EQ(next_attempt_delay(3, policy, 0.5, error), backoff_delay(3, policy, 0.5));
}

TEST(NextAttemptDelay, IsNeverEarlierThanRetryAfter) {
  const RetryPolicy policy{1000ms, 30'000ms};
  const FetchError error{429, "throttled", "", 20'000ms};
  for (int attempt = 1; attempt <= 10; ++attempt) {
    for (double jitter : {0.0, 0.3, 0.999}) {
      EXPECT_GE(next_attempt_delay(attempt, policy, jitter, error), 20'000ms);
    }
  }
}

TEST(NextAttemptDelay, AddsTheBackoffAfterRetryAfterSoThrottledCallersDoNotComeBackTogether) {
  // Many brokers throttled by one IMDS get the same Retry-After: the jittered backoff on top
  // spreads their next calls over the backoff's window instead of one instant.
  const RetryPolicy policy{1000ms, 30'000ms};
  const FetchError error{429, "throttled", "", 1000ms};
  EXPECT_EQ(next_attempt_delay(6, policy, 0.5, error), 1000ms + 15'000ms);
  EXPECT_EQ(next_attempt_delay(1, policy, 0.0, error), 1000ms);
  EXPECT_EQ(next_attempt_delay(1, policy, 0.5, error), 1500ms);
  EXPECT_EQ(next_attempt_delay(2, policy, 0.5, error), 2000ms);
}

}  // namespace
}  // namespace broker
