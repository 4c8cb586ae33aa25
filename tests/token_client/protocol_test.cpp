// token_client's pure parts: the request target, the broker's answers and transport failures
// mapped to a Token or an Error with a message a person can act on.
#include "token_client/protocol.hpp"
#include "token_client/token_client.hpp"

#include <gtest/gtest.h>
#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include <chrono>
#include <string>

namespace token_client {
namespace {

using namespace std::chrono_literals;
namespace errc = boost::system::errc;

constexpr const char* kSecret = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2VjcmV0LXNpZ25hdHVyZQ";

const Request kDatabase{.resource = "https://database.windows.net/"};
const Options kOptions{.socket_path = "/x/broker.sock", .timeout = 5000ms};

Result answer(int status, std::string_view body, std::string_view retry_after = "") {
  return interpret_answer({.status = status, .retry_after = retry_after, .body = body}, kDatabase,
                          kOptions);
}

std::string token_body(std::string_view fields) {
  return std::string(R"({"access_token":")") + kSecret + "\"" + std::string(fields) + "}";
}

TEST(TokenClientTarget, EveryValueIsPercentEncoded) {
  const Request request{
      .resource = "https://database.windows.net/", .client_id = "a b&c=d", .min_validity = 600s};
  EXPECT_EQ(token_target(request, 4000ms),
            "/v1/token?resource=https%3A%2F%2Fdatabase.windows.net%2F&client_id=a%20b%26c%3Dd"
            "&min_validity=600&timeout=4");
}

TEST(TokenClientTarget, IdentitiesAndWaitInMilliseconds) {
  EXPECT_EQ(token_target({.resource = "r", .object_id = "oid"}, 750ms),
            "/v1/token?resource=r&object_id=oid&timeout=0.750");
  EXPECT_EQ(token_target({.resource = "r", .mi_res_id = "/subscriptions/s"}, 1050ms),
            "/v1/token?resource=r&mi_res_id=%2Fsubscriptions%2Fs&timeout=1.050");
}

TEST(TokenClientTarget, BrokerIsAskedToGiveUpBeforeTheClientDoes) {
  EXPECT_EQ(broker_wait(5000ms), 4000ms);
  EXPECT_EQ(broker_wait(30'000ms), 29'000ms);  // the margin is at most 1 s
  EXPECT_EQ(broker_wait(100ms), 80ms);
  EXPECT_EQ(broker_wait(1ms), 1ms);
  EXPECT_EQ(broker_wait(0ms), 1ms);
}

TEST(TokenClientAnswer, ExpiryBeyondTheYear2200IsAProtocolErrorNotAnOverflow) {
  // Found by fuzz_token_client: system_clock (nanoseconds) overflows after 2262.
  auto token = answer(200, token_body(R"(,"expires_on":17925914000)"));
  ASSERT_FALSE(token);
  EXPECT_EQ(token.error().code, Errc::protocol_error);
}

TEST(TokenClientAnswer, TokenIsParsedFromA200) {
  auto token =
      answer(200, token_body(R"(,"token_type":"Bearer","expires_on":1900000000,"expires_in":3599,)"
                             R"("resource":"https://database.windows.net/")"));
  ASSERT_TRUE(token) << token.error().message;
  EXPECT_EQ(token->access_token, kSecret);
  EXPECT_EQ(token->token_type, "Bearer");
  EXPECT_EQ(token->expires_on, std::chrono::system_clock::time_point(1'900'000'000s));
  EXPECT_EQ(token->resource, "https://database.windows.net/");
}

TEST(TokenClientAnswer, OptionalFieldsDefaultToBearerAndTheRequestedResource) {
  auto token = answer(200, token_body(R"(,"expires_on":1900000000.7)"));
  ASSERT_TRUE(token) << token.error().message;
  EXPECT_EQ(token->token_type, "Bearer");
  EXPECT_EQ(token->resource, kDatabase.resource);
  EXPECT_EQ(token->expires_on, std::chrono::system_clock::time_point(1'900'000'000s));
}

TEST(TokenClientAnswer, InvalidTokenBodiesAreProtocolErrorsThatNeverQuoteTheBody) {
  const std::string bodies[] = {
      "",
      "not json " + std::string(kSecret),
      "[1,2]",
      R"({"expires_on":1900000000})",
      R"({"access_token":"","expires_on":1900000000})",
      R"({"access_token":42,"expires_on":1900000000})",
      token_body(""),
      token_body(R"(,"expires_on":"1900000000")"),
      token_body(R"(,"expires_on":-5)"),
      token_body(R"(,"expires_on":1e300)"),
      token_body(R"(,"expires_on":1900000000,"token_type":7)"),
      token_body(R"(,"expires_on":1900000000,"resource":null)"),
  };
  for (const auto& body : bodies) {
    auto result = answer(200, body);
    ASSERT_FALSE(result) << body;
    EXPECT_EQ(result.error().code, Errc::protocol_error) << body;
    EXPECT_EQ(result.error().http_status, 200);
    EXPECT_NE(result.error().message.find("answered 200 but"), std::string::npos);
    EXPECT_NE(result.error().message.find("/x/broker.sock"), std::string::npos);
    EXPECT_EQ(result.error().message.find(kSecret), std::string::npos) << result.error().message;
  }
}

TEST(TokenClientAnswer, Unavailable503CarriesDescriptionAndRetryAfter) {
  auto result = answer(
      503, R"({"error":"token_unavailable","error_description":"upstream answered HTTP 500"})",
      "5");
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::broker_unavailable);
  EXPECT_EQ(result.error().http_status, 503);
  EXPECT_EQ(result.error().retry_after, 5s);
  EXPECT_EQ(result.error().message,
            "token broker could not get a token for https://database.windows.net/: upstream "
            "answered HTTP 500 (retry in 5 s)");
  EXPECT_TRUE(is_transient(result.error().code));
}

TEST(TokenClientAnswer, RetryAfterOnlyInDeltaSeconds) {
  EXPECT_EQ(answer(503, "{}", "Wed, 21 Oct 2015 07:28:00 GMT").error().retry_after, 0s);
  EXPECT_EQ(answer(503, "{}", "-3").error().retry_after, 0s);
  EXPECT_EQ(answer(503, "{}", "99999999999").error().retry_after, 86'400s);
  EXPECT_NE(answer(503, "{}").error().message.find("(retry later)"), std::string::npos);
  EXPECT_NE(answer(503, "{}").error().message.find("no error description"), std::string::npos);
}

TEST(TokenClientAnswer, StatusesMapToCodes) {
  const std::string body = R"({"error":"e","error_description":"why"})";
  EXPECT_EQ(answer(403, body).error().code, Errc::refused);
  EXPECT_EQ(answer(400, body).error().code, Errc::bad_request);
  EXPECT_EQ(answer(404, body).error().code, Errc::bad_request);
  EXPECT_EQ(answer(431, body).error().code, Errc::bad_request);
  // The broker sends 429 for a forced refresh too soon after the last one.
  EXPECT_EQ(answer(429, body, "2").error().code, Errc::rate_limited);
  EXPECT_EQ(answer(429, body, "2").error().retry_after, 2s);
  EXPECT_EQ(answer(500, body).error().code, Errc::broker_unavailable);
  EXPECT_EQ(answer(302, body).error().code, Errc::protocol_error);
  EXPECT_EQ(answer(204, "").error().code, Errc::protocol_error);
  for (int status : {403, 400, 404, 500, 503}) {
    const auto error = answer(status, body).error();
    EXPECT_EQ(error.http_status, status);
    EXPECT_NE(error.message.find("why"), std::string::npos) << error.message;
  }
  EXPECT_FALSE(is_transient(Errc::refused));
  EXPECT_FALSE(is_transient(Errc::bad_request));
  EXPECT_FALSE(is_transient(Errc::protocol_error));
}

TEST(TokenClientAnswer, MessagesSayWhatToDo) {
  const std::string body = R"({"error":"invalid_request","error_description":"bad identity"})";
  EXPECT_EQ(answer(400, body).error().message,
            "token broker rejected the request for https://database.windows.net/ (HTTP 400): "
            "bad identity; fix the request (retrying will not help)");
  EXPECT_NE(answer(403, body).error().message.find("--allow-uids"), std::string::npos);
  EXPECT_NE(answer(302, body).error().message.find("check that /x/broker.sock is token-broker"),
            std::string::npos);
}

TEST(TokenClientAnswer, BrokerTextIsMadePrintableAndShort) {
  const std::string body =
      "{\"error_description\":\"line\\nbreak \\u001b[31m" + std::string(1000, 'x') + "\"}";
  const auto message = answer(400, body).error().message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
  EXPECT_EQ(message.find('\x1b'), std::string::npos);
  EXPECT_LT(message.size(), 500u);
  EXPECT_NE(message.find("line?break"), std::string::npos);
}

TEST(TokenClientTransport, NothingListeningMeansBrokerNotRunning) {
  for (auto ec :
       {make_error_code(errc::no_such_file_or_directory), make_error_code(errc::connection_refused),
        make_error_code(errc::not_a_socket), make_error_code(errc::not_a_directory)}) {
    const auto error = transport_error(ec, kOptions);
    EXPECT_EQ(error.code, Errc::broker_not_running) << ec.message();
    EXPECT_EQ(error.http_status, 0);
  }
  EXPECT_EQ(transport_error(make_error_code(errc::no_such_file_or_directory), kOptions).message,
            "token broker is not running: nothing listens on /x/broker.sock (connect: No such "
            "file or directory); start token-broker or set TOKEN_BROKER_SOCKET");
}

TEST(TokenClientTransport, DeadlineMeansTimeout) {
  const auto error = transport_error(boost::beast::error::timeout, kOptions);
  EXPECT_EQ(error.code, Errc::timeout);
  EXPECT_EQ(error.message.rfind("token broker did not answer within 5000 ms", 0), 0u)
      << error.message;
}

TEST(TokenClientTransport, OtherFailuresAreClassified) {
  EXPECT_EQ(transport_error(make_error_code(errc::permission_denied), kOptions).code,
            Errc::refused);
  EXPECT_EQ(transport_error(boost::asio::error::try_again, kOptions).code,
            Errc::broker_unavailable);
  EXPECT_EQ(transport_error(boost::beast::http::error::end_of_stream, kOptions).code,
            Errc::broker_unavailable);
  EXPECT_EQ(transport_error(make_error_code(errc::connection_reset), kOptions).code,
            Errc::broker_unavailable);
  EXPECT_EQ(transport_error(boost::beast::http::error::bad_version, kOptions).code,
            Errc::protocol_error);
  EXPECT_EQ(transport_error(boost::beast::http::error::body_limit, kOptions).code,
            Errc::protocol_error);
}

TEST(TokenClientErrors, ValueThrowsTokenErrorWithTheMessage) {
  const Result failed = Error{Errc::timeout, 0, 0s, "token broker did not answer"};
  try {
    (void)failed.value();
    FAIL() << "value() must throw";
  } catch (const TokenError& error) {
    EXPECT_STREQ(error.what(), "token broker did not answer");
    EXPECT_EQ(error.error().code, Errc::timeout);
  }
  EXPECT_EQ(to_string(Errc::broker_not_running), "broker_not_running");
  EXPECT_EQ(to_string(Errc::protocol_error), "protocol_error");
}

TEST(TokenClientOptions, SocketComesFromTheEnvironmentWhenSet) {
  ::unsetenv("TOKEN_BROKER_SOCKET");
  EXPECT_EQ(Options::from_environment().socket_path, kDefaultSocket);
  ::setenv("TOKEN_BROKER_SOCKET", "/tmp/other.sock", 1);
  EXPECT_EQ(Options::from_environment().socket_path, "/tmp/other.sock");
  ::setenv("TOKEN_BROKER_SOCKET", "", 1);
  EXPECT_EQ(Options::from_environment().socket_path, kDefaultSocket);
  ::unsetenv("TOKEN_BROKER_SOCKET");
}

TEST(TokenClientCall, BadSocketPathOrEmptyResourceFailsWithoutConnecting) {
  const Client long_path({.socket_path = "/tmp/" + std::string(200, 's')});
  EXPECT_EQ(long_path.get_token(kDatabase).error().code, Errc::bad_request);
  EXPECT_NE(long_path.get_token(kDatabase).error().message.find("longer than 107 bytes"),
            std::string::npos);
  const Client client(kOptions);
  const auto error = client.get_token({}).error();
  EXPECT_EQ(error.code, Errc::bad_request);
  EXPECT_NE(error.message.find("no resource"), std::string::npos);
}

TEST(TokenClientWatch, TakesWholeEventsAndDropsKeepAlives) {
  std::string buffer = ": keep-alive\n\nretry: 1000\nid: 1\nevent: token\ndata: {}\n\nid: 2\nev";
  EXPECT_EQ(take_sse_event(buffer),
            std::optional<std::string>("retry: 1000\nid: 1\nevent: token\ndata: {}"));
  EXPECT_EQ(take_sse_event(buffer), std::nullopt);  // the next one is not complete yet
  EXPECT_EQ(buffer, "id: 2\nev");
  buffer += "ent: token\r\ndata: {}\r\n\r\n: keep-alive\n\n";
  EXPECT_EQ(take_sse_event(buffer), std::optional<std::string>("id: 2\nevent: token\r\ndata: {}"));
  EXPECT_EQ(take_sse_event(buffer), std::nullopt);
  EXPECT_TRUE(buffer.empty());
}

TEST(TokenClientWatch, ParsesATokenEventAndKnowsShutdownAndNonsense) {
  const auto event = parse_watch_event(
      "id: 3\nevent: token\ndata: {\"version\":3,\"token_sha256\":\"ab\",\"expires_on\":1800000000,"
      "\"forced\":true,\"access_token\":\"secret-token\"}",
      kOptions);
  ASSERT_TRUE(event) << event.error().message;
  EXPECT_EQ(event->version, 3U);
  EXPECT_EQ(event->token_sha256, "ab");
  EXPECT_EQ(event->expires_on, std::chrono::system_clock::time_point(1'800'000'000s));
  EXPECT_TRUE(event->forced);
  EXPECT_EQ(event->access_token, std::optional<std::string>("secret-token"));

  const auto shutdown = parse_watch_event("event: shutdown\ndata: {}", kOptions);
  ASSERT_FALSE(shutdown);
  EXPECT_EQ(shutdown.error().code, Errc::broker_unavailable);
  for (const std::string_view bad :
       {"event: other\ndata: {}", "event: token\ndata: nope",
        "event: token\ndata: {\"version\":1,\"expires_on\":1}",
        "event: token\ndata: {\"version\":1,\"token_sha256\":\"a\",\"expires_on\":-5}",
        "event: token\ndata: {\"version\":1,\"token_sha256\":\"a\",\"expires_on\":1,"
        "\"access_token\":7,\"x\":\"secret-token\"}"}) {
    const auto refused = parse_watch_event(bad, kOptions);
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error().code, Errc::protocol_error) << bad;
    EXPECT_EQ(refused.error().message.find("secret-token"), std::string::npos);
  }
}

}  // namespace
}  // namespace token_client
