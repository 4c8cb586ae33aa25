// The drop-in listener (--imds-listen): IMDS's and App Service's token routes on loopback TCP,
// backed by the same cache as the Unix socket, against a real broker and emulator.

#include "fixture.hpp"
#include "imds_emulator/emulator.hpp"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

namespace integration {
namespace {

using namespace std::chrono_literals;
using test_support::read_file;
using test_support::run_and_capture;
using test_support::wait_until;

class DropIn : public BrokerWithEmulator {
 protected:
  using Headers = std::vector<std::pair<std::string, std::string>>;

  /// Starts emulator and broker with the listener on a port the kernel picks; reads it from the
  /// broker's start-up line.
  void start(const std::vector<std::string>& extra = {}) {
    start_emulator();
    std::vector<std::string> args = {"--imds-listen", "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    start_broker(args);
    std::smatch match;
    const std::string log = broker_log();
    const std::regex pattern(R"re("imds_listen":"127\.0\.0\.1:([0-9]+)")re");
    ASSERT_TRUE(std::regex_search(log, match, pattern)) << log;
    port_ = match[1];
  }

  std::string header_file() const { return dir_.file("identity-header"); }
  std::string secret() const { return read_file(header_file()); }

  tb::http::Response tcp_get(const std::string& target, Headers headers = {}) {
    tb::http::Request request{.target = target, .headers = std::move(headers)};
    auto response = tb::http::request_tcp("127.0.0.1", port_, std::move(request), {.timeout = 30s});
    if (!response) {
      ADD_FAILURE() << "GET " << target << " failed: " << response.error().message();
      return {};
    }
    auto body = json::parse(response->body(), nullptr, false);
    if (body.is_object() && body.contains("access_token") && body["access_token"].is_string()) {
      remember_token(body["access_token"]);
    }
    return *response;
  }

  tb::http::Response imds_get(const std::string& suffix = "") {
    return tcp_get(std::string("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=") +
                       kDatabaseQuery + suffix,
                   {{"Metadata", "true"}});
  }

  tb::http::Response app_service_get(const std::string& suffix = "") {
    return tcp_get(
        std::string("/msi/token?api-version=2019-08-01&resource=") + kDatabaseQuery + suffix,
        {{"X-IDENTITY-HEADER", secret()}});
  }

  std::string port_;
};

TEST(EmulatorIdentity, TheFixturesConstantsAreTheEmulatorsDefaultIdentity) {
  const auto identity = imds_emulator::default_identity();
  EXPECT_EQ(identity.client_id, kEmulatorClientId);
  EXPECT_EQ(identity.object_id, kEmulatorObjectId);
  EXPECT_EQ(std::regex_replace(identity.mi_res_id, std::regex("/"), "%2F"),
            kEmulatorResourceIdQuery);
}

TEST_F(DropIn, ImdsRouteAnswersAsImdsFromTheSameCacheAsTheSocket) {
  start();
  auto response = imds_get();
  ASSERT_EQ(response.result_int(), 200) << response.body();
  const auto body = json::parse(response.body());
  for (const auto& [key, value] : body.items()) EXPECT_TRUE(value.is_string()) << key;
  EXPECT_EQ(body["client_id"], kEmulatorClientId);
  EXPECT_EQ(body["resource"], kDatabase);
  EXPECT_EQ(body["token_type"], "Bearer");

  // The socket's /v1/token gets the token the listener fetched: one upstream call in all.
  auto v1 = get_token();
  ASSERT_EQ(v1.result_int(), 200) << v1.body();
  EXPECT_EQ(json::parse(v1.body())["access_token"], body["access_token"]);
  EXPECT_EQ(emulator_stats()["token_requests"], 1) << emulator_stats().dump();
}

TEST_F(DropIn, ImdsProbeWithoutMetadataHeaderIsA400AsFromImds) {
  start();
  // What @azure/identity sends to see whether IMDS is there: no query, no Metadata header.
  auto response = tcp_get("/metadata/identity/oauth2/token", {{"Accept", "application/json"}});
  EXPECT_EQ(response.result_int(), 400);
  EXPECT_EQ(json::parse(response.body())["error"], "invalid_request");
}

TEST_F(DropIn, AppServiceRouteAnswersInAppServiceShapeWithTheGeneratedHeader) {
  start();
  // Generated at start: 32 random bytes in hex, mode 0640.
  const auto value = secret();
  EXPECT_TRUE(std::regex_match(value, std::regex("[0-9a-f]{64}"))) << value.size();
  struct stat info {};
  ASSERT_EQ(::stat(header_file().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0640u);
  struct stat socket_info {};
  ASSERT_EQ(::stat(socket_path().c_str(), &socket_info), 0);
  EXPECT_EQ(info.st_gid, socket_info.st_gid);
  EXPECT_EQ(broker_log().find(value), std::string::npos) << "the identity header is logged";

  auto response = app_service_get();
  ASSERT_EQ(response.result_int(), 200) << response.body();
  const auto body = json::parse(response.body());
  std::set<std::string> keys;
  for (const auto& [key, field] : body.items()) keys.insert(key);
  EXPECT_EQ(keys, (std::set<std::string>{"access_token", "expires_on", "resource", "token_type",
                                         "client_id"}));
  ASSERT_TRUE(body["expires_on"].is_string());
  const auto expires_on = std::stoll(body["expires_on"].get<std::string>());
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  EXPECT_GT(expires_on, now + 3000);
  EXPECT_EQ(body["client_id"], kEmulatorClientId);
  EXPECT_EQ(body["resource"], kDatabase);
}

TEST_F(DropIn, AppServiceRouteRefusesAMissingOrWrongHeader) {
  start();
  const std::string target =
      std::string("/msi/token?api-version=2019-08-01&resource=") + kDatabaseQuery;
  auto missing = tcp_get(target);
  EXPECT_EQ(missing.result_int(), 400) << missing.body();
  auto wrong = tcp_get(target, {{"X-IDENTITY-HEADER", secret() + "x"}});
  EXPECT_EQ(wrong.result_int(), 401) << wrong.body();
  // The IMDS header opens nothing here.
  auto metadata = tcp_get(target, {{"Metadata", "true"}});
  EXPECT_EQ(metadata.result_int(), 400) << metadata.body();
  EXPECT_EQ(emulator_stats()["token_requests"], 0);
}

TEST_F(DropIn, EveryIdentityParameterReachesTheUpstreamInItsOwnName) {
  start();
  for (const std::string& suffix : {std::string("&client_id=") + kEmulatorClientId,
                                    std::string("&principal_id=") + kEmulatorObjectId,
                                    std::string("&object_id=") + kEmulatorObjectId,
                                    std::string("&mi_res_id=") + kEmulatorResourceIdQuery}) {
    auto response = app_service_get(suffix);
    EXPECT_EQ(response.result_int(), 200) << suffix << ": " << response.body();
  }
  auto imds = imds_get(std::string("&msi_res_id=") + kEmulatorResourceIdQuery);
  EXPECT_EQ(imds.result_int(), 200) << imds.body();
  // An identity the upstream does not know: its refusal, as a 400.
  auto unknown = app_service_get("&client_id=99999999-0000-0000-0000-000000000000");
  EXPECT_EQ(unknown.result_int(), 400) << unknown.body();
}

TEST_F(DropIn, AnExistingIdentityHeaderFileIsUsedAsItIs) {
  {
    std::ofstream out(header_file());
    out << "my-own-secret-of-enough-length\n";
  }
  start();
  auto ok = tcp_get(std::string("/msi/token?api-version=2019-08-01&resource=") + kDatabaseQuery,
                    {{"X-IDENTITY-HEADER", "my-own-secret-of-enough-length"}});
  EXPECT_EQ(ok.result_int(), 200) << ok.body();
}

TEST_F(DropIn, ServesOnlyTheCompatibleRoutesAndNoProxiedRequests) {
  start();
  EXPECT_EQ(tcp_get(std::string("/v1/token?resource=") + kDatabaseQuery).result_int(), 404);
  EXPECT_EQ(tcp_get("/metrics").result_int(), 404);
  auto forwarded =
      tcp_get(std::string("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=") +
                  kDatabaseQuery,
              {{"Metadata", "true"}, {"X-Forwarded-For", "10.0.0.7"}});
  EXPECT_EQ(forwarded.result_int(), 400) << forwarded.body();
}

TEST_F(DropIn, IsOffByDefault) {
  start_emulator();
  start_broker();
  EXPECT_NE(broker_log().find(R"("imds_listen":"off")"), std::string::npos) << broker_log();
  EXPECT_FALSE(std::filesystem::exists(header_file()));
}

TEST(DropInStart, ANonLoopbackAddressStopsTheStartWithExitCode2) {
  test_support::TempDir dir;
  for (const char* address : {"0.0.0.0:0", "[::]:0", "10.1.2.3:8079"}) {
    auto [code, output] = run_and_capture(
        TB_BROKER_BIN,
        {"--imds-listen", address, "--socket", dir.file("b.sock"), "--admin-listen", "off"});
    EXPECT_EQ(code, 2) << address << ": " << output;
    EXPECT_NE(output.find("--imds-listen"), std::string::npos) << output;
    EXPECT_NE(output.find("loopback"), std::string::npos) << output;
    EXPECT_FALSE(std::filesystem::exists(dir.file("b.sock")));
  }
}

}  // namespace
}  // namespace integration
