#include "broker/cache.hpp"
#include "tb/asio_frame_warning.hpp"  // gcc 12 false positive, see there

#include "broker/refresh.hpp"
#include "tb/crypto.hpp"
#include "tb/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <cstdio>

namespace broker {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
/// Expiry fields further apart than this are logged (clocks and rounding make a second or two).
constexpr std::chrono::seconds kExpiryDisagreement{5};

std::chrono::seconds ceil_seconds(std::chrono::steady_clock::duration d) {
  return std::max(1s, std::chrono::ceil<std::chrono::seconds>(d));
}

/// "https://database.windows.net/ (client_id=…)": the key as errors name it.
std::string key_text(const TokenKey& key) {
  return key.resource + " (" + to_string(key.identity) + ")";
}

std::string describe(const FetchError& error) {
  std::string out;
  if (error.status != 0) out = "HTTP " + std::to_string(error.status) + " ";
  out += error.error;
  if (!error.description.empty()) out += ": " + error.description;
  return out;
}

double seconds_between(SteadyTime from, SteadyTime to) {
  return std::chrono::duration<double>(to - from).count();
}

/// "1.2 s"
std::string one_decimal_seconds(std::chrono::steady_clock::duration d) {
  std::array<char, 32> text{};
  if (std::snprintf(text.data(), text.size(), "%.1f s", std::chrono::duration<double>(d).count()) <
      0) {
    return "? s";
  }
  return text.data();
}

}  // namespace

std::string_view to_string(TokenError::Kind kind) {
  switch (kind) {
    case TokenError::Kind::too_many_tokens:
      return "too_many_tokens";
    case TokenError::Kind::shutting_down:
      return "shutting_down";
    case TokenError::Kind::upstream_rejected:
      return "upstream_rejected";
    case TokenError::Kind::unavailable:
      return "token_unavailable";
    case TokenError::Kind::rate_limited:
      return "refresh_rate_limited";
  }
  return "token_unavailable";
}

struct TokenCache::Entry {
  Entry(const asio::any_io_executor& executor, TokenKey k) : key(std::move(k)), wake(executor) {}

  /// delayed_start: a prefetch waiting out its start-up jitter (no call made yet).
  enum class State { idle, delayed_start, fetching, waiting_refresh, backing_off };

  TokenKey key;
  TokenPtr token;
  std::optional<FetchError> last_error;
  SteadyTime fail_fast_until{};  ///< a fail-fast error is answered from memory until then
  SteadyTime next_attempt_at{};  ///< when the loop calls the upstream again
  SteadyTime refresh_at{};       ///< serving after this while refreshes fail counts as stale
  SteadyTime call_started_at{};  ///< when the upstream call in flight (if any) started
  bool in_call = false;          ///< an upstream call is in flight (not just waiting for a slot)
  State state = State::idle;
  bool prefetch = false;
  int failures = 0;
  asio::steady_timer wake;
  std::vector<asio::steady_timer*> waiters;

  // Forced refresh (refresh()): at most one generation is asked for or in flight at a time.
  bool force_requested = false;         ///< the next upstream attempt is a forced one
  bool force_in_call = false;           ///< the attempt in flight is a forced one
  std::uint64_t force_generation = 0;   ///< forced refreshes asked for so far
  std::uint64_t force_completed = 0;    ///< the last generation whose attempt has ended
  bool force_ok = false;                ///< whether that attempt got a token
  std::string force_replacing;          ///< SHA-256 of the token it replaces (empty: none held)
  std::optional<SteadyTime> forced_at;  ///< when the last forced refresh was asked for
  SteadyTime last_used{};               ///< when a caller last asked for it (idle_evict)
  std::uint64_t versions = 0;           ///< tokens installed so far (Token::version)
  int watchers = 0;                     ///< GET /v1/token/watch streams on it (no idle eviction)
};

