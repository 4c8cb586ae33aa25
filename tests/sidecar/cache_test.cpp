// TokenCache driven by a real io_context on the test thread, a FakeSource and a FakeClock.
// Real time is only spent where the cache itself waits on timers (backoff, waiters); those waits
// are kept to a few milliseconds by a tiny RetryPolicy.

#include "broker/cache.hpp"

#include "fakes.hpp"
#include "tb/crypto.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace broker {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::FakeClock;
using testing::FakeSource;
using testing::run_for;
using testing::run_until;
using testing::upstream_failure;
using testing::upstream_token;

const TokenKey kSql{{}, "https://database.windows.net/"};
const TokenKey kVault{{}, "https://vault.azure.net"};
const TokenKey kSqlAsUser{{Identity::Kind::client_id, "cid"}, "https://database.windows.net/"};

CacheOptions fast_options() {
  CacheOptions options;
  options.retry = RetryPolicy{1ms, 5ms};
  options.attempt_timeout = 1500ms;
  options.error_ttl = 5s;
  options.upstream_concurrency = 4;
  return options;
}

/// The result of a get() running as its own coroutine.
struct Pending {
  std::optional<GetResult> result;
  bool done() const { return result.has_value(); }
};

asio::awaitable<void> do_get(TokenCache& cache, TokenKey key, std::chrono::seconds min_validity,
                             SteadyTime deadline, std::shared_ptr<Pending> out) {
  out->result = co_await cache.get(std::move(key), min_validity, deadline);
}

/// The result of a refresh() running as its own coroutine.
struct PendingRefresh {
  std::optional<RefreshResult> result;
  bool done() const { return result.has_value(); }
};

asio::awaitable<void> do_refresh(TokenCache& cache, TokenKey key, std::string rejected,
                                 SteadyTime deadline, std::shared_ptr<PendingRefresh> out) {
  out->result = co_await cache.refresh(std::move(key), std::move(rejected), 60s, deadline);
}

Refreshed expect_refreshed(const PendingRefresh& pending) {
  if (!pending.result) {
    ADD_FAILURE() << "refresh() has not finished";
    return {};
  }
  if (const auto* error = std::get_if<TokenError>(&*pending.result)) {
    ADD_FAILURE() << "expected a token, got " << to_string(error->kind) << ": " << error->detail;
    return {};
  }
  return std::get<Refreshed>(*pending.result);
}

TokenError expect_refresh_error(const PendingRefresh& pending) {
  if (!pending.result) {
    ADD_FAILURE() << "refresh() has not finished";
    return {};
  }
  if (std::holds_alternative<Refreshed>(*pending.result)) {
    ADD_FAILURE() << "expected an error, got a token";
    return {};
  }
  return std::get<TokenError>(*pending.result);
}

std::string sha256_hex(const std::string& token) { return tb::hex(tb::sha256(token)); }

/// A labelled counter's value in the /metrics text (0 when absent).
double labelled_metric(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return 0;
}

TokenPtr expect_token(const Pending& pending) {
  if (!pending.result) {
    ADD_FAILURE() << "get() has not finished";
    return nullptr;
  }
  if (const auto* error = std::get_if<TokenError>(&*pending.result)) {
    ADD_FAILURE() << "expected a token, got " << to_string(error->kind) << ": " << error->detail;
    return nullptr;
  }
  return std::get<TokenPtr>(*pending.result);
}

TokenError expect_error(const Pending& pending) {
  if (!pending.result) {
    ADD_FAILURE() << "get() has not finished";
    return {};
  }
  if (std::holds_alternative<TokenPtr>(*pending.result)) {
    ADD_FAILURE() << "expected an error, got a token";
    return {};
  }
  return std::get<TokenError>(*pending.result);
}

/// The value of an unlabelled counter in the /metrics text.
double metric(const std::string& text, const std::string& name) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  ADD_FAILURE() << name << " not in metrics";
  return -1;
}

class TokenCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_level_ = spdlog::get_level();
    spdlog::set_level(spdlog::level::off);  // the cache logs every attempt; keep test output short
    make_cache(fast_options());
  }

  void TearDown() override {
    // Let every coroutine end before the cache and the fakes go away.
    cache_->stop();
    source_.hold(false);
    source_.release();
    io_.restart();
    io_.run_for(1s);
    EXPECT_TRUE(io_.stopped()) << "a cache coroutine was still running after stop()";
    cache_.reset();
    spdlog::set_level(previous_level_);
  }

  void make_cache(CacheOptions options) {
    options_ = options;
    cache_ = std::make_unique<TokenCache>(
        io_.get_executor(), source_, clock_, [] { return 0.5; }, options, metrics_);
  }

  std::shared_ptr<Pending> start_get(const TokenKey& key, std::chrono::seconds min_validity = 60s,
                                     std::chrono::steady_clock::duration wait = 10s) {
    auto pending = std::make_shared<Pending>();
    asio::co_spawn(io_, do_get(*cache_, key, min_validity, clock_.steady_now() + wait, pending),
                   asio::detached);
    return pending;
  }

  /// get() to completion (or until the real-time limit of run_until).
  std::shared_ptr<Pending> get(const TokenKey& key, std::chrono::seconds min_validity = 60s,
                               std::chrono::steady_clock::duration wait = 10s) {
    auto pending = start_get(key, min_validity, wait);
    EXPECT_TRUE(run_until(io_, [&] { return pending->done(); })) << "get() did not finish";
    return pending;
  }

  /// Moves the fake clock forward by `by` once `after` of real time has passed.
  void advance_clock_after(std::chrono::milliseconds after,
                           std::chrono::steady_clock::duration by) {
    auto timer = std::make_shared<asio::steady_timer>(io_, after);
    timer->async_wait([this, timer, by](boost::system::error_code) { clock_.advance(by); });
  }

  std::shared_ptr<PendingRefresh> start_refresh(const TokenKey& key, const std::string& rejected,
                                                std::chrono::steady_clock::duration wait = 10s) {
    auto pending = std::make_shared<PendingRefresh>();
    asio::co_spawn(io_, do_refresh(*cache_, key, rejected, clock_.steady_now() + wait, pending),
                   asio::detached);
    return pending;
  }

  std::shared_ptr<PendingRefresh> refresh(const TokenKey& key, const std::string& rejected,
                                          std::chrono::steady_clock::duration wait = 10s) {
    auto pending = start_refresh(key, rejected, wait);
    EXPECT_TRUE(run_until(io_, [&] { return pending->done(); })) << "refresh() did not finish";
    return pending;
  }

  std::optional<TokenCache::Status> status_of(const TokenKey& key) const {
    for (auto& status : cache_->status()) {
      if (status.key == key) return status;
    }
    return std::nullopt;
  }

  std::string metrics_text() const { return metrics_.render(cache_->expiries()); }

  asio::io_context io_;
  FakeClock clock_;
  FakeSource source_;
  Metrics metrics_;
  CacheOptions options_;
  std::unique_ptr<TokenCache> cache_;
  spdlog::level::level_enum previous_level_ = spdlog::level::info;
};

