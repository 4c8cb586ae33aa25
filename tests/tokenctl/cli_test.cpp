// Pins tokenctl's command line: every flag, both value forms, and each usage error.
#include "tokenctl/cli.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

namespace tokenctl {
namespace {

using std::chrono::seconds;

ParseResult parse(std::initializer_list<const char*> args,
                  std::optional<std::string_view> env = std::nullopt) {
  std::vector<std::string> strings(args.begin(), args.end());
  return parse_args(strings, env);
}

// The usage error message, or "" when parsing succeeded.
std::string error_of(std::initializer_list<const char*> args) {
  auto result = parse(args);
  return result ? std::string() : result.error().message;
}

TEST(TokenctlCli, NoArgumentsIsAUsageError) {
  auto result = parse({});
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message, "missing command: expected 'get' or 'health'");
}

TEST(TokenctlCli, HelpIsRecognisedEverywhereAndNamesItsCommand) {
  for (auto args : {std::vector<std::string>{"--help"}, {"-h"}, {"help"}}) {
    auto result = parse_args(args, std::nullopt);
    ASSERT_TRUE(result) << args[0];
    EXPECT_TRUE(result->help);
    EXPECT_EQ(result->command, Command::none);
  }
  EXPECT_EQ(parse({"get", "--help"})->command, Command::get);
  EXPECT_EQ(parse({"help", "get"})->command, Command::get);
  EXPECT_EQ(parse({"health", "-h"})->command, Command::health);
  // --help wins over other mistakes on the same line.
  auto result = parse({"get", "--timeout", "x", "--client-id", "a", "--object-id", "b", "-h"});
  ASSERT_TRUE(result);
  EXPECT_TRUE(result->help);
  EXPECT_NE(help_text(Command::get).find("--min-validity"), std::string_view::npos);
  EXPECT_NE(help_text(Command::none).find("Exit codes"), std::string_view::npos);
}

TEST(TokenctlCli, GetWithDefaults) {
  auto result = parse({"get", "https://database.windows.net/"});
  ASSERT_TRUE(result);
  EXPECT_EQ(result->command, Command::get);
  EXPECT_FALSE(result->help);
  EXPECT_EQ(result->resource, "https://database.windows.net/");
  EXPECT_EQ(result->socket, kDefaultSocket);
  EXPECT_EQ(result->timeout, seconds(10));
  EXPECT_EQ(result->identity.kind, IdentityKind::system_assigned);
  EXPECT_FALSE(result->min_validity);
  EXPECT_FALSE(result->show_token);
  EXPECT_FALSE(result->json);
}

TEST(TokenctlCli, GetParsesEveryFlagInBothForms) {
  auto spaced = parse({"get", "R", "--socket", "/tmp/b.sock", "--client-id", "cid",
                       "--min-validity", "300", "--timeout", "30", "--show-token", "--json"});
  ASSERT_TRUE(spaced) << spaced.error().message;
  EXPECT_EQ(spaced->socket, "/tmp/b.sock");
  EXPECT_EQ(spaced->identity.kind, IdentityKind::client_id);
  EXPECT_EQ(spaced->identity.value, "cid");
  EXPECT_EQ(spaced->min_validity, seconds(300));
  EXPECT_EQ(spaced->timeout, seconds(30));
  EXPECT_TRUE(spaced->show_token);
  EXPECT_TRUE(spaced->json);

  auto joined = parse({"get", "--object-id=oid", "--min-validity=0", "--timeout=1", "R"});
  ASSERT_TRUE(joined) << joined.error().message;
  EXPECT_EQ(joined->resource, "R");
  EXPECT_EQ(joined->identity.kind, IdentityKind::object_id);
  EXPECT_EQ(joined->identity.value, "oid");
  EXPECT_EQ(joined->min_validity, seconds(0));
  EXPECT_EQ(joined->timeout, seconds(1));

  auto res_id = parse({"get", "R", "--mi-res-id", "/subscriptions/s/resourcegroups/g"});
  ASSERT_TRUE(res_id);
  EXPECT_EQ(res_id->identity.kind, IdentityKind::mi_res_id);
  EXPECT_EQ(res_id->identity.value, "/subscriptions/s/resourcegroups/g");
}

TEST(TokenctlCli, SocketComesFromFlagThenEnvironmentThenDefault) {
  EXPECT_EQ(parse({"health", "--socket", "/a.sock"}, "/env.sock")->socket, "/a.sock");
  EXPECT_EQ(parse({"health"}, "/env.sock")->socket, "/env.sock");
  EXPECT_EQ(parse({"health"}, "")->socket, kDefaultSocket);
  EXPECT_EQ(parse({"health"})->socket, kDefaultSocket);
}

TEST(TokenctlCli, HealthTakesSocketAndTimeoutOnly) {
  auto result = parse({"health", "--timeout", "3"});
  ASSERT_TRUE(result);
  EXPECT_EQ(result->command, Command::health);
  EXPECT_EQ(result->timeout, seconds(3));
  EXPECT_EQ(error_of({"health", "--json"}),
            "--json is an option of 'tokenctl get', not of 'tokenctl health'");
  EXPECT_EQ(error_of({"health", "--client-id", "x"}),
            "--client-id is an option of 'tokenctl get', not of 'tokenctl health'");
  EXPECT_EQ(error_of({"health", "extra"}),
            "unexpected argument 'extra': health takes no arguments");
}

TEST(TokenctlCli, TwoIdentityFlagsConflict) {
  EXPECT_EQ(error_of({"get", "R", "--client-id", "a", "--object-id", "b"}),
            "--client-id and --object-id both select an identity: give at most one of "
            "--client-id, --object-id, --mi-res-id");
  EXPECT_NE(error_of({"get", "R", "--mi-res-id=a", "--client-id=b"}), "");
}

TEST(TokenctlCli, AFlagGivenTwiceIsRejected) {
  EXPECT_EQ(error_of({"get", "R", "--client-id", "a", "--client-id", "a"}),
            "--client-id given twice");
  EXPECT_EQ(error_of({"get", "R", "--timeout", "1", "--timeout=2"}), "--timeout given twice");
  EXPECT_EQ(error_of({"get", "R", "--json", "--json"}), "--json given twice");
  EXPECT_EQ(error_of({"health", "--socket", "/a", "--socket", "/b"}), "--socket given twice");
}

TEST(TokenctlCli, ResourceMustBeGivenExactlyOnce) {
  auto missing = parse({"get", "--json"});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().command, Command::get);
  EXPECT_EQ(missing.error().message,
            "missing RESOURCE: tokenctl get RESOURCE, e.g. tokenctl get "
            "https://database.windows.net/");
  EXPECT_EQ(error_of({"get", "A", "B"}),
            "unexpected argument 'B': get takes one RESOURCE (got 'A' already)");
  EXPECT_EQ(error_of({"get", ""}), "RESOURCE is empty, e.g. https://database.windows.net/");
}

