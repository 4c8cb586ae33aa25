// token-broker --source workload-identity against imds-emulator's Entra-like endpoint over real
// TLS (a throwaway CA made at test time): the exchange, a distrusted CA, the federated token file
// rotated by "kubelet", a missing file, and identities workload identity cannot express.
#include "fixture.hpp"
#include "imds_emulator/jwt.hpp"
#include "jwt_peek.hpp"
#include "test_ca.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace integration {
namespace {

using namespace std::chrono_literals;
using test_support::read_file;
using test_support::wait_until;

constexpr const char* kTenant = "72f988bf-0000-0000-0000-000000000000";
constexpr const char* kClientId = "fed-11111111-2222-3333-4444-555555555555";
constexpr const char* kSubject = "system:serviceaccount:todo:todo-app";
constexpr const char* kSniName = "test.ests.aks";

const imds_emulator::Signer& sa_issuer() {
  static const imds_emulator::Signer instance = imds_emulator::Signer::generate();
  return instance;
}

/// A projected service-account token as kubelet writes it, valid from now for `lifetime`.
std::string service_account_token(std::chrono::seconds lifetime) {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return sa_issuer().sign({{"aud", json::array({"api://AzureADTokenExchange"})},
                           {"iss", "https://oidc.test/issuer"},
                           {"sub", kSubject},
                           {"iat", now - 7200},
                           {"nbf", now - 7200},
                           {"exp", now + lifetime.count()}});
}

class WorkloadIdentity : public BrokerWithEmulator {
 protected:
  void SetUp() override {
    // DNS:test.ests.aks: the name an AKS token proxy's certificate carries (its SNI name).
    ca_ = test_support::write_test_ca(dir_.path(), "",
                                      std::string("IP:127.0.0.1,DNS:localhost,DNS:") + kSniName);
    std::ofstream(dir_.file("sa-issuer.pem")) << sa_issuer().public_key_pem();
    start_emulator({"--entra-listen", "127.0.0.1:0", "--entra-port-file", dir_.file("entra.port"),
                    "--tls-cert", ca_.server_cert, "--tls-key", ca_.server_key, "--sa-issuer-key",
                    dir_.file("sa-issuer.pem"), "--federated-client",
                    std::string("client_id=") + kClientId + ",sub=" + kSubject});
    entra_port_ = read_file(dir_.file("entra.port"));
    while (!entra_port_.empty() && entra_port_.back() == '\n') entra_port_.pop_back();
    ASSERT_FALSE(entra_port_.empty()) << emulator_log();
  }

  std::string token_file() const { return dir_.file("sa-token"); }

  /// Replaces the federated token file atomically, as kubelet does.
  void write_token_file(const std::string& token) {
    remember_token(token);  // the assertion is a credential: it must not reach any log either
    const auto temporary = token_file() + ".tmp";
    std::ofstream(temporary) << token;
    std::filesystem::rename(temporary, token_file());
  }

  /// The broker with AKS identity-binding variables: the exchange goes through the "token
  /// proxy" (the emulator's TLS listener) while AZURE_AUTHORITY_HOST points nowhere.
  void start_proxied_broker(std::vector<std::pair<std::string, std::string>> proxy_env) {
    std::vector<std::pair<std::string, std::string>> env = {
        {"AZURE_CLIENT_ID", kClientId},
        {"AZURE_TENANT_ID", kTenant},
        {"AZURE_AUTHORITY_HOST", "https://127.0.0.1:1/"},
        {"AZURE_FEDERATED_TOKEN_FILE", token_file()},
        {"AZURE_KUBERNETES_TOKEN_PROXY", "https://127.0.0.1:" + entra_port_}};
    env.insert(env.end(), proxy_env.begin(), proxy_env.end());
    broker_ = std::make_unique<Process>(
        TB_BROKER_BIN,
        std::vector<std::string>{"--socket", socket_path(), "--admin-listen", "off",
                                 "--retry-base-ms", "100", "--retry-max-ms", "500",
                                 "--request-timeout", "3"},
        Process::Options{std::move(env), dir_.file("broker.log"), {}});
    wait_for_broker();
  }

