#pragma once
// The whole pod as real processes on loopback: imds-emulator (Entra stand-in) -> token-broker
// (Unix socket) -> todo-app -> PostgreSQL, whose login accepts only a currently valid token from
// the emulator (pam_token_broker.so + pg-token-verifier), as Azure Database for PostgreSQL does.
// Every process's output, the verifier's log and the server's log are checked for secrets when
// the test ends (tests/support/leak_check.hpp).

#include "fixture.hpp"
#include "leak_check.hpp"
#include "pg_cluster.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace e2e {

using namespace std::chrono_literals;
using integration::json;
using test_support::Process;
using test_support::read_file;
using test_support::wait_until;
namespace http = boost::beast::http;
using Headers = std::vector<std::pair<std::string, std::string>>;

inline constexpr const char* kOssrdbms = "https://ossrdbms-aad.database.windows.net";
inline constexpr const char* kAppClientId = "11111111-1111-4111-8111-111111111111";
inline constexpr const char* kAppObjectId = "22222222-2222-4222-8222-222222222222";
inline constexpr const char* kStrangerClientId = "33333333-3333-4333-8333-333333333333";
inline constexpr const char* kRole = "todo_app";
/// A role that logs in without a token (trust), for apps started with --db-auth none.
inline constexpr const char* kTrustRole = "todo_trust";

class TodoPod : public integration::BrokerWithEmulator {
 protected:
  /// Emulator (tokens living `lifetime_s`), broker, PostgreSQL with the token check.
  void start_backends(int lifetime_s = 3600) {
    start_emulator({"--identity",
                    std::string("client_id=") + kAppClientId + ",object_id=" + kAppObjectId,
                    "--identity", std::string("client_id=") + kStrangerClientId, "--lifetime",
                    std::to_string(lifetime_s), "--public-key-out", dir_.file("emulator-key.pem")});
    // The audit log on: every e2e flow's token hand-outs go through the leak check too.
    start_broker({"--prefetch", kOssrdbms, "--min-validity", "3", "--audit-log", "true"});
    write_verifier_config();
    pg_ = std::make_unique<test_support::PgCluster>(
        dir_.file("pg"),
        test_support::PgCluster::Options{
            {kTrustRole}, {kRole}, dir_.file("verifier.json"), TB_PAM_MODULE, TB_PG_VERIFIER});
    ASSERT_EQ(pg_->psql("GRANT ALL ON SCHEMA public TO " + std::string(kRole)).first, 0);
    // Written by the verifier (run by PostgreSQL) and the server: not outputs of our children.
    db_logs_ = {
        test_support::leaks::watch_output(dir_.file("verifier.log"), "pg-token-verifier log"),
        test_support::leaks::watch_output(pg_->server_log(), "PostgreSQL server log")};
  }

  void write_verifier_config() {
    json config = {{"public_key", dir_.file("emulator-key.pem")},
                   {"audience", kOssrdbms},
                   {"log", dir_.file("verifier.log")},
                   {"roles", {{kRole, {kAppObjectId}}}}};
    if (!revoked_file_.empty()) config["revoked"] = revoked_file_;
    std::ofstream(dir_.file("verifier.json")) << config.dump(2);
  }

