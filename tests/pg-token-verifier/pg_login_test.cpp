// PostgreSQL logins with tokens as passwords, end to end: imds-emulator issues the tokens, a
// private cluster checks them through pam_token_broker.so and pg-token-verifier.
#include "imds_emulator/jwt.hpp"
#include "jwt_peek.hpp"
#include "pg_cluster.hpp"
#include "process.hpp"
#include "tb/crypto.hpp"
#include "tb/http_client.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>

namespace {

using nlohmann::json;
using test_support::read_file;
using namespace std::chrono_literals;

constexpr const char* kRole = "todo_app";
constexpr const char* kAppClient = "aaaaaaaa-0000-0000-0000-000000000001";
constexpr const char* kAppOid = "bbbbbbbb-0000-0000-0000-000000000001";
constexpr const char* kOtherClient = "aaaaaaaa-0000-0000-0000-000000000002";
constexpr const char* kPgResource = "https%3A%2F%2Fossrdbms-aad.database.windows.net";
constexpr const char* kSqlResource = "https%3A%2F%2Fdatabase.windows.net%2F";

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

class PgTokenLogin : public ::testing::Test {
 protected:
  // One emulator and one cluster for the suite: starting a cluster takes about a second.
  static void SetUpTestSuite() {
    dir_ = new test_support::TempDir();
    const auto port_file = dir_->file("emulator.port");
    emulator_ =
        new test_support::Process(TB_EMULATOR_BIN,
                                  {"--listen", "127.0.0.1:0", "--port-file", port_file,
                                   "--public-key-out", dir_->file("emulator.pem"), "--identity",
                                   std::string("client_id=") + kAppClient + ",object_id=" + kAppOid,
                                   "--identity", std::string("client_id=") + kOtherClient},
                                  {.output = dir_->file("emulator.log")});
    ASSERT_TRUE(test_support::wait_until([&] { return std::filesystem::exists(port_file); }, 10s))
        << read_file(dir_->file("emulator.log"));
    emulator_port_ = read_file(port_file);
    while (!emulator_port_.empty() && emulator_port_.back() == '\n') emulator_port_.pop_back();

    // The verifier trusts whatever trusted.pem holds: the emulator's key, unless a test swaps in
    // its own to sign tokens the emulator would not issue.
    trust_key(read_file(dir_->file("emulator.pem")));
    write_text(dir_->file("verifier.json"), json{{"public_key", dir_->file("trusted.pem")},
                                                 {"log", dir_->file("verifier.log")},
                                                 {"roles", {{kRole, {kAppOid}}}}}
                                                .dump());
    cluster_ = new test_support::PgCluster(dir_->file("pg"),
                                           {.pam_roles = {kRole},
                                            .verifier_config = dir_->file("verifier.json"),
                                            .pam_module = TB_PAM_MODULE,
                                            .verifier = TB_PG_VERIFIER});
  }

  static void TearDownTestSuite() {
    delete cluster_;
    delete emulator_;
    delete dir_;
    cluster_ = nullptr;
    emulator_ = nullptr;
    dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr) << "suite set-up failed";
    trust_key(read_file(dir_->file("emulator.pem")));
  }

  // Nothing a test logged in with appears in the verifier's log or the server's.
  void TearDown() override {
    const auto verifier_log = read_file(dir_->file("verifier.log"));
    const auto server_log = read_file(cluster_->server_log());
    for (const auto& token : tokens_) {
      if (token.size() < 20) continue;  // "garbage" and the like could match anything
      EXPECT_EQ(verifier_log.find(token), std::string::npos) << "token in the verifier log";
      EXPECT_EQ(server_log.find(token), std::string::npos) << "token in the server log";
      const auto signature = test_support::jwt_signature(token);
      if (!signature.empty()) {
        EXPECT_EQ(verifier_log.find(signature), std::string::npos);
        EXPECT_EQ(server_log.find(signature), std::string::npos);
      }
    }
  }

  static void trust_key(const std::string& pem) { write_text(dir_->file("trusted.pem"), pem); }

  std::string fetch_token(const std::string& resource, const std::string& client_id = "") {
    std::string target =
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" + resource +
        (client_id.empty() ? "" : "&client_id=" + client_id);
    auto response = tb::http::request_tcp("127.0.0.1", emulator_port_,
                                          {.target = target, .headers = {{"Metadata", "true"}}});
    if (!response || response->result_int() != 200) {
      ADD_FAILURE() << "token request failed";
      return {};
    }
    auto token = json::parse(response->body()).at("access_token").get<std::string>();
    tokens_.push_back(token);
    return token;
  }

  // psql over TCP as kRole with `password`: {exit code, output}.
  std::pair<int, std::string> login(const std::string& password, const char* role = kRole) {
    tokens_.push_back(password);
    return test_support::run_and_capture(
        "/usr/bin/psql",
        {"-X", "-A", "-t", "-w", "-h", "127.0.0.1", "-p", std::to_string(cluster_->port()), "-U",
         role, "-d", "todo", "-c", "SELECT current_user"},
        {.env = {{"PGPASSWORD", password}}});
  }

  // The verifier's log lines for the token with this fingerprint.
  std::vector<json> log_lines_for(const std::string& token) {
    std::vector<json> lines;
    std::istringstream in(read_file(dir_->file("verifier.log")));
    for (std::string line; std::getline(in, line);) {
      auto parsed = json::parse(line, nullptr, false);
      if (parsed.is_object() && parsed["fingerprint"] == pg_fingerprint(token)) {
        lines.push_back(parsed);
      }
    }
    return lines;
  }

