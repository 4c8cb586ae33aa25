// The whole pod as real processes on loopback: imds-emulator (Entra stand-in) -> token-broker
// (Unix socket) -> todo-app -> PostgreSQL, whose login accepts only a currently valid token from
// the emulator (pam_token_broker.so + pg-token-verifier), as Azure Database for PostgreSQL does.

#include "fixture.hpp"
#include "pg_cluster.hpp"

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

namespace e2e {
namespace {

using namespace std::chrono_literals;
using integration::json;
using test_support::Process;
using test_support::read_file;
using test_support::wait_until;
namespace http = boost::beast::http;

constexpr const char* kOssrdbms = "https://ossrdbms-aad.database.windows.net";
constexpr const char* kAppClientId = "11111111-1111-4111-8111-111111111111";
constexpr const char* kAppObjectId = "22222222-2222-4222-8222-222222222222";
constexpr const char* kStrangerClientId = "33333333-3333-4333-8333-333333333333";
constexpr const char* kRole = "todo_app";

class TodoPod : public integration::BrokerWithEmulator {
 protected:
  /// Emulator (tokens living `lifetime_s`), broker, PostgreSQL with the token check.
  void start_backends(int lifetime_s = 3600) {
    start_emulator({"--identity",
                    std::string("client_id=") + kAppClientId + ",object_id=" + kAppObjectId,
                    "--identity", std::string("client_id=") + kStrangerClientId, "--lifetime",
                    std::to_string(lifetime_s), "--public-key-out", dir_.file("emulator-key.pem")});
    start_broker({"--prefetch", kOssrdbms, "--min-validity", "3"});
    write_verifier_config();
    pg_ = std::make_unique<test_support::PgCluster>(
        dir_.file("pg"),
        test_support::PgCluster::Options{
            {}, {kRole}, dir_.file("verifier.json"), TB_PAM_MODULE, TB_PG_VERIFIER});
    ASSERT_EQ(pg_->psql("GRANT ALL ON SCHEMA public TO " + std::string(kRole)).first, 0);
  }

  void write_verifier_config() {
    json config = {{"public_key", dir_.file("emulator-key.pem")},
                   {"audience", kOssrdbms},
                   {"log", dir_.file("verifier.log")},
                   {"roles", {{kRole, {kAppObjectId}}}}};
    std::ofstream(dir_.file("verifier.json")) << config.dump(2);
  }

