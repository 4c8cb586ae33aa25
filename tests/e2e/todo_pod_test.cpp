// The whole pod, end to end: CRUD through the API and the forms with token-checked logins,
// restarts, token rotation, a refused identity, outages of the broker and the database.

#include "todo_pod.hpp"

#include "tb/crypto.hpp"
#include "tb/log.hpp"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace e2e {
namespace {

TEST_F(TodoPod, CrudThroughTheApiAndTheFormsWithTokenCheckedLogins) {
  start_backends();
  start_app();
  ASSERT_EQ(call(http::verb::get, "/readyz").result_int(), 200);

  // JSON API.
  auto created =
      api(http::verb::post, "/api/todos", {{"description", "Buy milk \xF0\x9F\xA5\x9B"}});
  ASSERT_EQ(created.result_int(), 201) << created.body();
  const auto id = json::parse(created.body())["id"].get<std::int64_t>();
  const std::string item = "/api/todos/" + std::to_string(id);
  EXPECT_EQ(api(http::verb::patch, item, {{"done", true}}).result_int(), 200);
  EXPECT_EQ(
      api(http::verb::put, item, {{"description", "Buy oat milk"}, {"done", false}}).result_int(),
      200);
  auto read = json::parse(call(http::verb::get, item).body());
  EXPECT_EQ(read["description"], "Buy oat milk");
  EXPECT_EQ(read["done"], false);
  EXPECT_EQ(api(http::verb::post, "/api/todos", {{"description", ""}}).result_int(), 400);

  // HTML forms, as a browser without JavaScript sends them.
  auto page = call(http::verb::get, "/");
  ASSERT_EQ(page.result_int(), 200);
  auto session = form_session(page);
  ASSERT_FALSE(session.token.empty());
  const auto headers = form_headers(session);
  auto posted = call(http::verb::post, "/todos",
                     "csrf=" + session.token + "&description=Walk+the+dog", headers);
  ASSERT_EQ(posted.result_int(), 303) << posted.body();
  auto list = json::parse(call(http::verb::get, "/api/todos").body());
  ASSERT_EQ(list.size(), 2u);
  const auto dog = list[1]["id"].get<std::int64_t>();
  EXPECT_EQ(list[1]["description"], "Walk the dog");
  EXPECT_EQ(call(http::verb::post, "/todos/" + std::to_string(dog) + "/done",
                 "csrf=" + session.token + "&done=true", headers)
                .result_int(),
            303);
  EXPECT_EQ(json::parse(call(http::verb::get, "/api/todos/" + std::to_string(dog)).body())["done"],
            true);
  EXPECT_EQ(call(http::verb::post, "/todos/" + std::to_string(dog) + "/delete",
                 "csrf=" + session.token, headers)
                .result_int(),
            303);
  EXPECT_EQ(call(http::verb::get, "/api/todos/" + std::to_string(dog)).result_int(), 404);
  EXPECT_EQ(call(http::verb::post, "/todos", "description=no+token", headers).result_int(), 403);
  EXPECT_EQ(call(http::verb::delete_, item).result_int(), 204);

  // Every login went through the token check, with a token for this identity.
  auto lines = verifier_lines();
  ASSERT_FALSE(lines.empty());
  for (const auto& line : lines) {
    EXPECT_EQ(line["result"], "accepted") << line.dump();
    EXPECT_EQ(line["role"], kRole);
  }
}

TEST_F(TodoPod, SigtermTurnsNotReadyServesOnThenStopsWithoutAFailedRequestOrLostWrite) {
  start_backends();
  start_app({"--drain-seconds", "2"});
  ASSERT_EQ(call(http::verb::get, "/readyz").result_int(), 200);

  // A load balancer: sends while the app is in rotation; it probes /readyz and takes the app
  // out 200 ms after a failed probe (Kubernetes takes seconds: the drain period covers that).
  std::atomic<bool> in_rotation{true};
  std::atomic<bool> saw_not_ready{false};
  std::atomic<int> reads{0};
  std::atomic<int> writes{0};
  std::mutex failures_mutex;
  std::vector<std::string> failures;
  const auto send = [&](tb::http::Request request) -> std::optional<unsigned> {
    auto response =
        tb::http::request_tcp("127.0.0.1", app_port_, std::move(request), {.timeout = 30s});
    if (!response) {
      const std::lock_guard lock(failures_mutex);
      failures.push_back(response.error().message());
      return std::nullopt;
    }
    return response->result_int();
  };
  std::thread prober([&] {
    while (true) {
      const auto status = send({http::verb::get, "/readyz", {}, {}, "127.0.0.1"});
      if (status && *status == 503) {
        saw_not_ready = true;
        std::this_thread::sleep_for(200ms);
        in_rotation = false;
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
  });
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      for (int n = 0; in_rotation; ++n) {
        if (n % 2 == 0) {
          const auto status = send({http::verb::get, "/api/todos", {}, {}, "127.0.0.1"});
          if (status == 200u) ++reads;
        } else {
          const json body = {
              {"description", "drain " + std::to_string(i) + "-" + std::to_string(n)}};
          const auto status = send({http::verb::post,
                                    "/api/todos",
                                    {{"Content-Type", "application/json"}},
                                    body.dump(),
                                    "127.0.0.1"});
          if (status == 201u) ++writes;
          if (status && *status != 201) {
            const std::lock_guard lock(failures_mutex);
            failures.push_back("POST answered " + std::to_string(*status));
          }
        }
      }
    });
  }
  EXPECT_TRUE(wait_until([&] { return reads + writes >= 20; }, 20s));
  app_->signal(SIGTERM);
  prober.join();
  for (auto& client : clients) client.join();
  EXPECT_TRUE(saw_not_ready) << "/readyz should answer 503 during the drain period";
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, first: " << failures.front();
  EXPECT_EQ(app_->wait(20s), 0) << "todo-app should stop by itself after the drain";
  app_.reset();