TokenCache::TokenCache(asio::any_io_executor executor, Source& source, const Clock& clock,
                       Jitter jitter, CacheOptions options, Metrics& metrics)
    : executor_(std::move(executor)),
      source_(source),
      clock_(clock),
      jitter_(std::move(jitter)),
      options_(options),
      metrics_(metrics) {}

TokenCache::~TokenCache() = default;

TokenCache::Entry* TokenCache::find_or_create(const TokenKey& key) {
  auto flat = key.flat();
  if (auto it = entries_.find(flat); it != entries_.end()) return it->second.get();
  if (entries_.size() >= options_.max_entries) return nullptr;
  auto [it, inserted] = entries_.emplace(std::move(flat), std::make_unique<Entry>(executor_, key));
  it->second->last_used = clock_.steady_now();
  return it->second.get();
}

TokenPtr TokenCache::held(const TokenKey& key, std::chrono::seconds min_validity, SteadyTime now) {
  const auto it = entries_.find(key.flat());
  if (it == entries_.end()) return nullptr;
  Entry& entry = *it->second;
  if (!entry.token || suspect(entry) || !usable(*entry.token, now, min_validity)) return nullptr;
  entry.last_used = now;
  metrics_.cache_hit();
  if (entry.failures > 0 && now >= entry.refresh_at) metrics_.stale_serve();
  return entry.token;
}

bool TokenCache::would_fetch(const TokenKey& key) const {
  const auto it = entries_.find(key.flat());
  return it == entries_.end() || it->second->state == Entry::State::idle;
}

bool TokenCache::would_force(const TokenKey& key, const std::string& rejected_sha256) const {
  const auto it = entries_.find(key.flat());
  if (it == entries_.end()) return true;
  const Entry& entry = *it->second;
  if (suspect(entry)) return false;  // shared
  return !(entry.token && !rejected_sha256.empty() && entry.token->sha256 != rejected_sha256);
}

void TokenCache::watched(const TokenKey& key, int delta) {
  if (const auto it = entries_.find(key.flat()); it != entries_.end()) {
    auto& entry = *it->second;
    entry.watchers = std::max(0, entry.watchers + delta);
    entry.last_used = clock_.steady_now();
  }
}

void TokenCache::prefetch(const TokenKey& key) {
  if (Entry* entry = find_or_create(key)) {
    entry->prefetch = true;
    if (entry->state != Entry::State::idle) return;
    // One draw for all of this broker's prefetches: it is ready when the last one is held, so
    // a draw each would make it wait for the largest of them (2/3 of the spread for two).
    if (!prefetch_share_) prefetch_share_ = std::clamp(jitter_(), 0.0, 1.0);
    start(*entry, std::chrono::milliseconds(static_cast<std::int64_t>(
                      static_cast<double>(options_.prefetch_jitter.count()) * *prefetch_share_)));
  }
}

void TokenCache::start(Entry& entry, std::chrono::milliseconds delay) {
  entry.state = delay.count() > 0 ? Entry::State::delayed_start : Entry::State::fetching;
  // Post, don't dispatch: co_spawn would run the loop inline up to its first suspension, and a
  // source that answers without suspending would then notify before the caller (get) has
  // registered as a waiter, leaving it asleep until its deadline.
  asio::post(executor_, [this, &entry, delay] {
    asio::co_spawn(executor_, run(entry, delay), asio::detached);
  });
}

bool TokenCache::suspect(const Entry& entry) {
  return entry.force_requested || entry.force_in_call;
}

TokenError TokenCache::too_many_error() const {
  return TokenError{TokenError::Kind::too_many_tokens,
                    "the broker already holds " + std::to_string(options_.max_entries) +
                        " distinct tokens; ask for fewer distinct resources/identities",
                    30s};
}