  // First 12 hex digits of SHA-256, as the verifier logs it (computed here independently).
  static std::string pg_fingerprint(const std::string& token);

  std::string last_reason(const std::string& token) {
    const auto lines = log_lines_for(token);
    return lines.empty() ? "<no log line>" : lines.back()["reason"].get<std::string>();
  }

  static test_support::TempDir* dir_;
  static test_support::Process* emulator_;
  static test_support::PgCluster* cluster_;
  static std::string emulator_port_;
  std::vector<std::string> tokens_;
};

test_support::TempDir* PgTokenLogin::dir_ = nullptr;
test_support::Process* PgTokenLogin::emulator_ = nullptr;
test_support::PgCluster* PgTokenLogin::cluster_ = nullptr;
std::string PgTokenLogin::emulator_port_;

std::string PgTokenLogin::pg_fingerprint(const std::string& token) {
  return tb::hex(tb::sha256(token), 6);
}

TEST_F(PgTokenLogin, EmulatorTokenLogsInAndEachConnectionIsLoggedWithItsToken) {
  for (int i = 0; i < 2; ++i) {
    const auto token = fetch_token(kPgResource);
    ASSERT_GT(token.size(), 511u) << "longer than pam_exec could pass";
    auto [code, out] = login(token);
    EXPECT_EQ(code, 0) << out;
    EXPECT_EQ(out, "todo_app\n");

    const auto lines = log_lines_for(token);
    ASSERT_EQ(lines.size(), 1u) << read_file(dir_->file("verifier.log"));
    const auto claims = test_support::jwt_claims(token);
    EXPECT_EQ(lines[0]["result"], "accepted");
    EXPECT_EQ(lines[0]["role"], "todo_app");
    EXPECT_EQ(lines[0]["reason"], "ok");
    EXPECT_EQ(lines[0]["iat"], claims["iat"]);
    EXPECT_EQ(lines[0]["exp"], claims["exp"]);
    EXPECT_EQ(lines[0]["oid"], kAppOid);
  }
}

TEST_F(PgTokenLogin, GarbageAndEmptyPasswordsAreRefused) {
  for (const std::string password : {"garbage", "eyJhbGciOiJub25lIn0.e30.", "a.b.c"}) {
    auto [code, out] = login(password);
    EXPECT_NE(code, 0) << password;
    EXPECT_NE(out.find("PAM authentication failed"), std::string::npos) << out;
    EXPECT_EQ(log_lines_for(password).size(), 1u) << password;
  }
  // No password at all: psql -w gives up without one.
  auto [code, out] = login("");
  EXPECT_NE(code, 0);
}

TEST_F(PgTokenLogin, TokenForAnotherAudienceIsRefused) {
  const auto token = fetch_token(kSqlResource);
  auto [code, out] = login(token);
  EXPECT_NE(code, 0) << out;
  EXPECT_EQ(last_reason(token), "wrong audience");
}

TEST_F(PgTokenLogin, TokenForAnIdentityTheRoleDoesNotAllowIsRefused) {
  const auto token = fetch_token(kPgResource, kOtherClient);
  auto [code, out] = login(token);
  EXPECT_NE(code, 0) << out;
  EXPECT_EQ(last_reason(token), "identity not allowed for role");
}

TEST_F(PgTokenLogin, OtherRolesHaveNoWayIn) {
  const auto token = fetch_token(kPgResource);
  auto [code, out] = login(token, "postgres");
  EXPECT_NE(code, 0);
  EXPECT_NE(out.find("no pg_hba.conf entry"), std::string::npos) << out;
}

TEST_F(PgTokenLogin, ExpiredTokenIsRefusedAndA2500CharacterTokenIsAccepted) {
  // Tokens the emulator would not issue, signed by a key the verifier is told to trust.
  const auto signer = imds_emulator::Signer::generate();
  trust_key(signer.public_key_pem());
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  json claims = {{"aud", "https://ossrdbms-aad.database.windows.net"},
                 {"iat", now - 7200},
                 {"nbf", now - 7200},
                 {"exp", now - 3600},
                 {"oid", kAppOid}};
  const auto expired = signer.sign(claims);
  auto [expired_code, expired_out] = login(expired);
  EXPECT_NE(expired_code, 0) << expired_out;
  EXPECT_EQ(last_reason(expired), "expired");

  claims["exp"] = now + 600;
  std::string long_token;
  for (std::size_t filler = 1000; long_token.size() < 2500; ++filler) {
    claims["groups"] = std::string(filler, 'g');
    long_token = signer.sign(claims);
  }
  ASSERT_LE(long_token.size(), 2502u);
  auto [long_code, long_out] = login(long_token);
  EXPECT_EQ(long_code, 0) << long_out;
  EXPECT_EQ(last_reason(long_token), "ok");

  // The emulator's own tokens no longer verify against the swapped key.
  const auto emulator_token = fetch_token(kPgResource);
  EXPECT_NE(login(emulator_token).first, 0);
  EXPECT_EQ(last_reason(emulator_token), "bad signature");
}

TEST_F(PgTokenLogin, TwentyLoginsTakeWellUnderASecondEach) {
  const auto token = fetch_token(kPgResource);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) ASSERT_EQ(login(token).first, 0);
  const auto per_login = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - start) /
                         20;
  std::cout << "PAM token login (psql start to exit): " << per_login.count() << " ms each\n";
  EXPECT_LT(per_login, 1000ms);
}

}  // namespace
