// Per-caller policy on the socket against the emulator: --allow rules for this test's own uid and
// gid, --caller-rate on cold keys and forced refreshes, and the --audit-log line of each token
// handed out (which the leak check reads too).
#include "fixture.hpp"
#include "raw_client.hpp"
#include "tb/log.hpp"

#include <unistd.h>

#include <sstream>
#include <thread>

namespace integration {
namespace {

using namespace std::chrono_literals;

std::string error_code(const tb::http::Response& response) {
  const auto body = json::parse(response.body(), nullptr, false);
  return body.is_object() ? body.value("error", "") : "";
}

std::string description(const tb::http::Response& response) {
  const auto body = json::parse(response.body(), nullptr, false);
  return body.is_object() ? body.value("error_description", "") : "";
}

/// The broker's log lines with this message, parsed.
std::vector<json> lines_with(const std::string& log, const std::string& message) {
  std::vector<json> out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    const auto parsed = json::parse(line, nullptr, false);
    if (parsed.is_object() && parsed.value("msg", "") == message) out.push_back(parsed);
  }
  return out;
}

TEST_F(BrokerWithEmulator, AllowRulesLetTheCallerAskForItsResourcesOnlyAndNameTheRule) {
  start_emulator();
  const auto uid = std::to_string(::getuid());
  const auto gid = std::to_string(::getgid());
  start_broker({"--allow", "gid=" + gid + ";resource=*",  // the uid rule below decides first
                "--allow", "uid=" + uid + ";resource=" + kDatabase + ";identity=default"});
  EXPECT_EQ(get_token().result_int(), 200);
  const auto storage = get("/v1/token?resource=https%3A%2F%2Fstorage.azure.com%2F");
  EXPECT_EQ(storage.result_int(), 403) << storage.body();
  EXPECT_EQ(error_code(storage), "caller_not_allowed");
  EXPECT_NE(description(storage).find("rule 2"), std::string::npos) << storage.body();
  const auto other_identity = get_token("&client_id=" + std::string(kEmulatorClientId));
  EXPECT_EQ(other_identity.result_int(), 403) << other_identity.body();
  // Every token route follows the rules.
  EXPECT_EQ(post("/v1/token/refresh?resource=https%3A%2F%2Fstorage.azure.com%2F").result_int(),
            403);
  EXPECT_EQ(get("/v1/token/watch?resource=https%3A%2F%2Fstorage.azure.com%2F").result_int(), 403);
  EXPECT_EQ(get("/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
                "https%3A%2F%2Fstorage.azure.com%2F",
                {{"Metadata", "true"}})
                .result_int(),
            403);
  EXPECT_NE(broker_log().find("caller refused by --allow"), std::string::npos);
}

TEST_F(BrokerWithEmulator, ACallerNoRuleNamesIsRefused) {
  start_emulator();
  start_broker({"--allow", "uid=" + std::to_string(::getuid() + 1) + ";resource=*"});
  const auto refused = get_token();
  EXPECT_EQ(refused.result_int(), 403) << refused.body();
  EXPECT_NE(description(refused).find("no --allow rule"), std::string::npos) << refused.body();
  EXPECT_EQ(emulator_stats()["tokens_issued"], 0);  // refused before any upstream call
}

TEST_F(BrokerWithEmulator, CallerRateLimitsColdKeysButNeverHeldTokens) {
  start_emulator();
  start_broker({"--caller-rate", "2"});
  // Two cold keys: within the rate. The third within the same second: 429.
  EXPECT_EQ(get_token().result_int(), 200);
  EXPECT_EQ(get("/v1/token?resource=https%3A%2F%2Fstorage.azure.com%2F").result_int(), 200);
  const auto limited = get("/v1/token?resource=https%3A%2F%2Fvault.azure.net");
  EXPECT_EQ(limited.result_int(), 429) << limited.body();
  EXPECT_EQ(error_code(limited), "caller_rate_limited");
  EXPECT_EQ(limited[boost::beast::http::field::retry_after], "1");
  // Held tokens are served however fast they are asked for.
  for (int i = 0; i < 20; ++i) ASSERT_EQ(get_token().result_int(), 200);
  EXPECT_EQ(emulator_stats()["tokens_issued"], 2);
  // The bucket refills.
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(get("/v1/token?resource=https%3A%2F%2Fvault.azure.net").result_int(), 200);
}

TEST_F(BrokerWithEmulator, TheAuditLogNamesEveryTokenHandedOutByFingerprintAndCaller) {
  start_emulator();
  start_broker({"--audit-log", "true"});
  const auto first = get_token();
  ASSERT_EQ(first.result_int(), 200);
  ASSERT_EQ(get_token().result_int(), 200);
  ASSERT_EQ(refresh_token().result_int(), 200);
  const auto lines = lines_with(broker_log(), "token handed out");
  ASSERT_EQ(lines.size(), 3U) << broker_log();
  EXPECT_EQ(lines[0]["route"], "/v1/token");
  EXPECT_EQ(lines[0]["cached"], false);
  EXPECT_EQ(lines[1]["cached"], true);
  EXPECT_EQ(lines[2]["route"], "/v1/token/refresh");
  for (const auto& line : lines) {
    EXPECT_EQ(line["uid"], ::getuid());
    EXPECT_EQ(line["gid"], ::getgid());
    EXPECT_EQ(line["pid"], ::getpid());
    EXPECT_EQ(line["resource"], kDatabase);
    EXPECT_EQ(line["identity"], "default");
    EXPECT_EQ(line["token_sha256"].get<std::string>().size(), 12U);
  }
  const auto token = json::parse(first.body())["access_token"].get<std::string>();
  EXPECT_EQ(lines[0]["token_sha256"], tb::log::fingerprint(token));
}

TEST_F(BrokerWithEmulator, TheAuditLogNamesEveryTokenAWatchCarries) {
  start_emulator();
  start_broker({"--audit-log", "true", "--force-refresh-interval", "1"});
  ASSERT_EQ(get_token().result_int(), 200);
  Raw watcher(socket_path());
  ASSERT_TRUE(watcher.send("GET /v1/token/watch?resource=" + std::string(kDatabaseQuery) +
                           "&include_token=true HTTP/1.1\r\nHost: b\r\n\r\n"));
  std::string bytes;
  const auto events = [&] {
    std::size_t n = 0;
    for (auto at = bytes.find("event: token"); at != std::string::npos;
         at = bytes.find("event: token", at + 1)) {
      ++n;
    }
    return n;
  };
  watcher.read_until([&](const std::string&) { return events() >= 1; }, 5s, bytes);
  ASSERT_EQ(refresh_token().result_int(), 200);
  watcher.read_until([&](const std::string&) { return events() >= 2; }, 5s, bytes);
  ASSERT_EQ(events(), 2U) << bytes;
  for (auto at = bytes.find("\"access_token\":\""); at != std::string::npos;
       at = bytes.find("\"access_token\":\"", at + 1)) {
    const auto start = at + 16;
    remember_token(bytes.substr(start, bytes.find('"', start) - start));
  }
  std::vector<json> watched;
  ASSERT_TRUE(test_support::wait_until(
      [&] {
        watched.clear();
        for (const auto& line : lines_with(broker_log(), "token handed out")) {
          if (line["route"] == "/v1/token/watch") watched.push_back(line);
        }
        return watched.size() >= 2;
      },
      3s))
      << broker_log();
  EXPECT_EQ(watched[0]["cached"], true);   // the token held when the watch began
  EXPECT_EQ(watched[1]["cached"], false);  // the one the forced refresh got
  EXPECT_EQ(watched[1]["uid"], ::getuid());
}

TEST_F(BrokerWithEmulator, WithoutAuditLogNoTokenHandedOutLineIsWritten) {
  start_emulator();
  start_broker();
  ASSERT_EQ(get_token().result_int(), 200);
  EXPECT_TRUE(lines_with(broker_log(), "token handed out").empty());
}

}  // namespace
}  // namespace integration
