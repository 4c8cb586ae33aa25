#include "todo/routes.hpp"

#include "memory_store.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace todo {
namespace {

namespace http = boost::beast::http;
using json = nlohmann::json;

class RoutesTest : public ::testing::Test {
 protected:
  test_fakes::MemoryStore store;
  Csrf csrf{std::string(32, 'k')};
  App app{store, csrf};

  Response send(http::verb method, std::string target, std::string body = {},
                std::string content_type = {},
                std::vector<std::pair<std::string, std::string>> headers = {}) {
    Request request{method, target, 11};
    request.set(http::field::host, "todo.test");
    if (!content_type.empty()) request.set(http::field::content_type, content_type);
    for (auto& [name, value] : headers) request.set(name, value);
    request.body() = std::move(body);
    request.prepare_payload();
    return app.handle(request);
  }
  Response api(http::verb method, std::string target, const json& body) {
    return send(method, std::move(target), body.dump(), "application/json");
  }
  static json body_of(const Response& response) { return json::parse(response.body()); }

  /// A browser session: the cookie from the first page, and the token that goes with it.
  std::pair<std::string, std::string> browser() {
    auto page = send(http::verb::get, "/");
    std::string set_cookie(page[http::field::set_cookie]);
    auto value = set_cookie.substr(set_cookie.find('=') + 1, 64);
    return {value, csrf.token_for(value)};
  }
  Response form(const std::string& target, const std::string& body, const std::string& cookie,
                std::vector<std::pair<std::string, std::string>> headers = {}) {
    headers.emplace_back("Cookie", "other=1; todo_csrf=" + cookie);
    return send(http::verb::post, target, body, "application/x-www-form-urlencoded", headers);
  }
};

TEST_F(RoutesTest, ApiCreatesListsReadsUpdatesAndDeletes) {
  auto created = api(http::verb::post, "/api/todos", {{"description", "Buy milk"}});
  ASSERT_EQ(created.result(), http::status::created) << created.body();
  EXPECT_EQ(created[http::field::location], "/api/todos/1");
  EXPECT_EQ(body_of(created)["description"], "Buy milk");
  EXPECT_EQ(body_of(created)["done"], false);

  auto list = send(http::verb::get, "/api/todos");
  ASSERT_EQ(list.result(), http::status::ok);
  EXPECT_EQ(body_of(list).size(), 1u);
  EXPECT_EQ(list[http::field::content_type], "application/json");

  auto patched = api(http::verb::patch, "/api/todos/1", {{"done", true}});
  ASSERT_EQ(patched.result(), http::status::ok) << patched.body();
  EXPECT_EQ(body_of(patched)["done"], true);
  EXPECT_EQ(body_of(patched)["description"], "Buy milk");

  auto put =
      api(http::verb::put, "/api/todos/1", {{"description", "Buy oat milk"}, {"done", false}});
  ASSERT_EQ(put.result(), http::status::ok) << put.body();
  EXPECT_EQ(body_of(send(http::verb::get, "/api/todos/1"))["description"], "Buy oat milk");

  EXPECT_EQ(send(http::verb::delete_, "/api/todos/1").result(), http::status::no_content);
  EXPECT_EQ(send(http::verb::get, "/api/todos/1").result(), http::status::not_found);
  EXPECT_EQ(send(http::verb::delete_, "/api/todos/1").result(), http::status::not_found);
}

TEST_F(RoutesTest, ApiValidationErrorsAre400WithAMessage) {
  struct Case {
    std::string body;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {R"({"description":""})", "must not be empty"},
      {json{{"description", std::string(4001, 'x')}}.dump(), "at most 4000"},
      {R"({"description":5})", "must be a string"},
      {R"({"description":"x","done":"yes"})", "true or false"},
      {R"({"description":"x","color":"red"})", "unknown field 'color'"},
      {R"({"done":true})", "description is required"},
      {R"(["x"])", "JSON object"},
      {R"({"description":)", "not valid JSON"},
      {"{\"description\":\"\xC3\"}", "not valid JSON"},
  };
  for (const auto& c : cases) {
    auto response = send(http::verb::post, "/api/todos", c.body, "application/json");
    EXPECT_EQ(response.result(), http::status::bad_request) << c.body;
    EXPECT_NE(body_of(response)["error_description"].get<std::string>().find(c.expect),
              std::string::npos)
        << c.body << " -> " << response.body();
  }
  auto put = api(http::verb::put, "/api/todos/1", {{"description", "x"}});
  EXPECT_EQ(put.result(), http::status::bad_request);
  EXPECT_EQ(api(http::verb::patch, "/api/todos/1", json::object()).result(),
            http::status::bad_request);
  EXPECT_TRUE(store.list()->empty());
}

TEST_F(RoutesTest, ApiRefusesOtherMediaTypesMethodsAndIds) {
  EXPECT_EQ(send(http::verb::post, "/api/todos", R"({"description":"x"})", "text/plain").result(),
            http::status::unsupported_media_type);
  auto wrong = send(http::verb::delete_, "/api/todos");
  EXPECT_EQ(wrong.result(), http::status::method_not_allowed);
  EXPECT_EQ(wrong[http::field::allow], "GET, POST");
  EXPECT_EQ(send(http::verb::post, "/api/todos/1").result(), http::status::method_not_allowed);
  EXPECT_EQ(send(http::verb::get, "/api/todos/abc").result(), http::status::not_found);
  EXPECT_EQ(send(http::verb::get, "/api/todos/0").result(), http::status::not_found);
  EXPECT_EQ(send(http::verb::get, "/api/nothing").result(), http::status::not_found);
}

TEST_F(RoutesTest, MetricsAreOnTheAdminPortAndTheUiIsNot) {
  EXPECT_EQ(send(http::verb::get, "/metrics").result(), http::status::not_found);
  const auto admin = [&](http::verb method, const char* target) {
    Request request{method, target, 11};
    return app.handle_admin(request);
  };
  const auto metrics = admin(http::verb::get, "/metrics");
  EXPECT_EQ(metrics.result(), http::status::ok);
  EXPECT_NE(metrics.body().find("todo_http_responses_total"), std::string::npos);
  EXPECT_EQ(admin(http::verb::get, "/healthz").result(), http::status::ok);
  EXPECT_EQ(admin(http::verb::get, "/readyz").result(), http::status::ok);
  EXPECT_EQ(admin(http::verb::get, "/").result(), http::status::not_found);
  EXPECT_EQ(admin(http::verb::get, "/api/todos").result(), http::status::not_found);
  EXPECT_EQ(admin(http::verb::post, "/readyz").result(), http::status::method_not_allowed);
}

TEST_F(RoutesTest, DrainingMakesReadyz503WhileEveryOtherRouteServes) {
  app.start_draining();
  auto ready = send(http::verb::get, "/readyz");
  EXPECT_EQ(ready.result(), http::status::service_unavailable);
  EXPECT_EQ(body_of(ready)["status"], "draining");
  EXPECT_EQ(body_of(ready)["error"], "shutting_down");
  EXPECT_FALSE(ready[http::field::retry_after].empty());
  EXPECT_EQ(send(http::verb::get, "/healthz").result(), http::status::ok);
  EXPECT_EQ(send(http::verb::get, "/api/todos").result(), http::status::ok);
  EXPECT_EQ(send(http::verb::get, "/").result(), http::status::ok);
}

TEST_F(RoutesTest, DatabaseOutageIs503WithTheReason) {
  store.failure = StoreError{StoreErrc::unavailable, "cannot reach the database: timeout"};
  auto list = send(http::verb::get, "/api/todos");
  EXPECT_EQ(list.result(), http::status::service_unavailable);
  EXPECT_EQ(list[http::field::retry_after], "5");
  EXPECT_EQ(body_of(list)["error"], "database_unavailable");

  // The public port says not ready and the code; the admin port also says why.
  auto ready = send(http::verb::get, "/readyz");
  EXPECT_EQ(ready.result(), http::status::service_unavailable);
  EXPECT_EQ(body_of(ready)["error"], "database_unavailable");
  EXPECT_EQ(ready.body().find("cannot reach the database"), std::string::npos) << ready.body();
  Request admin_ready{http::verb::get, "/readyz", 11};
  auto reasons = app.handle_admin(admin_ready);
  EXPECT_EQ(reasons.result(), http::status::service_unavailable);
  EXPECT_EQ(body_of(reasons)["error_description"], "cannot reach the database: timeout");
  EXPECT_EQ(send(http::verb::get, "/healthz").result(), http::status::ok);

  auto page = send(http::verb::get, "/");
  EXPECT_EQ(page.result(), http::status::service_unavailable);
  EXPECT_NE(page.body().find("class=\"banner\" role=\"alert\">cannot reach the database"),
            std::string::npos);

  store.failure.reset();
  EXPECT_EQ(send(http::verb::get, "/readyz").result(), http::status::ok);
  EXPECT_NE(app.metrics_text().find("todo_store_errors_total{kind=\"database_unavailable\"} 4"),
            std::string::npos)
      << app.metrics_text();
}

TEST_F(RoutesTest, EveryResponseCarriesTheSecurityHeaders) {
  for (const auto& response : {send(http::verb::get, "/"), send(http::verb::get, "/api/todos"),
                               send(http::verb::get, "/nowhere")}) {
    EXPECT_NE(std::string(response["Content-Security-Policy"]).find("default-src 'none'"),
              std::string::npos);
    EXPECT_EQ(response["X-Content-Type-Options"], "nosniff");
    EXPECT_EQ(response["Referrer-Policy"], "same-origin");
  }
  auto css = send(http::verb::get, "/static/app.css");
  EXPECT_EQ(css.result(), http::status::ok);
  EXPECT_EQ(css[http::field::content_type], "text/css; charset=utf-8");
}

TEST_F(RoutesTest, FirstPageSetsAStrictHttpOnlyCookie) {
  auto page = send(http::verb::get, "/");
  ASSERT_EQ(page.result(), http::status::ok);
  std::string cookie(page[http::field::set_cookie]);
  EXPECT_NE(cookie.find("todo_csrf="), std::string::npos);
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos);
  EXPECT_NE(cookie.find("SameSite=Strict"), std::string::npos);
  EXPECT_NE(page.body().find("Nothing to do yet"), std::string::npos);
}

