// token-broker and imds-emulator as real processes: the behaviours a pod depends on.
#include "fixture.hpp"
#include "jwt_peek.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>

namespace integration {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using test_support::wait_until;

struct Tally {
  int ok = 0;
  std::vector<std::string> failures;
};

/// One client: connects (again, while the listen backlog is full) and asks for a token.
/// A coroutine function, not a capturing lambda: the frame must own its arguments.
asio::awaitable<void> ask_once(std::string socket, std::string target, Tally& tally) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    // Named arguments, not braced temporaries: GCC 12 mishandles temporaries that live across
    // a co_await (they are destroyed twice).
    tb::http::Request request{.target = target};
    const tb::http::Limits limits{.timeout = 30s};
    auto response = co_await tb::http::async_request_unix(socket, std::move(request), limits);
    if (!response && response.error() == asio::error::try_again) {
      asio::steady_timer pause(co_await asio::this_coro::executor, 10ms);
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (response && response->result_int() == 200) {
      ++tally.ok;
    } else {
      tally.failures.push_back(response ? response->body() : response.error().message());
    }
    co_return;
  }
  tally.failures.emplace_back("could not connect");
}

TEST_F(BrokerWithEmulator, ServesASignedTokenWhoseAudienceIsTheResource) {
  start_emulator();
  start_broker();
  auto response = get_token();
  ASSERT_EQ(response.result_int(), 200) << response.body();
  EXPECT_EQ(response[boost::beast::http::field::cache_control], "no-store");
  auto body = json::parse(response.body());
  EXPECT_EQ(body["token_type"], "Bearer");
  EXPECT_EQ(body["resource"], kDatabase);
  EXPECT_TRUE(body["expires_on"].is_number_integer());
  EXPECT_GT(body["expires_in"].get<int>(), 3000);
  auto claims = test_support::jwt_claims(body["access_token"]);
  ASSERT_TRUE(claims.is_object());
  EXPECT_EQ(claims["aud"], kDatabase);
  EXPECT_EQ(claims["exp"], body["expires_on"]);
}

TEST_F(BrokerWithEmulator, ImdsRouteAnswersInImdsShapeAndNeedsTheMetadataHeader) {
  start_emulator();
  start_broker();
  const std::string target = std::string(
                                 "/metadata/identity/oauth2/token?api-version=2018-02-01"
                                 "&resource=") +
                             kDatabaseQuery;
  auto refused = get(target);
  EXPECT_EQ(refused.result_int(), 400);
  auto response = get(target, {{"Metadata", "true"}});
  ASSERT_EQ(response.result_int(), 200) << response.body();
  auto body = json::parse(response.body());
  for (const char* field : {"expires_in", "expires_on", "ext_expires_in"}) {
    EXPECT_TRUE(body[field].is_string()) << field << " must be a string as IMDS sends it";
  }
  EXPECT_EQ(body["resource"], kDatabase);
  EXPECT_EQ(body["token_type"], "Bearer");
}

TEST_F(BrokerWithEmulator, SecondRequestIsAnsweredFromTheCache) {
  start_emulator();
  start_broker();
  auto first = get_token();
  auto second = get_token();
  ASSERT_EQ(first.result_int(), 200);
  ASSERT_EQ(second.result_int(), 200);
  EXPECT_EQ(json::parse(first.body())["access_token"], json::parse(second.body())["access_token"]);
  EXPECT_EQ(emulator_stats()["token_requests"], 1);
}

TEST_F(BrokerWithEmulator, StartupRaceOf404sEndsReadyAndWaitingRequestsSucceed) {
  start_emulator();
  set_faults({{"sequence", {{{"status", 404}, {"count", 5}}}}});
  start_broker({"--prefetch", kDatabase});
  // A request that arrives during the race waits instead of failing.
  auto response = get_token("&timeout=20");
  EXPECT_EQ(response.result_int(), 200) << response.body();
  EXPECT_TRUE(wait_until(
      [&] {
        auto ready = tb::http::request_unix(socket_path(), {.target = "/readyz"});
        return ready && ready->result_int() == 200;
      },
      10s));
  auto stats = emulator_stats();
  EXPECT_EQ(stats["responses"]["404"], 5);
  EXPECT_EQ(stats["tokens_issued"], 1);
}

TEST_F(BrokerWithEmulator, ReadyzIs503UntilThePrefetchedTokenIsHeld) {
  start_emulator();
  set_faults({{"sequence", json::array()}, {"then", {{"status", 404}}}});
  start_broker({"--prefetch", kDatabase});
  auto not_ready = get("/readyz");
  EXPECT_EQ(not_ready.result_int(), 503);
  auto body = json::parse(not_ready.body());
  EXPECT_EQ(body["missing"], json::array({kDatabase}));
  set_faults({{"sequence", json::array()}});
  EXPECT_TRUE(wait_until([&] { return get("/readyz").result_int() == 200; }, 10s));
}