  /// The app logging in as kRole with broker tokens; `extra` flags win.
  std::vector<std::string> app_args(const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> args = {"--listen", "127.0.0.1:0", "--db-connection-string",
                                     pg_->odbc_connection_string(kRole), "--db-auth", "password",
                                     "--db-token-resource", kOssrdbms, "--broker-socket",
                                     socket_path(), "--db-pool-size", "2", "--db-token-margin", "5",
                                     // Tests stop the app at once (the drain is tested on
                                     // its own, todo_pod_test.cpp).
                                     "--drain-seconds", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  void start_app(const std::vector<std::string>& extra = {}) { start_app_with(app_args(extra)); }

  /// Starts todo-app with `args`; its admin listener on a free loopback port unless `args`
  /// say otherwise (app_admin_port_, empty when off).
  void start_app_with(std::vector<std::string> args) {
    if (std::find(args.begin(), args.end(), "--admin-listen") == args.end()) {
      args.insert(args.end(), {"--admin-listen", "127.0.0.1:0"});
    }
    app_log_index_++;
    const std::string log = dir_.file("app" + std::to_string(app_log_index_) + ".log");
    app_ = std::make_unique<Process>(TB_TODO_APP_BIN, args, Process::Options{{}, log, {}});
    app_log_ = log;
    static const std::regex kUrl(R"re("url":"http://127\.0\.0\.1:(\d+)/")re");
    static const std::regex kAdmin(R"re("admin":"(?:http://127\.0\.0\.1:(\d+)/|off)")re");
    ASSERT_TRUE(wait_until(
        [&] {
          const auto text = read_file(log);
          std::smatch url;
          std::smatch admin;
          if (!std::regex_search(text, url, kUrl) || !std::regex_search(text, admin, kAdmin)) {
            return false;
          }
          app_port_ = url[1];
          app_admin_port_ = admin[1];
          return true;
        },
        15s))
        << "todo-app did not start:\n"
        << read_file(log);
  }

  void stop_app() {
    ASSERT_TRUE(app_);
    // Within its drain period and grace (the tests' apps have no drain period).
    EXPECT_EQ(app_->stop(20s), 0) << "todo-app should exit 0 on SIGTERM";
    app_.reset();
  }

  std::string app_log() const { return read_file(app_log_); }

  tb::http::Response call(http::verb method, const std::string& target, std::string body = {},
                          Headers headers = {}) {
    tb::http::Request request{method, target, std::move(headers), std::move(body), "127.0.0.1"};
    auto response =
        tb::http::request_tcp("127.0.0.1", app_port_, std::move(request), {.timeout = 30s});
    if (!response) {
      ADD_FAILURE() << "request " << target << " failed: " << response.error().message();
      return {};
    }
    return *response;
  }
  /// GET on the app's admin listener.
  tb::http::Response admin_get(const std::string& target) {
    tb::http::Request request{http::verb::get, target, {}, {}, "127.0.0.1"};
    auto response =
        tb::http::request_tcp("127.0.0.1", app_admin_port_, std::move(request), {.timeout = 30s});
    if (!response) {
      ADD_FAILURE() << "admin request " << target << " failed: " << response.error().message();
      return {};
    }
    return *response;
  }
  tb::http::Response api(http::verb method, const std::string& target, const json& body) {
    return call(method, target, body.dump(), {{"Content-Type", "application/json"}});
  }
  /// The items, as the JSON API lists them.
  json items() {
    auto response = call(http::verb::get, "/api/todos");
    EXPECT_EQ(response.result_int(), 200) << response.body();
    return json::parse(response.body(), nullptr, false);
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

  /// scripts/pg-cluster stop / start on the same port, with the same roles.
  void stop_database() {
    auto [code, output] =
        test_support::run_and_capture(test_support::PgCluster::script(), {"stop", pg_->dir()});
    ASSERT_EQ(code, 0) << output;
  }
  void restart_database() {
    auto [code, output] = test_support::run_and_capture(
        test_support::PgCluster::script(),
        {"start", pg_->dir(), "--port", std::to_string(pg_->port()), "--trust-role", kTrustRole,
         "--pam-role", kRole, "--verifier-config", dir_.file("verifier.json"), "--pam-module",
         TB_PAM_MODULE, "--verifier", TB_PG_VERIFIER},
        {}, 120s);
    ASSERT_EQ(code, 0) << output;
  }

  void TearDown() override {
    // The token the app logs in with right now (the broker's cached one), so that the leak check
    // looks for it exactly; older ones are caught by their shape.
    if (pg_ && broker_ && broker_->running()) {
      get(std::string("/v1/token?resource=") + kOssrdbms + "&timeout=2");
      get(std::string("/v1/token?resource=") + kOssrdbms + "&client_id=" + kAppClientId +
          "&timeout=2");
    }
    if (app_) app_->stop();
    pg_.reset();
    for (int handle : db_logs_) test_support::leaks::finished(handle);
    BrokerWithEmulator::TearDown();
  }

  std::unique_ptr<test_support::PgCluster> pg_;
  std::string revoked_file_;  ///< the verifier's revocation list, when set
  std::vector<int> db_logs_;  ///< leak-check handles of the verifier's and the server's logs
  std::unique_ptr<Process> app_;
  std::string app_port_;
  std::string app_admin_port_;
  std::string app_log_;
  int app_log_index_ = 0;
};

/// The browser-side of a form: the CSRF cookie from a page and the token in its forms.
struct FormSession {
  std::string cookie;  ///< "todo_csrf=…"
  std::string token;
};

inline FormSession form_session(const tb::http::Response& page) {
  FormSession session;
  std::string set_cookie(page[http::field::set_cookie]);
  session.cookie = set_cookie.substr(0, set_cookie.find(';'));
  std::smatch match;
  static const std::regex kToken(R"re(name="csrf" value="([0-9a-f]{64})")re");
  const std::string body = page.body();
  if (std::regex_search(body, match, kToken)) session.token = match[1];
  return session;
}

inline Headers form_headers(const FormSession& session) {
  return {{"Content-Type", "application/x-www-form-urlencoded"}, {"Cookie", session.cookie}};
}

/// Percent-encodes every byte but unreserved ones, as a form does.
inline std::string form_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

/// The text of an HTML fragment with the five entities html_escape writes decoded.
inline std::string html_unescape(std::string text) {
  static const std::vector<std::pair<std::string, std::string>> kEntities = {
      {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&amp;", "&"}};
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    bool replaced = false;
    for (const auto& [entity, plain] : kEntities) {
      if (text.compare(i, entity.size(), entity) == 0) {
        out += plain;
        i += entity.size();
        replaced = true;
        break;
      }
    }
    if (!replaced) out += text[i++];
  }
  return out;
}

/// The descriptions on a list page, decoded.
inline std::vector<std::string> page_descriptions(const std::string& html) {
  std::vector<std::string> out;
  static const std::regex kSpan(R"re(<span class="description">([^<]*)</span>)re");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), kSpan);
       it != std::sregex_iterator(); ++it) {
    out.push_back(html_unescape((*it)[1]));
  }
  return out;
}

}  // namespace e2e