  // Every write the app acknowledged is in the database.
  start_app();
  EXPECT_EQ(items().size(), static_cast<std::size_t>(writes.load()));
}

TEST_F(TodoPod, RequestStillRunningWhenTheGraceEndsGets503ShuttingDown) {
  // A broker that takes connections and never answers (a listening socket nobody accepts on):
  // a request that needs a new database connection waits for its token.
  const std::string silent = dir_.file("silent.sock");
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", silent.c_str());
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  start_app_with({"--listen", "127.0.0.1:0", "--db-connection-string",
                  "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=1;Database=todo;Uid=app;",
                  "--db-auth", "password", "--db-token-resource", kOssrdbms, "--broker-socket",
                  silent, "--broker-timeout-ms", "4000", "--drain-seconds", "0", "--shutdown-grace",
                  "1"});
  auto waiting = std::async(std::launch::async, [port = app_port_] {
    tb::http::Request request{http::verb::get, "/api/todos", {}, {}, "127.0.0.1"};
    return tb::http::request_tcp("127.0.0.1", port, std::move(request), {.timeout = 30s});
  });
  // The request reaches the app and waits for its token (4 s at most).
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(waiting.wait_for(0s), std::future_status::timeout) << "answered without waiting";
  const auto signalled = std::chrono::steady_clock::now();
  app_->signal(SIGTERM);
  auto response = waiting.get();
  const auto answered_after = std::chrono::steady_clock::now() - signalled;
  ::close(listener);
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->result_int(), 503) << response->body();
  EXPECT_EQ(json::parse(response->body())["error"], "shutting_down");
  EXPECT_FALSE((*response)[http::field::retry_after].empty());
  EXPECT_FALSE(response->keep_alive());
  EXPECT_GE(answered_after, 900ms) << "answered before the grace was over";
  EXPECT_LT(answered_after, 3s) << "answered at the end of the grace, not of the token wait";
  // It exits once the worker's token request has timed out (at most --broker-timeout-ms).
  EXPECT_EQ(app_->wait(15s), 0);
  app_.reset();
}

TEST_F(TodoPod, MetricsAndTheReasonsForNotReadyAreOnTheAdminPortOnly) {
  start_backends();
  start_app();
  ASSERT_FALSE(app_admin_port_.empty());
  ASSERT_NE(app_admin_port_, app_port_);
  // The public port (what the Service and the Ingress reach): no /metrics.
  EXPECT_EQ(call(http::verb::get, "/metrics").result_int(), 404);
  EXPECT_EQ(call(http::verb::get, "/healthz").result_int(), 200);
  EXPECT_EQ(call(http::verb::get, "/readyz").result_int(), 200);
  const auto metrics = admin_get("/metrics");
  EXPECT_EQ(metrics.result_int(), 200);
  EXPECT_NE(metrics.body().find("todo_http_responses_total"), std::string::npos) << metrics.body();
  EXPECT_EQ(admin_get("/readyz").result_int(), 200);
  EXPECT_EQ(admin_get("/healthz").result_int(), 200);
  EXPECT_EQ(admin_get("/").result_int(), 404) << "no UI on the admin port";

  // The database goes away: the public /readyz says not ready and why in a code only; the
  // admin port says what the database answered.
  stop_database();
  const auto public_ready = call(http::verb::get, "/readyz");
  EXPECT_EQ(public_ready.result_int(), 503);
  const auto public_body = json::parse(public_ready.body());
  EXPECT_EQ(public_body["error"], "database_unavailable");
  const auto admin_ready = admin_get("/readyz");
  EXPECT_EQ(admin_ready.result_int(), 503);
  const auto reason = json::parse(admin_ready.body())["error_description"].get<std::string>();
  EXPECT_NE(reason, public_body["error_description"].get<std::string>());
  EXPECT_EQ(public_ready.body().find(reason), std::string::npos)
      << "the reason stays on the admin port";
  restart_database();
}

