// Pins what tokenctl sends to the broker and how it reports each kind of answer.
#include "tokenctl/broker.hpp"

#include <tb/log.hpp>

#include <gtest/gtest.h>
#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/system/errc.hpp>
#include <nlohmann/json.hpp>

#include <string>

namespace tokenctl {
namespace {

namespace http = boost::beast::http;
using std::chrono::seconds;

constexpr const char* kToken = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJzcWwifQ.c2lnbmF0dXJl";
constexpr const char* kSqlResource = "https://database.windows.net/";

Options get_options() {
  Options options;
  options.command = Command::get;
  options.resource = kSqlResource;
  options.socket = "/run/tb/broker.sock";
  return options;
}

Options health_options() {
  Options options;
  options.command = Command::health;
  options.socket = "/run/tb/broker.sock";
  return options;
}

tb::http::Response response(http::status status, std::string body) {
  tb::http::Response out{status, 11};
  out.set(http::field::content_type, "application/json");
  out.body() = std::move(body);
  out.prepare_payload();
  return out;
}

std::string token_body() {
  return nlohmann::json{{"access_token", kToken},
                        {"token_type", "Bearer"},
                        {"expires_on", 1795996799},
                        {"expires_in", 3598},
                        {"resource", kSqlResource}}
      .dump();
}

TEST(TokenctlRequest, TokenTargetPercentEncodesTheResource) {
  EXPECT_EQ(token_target(get_options()),
            "/v1/token?resource=https%3A%2F%2Fdatabase.windows.net%2F&timeout=9");
}

TEST(TokenctlRequest, TokenTargetCarriesOneIdentityAndMinValidity) {
  Options options = get_options();
  options.resource = "api://my app?x=1&y=2#frag";
  options.identity = {IdentityKind::mi_res_id,
                      "/subscriptions/s/resourceGroups/g/providers/"
                      "Microsoft.ManagedIdentity/userAssignedIdentities/id+1"};
  options.min_validity = seconds(300);
  options.timeout = seconds(30);
  EXPECT_EQ(token_target(options),
            "/v1/token?resource=api%3A%2F%2Fmy%20app%3Fx%3D1%26y%3D2%23frag"
            "&mi_res_id=%2Fsubscriptions%2Fs%2FresourceGroups%2Fg%2Fproviders%2F"
            "Microsoft.ManagedIdentity%2FuserAssignedIdentities%2Fid%2B1"
            "&min_validity=300&timeout=29");
  options.identity = {IdentityKind::client_id, "1b2c-3d"};
  options.min_validity.reset();
  EXPECT_EQ(token_target(options),
            "/v1/token?resource=api%3A%2F%2Fmy%20app%3Fx%3D1%26y%3D2%23frag&client_id=1b2c-3d"
            "&timeout=29");
  options.identity = {IdentityKind::object_id, "o"};
  EXPECT_NE(token_target(options).find("&object_id=o&"), std::string::npos);
}

TEST(TokenctlRequest, BrokerGetsOneSecondLessThanTheClientDeadline) {
  Options options = get_options();
  options.timeout = seconds(1);
  EXPECT_EQ(broker_timeout_seconds(options), 1);
  EXPECT_EQ(build_limits(options).timeout, std::chrono::milliseconds(1000));
  options.timeout = seconds(10);
  EXPECT_EQ(broker_timeout_seconds(options), 9);
  EXPECT_EQ(build_limits(options).timeout, std::chrono::milliseconds(10'000));
}

TEST(TokenctlRequest, RequestsAreGetsAskingForJson) {
  auto get = build_request(get_options());
  EXPECT_EQ(get.method, http::verb::get);
  EXPECT_EQ(get.target, token_target(get_options()));
  ASSERT_EQ(get.headers.size(), 1u);
  EXPECT_EQ(get.headers[0].first, "Accept");
  EXPECT_EQ(get.headers[0].second, "application/json");
  EXPECT_EQ(build_request(health_options()).target, "/readyz");
}

TEST(TokenctlFormat, DurationsAndTimes) {
  EXPECT_EQ(format_duration(3598), "59m 58s");
  EXPECT_EQ(format_duration(45), "45s");
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(3600), "1h 0m 0s");
  EXPECT_EQ(format_duration(7322), "2h 2m 2s");
  EXPECT_EQ(format_duration(-1), "expired");
  EXPECT_EQ(format_utc(1795996799), "2026-11-29T23:59:59Z");
  EXPECT_EQ(format_utc(0), "1970-01-01T00:00:00Z");
}

TEST(TokenctlFormat, PrintableEscapesControlCharactersAndCuts) {
  EXPECT_EQ(printable("ok\x1b[31m\n"), "ok\\x1b[31m\\x0a");
  EXPECT_EQ(printable("abcdef", 3), "abc…");
  EXPECT_EQ(printable("aé", 2), "a…");  // never half a UTF-8 character
}

TEST(TokenctlGet, HumanOutputShowsExpiryAndFingerprintButNeverTheToken) {
  auto outcome = interpret(get_options(), response(http::status::ok, token_body()));
  EXPECT_EQ(outcome.exit_code, kExitOk);
  EXPECT_EQ(outcome.err, "");
  EXPECT_EQ(outcome.out,
            "resource: https://database.windows.net/\n"
            "expires_on: 2026-11-29T23:59:59Z (unix 1795996799)\n"
            "expires_in: 59m 58s\n"
            "token_type: Bearer\n"
            "token_sha256: " +
                tb::log::fingerprint(kToken) + "\n");
  EXPECT_EQ(tb::log::fingerprint(kToken).size(), 12u);
  EXPECT_EQ(outcome.out.find(kToken), std::string::npos);
}

TEST(TokenctlGet, ShowTokenPrintsOnlyTheToken) {
  Options options = get_options();
  options.show_token = true;
  auto outcome = interpret(options, response(http::status::ok, token_body()));
  EXPECT_EQ(outcome.exit_code, kExitOk);
  EXPECT_EQ(outcome.out, std::string(kToken) + "\n");
}

TEST(TokenctlGet, JsonDropsTheTokenUnlessShowTokenIsGiven) {
  Options options = get_options();
  options.json = true;
  auto hidden = interpret(options, response(http::status::ok, token_body()));
  EXPECT_EQ(hidden.exit_code, kExitOk);
  ASSERT_EQ(hidden.out.back(), '\n');
  auto parsed = nlohmann::json::parse(hidden.out);
  EXPECT_FALSE(parsed.contains("access_token"));
  EXPECT_EQ(parsed["expires_on"], 1795996799);
  EXPECT_EQ(parsed["resource"], kSqlResource);
  EXPECT_EQ(hidden.out.find(kToken), std::string::npos);

  options.show_token = true;
  auto shown = interpret(options, response(http::status::ok, token_body()));
  EXPECT_EQ(nlohmann::json::parse(shown.out)["access_token"], kToken);
}

TEST(TokenctlGet, MalformedAnswersAreErrorsThatSayWhatIsMissing) {
  struct Case {
    std::string body;
    std::string what;
  };
  auto without = [](const char* field) {
    auto body = nlohmann::json::parse(token_body());
    body.erase(field);
    return body.dump();
  };
  for (const auto& [body, what] : std::initializer_list<Case>{
           {"{not json", "the body is not a JSON object"},
           {"[1,2]", "the body is not a JSON object"},
           {"", "the body is not a JSON object"},
           {without("access_token"), "no \"access_token\" string"},
           {without("expires_on"), "no numeric \"expires_on\""},
           {R"({"access_token":"t","token_type":"Bearer","resource":"R","expires_on":"1",)"
            R"("expires_in":1})",
            "no numeric \"expires_on\""},
           {without("expires_in"), "no numeric \"expires_in\""},
           {without("token_type"), "no \"token_type\" string"},
           {without("resource"), "no \"resource\" string"}}) {
    auto outcome = interpret(get_options(), response(http::status::ok, body));
    EXPECT_EQ(outcome.exit_code, kExitError) << body;
    EXPECT_EQ(outcome.out, "");
    EXPECT_EQ(outcome.err, "tokenctl: malformed answer from the broker: " + what +
                               " — is /run/tb/broker.sock a token-broker socket?\n")
        << body;
  }
}

TEST(TokenctlGet, ServiceUnavailableNamesErrorDescriptionAndRetryAfter) {
  auto answer =
      response(http::status::service_unavailable,
               R"({"error":"upstream_unavailable",)"
               R"j("error_description":"IMDS answered 404 (identity not assigned yet)"})j");
  answer.set(http::field::retry_after, "5");
  auto outcome = interpret(get_options(), answer);
  EXPECT_EQ(outcome.exit_code, kExitError);
  EXPECT_EQ(outcome.out, "");
  EXPECT_EQ(outcome.err,
            "tokenctl: broker answered 503: upstream_unavailable: IMDS answered 404 (identity "
            "not assigned yet) (retry after 5 s)\n");
}

TEST(TokenctlGet, OtherErrorStatusesAddAHint) {
  auto forbidden = interpret(
      get_options(),
      response(http::status::forbidden, R"({"error":"forbidden","error_description":"uid 1000"})"));
  EXPECT_EQ(forbidden.exit_code, kExitError);
  EXPECT_EQ(forbidden.err.rfind("tokenctl: broker answered 403: forbidden: uid 1000 — the broker "
                                "refused this caller or identity",
                                0),
            0u)
      << forbidden.err;
  auto not_found = interpret(get_options(), response(http::status::not_found, "no such page\x07"));
  EXPECT_EQ(not_found.err,
            "tokenctl: broker answered 404: no such page\\x07 — is /run/tb/broker.sock a "
            "token-broker socket?\n");
  auto bad_request =
      interpret(get_options(), response(http::status::bad_request, R"({"error":"bad_request"})"));
  EXPECT_EQ(bad_request.err, "tokenctl: broker answered 400: bad_request\n");
}

TEST(TokenctlTransport, ConnectionFailuresSayWhereAndWhatToDo) {
  for (auto code :
       {boost::system::errc::connection_refused, boost::system::errc::no_such_file_or_directory}) {
    auto ec = boost::system::errc::make_error_code(code);
    auto outcome = interpret(get_options(), ec);
    EXPECT_EQ(outcome.exit_code, kExitError);
    EXPECT_EQ(outcome.out, "");
    EXPECT_EQ(outcome.err, "tokenctl: cannot connect to /run/tb/broker.sock: " + ec.message() +
                               " — is token-broker running? (set --socket or "
                               "TOKEN_BROKER_SOCKET)\n");
  }
  // Asio's own enumerators compare equal to the portable conditions.
  EXPECT_EQ(describe_transport_error(get_options(), boost::asio::error::connection_refused)
                .rfind("cannot connect to /run/tb/broker.sock: Connection refused — is", 0),
            0u);
  auto denied = describe_transport_error(get_options(),
                                         make_error_code(boost::system::errc::permission_denied));
  EXPECT_NE(denied.find("Permission denied — run tokenctl as a user the broker allows"),
            std::string::npos);
}

TEST(TokenctlTransport, TimeoutsAndBrokenAnswersAreExplained) {
  Options options = health_options();
  options.timeout = seconds(7);
  EXPECT_EQ(interpret(options, boost::beast::error::timeout).err,
            "tokenctl: timed out after 7 s waiting for the broker — raise --timeout or check the "
            "broker's logs\n");
  EXPECT_EQ(
      describe_transport_error(options, boost::beast::http::error::end_of_stream)
          .rfind("the broker at /run/tb/broker.sock closed the connection without answering", 0),
      0u);
  EXPECT_EQ(describe_transport_error(options, boost::beast::http::error::bad_version)
                .rfind("the answer from /run/tb/broker.sock is not valid HTTP", 0),
            0u);
  EXPECT_EQ(describe_transport_error(options, boost::beast::http::error::body_limit),
            "the answer from /run/tb/broker.sock is larger than 1 MiB — is /run/tb/broker.sock a "
            "token-broker socket?");
}

TEST(TokenctlHealth, ReadyNotReadyAndErrors) {
  auto ready = interpret(health_options(), response(http::status::ok, R"({"status":"ready"})"));
  EXPECT_EQ(ready.exit_code, kExitOk);
  EXPECT_EQ(ready.out, "ready\n");

  auto missing = interpret(health_options(),
                           response(http::status::service_unavailable,
                                    R"({"status":"not_ready","missing":["R1","https://x/"]})"));
  EXPECT_EQ(missing.exit_code, kExitError);
  EXPECT_EQ(missing.out, "not ready: no token yet for R1, https://x/\n");
  EXPECT_EQ(missing.err, "");

  auto described = interpret(
      health_options(), response(http::status::service_unavailable,
                                 R"({"status":"not_ready","error_description":"shutting down"})"));
  EXPECT_EQ(described.out, "not ready: shutting down\n");
  auto bare = interpret(health_options(), response(http::status::service_unavailable, "x"));
  EXPECT_EQ(bare.out, "not ready: the broker answered 503\n");

  auto wrong = interpret(health_options(), response(http::status::not_found, ""));
  EXPECT_EQ(wrong.exit_code, kExitError);
  EXPECT_EQ(wrong.out, "");
  EXPECT_EQ(wrong.err,
            "tokenctl: broker answered 404 — is /run/tb/broker.sock a token-broker socket?\n");
}

}  // namespace
}  // namespace tokenctl