asio::awaitable<GetResult> TokenCache::get(TokenKey key, std::chrono::seconds min_validity,
                                           SteadyTime deadline) {
  Entry* entry = find_or_create(key);
  if (entry == nullptr) co_return too_many_error();
  entry->last_used = clock_.steady_now();
  bool waited = false;
  for (;;) {
    const auto now = clock_.steady_now();
    if (entry->token && !suspect(*entry) && usable(*entry->token, now, min_validity)) {
      if (waited) {
        metrics_.cache_wait();
      } else {
        metrics_.cache_hit();
      }
      if (entry->failures > 0 && now >= entry->refresh_at) metrics_.stale_serve();
      co_return entry->token;
    }
    if (stopped_) {
      co_return TokenError{TokenError::Kind::shutting_down, "token-broker is shutting down", 1s};
    }
    if (entry->last_error && now < entry->fail_fast_until)
      co_return fail_fast_error(*entry, *entry->last_error, now);
    // Until when this caller sleeps unless woken by a new token or error.
    SteadyTime sleep_until = deadline;
    if (suspect(*entry)) {
      // A forced refresh is under way (refresh() started the loop): wait for its token, unless
      // it waits for a backoff that ends after this caller's deadline.
      if (entry->state == Entry::State::backing_off && entry->next_attempt_at >= deadline) {
        co_return backing_off_error(*entry, now);
      }
    } else if (entry->state == Entry::State::idle) {
      start(*entry);
    } else if (entry->state == Entry::State::delayed_start) {
      entry->wake.cancel();  // a caller needs it now: no more waiting for the prefetch's turn
    } else if (entry->state == Entry::State::waiting_refresh) {
      // The held token is too short for this caller.
      if (entry->token->expires_at - entry->token->acquired_at < min_validity) {
        // The upstream's tokens are shorter than that from the start: a refresh cannot help.
        co_return too_short_error(*entry, min_validity);
      }
      if (now - entry->token->acquired_at >= options_.retry.base) {
        // Refresh now rather than at the scheduled time.
        entry->wake.cancel();
      } else {
        // Not for a brand-new token, so callers cannot make the broker hammer the upstream:
        // come back when the token is old enough to be refreshed.
        sleep_until = std::min(deadline, entry->token->acquired_at + options_.retry.base);
      }
    } else if (entry->state == Entry::State::backing_off && entry->next_attempt_at >= deadline) {
      // No upstream attempt will even start before this caller's deadline: waiting would only
      // end in the same 503 later.
      co_return backing_off_error(*entry, now);
    }
    if (now >= deadline) co_return timeout_error(*entry, now);

    asio::steady_timer timer(executor_, sleep_until - now);
    entry->waiters.push_back(&timer);
    co_await timer.async_wait(use_nothrow);
    std::erase(entry->waiters, &timer);
    waited = true;
  }
}

