// Runs the real bench loop against a tiny HTTP/1.1 server on a temporary Unix socket (its own
// thread) and checks that what the bench counts agrees with what the server saw.
#include "token_bench/bench.hpp"
#include "token_bench/run.hpp"

#include "temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace token_bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using std::chrono::milliseconds;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

struct Behaviour {
  unsigned status = 200;
  unsigned close_every = 0;  // answer every Nth request with "Connection: close", then close
  bool silent = false;       // read requests, never answer
};

// Keep-alive HTTP/1.1 server answering every GET with a small JSON body.
class TestServer {
 public:
  explicit TestServer(Behaviour behaviour = {})
      : behaviour_(behaviour), socket_path_(dir_.file("s.sock")) {
    acceptor_.open();
    acceptor_.bind(local::endpoint(socket_path_));
    acceptor_.listen();
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { io_.run_for(std::chrono::seconds(30)); });
  }
  ~TestServer() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  const std::string& socket_path() const { return socket_path_; }
  std::uint64_t accepted() const { return accepted_; }
  std::uint64_t answered() const { return answered_; }

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(use_nothrow);
      if (ec) co_return;
      ++accepted_;
      asio::co_spawn(io_, session(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> session(local::socket socket) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> request;
      auto [read_ec, read] = co_await http::async_read(socket, buffer, request, use_nothrow);
      if (read_ec) co_return;
      if (behaviour_.silent) {
        asio::steady_timer forever(io_, std::chrono::seconds(30));
        co_await forever.async_wait(use_nothrow);
        co_return;
      }
      const std::uint64_t number = ++answered_;
      const bool close = behaviour_.close_every != 0 && number % behaviour_.close_every == 0;
      http::response<http::string_body> response(static_cast<http::status>(behaviour_.status), 11);
      response.set(http::field::content_type, "application/json");
      response.body() = R"({"access_token":"x","expires_in":3600})";
      response.keep_alive(!close);
      response.prepare_payload();
      auto [write_ec, written] = co_await http::async_write(socket, response, use_nothrow);
      if (write_ec || close) {
        boost::system::error_code ignored;
        socket.shutdown(local::socket::shutdown_both, ignored);
        co_return;
      }
    }
  }

  Behaviour behaviour_;
  test_support::TempDir dir_;
  std::string socket_path_;
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> answered_{0};
  asio::io_context io_;
  local::acceptor acceptor_{io_};
  std::thread thread_;
};

Options options_for(const TestServer& server) {
  Options options;
  options.target = UnixTarget{server.socket_path()};
  options.path = "/v1/token?resource=https%3A%2F%2Fdatabase.windows.net%2F";
  options.connections = 4;
  options.duration = milliseconds(500);
  options.warmup = milliseconds(100);
  return options;
}

TEST(TokenBenchRun, HalfASecondAgainstAHealthyServerCountsConsistently) {
  TestServer server;
  const auto started = std::chrono::steady_clock::now();
  auto report = run_bench(options_for(server));
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_GT(report->requests, 0U);
  EXPECT_EQ(report->errors, 0U) << report->first_error;
  EXPECT_EQ(report->non_200, 0U);
  EXPECT_EQ(report->connections, 4U);
  EXPECT_EQ(exit_code(*report), 0);
  // The window is the duration (the timer fires no earlier), and the run ends soon after it.
  EXPECT_GE(report->elapsed, milliseconds(500));
  EXPECT_LT(report->elapsed, milliseconds(900));
  EXPECT_LT(took, std::chrono::seconds(3));
  // Warm-up requests are answered but not counted.
  EXPECT_GT(server.answered(), report->requests);
  // One connection each (plus the pre-flight probe): keep-alive was used.
  EXPECT_EQ(server.accepted(), 5U);
  ASSERT_TRUE(report->latency);
  const LatencySummary& latency = *report->latency;
  EXPECT_EQ(latency.count, report->requests);
  EXPECT_GT(latency.p50, 0U);
  EXPECT_LE(latency.p50, latency.p90);
  EXPECT_LE(latency.p90, latency.p99);
  EXPECT_LE(latency.p99, latency.p999);
  EXPECT_LE(latency.p999, latency.max);
}

