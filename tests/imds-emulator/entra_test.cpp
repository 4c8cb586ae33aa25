// Pins: the Entra-like token route (POST /{tenant}/oauth2/v2.0/token): form validation, the
// federated client assertion checks with Entra's AADSTS codes, the Entra response shape, faults,
// and the --entra-listen flags.
#include "imds_emulator/cli.hpp"
#include "imds_emulator/emulator.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

namespace imds_emulator {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::make_request;
namespace http = boost::beast::http;

constexpr const char* kTenant = "72f988bf-0000-0000-0000-000000000000";
constexpr const char* kSubject = "system:serviceaccount:todo:todo-app";
const Clock::time_point kNow = Clock::from_time_t(1'767'225'600);  // 2026-01-01T00:00:00Z

const Signer& sa_issuer() {
  static const Signer instance = Signer::generate();
  return instance;
}

FederatedClient federated_client() {
  std::string error;
  auto client = parse_federated_client(std::string("client_id=fed-1,sub=") + kSubject, error);
  EXPECT_TRUE(client) << error;
  return client.value_or(FederatedClient{});
}

std::string assertion(json overrides = json::object(), const Signer& signer = sa_issuer()) {
  const auto now = std::chrono::floor<std::chrono::seconds>(kNow).time_since_epoch().count();
  json claims = {{"aud", json::array({"api://AzureADTokenExchange"})},
                 {"iss", "https://oidc.test/issuer"},
                 {"sub", kSubject},
                 {"iat", now - 10},
                 {"nbf", now - 10},
                 {"exp", now + 3600}};
  claims.update(overrides);
  return signer.sign(claims);
}

std::string encode(std::string_view v) {
  return boost::urls::encode(v, boost::urls::unreserved_chars);
}

std::string form(const std::string& client_assertion, std::string client_id = "fed-1",
                 std::string scope = "https://database.windows.net/.default") {
  return "grant_type=client_credentials&client_id=" + encode(client_id) +
         "&scope=" + encode(scope) + "&client_assertion_type=" +
         encode("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") +
         "&client_assertion=" + encode(client_assertion);
}

Request post(std::string body, std::string tenant = kTenant) {
  return make_request(http::verb::post, "/" + tenant + "/oauth2/v2.0/token", false,
                      std::move(body));
}

json body_of(const Reply& reply) { return json::parse(reply.body); }

Emulator make_emulator() {
  Config config;
  config.federated_clients.push_back(federated_client());
  config.sa_issuer_key = tb::load_public_key_pem(sa_issuer().public_key_pem());
  EXPECT_TRUE(config.sa_issuer_key);
  return Emulator(config, testing::shared_signer());
}

// ---- validate_entra_request ----

TEST(EntraRequest, AValidFormYieldsTheClientAndTheResource) {
  const auto clients = std::vector{federated_client()};
  auto checked = validate_entra_request(post(form("a.b.c")), kTenant, clients);
  ASSERT_TRUE((std::holds_alternative<std::pair<TokenCall, EntraCall>>(checked)));
  const auto& [call, entra] = std::get<std::pair<TokenCall, EntraCall>>(checked);
  EXPECT_EQ(call.identity.client_id, "fed-1");
  EXPECT_EQ(call.resource, "https://database.windows.net");
  EXPECT_EQ(entra.assertion, "a.b.c");
  EXPECT_EQ(entra.subject, kSubject);
}

TEST(EntraRequest, BadFormsGetEntraShapedErrors) {
  const auto clients = std::vector{federated_client()};
  struct Case {
    Request request;
    unsigned status;
    const char* error;
    int code;
  };
  const std::vector<Case> cases = {
      {post(form("a.b.c"), "other-tenant"), 400, "invalid_request", 90002},
      {post("grant_type=client_credentials"), 400, "invalid_request", 900144},
      {post(form("a.b.c", "unknown")), 400, "unauthorized_client", 700016},
      {post(form("a.b.c", "fed-1", "https://database.windows.net/")), 400, "invalid_scope",
       1002012},
      {post(form("")), 401, "invalid_client", 7000216},
  };
  for (const auto& c : cases) {
    auto checked = validate_entra_request(c.request, kTenant, clients);
    ASSERT_TRUE(std::holds_alternative<Reply>(checked)) << c.request.body();
    const auto& reply = std::get<Reply>(checked);
    EXPECT_EQ(reply.status, c.status) << reply.body;
    const auto body = body_of(reply);
    EXPECT_EQ(body["error"], c.error) << reply.body;
    EXPECT_EQ(body["error_codes"], json::array({c.code})) << reply.body;
    EXPECT_TRUE(body["error_description"].get<std::string>().starts_with(
        "AADSTS" + std::to_string(c.code) + ":"))
        << reply.body;
  }
}

// ---- check_client_assertion ----

int refusal_code(const std::string& jwt) {
  auto refused =
      check_client_assertion({jwt, kSubject}, make_emulator().config().sa_issuer_key.get(), kNow);
  if (!refused) return 0;
  EXPECT_EQ(refused->status, 401u);
  EXPECT_EQ(body_of(*refused)["error"], "invalid_client");
  return body_of(*refused)["error_codes"][0].get<int>();
}

TEST(ClientAssertion, AGoodAssertionPasses) { EXPECT_EQ(refusal_code(assertion()), 0); }

TEST(ClientAssertion, AStringAudienceIsAcceptedToo) {
  EXPECT_EQ(refusal_code(assertion({{"aud", "api://AzureADTokenExchange"}})), 0);
}

TEST(ClientAssertion, AnExpiredAssertionIs700024) {
  const auto now = std::chrono::floor<std::chrono::seconds>(kNow).time_since_epoch().count();
  EXPECT_EQ(refusal_code(assertion({{"exp", now - 1}})), 700024);
  EXPECT_EQ(refusal_code(assertion({{"exp", nullptr}})), 700024);
  EXPECT_EQ(refusal_code(assertion({{"nbf", now + 3000}})), 700024);
}

TEST(ClientAssertion, AWrongSubjectIs70021) {
  EXPECT_EQ(refusal_code(assertion({{"sub", "system:serviceaccount:other:sa"}})), 70021);
}

TEST(ClientAssertion, AWrongAudienceIs700212) {
  EXPECT_EQ(refusal_code(assertion({{"aud", "https://kubernetes.default.svc"}})), 700212);
}

TEST(ClientAssertion, AnotherSignerOrGarbageIs700027) {
  EXPECT_EQ(refusal_code(assertion(json::object(), testing::shared_signer())), 700027);
  EXPECT_EQ(refusal_code("not-a-jwt"), 700027);
}

// ---- the route through the Emulator ----

TEST(EntraRoute, IssuesAnEntraShapedTokenForTheFederatedClient) {
  Emulator emulator = make_emulator();
  auto routed = emulator.dispatch(post(form(assertion())));
  ASSERT_TRUE(std::holds_alternative<TokenJob>(routed));
  const Reply reply = emulator.complete(std::get<TokenJob>(routed), kNow);
  ASSERT_EQ(reply.status, 200u) << reply.body;
  const auto body = body_of(reply);
  EXPECT_EQ(body["token_type"], "Bearer");
  EXPECT_EQ(body["expires_in"], 3599);
  EXPECT_EQ(body["ext_expires_in"], 3599);
  const auto claims = testing::jwt_part(body["access_token"].get<std::string>(), 1);
  EXPECT_EQ(claims["appid"], "fed-1");
  EXPECT_EQ(claims["aud"], "https://database.windows.net");
  EXPECT_EQ(reply.log.dump().find(body["access_token"].get<std::string>()), std::string::npos);
  EXPECT_EQ(emulator.stats()["tokens_issued"], 1);
}

TEST(EntraRoute, AnExpiredAssertionIsRefusedAt401) {
  Emulator emulator = make_emulator();
  const auto now = std::chrono::floor<std::chrono::seconds>(kNow).time_since_epoch().count();
  auto routed = emulator.dispatch(post(form(assertion({{"exp", now - 60}}))));
  ASSERT_TRUE(std::holds_alternative<TokenJob>(routed));
  const Reply reply = emulator.complete(std::get<TokenJob>(routed), kNow);
  EXPECT_EQ(reply.status, 401u);
  EXPECT_EQ(body_of(reply)["error_codes"][0], 700024);
}

TEST(EntraRoute, FaultsApplyAsForImds) {
  Emulator emulator = make_emulator();
  ASSERT_EQ(
      emulator
          .dispatch(make_request(http::verb::post, "/_emulator/faults", false,
                                 R"({"sequence":[{"status":503,"count":1,"retry_after":"2"}]})"))
          .index(),
      0u);
  auto first = emulator.dispatch(post(form(assertion())));
  const Reply faulted = emulator.complete(std::get<TokenJob>(first), kNow);
  EXPECT_EQ(faulted.status, 503u);
  EXPECT_EQ(faulted.retry_after, "2");
  EXPECT_EQ(body_of(faulted)["error"], "temporarily_unavailable");
  auto second = emulator.dispatch(post(form(assertion())));
  EXPECT_EQ(emulator.complete(std::get<TokenJob>(second), kNow).status, 200u);
}

TEST(EntraRoute, OnlyPostIsAllowed) {
  Emulator emulator = make_emulator();
  auto routed = emulator.dispatch(
      make_request(http::verb::get, std::string("/") + kTenant + "/oauth2/v2.0/token", false));
  ASSERT_TRUE(std::holds_alternative<Reply>(routed));
  EXPECT_EQ(std::get<Reply>(routed).status, 405u);
}

// ---- flags ----

TEST(EntraCommandLine, ParsesTheEntraFlags) {
  const CommandLine cli = parse_command_line(
      {"--entra-listen", "127.0.0.1:0", "--tls-cert", "/c.pem", "--tls-key", "/k.pem",
       "--sa-issuer-key", "/sa.pem", "--entra-port-file", "/p", "--federated-client",
       "client_id=a,sub=system:serviceaccount:ns:one",
       "--federated-client=client_id=b,sub=system:serviceaccount:ns:two,object_id=o"});
  ASSERT_TRUE(cli.options) << cli.error;
  const auto& options = *cli.options;
  EXPECT_TRUE(options.entra_enabled);
  EXPECT_EQ(options.entra_host, "127.0.0.1");
  EXPECT_EQ(options.entra_port, 0);
  EXPECT_EQ(options.tls_cert, "/c.pem");
  EXPECT_EQ(options.tls_key, "/k.pem");
  EXPECT_EQ(options.sa_issuer_key, "/sa.pem");
  EXPECT_EQ(options.entra_port_file, "/p");
  ASSERT_EQ(options.config.federated_clients.size(), 2u);
  EXPECT_EQ(options.config.federated_clients[0].subject, "system:serviceaccount:ns:one");
  EXPECT_EQ(options.config.federated_clients[1].identity.object_id, "o");
}

TEST(EntraCommandLine, IncompleteEntraSetupsNameWhatIsMissing) {
  auto error_of = [](std::vector<std::string_view> args) {
    const CommandLine cli = parse_command_line(args);
    EXPECT_FALSE(cli.options);
    return cli.error;
  };
  EXPECT_NE(error_of({"--entra-listen", "127.0.0.1:0"}).find("--tls-cert"), std::string::npos);
  EXPECT_NE(error_of({"--entra-listen", "127.0.0.1:0", "--tls-cert", "c", "--tls-key", "k"})
                .find("--sa-issuer-key"),
            std::string::npos);
  EXPECT_NE(error_of({"--entra-listen", "127.0.0.1:0", "--tls-cert", "c", "--tls-key", "k",
                      "--sa-issuer-key", "s"})
                .find("--federated-client"),
            std::string::npos);
  EXPECT_NE(error_of({"--tls-cert", "c"}).find("--entra-listen"), std::string::npos);
  EXPECT_NE(error_of({"--federated-client", "client_id=a"}).find("sub"), std::string::npos);
  EXPECT_NE(error_of({"--entra-listen", "10.0.0.1:443"}).find("loopback"), std::string::npos);
}

}  // namespace
}  // namespace imds_emulator