// ---- single flight ----

TEST_F(TokenCacheTest, HundredConcurrentColdGetsShareOneUpstreamCall) {
  source_.hold();
  source_.always(upstream_token("t1", 3600s, clock_));
  std::vector<std::shared_ptr<Pending>> gets;
  for (int i = 0; i < 100; ++i) gets.push_back(start_get(kSql));

  ASSERT_TRUE(run_until(io_, [&] { return source_.held() == 1; }));
  run_for(io_, 20ms);  // every get() is parked on the one call by now
  EXPECT_EQ(source_.calls(), 1);
  for (const auto& pending : gets) EXPECT_FALSE(pending->done());

  source_.release();
  ASSERT_TRUE(run_until(io_, [&] {
    return std::all_of(gets.begin(), gets.end(), [](const auto& p) { return p->done(); });
  }));
  EXPECT_EQ(source_.calls(), 1);
  const TokenPtr first = expect_token(*gets.front());
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->upstream.access_token, "t1");
  for (const auto& pending : gets) EXPECT_EQ(expect_token(*pending), first);
  EXPECT_EQ(source_.keys().front(), kSql);
}

TEST_F(TokenCacheTest, DifferentKeysGetSeparateConcurrentUpstreamCalls) {
  source_.hold();
  source_.always(upstream_token("t", 3600s, clock_));
  auto sql = start_get(kSql);
  auto vault = start_get(kVault);
  auto sql_as_user = start_get(kSqlAsUser);
  ASSERT_TRUE(run_until(io_, [&] { return source_.held() == 3; }));
  EXPECT_EQ(source_.calls(), 3);
  const auto& keys = source_.keys();
  EXPECT_EQ(std::count(keys.begin(), keys.end(), kSql), 1);
  EXPECT_EQ(std::count(keys.begin(), keys.end(), kVault), 1);
  EXPECT_EQ(std::count(keys.begin(), keys.end(), kSqlAsUser), 1);

  source_.release();
  ASSERT_TRUE(run_until(io_, [&] { return sql->done() && vault->done() && sql_as_user->done(); }));
  const auto a = expect_token(*sql), b = expect_token(*vault), c = expect_token(*sql_as_user);
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(b, c);
}

TEST_F(TokenCacheTest, SourceAnsweringWithoutSuspendingStillWakesTheFirstCaller) {
  // Not holding: FakeSource::fetch completes without ever suspending, as a source that fails a
  // local check (e.g. an unreadable token file) would. The caller must get the answer at once,
  // not at its deadline.
  source_.always(upstream_token("t1", 3600s, clock_));
  auto pending = start_get(kSql, 60s, 10s);
  ASSERT_TRUE(run_until(
      io_, [&] { return pending->done(); }, 1000ms));
  EXPECT_NE(expect_token(*pending), nullptr);

  source_.always(upstream_failure(400));
  auto rejected = start_get(kVault, 60s, 10s);
  ASSERT_TRUE(run_until(
      io_, [&] { return rejected->done(); }, 1000ms));
  EXPECT_EQ(expect_error(*rejected).upstream_status, 400u);
}

TEST_F(TokenCacheTest, HeldTokenIsServedFromTheCacheWithoutAnUpstreamCall) {
  source_.always(upstream_token("t1", 3600s, clock_));
  const auto first = expect_token(*get(kSql));
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(source_.calls(), 1);
  EXPECT_EQ(source_.last_timeout(), options_.attempt_timeout);

  clock_.advance(100s);
  const auto second = expect_token(*get(kSql));
  EXPECT_EQ(second, first);
  EXPECT_EQ(source_.calls(), 1);
  const auto text = metrics_text();
  EXPECT_EQ(metric(text, "token_broker_cache_waits_total"), 1);
  EXPECT_EQ(metric(text, "token_broker_cache_hits_total"), 1);
}

TEST_F(TokenCacheTest, HeldAnswersWithoutWaitingOnlyWhatGetWouldServeAtOnce) {
  // Nothing asked for yet: nothing held, and asking held() starts no fetch.
  EXPECT_EQ(cache_->held(kSql, 60s, clock_.steady_now()), nullptr);
  run_for(io_, 5ms);
  EXPECT_EQ(source_.calls(), 0);

  source_.always(upstream_token("t1", 3600s, clock_));
  const auto fetched = expect_token(*get(kSql));
  ASSERT_NE(fetched, nullptr);
  EXPECT_EQ(cache_->held(kSql, 60s, clock_.steady_now()), fetched);
  // Another identity for the same resource is another key.
  TokenKey other = kSql;
  other.identity = Identity{Identity::Kind::client_id, "00000000-0000-0000-0000-000000000001"};
  EXPECT_EQ(cache_->held(other, 60s, clock_.steady_now()), nullptr);
  // Not enough validity left for this caller: not held for it (get() would refresh).
  EXPECT_EQ(cache_->held(kSql, 3601s, clock_.steady_now()), nullptr);
  clock_.advance(3550s);
  EXPECT_EQ(cache_->held(kSql, 60s, clock_.steady_now()), nullptr);
  EXPECT_EQ(cache_->held(kSql, 30s, clock_.steady_now()), fetched);
  const auto text = metrics_text();
  EXPECT_EQ(metric(text, "token_broker_cache_hits_total"), 2) << "each token held() gives is a hit";
}

