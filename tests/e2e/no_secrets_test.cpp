// No secrets leak, on purpose: requests that carry a token, upstream errors that carry a token, a
// wrong App Service identity header, and a database password in the app's connection string.
// Every answer a client gets is checked here; every process's output is checked when each test
// ends (tests/support/leak_check.hpp), as for every other test that starts these processes.

#include "canned_http.hpp"
#include "jwt_peek.hpp"
#include "todo_pod.hpp"

#include <fmt/format.h>
#include <boost/beast/http/write.hpp>

#include <sstream>

namespace e2e {
namespace {

using test_support::CannedHttpServer;
namespace leaks = test_support::leaks;

class NoSecrets : public TodoPod {
 protected:
  /// The response (status line, headers, body) holds no secret the tests know of and nothing
  /// shaped like a token.
  void expect_clean(const tb::http::Response& response, const std::string& what) {
    std::ostringstream text;
    text << response;
    leaks::refresh_secret_files();
    const auto findings = leaks::scan_text(text.str(), "the answer to " + what);
    std::string joined;
    for (const auto& finding : findings) joined += "\n  " + finding;
    EXPECT_TRUE(findings.empty()) << joined;
  }

  /// The drop-in listener's port, from the broker's start-up line.
  std::string drop_in_port() {
    std::smatch match;
    const std::string log = broker_log();
    static const std::regex kPattern(R"re("imds_listen":"127\.0\.0\.1:([0-9]+)")re");
    EXPECT_TRUE(std::regex_search(log, match, kPattern)) << log;
    return match.empty() ? std::string() : std::string(match[1]);
  }

  tb::http::Response tcp(const std::string& port, const std::string& target, Headers headers) {
    tb::http::Request request{.target = target, .headers = std::move(headers)};
    auto response = tb::http::request_tcp("127.0.0.1", port, std::move(request), {.timeout = 30s});
    if (!response) {
      ADD_FAILURE() << "GET " << target << " failed: " << response.error().message();
      return {};
    }
    return *response;
  }

