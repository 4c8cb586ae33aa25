#include "broker/api.hpp"

#include "tb/log.hpp"

#include <gtest/gtest.h>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>

#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace broker {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const ApiOptions kOptions{Identity{}, 60s, 10'000ms};

Request get(std::string_view target, bool metadata = false) {
  Request request{http::verb::get, target, 11};
  if (metadata) request.set("Metadata", "true");
  return request;
}

TokenQuery expect_query(const std::variant<TokenQuery, HttpError>& outcome) {
  if (const auto* error = std::get_if<HttpError>(&outcome)) {
    ADD_FAILURE() << "expected a query, got " << error->status << " " << error->description;
    return {};
  }
  return std::get<TokenQuery>(outcome);
}

HttpError expect_bad_request(const std::variant<TokenQuery, HttpError>& outcome) {
  if (std::holds_alternative<TokenQuery>(outcome)) {
    ADD_FAILURE() << "expected a 400, got a query";
    return {};
  }
  const auto& error = std::get<HttpError>(outcome);
  EXPECT_EQ(error.status, 400u);
  EXPECT_EQ(error.error, "invalid_request");
  EXPECT_FALSE(error.description.empty());
  EXPECT_EQ(error.retry_after, 0s);
  return error;
}

void expect_mentions(const HttpError& error, std::string_view word) {
  EXPECT_NE(error.description.find(word), std::string::npos)
      << "'" << error.description << "' does not mention " << word;
}

// ---- parse_token_request: the /v1 route ----