TEST_F(RoutesTest, FormsWorkWithTheCsrfTokenOnly) {
  auto [cookie, token] = browser();
  auto created = form("/todos", "csrf=" + token + "&description=Buy+milk+%26+bread", cookie);
  ASSERT_EQ(created.result(), http::status::see_other) << created.body();
  EXPECT_EQ(created[http::field::location], "/");
  ASSERT_EQ(store.list()->size(), 1u);
  EXPECT_EQ(store.list()->front().description, "Buy milk & bread");

  // No token, a token for another cookie, no cookie, another site's Origin: all refused.
  EXPECT_EQ(form("/todos", "description=x", cookie).result(), http::status::forbidden);
  auto [other_cookie, other_token] = browser();
  EXPECT_EQ(form("/todos", "csrf=" + other_token + "&description=x", cookie).result(),
            http::status::forbidden);
  EXPECT_EQ(send(http::verb::post, "/todos", "csrf=" + token + "&description=x",
                 "application/x-www-form-urlencoded")
                .result(),
            http::status::forbidden);
  EXPECT_EQ(form("/todos", "csrf=" + token + "&description=x", cookie,
                 {{"Origin", "https://evil.example"}})
                .result(),
            http::status::forbidden);
  EXPECT_EQ(
      form("/todos", "csrf=" + token + "&description=y", cookie, {{"Origin", "http://todo.test"}})
          .result(),
      http::status::see_other);
  EXPECT_EQ(store.list()->size(), 2u);
}

