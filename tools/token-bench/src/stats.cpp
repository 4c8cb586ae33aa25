#include "token_bench/stats.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

namespace token_bench {
namespace {

// Nanoseconds -> microseconds rounded to 0.1 µs (finer than any loopback measurement means).
double to_us(std::uint64_t ns) { return std::round(static_cast<double>(ns) / 100.0) / 10.0; }

// Rounds to 1/scale (dividing by an exact integer keeps the JSON short: 5.001, not 5.00099…).
double round_to(double value, double scale) { return std::round(value * scale) / scale; }

std::string fixed(double value, int decimals) { return fmt::format("{:.{}f}", value, decimals); }

}  // namespace

std::uint64_t percentile(std::span<const std::uint64_t> sorted, std::uint64_t numerator,
                         std::uint64_t denominator) {
  if (sorted.empty() || denominator == 0) return 0;
  numerator = std::min(numerator, denominator);
  const std::uint64_t n = sorted.size();
  // rank = ceil(n * numerator / denominator), at least 1 (the minimum for the 0th percentile).
  const std::uint64_t rank =
      std::max<std::uint64_t>(1, (n * numerator + denominator - 1) / denominator);
  return sorted[rank - 1];
}

std::optional<LatencySummary> summarise(std::vector<std::uint64_t>& samples) {
  if (samples.empty()) return std::nullopt;
  std::ranges::sort(samples);
  return LatencySummary{.count = samples.size(),
                        .p50 = percentile(samples, 50, 100),
                        .p90 = percentile(samples, 90, 100),
                        .p99 = percentile(samples, 99, 100),
                        .p999 = percentile(samples, 999, 1000),
                        .max = samples.back()};
}

double requests_per_second(const Report& report) {
  if (report.elapsed.count() <= 0) return 0.0;
  return static_cast<double>(report.requests) * 1e9 / static_cast<double>(report.elapsed.count());
}

int exit_code(const Report& report) { return report.requests > report.non_200 ? 0 : 1; }

std::string format_text(const Report& report, const RunDescription& run) {
  const double seconds = static_cast<double>(report.elapsed.count()) / 1e9;
  const std::string window = fixed(seconds, 3) + " s measured after " +
                             fixed(static_cast<double>(run.warmup.count()) / 1000.0, 3) +
                             " s warm-up\n";
  std::string out;
  if (run.client_call.empty()) {
    out = "token-bench " + run.target + " GET " + run.path + "\n";
    out += "  " + std::to_string(report.connections) + " connections, " + window;
  } else {
    out = "token-bench " + run.target + " token_client " + run.client_call + "\n";
    out += "  one call at a time, a new connection each, " + window;
  }
  out += "  requests     " + std::to_string(report.requests) +
         " (non-200: " + std::to_string(report.non_200) +
         ", errors: " + std::to_string(report.errors) + ")\n";
  out += "  requests/s   " + fixed(requests_per_second(report), 1) + "\n";
  if (report.latency) {
    const LatencySummary& l = *report.latency;
    out += "  latency us   p50 " + fixed(to_us(l.p50), 1) + "  p90 " + fixed(to_us(l.p90), 1) +
           "  p99 " + fixed(to_us(l.p99), 1) + "  p99.9 " + fixed(to_us(l.p999), 1) + "  max " +
           fixed(to_us(l.max), 1) + "\n";
  } else {
    out += "  latency us   no responses\n";
  }
  if (!report.first_error.empty()) out += "  first error  " + report.first_error + "\n";
  return out;
}

std::string format_json(const Report& report) {
  nlohmann::ordered_json out;
  out["requests"] = report.requests;
  out["seconds"] = round_to(static_cast<double>(report.elapsed.count()) / 1e9, 1000.0);
  out["rps"] = round_to(requests_per_second(report), 10.0);
  const auto latency = [&](std::uint64_t LatencySummary::*field) -> nlohmann::ordered_json {
    if (!report.latency) return nullptr;
    return to_us((*report.latency).*field);
  };
  out["p50_us"] = latency(&LatencySummary::p50);
  out["p90_us"] = latency(&LatencySummary::p90);
  out["p99_us"] = latency(&LatencySummary::p99);
  out["p999_us"] = latency(&LatencySummary::p999);
  out["max_us"] = latency(&LatencySummary::max);
  out["errors"] = report.errors;
  out["non_200"] = report.non_200;
  out["connections"] = report.connections;
  return out.dump() + "\n";
}

}  // namespace token_bench
