#include "broker/config.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace broker {
namespace {

using namespace std::chrono_literals;
using Env = std::map<std::string, std::string>;
using Args = std::vector<std::string>;

Getenv env_of(Env env) {
  return [env = std::move(env)](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
}

ParseOutcome parse(const Args& args, Env env = {}) {
  return parse_config(args, env_of(std::move(env)));
}

Config parse_ok(const Args& args, Env env = {}) {
  auto outcome = parse(args, std::move(env));
  EXPECT_TRUE(outcome.error.empty()) << outcome.error;
  EXPECT_TRUE(outcome.config.has_value());
  return outcome.config.value_or(Config{});
}

/// Asserts that parsing fails and the one-line error names `flag`.
void expect_error_naming(const Args& args, const std::string& flag, Env env = {}) {
  auto outcome = parse(args, std::move(env));
  EXPECT_FALSE(outcome.config.has_value()) << ::testing::PrintToString(args);
  EXPECT_NE(outcome.error.find(flag), std::string::npos)
      << "error '" << outcome.error << "' does not name " << flag;
  EXPECT_EQ(outcome.error.find('\n'), std::string::npos) << outcome.error;
}

TEST(ParseConfig, NoFlagsGiveTheDocumentedDefaults) {
  const auto config = parse_ok({});
  EXPECT_EQ(config.source, "imds");
  EXPECT_NE(config.source_reason.find("auto"), std::string::npos) << config.source_reason;
  EXPECT_EQ(config.imds_endpoint, "http://169.254.169.254");
  EXPECT_EQ(config.socket_path, "/var/run/token-broker/broker.sock");
  EXPECT_EQ(config.socket_mode, 0660u);
  EXPECT_TRUE(config.admin_enabled);
  EXPECT_EQ(config.admin_host, "0.0.0.0");
  EXPECT_EQ(config.admin_port, 8081);
  EXPECT_TRUE(config.prefetch.empty());
  EXPECT_EQ(config.default_identity, Identity{});
  EXPECT_EQ(config.min_validity, 60s);
  EXPECT_EQ(config.request_timeout, 10'000ms);
  EXPECT_EQ(config.upstream_timeout, 10'000ms);
  EXPECT_EQ(config.upstream_concurrency, 4);
  EXPECT_EQ(config.retry.base, 1000ms);
  EXPECT_EQ(config.retry.cap, 30'000ms);
  EXPECT_EQ(config.error_ttl, 5s);
  EXPECT_EQ(config.shutdown_grace, 10s);
  EXPECT_EQ(config.idle_timeout, 60s);
  EXPECT_EQ(config.header_timeout, 10s);
  EXPECT_EQ(config.max_connections, 1024u);
  EXPECT_EQ(config.log_format, tb::log::Format::json);
  EXPECT_EQ(config.log_level, spdlog::level::info);
}

TEST(ParseConfig, EveryFlagAcceptsAValidValue) {
  const auto config = parse_ok({"--source",
                                "imds",
                                "--imds-endpoint",
                                "http://127.0.0.1:9000",
                                "--socket",
                                "/tmp/tb.sock",
                                "--socket-mode",
                                "0600",
                                "--admin-listen",
                                "127.0.0.1:9090",
                                "--prefetch",
                                "https://a/,https://b/",
                                "--prefetch-jitter",
                                "8",
                                "--client-id",
                                "cid",
                                "--min-validity",
                                "120",
                                "--request-timeout",
                                "3",
                                "--upstream-timeout",
                                "4",
                                "--upstream-concurrency",
                                "2",
                                "--retry-base-ms",
                                "50",
                                "--retry-max-ms",
                                "500",
                                "--error-ttl",
                                "0",
                                "--max-connections",
                                "10",
                                "--idle-timeout",
                                "5",
                                "--header-timeout",
                                "6",
                                "--shutdown-grace",
                                "7",
                                "--log-format",
                                "text",
                                "--log-level",
                                "debug"});
  EXPECT_EQ(config.source, "imds");
  EXPECT_NE(config.source_reason.find("--source imds"), std::string::npos);
  EXPECT_EQ(config.imds_endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(config.socket_path, "/tmp/tb.sock");
  EXPECT_EQ(config.socket_mode, 0600u);
  EXPECT_TRUE(config.admin_enabled);
  EXPECT_EQ(config.admin_host, "127.0.0.1");
  EXPECT_EQ(config.admin_port, 9090);
  EXPECT_EQ(config.prefetch, (std::vector<std::string>{"https://a/", "https://b/"}));
  EXPECT_EQ(config.prefetch_jitter, 8s);
  EXPECT_EQ(config.default_identity, (Identity{Identity::Kind::client_id, "cid"}));
  EXPECT_EQ(config.min_validity, 120s);
  EXPECT_EQ(config.request_timeout, 3s);
  EXPECT_EQ(config.upstream_timeout, 4s);
  EXPECT_EQ(config.upstream_concurrency, 2);
  EXPECT_EQ(config.retry.base, 50ms);
  EXPECT_EQ(config.retry.cap, 500ms);
  EXPECT_EQ(config.error_ttl, 0s);
  EXPECT_EQ(config.max_connections, 10u);
  EXPECT_EQ(config.idle_timeout, 5s);
  EXPECT_EQ(config.header_timeout, 6s);
  EXPECT_EQ(config.shutdown_grace, 7s);
  EXPECT_EQ(config.log_format, tb::log::Format::text);
  EXPECT_EQ(config.log_level, spdlog::level::debug);
}

TEST(ParseConfig, EveryFlagRejectsAnInvalidValueNamingTheFlag) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"source", "nmi"},
      {"imds-endpoint", "https://169.254.169.254"},
      {"imds-endpoint", "not a url"},
      {"socket", ""},
      {"socket", std::string(108, 's')},
      {"socket-mode", "rw"},
      {"admin-listen", "8081"},
      {"admin-listen", "0.0.0.0:70000"},
      {"min-validity", "-1"},
      {"min-validity", "3601"},
      {"request-timeout", "0"},
      {"request-timeout", "1.5"},
      {"upstream-timeout", "301"},
      {"upstream-concurrency", "0"},
      {"upstream-concurrency", "65"},
      {"retry-base-ms", "0"},
      {"retry-max-ms", "600001"},
      {"error-ttl", "ten"},
      {"max-connections", "0"},
      {"idle-timeout", "0"},
      {"header-timeout", ""},
      {"shutdown-grace", "301"},
      {"log-format", "xml"},
      {"log-level", "verbose"},
  };
  for (const auto& [flag, value] : bad) {
    SCOPED_TRACE("--" + flag + " '" + value + "'");
    expect_error_naming({"--" + flag, value}, "--" + flag);
  }
}

TEST(ParseConfig, NumericErrorSaysTheAllowedRangeAndTheValueGiven) {
  const auto outcome = parse({"--min-validity", "abc"});
  EXPECT_NE(outcome.error.find("0 to 3600"), std::string::npos) << outcome.error;
  EXPECT_NE(outcome.error.find("'abc'"), std::string::npos) << outcome.error;
}

TEST(ParseConfig, FlagEqualsValueFormIsAccepted) {
  const auto config = parse_ok({"--min-validity=90", "--socket=/tmp/x.sock", "--prefetch="});
  EXPECT_EQ(config.min_validity, 90s);
  EXPECT_EQ(config.socket_path, "/tmp/x.sock");
  EXPECT_TRUE(config.prefetch.empty());
}

TEST(ParseConfig, FlagEqualsValueFormValidatesTheValue) {
  expect_error_naming({"--min-validity=ninety"}, "--min-validity");
}

TEST(ParseConfig, EnvironmentVariableSetsAFlag) {
  const auto config = parse_ok({}, {{"TOKEN_BROKER_MIN_VALIDITY", "300"},
                                    {"TOKEN_BROKER_ADMIN_LISTEN", "off"},
                                    {"TOKEN_BROKER_PREFETCH", "https://a/"},
                                    {"TOKEN_BROKER_RETRY_BASE_MS", "20"}});
  EXPECT_EQ(config.min_validity, 300s);
  EXPECT_FALSE(config.admin_enabled);
  EXPECT_EQ(config.prefetch, std::vector<std::string>{"https://a/"});
  EXPECT_EQ(config.retry.base, 20ms);
}

TEST(ParseConfig, FlagWinsOverTheEnvironment) {
  const auto config = parse_ok(
      {"--min-validity", "30", "--prefetch", "https://b/"},
      {{"TOKEN_BROKER_MIN_VALIDITY", "300"}, {"TOKEN_BROKER_PREFETCH", "https://a/,https://c/"}});
  EXPECT_EQ(config.min_validity, 30s);
  EXPECT_EQ(config.prefetch, std::vector<std::string>{"https://b/"});
}

TEST(ParseConfig, InvalidEnvironmentValueNamesTheVariableAndTheFlag) {
  const auto outcome = parse({}, {{"TOKEN_BROKER_UPSTREAM_CONCURRENCY", "lots"}});
  EXPECT_FALSE(outcome.config);
  EXPECT_NE(outcome.error.find("TOKEN_BROKER_UPSTREAM_CONCURRENCY"), std::string::npos)
      << outcome.error;
  EXPECT_NE(outcome.error.find("--upstream-concurrency"), std::string::npos) << outcome.error;
}

TEST(ParseConfig, UnknownFlagIsAnError) {
  expect_error_naming({"--min-valdity", "30"}, "--min-valdity");
}

TEST(ParseConfig, PositionalArgumentIsAnError) { expect_error_naming({"imds"}, "imds"); }

TEST(ParseConfig, FlagWithoutItsValueIsAnError) {
  expect_error_naming({"--socket"}, "--socket");
  expect_error_naming({"--min-validity", "30", "--prefetch"}, "--prefetch");
}

TEST(ParseConfig, HelpAndVersionAreReportedWithoutAConfig) {
  for (const char* flag : {"--help", "-h"}) {
    const auto outcome = parse({flag});
    EXPECT_TRUE(outcome.help) << flag;
    EXPECT_FALSE(outcome.config) << flag;
    EXPECT_TRUE(outcome.error.empty()) << flag;
  }
  const auto outcome = parse({"--version"});
  EXPECT_TRUE(outcome.version);
  EXPECT_FALSE(outcome.help);
  EXPECT_FALSE(outcome.config);
}

TEST(ParseConfig, HelpWinsOverALaterBadFlag) {
  const auto outcome = parse({"--help", "--bogus"});
  EXPECT_TRUE(outcome.help);
  EXPECT_TRUE(outcome.error.empty());
}

const Env kWorkloadIdentityEnv = {{"AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/token"},
                                  {"AZURE_CLIENT_ID", "c-1"},
                                  {"AZURE_TENANT_ID", "t-1"}};

TEST(ParseConfig, AutoSourcePicksWorkloadIdentityWhenTheFederatedTokenFileIsSet) {
  const auto config = parse_ok({}, kWorkloadIdentityEnv);
  EXPECT_EQ(config.source, "workload-identity");
  EXPECT_NE(config.source_reason.find("AZURE_FEDERATED_TOKEN_FILE"), std::string::npos);
  EXPECT_EQ(config.workload_identity.federated_token_file, "/var/run/secrets/token");
  EXPECT_EQ(config.workload_identity.client_id, "c-1");
  EXPECT_EQ(config.workload_identity.tenant_id, "t-1");
  EXPECT_EQ(config.workload_identity.authority_host, "https://login.microsoftonline.com/");
  EXPECT_TRUE(config.workload_identity.ca_file.empty());
}

TEST(ParseConfig, WorkloadIdentityBeatsAppServiceInAuto) {
  auto env = kWorkloadIdentityEnv;
  env["IDENTITY_ENDPOINT"] = "http://127.0.0.1:41741/msi/token";
  EXPECT_EQ(parse_ok({}, env).source, "workload-identity");
}

TEST(ParseConfig, WorkloadIdentityReadsAuthorityHostAndCaFile) {
  auto env = kWorkloadIdentityEnv;
  env["AZURE_AUTHORITY_HOST"] = "https://login.microsoftonline.us/";
  const auto config = parse_ok({"--source", "workload-identity", "--ca-file", "/etc/ca.pem"}, env);
  EXPECT_EQ(config.source, "workload-identity");
  EXPECT_EQ(config.source_reason, "--source workload-identity");
  EXPECT_EQ(config.workload_identity.authority_host, "https://login.microsoftonline.us/");
  EXPECT_EQ(config.workload_identity.ca_file, "/etc/ca.pem");
}

TEST(ParseConfig, CloudSetsTheAuthorityUnlessAzureAuthorityHostIsSet) {
  EXPECT_EQ(parse_ok({}).cloud, tb::Cloud::public_cloud);
  const auto gov = parse_ok({"--cloud", "AzureUSGovernment"}, kWorkloadIdentityEnv);
  EXPECT_EQ(gov.cloud, tb::Cloud::us_government);
  EXPECT_EQ(gov.workload_identity.authority_host, "https://login.microsoftonline.us/");
  const auto china = parse_ok({"--cloud=azurechinacloud"}, kWorkloadIdentityEnv);
  EXPECT_EQ(china.workload_identity.authority_host, "https://login.chinacloudapi.cn/");
  // The webhook's AZURE_AUTHORITY_HOST is what the cluster says: it wins.
  auto env = kWorkloadIdentityEnv;
  env["AZURE_AUTHORITY_HOST"] = "https://login.example.test/";
  EXPECT_EQ(parse_ok({"--cloud", "AzureChinaCloud"}, env).workload_identity.authority_host,
            "https://login.example.test/");
  env = kWorkloadIdentityEnv;
  env["TOKEN_BROKER_CLOUD"] = "AzureUSGovernment";
  EXPECT_EQ(parse_ok({}, env).cloud, tb::Cloud::us_government);
  const auto bad = parse({"--cloud", "AzureGermanCloud"});
  EXPECT_FALSE(bad.config);
  EXPECT_TRUE(bad.error.starts_with("--cloud")) << bad.error;
}

TEST(ParseConfig, WorkloadIdentityNamesEveryMissingVariable) {
  const auto outcome = parse({"--source", "workload-identity"});
  EXPECT_FALSE(outcome.config);
  for (const char* name : {"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"}) {
    EXPECT_NE(outcome.error.find(name), std::string::npos) << outcome.error;
  }
  EXPECT_EQ(outcome.error.find('\n'), std::string::npos) << outcome.error;
}

TEST(ParseConfig, ClientIdFlagStandsInForAzureClientId) {
  auto env = kWorkloadIdentityEnv;
  env.erase("AZURE_CLIENT_ID");
  EXPECT_FALSE(parse({}, env).config);
  const auto config = parse_ok({"--client-id", "flag-id"}, env);
  EXPECT_EQ(config.workload_identity.client_id, "flag-id");
}

TEST(ParseConfig, WorkloadIdentityRefusesAPlainHttpAuthority) {
  auto env = kWorkloadIdentityEnv;
  env["AZURE_AUTHORITY_HOST"] = "http://login.microsoftonline.com/";
  expect_error_naming({}, "AZURE_AUTHORITY_HOST", env);
}

TEST(ParseConfig, WorkloadIdentityReadsTheAksTokenProxySettings) {
  auto env = kWorkloadIdentityEnv;
  env["AZURE_KUBERNETES_TOKEN_PROXY"] = "https://10.0.0.1:8443";
  env["AZURE_KUBERNETES_SNI_NAME"] = "abc.ests.aks";
  env["AZURE_KUBERNETES_CA_FILE"] = "/var/run/secrets/azure/ca.crt";
  const auto config = parse_ok({}, env);
  EXPECT_EQ(config.workload_identity.token_proxy, "https://10.0.0.1:8443");
  EXPECT_EQ(config.workload_identity.sni_name, "abc.ests.aks");
  EXPECT_EQ(config.workload_identity.proxy_ca_file, "/var/run/secrets/azure/ca.crt");
  EXPECT_NE(config.source_reason.find("AZURE_KUBERNETES_TOKEN_PROXY"), std::string::npos);
}

TEST(ParseConfig, AksTokenProxySettingsThatContradictEachOtherAreRefused) {
  auto env = kWorkloadIdentityEnv;
  env["AZURE_KUBERNETES_SNI_NAME"] = "abc.ests.aks";  // without the proxy
  expect_error_naming({}, "AZURE_KUBERNETES_TOKEN_PROXY", env);
  env["AZURE_KUBERNETES_TOKEN_PROXY"] = "https://10.0.0.1:8443";
  env["AZURE_KUBERNETES_CA_FILE"] = "/ca.crt";
  env["AZURE_KUBERNETES_CA_DATA"] = "-----BEGIN CERTIFICATE-----";
  expect_error_naming({}, "AZURE_KUBERNETES_CA_DATA", env);
  env.erase("AZURE_KUBERNETES_CA_DATA");
  for (const char* proxy : {"http://10.0.0.1:8443", "https://10.0.0.1:8443/?a=b",
                            "https://user@10.0.0.1/", "not a url"}) {
    env["AZURE_KUBERNETES_TOKEN_PROXY"] = proxy;
    expect_error_naming({}, "AZURE_KUBERNETES_TOKEN_PROXY", env);
  }
}

TEST(ParseConfig, UnknownSourceIsRefused) { expect_error_naming({"--source", "nmi"}, "--source"); }

const std::map<std::string, std::string> kAppServiceEnv = {
    {"IDENTITY_ENDPOINT", "http://127.0.0.1:41741/msi/token"}, {"IDENTITY_HEADER", "h-1"}};

TEST(ParseConfig, AutoSourcePicksAppServiceWhenIdentityEndpointIsSet) {
  const auto config = parse_ok({"--source", "auto"}, kAppServiceEnv);
  EXPECT_EQ(config.source, "app-service");
  EXPECT_NE(config.source_reason.find("IDENTITY_ENDPOINT"), std::string::npos);
  EXPECT_EQ(config.app_service.endpoint, "http://127.0.0.1:41741/msi/token");
  EXPECT_EQ(config.app_service.identity_header, "h-1");
  EXPECT_TRUE(config.app_service.identity_header_file.empty());
}

TEST(ParseConfig, AppServiceReadsTheHeaderFileAndCaFile) {
  const auto config = parse_ok({"--source", "app-service", "--ca-file", "/etc/ca.pem"},
                               {{"IDENTITY_ENDPOINT", "https://localhost:42356/msi/token"},
                                {"IDENTITY_HEADER_FILE", "/var/run/identity-header"}});
  EXPECT_EQ(config.source_reason, "--source app-service");
  EXPECT_EQ(config.app_service.identity_header_file, "/var/run/identity-header");
  EXPECT_EQ(config.app_service.ca_file, "/etc/ca.pem");
}

TEST(ParseConfig, AppServiceNeedsTheEndpointAndAHeader) {
  for (const auto& env : std::vector<std::map<std::string, std::string>>{
           {},
           {{"IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token"}},
           {{"IDENTITY_HEADER", "h"}}}) {
    const auto outcome = parse({"--source", "app-service"}, env);
    EXPECT_FALSE(outcome.config);
    EXPECT_NE(outcome.error.find("IDENTITY_ENDPOINT and IDENTITY_HEADER"), std::string::npos)
        << outcome.error;
  }
}

TEST(ParseConfig, AppServiceRefusesABadEndpointOrHeader) {
  auto env = kAppServiceEnv;
  env["IDENTITY_ENDPOINT"] = "ftp://127.0.0.1/msi/token";
  expect_error_naming({}, "IDENTITY_ENDPOINT", env);
  env = kAppServiceEnv;
  env["IDENTITY_HEADER"] = "line\r\nX-Injected: 1";
  const auto outcome = parse({}, env);
  EXPECT_FALSE(outcome.config);
  EXPECT_NE(outcome.error.find("IDENTITY_HEADER holds characters"), std::string::npos);
  EXPECT_EQ(outcome.error.find("X-Injected"), std::string::npos) << "the secret is not echoed";
}

TEST(ParseConfig, AutoSourceIgnoresEmptyPlatformVariables) {
  const auto config = parse_ok({}, {{"AZURE_FEDERATED_TOKEN_FILE", ""}, {"IDENTITY_ENDPOINT", ""}});
  EXPECT_EQ(config.source, "imds");
}

TEST(ParseConfig, ExplicitImdsSourceIgnoresPlatformVariables) {
  const auto config = parse_ok({"--source", "imds"}, {{"AZURE_FEDERATED_TOKEN_FILE", "/f"},
                                                      {"IDENTITY_ENDPOINT", "http://x/"}});
  EXPECT_EQ(config.source, "imds");
}

TEST(ParseConfig, AdminListenOffDisablesTheAdminListener) {
  EXPECT_FALSE(parse_ok({"--admin-listen", "off"}).admin_enabled);
  // A later value turns it back on.
  const auto config = parse_ok({"--admin-listen", "off", "--admin-listen", "127.0.0.1:0"});
  EXPECT_TRUE(config.admin_enabled);
  EXPECT_EQ(config.admin_port, 0);
}

TEST(ParseConfig, AdminListenAcceptsBracketedIpv6) {
  const auto config = parse_ok({"--admin-listen", "[::1]:8081"});
  EXPECT_EQ(config.admin_host, "::1");
  EXPECT_EQ(config.admin_port, 8081);
}

TEST(ParseConfig, AdminListenRejectsMissingHostOrPort) {
  for (const char* value : {":8081", "localhost", "localhost:", "localhost:port", "h:-1"}) {
    SCOPED_TRACE(value);
    expect_error_naming({"--admin-listen", value}, "--admin-listen");
  }
}

TEST(ParseConfig, SocketModeIsReadAsOctal) {
  EXPECT_EQ(parse_ok({"--socket-mode", "0660"}).socket_mode, 0660u);
  EXPECT_EQ(parse_ok({"--socket-mode", "660"}).socket_mode, 0660u);
  EXPECT_EQ(parse_ok({"--socket-mode", "0777"}).socket_mode, 0777u);
  EXPECT_EQ(parse_ok({"--socket-mode", "600"}).socket_mode, 0600u);
}

TEST(ParseConfig, SocketModeRejectsNonOctalTooLargeOrOwnerLockedOut) {
  for (const char* value : {"0668", "0x1b6", "1777", "7777", "-660", "0400", "0060", "", "660 "}) {
    SCOPED_TRACE(value);
    expect_error_naming({"--socket-mode", value}, "--socket-mode");
  }
}

TEST(ParseConfig, RetryCapBelowRetryBaseIsAnError) {
  auto outcome = parse({"--retry-base-ms", "2000", "--retry-max-ms", "1000"});
  EXPECT_FALSE(outcome.config);
  EXPECT_NE(outcome.error.find("--retry-max-ms"), std::string::npos) << outcome.error;
  EXPECT_NE(outcome.error.find("--retry-base-ms"), std::string::npos) << outcome.error;
  // Also when the base alone is raised above the default cap.
  outcome = parse({"--retry-base-ms", "60000"});
  EXPECT_FALSE(outcome.config);
  // Equal is fine.
  EXPECT_EQ(parse_ok({"--retry-base-ms", "500", "--retry-max-ms", "500"}).retry.cap, 500ms);
}

TEST(ParseConfig, PrefetchSkipsEmptyItems) {
  EXPECT_EQ(parse_ok({"--prefetch", ",https://a/,,https://b/,"}).prefetch,
            (std::vector<std::string>{"https://a/", "https://b/"}));
}

TEST(ParseConfigSinks, EachSinkFlagAddsOneAndTheEnvironmentSeparatesThemWithSemicolons) {
  const auto config = parse_ok(
      {"--sink", "resource=https://a/,path=/s/a",  //
       "--sink", "resource=https://b/,client_id=X,path=/s/b,format=json", "--client-id", "D"},
      {{"TOKEN_BROKER_SINK", "resource=https://env/,path=/s/env"}});
  ASSERT_EQ(config.sinks.size(), 2U);  // the command line replaces the environment's sinks
  EXPECT_EQ(config.sinks[0].key,
            (TokenKey{Identity{Identity::Kind::client_id, "D"}, "https://a/"}));
  EXPECT_EQ(config.sinks[0].format, SinkSpec::Format::raw);
  EXPECT_EQ(config.sinks[1].key,
            (TokenKey{Identity{Identity::Kind::client_id, "X"}, "https://b/"}));
  EXPECT_EQ(config.sinks[1].format, SinkSpec::Format::json);

  const auto from_env = parse_ok(
      {}, {{"TOKEN_BROKER_SINK", "resource=https://a/,path=/s/a; resource=https://b/,path=/s/b;"}});
  ASSERT_EQ(from_env.sinks.size(), 2U);
  EXPECT_EQ(from_env.sinks[1].path, "/s/b");
  EXPECT_EQ(from_env.sinks[1].key.identity, Identity{});  // no --client-id: the upstream's default
}

TEST(ParseConfigSinks, TwoSinksOnOneFileOrASinkOnTheSocketAreRefused) {
  expect_error_naming(
      {"--sink", "resource=https://a/,path=/s/x", "--sink", "resource=https://b/,path=/s/../s/x"},
      "--sink path=/s/x");
  expect_error_naming(
      {"--socket", "/run/b/broker.sock", "--sink", "resource=https://a/,path=/run/b/broker.sock"},
      "--socket");
  expect_error_naming({"--sink", "resource=https://a/,path=/run/b/identity-header", "--socket",
                       "/run/b/broker.sock"},
                      "--identity-header-file");
  expect_error_naming({"--sink", "resource=https://a/"}, "--sink");
  expect_error_naming({}, "TOKEN_BROKER_SINK", {{"TOKEN_BROKER_SINK", "path=/s/a"}});
}

TEST(ParseConfigPolicy, AllowRulesAddUpAndABadOneNamesItself) {
  const auto config =
      parse_ok({"--allow", "uid=1000;resource=https://a/ gid=50;resource=*", "--allow",
                "uid=7;resource=https://b/", "--caller-rate", "3", "--audit-log", "true"},
               {{"TOKEN_BROKER_ALLOW", "uid=1;resource=https://env/"}});
  ASSERT_EQ(config.allow_rules.size(), 3U);  // the command line replaces the environment's
  EXPECT_EQ(config.allow_rules[0].uid, 1000U);
  EXPECT_EQ(config.allow_rules[1].gid, 50U);
  EXPECT_EQ(config.allow_rules[2].uid, 7U);
  EXPECT_EQ(config.caller_rate, 3);
  EXPECT_TRUE(config.audit_log);
  const auto defaults = parse_ok({});
  EXPECT_TRUE(defaults.allow_rules.empty());
  EXPECT_EQ(defaults.caller_rate, 10);
  EXPECT_FALSE(defaults.audit_log);
  expect_error_naming({"--allow", "uid=1000;resource=https://a/ uid=x;resource=R"}, "uid=x");
  expect_error_naming({"--audit-log", "yes"}, "--audit-log");
}

TEST(ParseConfig, EmptyClientIdMeansTheDefaultIdentity) {
  EXPECT_EQ(parse_ok({"--client-id", ""}).default_identity, Identity{});
}

TEST(Usage, MentionsEveryFlagAndItsEnvironmentVariable) {
  const std::string text = usage();
  const std::vector<std::string> flags = {"source",
                                          "imds-endpoint",
                                          "socket",
                                          "socket-mode",
                                          "admin-listen",
                                          "prefetch",
                                          "sink",
                                          "max-watchers",
                                          "allow",
                                          "caller-rate",
                                          "audit-log",
                                          "watch-keepalive",
                                          "watch-buffer",
                                          "client-id",
                                          "min-validity",
                                          "request-timeout",
                                          "upstream-timeout",
                                          "upstream-concurrency",
                                          "retry-base-ms",
                                          "retry-max-ms",
                                          "error-ttl",
                                          "max-connections",
                                          "idle-timeout",
                                          "header-timeout",
                                          "shutdown-grace",
                                          "log-format",
                                          "log-level"};
  for (const auto& flag : flags) {
    std::string env = "TOKEN_BROKER_";
    for (char c : flag) env += c == '-' ? '_' : static_cast<char>(std::toupper(c));
    EXPECT_NE(text.find("--" + flag + " "), std::string::npos) << flag;
    EXPECT_NE(text.find("[" + env + "]"), std::string::npos) << env;
    // Each documented flag is accepted by the parser too (no dead entries in the help).
    EXPECT_EQ(parse({"--" + flag}).error.find("unknown flag"), std::string::npos) << flag;
  }
  EXPECT_NE(text.find("--help"), std::string::npos);
  EXPECT_NE(text.find("--version"), std::string::npos);
}

}  // namespace
}  // namespace broker

namespace broker {
namespace {

TEST(ParseConfigValues, AFlagWhereAValueShouldBeIsAMissingValue) {
  auto outcome = parse_config({"--socket", "--min-validity", "5"},
                              [](const std::string&) { return std::optional<std::string>{}; });
  EXPECT_FALSE(outcome.config);
  EXPECT_NE(outcome.error.find("--socket needs a value"), std::string::npos) << outcome.error;
}

}  // namespace
}  // namespace broker

// ---- the drop-in listener ----

namespace broker {
namespace {

TEST(ParseConfigDropIn, ImdsListenIsOffByDefaultAndTheHeaderFileSitsNextToTheSocket) {
  const auto config = parse_ok({"--socket", "/run/tb/broker.sock"});
  EXPECT_FALSE(config.imds_listen_enabled);
  EXPECT_EQ(config.identity_header_file, "/run/tb/identity-header");
}

TEST(ParseConfigDropIn, ImdsListenTakesLoopbackAddresses) {
  for (const auto& [value, host, port] :
       std::vector<std::tuple<std::string, std::string, int>>{{"127.0.0.1:8079", "127.0.0.1", 8079},
                                                              {"127.0.0.2:0", "127.0.0.2", 0},
                                                              {"[::1]:50342", "::1", 50342}}) {
    const auto config = parse_ok({"--imds-listen", value});
    EXPECT_TRUE(config.imds_listen_enabled) << value;
    EXPECT_EQ(config.imds_listen_host, host);
    EXPECT_EQ(config.imds_listen_port, port);
  }
  EXPECT_FALSE(
      parse_ok({"--imds-listen", "127.0.0.1:1", "--imds-listen", "off"}).imds_listen_enabled);
}

TEST(ParseConfigDropIn, ImdsListenRefusesAnythingButLoopback) {
  for (const std::string value :
       {"0.0.0.0:8079", "10.0.0.5:8079", "[::]:8079", "169.254.169.254:80", "localhost:8079",
        "example.com:80", "127.0.0.1", "8079"}) {
    expect_error_naming({"--imds-listen", value}, "--imds-listen");
  }
  auto outcome = parse({"--imds-listen", "0.0.0.0:8079"});
  EXPECT_NE(outcome.error.find("loopback"), std::string::npos) << outcome.error;
  // The environment too.
  expect_error_naming({}, "imds-listen", {{"TOKEN_BROKER_IMDS_LISTEN", "192.168.1.1:80"}});
}

TEST(ParseConfigDropIn, IdentityHeaderFileCanBeSet) {
  EXPECT_EQ(parse_ok({"--identity-header-file", "/etc/tb/secret"}).identity_header_file,
            "/etc/tb/secret");
  expect_error_naming({"--identity-header-file", ""}, "--identity-header-file");
}

TEST(IsLoopbackAddress, KnowsTheLoopbackRanges) {
  EXPECT_TRUE(is_loopback_address("127.0.0.1"));
  EXPECT_TRUE(is_loopback_address("127.255.0.9"));
  EXPECT_TRUE(is_loopback_address("::1"));
  EXPECT_TRUE(is_loopback_address("::ffff:127.0.0.1"));
  EXPECT_FALSE(is_loopback_address("::ffff:10.0.0.1"));
  EXPECT_FALSE(is_loopback_address("0.0.0.0"));
  EXPECT_FALSE(is_loopback_address("::"));
  EXPECT_FALSE(is_loopback_address("128.0.0.1"));
  EXPECT_FALSE(is_loopback_address("localhost"));
  EXPECT_FALSE(is_loopback_address(""));
}

}  // namespace
}  // namespace broker

namespace broker {
namespace {

TEST(ParseConfig, UrlsWithAnEmptyPortAreRefused) {
  // "http://127.0.0.1:" is what a script makes of "http://127.0.0.1:$PORT" with PORT unset.
  const auto imds = parse_config({"--imds-endpoint", "http://127.0.0.1:"},
                                 [](const std::string&) { return std::optional<std::string>(); });
  EXPECT_FALSE(imds.config);
  EXPECT_NE(imds.error.find("--imds-endpoint"), std::string::npos) << imds.error;
  const auto app_service = parse_config({"--source", "app-service"}, [](const std::string& name) {
    if (name == "IDENTITY_ENDPOINT")
      return std::optional<std::string>("http://127.0.0.1:/msi/token");
    if (name == "IDENTITY_HEADER") return std::optional<std::string>("h");
    return std::optional<std::string>();
  });
  EXPECT_FALSE(app_service.config);
  EXPECT_NE(app_service.error.find("IDENTITY_ENDPOINT"), std::string::npos) << app_service.error;
}

}  // namespace
}  // namespace broker