asio::awaitable<RefreshResult> TokenCache::refresh(TokenKey key, std::string rejected_sha256,
                                                   std::chrono::seconds min_validity,
                                                   SteadyTime deadline) {
  Entry* entry = find_or_create(key);
  if (entry == nullptr) co_return too_many_error();
  if (stopped_) {
    co_return TokenError{TokenError::Kind::shutting_down, "token-broker is shutting down", 1s};
  }
  auto now = clock_.steady_now();
  entry->last_used = now;
  json fields = {{"resource", entry->key.resource}, {"identity", to_string(entry->key.identity)}};
  if (!rejected_sha256.empty()) fields["rejected_sha256"] = rejected_sha256.substr(0, 12);
  const auto outcome = [&](std::string_view what) {
    metrics_.forced_refresh(what);
    fields["outcome"] = what;
  };

  std::uint64_t generation = 0;
  bool shared = false;
  if (suspect(*entry)) {
    // Another caller's forced refresh is asked for or in flight: share it.
    generation = entry->force_generation;
    shared = true;
  } else if (!rejected_sha256.empty() && entry->token && entry->token->sha256 != rejected_sha256 &&
             usable(*entry->token, now, min_validity)) {
    // The held token has already replaced the rejected one (another caller's forced refresh,
    // or the schedule's): no upstream call.
    outcome("already_replaced");
    fields["token_sha256"] = entry->token->fingerprint;
    tb::log::info("forced refresh answered with the token already held", fields);
    co_return Refreshed{entry->token, true, true};
  } else {
    if (entry->last_error && now < entry->fail_fast_until) {
      outcome("failed");
      co_return fail_fast_error(*entry, *entry->last_error, now);
    }
    if (entry->forced_at && now < *entry->forced_at + options_.force_refresh_interval) {
      outcome("rate_limited");
      tb::log::warn("forced refresh refused: too soon after the last one", fields);
      co_return TokenError{
          TokenError::Kind::rate_limited,
          "the token for " + key_text(entry->key) + " was force-refreshed " +
              one_decimal_seconds(now - *entry->forced_at) +
              " ago; at most one forced refresh "
              "per " +
              std::to_string(options_.force_refresh_interval.count()) +
              " s per resource and identity (--force-refresh-interval): retry after the delay, "
              "and if the new token is rejected too, check the identity's role assignments",
          ceil_seconds(*entry->forced_at + options_.force_refresh_interval - now)};
    }
    if (entry->state == Entry::State::backing_off && entry->next_attempt_at >= deadline) {
      // The upstream is failing and its backoff ends after this caller's wait: a forced call
      // must not break the backoff (nor Retry-After) that protects the upstream.
      outcome("failed");
      co_return backing_off_error(*entry, now);
    }
    entry->forced_at = now;
    entry->force_requested = true;
    generation = ++entry->force_generation;
    entry->force_replacing = !rejected_sha256.empty() ? rejected_sha256
                             : entry->token           ? entry->token->sha256
                                                      : std::string();
    switch (entry->state) {
      case Entry::State::idle:
        start(*entry);
        break;
      case Entry::State::delayed_start:
      case Entry::State::waiting_refresh:
        entry->wake.cancel();  // the loop's next attempt, now, is the forced one
        break;
      case Entry::State::backing_off:  // the attempt after the backoff is the forced one
      case Entry::State::fetching:     // the attempt in flight, or the next (see run)
        break;
    }
  }
  // What "new" is measured against: the token this caller was refused with, else the one held.
  const std::string replacing = !rejected_sha256.empty() ? rejected_sha256 : entry->force_replacing;
  while (entry->force_completed < generation) {
    if (stopped_) {
      co_return TokenError{TokenError::Kind::shutting_down, "token-broker is shutting down", 1s};
    }
    now = clock_.steady_now();
    if (entry->state == Entry::State::backing_off && entry->next_attempt_at >= deadline) {
      outcome("failed");
      co_return backing_off_error(*entry, now);
    }
    if (now >= deadline) {
      outcome("failed");
      co_return timeout_error(*entry, now);
    }
    asio::steady_timer timer(executor_, deadline - now);
    entry->waiters.push_back(&timer);
    co_await timer.async_wait(use_nothrow);
    std::erase(entry->waiters, &timer);
  }
  now = clock_.steady_now();
  if (!entry->force_ok || !entry->token) {
    outcome("failed");
    if (entry->last_error && now < entry->fail_fast_until) {
      co_return fail_fast_error(*entry, *entry->last_error, now);
    }
    co_return TokenError{
        TokenError::Kind::unavailable,
        "the forced refresh of the token for " + key_text(entry->key) + " failed: " +
            (entry->last_error ? describe(*entry->last_error) : std::string("no token")) +
            (entry->token ? "; the broker serves the token it held again" : ""),
        entry->next_attempt_at > now ? ceil_seconds(entry->next_attempt_at - now) : 1s};
  }
  if (!usable(*entry->token, now, min_validity)) {
    outcome("failed");
    co_return TokenError{
        TokenError::Kind::unavailable,
        "the forced refresh of the token for " + key_text(entry->key) + " got a token with " +
            std::to_string(time_left(*entry->token, now).count()) + " s left, less than the " +
            std::to_string(min_validity.count()) + " s asked; ask for a shorter min_validity",
        1s};
  }
  const bool is_new = entry->token->sha256 != replacing;
  outcome(shared ? "shared" : is_new ? "new_token" : "same_token");
  co_return Refreshed{entry->token, is_new, shared};
}

