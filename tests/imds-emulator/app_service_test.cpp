// Pins: the App Service route (GET /msi/token, api-version 2019-08-01): the identity header,
// parameters and identity selection, the five-field response and its faults.
#include "imds_emulator/emulator.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

namespace imds_emulator {
namespace {

namespace http = boost::beast::http;
using nlohmann::json;

const Clock::time_point kNow = Clock::time_point(std::chrono::seconds(1'700'000'000));
const std::string kSecret = "s3cret-header-value";
const std::string kRoute = "/msi/token?api-version=2019-08-01&resource=https://vault.azure.net";

const Identity kFirst{"aaaaaaaa-0000-0000-0000-000000000001",
                      "0b1ec700-0000-0000-0000-000000000001",
                      "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/"
                      "userAssignedIdentities/first"};
const Identity kSecond{"aaaaaaaa-0000-0000-0000-000000000002",
                       "0b1ec700-0000-0000-0000-000000000002",
                       "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/"
                       "userAssignedIdentities/second"};

Emulator make_emulator(std::string identity_header = kSecret) {
  Config config;
  config.identities = {kFirst, kSecond};
  config.identity_header = std::move(identity_header);
  return Emulator(config, testing::shared_signer());
}

Reply serve(Emulator& emulator, const Request& request) {
  auto routed = emulator.dispatch(request);
  if (auto* job = std::get_if<TokenJob>(&routed)) return emulator.complete(*job, kNow);
  return std::get<Reply>(routed);
}

Reply get(Emulator& emulator, const std::string& target,
          const std::optional<std::string>& header = kSecret) {
  Request request{http::verb::get, target, 11};
  if (header) request.set("X-IDENTITY-HEADER", *header);
  return serve(emulator, request);
}

std::string message(const Reply& reply) { return json::parse(reply.body).value("message", ""); }

TEST(AppServiceRoute, AnswersInTheFiveFieldShapeWithExpiresOnAsAString) {
  Emulator emulator = make_emulator();
  const Reply reply = get(emulator, kRoute);
  ASSERT_EQ(reply.status, 200U) << reply.body;
  const json body = json::parse(reply.body);
  EXPECT_EQ(body["expires_on"], "1700003599");
  EXPECT_EQ(body["resource"], "https://vault.azure.net");
  EXPECT_EQ(body["token_type"], "Bearer");
  EXPECT_EQ(body["client_id"], kFirst.client_id);
  EXPECT_EQ(body.size(), 5U);
  const std::string jwt = body["access_token"];
  EXPECT_TRUE(testing::verify_rs256(testing::shared_signer().key(), jwt));
  EXPECT_EQ(testing::jwt_part(jwt, 1)["aud"], "https://vault.azure.net");
  EXPECT_EQ(emulator.stats()["tokens_issued"], 1);
}

TEST(AppServiceRoute, MissingHeaderIs400AndWrongHeaderIs401) {
  Emulator emulator = make_emulator();
  const Reply missing = get(emulator, kRoute, std::nullopt);
  EXPECT_EQ(missing.status, 400U);
  EXPECT_NE(message(missing).find("X-IDENTITY-HEADER"), std::string::npos);
  const Reply wrong = get(emulator, kRoute, "not-the-secret");
  EXPECT_EQ(wrong.status, 401U);
  EXPECT_EQ(json::parse(wrong.body)["statusCode"], 401);
  EXPECT_EQ(wrong.body.find("not-the-secret"), std::string::npos);
  EXPECT_EQ(emulator.stats()["tokens_issued"], 0);
}

TEST(AppServiceRoute, IsNotServedWithoutAConfiguredHeader) {
  Emulator emulator = make_emulator("");
  EXPECT_EQ(get(emulator, kRoute).status, 404U);
}

TEST(AppServiceRoute, SpeaksOnly20190801AndNeedsAResource) {
  Emulator emulator = make_emulator();
  const Reply old = get(emulator, "/msi/token?api-version=2017-09-01&resource=x");
  EXPECT_EQ(old.status, 400U);
  EXPECT_NE(message(old).find("2019-08-01"), std::string::npos);
  EXPECT_EQ(get(emulator, "/msi/token?api-version=2019-08-01").status, 400U);
}

TEST(AppServiceRoute, SelectsTheIdentityByClientIdPrincipalIdOrResourceId) {
  Emulator emulator = make_emulator();
  for (const std::string& param :
       {"client_id=" + kSecond.client_id, "principal_id=" + kSecond.object_id,
        "mi_res_id=" + kSecond.mi_res_id}) {
    const Reply reply = get(emulator, kRoute + "&" + param);
    ASSERT_EQ(reply.status, 200U) << param << ": " << reply.body;
    EXPECT_EQ(json::parse(reply.body)["client_id"], kSecond.client_id) << param;
  }
  // MSAL (so @azure/identity) sends object_id for a user-assigned object id; App Service takes it.
  EXPECT_EQ(
      json::parse(get(emulator, kRoute + "&object_id=" + kSecond.object_id).body)["client_id"],
      kSecond.client_id);
  EXPECT_EQ(get(emulator, kRoute + "&client_id=nobody").status, 400U);
  EXPECT_EQ(
      get(emulator, kRoute + "&client_id=" + kFirst.client_id + "&principal_id=" + kFirst.object_id)
          .status,
      400U);
}

TEST(AppServiceRoute, FaultsApplyInAppServicesErrorShape) {
  Emulator emulator = make_emulator();
  Request faults{http::verb::post, "/_emulator/faults", 11};
  faults.body() = R"({"sequence":[{"status":500},{"status":429,"retry_after":"2"},
                     {"action":"negative_expiry"}]})";
  faults.prepare_payload();
  ASSERT_EQ(serve(emulator, faults).status, 200U);
  const Reply failed = get(emulator, kRoute);
  EXPECT_EQ(failed.status, 500U);
  EXPECT_EQ(json::parse(failed.body)["statusCode"], 500);
  const Reply throttled = get(emulator, kRoute);
  EXPECT_EQ(throttled.status, 429U);
  EXPECT_EQ(throttled.retry_after, "2");
  const Reply expired = get(emulator, kRoute);
  EXPECT_EQ(json::parse(expired.body)["expires_on"], "1699999995");
}

}  // namespace
}  // namespace imds_emulator
