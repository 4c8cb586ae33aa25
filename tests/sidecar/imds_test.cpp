#include "broker/imds.hpp"
#include "tb/crypto.hpp"

#include "fakes.hpp"

#include <gtest/gtest.h>
#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/url/parse.hpp>

#include <chrono>
#include <string>

namespace broker {
namespace {

using namespace std::chrono_literals;
using testing::FakeClock;

constexpr std::int64_t kNowUnix = FakeClock::kStartUnix;  // 2026-01-01T00:00:00Z
const SystemTime kNow = SystemTime{} + std::chrono::seconds(kNowUnix);
constexpr std::string_view kPrefix = "/metadata/identity/oauth2/token?api-version=2018-02-01";

UpstreamToken expect_token(const FetchResult& result) {
  if (const auto* error = std::get_if<FetchError>(&result)) {
    ADD_FAILURE() << "expected a token, got " << error->error << ": " << error->description;
    return {};
  }
  return std::get<UpstreamToken>(result);
}

FetchError expect_error(const FetchResult& result) {
  if (std::holds_alternative<UpstreamToken>(result)) {
    ADD_FAILURE() << "expected an error, got a token";
    return {};
  }
  return std::get<FetchError>(result);
}

// ---- imds_target ----

TEST(ImdsTarget, DefaultIdentitySendsOnlyApiVersionAndResource) {
  const TokenKey key{{}, "https://database.windows.net/"};
  const auto target = imds_target(key);
  EXPECT_EQ(target.rfind(std::string(kPrefix) + "&resource=", 0), 0u) << target;
  EXPECT_EQ(target.find("client_id"), std::string::npos);
  EXPECT_EQ(target.find("object_id"), std::string::npos);
  EXPECT_EQ(target.find("mi_res_id"), std::string::npos);
}

TEST(ImdsTarget, PercentEncodesCharactersThatWouldBreakTheQuery) {
  const TokenKey key{{}, "https://x.example/a b&c=d#e+f%g"};
  const auto target = imds_target(key);
  const auto resource = target.substr(target.find("&resource=") + 10);
  EXPECT_EQ(resource.find_first_of(" &=#+"), std::string::npos) << target;
  EXPECT_NE(resource.find("%26"), std::string::npos) << target;  // &
  EXPECT_NE(resource.find("%3D"), std::string::npos) << target;  // =
  EXPECT_NE(resource.find("%23"), std::string::npos) << target;  // #
  EXPECT_NE(resource.find("%2B"), std::string::npos) << target;  // + (else read as a space)
  EXPECT_NE(resource.find("%25"), std::string::npos) << target;  // %
  EXPECT_NE(resource.find("%20"), std::string::npos) << target;  // space
}

/// The target's query as a server decodes it (form rules: a bare '+' is a space).
std::vector<std::pair<std::string, std::string>> server_view(const std::string& target) {
  std::vector<std::pair<std::string, std::string>> out;
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) {
    ADD_FAILURE() << "not a valid request target: " << target;
    return out;
  }
  boost::urls::encoding_opts form;
  form.space_as_plus = true;
  for (auto param : parsed->params(form)) out.emplace_back(param.key, param.value);
  return out;
}

TEST(ImdsTarget, OddResourceAndIdentityValuesReachTheServerUnchanged) {
  const std::string resource = "api://a+b c&d=e#f%g?h/i";
  const std::string identity = "/subscriptions/x+y/resourceGroups/r g&z=1";
  const auto target = imds_target({{Identity::Kind::mi_res_id, identity}, resource});
  const auto params = server_view(target);
  ASSERT_EQ(params.size(), 3u) << target;
  EXPECT_EQ(params[0], (std::pair<std::string, std::string>{"api-version", "2018-02-01"}));
  EXPECT_EQ(params[1], (std::pair<std::string, std::string>{"resource", resource})) << target;
  EXPECT_EQ(params[2], (std::pair<std::string, std::string>{"mi_res_id", identity})) << target;
}

TEST(ImdsTarget, TypicalResourceUrlSurvivesTheRoundTrip) {
  const TokenKey key{{}, "https://database.windows.net/"};
  const auto target = imds_target(key);
  // ':' and '/' may legally stay unencoded in a query; either way it must decode back.
  EXPECT_TRUE(target == std::string(kPrefix) + "&resource=https://database.windows.net/" ||
              target == std::string(kPrefix) + "&resource=https%3A%2F%2Fdatabase.windows.net%2F")
      << target;
}

TEST(ImdsTarget, ClientIdIsSentAsClientId) {
  const TokenKey key{{Identity::Kind::client_id, "11111111-2222-3333-4444-555555555555"},
                     "https://vault.azure.net"};
  EXPECT_EQ(imds_target(key), std::string(kPrefix) +
                                  "&resource=https://vault.azure.net"
                                  "&client_id=11111111-2222-3333-4444-555555555555");
}

TEST(ImdsTarget, ObjectIdIsSentAsObjectId) {
  const TokenKey key{{Identity::Kind::object_id, "abc"}, "https://vault.azure.net"};
  EXPECT_EQ(imds_target(key),
            std::string(kPrefix) + "&resource=https://vault.azure.net&object_id=abc");
}

TEST(ImdsTarget, ResourceIdIsSentAsMiResIdAndEncoded) {
  const TokenKey key{{Identity::Kind::mi_res_id,
                      "/subscriptions/s/resourceGroups/rg/providers/"
                      "Microsoft.ManagedIdentity/userAssignedIdentities/id one"},
                     "https://vault.azure.net"};
  const auto target = imds_target(key);
  EXPECT_NE(target.find("&mi_res_id=/subscriptions/s/resourceGroups/rg/providers/"
                        "Microsoft.ManagedIdentity/userAssignedIdentities/id%20one"),
            std::string::npos)
      << target;
}

TEST(ImdsTarget, IdentityValueWithQueryCharactersIsEncoded) {
  const TokenKey key{{Identity::Kind::client_id, "a&resource=evil"}, "r"};
  const auto target = imds_target(key);
  EXPECT_NE(target.find("&client_id=a%26resource%3Devil"), std::string::npos) << target;
}

// ---- parse_token_response ----

TEST(ParseTokenResponse, ImdsShapeWithNumericFieldsAsStrings) {
  const auto token = expect_token(parse_token_response(
      R"({"access_token":"eyJ0","client_id":"cid","expires_in":"3599","expires_on":")" +
          std::to_string(kNowUnix + 3599) + R"(","ext_expires_in":"3599","not_before":")" +
          std::to_string(kNowUnix - 300) +
          R"(","resource":"https://database.windows.net/","token_type":"Bearer"})",
      kNow));
  EXPECT_EQ(token.access_token, "eyJ0");
  EXPECT_EQ(token.expires_in, 3599s);
  EXPECT_EQ(token.expires_on, kNowUnix + 3599);
  EXPECT_EQ(token.token_type, "Bearer");
  EXPECT_EQ(token.resource, "https://database.windows.net/");
  EXPECT_EQ(token.client_id, "cid");
  EXPECT_EQ(token.ext_expires_in, "3599");
  EXPECT_EQ(token.not_before, std::to_string(kNowUnix - 300));
  EXPECT_FALSE(token.refresh_in);
}

