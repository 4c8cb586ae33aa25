#pragma once
// Counters for /metrics (Prometheus text format). The broker runs on one thread, so plain
// integers suffice; nothing here ever holds a token.

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace broker {

class Metrics {
 public:
  struct Expiry {
    std::string resource;
    std::string identity;
    double seconds_left;
  };

  void request(std::string_view route, unsigned status) {
    ++requests_[{std::string(route), status}];
  }
  void cache_hit() { ++cache_hits_; }
  void cache_wait() { ++cache_waits_; }
  void upstream(std::string_view outcome, double seconds);
  void refresh_failure() { ++refresh_failures_; }
  void stale_serve() { ++stale_serves_; }
  /// A forced refresh's outcome: new_token, same_token, already_replaced, shared, rate_limited,
  /// failed.
  void forced_refresh(std::string_view outcome) { ++forced_refreshes_[std::string(outcome)]; }
  /// A key dropped by --idle-evict.
  void eviction() { ++evictions_; }
  /// A caller refused on the socket: uid_gid (--allow-uids/--allow-gids), credentials (not
  /// readable), policy (--allow), rate_limited (--caller-rate).
  void caller_refused(std::string_view reason) { ++callers_refused_[std::string(reason)]; }
  /// A watcher (GET /v1/token/watch) came (+1) or went (-1).
  void watcher(int delta) { watchers_ += delta; }
  /// A watcher dropped because it stopped reading (its stream's buffer was full).
  void watcher_dropped() { ++watchers_dropped_; }
  /// A --sink file write: ok or failed.
  void sink_write(bool ok) { ++(ok ? sink_writes_ok_ : sink_writes_failed_); }
  void connection_opened() { ++active_connections_; }
  void connection_closed() { --active_connections_; }
  std::int64_t active_connections() const { return active_connections_; }

  /// The whole exposition, with one gauge per held token.
  std::string render(const std::vector<Expiry>& expiries) const;

 private:
  static constexpr std::array<double, 12> kBuckets{0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                   0.25,  0.5,   1.0,  2.5,   5.0,  10.0};
  std::map<std::pair<std::string, unsigned>, std::uint64_t> requests_;
  std::map<std::string, std::uint64_t> upstream_calls_;
  std::array<std::uint64_t, kBuckets.size()> latency_buckets_{};
  std::uint64_t latency_count_ = 0;
  double latency_sum_ = 0;
  std::uint64_t cache_hits_ = 0;
  std::uint64_t cache_waits_ = 0;
  std::uint64_t refresh_failures_ = 0;
  std::uint64_t stale_serves_ = 0;
  std::map<std::string, std::uint64_t> forced_refreshes_;
  std::uint64_t evictions_ = 0;
  std::map<std::string, std::uint64_t> callers_refused_;
  std::int64_t watchers_ = 0;
  std::uint64_t watchers_dropped_ = 0;
  std::uint64_t sink_writes_ok_ = 0;
  std::uint64_t sink_writes_failed_ = 0;
  std::int64_t active_connections_ = 0;
};

}  // namespace broker
