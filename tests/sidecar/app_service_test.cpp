// Pins: the App Service source's request (query, identity parameter names), its error and
// response parsing, its settings checks and the identity header file.
#include "broker/app_service.hpp"

#include "broker/imds.hpp"

#include "fakes.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/url/parse_query.hpp>

#include <filesystem>
#include <fstream>
#include <map>

namespace broker {
namespace {

using namespace std::chrono_literals;
using testing::FakeClock;

const SystemTime kNow{std::chrono::seconds(FakeClock::kStartUnix)};

std::map<std::string, std::string> decode_query(const std::string& query) {
  std::map<std::string, std::string> out;
  auto params = boost::urls::parse_query(query);
  EXPECT_TRUE(params) << query;
  if (!params) return out;
  for (const auto& param : *params) out[param.key.decode()] = param.value.decode();
  return out;
}

// ---- request building ----

TEST(AppServiceQuery, SpeaksApiVersion20190801WithTheResource) {
  const auto query = decode_query(app_service_query(TokenKey{{}, "https://vault.azure.net"}));
  EXPECT_EQ(query, (std::map<std::string, std::string>{{"api-version", "2019-08-01"},
                                                       {"resource", "https://vault.azure.net"}}));
}

TEST(AppServiceQuery, MapsEachIdentityToAppServicesParameterName) {
  const std::map<Identity::Kind, std::string> expected = {
      {Identity::Kind::client_id, "client_id"},
      {Identity::Kind::object_id, "principal_id"},
      {Identity::Kind::mi_res_id, "mi_res_id"}};
  for (const auto& [kind, name] : expected) {
    const auto query = decode_query(app_service_query(TokenKey{{kind, "id/1+2&x"}, "r"}));
    EXPECT_EQ(query.at(name), "id/1+2&x") << name;
    EXPECT_EQ(query.size(), 3U) << name;
  }
}

TEST(AppServiceQuery, EncodesReservedCharactersInTheResource) {
  const std::string query = app_service_query(TokenKey{{}, "https://x/+y&z=1"});
  EXPECT_EQ(query.find('+'), std::string::npos) << query;
  EXPECT_EQ(decode_query(query).at("resource"), "https://x/+y&z=1");
}

// ---- responses and errors ----

TEST(AppServiceResponse, TheFiveFieldShapeParsesWithExpiresOnAsAString) {
  const auto result = parse_token_response(
      R"({"access_token":"a.b.c","expires_on":")" + std::to_string(FakeClock::kStartUnix + 3600) +
          R"(","resource":"https://vault.azure.net","token_type":"Bearer","client_id":"c-1"})",
      kNow);
  ASSERT_TRUE(std::holds_alternative<UpstreamToken>(result));
  const auto& token = std::get<UpstreamToken>(result);
  EXPECT_EQ(token.expires_in, 3600s);
  EXPECT_EQ(token.client_id, "c-1");
  EXPECT_EQ(token.resource, "https://vault.azure.net");
}

TEST(AppServiceError, ReadsAppServicesMessageAndRetryAfter) {
  const auto error = app_service_error(
      500, R"({"statusCode":500,"message":"An unexpected error occurred","correlationId":"c"})",
      "3", kNow);
  EXPECT_EQ(error.status, 500U);
  EXPECT_EQ(error.description, "An unexpected error occurred");
  EXPECT_EQ(error.retry_after, 3000ms);
}

TEST(AppServiceError, A401SaysTheIdentityHeaderWasRefusedAndWhatToDo) {
  const auto error = app_service_error(401, R"({"Message":"Unauthorized"})", "", kNow);
  EXPECT_EQ(error.error, "identity_header_rejected");
  EXPECT_NE(error.description.find("Unauthorized"), std::string::npos);
  EXPECT_NE(error.description.find("IDENTITY_HEADER_FILE"), std::string::npos);
}

TEST(AppServiceError, A400HintsAtTheIdentityAssignment) {
  const auto error = app_service_error(
      400, R"({"error":"invalid_request","error_description":"no MSI"})", "", kNow);
  EXPECT_EQ(error.error, "invalid_request");
  EXPECT_NE(error.description.find("no MSI"), std::string::npos);
  EXPECT_NE(error.description.find("assigned"), std::string::npos);
}

