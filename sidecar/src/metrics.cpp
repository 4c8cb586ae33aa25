#include "broker/metrics.hpp"

#include <fmt/format.h>

namespace broker {
namespace {

// Prometheus label values escape backslash, double quote and newline.
std::string label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

void Metrics::upstream(std::string_view outcome, double seconds) {
  ++upstream_calls_[std::string(outcome)];
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++latency_buckets_[i];
  }
  ++latency_count_;
  latency_sum_ += seconds;
}

std::string Metrics::render(const std::vector<Expiry>& expiries) const {
  std::string out;
  auto it = std::back_inserter(out);
  header(out, "token_broker_requests_total", "counter",
         "Requests served, by route and status code.");
  for (const auto& [key, count] : requests_) {
    fmt::format_to(it, "token_broker_requests_total{{route=\"{}\",code=\"{}\"}} {}\n",
                   label(key.first), key.second, count);
  }
  header(out, "token_broker_cache_hits_total", "counter",
         "Token requests answered from the cache without waiting.");
  fmt::format_to(it, "token_broker_cache_hits_total {}\n", cache_hits_);
  header(out, "token_broker_cache_waits_total", "counter",
         "Token requests that waited for an upstream call.");
  fmt::format_to(it, "token_broker_cache_waits_total {}\n", cache_waits_);
  header(out, "token_broker_upstream_calls_total", "counter", "Upstream calls, by outcome.");
  for (const auto& [outcome, count] : upstream_calls_) {
    fmt::format_to(it, "token_broker_upstream_calls_total{{outcome=\"{}\"}} {}\n", label(outcome),
                   count);
  }
  header(out, "token_broker_upstream_latency_seconds", "histogram", "Upstream call latency.");
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    fmt::format_to(it, "token_broker_upstream_latency_seconds_bucket{{le=\"{}\"}} {}\n",
                   kBuckets[i], latency_buckets_[i]);
  }
  fmt::format_to(it, "token_broker_upstream_latency_seconds_bucket{{le=\"+Inf\"}} {}\n",
                 latency_count_);
  fmt::format_to(it, "token_broker_upstream_latency_seconds_sum {}\n", latency_sum_);
  fmt::format_to(it, "token_broker_upstream_latency_seconds_count {}\n", latency_count_);
  header(out, "token_broker_refresh_failures_total", "counter",
         "Upstream calls that did not yield a newer token.");
  fmt::format_to(it, "token_broker_refresh_failures_total {}\n", refresh_failures_);
  header(out, "token_broker_stale_serves_total", "counter",
         "Tokens served after their refresh time because refreshing failed.");
  fmt::format_to(it, "token_broker_stale_serves_total {}\n", stale_serves_);
  header(out, "token_broker_forced_refreshes_total", "counter",
         "Forced refreshes (POST /v1/token/refresh), by outcome.");
  for (const auto& [outcome, count] : forced_refreshes_) {
    fmt::format_to(it, "token_broker_forced_refreshes_total{{outcome=\"{}\"}} {}\n", label(outcome),
                   count);
  }
  header(out, "token_broker_idle_evictions_total", "counter",
         "Tokens dropped because nobody asked for them in --idle-evict.");
  fmt::format_to(it, "token_broker_idle_evictions_total {}\n", evictions_);
  header(out, "token_broker_callers_refused_total", "counter",
         "Callers refused on the socket, by reason (uid_gid, credentials, policy, rate_limited).");
  for (const auto& [reason, count] : callers_refused_) {
    fmt::format_to(it, "token_broker_callers_refused_total{{reason=\"{}\"}} {}\n", label(reason),
                   count);
  }
  header(out, "token_broker_watchers", "gauge", "Open watch streams (GET /v1/token/watch).");
  fmt::format_to(it, "token_broker_watchers {}\n", watchers_);
  header(out, "token_broker_watchers_dropped_total", "counter",
         "Watch streams closed because their reader stopped reading.");
  fmt::format_to(it, "token_broker_watchers_dropped_total {}\n", watchers_dropped_);
  header(out, "token_broker_sink_writes_total", "counter",
         "Token files (--sink) written, by outcome.");
  fmt::format_to(it, "token_broker_sink_writes_total{{outcome=\"ok\"}} {}\n", sink_writes_ok_);
  fmt::format_to(it, "token_broker_sink_writes_total{{outcome=\"failed\"}} {}\n",
                 sink_writes_failed_);
  header(out, "token_broker_active_connections", "gauge", "Open client connections.");
  fmt::format_to(it, "token_broker_active_connections {}\n", active_connections_);
  header(out, "token_broker_token_expiry_seconds", "gauge",
         "Seconds until each held token expires.");
  for (const auto& expiry : expiries) {
    fmt::format_to(it,
                   "token_broker_token_expiry_seconds{{resource=\"{}\",identity=\"{}\"}} {:.0f}\n",
                   label(expiry.resource), label(expiry.identity), expiry.seconds_left);
  }
  return out;
}

}  // namespace broker