  void start_wi_broker(const std::string& ca_file, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--source",        "workload-identity",
                                     "--ca-file",       ca_file,
                                     "--socket",        socket_path(),
                                     "--admin-listen",  "off",
                                     "--retry-base-ms", "100",
                                     "--retry-max-ms",  "500"};
    args.insert(args.end(), extra.begin(), extra.end());
    Process::Options options{{{"AZURE_CLIENT_ID", kClientId},
                              {"AZURE_TENANT_ID", kTenant},
                              {"AZURE_AUTHORITY_HOST", "https://127.0.0.1:" + entra_port_ + "/"},
                              {"AZURE_FEDERATED_TOKEN_FILE", token_file()}},
                             dir_.file("broker.log"),
                             {}};
    broker_ = std::make_unique<Process>(TB_BROKER_BIN, args, std::move(options));
    wait_for_broker();
  }

  json readyz(unsigned& status) {
    auto response = get("/readyz");
    status = response.result_int();
    return json::parse(response.body(), nullptr, false);
  }

  test_support::TestCaFiles ca_;
  std::string entra_port_;
};

TEST_F(WorkloadIdentity, ExchangesTheFederatedTokenForAnAccessTokenOverTls) {
  write_token_file(service_account_token(1h));
  start_wi_broker(ca_.ca_cert);
  auto response = get_token();
  ASSERT_EQ(response.result_int(), 200) << response.body() << "\n" << broker_log();
  const auto body = json::parse(response.body());
  const auto claims = test_support::jwt_claims(body["access_token"].get<std::string>());
  EXPECT_EQ(claims["appid"], kClientId);
  EXPECT_GT(body["expires_in"].get<int>(), 3000);
  EXPECT_EQ(emulator_stats()["tokens_issued"], 1);
  unsigned status = 0;
  EXPECT_EQ(readyz(status)["source"], "workload-identity");
  EXPECT_NE(broker_log().find("workload-identity"), std::string::npos);
}

TEST_F(WorkloadIdentity, AnAksTokenProxyIsUsedWithItsCaFileAndSniName) {
  write_token_file(service_account_token(1h));
  start_proxied_broker(
      {{"AZURE_KUBERNETES_SNI_NAME", kSniName}, {"AZURE_KUBERNETES_CA_FILE", ca_.ca_cert}});
  auto response = get_token();
  ASSERT_EQ(response.result_int(), 200) << response.body() << "\n" << broker_log();
  const auto claims =
      test_support::jwt_claims(json::parse(response.body())["access_token"].get<std::string>());
  EXPECT_EQ(claims["appid"], kClientId);
  EXPECT_EQ(emulator_stats()["tokens_issued"], 1);
  EXPECT_NE(broker_log().find("AZURE_KUBERNETES_TOKEN_PROXY"), std::string::npos);
}

TEST_F(WorkloadIdentity, AnAksTokenProxysCaMayComeInline) {
  write_token_file(service_account_token(1h));
  start_proxied_broker({{"AZURE_KUBERNETES_SNI_NAME", kSniName},
                        {"AZURE_KUBERNETES_CA_DATA", read_file(ca_.ca_cert)}});
  auto response = get_token();
  ASSERT_EQ(response.result_int(), 200) << response.body() << "\n" << broker_log();
}

TEST_F(WorkloadIdentity, AnAksTokenProxyCertificateIsCheckedAgainstTheSniName) {
  write_token_file(service_account_token(1h));
  // The certificate names test.ests.aks (and 127.0.0.1), not this name: refused.
  start_proxied_broker(
      {{"AZURE_KUBERNETES_SNI_NAME", "other.ests.aks"}, {"AZURE_KUBERNETES_CA_FILE", ca_.ca_cert}});
  auto response = get_token();
  EXPECT_EQ(response.result_int(), 503) << response.body();
  const std::string description = json::parse(response.body()).value("error_description", "");
  EXPECT_NE(description.find("upstream_tls_error"), std::string::npos) << description;
  EXPECT_EQ(emulator_stats()["token_requests"], 0);
}

TEST_F(WorkloadIdentity, AServerCertificateFromAnotherCaIsAClearTlsError) {
  write_token_file(service_account_token(1h));
  const auto other = test_support::write_test_ca(dir_.path(), "other-");
  start_wi_broker(other.ca_cert, {"--request-timeout", "2"});
  auto response = get_token();
  EXPECT_EQ(response.result_int(), 503) << response.body();
  const std::string description = json::parse(response.body()).value("error_description", "");
  EXPECT_NE(description.find("upstream_tls_error"), std::string::npos) << description;
  EXPECT_NE(description.find("certificate verify failed"), std::string::npos) << description;
  EXPECT_NE(description.find(other.ca_cert), std::string::npos) << description;
  EXPECT_EQ(emulator_stats()["token_requests"], 0);
}