TEST_F(TokenCacheTest, TokenExpiresAtIsTakenFromTheSteadyClockWhenFetched) {
  source_.always(upstream_token("t1", 3600s, clock_));
  const auto before = clock_.steady_now();
  const auto token = expect_token(*get(kSql));
  ASSERT_NE(token, nullptr);
  EXPECT_EQ(token->acquired_at, before);
  EXPECT_EQ(token->expires_at, before + 3600s);
  EXPECT_FALSE(token->fingerprint.empty());
  EXPECT_EQ(token->fingerprint.find("t1"), std::string::npos);
}

// ---- fail-fast errors ----

TEST_F(TokenCacheTest, FailFastBadRequestReachesTheWaiterAtOnceAsA400) {
  source_.always(upstream_failure(400, "AADSTS500011: resource not found"));
  const auto error = expect_error(*get(kSql));
  EXPECT_EQ(error.upstream_status, 400u);
  EXPECT_EQ(error.kind, TokenError::Kind::upstream_rejected);
  EXPECT_NE(error.detail.find("HTTP 400"), std::string::npos) << error.detail;
  EXPECT_NE(error.detail.find("AADSTS500011"), std::string::npos) << error.detail;
  EXPECT_NE(error.detail.find(kSql.resource), std::string::npos) << error.detail;
  EXPECT_GE(error.retry_after, 1s);
  EXPECT_LE(error.retry_after, options_.error_ttl);
  EXPECT_EQ(source_.calls(), 1);
}

TEST_F(TokenCacheTest, FailFastErrorIsRememberedForErrorTtlWithoutCallingTheUpstream) {
  source_.always(upstream_failure(400));
  expect_error(*get(kSql));
  ASSERT_EQ(source_.calls(), 1);

  clock_.advance(3s);
  const auto again = expect_error(*get(kSql));
  EXPECT_EQ(again.upstream_status, 400u);
  EXPECT_EQ(source_.calls(), 1) << "a remembered error must not reach the upstream";
  EXPECT_EQ(again.retry_after, 2s);

  clock_.advance(3s);  // past error_ttl: the next caller tries again
  expect_error(*get(kSql));
  EXPECT_EQ(source_.calls(), 2);
}

TEST_F(TokenCacheTest, UpstreamUnauthorizedOrForbiddenIsARejectionWithItsStatus) {
  source_.always(upstream_failure(401));
  const auto unauthorized = expect_error(*get(kSql));
  EXPECT_EQ(unauthorized.kind, TokenError::Kind::upstream_rejected);
  EXPECT_EQ(unauthorized.upstream_status, 401u);
  source_.always(upstream_failure(403));
  const auto forbidden = expect_error(*get(kVault));
  EXPECT_EQ(forbidden.kind, TokenError::Kind::upstream_rejected);
  EXPECT_EQ(forbidden.upstream_status, 403u);
}

// ---- transient errors and deadlines ----

TEST_F(TokenCacheTest, TransientErrorsKeepWaitersWaitingUntilALaterAttemptSucceeds) {
  source_.then(upstream_failure(503));
  source_.then(upstream_failure(0, "connection refused"));
  source_.then(upstream_failure(429));
  source_.then(upstream_token("t1", 3600s, clock_));
  auto pending = get(kSql);
  const auto token = expect_token(*pending);
  ASSERT_NE(token, nullptr);
  EXPECT_EQ(token->upstream.access_token, "t1");
  EXPECT_EQ(source_.calls(), 4);
  EXPECT_TRUE(status_of(kSql)->last_error.empty());
}

TEST_F(TokenCacheTest, DeadlinePassingWhileUpstreamKeepsFailingGives503NamingTheFailure) {
  source_.always(upstream_failure(503, "IMDS is busy"));
  auto pending = start_get(kSql, 60s, 10s);
  advance_clock_after(60ms, 11s);
  ASSERT_TRUE(run_until(io_, [&] { return pending->done(); }));
  const auto error = expect_error(*pending);
  EXPECT_EQ(error.kind, TokenError::Kind::unavailable);
  EXPECT_EQ(error.kind, TokenError::Kind::unavailable);
  EXPECT_GE(error.retry_after, 1s);
  EXPECT_NE(error.detail.find("HTTP 503"), std::string::npos) << error.detail;
  EXPECT_NE(error.detail.find("IMDS is busy"), std::string::npos) << error.detail;
  EXPECT_GE(source_.calls(), 2) << "transient errors are retried while the caller waits";
}

TEST_F(TokenCacheTest, DeadlineWhileTheFirstCallIsStillRunningSaysSo) {
  source_.hold();
  source_.always(upstream_token("t1", 3600s, clock_));
  auto pending = start_get(kSql, 60s, 100ms);
  advance_clock_after(30ms, 1s);
  ASSERT_TRUE(run_until(io_, [&] { return pending->done(); }));
  const auto error = expect_error(*pending);
  EXPECT_EQ(error.kind, TokenError::Kind::unavailable);
  EXPECT_EQ(error.retry_after, 1s);
  EXPECT_NE(error.detail.find("in progress"), std::string::npos) << error.detail;
}

TEST_F(TokenCacheTest, DeadlineWhileAnAttemptHangsSaysHowLongItHasGoneUnanswered) {
  CacheOptions options = fast_options();
  options.attempt_timeout = 2500ms;
  make_cache(options);
  source_.hold();
  source_.always(upstream_token("t1", 3600s, clock_));
  auto pending = start_get(kSql, 60s, 100ms);
  advance_clock_after(30ms, 1200ms);
  ASSERT_TRUE(run_until(io_, [&] { return pending->done(); }));
  const auto error = expect_error(*pending);
  EXPECT_EQ(error.kind, TokenError::Kind::unavailable);
  EXPECT_NE(error.detail.find("still in progress: no answer after 1.2 s "
                              "(an attempt may take up to 2.5 s)"),
            std::string::npos)
      << error.detail;
}

