// Pins the transport end to end on 127.0.0.1:0: real HTTP, faults, counters, a dropped
// connection, a delay that does not block other connections, and a clean stop.
#include "imds_emulator/server.hpp"
#include "test_support.hpp"

#include <tb/http_client.hpp>

#include <gtest/gtest.h>
#include <boost/asio/post.hpp>

#include <future>
#include <thread>

namespace imds_emulator {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using nlohmann::json;
using namespace std::chrono_literals;

const std::string kToken =
    "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net";

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.emplace(io_, emulator_,
                    asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port_ = std::to_string(server_->port());
    server_->start();
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    asio::post(io_, [this] { server_->stop(); });
    thread_.join();  // returns only once every session has unwound
  }

  boost::system::result<tb::http::Response> request(http::verb method, const std::string& target,
                                                    std::string body = {},
                                                    std::chrono::milliseconds timeout = 5s) {
    tb::http::Request request{method, target, {{"Metadata", "true"}}, std::move(body)};
    return tb::http::request_tcp("127.0.0.1", port_, std::move(request), {timeout});
  }

  Emulator emulator_{Config{}, testing::shared_signer()};
  asio::io_context io_;
  std::optional<Server> server_;
  std::string port_;
  std::thread thread_;
};

TEST_F(ServerTest, ServesTokensFaultsAndStatsOverHttp) {
  auto token = request(http::verb::get, kToken);
  ASSERT_TRUE(token) << token.error().message();
  EXPECT_EQ(token->result_int(), 200U);
  EXPECT_EQ((*token)[http::field::content_type], "application/json; charset=utf-8");
  const json body = json::parse(token->body());
  EXPECT_EQ(body["resource"], "https://vault.azure.net");
  EXPECT_EQ(testing::jwt_part(body["access_token"], 1)["aud"], "https://vault.azure.net");

  auto jwks = request(http::verb::get, "/_emulator/jwks");
  ASSERT_TRUE(jwks);
  EXPECT_EQ(json::parse(jwks->body()), testing::shared_signer().jwks());

  auto scripted = request(http::verb::post, "/_emulator/faults",
                          R"({"sequence":[{"status":404,"count":2,"retry_after":"1"}]})");
  ASSERT_TRUE(scripted);
  EXPECT_EQ(scripted->result_int(), 200U);
  for (int i = 0; i < 2; ++i) {
    auto fault = request(http::verb::get, kToken);
    ASSERT_TRUE(fault);
    EXPECT_EQ(fault->result_int(), 404U);
    EXPECT_EQ((*fault)[http::field::retry_after], "1");
  }
  auto recovered = request(http::verb::get, kToken);
  ASSERT_TRUE(recovered);
  EXPECT_EQ(recovered->result_int(), 200U);

  auto bad = request(http::verb::post, "/_emulator/faults", R"({"sequence":[{"status":1}]})");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->result_int(), 400U);
  EXPECT_EQ(request(http::verb::get, "/nowhere")->result_int(), 404U);

  auto stats = request(http::verb::get, "/_emulator/stats");
  ASSERT_TRUE(stats);
  EXPECT_EQ(json::parse(stats->body()), (json{{"token_requests", 4},
                                              {"tokens_issued", 2},
                                              {"responses", {{"200", 2}, {"404", 2}}},
                                              {"by_resource", {{"https://vault.azure.net", 4}}},
                                              {"in_flight", 0},
                                              {"max_in_flight", 1},
                                              {"throttled", 0}}));
}

TEST_F(ServerTest, DropClosesTheConnectionWithoutAResponse) {
  ASSERT_TRUE(
      request(http::verb::post, "/_emulator/faults", R"({"sequence":[{"action":"drop"}]})"));
  auto dropped = request(http::verb::get, kToken);
  EXPECT_FALSE(dropped);
  EXPECT_TRUE(request(http::verb::get, kToken));
}

TEST_F(ServerTest, ResetSendsATruncatedBody) {
  ASSERT_TRUE(
      request(http::verb::post, "/_emulator/faults", R"({"sequence":[{"action":"reset"}]})"));
  EXPECT_FALSE(request(http::verb::get, kToken));
}

TEST_F(ServerTest, DelayDoesNotBlockOtherConnections) {
  ASSERT_TRUE(request(http::verb::post, "/_emulator/faults",
                      R"({"sequence":[{"delay_ms":800,"status":503}]})"));
  const auto started = std::chrono::steady_clock::now();
  auto slow = std::async(std::launch::async, [this] { return request(http::verb::get, kToken); });
  // Wait until the delayed request is counted in flight, then use a second connection.
  json stats = json::object();
  for (int i = 0; i < 100 && stats.value("in_flight", 0) == 0; ++i) {
    std::this_thread::sleep_for(5ms);
    stats = json::parse(request(http::verb::get, "/_emulator/stats")->body());
  }
  EXPECT_EQ(stats["in_flight"], 1);
  auto fast = request(http::verb::get, kToken);
  ASSERT_TRUE(fast);
  EXPECT_EQ(fast->result_int(), 200U);
  EXPECT_EQ(slow.wait_for(0s), std::future_status::timeout);  // served while the first waits
  auto delayed = slow.get();
  ASSERT_TRUE(delayed);
  EXPECT_EQ(delayed->result_int(), 503U);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 800ms);
}

TEST_F(ServerTest, StopEndsHangingConnections) {
  ASSERT_TRUE(request(http::verb::post, "/_emulator/faults", R"({"then":{"action":"hang"}})"));
  auto hung = std::async(std::launch::async, [this] { return request(http::verb::get, kToken); });
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(5ms);
    if (json::parse(request(http::verb::get, "/_emulator/stats")->body())["in_flight"] == 1) break;
  }
  asio::post(io_, [this] { server_->stop(); });
  EXPECT_FALSE(hung.get());  // the client sees the connection close, not its own timeout
}

TEST_F(ServerTest, CallsListEveryValidTokenRequestWithItsArrivalTime) {
  ASSERT_TRUE(request(http::verb::post, "/_emulator/faults",
                      R"({"sequence":[{"status":503},{"action":"drop"}]})"));
  const auto unix_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const auto before = unix_ms();
  EXPECT_EQ(request(http::verb::get, kToken)->result_int(), 503U);
  EXPECT_FALSE(request(http::verb::get, kToken));  // dropped, still listed
  tb::http::Request no_metadata{http::verb::get, kToken, {}, {}};
  EXPECT_EQ(tb::http::request_tcp("127.0.0.1", port_, std::move(no_metadata))->result_int(), 400U);
  const auto after = unix_ms();

  auto listed = request(http::verb::get, "/_emulator/calls");
  ASSERT_TRUE(listed);
  const json calls = json::parse(listed->body())["calls"];
  ASSERT_EQ(calls.size(), 2U) << calls.dump();
  EXPECT_EQ(calls[0]["status"], 503);
  EXPECT_EQ(calls[1]["action"], "drop");
  for (const auto& call : calls) {
    EXPECT_EQ(call["resource"], "https://vault.azure.net");
    EXPECT_GE(call["at_ms"].get<std::int64_t>(), before);
    EXPECT_LE(call["at_ms"].get<std::int64_t>(), after);
  }
  EXPECT_LE(calls[0]["at_ms"], calls[1]["at_ms"]);
}

}  // namespace
}  // namespace imds_emulator