  tb::http::Response socket_request(http::verb method, const std::string& target, Headers headers,
                                    std::string body = {}) {
    tb::http::Request request{method, target, std::move(headers), std::move(body)};
    auto response = tb::http::request_unix(socket_path(), std::move(request), {.timeout = 30s});
    if (!response) {
      ADD_FAILURE() << target << " failed: " << response.error().message();
      return {};
    }
    return *response;
  }
};

TEST_F(NoSecrets, BadRequestsCarryingATokenAreRefusedWithoutEchoingIt) {
  start_emulator();
  start_broker({"--imds-listen", "127.0.0.1:0"});
  const auto port = drop_in_port();
  auto served = get_token();  // a real token, issued by the emulator (noted by the fixture)
  ASSERT_EQ(served.result_int(), 200) << served.body();
  const std::string issued = json::parse(served.body())["access_token"];
  const std::string r = std::string("resource=") + integration::kDatabaseQuery;
  const std::string secret = read_file(dir_.file("identity-header"));
  ASSERT_GE(secret.size(), 16u);

  for (const auto& token : {issued, leaks::canary_token()}) {
    struct Case {
      std::string what;
      http::verb method;
      std::string target;
      Headers headers;
      std::string body;
      int status;
    };
    const std::string pad(9000, 'p');
    const std::vector<Case> cases = {
        {"an unknown parameter",
         http::verb::get,
         fmt::format("/v1/token?{}&access_token={}", r, token),
         {},
         "",
         400},
        {"no resource", http::verb::get, "/v1/token?access_token=" + token, {}, "", 400},
        {"a bad min_validity",
         http::verb::get,
         fmt::format("/v1/token?{}&min_validity={}", r, token),
         {},
         "",
         400},
        {"a bad timeout",
         http::verb::get,
         fmt::format("/v1/token?{}&timeout={}", r, token),
         {},
         "",
         400},
        {"two identities",
         http::verb::get,
         fmt::format("/v1/token?{}&client_id=a&object_id={}", r, token),
         {},
         "",
         400},
        {"a bearer header on a bad request",
         http::verb::get,
         "/v1/token",
         {{"Authorization", "Bearer " + token}},
         "",
         400},
        {"a token as the Metadata header",
         http::verb::get,
         "/metadata/identity/oauth2/token?api-version=2018-02-01&" + r,
         {{"Metadata", token}},
         "",
         400},
        {"an unknown route", http::verb::get, "/nowhere?token=" + token, {}, "", 404},
        {"a target that is no URL", http::verb::get, "/v1/token?resource=%ZZ" + token, {}, "", 400},
        {"a body",
         http::verb::post,
         "/v1/token?" + r,
         {{"Content-Type", "text/plain"}},
         token,
         413},
        {"a token as the rejected token's hash",
         http::verb::post,
         fmt::format("/v1/token/refresh?{}&token_sha256={}", r, token),
         {},
         "",
         400},
        {"a token in a forced refresh's body",
         http::verb::post,
         "/v1/token/refresh?" + r,
         {{"Content-Type", "text/plain"}},
         token,
         413},
        {"a forced refresh by GET",
         http::verb::get,
         "/v1/token/refresh?" + r + "&x=" + token,
         {},
         "",
         405},
        {"oversized headers",
         http::verb::get,
         "/v1/token?" + r,
         {{"X-Token", token}, {"X-Pad", pad}},
         "",
         431},
    };
    for (const auto& c : cases) {
      auto response = socket_request(c.method, c.target, c.headers, c.body);
      EXPECT_EQ(response.result_int(), c.status) << c.what << ": " << response.body();
      expect_clean(response, c.what);
    }

    // The drop-in listener: a token (or a near miss of the secret) as X-IDENTITY-HEADER.
    const std::string msi = "/msi/token?api-version=2019-08-01&" + r;
    for (const auto& [what, header] : std::vector<std::pair<std::string, std::string>>{
             {"a token as the identity header", token},
             {"the secret and one more character", secret + "x"},
             {"the secret's first half", secret.substr(0, secret.size() / 2)}}) {
      auto response = tcp(port, msi, {{"X-IDENTITY-HEADER", header}});
      EXPECT_EQ(response.result_int(), 401) << what << ": " << response.body();
      expect_clean(response, what);
    }
    for (const auto& [what, target, headers] :
         std::vector<std::tuple<std::string, std::string, Headers>>{
             {"no identity header, a bearer token", msi, {{"Authorization", "Bearer " + token}}},
             {"IMDS without Metadata, a bearer token",
              "/metadata/identity/oauth2/token?api-version=2018-02-01&" + r,
              {{"Authorization", "Bearer " + token}}},
             {"a proxied IMDS request",
              "/metadata/identity/oauth2/token?api-version=2018-02-01&" + r,
              {{"Metadata", "true"}, {"X-Forwarded-For", token}}}}) {
      auto response = tcp(port, target, headers);
      EXPECT_EQ(response.result_int(), 400) << what << ": " << response.body();
      expect_clean(response, what);
    }
  }
  // None of it reached the upstream.
  EXPECT_EQ(emulator_stats()["token_requests"], 1);
}

TEST_F(NoSecrets, UpstreamErrorsCarryingATokenAreNeitherPassedOnNorLogged) {
  const std::string canary = leaks::canary_token();
  const std::string signature = test_support::jwt_signature(canary);
  struct Upstream {
    std::string resource;
    std::string reply;
    int status;  // what the broker answers
  };
  const std::vector<Upstream> upstreams = {
      {"https://r400.test/",
       CannedHttpServer::response(400, json{{"error", "invalid_request"},
                                            {"error_description", "Identity not found: " + canary}}
                                           .dump()),
       400},
      {"https://r403.test/",
       CannedHttpServer::response(403,
                                  json{{"error", canary}, {"error_description", "denied"}}.dump()),
       403},
      {"https://r500.test/",
       CannedHttpServer::response(
           500, json{{"error", "server_error"}, {"error_description", signature}}.dump()),
       503},
      {"https://r429.test/",
       CannedHttpServer::response(429, "<html>slow down, " + canary + "</html>", "text/html",
                                  "Retry-After: 1\r\n"),
       503},
      {"https://r200-bad-expiry.test/",
       CannedHttpServer::response(200,
                                  json{{"access_token", canary}, {"expires_in", "soon"}}.dump()),
       503},
      {"https://r200-cut.test/", CannedHttpServer::response(200, R"({"access_token":")" + canary),
       503},
      {"https://r200-expired.test/",
       CannedHttpServer::response(200, json{{"access_token", canary}, {"expires_in", -5}}.dump()),
       503},
  };
  CannedHttpServer upstream([&](const std::string& head) {
    for (const auto& u : upstreams) {
      // The broker percent-encodes ':' and '/' only where it must; the host part is enough.
      const auto host = u.resource.substr(8, u.resource.size() - 9);
      if (head.find(host) != std::string::npos) return u.reply;
    }
    return CannedHttpServer::response(404, R"({"error":"not_found"})");
  });
  emulator_port_ = std::to_string(upstream.port());  // the broker's upstream: the canned server
  start_broker({"--imds-listen", "127.0.0.1:0"});
  const auto port = drop_in_port();
  const auto secret = read_file(dir_.file("identity-header"));

  for (const auto& u : upstreams) {
    const std::string query = "resource=" + u.resource + "&timeout=1";
    auto v1 = get("/v1/token?" + query);
    EXPECT_EQ(v1.result_int(), u.status) << u.resource << ": " << v1.body();
    expect_clean(v1, u.resource + " on /v1/token");
    auto imds = get("/metadata/identity/oauth2/token?api-version=2018-02-01&" + query,
                    {{"Metadata", "true"}});
    expect_clean(imds, u.resource + " on the IMDS route");
    auto msi =
        tcp(port, "/msi/token?api-version=2019-08-01&" + query, {{"X-IDENTITY-HEADER", secret}});
    expect_clean(msi, u.resource + " on /msi/token");
  }
  // /readyz names each key's last upstream error.
  auto ready = get("/readyz");
  expect_clean(ready, "/readyz");
  EXPECT_NE(ready.body().find("r400.test"), std::string::npos) << ready.body();
  EXPECT_GE(upstream.requests(), static_cast<int>(upstreams.size()));
}

TEST_F(NoSecrets, TheAppEchoesNoTokenInAnswersOrLogs) {
  start_backends();
  start_app();
  const std::string canary = leaks::canary_token();
  const auto session = form_session(call(http::verb::get, "/"));
  const Headers json_type = {{"Content-Type", "application/json"}};
  struct Case {
    std::string what;
    http::verb method;
    std::string target;
    std::string body;
    Headers headers;
    int status;
  };
  const std::vector<Case> cases = {
      {"a token in the query of a page", http::verb::get, "/?access_token=" + canary, "", {}, 200},
      {"a token in the query of a refused form", http::verb::post, "/todos?token=" + canary,
       "description=x", form_headers(session), 403},
      {"a token as an id", http::verb::get, "/api/todos/" + canary, "", {}, 404},
      {"a token as an id of a page", http::verb::get, "/todos/" + canary + "/edit", "", {}, 404},
      {"a token as an unknown field", http::verb::post, "/api/todos",
       json{{"description", "x"}, {canary, true}}.dump(), json_type, 400},
      {"a token in a wrong type", http::verb::post, "/api/todos",
       json{{"description", "x"}, {"done", canary}}.dump(), json_type, 400},
      {"a token in JSON that is cut off", http::verb::post, "/api/todos",
       R"({"description":")" + canary, json_type, 400},
      {"a bearer token with a bad body",
       http::verb::post,
       "/api/todos",
       "{",
       {{"Content-Type", "application/json"}, {"Authorization", "Bearer " + canary}},
       400},
      {"a token as the CSRF cookie",
       http::verb::post,
       "/todos",
       "csrf=" + canary,
       {{"Content-Type", "application/x-www-form-urlencoded"}, {"Cookie", "todo_csrf=" + canary}},
       403},
      {"a token as the CSRF field", http::verb::post, "/todos", "csrf=" + canary + "&description=x",
       form_headers(session), 403},
      {"a token in an unknown page", http::verb::get, "/" + canary, "", {}, 404},
      {"a token as the method's target", http::verb::delete_, "/?t=" + canary, "", {}, 405},
  };
  for (const auto& c : cases) {
    auto response = call(c.method, c.target, c.body, c.headers);
    EXPECT_EQ(response.result_int(), c.status) << c.what << ": " << response.body();
    expect_clean(response, c.what);
  }
}

TEST_F(NoSecrets, TheAppNeverShowsItsDatabasePassword) {
  start_backends();
  // A trust role ignores the password, so the app works with it; the leak check knows it (from
  // the command line) and looks for it in every answer and log line.
  const std::string password =
      "pw-" + test_support::jwt_signature(leaks::canary_token()).substr(0, 24);
  start_app_with({"--listen", "127.0.0.1:0", "--db-connection-string",
                  pg_->odbc_connection_string(kTrustRole, password), "--db-auth", "none",
                  "--db-pool-size", "2", "--drain-seconds", "0"});
  ASSERT_EQ(api(http::verb::post, "/api/todos", {{"description", "with a password"}}).result_int(),
            201);
  expect_clean(call(http::verb::get, "/"), "the list");

  // The database goes away: every error says so, none shows the connection string.
  ASSERT_EQ(pg_->psql("SELECT count(pg_terminate_backend(pid)) >= 0 FROM pg_stat_activity "
                      "WHERE usename = '" +
                      std::string(kTrustRole) + "'")
                .first,
            0);
  stop_database();
  for (const auto& [target, status] : std::vector<std::pair<std::string, int>>{
           {"/", 503}, {"/api/todos", 503}, {"/readyz", 503}}) {
    auto response = call(http::verb::get, target);
    EXPECT_EQ(response.result_int(), status) << target << ": " << response.body();
    expect_clean(response, target + " with the database down");
  }
  restart_database();
  EXPECT_TRUE(
      wait_until([&] { return call(http::verb::get, "/readyz").result_int() == 200; }, 20s));
  stop_app();

  // A password next to a token login is refused at start, without repeating it.
  for (const auto& [auth, connection] : std::vector<std::pair<std::string, std::string>>{
           {"password", pg_->odbc_connection_string(kRole, password)},
           {"access-token",
            "Driver={ODBC Driver 18 for SQL Server};Server=tcp:x.test,1433;Database=todo;PWD=" +
                password.substr(0, 20) + ";"}}) {
    auto [code, output] = test_support::run_and_capture(
        TB_TODO_APP_BIN, {"--listen", "127.0.0.1:0", "--db-connection-string", connection,
                          "--db-auth", auth, "--broker-socket", socket_path()});
    EXPECT_EQ(code, 2) << auth << ": " << output;
    EXPECT_NE(output.find("PWD"), std::string::npos) << output;
  }
}

}  // namespace
}  // namespace e2e
