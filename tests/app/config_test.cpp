#include "todo/config.hpp"

#include <gtest/gtest.h>

#include <map>

namespace todo {
namespace {

ParseOutcome parse(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  return parse_config(args, [env](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  });
}

TEST(AppConfig, DefaultsServeSqliteOnPort8080WithoutLogin) {
  auto outcome = parse({});
  ASSERT_TRUE(outcome.config) << outcome.error;
  EXPECT_EQ(outcome.config->listen_host, "0.0.0.0");
  EXPECT_EQ(outcome.config->listen_port, 8080);
  EXPECT_EQ(outcome.config->db_auth, Auth::none);
  EXPECT_EQ(outcome.config->db_token_resource, "https://database.windows.net/");
  EXPECT_EQ(outcome.config->broker_socket, "/var/run/token-broker/broker.sock");
}

TEST(AppConfig, ReadsTodoVariablesAndTheBrokerSocketVariable) {
  auto outcome = parse({}, {{"TODO_LISTEN", "127.0.0.1:9000"},
                            {"TODO_DB_AUTH", "password"},
                            {"TODO_DB_TOKEN_RESOURCE", "https://ossrdbms-aad.database.windows.net"},
                            {"TODO_DB_POOL_SIZE", "2"},
                            {"TOKEN_BROKER_SOCKET", "/tmp/b.sock"}});
  ASSERT_TRUE(outcome.config) << outcome.error;
  EXPECT_EQ(outcome.config->listen_host, "127.0.0.1");
  EXPECT_EQ(outcome.config->listen_port, 9000);
  EXPECT_EQ(outcome.config->db_auth, Auth::password);
  EXPECT_EQ(outcome.config->db_token_resource, "https://ossrdbms-aad.database.windows.net");
  EXPECT_EQ(outcome.config->db_pool_size, 2u);
  EXPECT_EQ(outcome.config->broker_socket, "/tmp/b.sock");
}

TEST(AppConfig, DrainAndGraceDefaultTo5And10AndComeFromFlagsOrTheEnvironment) {
  auto outcome = parse({});
  ASSERT_TRUE(outcome.config) << outcome.error;
  EXPECT_EQ(outcome.config->drain, std::chrono::seconds(5));
  EXPECT_EQ(outcome.config->shutdown_grace, std::chrono::seconds(10));
  outcome = parse({"--drain-seconds", "0"}, {{"TODO_SHUTDOWN_GRACE", "30"}});
  ASSERT_TRUE(outcome.config) << outcome.error;
  EXPECT_EQ(outcome.config->drain, std::chrono::seconds(0));
  EXPECT_EQ(outcome.config->shutdown_grace, std::chrono::seconds(30));
  EXPECT_FALSE(parse({"--drain-seconds", "301"}).config);
  EXPECT_FALSE(parse({}, {{"TODO_DRAIN_SECONDS", "-1"}}).config);
}

TEST(AppConfig, TheTokenResourceDefaultsToTheCloudsAudienceForTheDialect) {
  const std::string pg = "Driver={PostgreSQL Unicode};Server=pg.example;Database=todo;";
  const std::string sql = "Driver={ODBC Driver 18 for SQL Server};Server=tcp:x,1433;Database=t;";
  const std::map<std::pair<std::string, std::string>, std::string> expected = {
      {{"AzurePublicCloud", sql}, "https://database.windows.net/"},
      {{"AzurePublicCloud", pg}, "https://ossrdbms-aad.database.windows.net"},
      {{"AzureUSGovernment", sql}, "https://database.usgovcloudapi.net/"},
      {{"AzureUSGovernment", pg}, "https://ossrdbms-aad.database.usgovcloudapi.net"},
      {{"AzureChinaCloud", sql}, "https://database.chinacloudapi.cn/"},
      {{"AzureChinaCloud", pg}, "https://ossrdbms-aad.database.chinacloudapi.cn"},
  };
  for (const auto& [given, resource] : expected) {
    auto outcome = parse({"--cloud", given.first, "--db-connection-string", given.second});
    ASSERT_TRUE(outcome.config) << outcome.error;
    EXPECT_EQ(outcome.config->db_token_resource, resource) << given.first << " " << given.second;
  }
  // An explicit dialect counts; an explicit resource wins; the variable works like the flag.
  auto outcome = parse({"--db-dialect", "postgresql", "--db-connection-string", "DSN=x;"},
                       {{"TODO_CLOUD", "AzureChinaCloud"}});
  ASSERT_TRUE(outcome.config) << outcome.error;
  EXPECT_EQ(outcome.config->db_token_resource, "https://ossrdbms-aad.database.chinacloudapi.cn");
  outcome = parse({"--cloud", "AzureUSGovernment", "--db-token-resource", "https://x/"});
  ASSERT_TRUE(outcome.config) << outcome.error;
  EXPECT_EQ(outcome.config->db_token_resource, "https://x/");
  outcome = parse({"--cloud", "AzureGermanCloud"});
  EXPECT_FALSE(outcome.config);
  EXPECT_TRUE(outcome.error.starts_with("--cloud")) << outcome.error;
}

TEST(AppConfig, FlagsWinOverTheEnvironment) {
  auto outcome = parse({"--db-auth", "access-token"}, {{"TODO_DB_AUTH", "none"}});
  ASSERT_TRUE(outcome.config) << outcome.error;
  EXPECT_EQ(outcome.config->db_auth, Auth::access_token);
}

TEST(AppConfig, BadValuesNameTheFlagAndTheChoices) {
  auto outcome = parse({"--db-auth", "kerberos"});
  EXPECT_FALSE(outcome.config);
  EXPECT_NE(outcome.error.find("--db-auth"), std::string::npos);
  EXPECT_NE(outcome.error.find("access-token, password or none"), std::string::npos);

  outcome = parse({}, {{"TODO_DB_POOL_SIZE", "0"}});
  EXPECT_FALSE(outcome.config);
  EXPECT_NE(outcome.error.find("TODO_DB_POOL_SIZE"), std::string::npos);

  outcome = parse({"--listen", "8080"});
  EXPECT_NE(outcome.error.find("HOST:PORT"), std::string::npos);
  outcome = parse({"--nope"});
  EXPECT_NE(outcome.error.find("unknown flag --nope"), std::string::npos);
}

TEST(AppConfig, HelpListsEveryVariable) {
  const auto text = usage();
  for (const char* name :
       {"TODO_LISTEN", "TODO_DB_CONNECTION_STRING", "TODO_DB_AUTH", "TODO_DB_TOKEN_RESOURCE",
        "TOKEN_BROKER_SOCKET", "TODO_DB_POOL_SIZE", "TODO_DB_MAX_LIFETIME"}) {
    EXPECT_NE(text.find(name), std::string::npos) << name;
  }
  EXPECT_TRUE(parse({"--help"}).help);
}

}  // namespace
}  // namespace todo