TEST_F(TodoPod, DataSurvivesAnAppRestart) {
  start_backends();
  start_app();
  ASSERT_EQ(api(http::verb::post, "/api/todos", {{"description", "persist me"}}).result_int(), 201);
  stop_app();
  start_app();
  auto list = json::parse(call(http::verb::get, "/api/todos").body());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["description"], "persist me");
}

TEST_F(TodoPod, KeepsWorkingAcrossTokenRotationsWithNewTokensForNewConnections) {
  // 20-second tokens; connections retire when < 5 s are left, so one connection lives at most
  // ~15 s and every new one must log in with a token that is still valid.
  start_backends(20);
  start_app();
  const auto until = std::chrono::steady_clock::now() + 50s;
  int requests = 0;
  while (std::chrono::steady_clock::now() < until) {
    auto response =
        api(http::verb::post, "/api/todos", {{"description", "tick " + std::to_string(requests)}});
    ASSERT_EQ(response.result_int(), 201) << "request " << requests << ": " << response.body();
    ++requests;
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_EQ(json::parse(call(http::verb::get, "/api/todos").body()).size(),
            static_cast<std::size_t>(requests));
  std::set<std::string> fingerprints;
  for (const auto& line : verifier_lines()) {
    EXPECT_EQ(line["result"], "accepted") << line.dump();
    fingerprints.insert(line["fingerprint"].get<std::string>());
  }
  EXPECT_GE(fingerprints.size(), 3u) << "new connections must use new tokens";
}

TEST_F(TodoPod, ARevokedTokenIsReplacedByOneForcedRefreshAndTheNextWriteSucceeds) {
  start_backends();
  start_app();
  ASSERT_EQ(api(http::verb::post, "/api/todos", {{"description", "before"}}).result_int(), 201);
  // The token the app logged in with: the one the broker holds.
  const auto held = get(std::string("/v1/token?resource=") + kOssrdbms);
  ASSERT_EQ(held.result_int(), 200) << held.body();
  const auto token = json::parse(held.body())["access_token"].get<std::string>();
  const auto issued_before = emulator_stats()["tokens_issued"].get<int>();

  // The database refuses that token from now on although it has not expired (a revocation, a
  // changed role), and the app's open sessions end (PostgreSQL does not check them again).
  revoked_file_ = dir_.file("revoked.txt");
  std::ofstream(revoked_file_) << tb::hex(tb::sha256(token)) << "\n";
  write_verifier_config();
  ASSERT_EQ(pg_->psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" +
                      std::string(kRole) + "'")
                .first,
            0);

  const auto after = api(http::verb::post, "/api/todos", {{"description", "after"}});
  ASSERT_EQ(after.result_int(), 201) << after.body() << "\n" << app_log();
  // One forced refresh: exactly one more upstream call.
  EXPECT_EQ(emulator_stats()["tokens_issued"].get<int>(), issued_before + 1);
  EXPECT_EQ(items().size(), 2u);
  // The database saw the old token refused as revoked, then a new one accepted.
  const auto lines = verifier_lines();
  const auto revoked = std::find_if(lines.begin(), lines.end(), [](const json& line) {
    return line["result"] == "refused" && line["reason"] == "revoked";
  });
  ASSERT_NE(revoked, lines.end());
  EXPECT_EQ((*revoked)["fingerprint"], tb::log::fingerprint(token));
  EXPECT_EQ(lines.back()["result"], "accepted") << lines.back().dump();
  EXPECT_NE(lines.back()["fingerprint"], tb::log::fingerprint(token));
  // The app's next connections use the new token: the broker serves it to everyone.
  const auto now_held = get(std::string("/v1/token?resource=") + kOssrdbms);
  EXPECT_NE(json::parse(now_held.body())["access_token"], token);
}