TEST(TokenctlCli, BadNumbersAreUsageErrors) {
  for (const char* bad : {"abc", "-1", "0", "1.5", "10s", " 5", "3601", "99999999999999999999"}) {
    EXPECT_EQ(error_of({"get", "R", "--timeout", bad}),
              std::string("--timeout expects whole seconds from 1 to 3600, got '") + bad + "'")
        << bad;
  }
  EXPECT_EQ(error_of({"get", "R", "--min-validity", "86401"}),
            "--min-validity expects whole seconds from 0 to 86400, got '86401'");
  EXPECT_EQ(error_of({"get", "R", "--min-validity=x"}),
            "--min-validity expects whole seconds from 0 to 86400, got 'x'");
}

TEST(TokenctlCli, MissingOrEmptyValuesAreUsageErrors) {
  EXPECT_EQ(error_of({"get", "R", "--timeout"}), "--timeout needs a value");
  EXPECT_EQ(error_of({"get", "R", "--client-id", "--json"}), "--client-id needs a value");
  EXPECT_EQ(error_of({"get", "R", "--client-id="}), "--client-id needs a non-empty value");
  EXPECT_EQ(error_of({"health", "--socket", ""}), "--socket needs a non-empty value");
  EXPECT_EQ(error_of({"get", "R", "--json=yes"}), "--json takes no value");
}

TEST(TokenctlCli, UnknownCommandsAndOptionsAreNamed) {
  EXPECT_EQ(error_of({"fetch"}), "unknown command 'fetch': expected 'get' or 'health'");
  EXPECT_EQ(error_of({"--socket", "/a", "get", "R"}),
            "the command comes first: tokenctl get RESOURCE [options] or tokenctl health "
            "[options]");
  EXPECT_EQ(error_of({"get", "R", "--verbose"}), "unknown option '--verbose'");
  EXPECT_EQ(error_of({"get", "R", "-v"}), "unknown option '-v'");
}

TEST(TokenctlCli, DoubleDashEndsOptions) {
  auto result = parse({"get", "--json", "--", "--odd-resource"});
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->resource, "--odd-resource");
  EXPECT_TRUE(result->json);
}

TEST(TokenctlCli, SocketPathLongerThanSunPathIsRejected) {
  const std::string long_path = "/" + std::string(107, 'a');
  auto result = parse_args(std::vector<std::string>{"health", "--socket", long_path}, {});
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("socket path is too long (108 bytes, at most 107)"),
            std::string::npos);
  EXPECT_TRUE(parse_args(std::vector<std::string>{"health", "--socket", long_path.substr(1)}, {}));
}

TEST(TokenctlCli, ValueOnAUsageErrorThrows) {
  EXPECT_THROW((void)parse({"nope"}).value(), std::invalid_argument);
}

}  // namespace
}  // namespace tokenctl