bool TokenCache::wanted(const Entry& entry) const {
  // A forced refresh asked for keeps the loop going even when its caller has left: otherwise
  // the key would stay suspect, and unserved, for good.
  return !stopped_ && (entry.prefetch || entry.token || !entry.waiters.empty() || suspect(entry));
}

asio::awaitable<void> TokenCache::run(Entry& entry, std::chrono::milliseconds first_delay) {
  if (first_delay.count() > 0) {
    entry.next_attempt_at = clock_.steady_now() + first_delay;
    entry.wake.expires_after(first_delay);
    co_await entry.wake.async_wait(use_nothrow);  // cancelled when a caller needs the key
    entry.next_attempt_at = {};
  }
  while (!stopped_) {
    entry.state = Entry::State::fetching;
    co_await acquire_slot();
    if (stopped_) {
      release_slot();
      break;
    }
    // A forced refresh asked for before this attempt started makes it a forced one.
    const bool forced = entry.force_requested;
    const std::uint64_t force_generation = entry.force_generation;
    std::string replacing;
    if (forced) {
      entry.force_requested = false;
      entry.force_in_call = true;
      replacing = entry.force_replacing;
    }
    const auto started = clock_.steady_now();
    entry.call_started_at = started;
    entry.in_call = true;
    FetchResult result = FetchError{0, "internal_error", "the source failed", std::nullopt};
    try {
      // (No co_await inside ?: — GCC 12 miscompiles that.)
      if (forced) {
        result = co_await source_.fetch_replacing(entry.key, options_.attempt_timeout, replacing);
      } else {
        result = co_await source_.fetch(entry.key, options_.attempt_timeout);
      }
    } catch (const std::exception& e) {
      // Keep the loop (and its upstream slot) alive: a throwing source is one failed attempt.
      result = FetchError{0, "internal_error", e.what(), std::nullopt};
    }
    // What an upstream says goes to logs, /readyz and callers: never a credential it echoed.
    if (auto* failed = std::get_if<FetchError>(&result)) {
      *failed = redact_upstream_error(std::move(*failed));
    }
    entry.in_call = false;
    entry.force_in_call = false;
    release_slot();
    if (stopped_) break;
    const auto now = clock_.steady_now();
    const double took = seconds_between(started, now);
    json fields = {{"resource", entry.key.resource},
                   {"identity", to_string(entry.key.identity)},
                   {"source", source_.name()},
                   {"duration_ms", static_cast<std::int64_t>(took * 1000)}};
    if (forced) fields["forced"] = true;
    std::visit(
        [&](const auto& outcome) {
          if (!outcome.request_id.empty()) fields["request_id"] = outcome.request_id;
        },
        result);

    std::chrono::milliseconds delay{};
    if (auto* fresh = std::get_if<UpstreamToken>(&result)) {
      if (!forced && entry.token && !is_newer(*fresh, *entry.token)) {
        // The upstream handed back the token we hold (or an older one): keep ours and back off
        // so that an upstream cache cannot drive us into a hot loop.
        ++entry.failures;
        metrics_.upstream("not_newer", took);
        metrics_.refresh_failure();
        entry.last_error = FetchError{200, "not_newer",
                                      "upstream returned a token that expires no later than the "
                                      "one held",
                                      std::nullopt};
        delay = backoff_delay(entry.failures, options_.retry, jitter_());
        // A forced refresh asked for during this call is made now: it skips this check.
        if (entry.force_requested) delay = {};
        entry.state = Entry::State::backing_off;
        fields["token_sha256"] = tb::log::fingerprint(fresh->access_token);
        fields["retry_in_ms"] = delay.count();
        tb::log::warn("upstream returned no newer token; keeping the held one", fields);
      } else {
        auto token = std::make_shared<Token>();
        // The effective expiry (unix seconds) on the monotonic clock, to the fraction of a
        // second: the time left counted here is then what a client computes from expires_on.
        const auto ends = SystemTime(std::chrono::seconds(fresh->expires_on));
        token->expires_at =
            now + std::chrono::duration_cast<SteadyTime::duration>(ends - clock_.system_now());
        if (const auto spread = fresh->said.spread(); spread > kExpiryDisagreement.count()) {
          // Once per token: the upstream's fields disagree; say which and what was chosen.
          json said = json::object();
          if (fresh->said.expires_on) said["expires_on"] = *fresh->said.expires_on;
          if (fresh->said.expires_in) said["received_plus_expires_in"] = *fresh->said.expires_in;
          if (fresh->said.jwt_exp) said["jwt_exp"] = *fresh->said.jwt_exp;
          tb::log::warn(
              "upstream expiry fields disagree; the token is taken to end at the earliest",
              {{"resource", entry.key.resource},
               {"identity", to_string(entry.key.identity)},
               {"token_sha256", tb::log::fingerprint(fresh->access_token)},
               {"said", said},
               {"spread_s", spread},
               {"expires_on", fresh->expires_on}});
        }
        token->acquired_at = now;
        token->sha256 = tb::hex(tb::sha256(fresh->access_token));
        token->fingerprint = token->sha256.substr(0, 12);  // as tb::log::fingerprint
        token->version = ++entry.versions;
        token->forced = forced;
        token->upstream = std::move(*fresh);
        delay = refresh_delay(token->upstream.expires_in, token->upstream.refresh_in, jitter_());
        fields["token_sha256"] = token->fingerprint;
        fields["expires_on"] = token->upstream.expires_on;
        fields["expires_in"] = token->upstream.expires_in.count();
        fields["refresh_in_s"] = std::chrono::duration_cast<std::chrono::seconds>(delay).count();
        fields["renewal"] = static_cast<bool>(entry.token);
        entry.token = std::move(token);
        entry.failures = 0;
        entry.last_error.reset();
        entry.fail_fast_until = {};
        entry.refresh_at = now + delay;
        entry.state = Entry::State::waiting_refresh;
        if (forced) {
          fields["new"] = entry.token->sha256 != replacing;
          entry.force_completed = force_generation;
          entry.force_ok = true;
        } else if (entry.force_requested) {
          if (entry.token->sha256 != entry.force_replacing) {
            // A forced refresh asked for during this call: this token already replaces the
            // rejected one.
            entry.force_requested = false;
            entry.force_completed = entry.force_generation;
            entry.force_ok = true;
          } else {
            delay = {};  // the forced attempt, now
          }
        }
        fields["status"] = 200;
        metrics_.upstream("ok", took);
        tb::log::info("token acquired", fields);
        for (const auto& listener : listeners_) listener(entry.key, entry.token);
      }
    } else {
      auto& error = std::get<FetchError>(result);
      ++entry.failures;
      metrics_.upstream(error.status == 0 ? error.error : "http_" + std::to_string(error.status),
                        took);
      if (entry.token) metrics_.refresh_failure();
      const bool fail_fast = classify(error.status) == Retry::fail_fast;
      delay = next_attempt_delay(entry.failures, options_.retry, jitter_(), error);
      if (fail_fast) {
        entry.fail_fast_until = now + options_.error_ttl;
        delay = std::max<std::chrono::milliseconds>(delay, options_.error_ttl);
      }
      fields["status"] = error.status;
      fields["error"] = error.error;
      fields["description"] = error.description;
      fields["attempt"] = entry.failures;
      fields["retry_in_ms"] = delay.count();
      fields["fail_fast"] = fail_fast;
      fields["holding_token"] = static_cast<bool>(entry.token);
      tb::log::warn("upstream call failed", fields);
      entry.last_error = std::move(error);
      if (forced) {
        entry.force_completed = force_generation;
        entry.force_ok = false;
      } else if (entry.force_requested) {
        // A forced refresh asked for during this failed call fails with it, rather than keep
        // the held token from other callers for the whole backoff.
        entry.force_requested = false;
        entry.force_completed = entry.force_generation;
        entry.force_ok = false;
      }
      entry.state = Entry::State::backing_off;
      if (fail_fast && !entry.token && !entry.prefetch) {
        // Nobody is served by trying again soon: the waiters get this error now.
        entry.next_attempt_at = now;
        entry.state = Entry::State::idle;
        notify(entry);
        co_return;
      }
    }
    entry.next_attempt_at = now + delay;
    notify(entry);
    // Wait out the delay even when nobody needs the entry any more: a caller who comes during it
    // must not start a call that the backoff or the upstream's Retry-After forbids.
    entry.wake.expires_after(delay);
    co_await entry.wake.async_wait(use_nothrow);
    // Woken early (a caller needs a longer-lived token) or on time: either way, fetch again,
    // unless nobody needs this entry any more.
    if (!wanted(entry)) break;
    if (idle(entry)) {
      // Nobody asked for it in --idle-evict: stop refreshing it, and forget it.
      const auto idle_for =
          std::chrono::duration_cast<std::chrono::seconds>(clock_.steady_now() - entry.last_used);
      tb::log::info("token dropped: not asked for in --idle-evict",
                    {{"resource", entry.key.resource},
                     {"identity", to_string(entry.key.identity)},
                     {"idle_s", idle_for.count()},
                     {"idle_evict_s", options_.idle_evict.count()}});
      metrics_.eviction();
      entries_.erase(entry.key.flat());  // destroys `entry`: nothing may touch it after this
      co_return;
    }
  }
  entry.state = Entry::State::idle;
}

