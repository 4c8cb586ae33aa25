// token-broker --source app-service (chosen by --source auto when IDENTITY_ENDPOINT is set)
// against imds-emulator's App Service route: the token, identity mapping, a refused and a rotated
// identity header, and the same route over TLS: a trusted CA, and a certificate that names
// another host (the HTTPS client checks names, not only the chain).
#include "fixture.hpp"
#include "imds_emulator/jwt.hpp"
#include "jwt_peek.hpp"
#include "leak_check.hpp"
#include "tb/crypto.hpp"
#include "test_ca.hpp"

#include <filesystem>
#include <fstream>

namespace integration {
namespace {

using namespace std::chrono_literals;
using test_support::read_file;
using test_support::wait_until;

constexpr const char* kHeader = "app-service-identity-header-0123456789";

class AppService : public BrokerWithEmulator {
 protected:
  void SetUp() override { test_support::leaks::note_secret("the identity header", kHeader); }

  /// The emulator with its App Service route, and with a TLS listener whose certificate is
  /// `tls` (the same routes over HTTPS).
  void start_app_service_emulator(const test_support::TestCaFiles& tls) {
    // The TLS listener is the Entra one: it needs an assertion key and a federated client.
    std::ofstream(dir_.file("sa-issuer.pem")) << imds_emulator_public_key();
    start_emulator({"--identity-header", kHeader, "--entra-listen", "127.0.0.1:0",
                    "--entra-port-file", dir_.file("tls.port"), "--tls-cert", tls.server_cert,
                    "--tls-key", tls.server_key, "--sa-issuer-key", dir_.file("sa-issuer.pem"),
                    "--federated-client", "client_id=unused,sub=unused"});
    tls_port_ = read_file(dir_.file("tls.port"));
    while (!tls_port_.empty() && tls_port_.back() == '\n') tls_port_.pop_back();
    ASSERT_FALSE(tls_port_.empty()) << emulator_log();
  }

  /// A PEM public key for --sa-issuer-key: any key will do, no assertion is ever sent here.
  static std::string imds_emulator_public_key() {
    static const std::string pem = imds_emulator::Signer::generate().public_key_pem();
    return pem;
  }

  std::string http_endpoint() const { return "http://127.0.0.1:" + emulator_port_ + "/msi/token"; }

  void start_app_service_broker(std::vector<std::pair<std::string, std::string>> env,
                                const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--socket",        socket_path(), "--admin-listen", "off",
                                     "--retry-base-ms", "100",         "--retry-max-ms", "500"};
    args.insert(args.end(), extra.begin(), extra.end());
    broker_ = std::make_unique<Process>(
        TB_BROKER_BIN, args, Process::Options{std::move(env), dir_.file("broker.log"), {}});
    wait_for_broker();
  }

  std::string description(const tb::http::Response& response) {
    return json::parse(response.body(), nullptr, false).value("error_description", "");
  }