TEST(TokenBenchRun, RequestsModeMeasuresExactlyNAndReconnectsCleanlyAfterConnectionClose) {
  TestServer server(Behaviour{.close_every = 7});
  Options options = options_for(server);
  options.requests = 300;
  options.warmup = milliseconds(0);
  auto report = run_bench(options);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->requests, 300U);
  EXPECT_EQ(report->errors, 0U) << report->first_error;
  EXPECT_EQ(report->non_200, 0U);
  EXPECT_EQ(server.answered(), 300U);
  // Every 7th answer closed its connection: 300 / 7 = 42 reconnects, 4 connects, 1 probe.
  EXPECT_EQ(server.accepted(), 4U + 42U + 1U);
}

TEST(TokenBenchRun, NonOkStatusesAreCountedApartAndFailTheRun) {
  TestServer server(Behaviour{.status = 404});
  Options options = options_for(server);
  options.requests = 50;
  options.warmup = milliseconds(0);
  auto report = run_bench(options);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->requests, 50U);
  EXPECT_EQ(report->non_200, 50U);
  EXPECT_EQ(report->errors, 0U);
  EXPECT_EQ(exit_code(*report), 1);
}

TEST(TokenBenchRun, ASilentServerProducesTimeoutErrors) {
  TestServer server(Behaviour{.silent = true});
  Options options = options_for(server);
  options.connections = 2;
  options.requests = 2;
  options.warmup = milliseconds(0);
  options.timeout = milliseconds(200);
  const auto started = std::chrono::steady_clock::now();
  auto report = run_bench(options);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->requests, 0U);
  EXPECT_EQ(report->errors, 2U);
  EXPECT_EQ(report->first_error, "read: no answer within 200 ms");
  EXPECT_FALSE(report->latency);
  EXPECT_EQ(exit_code(*report), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
}

TEST(TokenBenchRun, NothingListeningIsOneClearStartError) {
  test_support::TempDir dir;
  Options options;
  options.target = UnixTarget{dir.file("absent.sock")};
  auto report = run_bench(options);
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().message, "cannot connect to unix:" + dir.file("absent.sock") +
                                        ": No such file or directory — is the server running?");
}

TEST(TokenBenchRun, CommandLineJsonReportHasTheDocumentedKeys) {
  TestServer server;
  std::vector<std::string> args{
      "--unix", server.socket_path(), "--connections", "2", "--duration", "0.2", "--warmup", "0",
      "--json"};
  std::ostringstream out, err;
  EXPECT_EQ(run(args, out, err, false), 0) << err.str();
  EXPECT_EQ(err.str(), "");
  auto json = nlohmann::ordered_json::parse(out.str());  // keeps the printed order
  std::vector<std::string> keys;
  for (const auto& item : json.items()) keys.push_back(item.key());
  EXPECT_EQ(keys,
            (std::vector<std::string>{"requests", "seconds", "rps", "p50_us", "p90_us", "p99_us",
                                      "p999_us", "max_us", "errors", "non_200", "connections"}));
  EXPECT_GT(json["requests"].get<std::uint64_t>(), 0U);
  EXPECT_EQ(json["errors"], 0);
  EXPECT_EQ(json["connections"], 2);
}

TEST(TokenBenchRun, UsageErrorsExitTwoAndUnreachableTargetsOne) {
  std::ostringstream out, err;
  std::vector<std::string> bad{"--connections", "0", "--unix", "/tmp/x"};
  EXPECT_EQ(run(bad, out, err, false), 2);
  EXPECT_EQ(err.str(),
            "token-bench: --connections expects a whole number from 1 to 10000, got '0'\n"
            "Try 'token-bench --help'.\n");
  test_support::TempDir dir;
  std::vector<std::string> absent{"--unix", dir.file("absent.sock")};
  std::ostringstream out2, err2;
  EXPECT_EQ(run(absent, out2, err2, false), 1);
  EXPECT_EQ(out2.str(), "");
  std::vector<std::string> help{"--help"};
  std::ostringstream out3, err3;
  EXPECT_EQ(run(help, out3, err3, false), 0);
  EXPECT_EQ(out3.str(), help_text());
}

}  // namespace
}  // namespace token_bench