bool TokenCache::idle(const Entry& entry) const {
  const auto now = clock_.steady_now();
  // Not while its forced-refresh rate limit runs: dropping it would forget the limit.
  const bool force_limited =
      entry.forced_at && now < *entry.forced_at + options_.force_refresh_interval;
  return options_.idle_evict.count() > 0 && !entry.prefetch && entry.waiters.empty() &&
         entry.watchers == 0 && !suspect(entry) && !force_limited &&
         now - entry.last_used >= options_.idle_evict;
}

asio::awaitable<void> TokenCache::acquire_slot() {
  while (slots_in_use_ >= options_.upstream_concurrency && !stopped_) {
    asio::steady_timer timer(executor_, asio::steady_timer::time_point::max());
    slot_waiters_.push_back(&timer);
    co_await timer.async_wait(use_nothrow);
    std::erase(slot_waiters_, &timer);
  }
  ++slots_in_use_;
}

void TokenCache::release_slot() {
  --slots_in_use_;
  // Hand the slot to one waiter and take it off the queue, so that a second release before it
  // runs wakes the next waiter instead of cancelling the same timer twice.
  if (!slot_waiters_.empty()) {
    slot_waiters_.front()->cancel();
    slot_waiters_.pop_front();
  }
}

void TokenCache::notify(Entry& entry) {
  for (auto* waiter : entry.waiters) waiter->cancel();
}