TEST_F(RoutesTest, FormsEditToggleAndDeleteWithConfirmation) {
  auto [cookie, token] = browser();
  ASSERT_TRUE(store.create(NewTodo{"first", false}));
  auto edit = send(http::verb::get, "/todos/1/edit", {}, {}, {{"Cookie", "todo_csrf=" + cookie}});
  ASSERT_EQ(edit.result(), http::status::ok);
  EXPECT_NE(edit.body().find(token), std::string::npos);

  EXPECT_EQ(form("/todos/1", "csrf=" + token + "&description=changed&done=true", cookie).result(),
            http::status::see_other);
  EXPECT_EQ(store.get(1)->description, "changed");
  EXPECT_TRUE(store.get(1)->done);

  EXPECT_EQ(form("/todos/1/done", "csrf=" + token + "&done=false", cookie).result(),
            http::status::see_other);
  EXPECT_FALSE(store.get(1)->done);

  auto confirm =
      send(http::verb::get, "/todos/1/delete", {}, {}, {{"Cookie", "todo_csrf=" + cookie}});
  ASSERT_EQ(confirm.result(), http::status::ok);
  EXPECT_NE(confirm.body().find("Delete this item?"), std::string::npos);
  EXPECT_TRUE(store.get(1));
  EXPECT_EQ(form("/todos/1/delete", "csrf=" + token, cookie).result(), http::status::see_other);
  EXPECT_FALSE(store.get(1));
}