TEST_F(BrokerWithEmulator, RetryAfterIsHonouredOn429) {
  start_emulator();
  set_faults({{"sequence", {{{"status", 429}, {"retry_after", "2"}}}}});
  start_broker();
  const auto start = std::chrono::steady_clock::now();
  auto response = get_token("&timeout=20");
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(response.result_int(), 200) << response.body();
  // The backoff here is at most 100 ms: only Retry-After explains a 2 s wait.
  EXPECT_GE(waited, 1900ms);
  EXPECT_EQ(emulator_stats()["token_requests"], 2);
}

TEST_F(BrokerWithEmulator, EveryUpstreamAttemptCarriesANewClientRequestIdThatTheLogNames) {
  start_emulator();
  set_faults({{"sequence", {{{"status", 503}}}}});
  start_broker({"--retry-base-ms", "50", "--retry-max-ms", "100"});
  ASSERT_EQ(get_token().result_int(), 200);
  const auto calls = emulator_calls();
  ASSERT_EQ(calls.size(), 2u) << calls.dump();
  const std::regex uuid("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> ids;
  for (const auto& call : calls) {
    const auto id = call.value("client_request_id", "");
    EXPECT_TRUE(std::regex_match(id, uuid)) << call.dump();
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 2u);
  // The failed attempt and the one that got the token are logged with their ids.
  std::map<std::string, std::string> logged;  // request_id -> message
  std::istringstream lines(broker_log());
  for (std::string line; std::getline(lines, line);) {
    const auto parsed = json::parse(line, nullptr, false);
    if (parsed.is_object() && parsed.contains("request_id")) {
      logged[parsed["request_id"].get<std::string>()] = parsed.value("msg", "");
    }
  }
  for (const auto& id : ids) EXPECT_TRUE(logged.contains(id)) << id << "\n" << broker_log();
}

TEST_F(BrokerWithEmulator, UpstreamBadRequestFailsFastAndIsRemembered) {
  start_emulator();
  start_broker({"--error-ttl", "30"});
  // The emulator answers 400 for an identity it does not know, as IMDS does.
  auto response = get_token("&client_id=not-a-known-identity");
  EXPECT_EQ(response.result_int(), 400) << response.body();
  auto body = json::parse(response.body());
  EXPECT_NE(body["error_description"].get<std::string>().find("Identity not found"),
            std::string::npos);
  auto again = get_token("&client_id=not-a-known-identity");
  EXPECT_EQ(again.result_int(), 400);
  EXPECT_EQ(emulator_stats()["token_requests"], 1) << "the 400 must be answered from memory";
}

TEST_F(BrokerWithEmulator, ThousandConcurrentColdRequestsMakeOneUpstreamCall) {
  start_emulator();
  set_faults({{"sequence", {{{"status", 200}, {"delay_ms", 300}}}}});
  start_broker();
  asio::io_context io;
  Tally tally;
  const std::string target = std::string("/v1/token?resource=") + kDatabaseQuery;
  for (int i = 0; i < 1000; ++i) {
    asio::co_spawn(io, ask_once(socket_path(), target, tally), asio::detached);
  }
  io.run();
  EXPECT_EQ(tally.ok, 1000) << (tally.failures.empty() ? "" : tally.failures.front());
  auto stats = emulator_stats();
  EXPECT_EQ(stats["token_requests"], 1);
  EXPECT_EQ(stats["tokens_issued"], 1);
}

TEST_F(BrokerWithEmulator, HeldTokenIsServedWhileUpstreamIsDownThen503WithRetryAfter) {
  // 63 s tokens and a 60 s minimum validity: the token is servable for about 3 s.
  start_emulator({"--lifetime", "63"});
  start_broker({"--min-validity", "60"});
  auto first = get_token();
  ASSERT_EQ(first.result_int(), 200) << first.body();
  emulator_->stop();
  auto cached = get_token();
  EXPECT_EQ(cached.result_int(), 200) << "the held token must still be served";
  tb::http::Response refused;
  ASSERT_TRUE(wait_until(
      [&] {
        refused = get_token("&timeout=1");
        return refused.result_int() == 503;
      },
      15s));
  EXPECT_FALSE(refused[boost::beast::http::field::retry_after].empty());
  auto body = json::parse(refused.body());
  EXPECT_EQ(body["error"], "token_unavailable");
  EXPECT_NE(body["error_description"].get<std::string>().find("cannot reach"), std::string::npos)
      << body["error_description"];
}

TEST_F(BrokerWithEmulator, CallerUnderAnotherUidIsRefusedWith403AndLogged) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a caller under another uid";
  start_emulator();
  // File permissions would stop the caller before the broker sees it; open them so that the
  // peer-credential check is what refuses it.
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  start_broker({"--socket-mode", "0666"});
  Process::Options nobody{{{"TOKEN_BROKER_SOCKET", socket_path()}}, "", 65534};
  auto [code, output] = test_support::run_and_capture(TB_TOKENCTL_BIN, {"get", kDatabase}, nobody);
  EXPECT_EQ(code, 1) << output;
  EXPECT_NE(output.find("403"), std::string::npos) << output;
  EXPECT_NE(output.find("uid 65534"), std::string::npos) << output;
  EXPECT_NE(broker_log().find(R"("msg":"caller refused")"), std::string::npos) << broker_log();
  EXPECT_EQ(get_token().result_int(), 200) << "the broker's own uid is still served";
}

