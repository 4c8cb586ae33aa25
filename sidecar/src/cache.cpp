#include "broker/cache.hpp"

#include "broker/refresh.hpp"
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
  return it->second.get();
}

TokenPtr TokenCache::held(const TokenKey& key, std::chrono::seconds min_validity, SteadyTime now) {
  const auto it = entries_.find(key.flat());
  if (it == entries_.end()) return nullptr;
  const Entry& entry = *it->second;
  if (!entry.token || !usable(*entry.token, now, min_validity)) return nullptr;
  metrics_.cache_hit();
  if (entry.failures > 0 && now >= entry.refresh_at) metrics_.stale_serve();
  return entry.token;
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

asio::awaitable<GetResult> TokenCache::get(TokenKey key, std::chrono::seconds min_validity,
                                           SteadyTime deadline) {
  Entry* entry = find_or_create(key);
  if (entry == nullptr) {
    co_return TokenError{TokenError::Kind::too_many_tokens,
                         "the broker already holds " + std::to_string(options_.max_entries) +
                             " distinct tokens; ask for fewer distinct resources/identities",
                         30s};
  }
  bool waited = false;
  for (;;) {
    const auto now = clock_.steady_now();
    if (entry->token && usable(*entry->token, now, min_validity)) {
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
    if (entry->state == Entry::State::idle) {
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

bool TokenCache::wanted(const Entry& entry) const {
  return !stopped_ && (entry.prefetch || entry.token || !entry.waiters.empty());
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
    const auto started = clock_.steady_now();
    entry.call_started_at = started;
    entry.in_call = true;
    FetchResult result = FetchError{0, "internal_error", "the source failed", std::nullopt};
    try {
      result = co_await source_.fetch(entry.key, options_.attempt_timeout);
    } catch (const std::exception& e) {
      // Keep the loop (and its upstream slot) alive: a throwing source is one failed attempt.
      result = FetchError{0, "internal_error", e.what(), std::nullopt};
    }
    // What an upstream says goes to logs, /readyz and callers: never a credential it echoed.
    if (auto* failed = std::get_if<FetchError>(&result)) {
      *failed = redact_upstream_error(std::move(*failed));
    }
    entry.in_call = false;
    release_slot();
    if (stopped_) break;
    const auto now = clock_.steady_now();
    const double took = seconds_between(started, now);
    json fields = {{"resource", entry.key.resource},
                   {"identity", to_string(entry.key.identity)},
                   {"source", source_.name()},
                   {"duration_ms", static_cast<std::int64_t>(took * 1000)}};

    std::chrono::milliseconds delay{};
    if (auto* fresh = std::get_if<UpstreamToken>(&result)) {
      if (entry.token && !is_newer(*fresh, *entry.token)) {
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
        token->fingerprint = tb::log::fingerprint(fresh->access_token);
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
        fields["status"] = 200;
        metrics_.upstream("ok", took);
        tb::log::info("token acquired", fields);
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
  }
  entry.state = Entry::State::idle;
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
