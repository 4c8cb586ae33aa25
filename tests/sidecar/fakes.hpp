#pragma once
// Test doubles for the broker library: a clock the test moves by hand and a source whose answers
// are scripted, counted and, on request, held open until the test lets them go.

#include "broker/clock.hpp"
#include "broker/source.hpp"
#include "broker/token.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace broker::testing {

/// A Clock that only moves when the test says so. Both clocks start at fixed, arbitrary points
/// (the system clock at 2026-01-01T00:00:00Z) so that results do not depend on the machine.
class FakeClock final : public Clock {
 public:
  static constexpr std::int64_t kStartUnix = 1'767'225'600;  // 2026-01-01T00:00:00Z

  SteadyTime steady_now() const override { return steady_; }
  SystemTime system_now() const override { return system_; }

  void set_steady(SteadyTime when) { steady_ = when; }
  void set_system(SystemTime when) { system_ = when; }
  /// Moves both clocks forward together.
  void advance(std::chrono::steady_clock::duration by) {
    steady_ += by;
    system_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(by);
  }
  std::int64_t unix_now() const {
    return std::chrono::duration_cast<std::chrono::seconds>(system_.time_since_epoch()).count();
  }

 private:
  SteadyTime steady_ = SteadyTime{} + std::chrono::hours(1000);
  SystemTime system_ = SystemTime{} + std::chrono::seconds(kStartUnix);
};

/// A Source whose answers are scripted. Results are handed out in order; once the script runs
/// out the last result repeats (so "fail forever" is one line). While holding, each call waits
/// on a timer until release() cancels it, so the test decides when an upstream call finishes.
class FakeSource final : public Source {
 public:
  /// Queues the result of the next call.
  void then(FetchResult result) { script_.push_back(std::move(result)); }
  /// Drops the script and answers every later call with `result`.
  void always(FetchResult result) {
    script_.clear();
    script_.push_back(std::move(result));
  }

  /// New calls wait for release() while holding is on.
  void hold(bool on = true) { holding_ = on; }
  /// Lets every call that is waiting finish now (in the order they started).
  void release() {
    auto held = std::move(held_);
    held_.clear();
    for (auto* timer : held) timer->cancel();
  }

  int calls() const { return calls_; }
  int in_flight() const { return in_flight_; }
  std::size_t held() const { return held_.size(); }
  const std::vector<TokenKey>& keys() const { return keys_; }
  std::chrono::milliseconds last_timeout() const { return last_timeout_; }

  boost::asio::awaitable<FetchResult> fetch(const TokenKey& key,
                                            std::chrono::milliseconds timeout) override {
    replacing_.emplace_back();
    return call(key, timeout);
  }
  boost::asio::awaitable<FetchResult> fetch_replacing(
      const TokenKey& key, std::chrono::milliseconds timeout,
      const std::string& token_sha256_to_refresh) override {
    replacing_.push_back(token_sha256_to_refresh);
    return call(key, timeout);
  }
  /// Per call, in order: the hash a forced refresh passed (fetch_replacing), "" for fetch().
  const std::vector<std::string>& replacing() const { return replacing_; }
  std::string_view name() const override { return "fake"; }
  std::string describe() const override { return "fake source"; }

 private:
  boost::asio::awaitable<FetchResult> call(TokenKey key, std::chrono::milliseconds timeout) {
    ++calls_;
    ++in_flight_;
    keys_.push_back(key);
    last_timeout_ = timeout;
    if (holding_) {
      boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor,
                                      boost::asio::steady_timer::time_point::max());
      held_.push_back(&timer);
      co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
      std::erase(held_, &timer);
    }
    --in_flight_;
    co_return next_result();
  }

  FetchResult next_result() {
    if (script_.empty()) {
      return FetchError{0, "no_script", "the test scripted no answer", std::nullopt};
    }
    FetchResult result = script_.front();
    if (script_.size() > 1) script_.pop_front();
    return result;
  }

  std::deque<FetchResult> script_;
  std::vector<boost::asio::steady_timer*> held_;
  std::vector<TokenKey> keys_;
  std::vector<std::string> replacing_;
  std::chrono::milliseconds last_timeout_{0};
  bool holding_ = false;
  int calls_ = 0;
  int in_flight_ = 0;
};

/// An upstream token that expires `lifetime` after `clock`'s system time.
inline UpstreamToken upstream_token(std::string access_token, std::chrono::seconds lifetime,
                                    const FakeClock& clock) {
  UpstreamToken token;
  token.access_token = std::move(access_token);
  token.expires_in = lifetime;
  token.expires_on = clock.unix_now() + lifetime.count();
  token.resource = "";
  return token;
}

inline FetchError upstream_failure(unsigned status, std::string description = "scripted failure",
                                   std::optional<std::chrono::milliseconds> retry_after = {}) {
  return FetchError{status, "upstream_http_" + std::to_string(status), std::move(description),
                    retry_after};
}

/// Runs `io` until `done()` holds or `limit` of real time has passed; returns done().
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = std::chrono::milliseconds(2000)) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < give_up) {
    if (io.stopped()) io.restart();
    io.run_one_for(std::chrono::milliseconds(5));
  }
  return done();
}

/// Runs `io` for `span` of real time (for "nothing more happens" checks).
inline void run_for(boost::asio::io_context& io, std::chrono::milliseconds span) {
  const auto stop_at = std::chrono::steady_clock::now() + span;
  while (std::chrono::steady_clock::now() < stop_at) {
    if (io.stopped()) io.restart();
    // Nothing to do at all: don't spin.
    if (io.run_one_until(stop_at) == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace broker::testing