TEST_F(BrokerWithEmulator, AllowUidsLetsAnotherUidIn) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a caller under another uid";
  start_emulator();
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  start_broker({"--socket-mode", "0666", "--allow-uids", "65534"});
  Process::Options nobody{{{"TOKEN_BROKER_SOCKET", socket_path()}}, "", 65534};
  auto [code, output] = test_support::run_and_capture(TB_TOKENCTL_BIN, {"get", kDatabase}, nobody);
  EXPECT_EQ(code, 0) << output;
}

TEST_F(BrokerWithEmulator, SigtermRemovesTheSocketAndExitsZero) {
  start_emulator();
  start_broker();
  ASSERT_EQ(get_token().result_int(), 200);
  ASSERT_TRUE(std::filesystem::exists(socket_path()));
  auto code = broker_->stop(10s);
  EXPECT_EQ(code, 0);
  EXPECT_FALSE(std::filesystem::exists(socket_path()));
}

TEST_F(BrokerWithEmulator, SocketFileGetsTheConfiguredMode) {
  start_emulator();
  start_broker({"--socket-mode", "0600"});
  auto perms = std::filesystem::status(socket_path()).permissions();
  EXPECT_EQ(perms & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TEST_F(BrokerWithEmulator, RefusesToStartWhenAnotherBrokerServesTheSocket) {
  start_emulator();
  start_broker();
  auto [code, output] = test_support::run_and_capture(
      TB_BROKER_BIN, {"--socket", socket_path(), "--admin-listen", "off", "--imds-endpoint",
                      "http://127.0.0.1:" + emulator_port_});
  EXPECT_EQ(code, 2);
  EXPECT_NE(output.find("in use"), std::string::npos) << output;
  EXPECT_EQ(get_token().result_int(), 200) << "the first broker must keep serving";
}

TEST_F(BrokerWithEmulator, ReplacesAStaleSocketFile) {
  start_emulator();
  {
    // A socket file left behind by a broker that crashed.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", socket_path().c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ::close(fd);
  }
  ASSERT_TRUE(std::filesystem::exists(socket_path()));
  start_broker();
  EXPECT_EQ(get_token().result_int(), 200);
}

TEST_F(BrokerWithEmulator, BadConfigurationStopsWithOneLineAndExitCode2) {
  auto [code, output] = test_support::run_and_capture(TB_BROKER_BIN, {"--min-validity", "soon"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(output.find("--min-validity"), std::string::npos) << output;
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
}

TEST_F(BrokerWithEmulator, TokenctlShowsExpiryButNotTheTokenUnlessAsked) {
  start_emulator();
  start_broker();
  Process::Options options{{{"TOKEN_BROKER_SOCKET", socket_path()}}, "", {}};
  auto [code, output] = test_support::run_and_capture(TB_TOKENCTL_BIN, {"get", kDatabase}, options);
  EXPECT_EQ(code, 0) << output;
  EXPECT_NE(output.find("expires_in"), std::string::npos) << output;
  EXPECT_EQ(output.find("eyJ"), std::string::npos)
      << "a JWT must not be printed without --show-token";
  auto [shown_code, shown] =
      test_support::run_and_capture(TB_TOKENCTL_BIN, {"get", kDatabase, "--show-token"}, options);
  EXPECT_EQ(shown_code, 0);
  EXPECT_EQ(shown.rfind("eyJ", 0), 0u) << shown;
  while (!shown.empty() && shown.back() == '\n') shown.pop_back();
  remember_token(shown);
  auto [health_code, health] = test_support::run_and_capture(TB_TOKENCTL_BIN, {"health"}, options);
  EXPECT_EQ(health_code, 0) << health;
}

TEST_F(BrokerWithEmulator, LogsAreJsonLinesAndNameTheTokenOnlyByFingerprint) {
  start_emulator();
  start_broker();
  auto response = get_token();
  ASSERT_EQ(response.result_int(), 200);
  broker_->stop();
  std::istringstream lines(broker_log());
  std::string line;
  bool saw_acquired = false;
  while (std::getline(lines, line)) {
    auto event = json::parse(line, nullptr, false);
    ASSERT_TRUE(event.is_object()) << "not a JSON line: " << line;
    if (event["msg"] == "token acquired") {
      saw_acquired = true;
      EXPECT_EQ(event["token_sha256"].get<std::string>().size(), 12u);
      EXPECT_EQ(event["resource"], kDatabase);
    }
  }
  EXPECT_TRUE(saw_acquired);
  // TearDown checks that the token itself is absent.
}

}  // namespace
}  // namespace integration