TEST_F(WorkloadIdentity, AnExpiredAssertionFailsClearlyAndTheRotatedFileIsReRead) {
  write_token_file(service_account_token(-60s));
  start_wi_broker(ca_.ca_cert, {"--error-ttl", "1"});
  auto refused = get_token();
  EXPECT_EQ(refused.result_int(), 403) << refused.body();
  EXPECT_NE(refused.body().find("AADSTS700024"), std::string::npos) << refused.body();
  EXPECT_NE(refused.body().find("AZURE_FEDERATED_TOKEN_FILE"), std::string::npos) << refused.body();

  write_token_file(service_account_token(1h));  // kubelet rotates the projected token
  // Once the refusal is no longer remembered (--error-ttl 1), the next exchange reads the new file.
  unsigned status = 0;
  EXPECT_TRUE(wait_until(
      [&] {
        status = get_token().result_int();
        return status == 200;
      },
      10s))
      << status << "\n"
      << broker_log();
}

TEST_F(WorkloadIdentity, AMissingFederatedFileIsAClearErrorAndNotReadyUntilItAppears) {
  start_wi_broker(ca_.ca_cert, {"--prefetch", kDatabase});
  unsigned status = 0;
  json body;
  ASSERT_TRUE(wait_until(
      [&] {
        body = readyz(status);
        return body.is_object() && body["tokens"].is_array() && !body["tokens"].empty() &&
               body["tokens"][0].contains("last_error");
      },
      10s))
      << body.dump();
  EXPECT_EQ(status, 503u);
  EXPECT_EQ(body["source"], "workload-identity");
  const std::string last_error = body["tokens"][0]["last_error"];
  EXPECT_NE(last_error.find("federated_token_unreadable"), std::string::npos) << last_error;
  EXPECT_NE(last_error.find(token_file()), std::string::npos) << last_error;

  write_token_file(service_account_token(1h));
  EXPECT_TRUE(wait_until(
      [&] {
        readyz(status);
        return status == 200;
      },
      10s))
      << broker_log();
}

TEST_F(WorkloadIdentity, IdentitiesOtherThanClientIdAreRefusedWith400) {
  write_token_file(service_account_token(1h));
  start_wi_broker(ca_.ca_cert);
  for (const char* selector :
       {"&object_id=22222222-2222-2222-2222-222222222222", "&mi_res_id=%2Fsubscriptions%2Fx"}) {
    auto response = get_token(selector);
    EXPECT_EQ(response.result_int(), 400) << response.body();
    EXPECT_NE(response.body().find("client_id"), std::string::npos) << response.body();
  }
  EXPECT_EQ(emulator_stats()["token_requests"], 0);
}

TEST_F(WorkloadIdentity, AnUnknownClientIdFailsFastWithEntrasCode) {
  write_token_file(service_account_token(1h));
  start_wi_broker(ca_.ca_cert);
  auto response = get_token("&client_id=not-federated");
  EXPECT_EQ(response.result_int(), 400) << response.body();
  EXPECT_NE(response.body().find("AADSTS700016"), std::string::npos) << response.body();
}

TEST_F(WorkloadIdentity, TheHttpsClientVerifiesTheChainAndAcceptsADnsNameInTheCertificate) {
  // "localhost": SNI is sent and the DNS subjectAltName is what matches.
  auto trusted = tb::http::make_tls_client_context(ca_.ca_cert);
  auto response = tb::http::request_https(trusted, "localhost", entra_port_,
                                          {.target = "/_emulator/stats"}, {.timeout = 5s});
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->result_int(), 200);

  const auto other = test_support::write_test_ca(dir_.path(), "other-");
  auto distrusted = tb::http::make_tls_client_context(other.ca_cert);
  auto refused = tb::http::request_https(distrusted, "127.0.0.1", entra_port_,
                                         {.target = "/_emulator/stats"}, {.timeout = 5s});
  ASSERT_FALSE(refused);
  EXPECT_TRUE(tb::http::is_tls_error(refused.error())) << refused.error().message();

  EXPECT_THROW(tb::http::make_tls_client_context(dir_.file("missing.pem")), std::runtime_error);
}

}  // namespace
}  // namespace integration