TEST_F(TokenCacheTest, DeadlineWhileARetryHangsNamesTheLastFailureAndTheRunningAttempt) {
  source_.hold();
  source_.then(upstream_failure(503, "IMDS is busy"));
  source_.then(upstream_token("t1", 3600s, clock_));
  auto pending = start_get(kSql, 60s, 200ms);
  ASSERT_TRUE(run_until(io_, [&] { return source_.held() == 1; }));
  source_.release();  // the first attempt answers 503; the second one hangs
  ASSERT_TRUE(run_until(io_, [&] { return source_.calls() == 2 && source_.held() == 1; }));
  clock_.advance(1s);
  ASSERT_TRUE(run_until(io_, [&] { return pending->done(); }));
  const auto error = expect_error(*pending);
  EXPECT_NE(error.detail.find("last upstream attempt failed: HTTP 503"), std::string::npos)
      << error.detail;
  EXPECT_NE(error.detail.find("; attempt 2 is in progress: no answer after 1.0 s"),
            std::string::npos)
      << error.detail;
}

TEST_F(TokenCacheTest, DeadlineWhileQueuedForAnUpstreamSlotSaysSo) {
  CacheOptions options = fast_options();
  options.upstream_concurrency = 1;
  make_cache(options);
  source_.hold();
  source_.always(upstream_token("t1", 3600s, clock_));
  auto busy = start_get(kSql, 60s, 10s);
  ASSERT_TRUE(run_until(io_, [&] { return source_.held() == 1; }));
  auto queued = start_get(kVault, 60s, 100ms);
  advance_clock_after(30ms, 1s);
  ASSERT_TRUE(run_until(io_, [&] { return queued->done(); }));
  const auto error = expect_error(*queued);
  EXPECT_NE(error.detail.find("waiting for a free upstream slot (all 1 busy)"), std::string::npos)
      << error.detail;
  EXPECT_EQ(source_.calls(), 1);
}