TokenError TokenCache::fail_fast_error(const Entry& entry, const FetchError& error,
                                       SteadyTime now) const {
  // The upstream refused the request itself: pass that on so the caller does not retry blindly.
  return TokenError{TokenError::Kind::upstream_rejected,
                    "upstream (" + std::string(source_.name()) +
                        ") refused the token request for " + key_text(entry.key) + ": " +
                        describe(error) + "; check the resource and identity",
                    ceil_seconds(entry.fail_fast_until - now), error.status};
}

TokenError TokenCache::too_short_error(const Entry& entry,
                                       std::chrono::seconds min_validity) const {
  const auto lifetime = std::chrono::duration_cast<std::chrono::seconds>(entry.token->expires_at -
                                                                         entry.token->acquired_at);
  return TokenError{TokenError::Kind::unavailable,
                    "no valid token for " + key_text(entry.key) + ": the upstream (" +
                        std::string(source_.name()) + ") issues tokens valid for " +
                        std::to_string(lifetime.count()) + " s, less than the " +
                        std::to_string(min_validity.count()) +
                        " s asked; ask for a shorter min_validity",
                    ceil_seconds(entry.refresh_at - clock_.steady_now())};
}

TokenError TokenCache::backing_off_error(const Entry& entry, SteadyTime now) const {
  std::string why = "the next upstream attempt is in " +
                    one_decimal_seconds(entry.next_attempt_at - now) + ", after the caller's wait";
  if (entry.last_error) {
    why += " (after " + std::to_string(entry.failures) +
           " failed attempt(s); last error: " + describe(*entry.last_error) + ")";
  }
  return TokenError{
      TokenError::Kind::unavailable,
      "no valid token for " + key_text(entry.key) + ": " + why + held_note(entry, now),
      ceil_seconds(entry.next_attempt_at - now)};
}

