// Forced refresh (POST /v1/token/refresh) against the emulator: a new token from one upstream
// call, the rate limit, sharing, what token_client sees, and the bad requests.
#include "fixture.hpp"

#include "tb/crypto.hpp"
#include "token_client/token_client.hpp"

#include <future>
#include <set>
#include <thread>

namespace integration {
namespace {

using namespace std::chrono_literals;

std::string sha256_hex(const std::string& token) { return tb::hex(tb::sha256(token)); }

std::string access_token(const tb::http::Response& response) {
  const auto body = json::parse(response.body(), nullptr, false);
  return body.is_object() ? body.value("access_token", "") : "";
}

std::string error_code(const tb::http::Response& response) {
  const auto body = json::parse(response.body(), nullptr, false);
  return body.is_object() ? body.value("error", "") : "";
}

TEST_F(BrokerWithEmulator, ForcedRefreshGetsANewTokenWithOneUpstreamCallThenIsRateLimited) {
  start_emulator();
  start_broker({"--force-refresh-interval", "30"});
  const auto first = get_token();
  ASSERT_EQ(first.result_int(), 200) << first.body();
  const auto old_token = access_token(first);
  ASSERT_EQ(emulator_stats()["tokens_issued"], 1);

  const auto refreshed = refresh_token("&token_sha256=" + sha256_hex(old_token));
  ASSERT_EQ(refreshed.result_int(), 200) << refreshed.body() << "\n" << broker_log();
  const auto body = json::parse(refreshed.body());
  EXPECT_EQ(body["new"], true);
  EXPECT_GT(body["expires_in"].get<int>(), 3000);
  EXPECT_EQ(body["resource"], kDatabase);
  const auto new_token = access_token(refreshed);
  EXPECT_NE(new_token, old_token);
  EXPECT_EQ(emulator_stats()["tokens_issued"], 2);

  // Everyone is served the new token from now on, from the cache.
  EXPECT_EQ(access_token(get_token()), new_token);
  // A second caller still holding the old token gets the new one without an upstream call.
  const auto late = refresh_token("&token_sha256=" + sha256_hex(old_token));
  ASSERT_EQ(late.result_int(), 200) << late.body();
  EXPECT_EQ(access_token(late), new_token);
  EXPECT_EQ(json::parse(late.body())["new"], true);
  // Rejecting the new token too within the interval: 429 with Retry-After, no upstream call.
  for (const std::string& suffix : {"&token_sha256=" + sha256_hex(new_token), std::string()}) {
    const auto limited = refresh_token(suffix);
    EXPECT_EQ(limited.result_int(), 429) << limited.body();
    EXPECT_EQ(error_code(limited), "refresh_rate_limited");
    const auto retry_after =
        std::stoi(std::string(limited[boost::beast::http::field::retry_after]));
    EXPECT_GE(retry_after, 25);
    EXPECT_LE(retry_after, 30);
  }
  EXPECT_EQ(emulator_stats()["tokens_issued"], 2);
  EXPECT_EQ(access_token(get_token()), new_token);

  // The log names tokens by fingerprint only (the leak check reads it too) and says it was forced.
  const auto log = broker_log();
  EXPECT_NE(log.find("\"forced\":true"), std::string::npos) << log;
}

TEST_F(BrokerWithEmulator, ConcurrentForcedRefreshesShareOneUpstreamCall) {
  start_emulator();
  start_broker();
  const auto old_token = access_token(get_token());
  ASSERT_FALSE(old_token.empty());
  // The upstream is slow, so that every caller arrives while the forced call is in flight.
  set_faults({{"sequence", {{{"status", 200}, {"delay_ms", 500}}}}});
  const auto target = std::string("/v1/token/refresh?resource=") + kDatabaseQuery +
                      "&token_sha256=" + sha256_hex(old_token);
  std::vector<std::future<tb::http::Response>> callers;
  for (int i = 0; i < 20; ++i) {
    callers.push_back(std::async(std::launch::async, [&] { return post(target); }));
  }
  std::set<std::string> tokens;
  for (auto& caller : callers) {
    const auto response = caller.get();
    EXPECT_EQ(response.result_int(), 200) << response.body();
    tokens.insert(access_token(response));
  }
  EXPECT_EQ(tokens.size(), 1u);
  EXPECT_NE(*tokens.begin(), old_token);
  EXPECT_EQ(emulator_stats()["tokens_issued"], 2);
}

TEST_F(BrokerWithEmulator, AnUpstreamHandingBackTheSameTokenIsSaidToBeNotNew) {
  // IMDS keeps its own cache and has no parameter to skip it.
  start_emulator();
  start_broker();
  const auto old_token = access_token(get_token());
  ASSERT_FALSE(old_token.empty());
  set_faults({{"sequence", {{{"action", "same_token"}}}}});
  const auto refreshed = refresh_token("&token_sha256=" + sha256_hex(old_token));
  ASSERT_EQ(refreshed.result_int(), 200) << refreshed.body();
  EXPECT_EQ(json::parse(refreshed.body())["new"], false);
  EXPECT_EQ(access_token(refreshed), old_token);
  EXPECT_EQ(emulator_stats()["token_requests"], 2);
}

TEST_F(BrokerWithEmulator, AFailedForcedRefreshLeavesTheHeldTokenServed) {
  start_emulator();
  start_broker({"--retry-base-ms", "100", "--retry-max-ms", "200"});
  const auto old_token = access_token(get_token());
  ASSERT_FALSE(old_token.empty());
  set_faults({{"sequence", json::array()}, {"then", {{"status", 500}}}});
  const auto failed = refresh_token("&token_sha256=" + sha256_hex(old_token) + "&timeout=1");
  EXPECT_EQ(failed.result_int(), 503) << failed.body();
  EXPECT_EQ(error_code(failed), "token_unavailable");
  // The held token is not thrown away: it may still be good elsewhere.
  const auto served = get_token();
  EXPECT_EQ(served.result_int(), 200) << served.body();
  EXPECT_EQ(access_token(served), old_token);
}

TEST_F(BrokerWithEmulator, ForcedRefreshRequestsAreCheckedLikeTokenRequests) {
  start_emulator();
  start_broker();
  const auto route = std::string("/v1/token/refresh");
  for (const std::string& target :
       {route + "?resource=" + kDatabaseQuery + "&token_sha256=abc",
        route + "?resource=" + kDatabaseQuery + "&token_sha256=" + std::string(64, 'A'),
        route + "?resource=" + kDatabaseQuery + "&token_sha256=" + std::string(64, 'a') +
            "&token_sha256=" + std::string(64, 'a'),
        route + "?resource=" + kDatabaseQuery + "&tokn_sha256=" + std::string(64, 'a'),
        route + "?token_sha256=" + std::string(64, 'a')}) {
    const auto response = post(target);
    EXPECT_EQ(response.result_int(), 400) << target << ": " << response.body();
    EXPECT_EQ(error_code(response), "invalid_request") << target;
  }
  // GET is not a refresh; token_sha256 is no parameter of /v1/token.
  const auto get_refresh = get(route + "?resource=" + kDatabaseQuery);
  EXPECT_EQ(get_refresh.result_int(), 405);
  EXPECT_EQ(std::string(get_refresh[boost::beast::http::field::allow]), "POST");
  EXPECT_EQ(get_token("&token_sha256=" + std::string(64, 'a')).result_int(), 400);
  EXPECT_EQ(emulator_stats()["token_requests"], 0);
}

TEST_F(BrokerWithEmulator, TokenClientRefreshSendsTheHashAndSaysWhetherTheTokenIsNew) {
  start_emulator();
  start_broker();
  token_client::Options options;
  options.socket_path = socket_path();
  const token_client::Client client(options);
  const token_client::Request request{.resource = kDatabase};
  auto first = client.get_token(request);
  ASSERT_TRUE(first) << first.error().message;
  remember_token(first->access_token);

  auto refreshed = client.refresh(request, first->access_token);
  ASSERT_TRUE(refreshed) << refreshed.error().message;
  remember_token(refreshed->token.access_token);
  EXPECT_TRUE(refreshed->is_new);
  EXPECT_NE(refreshed->token.access_token, first->access_token);
  EXPECT_GT(refreshed->token.expires_on, std::chrono::system_clock::now() + 3000s);

  auto again = client.refresh(request, refreshed->token.access_token);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, token_client::Errc::rate_limited);
  EXPECT_EQ(again.error().http_status, 429);
  EXPECT_GT(again.error().retry_after.count(), 0);
  EXPECT_TRUE(token_client::is_transient(again.error().code));
  EXPECT_EQ(emulator_stats()["tokens_issued"], 2);
}

}  // namespace
}  // namespace integration