  void start_app(std::vector<std::string> extra = {}) {
    app_log_index_++;
    const std::string log = dir_.file("app" + std::to_string(app_log_index_) + ".log");
    std::vector<std::string> args = {"--listen",
                                     "127.0.0.1:0",
                                     "--db-connection-string",
                                     pg_->odbc_connection_string(kRole),
                                     "--db-auth",
                                     "password",
                                     "--db-token-resource",
                                     kOssrdbms,
                                     "--broker-socket",
                                     socket_path(),
                                     "--db-pool-size",
                                     "2",
                                     "--db-token-margin",
                                     "5"};
    args.insert(args.end(), extra.begin(), extra.end());
    app_ = std::make_unique<Process>(TB_TODO_APP_BIN, args, Process::Options{{}, log, {}});
    app_logs_.push_back(log);
    std::smatch match;
    static const std::regex kUrl(R"re("url":"http://127\.0\.0\.1:(\d+)/")re");
    ASSERT_TRUE(wait_until(
        [&] {
          const auto text = read_file(log);
          if (!std::regex_search(text, match, kUrl)) return false;
          app_port_ = match[1];
          return true;
        },
        15s))
        << "todo-app did not start:\n"
        << read_file(log);
  }

  void stop_app() {
    ASSERT_TRUE(app_);
    EXPECT_EQ(app_->stop(), 0) << "todo-app should exit 0 on SIGTERM";
    app_.reset();
  }

  tb::http::Response call(http::verb method, const std::string& target, std::string body = {},
                          std::vector<std::pair<std::string, std::string>> headers = {}) {
    tb::http::Request request{method, target, std::move(headers), std::move(body), "127.0.0.1"};
    auto response =
        tb::http::request_tcp("127.0.0.1", app_port_, std::move(request), {.timeout = 30s});
    if (!response) {
      ADD_FAILURE() << "request " << target << " failed: " << response.error().message();
      return {};
    }
    return *response;
  }
  tb::http::Response api(http::verb method, const std::string& target, const json& body) {
    return call(method, target, body.dump(), {{"Content-Type", "application/json"}});
  }

  /// Accepted logins in the verifier log: one fingerprint per new database connection.
  std::vector<json> verifier_lines() {
    std::vector<json> lines;
    std::istringstream log(read_file(dir_.file("verifier.log")));
    for (std::string line; std::getline(log, line);) {
      auto parsed = json::parse(line, nullptr, false);
      if (!parsed.is_discarded()) lines.push_back(parsed);
    }
    return lines;
  }

  void TearDown() override {
    if (app_) app_->stop();
    // No JWT (header "eyJ...") in any log: not the app's, not the verifier's, not PostgreSQL's.
    static const std::regex kJwt(R"(eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})");
    std::vector<std::string> logs = app_logs_;
    logs.push_back(dir_.file("verifier.log"));
    if (pg_) logs.push_back(pg_->server_log());
    for (const auto& path : logs) {
      EXPECT_FALSE(std::regex_search(read_file(path), kJwt)) << "a token leaked into " << path;
    }
    pg_.reset();
    BrokerWithEmulator::TearDown();
  }

  std::unique_ptr<test_support::PgCluster> pg_;
  std::unique_ptr<Process> app_;
  std::string app_port_;
  std::vector<std::string> app_logs_;
  int app_log_index_ = 0;
};

/// The browser-side of a form: the CSRF cookie from a page and the token in its forms.
struct FormSession {
  std::string cookie;
  std::string token;
};

FormSession form_session(const tb::http::Response& page) {
  FormSession session;
  std::string set_cookie(page[http::field::set_cookie]);
  session.cookie = set_cookie.substr(0, set_cookie.find(';'));
  std::smatch match;
  static const std::regex kToken(R"re(name="csrf" value="([0-9a-f]{64})")re");
  const std::string body = page.body();
  if (std::regex_search(body, match, kToken)) session.token = match[1];
  return session;
}

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
  const std::vector<std::pair<std::string, std::string>> form_headers = {
      {"Content-Type", "application/x-www-form-urlencoded"}, {"Cookie", session.cookie}};
  auto posted = call(http::verb::post, "/todos",
                     "csrf=" + session.token + "&description=Walk+the+dog", form_headers);
  ASSERT_EQ(posted.result_int(), 303) << posted.body();
  auto list = json::parse(call(http::verb::get, "/api/todos").body());
  ASSERT_EQ(list.size(), 2u);
  const auto dog = list[1]["id"].get<std::int64_t>();
  EXPECT_EQ(list[1]["description"], "Walk the dog");
  EXPECT_EQ(call(http::verb::post, "/todos/" + std::to_string(dog) + "/done",
                 "csrf=" + session.token + "&done=true", form_headers)
                .result_int(),
            303);
  EXPECT_EQ(json::parse(call(http::verb::get, "/api/todos/" + std::to_string(dog)).body())["done"],
            true);
  EXPECT_EQ(call(http::verb::post, "/todos/" + std::to_string(dog) + "/delete",
                 "csrf=" + session.token, form_headers)
                .result_int(),
            303);
  EXPECT_EQ(call(http::verb::get, "/api/todos/" + std::to_string(dog)).result_int(), 404);
  EXPECT_EQ(call(http::verb::post, "/todos", "description=no+token", form_headers).result_int(),
            403);
  EXPECT_EQ(call(http::verb::delete_, item).result_int(), 204);

  // Every login went through the token check, with a token for this identity.
  auto lines = verifier_lines();
  ASSERT_FALSE(lines.empty());
  for (const auto& line : lines) {
    EXPECT_EQ(line["result"], "accepted") << line.dump();
    EXPECT_EQ(line["role"], kRole);
  }
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
  const std::string script = test_support::PgCluster::script();
  ASSERT_EQ(std::system((script + " stop " + pg_->dir() + " >/dev/null 2>&1").c_str()), 0);
  auto down = call(http::verb::get, "/api/todos");
  EXPECT_EQ(down.result_int(), 503) << down.body();
  EXPECT_EQ(call(http::verb::get, "/readyz").result_int(), 503);
  EXPECT_TRUE(app_->running());
  const std::string restart =
      script + " start " + pg_->dir() + " --port " + std::to_string(pg_->port()) + " --pam-role " +
      kRole + " --verifier-config " + dir_.file("verifier.json") + " --pam-module " +
      TB_PAM_MODULE + " --verifier " + TB_PG_VERIFIER + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(restart.c_str()), 0);
  EXPECT_TRUE(
      wait_until([&] { return call(http::verb::get, "/readyz").result_int() == 200; }, 15s));
  auto list = json::parse(call(http::verb::get, "/api/todos").body());
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["description"], "before");
}

}  // namespace
}  // namespace e2e