TEST(ParseTokenResponse, NumericFieldsAsJsonNumbers) {
  const auto token = expect_token(parse_token_response(
      R"({"access_token":"t","expires_in":3600,"expires_on":)" + std::to_string(kNowUnix + 3600) +
          R"(,"ext_expires_in":3600,"token_type":"Bearer"})",
      kNow));
  EXPECT_EQ(token.expires_in, 3600s);
  EXPECT_EQ(token.expires_on, kNowUnix + 3600);
  EXPECT_EQ(token.ext_expires_in, "3600");
}

TEST(ParseTokenResponse, ExpiresOnAsUtcDateString) {
  const auto token = expect_token(parse_token_response(
      R"({"access_token":"t","expires_in":"3600","expires_on":"11/28/2026 11:45:12 PM +00:00"})",
      kNow));
  EXPECT_EQ(token.said.expires_on, 1'795'909'512);  // 2026-11-28T23:45:12Z
}

TEST(ParseTokenResponse, ExpiresOnAsDateStringWithPositiveOffset) {
  const auto token = expect_token(parse_token_response(
      R"({"access_token":"t","expires_in":"3600","expires_on":"11/28/2026 11:45:12 PM +05:30"})",
      kNow));
  EXPECT_EQ(token.said.expires_on, 1'795'909'512 - (5 * 3600 + 30 * 60));
}

TEST(ParseTokenResponse, ExpiresOnAsDateStringWithNegativeOffset) {
  const auto token = expect_token(parse_token_response(
      R"({"access_token":"t","expires_in":"3600","expires_on":"11/28/2026 11:45:12 AM -08:00"})",
      kNow));
  // 11:45:12 at UTC-8 is 19:45:12Z.
  EXPECT_EQ(token.said.expires_on, 1'795'909'512 - 4 * 3600);
}

TEST(ParseTokenResponse, ExpiresOnAsDateStringAlone) {
  // App Service 2017-09-01 style: only a date, one hour from now.
  const auto token = expect_token(parse_token_response(
      R"({"access_token":"t","expires_on":"01/01/2026 01:00:00 AM +00:00"})", kNow));
  EXPECT_EQ(token.expires_on, kNowUnix + 3600);
  EXPECT_EQ(token.expires_in, 3600s);
}

TEST(ParseTokenResponse, OnlyExpiresOnGivenDerivesExpiresIn) {
  const auto token = expect_token(parse_token_response(
      R"({"access_token":"t","expires_on":")" + std::to_string(kNowUnix + 1234) + R"("})", kNow));
  EXPECT_EQ(token.expires_in, 1234s);
  EXPECT_EQ(token.expires_on, kNowUnix + 1234);
}

TEST(ParseTokenResponse, OnlyExpiresInGivenDerivesExpiresOn) {
  const auto token =
      expect_token(parse_token_response(R"({"access_token":"t","expires_in":600})", kNow));
  EXPECT_EQ(token.expires_in, 600s);
  EXPECT_EQ(token.expires_on, kNowUnix + 600);
}

// ---- the effective expiry: the earliest of what the answer says ----

/// A JWT-shaped access token whose payload is `claims` (the signature is not checked here).
std::string jwt_with(const nlohmann::json& claims) {
  return tb::base64url_encode(R"({"alg":"RS256","typ":"JWT"})") + "." +
         tb::base64url_encode(claims.dump()) + "." + tb::base64url_encode("signature");
}

std::string answer_with(const std::string& access_token, std::int64_t expires_on,
                        std::int64_t expires_in) {
  return nlohmann::json{{"access_token", access_token},
                        {"expires_on", std::to_string(expires_on)},
                        {"expires_in", std::to_string(expires_in)},
                        {"token_type", "Bearer"}}
      .dump();
}

TEST(ParseTokenResponse, AJwtWhoseExpIsEarlierThanTheFieldsEndsAtItsExp) {
  // The defect: expires_on and expires_in said an hour, the token's own exp 5 s.
  const auto access = jwt_with({{"aud", "x"}, {"exp", kNowUnix + 5}});
  const auto token =
      expect_token(parse_token_response(answer_with(access, kNowUnix + 3600, 3600), kNow));
  EXPECT_EQ(token.expires_on, kNowUnix + 5);
  EXPECT_EQ(token.expires_in, 5s);
  EXPECT_EQ(token.said.jwt_exp, kNowUnix + 5);
  EXPECT_EQ(token.said.expires_on, kNowUnix + 3600);
  EXPECT_EQ(token.said.expires_in, kNowUnix + 3600);
  EXPECT_EQ(token.said.spread(), 3595);
}

TEST(ParseTokenResponse, ExpiresOnAndExpiresInThatDisagreeEndAtTheEarlier) {
  auto token =
      expect_token(parse_token_response(answer_with("opaque", kNowUnix + 600, 3600), kNow));
  EXPECT_EQ(token.expires_on, kNowUnix + 600);
  EXPECT_EQ(token.expires_in, 600s);
  EXPECT_FALSE(token.said.jwt_exp) << "not a JWT: no exp";
  token = expect_token(parse_token_response(answer_with("opaque", kNowUnix + 3600, 60), kNow));
  EXPECT_EQ(token.expires_on, kNowUnix + 60);
  EXPECT_EQ(token.expires_in, 60s);
}

TEST(ParseTokenResponse, FieldsThatAgreeHaveNoSpreadAndAJwtExpLaterThanThemChangesNothing) {
  const auto access = jwt_with({{"exp", kNowUnix + 4000}});
  const auto token =
      expect_token(parse_token_response(answer_with(access, kNowUnix + 3600, 3600), kNow));
  EXPECT_EQ(token.expires_on, kNowUnix + 3600);
  EXPECT_EQ(token.expires_in, 3600s);
  EXPECT_EQ(token.said.spread(), 400);
  const auto agreeing = expect_token(parse_token_response(
      answer_with(jwt_with({{"exp", kNowUnix + 3600}}), kNowUnix + 3600, 3600), kNow));
  EXPECT_EQ(agreeing.said.spread(), 0);
}

TEST(ParseTokenResponse, AJwtWhoseOwnExpHasPassedIsRejected) {
  const auto access = jwt_with({{"exp", kNowUnix - 1}});
  const auto error =
      expect_error(parse_token_response(answer_with(access, kNowUnix + 3600, 3600), kNow));
  EXPECT_EQ(error.status, 0u);
  EXPECT_EQ(error.error, "malformed_response");
}

TEST(ParseTokenResponse, ExpiresOnInThePastWithoutExpiresInIsRejected) {
  const auto error = expect_error(parse_token_response(
      R"({"access_token":"t","expires_on":")" + std::to_string(kNowUnix - 5) + R"("})", kNow));
  EXPECT_EQ(error.status, 0u);
  EXPECT_NE(error.description.find("expired"), std::string::npos) << error.description;
}

TEST(ParseTokenResponse, FarOutOfRangeExpiresOnIsRejectedWithoutOverflow) {
  for (const char* body : {R"({"access_token":"t","expires_on":"-9223372036854775808"})",
                           R"({"access_token":"t","expires_on":"9223372036854775807"})"}) {
    const auto error = expect_error(parse_token_response(body, kNow));
    EXPECT_EQ(error.status, 0u) << body;
  }
}

TEST(ParseTokenResponse, MissingAccessTokenIsRejected) {
  const auto error = expect_error(parse_token_response(R"({"expires_in":"3600"})", kNow));
  EXPECT_EQ(error.status, 0u);
  EXPECT_NE(error.description.find("access_token"), std::string::npos) << error.description;
}

TEST(ParseTokenResponse, EmptyOrNonStringAccessTokenIsRejected) {
  for (const char* body : {R"({"access_token":"","expires_in":"3600"})",
                           R"({"access_token":null,"expires_in":"3600"})",
                           R"({"access_token":42,"expires_in":"3600"})"}) {
    const auto error = expect_error(parse_token_response(body, kNow));
    EXPECT_EQ(error.status, 0u) << body;
    EXPECT_NE(error.description.find("access_token"), std::string::npos) << body;
  }
}

TEST(ParseTokenResponse, ZeroOrNegativeExpiresInIsRejected) {
  for (const char* body :
       {R"({"access_token":"t","expires_in":"0"})", R"({"access_token":"t","expires_in":0})",
        R"({"access_token":"t","expires_in":"-60"})", R"({"access_token":"t","expires_in":-60})"}) {
    const auto error = expect_error(parse_token_response(body, kNow));
    EXPECT_EQ(error.status, 0u) << body;
    EXPECT_NE(error.description.find("expires_in"), std::string::npos) << body;
  }
}

TEST(ParseTokenResponse, ExpiresInAsNonNumericStringIsRejectedNamingTheField) {
  for (const char* body :
       {R"({"access_token":"t","expires_in":"soon"})",
        R"({"access_token":"t","expires_in":"3600s"})", R"({"access_token":"t","expires_in":""})",
        R"({"access_token":"t","expires_in":true})"}) {
    const auto error = expect_error(parse_token_response(body, kNow));
    EXPECT_EQ(error.status, 0u) << body;
    EXPECT_NE(error.description.find("expires_in"), std::string::npos) << body;
  }
}

TEST(ParseTokenResponse, UnparseableExpiresOnIsRejectedNamingTheField) {
  for (const char* body : {R"({"access_token":"t","expires_on":"tomorrow"})",
                           R"({"access_token":"t","expires_on":"11/28/2026 11:45:12 PM UTC"})",
                           R"({"access_token":"t","expires_on":"11/28/2026 11:45:12 PM +0000"})"}) {
    const auto error = expect_error(parse_token_response(body, kNow));
    EXPECT_EQ(error.status, 0u) << body;
    EXPECT_NE(error.description.find("expires_on"), std::string::npos) << body;
  }
}

TEST(ParseTokenResponse, NoLifetimeAtAllIsRejected) {
  const auto error = expect_error(parse_token_response(R"({"access_token":"t"})", kNow));
  EXPECT_EQ(error.status, 0u);
  EXPECT_NE(error.description.find("expires"), std::string::npos) << error.description;
}

TEST(ParseTokenResponse, ImplausiblyLongLifetimeIsRejected) {
  const auto error = expect_error(
      parse_token_response(R"({"access_token":"t","expires_in":"99999999999"})", kNow));
  EXPECT_EQ(error.status, 0u);
}

TEST(ParseTokenResponse, OutOfRangeFloatingPointLifetimeIsRejected) {
  // A float too large for 64 bits must not be converted blindly (undefined behaviour).
  for (const char* body :
       {R"({"access_token":"t","expires_in":1e300})", R"({"access_token":"t","expires_in":-1e300})",
        R"({"access_token":"t","expires_on":1e300})"}) {
    const auto error = expect_error(parse_token_response(body, kNow));
    EXPECT_EQ(error.status, 0u) << body;
  }
}

TEST(ParseTokenResponse, FractionalNumbersAreTruncatedToWholeSeconds) {
  const auto token =
      expect_token(parse_token_response(R"({"access_token":"t","expires_in":3599.9})", kNow));
  EXPECT_EQ(token.expires_in, 3599s);
}

TEST(ParseTokenResponse, NonJsonIsRejected) {
  for (const char* body : {"", "not json", "<html>502 Bad Gateway</html>", "{\"access_token\":"}) {
    const auto error = expect_error(parse_token_response(body, kNow));
    EXPECT_EQ(error.status, 0u) << body;
    EXPECT_EQ(error.error, "malformed_response") << body;
  }
}

TEST(ParseTokenResponse, JsonThatIsNotAnObjectIsRejected) {
  for (const char* body : {R"([{"access_token":"t","expires_in":3600}])", "42", R"("t")", "null"}) {
    const auto error = expect_error(parse_token_response(body, kNow));
    EXPECT_EQ(error.status, 0u) << body;
    EXPECT_EQ(error.error, "malformed_response") << body;
  }
}

TEST(ParseTokenResponse, RefreshInIsKeptWhenPositive) {
  auto token = expect_token(
      parse_token_response(R"({"access_token":"t","expires_in":86399,"refresh_in":43199})", kNow));
  ASSERT_TRUE(token.refresh_in);
  EXPECT_EQ(*token.refresh_in, 43199s);

  token = expect_token(
      parse_token_response(R"({"access_token":"t","expires_in":86399,"refresh_in":"600"})", kNow));
  ASSERT_TRUE(token.refresh_in);
  EXPECT_EQ(*token.refresh_in, 600s);

  token = expect_token(
      parse_token_response(R"({"access_token":"t","expires_in":86399,"refresh_in":0})", kNow));
  EXPECT_FALSE(token.refresh_in);
}

TEST(ParseTokenResponse, MissingTokenTypeDefaultsToBearerAndOtherTypesAreKept) {
  auto token = expect_token(parse_token_response(R"({"access_token":"t","expires_in":60})", kNow));
  EXPECT_EQ(token.token_type, "Bearer");
  token = expect_token(
      parse_token_response(R"({"access_token":"t","expires_in":60,"token_type":"PoP"})", kNow));
  EXPECT_EQ(token.token_type, "PoP");
}

TEST(ParseTokenResponse, OptionalEchoFieldsAreKeptVerbatim) {
  const auto token = expect_token(parse_token_response(
      R"({"access_token":"t","expires_in":"60","resource":"https://r/","client_id":"c-1",)"
      R"("not_before":"1767225300","ext_expires_in":"86399","unknown":"ignored"})",
      kNow));
  EXPECT_EQ(token.resource, "https://r/");
  EXPECT_EQ(token.client_id, "c-1");
  EXPECT_EQ(token.not_before, "1767225300");
  EXPECT_EQ(token.ext_expires_in, "86399");
}

TEST(ParseTokenResponse, AbsentEchoFieldsStayEmpty) {
  const auto token =
      expect_token(parse_token_response(R"({"access_token":"t","expires_in":60})", kNow));
  EXPECT_TRUE(token.resource.empty());
  EXPECT_TRUE(token.client_id.empty());
  EXPECT_TRUE(token.not_before.empty());
  EXPECT_TRUE(token.ext_expires_in.empty());
}

// ---- upstream_error ----

TEST(UpstreamError, ReadsErrorAndDescriptionFromAJsonBody) {
  const auto error = upstream_error(
      400, R"({"error":"invalid_resource","error_description":"AADSTS500011: not found"})", "",
      kNow);
  EXPECT_EQ(error.status, 400u);
  EXPECT_EQ(error.error, "invalid_resource");
  EXPECT_EQ(error.description, "AADSTS500011: not found");
  EXPECT_FALSE(error.retry_after);
}

TEST(UpstreamError, NonJsonBodyGivesAGenericCodeNamingTheStatus) {
  const auto error = upstream_error(502, "<html>Bad Gateway</html>", "", kNow);
  EXPECT_EQ(error.status, 502u);
  EXPECT_EQ(error.error, "upstream_http_502");
  EXPECT_TRUE(error.description.empty());
}

TEST(UpstreamError, NonStringFieldsAreIgnored) {
  const auto error =
      upstream_error(500, R"({"error":{"code":"x"},"error_description":5})", "", kNow);
  EXPECT_EQ(error.error, "upstream_http_500");
  EXPECT_TRUE(error.description.empty());
}

TEST(UpstreamError, LongDescriptionIsShortened) {
  const std::string body =
      R"({"error":"e","error_description":")" + std::string(5000, 'x') + R"("})";
  const auto error = upstream_error(400, body, "", kNow);
  EXPECT_LE(error.description.size(), 300u);
  EXPECT_FALSE(error.description.empty());
}

TEST(UpstreamError, RetryAfterSecondsAndDateAreRead) {
  EXPECT_EQ(upstream_error(429, "", "17", kNow).retry_after, 17'000ms);
  EXPECT_EQ(upstream_error(503, "", "Thu, 01 Jan 2026 00:01:00 GMT", kNow).retry_after, 60'000ms);
}

TEST(UpstreamError, UnparseableRetryAfterIsDropped) {
  EXPECT_FALSE(upstream_error(429, "", "later", kNow).retry_after);
}

// ---- transport_error ----

TEST(TransportError, RefusedConnectionSaysTheUpstreamCannotBeReached) {
  const auto error = transport_error(boost::asio::error::connection_refused, "http://h:1", 1000ms);
  EXPECT_EQ(error.status, 0u);
  EXPECT_EQ(error.error, "upstream_unreachable");
  EXPECT_EQ(error.description.rfind("cannot reach http://h:1: ", 0), 0u) << error.description;
}

TEST(TransportError, TimeoutNamesTheAttemptTimeout) {
  const auto error = transport_error(boost::beast::error::timeout, "http://h:1", 2000ms);
  EXPECT_EQ(error.error, "upstream_timeout");
  EXPECT_EQ(error.description, "no answer from http://h:1 within 2000 ms");
}

TEST(TransportError, ResetOrCloseMidAnswerSaysTheConnectionBrokeNotThatItIsUnreachable) {
  for (const boost::system::error_code ec :
       {make_error_code(boost::asio::error::connection_reset),
        make_error_code(boost::beast::http::error::partial_message),
        make_error_code(boost::beast::http::error::end_of_stream),
        make_error_code(boost::asio::error::eof)}) {
    const auto error = transport_error(ec, "http://h:1", 1000ms);
    EXPECT_EQ(error.error, "upstream_connection_lost") << ec.message();
    EXPECT_EQ(error.description.rfind("the connection to http://h:1 broke before the answer was "
                                      "complete: ",
                                      0),
              0u)
        << error.description;
  }
}

TEST(TransportError, InvalidOrOversizedHttpIsABadResponse) {
  for (const boost::system::error_code ec :
       {make_error_code(boost::beast::http::error::bad_version),
        make_error_code(boost::beast::http::error::body_limit)}) {
    const auto error = transport_error(ec, "http://h:1", 1000ms);
    EXPECT_EQ(error.error, "upstream_bad_response") << ec.message();
    EXPECT_NE(error.description.find("the answer from http://h:1 is not usable HTTP"),
              std::string::npos)
        << error.description;
  }
}

// ---- ImdsSource construction ----

TEST(ImdsSource, AcceptsHttpEndpoints) {
  FakeClock clock;
  EXPECT_NO_THROW(ImdsSource("http://169.254.169.254", clock));
  EXPECT_NO_THROW(ImdsSource("http://127.0.0.1:8080/prefix/", clock));
  EXPECT_NO_THROW(ImdsSource("http://[::1]:8080", clock));
}

TEST(ImdsSource, RejectsUnusableEndpointsWithAnException) {
  FakeClock clock;
  for (const char* endpoint :
       {"", "169.254.169.254", "https://169.254.169.254", "http://h/?q=1", "http://user@h/"}) {
    EXPECT_THROW(ImdsSource(endpoint, clock), std::invalid_argument) << endpoint;
  }
}

}  // namespace
}  // namespace broker

namespace broker {
namespace {

TEST(RedactUpstreamError, TokensAndLongSecretsAreReplacedAndFieldsBounded) {
  const std::string jwt =
      "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL3gifQ.c2lnbmF0dXJlLXBhcnQtdGhhdC1pcy1sb25n";
  FetchError error{400, "bad_" + std::string(200, 'x'),
                   "token " + jwt + " and secret Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c\r\nnext",
                   std::nullopt};
  const auto redacted = redact_upstream_error(error);
  EXPECT_EQ(redacted.description.find("eyJ"), std::string::npos) << redacted.description;
  EXPECT_EQ(redacted.description.find("Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c"), std::string::npos);
  EXPECT_NE(redacted.description.find("[redacted]"), std::string::npos);
  EXPECT_EQ(redacted.description.find_first_of("\r\n"), std::string::npos);
  EXPECT_LE(redacted.error.size(), 64U);
  EXPECT_EQ(redacted.status, 400U);
  // Ordinary words, UUIDs and URLs stay readable.
  FetchError plain{404, "not_found",
                   "Identity 11111111-1111-1111-1111-111111111111 not found at "
                   "http://169.254.169.254/metadata/identity/oauth2/token",
                   std::nullopt};
  EXPECT_EQ(redact_upstream_error(plain).description, plain.description);
}

}  // namespace
}  // namespace broker