TEST(AppServiceError, ABodylessErrorIsNamedByItsStatus) {
  EXPECT_NE(app_service_error(502, "<html>", "", kNow).description.find("HTTP 502"),
            std::string::npos);
}

TEST(HeaderValue, RefusesControlCharactersAndNonAscii) {
  EXPECT_TRUE(is_header_value("abc DEF-123_=/+"));
  EXPECT_FALSE(is_header_value("a\r\nb"));
  EXPECT_FALSE(is_header_value("tab\there"));
  EXPECT_FALSE(is_header_value("caf\xc3\xa9"));
}

// ---- the source ----

AppServiceSettings settings(std::string endpoint, std::string header = "h",
                            std::string header_file = {}) {
  AppServiceSettings s;
  s.endpoint = std::move(endpoint);
  s.identity_header = std::move(header);
  s.identity_header_file = std::move(header_file);
  return s;
}

TEST(AppServiceSource, RefusesEndpointsThatAreNotHttpUrls) {
  FakeClock clock;
  for (const char* endpoint : {"ftp://127.0.0.1/msi/token", "msi/token", "http:///msi/token",
                               "http://u:p@127.0.0.1/msi/token"}) {
    EXPECT_THROW(AppServiceSource(settings(endpoint), clock), std::invalid_argument) << endpoint;
  }
  AppServiceSource source(settings("http://127.0.0.1:41741/msi/token"), clock);
  EXPECT_EQ(source.name(), "app-service");
  EXPECT_EQ(source.describe(), "http://127.0.0.1:41741/msi/token");
  EXPECT_NO_THROW(AppServiceSource(settings("https://localhost:8443/msi/token?x=1"), clock));
}

FetchResult run_fetch(Source& source, const TokenKey& key) {
  boost::asio::io_context io;
  auto future = boost::asio::co_spawn(io, source.fetch(key, 1s), boost::asio::use_future);
  io.run();
  return future.get();
}

TEST(AppServiceSource, AMissingHeaderFileFailsWithoutTouchingTheNetwork) {
  FakeClock clock;
  // Port 9 on loopback: nothing listens, but the header file is read first.
  AppServiceSource source(settings("http://127.0.0.1:9/msi/token", "", "/nonexistent/header"),
                          clock);
  auto result = run_fetch(source, TokenKey{{}, "https://vault.azure.net"});
  ASSERT_TRUE(std::holds_alternative<FetchError>(result));
  const auto& error = std::get<FetchError>(result);
  EXPECT_EQ(error.error, "identity_header_unreadable");
  EXPECT_NE(error.description.find("IDENTITY_HEADER_FILE /nonexistent/header"), std::string::npos)
      << error.description;
}

TEST(AppServiceSource, AHeaderFileWithALineBreakInsideIsRefusedNotSent) {
  FakeClock clock;
  const auto path =
      (std::filesystem::temp_directory_path() / ("tb-as-header-" + std::to_string(::getpid())))
          .string();
  std::ofstream(path) << "first\nX-Injected: 1\n";
  AppServiceSource source(settings("http://127.0.0.1:9/msi/token", "", path), clock);
  auto result = run_fetch(source, TokenKey{{}, "r"});
  std::filesystem::remove(path);
  ASSERT_TRUE(std::holds_alternative<FetchError>(result));
  EXPECT_EQ(std::get<FetchError>(result).error, "identity_header_invalid");
  EXPECT_EQ(std::get<FetchError>(result).description.find("Injected"), std::string::npos);
}

TEST(AppServiceSource, AnUnreachableEndpointIsNamed) {
  FakeClock clock;
  AppServiceSource source(settings("http://127.0.0.1:9/msi/token"), clock);
  auto result = run_fetch(source, TokenKey{{}, "r"});
  ASSERT_TRUE(std::holds_alternative<FetchError>(result));
  const auto& error = std::get<FetchError>(result);
  EXPECT_EQ(error.status, 0U);
  EXPECT_NE(error.description.find("http://127.0.0.1:9/msi/token"), std::string::npos)
      << error.description;
}

}  // namespace
}  // namespace broker