std::string TokenCache::held_note(const Entry& entry, SteadyTime now) {
  if (!entry.token) return {};
  return "; the held token has " + std::to_string(time_left(*entry.token, now).count()) +
         " s left, less than the caller needs";
}

TokenError TokenCache::timeout_error(const Entry& entry, SteadyTime now) const {
  std::string why;
  if (entry.last_error) why = "last upstream attempt failed: " + describe(*entry.last_error);
  if (entry.in_call) {
    // Say how long the attempt has gone unanswered: a hanging upstream is then told apart
    // from a slow one, and the caller learns when this attempt will be cut off.
    why += entry.last_error ? "; attempt " + std::to_string(entry.failures + 1) + " is in progress"
                            : std::string("the upstream call is still in progress");
    why += ": no answer after " + one_decimal_seconds(now - entry.call_started_at) +
           " (an attempt may take up to " + one_decimal_seconds(options_.attempt_timeout) + ")";
  } else if (entry.state == Entry::State::fetching &&
             slots_in_use_ >= options_.upstream_concurrency) {
    why += std::string(entry.last_error ? "; " : "") + "waiting for a free upstream slot (all " +
           std::to_string(options_.upstream_concurrency) + " busy)";
  } else if (!entry.last_error) {
    why = "the upstream call is still in progress";
  }
  auto retry_after = entry.next_attempt_at > now ? ceil_seconds(entry.next_attempt_at - now) : 1s;
  return TokenError{
      TokenError::Kind::unavailable,
      "no valid token for " + key_text(entry.key) + " in time: " + why + held_note(entry, now),
      retry_after};
}

std::vector<TokenCache::Status> TokenCache::status() const {
  std::vector<Status> out;
  const auto now = clock_.steady_now();
  for (const auto& [flat, entry] : entries_) {
    Status status{entry->key, entry->prefetch, static_cast<bool>(entry->token), 0s, {}};
    if (entry->token) status.time_left = time_left(*entry->token, now);
    if (entry->last_error) status.last_error = describe(*entry->last_error);
    out.push_back(std::move(status));
  }
  return out;
}

std::vector<Metrics::Expiry> TokenCache::expiries() const {
  std::vector<Metrics::Expiry> out;
  const auto now = clock_.steady_now();
  for (const auto& [flat, entry] : entries_) {
    if (!entry->token) continue;
    out.push_back({entry->key.resource, to_string(entry->key.identity),
                   std::chrono::duration<double>(entry->token->expires_at - now).count()});
  }
  return out;
}

void TokenCache::stop() {
  stopped_ = true;
  for (auto& [flat, entry] : entries_) {
    entry->wake.cancel();
    notify(*entry);
  }
  for (auto* waiter : slot_waiters_) waiter->cancel();
}

}  // namespace broker
