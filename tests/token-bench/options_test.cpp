// Pins token-bench's command line: defaults, both value forms, and each usage error.
#include "token_bench/options.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

namespace token_bench {
namespace {

using std::chrono::milliseconds;

ParseResult parse(std::initializer_list<const char*> args) {
  std::vector<std::string> strings(args.begin(), args.end());
  return parse_args(strings);
}

// The usage error message, or "" when parsing succeeded.
std::string error_of(std::initializer_list<const char*> args) {
  auto result = parse(args);
  return result ? std::string() : result.error().message;
}

TEST(TokenBenchOptions, UnixTargetAloneTakesEveryDefault) {
  auto result = parse({"--unix", "/run/tb/broker.sock"});
  ASSERT_TRUE(result) << result.error().message;
  ASSERT_TRUE(std::holds_alternative<UnixTarget>(result->target));
  EXPECT_EQ(std::get<UnixTarget>(result->target).path, "/run/tb/broker.sock");
  EXPECT_EQ(result->path, "/v1/token?resource=https%3A%2F%2Fdatabase.windows.net%2F");
  EXPECT_TRUE(result->headers.empty());
  EXPECT_EQ(result->connections, 16U);
  EXPECT_EQ(result->duration, milliseconds(10'000));
  EXPECT_FALSE(result->requests);
  EXPECT_EQ(result->warmup, milliseconds(1'000));
  EXPECT_EQ(result->timeout, milliseconds(10'000));
  EXPECT_FALSE(result->json);
  EXPECT_FALSE(result->help);
}

TEST(TokenBenchOptions, EveryFlagInBothValueForms) {
  auto result = parse({"--tcp=127.0.0.1:8081", "--path", "/healthz", "--header", "Metadata: true",
                       "--header=X-Trace:  abc \t", "--connections=256", "--duration", "0.5",
                       "--warmup=0", "--timeout", "2.25", "--json"});
  ASSERT_TRUE(result) << result.error().message;
  ASSERT_TRUE(std::holds_alternative<TcpTarget>(result->target));
  EXPECT_EQ(std::get<TcpTarget>(result->target).host, "127.0.0.1");
  EXPECT_EQ(std::get<TcpTarget>(result->target).port, "8081");
  EXPECT_EQ(result->path, "/healthz");
  ASSERT_EQ(result->headers.size(), 2U);
  EXPECT_EQ(result->headers[0].name, "Metadata");
  EXPECT_EQ(result->headers[0].value, "true");
  EXPECT_EQ(result->headers[1].name, "X-Trace");
  EXPECT_EQ(result->headers[1].value, "abc");  // surrounding whitespace is not part of a value
  EXPECT_EQ(result->connections, 256U);
  EXPECT_EQ(result->duration, milliseconds(500));
  EXPECT_EQ(result->warmup, milliseconds(0));
  EXPECT_EQ(result->timeout, milliseconds(2'250));
  EXPECT_TRUE(result->json);
}

TEST(TokenBenchOptions, RequestsReplacesDuration) {
  auto result = parse({"--unix", "/s", "--requests", "1000"});
  ASSERT_TRUE(result);
  EXPECT_EQ(result->requests, 1000U);
  EXPECT_EQ(error_of({"--unix", "/s", "--requests", "10", "--duration", "5"}),
            "--duration and --requests both say when to stop: give one of them");
}

TEST(TokenBenchOptions, Ipv6HostsComeInBrackets) {
  auto result = parse({"--tcp", "[::1]:8081"});
  ASSERT_TRUE(result);
  EXPECT_EQ(std::get<TcpTarget>(result->target).host, "::1");
  EXPECT_EQ(describe(result->target), "tcp:[::1]:8081");
  EXPECT_EQ(error_of({"--tcp", "::1:8081"}),
            "--tcp '::1:8081': put an IPv6 address in brackets, e.g. [::1]:8081");
}

TEST(TokenBenchOptions, HelpWinsOverAnyOtherMistake) {
  for (auto args : {std::vector<std::string>{"--help"},
                    {"-h"},
                    {"--bogus", "--help"},
                    {"--unix", "/s", "--connections", "0", "-h"}}) {
    auto result = parse_args(args);
    ASSERT_TRUE(result);
    EXPECT_TRUE(result->help);
  }
  EXPECT_NE(help_text().find("--connections N"), std::string_view::npos);
}

TEST(TokenBenchOptions, TargetIsRequiredAndUnique) {
  EXPECT_EQ(error_of({}), "no target: give --unix PATH or --tcp HOST:PORT");
  EXPECT_EQ(error_of({"--json"}), "no target: give --unix PATH or --tcp HOST:PORT");
  EXPECT_EQ(error_of({"--unix", "/a", "--tcp", "h:1"}),
            "give one target: --unix PATH or --tcp HOST:PORT, not two");
  EXPECT_EQ(error_of({"--unix", "/a", "--unix", "/b"}),
            "give one target: --unix PATH or --tcp HOST:PORT, not two");
}

TEST(TokenBenchOptions, BadTargetsSayWhatIsExpected) {
  EXPECT_EQ(error_of({"--tcp", "localhost"}),
            "--tcp 'localhost' has no port: expected HOST:PORT, e.g. 127.0.0.1:8081 or "
            "[::1]:8081");
  EXPECT_EQ(error_of({"--tcp", "localhost:70000"}),
            "--tcp 'localhost:70000' is not HOST:PORT with a port from 1 to 65535: expected "
            "HOST:PORT, e.g. 127.0.0.1:8081 or [::1]:8081");
  EXPECT_EQ(error_of({"--tcp", ":80"}),
            "--tcp ':80' is not HOST:PORT with a port from 1 to 65535: expected HOST:PORT, e.g. "
            "127.0.0.1:8081 or [::1]:8081");
  const std::string long_path = "/tmp/" + std::string(103, 'x');
  std::vector<std::string> args{"--unix", long_path};
  auto result = parse_args(args);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message,
            "--unix path is too long (108 bytes, at most 107): " + long_path);
}

TEST(TokenBenchOptions, NumbersAreCheckedWithTheirRange) {
  EXPECT_EQ(error_of({"--unix", "/s", "--connections", "0"}),
            "--connections expects a whole number from 1 to 10000, got '0'");
  EXPECT_EQ(error_of({"--unix", "/s", "--connections", "10001"}),
            "--connections expects a whole number from 1 to 10000, got '10001'");
  EXPECT_EQ(error_of({"--unix", "/s", "--connections", "8x"}),
            "--connections expects a whole number from 1 to 10000, got '8x'");
  EXPECT_EQ(error_of({"--unix", "/s", "--requests", "0"}),
            "--requests expects a whole number from 1 to 1000000000, got '0'");
  EXPECT_EQ(error_of({"--unix", "/s", "--duration", "0"}),
            "--duration expects seconds from 0.001 to 86400 (at most 3 decimals, e.g. 0.5), got "
            "'0'");
  EXPECT_EQ(error_of({"--unix", "/s", "--duration", "1.2345"}),
            "--duration expects seconds from 0.001 to 86400 (at most 3 decimals, e.g. 0.5), got "
            "'1.2345'");
  EXPECT_EQ(error_of({"--unix", "/s", "--warmup", "-1"}),
            "--warmup expects seconds from 0 to 3600 (at most 3 decimals, e.g. 0.5), got '-1'");
  EXPECT_EQ(error_of({"--unix", "/s", "--warmup=-1"}),
            "--warmup expects seconds from 0 to 3600 (at most 3 decimals, e.g. 0.5), got '-1'");
  EXPECT_EQ(error_of({"--unix", "/s", "--timeout", "1."}),
            "--timeout expects seconds from 0.001 to 3600 (at most 3 decimals, e.g. 0.5), got "
            "'1.'");
}

TEST(TokenBenchOptions, PathMustBeAnOriginFormTarget) {
  EXPECT_EQ(error_of({"--unix", "/s", "--path", "v1/token"}),
            "--path must start with '/', e.g. /v1/token?resource=..., got 'v1/token'");
  EXPECT_EQ(error_of({"--unix", "/s", "--path", "/a b"}),
            "--path '/a b' has a space, control or non-ASCII character: percent-encode it (%20)");
}

TEST(TokenBenchOptions, HeadersAreValidated) {
  EXPECT_EQ(error_of({"--unix", "/s", "--header", "Metadata"}),
            "--header expects 'Name: value', got 'Metadata'");
  EXPECT_EQ(error_of({"--unix", "/s", "--header", ": x"}),
            "--header expects 'Name: value', got ': x'");
  EXPECT_EQ(error_of({"--unix", "/s", "--header", "Bad Name: x"}),
            "--header name 'Bad Name' has a character not allowed in a name");
  EXPECT_EQ(error_of({"--unix", "/s", "--header", "X: a\r\nInjected: yes"}),
            "--header 'X' value has a control character (CR, LF, ...)");
  EXPECT_EQ(error_of({"--unix", "/s", "--header", "content-length: 5"}),
            "--header content-length is not allowed: token-bench sends no body");
}

TEST(TokenBenchOptions, StrayArgumentsAndRepeatsAreRefused) {
  EXPECT_EQ(error_of({"--unix", "/s", "extra"}),
            "unexpected argument 'extra': token-bench takes only options, e.g. --unix PATH");
  EXPECT_EQ(error_of({"--unix", "/s", "--bogus"}), "unknown option '--bogus'");
  EXPECT_EQ(error_of({"--unix", "/s", "--connections", "--json"}), "--connections needs a value");
  EXPECT_EQ(error_of({"--unix", "/s", "--json", "--json"}), "--json given twice");
  EXPECT_EQ(error_of({"--unix", "/s", "--json=yes"}), "--json takes no value");
  EXPECT_EQ(error_of({"--unix", "/s", "--duration", "1", "--duration", "2"}),
            "--duration given twice");
  EXPECT_EQ(error_of({"--unix="}), "--unix needs a non-empty value");
}

}  // namespace
}  // namespace token_bench
