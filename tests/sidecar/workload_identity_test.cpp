#include "broker/workload_identity.hpp"

#include "broker/imds.hpp"

#include "fakes.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/url/parse_query.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

namespace broker {
namespace {

using namespace std::chrono_literals;
using testing::FakeClock;

const SystemTime kNow{std::chrono::seconds(FakeClock::kStartUnix)};

std::map<std::string, std::string> decode_form(const std::string& body) {
  std::map<std::string, std::string> out;
  auto params = boost::urls::parse_query(body);
  EXPECT_TRUE(params) << body;
  if (!params) return out;
  for (const auto& param : *params) out[param.key.decode()] = param.value.decode();
  return out;
}

// ---- request building ----

TEST(WorkloadIdentityForm, CarriesTheClientCredentialsExchange) {
  const auto form = decode_form(workload_identity_form(
      "c1d2-client", "https://database.windows.net/", "header.claims.signature"));
  EXPECT_EQ(form.at("grant_type"), "client_credentials");
  EXPECT_EQ(form.at("client_id"), "c1d2-client");
  EXPECT_EQ(form.at("scope"), "https://database.windows.net/.default");
  EXPECT_EQ(form.at("client_assertion_type"),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
  EXPECT_EQ(form.at("client_assertion"), "header.claims.signature");
  EXPECT_EQ(form.size(), 5u);
}

TEST(WorkloadIdentityForm, EncodesReservedCharactersSoNothingIsReadAsASeparatorOrSpace) {
  const std::string body = workload_identity_form("a&b=c", "https://x/+y", "p+q/r=");
  EXPECT_EQ(body.find('+'), std::string::npos) << body;
  const auto form = decode_form(body);
  EXPECT_EQ(form.at("client_id"), "a&b=c");
  EXPECT_EQ(form.at("scope"), "https://x/+y/.default");
  EXPECT_EQ(form.at("client_assertion"), "p+q/r=");
}

TEST(ScopeFor, AppendsDefaultOnceWhateverTheTrailingSlash) {
  EXPECT_EQ(scope_for("https://database.windows.net/"), "https://database.windows.net/.default");
  EXPECT_EQ(scope_for("https://database.windows.net"), "https://database.windows.net/.default");
  EXPECT_EQ(scope_for("api://my-app"), "api://my-app/.default");
}

// ---- identities ----

TEST(WorkloadIdentityClientId, UsesTheRequestsClientIdElseAzureClientId) {
  TokenKey key{{Identity::Kind::client_id, "from-request"}, "r"};
  EXPECT_EQ(std::get<std::string>(workload_identity_client_id(key, "from-env")), "from-request");
  key.identity = {};
  EXPECT_EQ(std::get<std::string>(workload_identity_client_id(key, "from-env")), "from-env");
}

TEST(WorkloadIdentityClientId, RefusesWhatWorkloadIdentityCannotExpressWith400) {
  for (auto kind : {Identity::Kind::object_id, Identity::Kind::mi_res_id}) {
    TokenKey key{{kind, "x"}, "r"};
    auto result = workload_identity_client_id(key, "from-env");
    ASSERT_TRUE(std::holds_alternative<FetchError>(result));
    const auto& error = std::get<FetchError>(result);
    EXPECT_EQ(error.status, 400u);
    EXPECT_EQ(error.error, "unsupported_identity");
    EXPECT_NE(error.description.find("client_id"), std::string::npos) << error.description;
  }
  auto none = workload_identity_client_id(TokenKey{{}, "r"}, "");
  ASSERT_TRUE(std::holds_alternative<FetchError>(none));
  EXPECT_NE(std::get<FetchError>(none).description.find("AZURE_CLIENT_ID"), std::string::npos);
}

// ---- Entra errors ----

TEST(EntraError, KeepsTheCodeAndFirstLineAndAddsAHintForAnExpiredAssertion) {
  const std::string body =
      R"({"error":"invalid_client","error_description":"AADSTS700024: Client assertion is not within its valid time range.\r\nTrace ID: 1\r\nCorrelation ID: 2","error_codes":[700024],"trace_id":"1"})";
  const auto error = entra_error(401, body, "", kNow);
  EXPECT_EQ(error.status, 401u);
  EXPECT_EQ(error.error, "invalid_client");
  EXPECT_NE(error.description.find("AADSTS700024"), std::string::npos) << error.description;
  EXPECT_EQ(error.description.find("Trace ID"), std::string::npos) << error.description;
  EXPECT_NE(error.description.find("AZURE_FEDERATED_TOKEN_FILE"), std::string::npos)
      << error.description;
}

TEST(EntraError, HintsAtTheFederatedCredentialForAADSTS70021) {
  const auto error = entra_error(
      401,
      R"({"error":"invalid_client","error_description":"AADSTS70021: No matching federated identity record found","error_codes":[70021]})",
      "", kNow);
  EXPECT_NE(error.description.find("federated identity credential"), std::string::npos)
      << error.description;
}

TEST(EntraError, NonJsonBodiesAndRetryAfterAreHandled) {
  const auto error = entra_error(503, "<html>busy</html>", "7", kNow);
  EXPECT_EQ(error.status, 503u);
  EXPECT_EQ(error.error, "upstream_http_503");
  EXPECT_EQ(error.retry_after, 7000ms);
  EXPECT_FALSE(error.description.empty());
}

TEST(EntraError, ADescriptionlessErrorIsNamedByItsCode) {
  const auto error =
      entra_error(400, R"({"error":"invalid_request","error_codes":[90002]})", "", kNow);
  EXPECT_NE(error.description.find("AADSTS90002"), std::string::npos) << error.description;
  EXPECT_NE(error.description.find("AZURE_TENANT_ID"), std::string::npos) << error.description;
}

TEST(EntraResponse, ANumericExpiresInIsAccepted) {
  // Entra's v2.0 shape: numbers, no expires_on.
  auto result = parse_token_response(
      R"({"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"t"})",
      kNow);
  ASSERT_TRUE(std::holds_alternative<UpstreamToken>(result));
  const auto& token = std::get<UpstreamToken>(result);
  EXPECT_EQ(token.expires_in, 3599s);
  EXPECT_EQ(token.expires_on, FakeClock::kStartUnix + 3599);
}

// ---- the federated token file ----

class FederatedTokenFile : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("tb-wi-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void write(const std::string& content) { std::ofstream(path_) << content; }
  std::string path_;
};

TEST_F(FederatedTokenFile, IsTrimmedAndReReadEveryTime) {
  std::string error;
  write("first.token.sig\n");
  EXPECT_EQ(read_federated_token(path_, error), "first.token.sig");
  write("second.token.sig");
  EXPECT_EQ(read_federated_token(path_, error), "second.token.sig");
}

TEST_F(FederatedTokenFile, MissingOrEmptyIsAClearError) {
  std::string error;
  EXPECT_FALSE(read_federated_token(path_, error));
  EXPECT_NE(error.find(path_), std::string::npos) << error;
  EXPECT_NE(error.find("AZURE_FEDERATED_TOKEN_FILE"), std::string::npos) << error;
  write(" \n");
  EXPECT_FALSE(read_federated_token(path_, error));
  EXPECT_NE(error.find("empty"), std::string::npos) << error;
}

// ---- the source ----

WorkloadIdentitySettings settings(std::string authority, std::string file = "/nonexistent/x") {
  WorkloadIdentitySettings s;
  s.authority_host = std::move(authority);
  s.tenant_id = "tenant-1";
  s.client_id = "client-1";
  s.federated_token_file = std::move(file);
  return s;
}

TEST(WorkloadIdentitySource, BuildsTheTokenUrlFromAuthorityAndTenant) {
  FakeClock clock;
  WorkloadIdentitySource source(settings("https://login.microsoftonline.com/"), clock);
  EXPECT_EQ(source.describe(), "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token");
  EXPECT_EQ(source.name(), "workload-identity");
  WorkloadIdentitySource no_slash(settings("https://127.0.0.1:8443"), clock);
  EXPECT_EQ(no_slash.describe(), "https://127.0.0.1:8443/tenant-1/oauth2/v2.0/token");
}

TEST(WorkloadIdentitySource, RefusesPlainHttpAndBadUrls) {
  FakeClock clock;
  for (const char* authority : {"http://login.microsoftonline.com/", "login", "https://h/?q=1"}) {
    EXPECT_THROW(WorkloadIdentitySource(settings(authority), clock), std::invalid_argument)
        << authority;
  }
}

TEST(WorkloadIdentitySource, AnUnreadableCaFileIsAStartUpError) {
  FakeClock clock;
  auto s = settings("https://login.microsoftonline.com/");
  s.ca_file = "/nonexistent/ca.pem";
  try {
    WorkloadIdentitySource source(s, clock);
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ca.pem"), std::string::npos) << e.what();
  }
}

FetchResult run_fetch(Source& source, const TokenKey& key) {
  boost::asio::io_context io;
  auto future = boost::asio::co_spawn(io, source.fetch(key, 1s), boost::asio::use_future);
  io.run();
  return future.get();
}

TEST(WorkloadIdentitySource, AMissingFederatedFileFailsWithoutTouchingTheNetwork) {
  FakeClock clock;
  // Port 9 on loopback: nothing listens, but the file is read first, so this is never reached.
  WorkloadIdentitySource source(settings("https://127.0.0.1:9/", "/nonexistent/token"), clock);
  auto result = run_fetch(source, TokenKey{{}, "https://database.windows.net/"});
  ASSERT_TRUE(std::holds_alternative<FetchError>(result));
  const auto& error = std::get<FetchError>(result);
  EXPECT_EQ(error.status, 0u);  // retried: kubelet may not have written it yet
  EXPECT_EQ(error.error, "federated_token_unreadable");
  EXPECT_NE(error.description.find("/nonexistent/token"), std::string::npos);
}

TEST(WorkloadIdentitySource, AnObjectIdIsRefusedWith400BeforeAnyIo) {
  FakeClock clock;
  WorkloadIdentitySource source(settings("https://127.0.0.1:9/"), clock);
  auto result = run_fetch(source, TokenKey{{Identity::Kind::object_id, "o"}, "r"});
  ASSERT_TRUE(std::holds_alternative<FetchError>(result));
  EXPECT_EQ(std::get<FetchError>(result).status, 400u);
}

}  // namespace
}  // namespace broker