TEST_F(TodoPod, ATokenReplacedElsewhereClosesTheAppsConnectionsThatUsedTheOldOne) {
  start_backends();
  start_app();
  ASSERT_EQ(api(http::verb::post, "/api/todos", {{"description", "before"}}).result_int(), 201);
  const auto held = get(std::string("/v1/token?resource=") + kOssrdbms);
  const auto token = json::parse(held.body())["access_token"].get<std::string>();
  const auto logins_before = verifier_lines().size();
  // Another replica's database login was refused: it forced a refresh. This app hears of it on
  // its watch and closes its idle connection, which logged in with the old token.
  const auto refreshed = post(std::string("/v1/token/refresh?resource=") + kOssrdbms +
                              "&token_sha256=" + tb::hex(tb::sha256(token)));
  ASSERT_EQ(refreshed.result_int(), 200) << refreshed.body();
  ASSERT_TRUE(wait_until(
      [&] { return app_log().find("database token replaced early") != std::string::npos; }, 5s))
      << app_log();
  EXPECT_NE(app_log().find("token replaced by a forced refresh"), std::string::npos) << app_log();
  EXPECT_NE(app_log().find("\"closed_now\":1"), std::string::npos) << app_log();
  // The next request logs in again, with the new token.
  ASSERT_EQ(api(http::verb::post, "/api/todos", {{"description", "after"}}).result_int(), 201);
  const auto lines = verifier_lines();
  ASSERT_GT(lines.size(), logins_before);
  EXPECT_EQ(lines.back()["result"], "accepted");
  EXPECT_EQ(lines.back()["fingerprint"],
            tb::log::fingerprint(json::parse(refreshed.body())["access_token"].get<std::string>()));
}

TEST_F(TodoPod, AnIdentityTheDatabaseDoesNotAcceptGivesAClearErrorNotACrash) {
  start_backends();
  start_app({"--db-client-id", kStrangerClientId});
  auto ready = call(http::verb::get, "/readyz");
  EXPECT_EQ(ready.result_int(), 503);
  EXPECT_NE(ready.body().find("database_login_failed"), std::string::npos) << ready.body();
  auto page = call(http::verb::get, "/");
  EXPECT_EQ(page.result_int(), 503);
  EXPECT_NE(page.body().find("role=\"alert\""), std::string::npos);
  EXPECT_TRUE(app_->running());
  auto lines = verifier_lines();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back()["result"], "refused");
}

TEST_F(TodoPod, BrokerAndDatabaseOutagesGiveClearErrorsAndTheAppRecovers) {
  start_backends();

  // Broker down before the app has any connection: 503 naming the broker, /readyz 503.
  broker_->stop();
  start_app();
  auto no_broker = call(http::verb::get, "/api/todos");
  EXPECT_EQ(no_broker.result_int(), 503);
  EXPECT_NE(no_broker.body().find("token broker is not running"), std::string::npos)
      << no_broker.body();
  EXPECT_EQ(call(http::verb::get, "/readyz").result_int(), 503);

  // The broker comes back: so does the app, by itself.
  start_broker({"--prefetch", kOssrdbms, "--min-validity", "3"});
  EXPECT_TRUE(
      wait_until([&] { return call(http::verb::get, "/readyz").result_int() == 200; }, 15s));
  ASSERT_EQ(api(http::verb::post, "/api/todos", {{"description", "before"}}).result_int(), 201);

  // The server drops every connection (failover, restart): the pool notices and reconnects.
  ASSERT_EQ(pg_->psql("SELECT count(pg_terminate_backend(pid)) >= 0 FROM pg_stat_activity WHERE "
                      "usename = 'todo_app'")
                .first,
            0);
  EXPECT_EQ(call(http::verb::get, "/api/todos").result_int(), 200);

  // The database is down: 503 that says so; it comes back on the same port: the app recovers.
  stop_database();
  auto down = call(http::verb::get, "/api/todos");
  EXPECT_EQ(down.result_int(), 503) << down.body();
  EXPECT_EQ(call(http::verb::get, "/readyz").result_int(), 503);
  EXPECT_TRUE(app_->running());
  restart_database();
  EXPECT_TRUE(
      wait_until([&] { return call(http::verb::get, "/readyz").result_int() == 200; }, 15s));
  auto list = json::parse(call(http::verb::get, "/api/todos").body());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["description"], "before");
}

}  // namespace
}  // namespace e2e