TEST(ParseTokenRequest, V1DecodesThePercentEncodedResourceAndUsesTheDefaults) {
  const auto query = expect_query(parse_token_request(
      get("/v1/token?resource=https%3A%2F%2Fdatabase.windows.net%2F"), kOptions));
  EXPECT_EQ(query.key.resource, "https://database.windows.net/");
  EXPECT_EQ(query.key.identity, Identity{});
  EXPECT_EQ(query.min_validity, 60s);
  EXPECT_EQ(query.wait, 10'000ms);
  EXPECT_EQ(query.shape, Shape::v1);
}

TEST(ParseTokenRequest, WatchTakesIncludeTokenAndOnlyThere) {
  const auto plain = expect_query(parse_token_request(get("/v1/token/watch?resource=R"), kOptions));
  EXPECT_FALSE(plain.include_token);
  EXPECT_EQ(plain.key.resource, "R");
  EXPECT_TRUE(
      expect_query(parse_token_request(
                       get("/v1/token/watch?resource=R&include_token=true&client_id=C"), kOptions))
          .include_token);
  expect_mentions(expect_bad_request(parse_token_request(
                      get("/v1/token/watch?resource=R&include_token=1"), kOptions)),
                  "include_token");
  expect_mentions(
      expect_bad_request(parse_token_request(
          get("/v1/token/watch?resource=R&include_token=true&include_token=false"), kOptions)),
      "include_token");
  expect_mentions(expect_bad_request(parse_token_request(
                      get("/v1/token?resource=R&include_token=true"), kOptions)),
                  "include_token");
}

TEST(ParseTokenRequest, V1AcceptsAnUnencodedResourceUrl) {
  const auto query = expect_query(
      parse_token_request(get("/v1/token?resource=https://vault.azure.net"), kOptions));
  EXPECT_EQ(query.key.resource, "https://vault.azure.net");
}

TEST(ParseTokenRequest, EncodedPlusInTheResourceStaysAPlus) {
  const auto query =
      expect_query(parse_token_request(get("/v1/token?resource=api%3A%2F%2Fa%2Bb"), kOptions));
  EXPECT_EQ(query.key.resource, "api://a+b");
}

TEST(ParseTokenRequest, RequestWithoutIdentityGetsTheConfiguredDefaultIdentity) {
  const ApiOptions options{Identity{Identity::Kind::client_id, "default-cid"}, 60s, 10'000ms};
  const auto query = expect_query(parse_token_request(get("/v1/token?resource=r"), options));
  EXPECT_EQ(query.key.identity, (Identity{Identity::Kind::client_id, "default-cid"}));
}

TEST(ParseTokenRequest, EachIdentityParameterSelectsItsKind) {
  const std::vector<std::pair<std::string, Identity::Kind>> cases = {
      {"client_id", Identity::Kind::client_id},    {"object_id", Identity::Kind::object_id},
      {"principal_id", Identity::Kind::object_id}, {"mi_res_id", Identity::Kind::mi_res_id},
      {"msi_res_id", Identity::Kind::mi_res_id},
  };
  for (const auto& [param, kind] : cases) {
    SCOPED_TRACE(param);
    const auto query = expect_query(
        parse_token_request(get("/v1/token?resource=r&" + param + "=abc-123"), kOptions));
    EXPECT_EQ(query.key.identity, (Identity{kind, "abc-123"}));
  }
}

TEST(ParseTokenRequest, IdentityParameterOverridesTheDefaultIdentity) {
  const ApiOptions options{Identity{Identity::Kind::client_id, "default-cid"}, 60s, 10'000ms};
  const auto query =
      expect_query(parse_token_request(get("/v1/token?resource=r&object_id=oid"), options));
  EXPECT_EQ(query.key.identity, (Identity{Identity::Kind::object_id, "oid"}));
}

TEST(ParseTokenRequest, ResourceIdIdentityIsPercentDecoded) {
  const auto query = expect_query(parse_token_request(
      get("/v1/token?resource=r&mi_res_id=%2Fsubscriptions%2Fs%2FresourceGroups%2Frg"), kOptions));
  EXPECT_EQ(query.key.identity,
            (Identity{Identity::Kind::mi_res_id, "/subscriptions/s/resourceGroups/rg"}));
}

TEST(ParseTokenRequest, TwoIdentitiesAreABadRequest) {
  for (const char* target : {"/v1/token?resource=r&client_id=a&object_id=b",
                             "/v1/token?resource=r&client_id=a&client_id=a",
                             "/v1/token?resource=r&mi_res_id=a&msi_res_id=a"}) {
    SCOPED_TRACE(target);
    expect_mentions(expect_bad_request(parse_token_request(get(target), kOptions)), "identity");
  }
}

TEST(ParseTokenRequest, EmptyOrControlCharacterIdentityIsABadRequest) {
  for (const char* target : {"/v1/token?resource=r&client_id=", "/v1/token?resource=r&client_id",
                             "/v1/token?resource=r&object_id=a%0Ab"}) {
    SCOPED_TRACE(target);
    expect_bad_request(parse_token_request(get(target), kOptions));
  }
}

TEST(ParseTokenRequest, MissingResourceIsABadRequestNamingIt) {
  for (const char* target : {"/v1/token", "/v1/token?", "/v1/token?client_id=a"}) {
    SCOPED_TRACE(target);
    expect_mentions(expect_bad_request(parse_token_request(get(target), kOptions)), "resource");
  }
}

TEST(ParseTokenRequest, EmptyResourceIsABadRequest) {
  for (const char* target : {"/v1/token?resource=", "/v1/token?resource"}) {
    SCOPED_TRACE(target);
    expect_mentions(expect_bad_request(parse_token_request(get(target), kOptions)), "resource");
  }
}

TEST(ParseTokenRequest, DuplicateResourceIsABadRequest) {
  expect_mentions(expect_bad_request(parse_token_request(
                      get("/v1/token?resource=https://a/&resource=https://b/"), kOptions)),
                  "more than once");
}

TEST(ParseTokenRequest, ResourceWithControlCharactersOrTooLongIsABadRequest) {
  expect_bad_request(parse_token_request(get("/v1/token?resource=a%0D%0Ab"), kOptions));
  expect_bad_request(
      parse_token_request(get("/v1/token?resource=" + std::string(1025, 'r')), kOptions));
}

TEST(ParseTokenRequest, UnknownParameterOnV1IsABadRequestNamingIt) {
  expect_mentions(
      expect_bad_request(parse_token_request(get("/v1/token?resource=r&clientid=x"), kOptions)),
      "'clientid'");
}

TEST(ParseTokenRequest, MalformedPercentEncodingIsABadRequest) {
  expect_bad_request(parse_token_request(get("/v1/token?resource=%zz"), kOptions));
}

// ---- parse_token_request: the IMDS route ----

TEST(ParseTokenRequest, ImdsRouteWithMetadataHeaderAndApiVersionAnswersInImdsShape) {
  const auto query = expect_query(parse_token_request(
      get("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fr%2F"
          "&client_id=cid",
          true),
      kOptions));
  EXPECT_EQ(query.shape, Shape::imds);
  EXPECT_EQ(query.key.resource, "https://r/");
  EXPECT_EQ(query.key.identity, (Identity{Identity::Kind::client_id, "cid"}));
}

TEST(ParseTokenRequest, ImdsRouteIgnoresUnknownParametersAsImdsDoes) {
  const auto query = expect_query(parse_token_request(
      get("/metadata/identity/oauth2/token?api-version=2019-08-01&resource=r&bypass_cache=true",
          true),
      kOptions));
  EXPECT_EQ(query.key.resource, "r");
}

TEST(ParseTokenRequest, ImdsRouteWithoutMetadataHeaderIsABadRequest) {
  expect_mentions(
      expect_bad_request(parse_token_request(
          get("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=r"), kOptions)),
      "Metadata");
}

TEST(ParseTokenRequest, ImdsRouteWithMetadataOtherThanTrueIsABadRequest) {
  Request request = get("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=r");
  request.set("Metadata", "false");
  expect_bad_request(parse_token_request(request, kOptions));
}

TEST(ParseTokenRequest, ImdsRouteMetadataHeaderValueIsCaseInsensitive) {
  Request request = get("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=r");
  request.set("metadata", "True");
  expect_query(parse_token_request(request, kOptions));
}

TEST(ParseTokenRequest, ImdsRouteWithoutApiVersionIsABadRequest) {
  expect_mentions(expect_bad_request(parse_token_request(
                      get("/metadata/identity/oauth2/token?resource=r", true), kOptions)),
                  "api-version");
}

// ---- min_validity and timeout ----

TEST(ParseTokenRequest, MinValidityCanRaiseTheDefault) {
  const auto query =
      expect_query(parse_token_request(get("/v1/token?resource=r&min_validity=600"), kOptions));
  EXPECT_EQ(query.min_validity, 600s);
}

TEST(ParseTokenRequest, MinValidityCannotLowerTheDefault) {
  for (const char* value : {"0", "10", "59"}) {
    const auto query = expect_query(parse_token_request(
        get(std::string("/v1/token?resource=r&min_validity=") + value), kOptions));
    EXPECT_EQ(query.min_validity, 60s) << value;
  }
}

TEST(ParseTokenRequest, BadMinValidityIsABadRequest) {
  for (const char* value : {"abc", "-1", "1.5", "", "86401", "99999999999999999999", "60s"}) {
    SCOPED_TRACE(value);
    expect_mentions(expect_bad_request(parse_token_request(
                        get(std::string("/v1/token?resource=r&min_validity=") + value), kOptions)),
                    "min_validity");
  }
}

TEST(ParseTokenRequest, DuplicateMinValidityIsABadRequest) {
  expect_bad_request(
      parse_token_request(get("/v1/token?resource=r&min_validity=90&min_validity=600"), kOptions));
}

TEST(ParseTokenRequest, TimeoutLowersTheWait) {
  EXPECT_EQ(expect_query(parse_token_request(get("/v1/token?resource=r&timeout=2"), kOptions)).wait,
            2000ms);
  EXPECT_EQ(
      expect_query(parse_token_request(get("/v1/token?resource=r&timeout=0.25"), kOptions)).wait,
      250ms);
  // Tiny but positive timeouts still wait at least a millisecond.
  EXPECT_EQ(
      expect_query(parse_token_request(get("/v1/token?resource=r&timeout=0.0001"), kOptions)).wait,
      1ms);
}

TEST(ParseTokenRequest, TimeoutCannotRaiseTheWaitAboveTheMaximum) {
  for (const char* value : {"10", "11", "3600", "1e9"}) {
    const auto query = expect_query(
        parse_token_request(get(std::string("/v1/token?resource=r&timeout=") + value), kOptions));
    EXPECT_EQ(query.wait, 10'000ms) << value;
  }
}

TEST(ParseTokenRequest, BadTimeoutIsABadRequest) {
  for (const char* value : {"0", "-1", "abc", "nan", "NaN", "inf", "-inf", "", "1e999", "5s"}) {
    SCOPED_TRACE(value);
    expect_mentions(expect_bad_request(parse_token_request(
                        get(std::string("/v1/token?resource=r&timeout=") + value), kOptions)),
                    "timeout");
  }
}

// ---- token_body ----

const SteadyTime kNow = SteadyTime{} + 1000h;

Token sample_token() {
  Token token;
  token.upstream.access_token = "eyJ0eXAi.payload.sig";
  token.upstream.token_type = "Bearer";
  token.upstream.expires_in = 3600s;
  token.upstream.expires_on = 1'767'229'200;
  token.upstream.resource = "https://database.windows.net/";
  token.upstream.client_id = "cid";
  token.upstream.not_before = "1767225300";
  token.upstream.ext_expires_in = "86399";
  token.acquired_at = kNow - 600s;
  token.expires_at = kNow + 3000s + 500ms;
  return token;
}

TokenQuery query_for(std::string resource, bool imds_shape) {
  TokenQuery query;
  query.key.resource = std::move(resource);
  query.shape = imds_shape ? Shape::imds : Shape::v1;
  return query;
}

std::set<std::string> keys_of(const json& object) {
  std::set<std::string> keys;
  for (const auto& [key, value] : object.items()) keys.insert(key);
  return keys;
}

TEST(TokenBody, V1ShapeHasNumbersAndExactlyTheDocumentedKeys) {
  const auto body = json::parse(token_body(sample_token(), query_for("https://x/", false), kNow));
  EXPECT_EQ(keys_of(body), (std::set<std::string>{"access_token", "token_type", "expires_on",
                                                  "expires_in", "resource"}));
  EXPECT_EQ(body["access_token"], "eyJ0eXAi.payload.sig");
  EXPECT_EQ(body["token_type"], "Bearer");
  ASSERT_TRUE(body["expires_on"].is_number_integer());
  EXPECT_EQ(body["expires_on"].get<std::int64_t>(), 1'767'229'200);
  ASSERT_TRUE(body["expires_in"].is_number_integer());
  EXPECT_EQ(body["expires_in"].get<std::int64_t>(), 3000);
  EXPECT_EQ(body["resource"], "https://database.windows.net/");
}

TEST(TokenBody, ExpiresInComesFromTheSteadyClockNotTheUpstreamLifetime) {
  const auto token = sample_token();
  const auto later = json::parse(token_body(token, query_for("r", false), kNow + 1000s));
  EXPECT_EQ(later["expires_in"].get<std::int64_t>(), 2000);
  // expires_on is the upstream's, unchanged.
  EXPECT_EQ(later["expires_on"].get<std::int64_t>(), 1'767'229'200);
}

TEST(TokenBody, ExpiresInIsNeverNegative) {
  const auto body = json::parse(token_body(sample_token(), query_for("r", false), kNow + 5000s));
  EXPECT_EQ(body["expires_in"].get<std::int64_t>(), 0);
}

TEST(TokenBody, ResourceFallsBackToTheRequestedOneWhenTheUpstreamEchoedNone) {
  auto token = sample_token();
  token.upstream.resource.clear();
  const auto body = json::parse(token_body(token, query_for("https://asked/", false), kNow));
  EXPECT_EQ(body["resource"], "https://asked/");
}

TEST(TokenBody, ImdsShapeIsByteForByteImdsWithEveryNumberAsAString) {
  const auto body = token_body(sample_token(), query_for("r", true), kNow);
  EXPECT_EQ(body, R"({"access_token":"eyJ0eXAi.payload.sig","client_id":"cid","expires_in":"3000",)"
                  R"("expires_on":"1767229200","ext_expires_in":"86399","not_before":"1767225300",)"
                  R"("resource":"https://database.windows.net/","token_type":"Bearer"})");
  const auto parsed = json::parse(body);
  for (const auto& [key, value] : parsed.items()) EXPECT_TRUE(value.is_string()) << key;
}

TEST(TokenBody, ImdsShapeOmitsEchoFieldsTheUpstreamDidNotSend) {
  auto token = sample_token();
  token.upstream.client_id.clear();
  token.upstream.not_before.clear();
  token.upstream.ext_expires_in.clear();
  const auto parsed = json::parse(token_body(token, query_for("r", true), kNow));
  EXPECT_EQ(keys_of(parsed), (std::set<std::string>{"access_token", "expires_in", "expires_on",
                                                    "ext_expires_in", "resource", "token_type"}));
  EXPECT_EQ(parsed["ext_expires_in"], "3000");
  for (const auto& [key, value] : parsed.items()) EXPECT_TRUE(value.is_string()) << key;
}

TEST(TokenBody, AnUpstreamExtExpiresInThatIsNotANumberIsReplacedNotCopied) {
  // Found by fuzz_upstream_json: it was copied into the body unescaped.
  auto token = sample_token();
  token.upstream.ext_expires_in = "\"";
  const auto parsed = json::parse(token_body(token, query_for("r", true), kNow), nullptr, false);
  ASSERT_TRUE(parsed.is_object());
  EXPECT_EQ(parsed["ext_expires_in"], "3000");
}

TEST(TokenBody, OddCharactersAreJsonEscapedInBothShapes) {
  auto token = sample_token();
  token.upstream.access_token = "a\"b\\c\nd\te\x01f</g>é";
  token.upstream.resource = "https://x/\"quoted\"\r\n";
  token.upstream.client_id = "c\"id";
  token.upstream.not_before = "\x7f";
  token.upstream.token_type = "Bea\"rer";
  for (bool imds : {false, true}) {
    SCOPED_TRACE(imds ? "imds" : "v1");
    const auto body = token_body(token, query_for("r", imds), kNow);
    ASSERT_TRUE(json::accept(body)) << body;
    const auto parsed = json::parse(body);
    EXPECT_EQ(parsed["access_token"], token.upstream.access_token);
    EXPECT_EQ(parsed["resource"], token.upstream.resource);
    EXPECT_EQ(parsed["token_type"], token.upstream.token_type);
    if (imds) {
      EXPECT_EQ(parsed["client_id"], "c\"id");
    }
  }
}

TEST(TokenBody, InvalidUtf8StillGivesValidJson) {
  auto token = sample_token();
  token.upstream.resource = "bad\xff\xfe";
  for (bool imds : {false, true}) {
    const auto body = token_body(token, query_for("r", imds), kNow);
    EXPECT_TRUE(json::accept(body)) << body;
  }
}

// ---- errors and responses ----

TEST(ErrorBody, IsTheDocumentedJsonObjectWithEscaping) {
  const auto body = json::parse(tb::http::error_body("invalid_request", "bad \"resource\"\n"));
  EXPECT_EQ(keys_of(body), (std::set<std::string>{"error", "error_description"}));
  EXPECT_EQ(body["error"], "invalid_request");
  EXPECT_EQ(body["error_description"], "bad \"resource\"\n");
}

TEST(MakeError, CarriesStatusJsonNoStoreAndRetryAfterWhenPositive) {
  const auto request = get("/v1/token?resource=r");
  const auto response =
      make_error(request, HttpError{503, "token_unavailable", "upstream said 503", 7s});
  EXPECT_EQ(response.result_int(), 503u);
  EXPECT_EQ(response[http::field::retry_after], "7");
  EXPECT_EQ(response[http::field::content_type], "application/json");
  EXPECT_EQ(response[http::field::cache_control], "no-store");
  const auto body = json::parse(response.body());
  EXPECT_EQ(body["error"], "token_unavailable");
  EXPECT_EQ(body["error_description"], "upstream said 503");
  EXPECT_EQ(response[http::field::content_length], std::to_string(response.body().size()));
}

TEST(ToHttpError, MapsEachCacheErrorKindToItsStatusAndCode) {
  using Kind = TokenError::Kind;
  struct Case {
    Kind kind;
    unsigned upstream_status;
    unsigned status;
    const char* code;
  };
  for (const auto& c : {Case{Kind::too_many_tokens, 0, 503, "too_many_tokens"},
                        Case{Kind::shutting_down, 0, 503, "shutting_down"},
                        Case{Kind::unavailable, 0, 503, "token_unavailable"},
                        Case{Kind::unavailable, 429, 503, "token_unavailable"},
                        // The upstream's own refusal is passed on: 400 stays, 401/403 are 403.
                        Case{Kind::upstream_rejected, 400, 400, "upstream_rejected"},
                        Case{Kind::upstream_rejected, 401, 403, "upstream_rejected"},
                        Case{Kind::upstream_rejected, 403, 403, "upstream_rejected"},
                        Case{Kind::upstream_rejected, 404, 503, "upstream_rejected"}}) {
    const auto error = to_http_error(TokenError{c.kind, "what happened", 7s, c.upstream_status});
    EXPECT_EQ(error.status, c.status) << c.code << " " << c.upstream_status;
    EXPECT_EQ(error.error, c.code);
    EXPECT_EQ(error.description, "what happened");
    EXPECT_EQ(error.retry_after, 7s);
  }
}

TEST(MakeError, NamesTheBrokerAsServer) {
  const auto response = make_error(get("/v1/token"), HttpError{404, "not_found", "no route", 0s});
  EXPECT_EQ(response[http::field::server], "token-broker");
}

TEST(MakeError, HasNoRetryAfterWhenZero) {
  const auto response =
      make_error(get("/v1/token"), HttpError{400, "invalid_request", "no resource", 0s});
  EXPECT_EQ(response.result_int(), 400u);
  EXPECT_EQ(response.count(http::field::retry_after), 0u);
  EXPECT_EQ(response[http::field::cache_control], "no-store");
  EXPECT_EQ(response[http::field::content_type], "application/json");
}

TEST(MakeResponse, FollowsTheRequestsKeepAliveAndVersion) {
  auto request = get("/v1/token");
  request.keep_alive(true);
  EXPECT_TRUE(make_response(request, http::status::ok, "{}").keep_alive());
  request.keep_alive(false);
  EXPECT_FALSE(make_response(request, http::status::ok, "{}").keep_alive());

  Request old{http::verb::get, "/v1/token", 10};
  const auto response = make_response(old, http::status::ok, "{}");
  EXPECT_EQ(response.version(), 10u);
  EXPECT_EQ(response[http::field::cache_control], "no-store");
}

TEST(TargetPath, StripsTheQuery) {
  EXPECT_EQ(tb::http::target_path("/v1/token?resource=r"), "/v1/token");
  EXPECT_EQ(tb::http::target_path("/v1/token"), "/v1/token");
  EXPECT_EQ(tb::http::target_path("/v1/token?"), "/v1/token");
  EXPECT_EQ(tb::http::target_path("/a?b?c"), "/a");
  EXPECT_EQ(tb::http::target_path(""), "");
  EXPECT_EQ(tb::http::target_path("?x"), "");
}

}  // namespace
}  // namespace broker

namespace broker {
namespace {

TEST(TokenBody, EscapesATokenThatNeedsIt) {
  Token token;
  token.upstream.access_token = "eyJ\"odd\\token\x01";
  token.upstream.expires_on = 1'800'000'000;
  token.upstream.resource = "https://database.windows.net/";
  const SteadyTime now{};
  token.expires_at = now + std::chrono::seconds(3000);
  TokenQuery query;
  query.key.resource = token.upstream.resource;
  for (bool imds : {false, true}) {
    query.shape = imds ? Shape::imds : Shape::v1;
    EXPECT_EQ(nlohmann::json::parse(token_body(token, query, now))["access_token"],
              token.upstream.access_token);
  }
}

}  // namespace
}  // namespace broker

namespace broker {
namespace {

TEST(ParseTokenRequestBytes, NonAsciiResourceOrIdentityIsABadRequest) {
  for (const char* target :
       {"/v1/token?resource=%FF", "/v1/token?resource=https%3A%2F%2Fd%C3%A9.net%2F",
        "/v1/token?resource=r&client_id=%FF"}) {
    Request request{http::verb::get, target, 11};
    auto parsed = parse_token_request(request, ApiOptions{});
    ASSERT_TRUE(std::holds_alternative<HttpError>(parsed)) << target;
    EXPECT_EQ(std::get<HttpError>(parsed).status, 400u) << target;
  }
}

}  // namespace
}  // namespace broker

// ---- the App Service route (drop-in listener) ----

namespace broker {
namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef";

ApiOptions app_service_options() {
  ApiOptions options{Identity{}, 60s, 10'000ms};
  options.identity_header = kSecret;
  return options;
}

Request app_service_get(std::string_view target, std::optional<std::string> header = kSecret) {
  Request request{http::verb::get, target, 11};
  if (header) request.set("X-IDENTITY-HEADER", *header);
  return request;
}

HttpError expect_error(const std::variant<TokenQuery, HttpError>& outcome, unsigned status) {
  if (std::holds_alternative<TokenQuery>(outcome)) {
    ADD_FAILURE() << "expected a " << status << ", got a query";
    return {};
  }
  const auto& error = std::get<HttpError>(outcome);
  EXPECT_EQ(error.status, status) << error.description;
  return error;
}

TEST(ParseAppServiceRequest, WithTheRightHeaderAnswersInAppServiceShape) {
  const auto query = expect_query(parse_token_request(
      app_service_get("/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net"),
      app_service_options()));
  EXPECT_EQ(query.shape, Shape::app_service);
  EXPECT_EQ(query.key.resource, "https://vault.azure.net");
  EXPECT_EQ(query.key.identity, Identity{});
}

TEST(ParseAppServiceRequest, MapsEveryIdentityParameterSdksSend) {
  const std::vector<std::pair<std::string, Identity>> cases = {
      {"client_id=c", {Identity::Kind::client_id, "c"}},
      {"principal_id=p", {Identity::Kind::object_id, "p"}},
      {"object_id=o", {Identity::Kind::object_id, "o"}},  // what @azure/msal-node sends
      {"mi_res_id=%2Fsubscriptions%2Fs", {Identity::Kind::mi_res_id, "/subscriptions/s"}},
      {"msi_res_id=%2Fsubscriptions%2Fs", {Identity::Kind::mi_res_id, "/subscriptions/s"}},
  };
  for (const auto& [param, identity] : cases) {
    const auto query = expect_query(parse_token_request(
        app_service_get("/msi/token?api-version=2019-08-01&resource=r&" + param),
        app_service_options()));
    EXPECT_EQ(query.key.identity, identity) << param;
  }
}

TEST(ParseAppServiceRequest, MissingHeaderIsABadRequestNamingIt) {
  const auto error = expect_error(
      parse_token_request(
          app_service_get("/msi/token?api-version=2019-08-01&resource=r", std::nullopt),
          app_service_options()),
      400);
  expect_mentions(error, "X-IDENTITY-HEADER");
}

TEST(ParseAppServiceRequest, WrongHeaderIsUnauthorizedAndSaysNothingElse) {
  for (const std::string& wrong :
       std::vector<std::string>{"", "x", kSecret + "0", kSecret.substr(1), "Metadata: true"}) {
    // Even with parameters that would be refused: the secret is checked first.
    const auto error = expect_error(
        parse_token_request(app_service_get("/msi/token?api-version=1&resource=", wrong),
                            app_service_options()),
        401);
    EXPECT_EQ(error.error, "unauthorized");
    EXPECT_EQ(error.description.find(kSecret), std::string::npos);
  }
}

TEST(ParseAppServiceRequest, WithoutAConfiguredSecretEveryCallerIsRefused) {
  expect_error(
      parse_token_request(
          app_service_get("/msi/token?api-version=2019-08-01&resource=r", std::string()), kOptions),
      401);
}

TEST(ParseAppServiceRequest, ApiVersionIsRequiredAndOnly20190801IsSpoken) {
  expect_mentions(expect_bad_request(parse_token_request(app_service_get("/msi/token?resource=r"),
                                                         app_service_options())),
                  "api-version");
  // 2017-09-01 used another header ("secret") and parameter ("clientid").
  expect_mentions(
      expect_bad_request(parse_token_request(
          app_service_get("/msi/token?api-version=2017-09-01&resource=r"), app_service_options())),
      "2019-08-01");
}

TEST(ParseAppServiceRequest, IgnoresUnknownParametersAsAppServiceDoes) {
  const auto query = expect_query(parse_token_request(
      app_service_get("/msi/token?api-version=2019-08-01&resource=r&token_sha256_to_refresh=ab"),
      app_service_options()));
  EXPECT_EQ(query.key.resource, "r");
}

TEST(ParseAppServiceRequest, ResourceIsRequiredAndOneIdentityAtMost) {
  expect_bad_request(parse_token_request(app_service_get("/msi/token?api-version=2019-08-01"),
                                         app_service_options()));
  expect_bad_request(parse_token_request(
      app_service_get("/msi/token?api-version=2019-08-01&resource=r&client_id=a&mi_res_id=b"),
      app_service_options()));
}

TokenQuery app_service_query(Identity identity = {}) {
  TokenQuery query;
  query.key = TokenKey{std::move(identity), "https://database.windows.net/"};
  query.shape = Shape::app_service;
  return query;
}

TEST(TokenBody, AppServiceShapeIsAppServices2019ShapeWithExpiresOnAsAString) {
  const auto body = token_body(sample_token(), app_service_query(), kNow);
  EXPECT_EQ(body, R"({"access_token":"eyJ0eXAi.payload.sig","expires_on":"1767229200",)"
                  R"("resource":"https://database.windows.net/","token_type":"Bearer",)"
                  R"("client_id":"cid"})");
}

TEST(TokenBody, AppServiceShapeTakesClientIdFromTheRequestWhenTheUpstreamEchoedNone) {
  auto token = sample_token();
  token.upstream.client_id.clear();
  auto parsed =
      json::parse(token_body(token, app_service_query({Identity::Kind::client_id, "asked"}), kNow));
  EXPECT_EQ(parsed["client_id"], "asked");
  parsed = json::parse(token_body(token, app_service_query(), kNow));
  EXPECT_EQ(keys_of(parsed),
            (std::set<std::string>{"access_token", "expires_on", "resource", "token_type"}));
}

}  // namespace
}  // namespace broker

namespace broker {
namespace {

TEST(RouteOf, CompatibleRoutesAlsoAnswerWithOneTrailingSlash) {
  EXPECT_EQ(route_of("/metadata/identity/oauth2/token/"), kImdsRoute);
  EXPECT_EQ(route_of("/metadata/identity/oauth2/token"), kImdsRoute);
  EXPECT_EQ(route_of("/msi/token/"), kAppServiceRoute);
  EXPECT_EQ(route_of("/metadata/identity/oauth2/token//"), "/metadata/identity/oauth2/token//");
  EXPECT_EQ(route_of("/metadata/identity/oauth2/tokenX"), "/metadata/identity/oauth2/tokenX");
  EXPECT_EQ(route_of("/v1/token/"), "/v1/token/");
}

TEST(ParseTokenRequest, ImdsRouteWithATrailingSlashIsTheImdsRoute) {
  // What @azure/msal-node sends when AZURE_POD_IDENTITY_AUTHORITY_HOST is set.
  const auto query = expect_query(parse_token_request(
      get("/metadata/identity/oauth2/token/?api-version=2018-02-01&resource=r", true), kOptions));
  EXPECT_EQ(query.shape, Shape::imds);
}

}  // namespace
}  // namespace broker

namespace broker {
namespace {

// ---- the fast path for "/v1/token?resource=…" and the general path agree ----

/// The same request through the general path: a second (harmless) parameter keeps the query off
/// the fast path.
std::variant<TokenQuery, HttpError> general_path(std::string_view encoded_resource) {
  return parse_token_request(
      get("/v1/token?resource=" + std::string(encoded_resource) + "&min_validity=0"), kOptions);
}

TEST(ParseTokenRequestFastPath, AgreesWithTheGeneralPathOnEveryKindOfResourceValue) {
  const std::vector<std::string> values = {
      "https%3A%2F%2Fdatabase.windows.net%2F",
      "https%3a%2f%2fdatabase.windows.net%2f",  // lower-case hex digits
      "https://database.windows.net/",          // not on the fast path (':' and '/')
      "abc-._~XYZ019",
      "",
      "%00",
      "a%0Ab",
      "%7F",
      "%C3%A9",
      "%2B",
      "a+b",  // '+' is a space in a query: the general path only
      "%zz",  // malformed escapes: the general path refuses them
      "%4",
      "%",
      "a%2",
      "a b",
      "a\"b",
      "a#frag",
      std::string(1024, 'r'),
      std::string(1025, 'r'),
      std::string(1022, 'r') + "%41",
      std::string(1023, 'r') + "%41",
  };
  for (const auto& value : values) {
    SCOPED_TRACE(value);
    const auto fast = parse_token_request(get("/v1/token?resource=" + value), kOptions);
    const auto general = general_path(value);
    ASSERT_EQ(fast.index(), general.index());
    if (const auto* query = std::get_if<TokenQuery>(&fast)) {
      const auto& other = std::get<TokenQuery>(general);
      EXPECT_EQ(query->key, other.key);
      EXPECT_EQ(query->shape, Shape::v1);
      EXPECT_EQ(query->min_validity, other.min_validity);
      EXPECT_EQ(query->wait, other.wait);
    } else {
      const auto& error = std::get<HttpError>(fast);
      EXPECT_EQ(error.status, std::get<HttpError>(general).status);
      EXPECT_EQ(error.description, std::get<HttpError>(general).description);
    }
  }
}

TEST(ParseTokenRequestFastPath, DecodesAndUsesTheDefaults) {
  const ApiOptions options{Identity{Identity::Kind::client_id, "c"}, 120s, 3'000ms};
  const auto query = expect_query(
      parse_token_request(get("/v1/token?resource=https%3A%2F%2Fx.example%2F"), options));
  EXPECT_EQ(query.key.resource, "https://x.example/");
  EXPECT_EQ(query.key.identity, (Identity{Identity::Kind::client_id, "c"}));
  EXPECT_EQ(query.min_validity, 120s);
  EXPECT_EQ(query.wait, 3'000ms);
  EXPECT_EQ(query.shape, Shape::v1);
}

TEST(ParseTokenRequestFastPath, OtherRoutesKeepTheirChecks) {
  // Same query, IMDS route: still needs Metadata and api-version.
  expect_bad_request(
      parse_token_request(get("/metadata/identity/oauth2/token?resource=r"), kOptions));
  const auto error = parse_token_request(get("/msi/token?resource=r"), kOptions);
  ASSERT_TRUE(std::holds_alternative<HttpError>(error));
}

// ---- token_body: the exact bytes ----

Token exact_token() {
  Token token;
  token.upstream.access_token = "tok";
  token.upstream.token_type = "Bearer";
  token.upstream.expires_on = 1'800'000'000;
  token.upstream.resource = "https://r/";
  token.expires_at = SteadyTime{} + 3000s;
  return token;
}

TEST(TokenBodyBytes, V1) {
  TokenQuery query;
  EXPECT_EQ(token_body(exact_token(), query, SteadyTime{} + 500ms),
            R"({"access_token":"tok","token_type":"Bearer","expires_on":1800000000,)"
            R"("expires_in":2999,"resource":"https://r/"})");
}

TEST(TokenBodyBytes, Imds) {
  auto token = exact_token();
  token.upstream.client_id = "cid";
  token.upstream.not_before = "1799996400";
  token.upstream.ext_expires_in = "3599";
  TokenQuery query;
  query.shape = Shape::imds;
  EXPECT_EQ(token_body(token, query, SteadyTime{}),
            R"({"access_token":"tok","client_id":"cid","expires_in":"3000",)"
            R"("expires_on":"1800000000","ext_expires_in":"3599","not_before":"1799996400",)"
            R"("resource":"https://r/","token_type":"Bearer"})");
  token.upstream.client_id.clear();
  token.upstream.not_before.clear();
  token.upstream.ext_expires_in = "x";
  EXPECT_EQ(token_body(token, query, SteadyTime{}),
            R"({"access_token":"tok","expires_in":"3000","expires_on":"1800000000",)"
            R"("ext_expires_in":"3000","resource":"https://r/","token_type":"Bearer"})");
}

TEST(TokenBodyBytes, AppService) {
  TokenQuery query;
  query.shape = Shape::app_service;
  EXPECT_EQ(token_body(exact_token(), query, SteadyTime{}),
            R"({"access_token":"tok","expires_on":"1800000000","resource":"https://r/",)"
            R"("token_type":"Bearer"})");
  query.key.identity = Identity{Identity::Kind::client_id, "c\"1"};
  EXPECT_EQ(token_body(exact_token(), query, SteadyTime{}),
            R"({"access_token":"tok","expires_on":"1800000000","resource":"https://r/",)"
            R"("token_type":"Bearer","client_id":"c\"1"})");
}

// ---- serialize_response: the bytes Beast's serializer writes ----

std::string beast_bytes(const Response& response) {
  std::ostringstream out;
  out << response;
  return out.str();
}

TEST(SerializeResponse, IsByteForByteWhatBeastWrites) {
  std::vector<Response> responses;
  Request keep{http::verb::get, "/v1/token", 11};
  responses.push_back(make_response(keep, http::status::ok, R"({"access_token":"t"})"));
  Request close11{http::verb::get, "/v1/token", 11};
  close11.keep_alive(false);
  responses.push_back(make_response(close11, http::status::ok, "{}"));
  Request old{http::verb::get, "/v1/token", 10};
  responses.push_back(make_response(old, http::status::ok, "{}"));
  Request old_keep{http::verb::get, "/v1/token", 10};
  old_keep.keep_alive(true);
  responses.push_back(make_response(old_keep, http::status::ok, "{}"));
  responses.push_back(make_error(keep, HttpError{503, "token_unavailable", "wait", 7s}));
  auto closed = make_error(keep, HttpError{431, "too_big", "x", 0s});
  closed.keep_alive(false);
  responses.push_back(closed);
  auto not_allowed = make_error(keep, HttpError{405, "method_not_allowed", "GET", 0s});
  not_allowed.set(http::field::allow, "GET");
  responses.push_back(not_allowed);
  auto custom = make_response(keep, http::status::ok, "");
  custom.reason("Fine");
  custom.set("X-Custom", "v");
  responses.push_back(custom);
  std::string out = "left over from the previous response";
  for (const auto& response : responses) {
    tb::http::serialize_response(response, out);
    EXPECT_EQ(out, beast_bytes(response));
  }
}

TEST(TokenBodies, GiveTokenBodysBytesAndRenderAgainWhenAnythingInThemChanges) {
  TokenBodies bodies;
  auto token = std::make_shared<Token>(sample_token());
  TokenPtr held = token;
  for (Shape shape : {Shape::v1, Shape::imds, Shape::app_service}) {
    TokenQuery query = query_for("https://database.windows.net/", false);
    query.shape = shape;
    EXPECT_EQ(bodies.body(held, query, kNow), token_body(*held, query, kNow));
    // Within the same second: the same bytes; the next second: expires_in moves.
    EXPECT_EQ(bodies.body(held, query, kNow + 400ms), token_body(*held, query, kNow + 400ms));
    EXPECT_EQ(bodies.body(held, query, kNow + 1s), token_body(*held, query, kNow + 1s));
    // Another identity (App Service echoes a client id named by the caller), another resource.
    TokenQuery other = query;
    other.key.identity = Identity{Identity::Kind::client_id, "named-by-caller"};
    EXPECT_EQ(bodies.body(held, other, kNow), token_body(*held, other, kNow));
    other.key.resource = "https://other/";
    EXPECT_EQ(bodies.body(held, other, kNow), token_body(*held, other, kNow));
    EXPECT_EQ(bodies.body(held, query, kNow), token_body(*held, query, kNow));
  }
  // A new token (a refresh) is rendered anew even within the same second.
  const TokenQuery query = query_for("r", true);
  const std::string before = bodies.body(held, query, kNow);
  auto refreshed = std::make_shared<Token>(sample_token());
  refreshed->upstream.access_token = "eyJ0eXAi.payload2.sig2";
  const TokenPtr next = refreshed;
  EXPECT_EQ(bodies.body(next, query, kNow), token_body(*next, query, kNow));
  EXPECT_NE(bodies.body(next, query, kNow), before);
}

}  // namespace
}  // namespace broker
