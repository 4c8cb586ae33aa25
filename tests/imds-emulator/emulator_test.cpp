// Pins: IMDS validation and identity selection, the token response and JWT claims, fault
// script parsing and step order, fault actions, counters.
#include "imds_emulator/emulator.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

namespace imds_emulator {
namespace {

namespace http = boost::beast::http;
using nlohmann::json;
using testing::make_request;

const std::string kToken =
    "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://database.windows.net/";
const Clock::time_point kNow = Clock::time_point(std::chrono::seconds(1'700'000'000));

const Identity kFirst{"aaaaaaaa-0000-0000-0000-000000000001",
                      "0b1ec700-0000-0000-0000-000000000001",
                      "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/"
                      "userAssignedIdentities/first"};
const Identity kSecond{"aaaaaaaa-0000-0000-0000-000000000002",
                       "0b1ec700-0000-0000-0000-000000000002",
                       "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/"
                       "userAssignedIdentities/second"};

Emulator make_emulator() {
  Config config;
  config.identities = {kFirst, kSecond};
  return Emulator(config, testing::shared_signer());
}

// Dispatches a token request and completes it at kNow; the reply of whatever came back.
Reply serve(Emulator& emulator, const Request& request) {
  auto routed = emulator.dispatch(request);
  if (auto* job = std::get_if<TokenJob>(&routed)) return emulator.complete(*job, kNow);
  return std::get<Reply>(routed);
}

Reply get(Emulator& emulator, const std::string& target, bool metadata = true) {
  return serve(emulator, make_request(http::verb::get, target, metadata));
}

Reply post(Emulator& emulator, const std::string& target, const std::string& body) {
  return serve(emulator, make_request(http::verb::post, target, true, body));
}

std::string description(const Reply& reply) {
  return json::parse(reply.body).value("error_description", "");
}

TEST(TokenRoute, IssuesImdsShapedResponseWithStringNumbers) {
  Emulator emulator = make_emulator();
  const Reply reply = get(emulator, kToken);
  ASSERT_EQ(reply.status, 200U);
  const json body = json::parse(reply.body);
  EXPECT_EQ(body["client_id"], kFirst.client_id);
  EXPECT_EQ(body["expires_in"], "3599");
  EXPECT_EQ(body["ext_expires_in"], "3599");
  EXPECT_EQ(body["expires_on"], "1700003599");
  EXPECT_EQ(body["not_before"], "1699999999");
  EXPECT_EQ(body["resource"], "https://database.windows.net/");
  EXPECT_EQ(body["token_type"], "Bearer");
  EXPECT_EQ(body.size(), 8U);
}

TEST(TokenRoute, JwtIsSignedAndCarriesTheClaims) {
  Emulator emulator = make_emulator();
  const std::string jwt = json::parse(get(emulator, kToken).body)["access_token"];
  EXPECT_EQ(jwt.find_first_of("+/="), std::string::npos);
  EXPECT_TRUE(testing::verify_rs256(testing::shared_signer().key(), jwt));
  const json claims = testing::jwt_part(jwt, 1);
  EXPECT_EQ(claims["aud"], "https://database.windows.net/");
  EXPECT_EQ(claims["iss"], "https://sts.windows.net/72f988bf-0000-0000-0000-000000000000/");
  EXPECT_EQ(claims["tid"], "72f988bf-0000-0000-0000-000000000000");
  EXPECT_EQ(claims["iat"], 1'699'999'999);
  EXPECT_EQ(claims["nbf"], 1'699'999'999);
  EXPECT_EQ(claims["exp"], 1'700'003'599);
  EXPECT_EQ(claims["oid"], kFirst.object_id);
  EXPECT_EQ(claims["sub"], kFirst.object_id);
  EXPECT_EQ(claims["appid"], kFirst.client_id);
  EXPECT_EQ(claims["xms_mirid"], kFirst.mi_res_id);
  EXPECT_FALSE(claims["uti"].get<std::string>().empty());
}

TEST(TokenRoute, TwoTokensInTheSameSecondDiffer) {
  Emulator emulator = make_emulator();
  const json first = json::parse(get(emulator, kToken).body);
  const json second = json::parse(get(emulator, kToken).body);
  EXPECT_EQ(first["expires_on"], second["expires_on"]);
  EXPECT_NE(first["access_token"], second["access_token"]);
}

TEST(TokenRoute, RejectsWhatImdsRejects) {
  Emulator emulator = make_emulator();
  const std::string base = "/metadata/identity/oauth2/token";
  struct Case {
    std::string target;
    bool metadata;
    std::string expected;
  };
  const std::vector<Case> cases{
      {kToken, false, "Required metadata header not specified"},
      {base + "?resource=R", true, "'api-version' is missing"},
      {base + "?api-version=2018-02-01", true, "'resource' is missing"},
      {base + "?api-version=2018-02-01&resource=", true, "'resource' is missing"},
      {kToken + "&client_id=" + kFirst.client_id + "&object_id=" + kFirst.object_id, true,
       "Only one of"},
      {kToken + "&client_id=" + kFirst.client_id + "&client_id=" + kFirst.client_id, true,
       "Only one of"},
      {kToken + "&client_id=nobody", true, "Identity not found"},
      {kToken + "&object_id=", true, "Identity not found"},
  };
  for (const auto& c : cases) {
    const Reply reply = get(emulator, c.target, c.metadata);
    EXPECT_EQ(reply.status, 400U) << c.target;
    EXPECT_EQ(json::parse(reply.body)["error"], "invalid_request") << c.target;
    EXPECT_NE(description(reply).find(c.expected), std::string::npos) << description(reply);
  }
  Request wrong_value = make_request(http::verb::get, kToken, false);
  wrong_value.set("Metadata", "false");
  EXPECT_EQ(serve(emulator, wrong_value).status, 400U);
  EXPECT_EQ(json::parse(get(emulator, kToken + "&client_id=nobody").body),
            (json{{"error", "invalid_request"}, {"error_description", "Identity not found"}}));
}

TEST(TokenRoute, SelectsTheIdentityByEachParameter) {
  Emulator emulator = make_emulator();
  auto client_of = [&](const std::string& query) {
    return json::parse(get(emulator, kToken + query).body)["client_id"].get<std::string>();
  };
  EXPECT_EQ(client_of(""), kFirst.client_id);  // the first identity is the default
  EXPECT_EQ(client_of("&client_id=" + kSecond.client_id), kSecond.client_id);
  EXPECT_EQ(client_of("&client_id=AAAAAAAA-0000-0000-0000-000000000002"), kSecond.client_id);
  EXPECT_EQ(client_of("&object_id=" + kSecond.object_id), kSecond.client_id);
  EXPECT_EQ(client_of("&mi_res_id=" + kSecond.mi_res_id), kSecond.client_id);
  EXPECT_EQ(client_of("&msi_res_id=" + kSecond.mi_res_id), kSecond.client_id);
}

TEST(TokenRoute, UsesTheDefaultIdentityWhenNoneIsConfigured) {
  Emulator emulator(Config{}, testing::shared_signer());
  const json claims = testing::jwt_part(json::parse(get(emulator, kToken).body)["access_token"], 1);
  EXPECT_EQ(claims["appid"], "11111111-1111-1111-1111-111111111111");
  EXPECT_EQ(claims["oid"], "22222222-2222-2222-2222-222222222222");
}

TEST(Routes, UnknownRouteIs404AndWrongMethodIs405) {
  Emulator emulator = make_emulator();
  EXPECT_EQ(get(emulator, "/nope").status, 404U);
  const Reply reply = post(emulator, "/_emulator/jwks", "");
  EXPECT_EQ(reply.status, 405U);
  EXPECT_EQ(reply.allow, "GET");
  EXPECT_EQ(get(emulator, "/_emulator/faults").status, 405U);
  EXPECT_EQ(post(emulator, kToken, "").status, 405U);
  EXPECT_EQ(json::parse(get(emulator, "/.well-known/jwks.json").body),
            testing::shared_signer().jwks());
}

std::string parse_error(const std::string& script) {
  std::string error;
  EXPECT_FALSE(parse_fault_script(script, error)) << script;
  return error;
}

TEST(FaultScript, ParseErrorsNameTheBadField) {
  EXPECT_EQ(parse_error("not json"), "body must be a JSON object");
  EXPECT_EQ(parse_error("[]"), "body must be a JSON object");
  EXPECT_EQ(parse_error(R"({"sequnce":[]})"),
            "sequnce is not a known field (expected sequence, then)");
  EXPECT_EQ(parse_error(R"({"sequence":{}})"), "sequence must be a JSON array");
  EXPECT_EQ(parse_error(R"({"sequence":[5]})"), "sequence[0] must be a JSON object");
  EXPECT_EQ(parse_error(R"({"sequence":[{},{"status":600}]})"),
            "sequence[1].status must be an integer between 100 and 599");
  EXPECT_EQ(parse_error(R"({"sequence":[{"status":"404"}]})"),
            "sequence[0].status must be an integer between 100 and 599");
  EXPECT_EQ(parse_error(R"({"sequence":[{"count":0}]})"),
            "sequence[0].count must be an integer between 1 and 1000000000");
  EXPECT_EQ(parse_error(R"({"sequence":[{"delay_ms":-1}]})"),
            "sequence[0].delay_ms must be an integer between 0 and 3600000");
  EXPECT_EQ(parse_error(R"({"sequence":[{"lifetime":0}]})"),
            "sequence[0].lifetime must be an integer between 1 and 31622400");
  EXPECT_EQ(parse_error(R"({"sequence":[{"retry_after":3}]})"),
            "sequence[0].retry_after must be a non-empty string (seconds or an HTTP date)");
  EXPECT_NE(parse_error(R"({"sequence":[{"action":"explode"}]})")
                .find("sequence[0].action must be one of"),
            std::string::npos);
  EXPECT_EQ(parse_error(R"({"sequence":[{"colour":1}]})"),
            "sequence[0].colour is not a known field");
  EXPECT_EQ(parse_error(R"({"then":{"count":2}})"), "then.count is not a known field");
  EXPECT_EQ(parse_error(R"({"then":{"status":99}})"),
            "then.status must be an integer between 100 and 599");
}

TEST(FaultScript, StepsApplyCountTimesInOrderThenTheThenStepForever) {
  std::string error;
  auto script = parse_fault_script(
      R"({"sequence":[{"status":404,"count":2},{"status":429,"retry_after":"3"},{"action":"drop"}],
          "then":{"status":503,"delay_ms":5}})",
      error);
  ASSERT_TRUE(script) << error;
  FaultPlan plan;
  plan.replace(*script);
  EXPECT_EQ(plan.next().status, 404U);
  EXPECT_EQ(plan.next().status, 404U);
  const FaultStep throttled = plan.next();
  EXPECT_EQ(throttled.status, 429U);
  EXPECT_EQ(throttled.retry_after, "3");
  EXPECT_EQ(plan.next().action, Action::drop);
  for (int i = 0; i < 3; ++i) {
    const FaultStep step = plan.next();
    EXPECT_EQ(step.status, 503U);
    EXPECT_EQ(step.delay, std::chrono::milliseconds(5));
  }
  plan.clear();
  EXPECT_EQ(plan.next().status, 200U);
  EXPECT_EQ(plan.next().action, Action::respond);
}

TEST(Faults, ApplyOnlyToValidRequestsAndReplaceTheScript) {
  Emulator emulator = make_emulator();
  ASSERT_EQ(post(emulator, "/_emulator/faults", R"({"sequence":[{"status":404,"count":2}]})").body,
            R"({"ok":true})");
  EXPECT_EQ(get(emulator, kToken, /*metadata=*/false).status, 400U);  // consumes no step
  const Reply fault = get(emulator, kToken);
  EXPECT_EQ(fault.status, 404U);
  EXPECT_EQ(json::parse(fault.body),
            (json{{"error", "emulated_fault"}, {"error_description", "emulated HTTP 404"}}));
  EXPECT_EQ(get(emulator, kToken).status, 404U);
  EXPECT_EQ(get(emulator, kToken).status, 200U);

  const Reply rejected = post(emulator, "/_emulator/faults", R"({"sequence":[{"count":"x"}]})");
  EXPECT_EQ(rejected.status, 400U);
  EXPECT_EQ(description(rejected), "sequence[0].count must be an integer between 1 and 1000000000");
  post(emulator, "/_emulator/faults", R"({"then":{"status":429,"retry_after":"7"}})");
  const Reply throttled = get(emulator, kToken);
  EXPECT_EQ(throttled.status, 429U);
  EXPECT_EQ(throttled.retry_after, "7");
}

TEST(Faults, ActionsShapeTheResponse) {
  Emulator emulator = make_emulator();
  post(emulator, "/_emulator/faults",
       R"({"sequence":[{"action":"drop"},{"action":"hang"},{"action":"malformed"},
           {"action":"missing_token"},{"action":"negative_expiry"},{"lifetime":60},
           {"action":"same_token"},{"action":"reset"}]})");
  EXPECT_EQ(get(emulator, kToken).action, Action::drop);
  EXPECT_EQ(get(emulator, kToken).action, Action::hang);
  const Reply malformed = get(emulator, kToken);
  EXPECT_EQ(malformed.status, 200U);
  EXPECT_TRUE(json::parse(malformed.body, nullptr, false).is_discarded());
  const json missing = json::parse(get(emulator, kToken).body);
  EXPECT_FALSE(missing.contains("access_token"));
  EXPECT_EQ(missing["token_type"], "Bearer");
  EXPECT_EQ(json::parse(get(emulator, kToken).body)["expires_in"], "-5");
  const Reply short_lived = get(emulator, kToken);
  EXPECT_EQ(json::parse(short_lived.body)["expires_in"], "59");
  EXPECT_EQ(get(emulator, kToken).body, short_lived.body);  // same_token
  const Reply reset = get(emulator, kToken);
  EXPECT_EQ(reset.action, Action::reset);
  EXPECT_TRUE(json::parse(reset.body, nullptr, false).is_discarded());
}

TEST(Faults, SameTokenWithoutAPreviousOneIssuesNormally) {
  Emulator emulator = make_emulator();
  post(emulator, "/_emulator/faults", R"({"then":{"action":"same_token"}})");
  const Reply first = get(emulator, kToken);
  EXPECT_TRUE(json::parse(first.body).contains("access_token"));
  EXPECT_EQ(get(emulator, kToken).body, first.body);
  EXPECT_NE(get(emulator, kToken + "&client_id=" + kSecond.client_id).body, first.body);
}

TEST(Stats, CountRequestsResponsesResourcesAndInFlight) {
  Emulator emulator = make_emulator();
  post(emulator, "/_emulator/faults", R"({"sequence":[{"status":500},{"action":"drop"}]})");
  get(emulator, kToken, false);
  get(emulator, kToken);
  get(emulator, kToken);
  get(emulator, kToken);
  get(emulator, "/metadata/identity/oauth2/token?api-version=1&resource=other");
  emulator.begin_in_flight();
  emulator.begin_in_flight();
  emulator.end_in_flight();
  EXPECT_EQ(emulator.stats(),
            (json{{"token_requests", 5},
                  {"tokens_issued", 2},
                  {"responses", {{"200", 2}, {"400", 1}, {"500", 1}}},
                  {"by_resource", {{"https://database.windows.net/", 3}, {"other", 1}}},
                  {"in_flight", 1},
                  {"max_in_flight", 2},
                  {"throttled", 0}}));
  EXPECT_EQ(post(emulator, "/_emulator/reset", "").status, 200U);
  EXPECT_EQ(json::parse(get(emulator, "/_emulator/stats").body),
            (json{{"token_requests", 0},
                  {"tokens_issued", 0},
                  {"responses", json::object()},
                  {"by_resource", json::object()},
                  {"in_flight", 1},
                  {"max_in_flight", 1},
                  {"throttled", 0}}));
  EXPECT_EQ(get(emulator, kToken).status, 200U);  // the script is gone too
}

Emulator make_throttled(double rate, unsigned concurrent) {
  Config config;
  config.rate_limit = rate;
  config.max_concurrent = concurrent;
  return Emulator(config, testing::shared_signer());
}

// The status of a token request dispatched at `at` (completed at once).
unsigned status_at(Emulator& emulator, SteadyTime at, std::string* retry_after = nullptr) {
  auto routed = emulator.dispatch(make_request(http::verb::get, kToken), at);
  if (std::holds_alternative<TokenJob>(routed)) return 200;
  const auto& reply = std::get<Reply>(routed);
  if (retry_after != nullptr) *retry_after = reply.retry_after.value_or("");
  return reply.status;
}

TEST(Throttle, BeyondTheRateIs429WithRetryAfterUntilTheBucketRefills) {
  Emulator emulator = make_throttled(20, 0);
  const SteadyTime t0{std::chrono::seconds(100)};
  for (int i = 0; i < 20; ++i) ASSERT_EQ(status_at(emulator, t0), 200U) << i;  // the burst
  std::string retry_after;
  EXPECT_EQ(status_at(emulator, t0, &retry_after), 429U);
  EXPECT_EQ(retry_after, "1");
  // 20 per second: one more every 50 ms.
  EXPECT_EQ(status_at(emulator, t0 + std::chrono::milliseconds(40)), 429U);
  EXPECT_EQ(status_at(emulator, t0 + std::chrono::milliseconds(60)), 200U);
  EXPECT_EQ(status_at(emulator, t0 + std::chrono::milliseconds(70)), 429U);
  // Refused requests take nothing from the bucket: a second later it is full again.
  int admitted = 0;
  for (int i = 0; i < 30; ++i) admitted += status_at(emulator, t0 + std::chrono::seconds(2)) == 200;
  EXPECT_EQ(admitted, 20);
  const auto stats = emulator.stats();
  EXPECT_EQ(stats["throttled"], 3 + 10);
  EXPECT_EQ(stats["responses"]["429"], 3 + 10);
  EXPECT_EQ(stats["token_requests"], 20 + 3 + 1 + 30);
  EXPECT_EQ(emulator.calls()["calls"].size(), 0U) << "only dispatched jobs are recorded";
}

TEST(Throttle, ASlowRateSaysHowManySecondsToWait) {
  Emulator emulator = make_throttled(1, 0);
  const SteadyTime t0{std::chrono::seconds(100)};
  EXPECT_EQ(status_at(emulator, t0), 200U);
  std::string retry_after;
  EXPECT_EQ(status_at(emulator, t0 + std::chrono::milliseconds(100), &retry_after), 429U);
  EXPECT_EQ(retry_after, "1");  // 0.9 s, rounded up
  EXPECT_EQ(status_at(emulator, t0 + std::chrono::milliseconds(1000)), 200U);
}

TEST(Throttle, BeyondTheConcurrencyIs429UntilOneFinishes) {
  Emulator emulator = make_throttled(0, 2);
  const SteadyTime t0{std::chrono::seconds(100)};
  emulator.begin_in_flight();
  EXPECT_EQ(status_at(emulator, t0), 200U);
  emulator.begin_in_flight();
  std::string retry_after;
  EXPECT_EQ(status_at(emulator, t0, &retry_after), 429U);
  EXPECT_EQ(retry_after, "1");
  emulator.end_in_flight();
  EXPECT_EQ(status_at(emulator, t0), 200U);
  EXPECT_EQ(emulator.stats()["throttled"], 1);
}

TEST(Throttle, OffByDefaultAndNotForOtherRoutes) {
  Emulator emulator = make_emulator();
  const SteadyTime t0{std::chrono::seconds(100)};
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(status_at(emulator, t0), 200U);
  Emulator limited = make_throttled(1, 1);
  EXPECT_EQ(status_at(limited, t0), 200U);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(
        std::get<Reply>(limited.dispatch(make_request(http::verb::get, "/_emulator/stats"), t0))
            .status,
        200U);
  }
}

TEST(Calls, ListArrivalTimeAndDrawnStepOfEachRecordedJobUntilReset) {
  Emulator emulator = make_emulator();
  post(emulator, "/_emulator/faults", R"({"sequence":[{"status":429,"retry_after":"3"}]})");
  for (int i = 0; i < 2; ++i) {
    auto routed = emulator.dispatch(make_request(http::verb::get, kToken));
    ASSERT_TRUE(std::holds_alternative<TokenJob>(routed));
    emulator.record_call(std::get<TokenJob>(routed), kNow + std::chrono::milliseconds(1500 * i));
  }
  const json calls = json::parse(get(emulator, "/_emulator/calls").body);
  EXPECT_EQ(calls, (json{{"calls",
                          {{{"at_ms", 1'700'000'000'000},
                            {"resource", "https://database.windows.net/"},
                            {"client_id", kFirst.client_id},
                            {"status", 429},
                            {"action", "respond"}},
                           {{"at_ms", 1'700'000'001'500},
                            {"resource", "https://database.windows.net/"},
                            {"client_id", kFirst.client_id},
                            {"status", 200},
                            {"action", "respond"}}}}}));
  EXPECT_EQ(post(emulator, "/_emulator/calls", "").status, 405U);
  post(emulator, "/_emulator/reset", "");
  EXPECT_EQ(json::parse(get(emulator, "/_emulator/calls").body), (json{{"calls", json::array()}}));
}

TEST(Calls, KeepOnlyTheNewestMaxCalls) {
  Emulator emulator = make_emulator();
  auto routed = emulator.dispatch(make_request(http::verb::get, kToken));
  const auto& job = std::get<TokenJob>(routed);
  for (std::size_t i = 0; i < Emulator::kMaxCalls + 5; ++i) {
    emulator.record_call(job, kNow + std::chrono::milliseconds(i));
  }
  const json calls = emulator.calls()["calls"];
  ASSERT_EQ(calls.size(), Emulator::kMaxCalls);
  EXPECT_EQ(calls.front()["at_ms"], 1'700'000'000'005);
}

}  // namespace
}  // namespace imds_emulator
