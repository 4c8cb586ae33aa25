// Pins the statistics: nearest-rank percentiles on known data, the exit code and both reports.
#include "token_bench/stats.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

namespace token_bench {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

std::vector<std::uint64_t> one_to(std::uint64_t n) {
  std::vector<std::uint64_t> values(n);
  std::iota(values.begin(), values.end(), std::uint64_t{1});
  return values;
}

TEST(TokenBenchPercentile, NearestRankOnOneToAHundred) {
  const auto values = one_to(100);
  EXPECT_EQ(percentile(values, 0, 1), 1U);
  EXPECT_EQ(percentile(values, 1, 2), 50U);
  EXPECT_EQ(percentile(values, 90, 100), 90U);
  EXPECT_EQ(percentile(values, 99, 100), 99U);
  EXPECT_EQ(percentile(values, 999, 1000), 100U);  // rank ceil(99.9) = 100
  EXPECT_EQ(percentile(values, 1, 1), 100U);
}

TEST(TokenBenchPercentile, P999IsExactWhereFloatingPointWouldRoundUp) {
  // 0.999 * 1000 is 999.0000000000001 in binary floating point; integer ranks give 999.
  const auto values = one_to(1000);
  EXPECT_EQ(percentile(values, 999, 1000), 999U);
  EXPECT_EQ(percentile(values, 99, 100), 990U);
  EXPECT_EQ(percentile(values, 1, 2), 500U);
}

TEST(TokenBenchPercentile, SmallSetsRoundTheRankUp) {
  const std::vector<std::uint64_t> ten{10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
  EXPECT_EQ(percentile(ten, 1, 2), 50U);      // rank 5
  EXPECT_EQ(percentile(ten, 51, 100), 60U);   // rank ceil(5.1) = 6
  EXPECT_EQ(percentile(ten, 99, 100), 100U);  // rank ceil(9.9) = 10
  const std::vector<std::uint64_t> one{42};
  EXPECT_EQ(percentile(one, 0, 1), 42U);
  EXPECT_EQ(percentile(one, 999, 1000), 42U);
  EXPECT_EQ(percentile(std::vector<std::uint64_t>{}, 1, 2), 0U);
}

TEST(TokenBenchPercentile, SummariseSortsShuffledSamples) {
  auto values = one_to(10'000);
  std::mt19937 random(7);
  std::shuffle(values.begin(), values.end(), random);
  auto summary = summarise(values);
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->count, 10'000U);
  EXPECT_EQ(summary->p50, 5'000U);
  EXPECT_EQ(summary->p90, 9'000U);
  EXPECT_EQ(summary->p99, 9'900U);
  EXPECT_EQ(summary->p999, 9'990U);
  EXPECT_EQ(summary->max, 10'000U);
  std::vector<std::uint64_t> none;
  EXPECT_FALSE(summarise(none));
}

TEST(TokenBenchReport, ExitCodeIsOneOnlyWhenNoResponseWasA200) {
  Report report;
  EXPECT_EQ(exit_code(report), 1);  // nothing measured
  report.requests = 5;
  report.non_200 = 5;
  report.errors = 3;
  EXPECT_EQ(exit_code(report), 1);  // every request failed
  report.non_200 = 4;
  EXPECT_EQ(exit_code(report), 0);
}

TEST(TokenBenchReport, RequestsPerSecondUsesTheWindow) {
  Report report;
  EXPECT_EQ(requests_per_second(report), 0.0);
  report.requests = 1000;
  report.elapsed = milliseconds(500);
  EXPECT_DOUBLE_EQ(requests_per_second(report), 2000.0);
}

Report known_report() {
  Report report;
  report.requests = 123'456;
  report.non_200 = 2;
  report.errors = 1;
  report.elapsed = nanoseconds(5'000'400'000);
  report.connections = 16;
  report.latency = LatencySummary{.count = 123'456,
                                  .p50 = 35'240,
                                  .p90 = 52'000,
                                  .p99 = 110'460,
                                  .p999 = 400'050,
                                  .max = 2'300'500};
  report.first_error = "read: end of stream";
  return report;
}

TEST(TokenBenchReport, JsonHasExactlyTheDocumentedKeysInMicroseconds) {
  EXPECT_EQ(format_json(known_report()),
            R"({"requests":123456,"seconds":5.0,"rps":24689.2,"p50_us":35.2,"p90_us":52.0,)"
            R"("p99_us":110.5,"p999_us":400.1,"max_us":2300.5,"errors":1,"non_200":2,)"
            R"("connections":16})"
            "\n");
}

TEST(TokenBenchReport, JsonLatenciesAreNullWithoutResponses) {
  Report report;
  report.errors = 7;
  report.elapsed = milliseconds(1000);
  report.connections = 1;
  auto json = nlohmann::json::parse(format_json(report));
  EXPECT_TRUE(json["p50_us"].is_null());
  EXPECT_TRUE(json["max_us"].is_null());
  EXPECT_EQ(json["errors"], 7);
  EXPECT_EQ(json["rps"], 0.0);
}

TEST(TokenBenchReport, TextShowsEveryNumber) {
  const std::string text =
      format_text(known_report(),
                  {.target = "unix:/run/b.sock", .path = "/healthz", .warmup = milliseconds(1000)});
  EXPECT_EQ(text,
            "token-bench unix:/run/b.sock GET /healthz\n"
            "  16 connections, 5.000 s measured after 1.000 s warm-up\n"
            "  requests     123456 (non-200: 2, errors: 1)\n"
            "  requests/s   24689.2\n"
            "  latency us   p50 35.2  p90 52.0  p99 110.5  p99.9 400.1  max 2300.5\n"
            "  first error  read: end of stream\n");
}

}  // namespace
}  // namespace token_bench
