#pragma once
// Turning recorded samples into the numbers token-bench prints. Pure: no clocks, no I/O.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace token_bench {

/// Nearest-rank percentile of `sorted` (ascending, non-empty): the smallest sample such that at
/// least numerator/denominator of all samples are less than or equal to it. Exact integer
/// arithmetic, so percentile(s, 999, 1000) is p99.9 without rounding surprises;
/// percentile(s, 0, 1) is the minimum and percentile(s, 1, 1) the maximum.
std::uint64_t percentile(std::span<const std::uint64_t> sorted, std::uint64_t numerator,
                         std::uint64_t denominator);

/// Latency percentiles, in nanoseconds.
struct LatencySummary {
  std::uint64_t count = 0;
  std::uint64_t p50 = 0;
  std::uint64_t p90 = 0;
  std::uint64_t p99 = 0;
  std::uint64_t p999 = 0;
  std::uint64_t max = 0;
};

/// Sorts `samples` in place and summarises them; nullopt when there are none.
std::optional<LatencySummary> summarise(std::vector<std::uint64_t>& samples);

/// What one run measured. Only attempts that started and ended inside the measurement window
/// are counted (warm-up and the requests in flight when the window closes are not).
struct Report {
  std::uint64_t requests = 0;  ///< responses received, whatever their status
  std::uint64_t non_200 = 0;   ///< of `requests`, those whose status was not 200
  std::uint64_t errors = 0;    ///< attempts without a response: connect/write/read errors, timeouts
  std::chrono::nanoseconds elapsed{0};  ///< length of the measurement window
  std::size_t connections = 0;
  std::optional<LatencySummary> latency;  ///< over every response; nullopt without responses
  std::string first_error;                ///< e.g. "read: end of stream"; empty without errors
};

/// Responses per second of the window (0 for an empty window).
double requests_per_second(const Report& report);

/// 0 when at least one response was a 200; 1 when every attempt failed (error or non-200),
/// including when nothing was measured at all.
int exit_code(const Report& report);

/// What the run was, for the heading of the text report.
struct RunDescription {
  std::string target;  ///< describe(options.target)
  std::string path;
  std::chrono::milliseconds warmup{0};
  /// With --token-client: "get_token(RESOURCE)", printed instead of "GET path", and the calls are
  /// described as sequential instead of as N connections.
  std::string client_call;
};

/// The human-readable report (several lines, each ending in '\n').
std::string format_text(const Report& report, const RunDescription& run);

/// One JSON object on one line (plus '\n') with the keys requests, seconds, rps, p50_us, p90_us,
/// p99_us, p999_us, max_us, errors, non_200, connections. Latencies are null without responses.
std::string format_json(const Report& report);

}  // namespace token_bench
