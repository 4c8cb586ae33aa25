// token-bench --token-client: the flags that select the token_client mode and what they exclude.
#include "token_bench/options.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

namespace token_bench {
namespace {

ParseResult parse(std::initializer_list<const char*> args) {
  std::vector<std::string> strings(args.begin(), args.end());
  return parse_args(strings);
}

std::string error_of(std::initializer_list<const char*> args) {
  auto result = parse(args);
  return result ? std::string() : result.error().message;
}

TEST(TokenBenchClientMode, DefaultsToTheDatabaseResourceAndOneConnection) {
  auto result = parse({"--token-client", "--unix", "/run/tb/broker.sock", "--requests", "100"});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_TRUE(result->token_client);
  EXPECT_EQ(result->resource, "https://database.windows.net/");
  EXPECT_EQ(result->connections, 1U);
  EXPECT_EQ(*result->requests, 100U);
}

TEST(TokenBenchClientMode, ResourceInBothValueForms) {
  auto result = parse({"--unix=/s", "--token-client", "--resource=https://vault.azure.net"});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->resource, "https://vault.azure.net");
  EXPECT_EQ(parse({"--unix", "/s", "--token-client", "--resource", "r"})->resource, "r");
}

TEST(TokenBenchClientMode, RawRequestFlagsDoNotApply) {
  EXPECT_NE(error_of({"--token-client", "--tcp", "127.0.0.1:1"}).find("needs --unix"),
            std::string::npos);
  for (const char* flag : {"--path=/healthz", "--header=A: b", "--connections=4"}) {
    EXPECT_NE(error_of({"--token-client", "--unix", "/s", flag}).find("do not apply"),
              std::string::npos)
        << flag;
  }
  EXPECT_NE(error_of({"--unix", "/s", "--resource", "r"}).find("only with --token-client"),
            std::string::npos);
  EXPECT_NE(
      error_of({"--unix", "/s", "--token-client", "--resource="}).find("needs a non-empty value"),
      std::string::npos);
  EXPECT_NE(error_of({"--unix", "/s", "--token-client", "--token-client"}).find("twice"),
            std::string::npos);
  EXPECT_NE(error_of({"--unix", "/s", "--token-client=yes"}).find("takes no value"),
            std::string::npos);
}

TEST(TokenBenchClientMode, HelpNamesTheMode) {
  EXPECT_NE(help_text().find("--token-client"), std::string_view::npos);
  EXPECT_NE(help_text().find("--resource R"), std::string_view::npos);
}

}  // namespace
}  // namespace token_bench