  std::string tls_port_;
};

TEST_F(AppService, AutoPicksAppServiceAndServesTheTokenFromTheCacheAfterwards) {
  start_app_service_emulator(test_support::write_test_ca(dir_.path()));
  start_app_service_broker({{"IDENTITY_ENDPOINT", http_endpoint()}, {"IDENTITY_HEADER", kHeader}});
  auto response = get_token();
  ASSERT_EQ(response.result_int(), 200) << response.body() << "\n" << broker_log();
  const auto body = json::parse(response.body());
  const auto claims = test_support::jwt_claims(body["access_token"].get<std::string>());
  EXPECT_EQ(claims["appid"], kEmulatorClientId);
  EXPECT_EQ(claims["aud"], kDatabase);
  EXPECT_GT(body["expires_in"].get<int>(), 3000);
  EXPECT_EQ(get_token().result_int(), 200);
  EXPECT_EQ(emulator_stats()["token_requests"], 1);

  const auto readyz = json::parse(get("/readyz").body());
  EXPECT_EQ(readyz["source"], "app-service");
  const std::string log = broker_log();
  EXPECT_NE(log.find("auto: IDENTITY_ENDPOINT is set"), std::string::npos) << log;
  EXPECT_NE(log.find(http_endpoint()), std::string::npos) << log;
}

TEST_F(AppService, EachIdentityIsSentUnderAppServicesParameterName) {
  start_app_service_emulator(test_support::write_test_ca(dir_.path()));
  start_app_service_broker({{"IDENTITY_ENDPOINT", http_endpoint()}, {"IDENTITY_HEADER", kHeader}});
  for (const std::string& selector : {std::string("&client_id=") + kEmulatorClientId,
                                      std::string("&object_id=") + kEmulatorObjectId,
                                      std::string("&principal_id=") + kEmulatorObjectId,
                                      std::string("&mi_res_id=") + kEmulatorResourceIdQuery}) {
    auto response = get_token(selector);
    ASSERT_EQ(response.result_int(), 200) << selector << ": " << response.body();
    const auto claims =
        test_support::jwt_claims(json::parse(response.body())["access_token"].get<std::string>());
    EXPECT_EQ(claims["appid"], kEmulatorClientId) << selector;
  }
  // An identity the app does not have: the endpoint's 400, passed on at once, not retried.
  auto unknown = get_token("&client_id=99999999-9999-9999-9999-999999999999");
  EXPECT_EQ(unknown.result_int(), 400) << unknown.body();
  EXPECT_NE(description(unknown).find("assigned"), std::string::npos) << unknown.body();
}

TEST_F(AppService, AForcedRefreshTellsAppServiceWhichTokenToSkip) {
  // As MSAL does for a revoked token: token_sha256_to_refresh=<SHA-256 of it> makes App
  // Service's token service skip its own cache.
  start_app_service_emulator(test_support::write_test_ca(dir_.path()));
  start_app_service_broker({{"IDENTITY_ENDPOINT", http_endpoint()}, {"IDENTITY_HEADER", kHeader}});
  const auto first = get_token();
  ASSERT_EQ(first.result_int(), 200) << first.body();
  const auto old_token = json::parse(first.body())["access_token"].get<std::string>();
  const auto hash = tb::hex(tb::sha256(old_token));
  const auto refreshed = refresh_token("&token_sha256=" + hash);
  ASSERT_EQ(refreshed.result_int(), 200) << refreshed.body() << "\n" << broker_log();
  EXPECT_EQ(json::parse(refreshed.body())["new"], true);
  const auto calls = emulator_calls();
  ASSERT_EQ(calls.size(), 2u) << calls.dump();
  EXPECT_FALSE(calls[0].contains("token_sha256_to_refresh")) << calls.dump();
  EXPECT_EQ(calls[1]["token_sha256_to_refresh"], hash) << calls.dump();
}

TEST_F(AppService, ARefusedHeaderIsAClearErrorAndTheRotatedHeaderFileIsReRead) {
  start_app_service_emulator(test_support::write_test_ca(dir_.path()));
  const std::string header_file = dir_.file("identity-header-upstream");
  std::ofstream(header_file) << "an-outdated-identity-header-value\n";
  start_app_service_broker(
      {{"IDENTITY_ENDPOINT", http_endpoint()}, {"IDENTITY_HEADER_FILE", header_file}},
      {"--error-ttl", "1"});
  auto refused = get_token();
  EXPECT_EQ(refused.result_int(), 403) << refused.body();
  EXPECT_NE(description(refused).find("identity_header_rejected"), std::string::npos)
      << refused.body();
  EXPECT_NE(description(refused).find("IDENTITY_HEADER_FILE"), std::string::npos) << refused.body();
  EXPECT_EQ(refused.body().find("an-outdated"), std::string::npos) << "the header is not echoed";

  {  // The platform rotates the secret; the broker reads the file again for its next call.
    std::ofstream(header_file + ".tmp") << kHeader;
    std::filesystem::rename(header_file + ".tmp", header_file);
  }
  unsigned status = 0;
  EXPECT_TRUE(wait_until(
      [&] {
        status = get_token().result_int();
        return status == 200;
      },
      10s))
      << status << "\n"
      << broker_log();
  EXPECT_EQ(broker_log().find("an-outdated"), std::string::npos);
}

TEST_F(AppService, AnHttpsEndpointIsVerifiedAgainstTheCaFile) {
  const auto ca = test_support::write_test_ca(dir_.path());
  start_app_service_emulator(ca);
  start_app_service_broker({{"IDENTITY_ENDPOINT", "https://127.0.0.1:" + tls_port_ + "/msi/token"},
                            {"IDENTITY_HEADER", kHeader}},
                           {"--ca-file", ca.ca_cert});
  auto response = get_token();
  EXPECT_EQ(response.result_int(), 200) << response.body() << "\n" << broker_log();
}

TEST_F(AppService, ACertificateForAnotherHostIsAClearTlsErrorEvenFromATrustedCa) {
  // Signed by the CA the broker trusts, but naming only elsewhere.test, not 127.0.0.1.
  const auto ca = test_support::write_test_ca(dir_.path(), "elsewhere-", "DNS:elsewhere.test");
  start_app_service_emulator(ca);

  // The HTTPS client on its own: the chain verifies, the name does not.
  auto client = tb::http::make_tls_client_context(ca.ca_cert);
  auto direct = tb::http::request_https(client, "127.0.0.1", tls_port_,
                                        {.target = "/_emulator/stats"}, {.timeout = 5s});
  ASSERT_FALSE(direct);
  EXPECT_TRUE(tb::http::is_tls_error(direct.error())) << direct.error().message();

  start_app_service_broker({{"IDENTITY_ENDPOINT", "https://127.0.0.1:" + tls_port_ + "/msi/token"},
                            {"IDENTITY_HEADER", kHeader}},
                           {"--ca-file", ca.ca_cert, "--request-timeout", "2"});
  auto response = get_token();
  EXPECT_EQ(response.result_int(), 503) << response.body();
  const std::string text = description(response);
  EXPECT_NE(text.find("upstream_tls_error"), std::string::npos) << text;
  EXPECT_NE(text.find("name 127.0.0.1"), std::string::npos) << text;
  EXPECT_EQ(emulator_stats()["token_requests"], 0) << "no request left the broker";
}

TEST_F(AppService, MissingEnvironmentStopsTheBrokerWithOneLineNamingIt) {
  Process broker(
      TB_BROKER_BIN, {"--source", "app-service", "--socket", socket_path()},
      Process::Options{
          {{"IDENTITY_ENDPOINT", "http://127.0.0.1:9/msi/token"}}, dir_.file("broker.log"), {}});
  EXPECT_EQ(broker.wait(10s), 2);
  EXPECT_NE(read_file(dir_.file("broker.log")).find("IDENTITY_HEADER"), std::string::npos);
}

}  // namespace
}  // namespace integration