TEST_F(RoutesTest, FormValidationErrorKeepsTheDraftAndSays400) {
  auto [cookie, token] = browser();
  auto response = form("/todos", "csrf=" + token + "&description=+++", cookie);
  EXPECT_EQ(response.result(), http::status::bad_request);
  EXPECT_NE(response.body().find("must not be empty"), std::string::npos);
  auto too_long =
      form("/todos", "csrf=" + token + "&description=" + std::string(4001, 'a'), cookie);
  EXPECT_EQ(too_long.result(), http::status::bad_request);
  EXPECT_TRUE(store.list()->empty());
}

TEST_F(RoutesTest, ScriptInADescriptionIsShownAsText) {
  ASSERT_TRUE(store.create(NewTodo{"<script>alert(1)</script>", false}));
  auto page = send(http::verb::get, "/");
  EXPECT_EQ(page.body().find("<script>"), std::string::npos);
  EXPECT_NE(page.body().find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
}

TEST_F(RoutesTest, ErrorsRepeatTheCallersInputOnlyWhenShort) {
  // A typo is named; something long (a token pasted in the wrong place) is not repeated.
  auto typo = api(http::verb::post, "/api/todos", {{"description", "x"}, {"descripton", "y"}});
  EXPECT_EQ(typo.result(), http::status::bad_request);
  EXPECT_NE(body_of(typo)["error_description"].get<std::string>().find("'descripton'"),
            std::string::npos);
  const std::string long_text = "eyJ" + std::string(200, 'A') + ".eyJ" + std::string(200, 'B');
  auto field = api(http::verb::post, "/api/todos", {{"description", "x"}, {long_text, 1}});
  EXPECT_EQ(field.result(), http::status::bad_request);
  EXPECT_EQ(field.body().find("eyJ"), std::string::npos) << field.body();
  auto id = send(http::verb::get, "/api/todos/" + long_text);
  EXPECT_EQ(id.result(), http::status::not_found);
  EXPECT_EQ(id.body().find("eyJ"), std::string::npos) << id.body();
  EXPECT_NE(send(http::verb::get, "/api/todos/abc").body().find("'abc'"), std::string::npos);
}

TEST_F(RoutesTest, UnknownPagesAndMethods) {
  EXPECT_EQ(send(http::verb::get, "/todos/1/nothing").result(), http::status::not_found);
  auto wrong = send(http::verb::delete_, "/");
  EXPECT_EQ(wrong.result(), http::status::method_not_allowed);
  EXPECT_EQ(wrong[http::field::allow], "GET");
  EXPECT_EQ(send(http::verb::get, "/favicon.ico").result(), http::status::no_content);
  auto head = send(http::verb::head, "/healthz");
  EXPECT_EQ(head.result(), http::status::ok);
  EXPECT_TRUE(head.body().empty());
  EXPECT_NE(head[http::field::content_length], "0");
}

}  // namespace
}  // namespace todo