TEST_F(TokenCacheTest, NextAttemptBeyondTheCallersWaitIs503AtOnceWithRetryAfterToIt) {
  // The upstream said Retry-After: 20; the caller waits at most 10 s. Waiting could only end
  // in the same answer 10 s later (the defect): it is answered as soon as the attempt failed.
  source_.always(upstream_failure(429, "throttled", 20'000ms));
  const auto error = expect_error(*get(kSql, 60s, 10s));
  EXPECT_EQ(error.kind, TokenError::Kind::unavailable);
  EXPECT_EQ(error.retry_after, 20s);
  EXPECT_NE(error.detail.find("next upstream attempt is in 20.0 s"), std::string::npos)
      << error.detail;
  EXPECT_NE(error.detail.find("HTTP 429"), std::string::npos) << error.detail;
  EXPECT_EQ(source_.calls(), 1) << "Retry-After: 20 must hold the next attempt back";

  // A second later a new caller hears the time that is left.
  clock_.advance(1s);
  EXPECT_EQ(expect_error(*get(kSql, 60s, 10s)).retry_after, 19s);
  // One who can wait past the next attempt waits for it.
  auto patient = start_get(kSql, 60s, 30s);
  run_for(io_, 20ms);
  EXPECT_FALSE(patient->done());
  cache_->stop();
  ASSERT_TRUE(run_until(io_, [&] { return patient->done(); }));
}

TEST_F(TokenCacheTest, TokensShorterThanTheCallersMinimumFromTheStartAre503AtOnce) {
  // The upstream issues 30 s tokens; a caller wants 60 s. No refresh can help: say so at once
  // instead of waiting the caller's whole timeout for "an upstream call still in progress".
  source_.always(upstream_token("short", 30s, clock_));
  const auto token = expect_token(*get(kSql, 10s));
  ASSERT_NE(token, nullptr);
  const auto error = expect_error(*get(kSql, 60s, 10s));
  EXPECT_EQ(error.kind, TokenError::Kind::unavailable);
  EXPECT_NE(error.detail.find("valid for 30 s"), std::string::npos) << error.detail;
  EXPECT_EQ(error.detail.find("in progress"), std::string::npos) << error.detail;
  run_for(io_, 20ms);
  EXPECT_EQ(source_.calls(), 1);
}

TEST_F(TokenCacheTest, ExpiryIsCountedFromExpiresOnToTheFractionOfASecond) {
  // 0.76 s into a second: expires_on is whole seconds, so 60 s from "now" in the upstream's
  // terms is 59.24 s from this instant. Counting 60 s from the arrival instead (the defect)
  // served tokens with 0.76 s less than the minimum a client computes from expires_on.
  clock_.set_system(clock_.system_now() + 760ms);
  source_.always(upstream_token("t1", 60s, clock_));
  const auto token = expect_token(*get(kSql, 30s));
  ASSERT_NE(token, nullptr);
  EXPECT_EQ(token->upstream.expires_on, FakeClock::kStartUnix + 60);
  EXPECT_EQ(token->expires_at, token->acquired_at + 59'240ms);
  // 59.24 s left is not 60 s: a caller who wants 60 is not served this token.
  EXPECT_EQ(cache_->held(kSql, 60s, clock_.steady_now()), nullptr);
  EXPECT_NE(cache_->held(kSql, 59s, clock_.steady_now()), nullptr);
}

TEST_F(TokenCacheTest, RetryAfterArrivingAfterTheCallerLeftStillHoldsBackTheNextCaller) {
  // The caller gives up while the upstream call is still running; the upstream then answers 429
  // with Retry-After: 20. Nobody waits, but the next caller must not trigger a call before then.
  source_.hold();
  source_.always(upstream_failure(429, "throttled", 20'000ms));
  auto gone = start_get(kSql, 60s, 100ms);
  advance_clock_after(30ms, 1s);
  ASSERT_TRUE(run_until(io_, [&] { return gone->done(); }));
  EXPECT_EQ(expect_error(*gone).kind, TokenError::Kind::unavailable);
  source_.hold(false);
  source_.release();
  run_for(io_, 20ms);
  ASSERT_EQ(source_.calls(), 1);

  auto next = start_get(kSql, 60s, 100ms);
  advance_clock_after(30ms, 1s);
  ASSERT_TRUE(run_until(io_, [&] { return next->done(); }));
  const auto error = expect_error(*next);
  EXPECT_EQ(error.kind, TokenError::Kind::unavailable);
  EXPECT_NE(error.detail.find("HTTP 429"), std::string::npos) << error.detail;
  EXPECT_GE(error.retry_after, 18s);
  EXPECT_EQ(source_.calls(), 1) << "Retry-After: 20 binds every later caller too";
}

TEST_F(TokenCacheTest, GoneWhileImdsUpgradesIsRetriedForTheWholeSeventySecondBudget) {
  // IMDS answers 410 while it is being upgraded, for up to 70 s. A caller willing to wait 80 s
  // keeps waiting through it (410 is not a fail-fast error) and gets the token when IMDS is back.
  source_.always(upstream_failure(410, "IMDS is being upgraded"));
  const auto started = clock_.steady_now();
  auto pending = start_get(kSql, 60s, 80s);
  int seen = 0;
  // The backoff is a few real milliseconds here; the fake clock moves 5 s per round instead.
  while (clock_.steady_now() - started < 75s) {
    ASSERT_TRUE(run_until(io_, [&] { return source_.calls() > seen; }))
        << "the cache stopped calling the upstream after " << seen << " 410s";
    seen = source_.calls();
    ASSERT_FALSE(pending->done()) << "gave up after " << seen << " 410s";
    clock_.advance(5s);
  }
  EXPECT_GE(seen, 15);
  const auto status = status_of(kSql);
  ASSERT_TRUE(status);
  EXPECT_NE(status->last_error.find("HTTP 410"), std::string::npos) << status->last_error;
  source_.always(upstream_token("t1", 3600s, clock_));
  ASSERT_TRUE(run_until(io_, [&] { return pending->done(); }));
  const auto token = expect_token(*pending);
  ASSERT_NE(token, nullptr);
  EXPECT_EQ(token->upstream.access_token, "t1");
}

// ---- refresh, stale serving ----

TEST_F(TokenCacheTest, StaleTokenIsServedWhileRefreshesFailUntilBelowMinValidity) {
  source_.then(upstream_token("t1", 3600s, clock_));
  source_.then(upstream_failure(503, "IMDS is busy"));
  const auto held = expect_token(*get(kSql));
  ASSERT_NE(held, nullptr);

  // Past the refresh time (half-life with jitter 0.5 = 1800 s), still valid for 1600 s.
  clock_.advance(2000s);
  // A caller that needs more than is left makes the cache refresh now (and gives up at once).
  const auto needs_more = expect_error(*get(kSql, 1700s, 0s));
  EXPECT_EQ(needs_more.kind, TokenError::Kind::unavailable);
  EXPECT_NE(needs_more.detail.find("1600 s left"), std::string::npos) << needs_more.detail;
  ASSERT_TRUE(run_until(io_, [&] { return source_.calls() >= 2; }));
  run_for(io_, 5ms);

  const auto served = expect_token(*get(kSql));
  EXPECT_EQ(served, held) << "the held token is served while refreshing fails";
  const auto text = metrics_text();
  EXPECT_GE(metric(text, "token_broker_stale_serves_total"), 1);
  EXPECT_GE(metric(text, "token_broker_refresh_failures_total"), 1);
  const auto status = status_of(kSql);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->held);
  EXPECT_NE(status->last_error.find("HTTP 503"), std::string::npos) << status->last_error;

  // 50 s left: below the default min_validity of 60 s, so it is not served any more.
  clock_.advance(1550s);
  const auto error = expect_error(*get(kSql, 60s, 0s));
  EXPECT_EQ(error.kind, TokenError::Kind::unavailable);
  EXPECT_EQ(error.kind, TokenError::Kind::unavailable);
  EXPECT_NE(error.detail.find("50 s left"), std::string::npos) << error.detail;
  EXPECT_NE(error.detail.find("HTTP 503"), std::string::npos) << error.detail;
  // A caller content with less still gets it.
  EXPECT_EQ(expect_token(*get(kSql, 30s, 0s)), held);
}

TEST_F(TokenCacheTest, CallerNeedingMoreValidityGetsAFreshTokenFromAnEarlyRefresh) {
  source_.then(upstream_token("t1", 3600s, clock_));
  const auto first = expect_token(*get(kSql));
  clock_.advance(10s);
  source_.always(upstream_token("t2", 3600s, clock_));
  const auto fresh = expect_token(*get(kSql, 3595s));
  ASSERT_NE(fresh, nullptr);
  EXPECT_NE(fresh, first);
  EXPECT_EQ(fresh->upstream.access_token, "t2");
  EXPECT_EQ(source_.calls(), 2);
  // Everyone now gets the newer token.
  EXPECT_EQ(expect_token(*get(kSql)), fresh);
}

TEST_F(TokenCacheTest, BrandNewTokenIsNotRefreshedEarlyForAGreedyCaller) {
  source_.always(upstream_token("t1", 3600s, clock_));
  expect_token(*get(kSql));
  const auto error = expect_error(*get(kSql, 3601s, 0s));
  EXPECT_EQ(error.kind, TokenError::Kind::unavailable);
  run_for(io_, 20ms);
  EXPECT_EQ(source_.calls(), 1);
}

TEST_F(TokenCacheTest, RefreshReturningTheSameTokenKeepsItAndBacksOff) {
  CacheOptions options = fast_options();
  options.retry = RetryPolicy{50ms, 1000ms};
  make_cache(options);
  const auto same = upstream_token("t1", 3600s, clock_);
  source_.always(same);
  const auto held = expect_token(*get(kSql));
  ASSERT_NE(held, nullptr);

  clock_.advance(2000s);
  expect_error(*get(kSql, 1700s, 0s));  // starts a refresh; the upstream hands back t1
  run_for(io_, 200ms);
  // With jitter 0.5 the backoff is 25, 50, 100, 200 ms…: at most 1 + 4 calls in 200 ms, no
  // matter how slow the machine is. A hot loop would make hundreds.
  EXPECT_GE(source_.calls(), 2);
  EXPECT_LE(source_.calls(), 6);

  EXPECT_EQ(expect_token(*get(kSql)), held);
  const auto status = status_of(kSql);
  ASSERT_TRUE(status);
  EXPECT_NE(status->last_error.find("not_newer"), std::string::npos) << status->last_error;
  EXPECT_GE(metric(metrics_text(), "token_broker_refresh_failures_total"), 1);
}

TEST_F(TokenCacheTest, NewerTokenFromARefreshClearsTheLastError) {
  source_.then(upstream_token("t1", 3600s, clock_));
  source_.then(upstream_failure(503));
  expect_token(*get(kSql));
  clock_.advance(2000s);
  expect_error(*get(kSql, 1700s, 0s));
  ASSERT_TRUE(run_until(io_, [&] { return source_.calls() >= 2; }));
  source_.always(upstream_token("t2", 3600s, clock_));
  ASSERT_TRUE(run_until(io_, [&] { return status_of(kSql)->last_error.empty(); }));
  EXPECT_EQ(expect_token(*get(kSql))->upstream.access_token, "t2");
  EXPECT_EQ(status_of(kSql)->time_left, 3600s);
}

// ---- forced refresh ----

TEST_F(TokenCacheTest, ForcedRefreshFetchesANewTokenAtOnceAndPassesTheRejectedHash) {
  source_.then(upstream_token("t1", 3600s, clock_));
  // Expires no later than t1: a scheduled refresh would keep t1 (not newer), a forced one not.
  source_.then(upstream_token("t2", 3600s, clock_));
  ASSERT_EQ(expect_token(*get(kSql))->upstream.access_token, "t1");

  const auto refreshed = expect_refreshed(*refresh(kSql, sha256_hex("t1")));
  ASSERT_NE(refreshed.token, nullptr);
  EXPECT_EQ(refreshed.token->upstream.access_token, "t2");
  EXPECT_TRUE(refreshed.is_new);
  EXPECT_FALSE(refreshed.shared);
  EXPECT_EQ(refreshed.token->sha256, sha256_hex("t2"));
  EXPECT_EQ(source_.calls(), 2);
  EXPECT_EQ(source_.replacing(), (std::vector<std::string>{"", sha256_hex("t1")}));
  // Everyone gets the new token from the cache now.
  EXPECT_EQ(expect_token(*get(kSql))->upstream.access_token, "t2");
  EXPECT_EQ(source_.calls(), 2);
  EXPECT_EQ(labelled_metric(metrics_text(),
                            R"(token_broker_forced_refreshes_total{outcome="new_token"})"),
            1);
}

TEST_F(TokenCacheTest, ListenersHearEachNewTokenWithItsVersionAndWhetherItWasForced) {
  std::vector<std::tuple<std::string, std::uint64_t, bool>> heard;
  cache_->on_new_token([&](const TokenKey& key, const TokenPtr& token) {
    EXPECT_EQ(key, kSql);
    heard.emplace_back(token->upstream.access_token, token->version, token->forced);
  });
  source_.then(upstream_token("t1", 3600s, clock_));
  source_.then(upstream_token("t2", 3600s, clock_));
  ASSERT_EQ(expect_token(*get(kSql))->version, 1U);
  ASSERT_EQ(expect_refreshed(*refresh(kSql, sha256_hex("t1"))).token->version, 2U);
  using Heard = std::tuple<std::string, std::uint64_t, bool>;
  EXPECT_EQ(heard, (std::vector<Heard>{Heard{"t1", 1, false}, Heard{"t2", 2, true}}));
}

TEST_F(TokenCacheTest, ForcedRefreshWithoutAHashReplacesTheHeldToken) {
  source_.then(upstream_token("t1", 3600s, clock_));
  source_.then(upstream_token("t2", 3600s, clock_));
  expect_token(*get(kSql));
  const auto refreshed = expect_refreshed(*refresh(kSql, ""));
  EXPECT_EQ(refreshed.token->upstream.access_token, "t2");
  EXPECT_TRUE(refreshed.is_new);
  EXPECT_EQ(source_.replacing().back(), sha256_hex("t1"));
}

TEST_F(TokenCacheTest, AnUpstreamHandingBackTheRejectedTokenIsReportedAsNotNew) {
  source_.always(upstream_token("t1", 3600s, clock_));  // an upstream cache, as IMDS has
  expect_token(*get(kSql));
  const auto refreshed = expect_refreshed(*refresh(kSql, sha256_hex("t1")));
  EXPECT_EQ(refreshed.token->upstream.access_token, "t1");
  EXPECT_FALSE(refreshed.is_new);
  EXPECT_EQ(source_.calls(), 2);
  EXPECT_EQ(labelled_metric(metrics_text(),
                            R"(token_broker_forced_refreshes_total{outcome="same_token"})"),
            1);
}

TEST_F(TokenCacheTest, AHeldTokenOtherThanTheRejectedOneIsAnsweredWithoutAnUpstreamCall) {
  source_.always(upstream_token("t1", 3600s, clock_));
  expect_token(*get(kSql));
  // This caller was rejected with an older token: the held one already replaces it.
  const auto refreshed = expect_refreshed(*refresh(kSql, sha256_hex("t0")));
  EXPECT_EQ(refreshed.token->upstream.access_token, "t1");
  EXPECT_TRUE(refreshed.is_new);
  EXPECT_TRUE(refreshed.shared);
  EXPECT_EQ(source_.calls(), 1);
}

TEST_F(TokenCacheTest, OneForcedRefreshPerIntervalTheNextIsRateLimitedWithRetryAfter) {
  source_.then(upstream_token("t1", 3600s, clock_));
  source_.then(upstream_token("t2", 3600s, clock_));
  source_.then(upstream_token("t3", 3600s, clock_));
  expect_token(*get(kSql));
  EXPECT_EQ(expect_refreshed(*refresh(kSql, sha256_hex("t1"))).token->upstream.access_token, "t2");

  clock_.advance(10s);
  const auto limited = expect_refresh_error(*refresh(kSql, sha256_hex("t2")));
  EXPECT_EQ(limited.kind, TokenError::Kind::rate_limited);
  EXPECT_EQ(limited.retry_after, 20s);
  EXPECT_EQ(source_.calls(), 2);
  // The held token is still served to ordinary callers.
  EXPECT_EQ(expect_token(*get(kSql))->upstream.access_token, "t2");

  clock_.advance(20s);
  const auto again = expect_refreshed(*refresh(kSql, sha256_hex("t2")));
  EXPECT_EQ(again.token->upstream.access_token, "t3");
  EXPECT_EQ(source_.calls(), 3);
}

TEST_F(TokenCacheTest, CallersDuringAForcedCallShareItAndNobodyIsServedTheSuspectToken) {
  source_.then(upstream_token("t1", 3600s, clock_));
  source_.then(upstream_token("t2", 3600s, clock_));
  expect_token(*get(kSql));
  source_.hold();
  auto first = start_refresh(kSql, sha256_hex("t1"));
  auto second = start_refresh(kSql, sha256_hex("t1"));
  auto plain = start_get(kSql);
  ASSERT_TRUE(run_until(io_, [&] { return source_.held() == 1; }));
  run_for(io_, 20ms);
  EXPECT_FALSE(first->done());
  EXPECT_FALSE(second->done());
  EXPECT_FALSE(plain->done());
  EXPECT_EQ(cache_->held(kSql, 60s, clock_.steady_now()), nullptr);

  source_.release();
  ASSERT_TRUE(run_until(io_, [&] { return first->done() && second->done() && plain->done(); }));
  EXPECT_EQ(expect_refreshed(*first).token->upstream.access_token, "t2");
  EXPECT_FALSE(expect_refreshed(*first).shared);
  EXPECT_EQ(expect_refreshed(*second).token->upstream.access_token, "t2");
  EXPECT_TRUE(expect_refreshed(*second).shared);
  EXPECT_EQ(expect_token(*plain)->upstream.access_token, "t2");
  EXPECT_EQ(source_.calls(), 2);
}

TEST_F(TokenCacheTest, AFailedForcedRefreshIsAnErrorAndTheHeldTokenIsServedAgain) {
  source_.then(upstream_token("t1", 3600s, clock_));
  source_.then(upstream_failure(503));
  expect_token(*get(kSql));
  const auto failed = expect_refresh_error(*refresh(kSql, sha256_hex("t1")));
  EXPECT_EQ(failed.kind, TokenError::Kind::unavailable);
  EXPECT_NE(failed.detail.find("503"), std::string::npos) << failed.detail;
  EXPECT_EQ(expect_token(*get(kSql))->upstream.access_token, "t1");
  EXPECT_EQ(
      labelled_metric(metrics_text(), R"(token_broker_forced_refreshes_total{outcome="failed"})"),
      1);
}

TEST_F(TokenCacheTest, AForcedRefreshOfAKeyNeverFetchedIsAnOrdinaryFirstCall) {
  source_.always(upstream_token("t1", 3600s, clock_));
  const auto refreshed = expect_refreshed(*refresh(kVault, ""));
  EXPECT_EQ(refreshed.token->upstream.access_token, "t1");
  EXPECT_TRUE(refreshed.is_new);
  EXPECT_EQ(source_.calls(), 1);
}

// ---- idle eviction ----

TEST_F(TokenCacheTest, AKeyNobodyAskedForInIdleEvictIsDroppedAtItsRefreshNotRefreshed) {
  CacheOptions options = fast_options();
  options.idle_evict = 3600s;
  make_cache(options);
  // Day-long tokens that the cache refreshes after 1 s of real time (refresh_in).
  auto token = [&](const std::string& name) {
    auto t = upstream_token(name, 86400s, clock_);
    t.refresh_in = 1s;
    return t;
  };
  source_.always(token("t1"));
  expect_token(*get(kSql));        // asked for once, then never again
  expect_token(*get(kSqlAsUser));  // asked for again below
  cache_->prefetch(kVault);        // prefetched: never dropped
  ASSERT_TRUE(run_until(io_, [&] { return status_of(kVault) && status_of(kVault)->held; }));
  ASSERT_EQ(source_.calls(), 3);

  clock_.advance(2h);
  source_.always(token("t2"));
  expect_token(*get(kSqlAsUser));
  ASSERT_TRUE(run_until(
      io_,
      [&] {
        return !status_of(kSql) &&
               std::count(source_.keys().begin(), source_.keys().end(), kVault) >= 2 &&
               std::count(source_.keys().begin(), source_.keys().end(), kSqlAsUser) >= 2;
      },
      5000ms));
  EXPECT_EQ(std::count(source_.keys().begin(), source_.keys().end(), kSql), 1)
      << "an idle key is not refreshed";
  EXPECT_TRUE(status_of(kVault));
  EXPECT_TRUE(status_of(kSqlAsUser));
  EXPECT_EQ(metric(metrics_text(), "token_broker_idle_evictions_total"), 1);
  // Asked for again, it is fetched again.
  EXPECT_EQ(expect_token(*get(kSql))->upstream.access_token, "t2");
  EXPECT_EQ(std::count(source_.keys().begin(), source_.keys().end(), kSql), 2);
}

TEST_F(TokenCacheTest, IdleEvictZeroKeepsRefreshingEveryKey) {
  CacheOptions options = fast_options();
  options.idle_evict = 0s;
  make_cache(options);
  auto t1 = upstream_token("t1", 86400s, clock_);
  t1.refresh_in = 1s;
  source_.always(t1);
  expect_token(*get(kSql));
  clock_.advance(48h - 1s);  // the token is nearly over, and nobody asked for it
  auto t2 = upstream_token("t2", 86400s, clock_);
  source_.always(t2);
  ASSERT_TRUE(run_until(
      io_, [&] { return source_.calls() >= 2; }, 5000ms));
  EXPECT_TRUE(status_of(kSql));
}

// ---- prefetch, status, limits, stop ----

TEST_F(TokenCacheTest, PrefetchStartsAFetchAndStatusReportsPrefetchedThenHeld) {
  source_.hold();
  source_.always(upstream_token("t1", 3600s, clock_));
  cache_->prefetch(kSql);
  auto status = status_of(kSql);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->prefetched);
  EXPECT_FALSE(status->held);

  ASSERT_TRUE(run_until(io_, [&] { return source_.held() == 1; }));
  cache_->prefetch(kSql);  // already fetching: no second call
  run_for(io_, 10ms);
  EXPECT_EQ(source_.calls(), 1);

  source_.release();
  ASSERT_TRUE(run_until(io_, [&] { return status_of(kSql)->held; }));
  status = status_of(kSql);
  EXPECT_TRUE(status->prefetched);
  EXPECT_EQ(status->time_left, 3600s);
  EXPECT_TRUE(status->last_error.empty());

  // Served from the cache, no further call.
  expect_token(*get(kSql));
  EXPECT_EQ(source_.calls(), 1);
  const auto expiries = cache_->expiries();
  ASSERT_EQ(expiries.size(), 1u);
  EXPECT_EQ(expiries[0].resource, kSql.resource);
  EXPECT_EQ(expiries[0].identity, "default");
  EXPECT_DOUBLE_EQ(expiries[0].seconds_left, 3600.0);
}

TEST_F(TokenCacheTest, PrefetchJitterDelaysTheFirstCallByItsShareOfTheSpread) {
  auto options = fast_options();
  options.prefetch_jitter = 400ms;  // the test's jitter is 0.5: the call comes after 200 ms
  make_cache(options);
  source_.always(upstream_token("t1", 3600s, clock_));
  const auto started = std::chrono::steady_clock::now();
  cache_->prefetch(kSql);
  run_for(io_, 50ms);
  EXPECT_EQ(source_.calls(), 0) << "called before its turn";
  EXPECT_FALSE(status_of(kSql)->held);
  ASSERT_TRUE(run_until(io_, [&] { return status_of(kSql)->held; }));
  EXPECT_GE(std::chrono::steady_clock::now() - started, 200ms);
  EXPECT_EQ(source_.calls(), 1);
}

TEST_F(TokenCacheTest, ACallerDoesNotWaitForAPrefetchsJitter) {
  auto options = fast_options();
  options.prefetch_jitter = 600s;  // 300 s: far beyond the test
  make_cache(options);
  source_.always(upstream_token("t1", 3600s, clock_));
  cache_->prefetch(kSql);
  run_for(io_, 10ms);
  EXPECT_EQ(source_.calls(), 0);
  auto first = start_get(kSql);
  auto second = start_get(kSql);
  ASSERT_TRUE(run_until(io_, [&] { return first->done() && second->done(); }));
  EXPECT_EQ(expect_token(*first)->upstream.access_token, "t1");
  expect_token(*second);
  run_for(io_, 20ms);
  EXPECT_EQ(source_.calls(), 1) << "the callers and the prefetch share one call";
  EXPECT_TRUE(status_of(kSql)->prefetched);
}

TEST_F(TokenCacheTest, StatusOfAKeyOnlyAskedForIsNotPrefetchedAndShowsTheLastError) {
  source_.always(upstream_failure(403, "identity not assigned"));
  expect_error(*get(kSql));
  const auto status = status_of(kSql);
  ASSERT_TRUE(status);
  EXPECT_FALSE(status->prefetched);
  EXPECT_FALSE(status->held);
  EXPECT_NE(status->last_error.find("HTTP 403"), std::string::npos) << status->last_error;
  EXPECT_NE(status->last_error.find("identity not assigned"), std::string::npos);
}

TEST_F(TokenCacheTest, UpstreamConcurrencyIsCappedAndFreedSlotsWakeEveryQueuedFetch) {
  CacheOptions options = fast_options();
  options.upstream_concurrency = 2;
  make_cache(options);
  source_.hold();
  source_.always(upstream_token("t", 3600s, clock_));
  const std::vector<TokenKey> keys = {{{}, "r1"}, {{}, "r2"}, {{}, "r3"}, {{}, "r4"}};
  for (const auto& key : keys) cache_->prefetch(key);

  ASSERT_TRUE(run_until(io_, [&] { return source_.held() == 2; }));
  run_for(io_, 10ms);
  EXPECT_EQ(source_.in_flight(), 2) << "at most upstream_concurrency calls at a time";

  // Both calls finish in the same turn: both freed slots must go to the two queued fetches.
  source_.release();
  EXPECT_TRUE(run_until(
      io_, [&] { return source_.held() == 2; }, 300ms))
      << "only " << source_.held() << " of the 2 queued fetches started after 2 slots freed";
  EXPECT_EQ(source_.calls(), 4);

  source_.release();
  ASSERT_TRUE(run_until(io_, [&] {
    const auto all = cache_->status();
    return std::all_of(all.begin(), all.end(), [](const auto& s) { return s.held; });
  }));
}

TEST_F(TokenCacheTest, TooManyDistinctKeysAreRefused) {
  CacheOptions options = fast_options();
  options.max_entries = 2;
  make_cache(options);
  source_.always(upstream_token("t", 3600s, clock_));
  expect_token(*get({{}, "r1"}));
  expect_token(*get({{}, "r2"}));
  const auto error = expect_error(*get({{}, "r3"}));
  EXPECT_EQ(error.kind, TokenError::Kind::too_many_tokens);
  EXPECT_GE(error.retry_after, 1s);
  EXPECT_EQ(source_.calls(), 2);
  // Known keys are still served.
  expect_token(*get({{}, "r1"}));
}

TEST_F(TokenCacheTest, StopReleasesWaitersWithShuttingDown) {
  source_.hold();
  source_.always(upstream_token("t1", 3600s, clock_));
  auto first = start_get(kSql);
  auto second = start_get(kVault);
  ASSERT_TRUE(run_until(io_, [&] { return source_.held() == 2; }));

  cache_->stop();
  ASSERT_TRUE(run_until(io_, [&] { return first->done() && second->done(); }));
  for (const auto& pending : {first, second}) {
    const auto error = expect_error(*pending);
    EXPECT_EQ(error.kind, TokenError::Kind::shutting_down);
    EXPECT_GE(error.retry_after, 1s);
  }
  // New callers are turned away too, without reaching the upstream.
  const auto later = expect_error(*get({{}, "r-new"}));
  EXPECT_EQ(later.kind, TokenError::Kind::shutting_down);
  EXPECT_EQ(source_.calls(), 2);
}

}  // namespace
}  // namespace broker
