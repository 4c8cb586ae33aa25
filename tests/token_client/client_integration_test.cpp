// token_client against a real token-broker + imds-emulator (and, for the failures no broker
// produces on purpose, a socket that never answers and a fake server): what an application sees.
#include "fixture.hpp"
#include "tb/crypto.hpp"
#include "token_bench/run.hpp"
#include "token_client/token_client.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <nlohmann/json.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace integration {
namespace {

using namespace std::chrono_literals;
using token_client::Client;
using token_client::Errc;
using Clock = std::chrono::steady_clock;

/// A Unix socket that listens but never accepts: connect succeeds (the kernel queues it), and
/// no answer ever comes.
class SilentSocket {
 public:
  explicit SilentSocket(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    ok_ = fd_ >= 0 &&
          ::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0 &&
          ::listen(fd_, 16) == 0;
  }
  ~SilentSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  SilentSocket(const SilentSocket&) = delete;
  SilentSocket& operator=(const SilentSocket&) = delete;
  bool ok() const { return ok_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

/// Accepts connections on its own thread and answers each request with `raw` bytes.
class FakeServer {
 public:
  FakeServer(const std::string& path, std::string raw) : socket_(path), raw_(std::move(raw)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeServer() {
    stop_ = true;
    thread_.join();
  }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;
  bool ok() const { return socket_.ok(); }

 private:
  void serve() {
    while (!stop_) {
      pollfd listening{socket_.fd(), POLLIN, 0};
      if (::poll(&listening, 1, 20) <= 0) continue;
      const int client = ::accept4(socket_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      // Read the request head, then answer and close.
      std::string request;
      char buffer[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        pollfd readable{client, POLLIN, 0};
        if (::poll(&readable, 1, 2000) <= 0) break;
        const auto n = ::read(client, buffer, sizeof(buffer));
        if (n <= 0) break;
        request.append(buffer, static_cast<std::size_t>(n));
      }
      (void)!::write(client, raw_.data(), raw_.size());
      ::close(client);
    }
  }

  SilentSocket socket_;
  std::string raw_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class TokenClientWithBroker : public BrokerWithEmulator {
 protected:
  Client client(std::chrono::milliseconds timeout = 5000ms) const {
    return Client({.socket_path = socket_path(), .timeout = timeout});
  }

  token_client::Result fetch(const Client& with, const token_client::Request& request) {
    auto result = with.get_token(request);
    if (result) {
      remember_token(result->access_token);
      seen_.push_back(result->access_token);
    }
    return result;
  }

  /// No token fetched in this test appears in `message`.
  void expect_no_token_in(const std::string& message) const {
    for (const auto& token : seen_) {
      EXPECT_EQ(message.find(token), std::string::npos) << "a token appears in an error message";
    }
  }

  std::vector<std::string> seen_;
};

const token_client::Request kDatabaseRequest{.resource = kDatabase};

TEST_F(TokenClientWithBroker, FetchesABearerTokenThatExpiresInTheFuture) {
  start_emulator();
  start_broker();
  const auto before = std::chrono::system_clock::now();
  auto token = fetch(client(), kDatabaseRequest);
  ASSERT_TRUE(token) << token.error().message;
  EXPECT_FALSE(token->access_token.empty());
  EXPECT_EQ(token->token_type, "Bearer");
  EXPECT_EQ(token->resource, kDatabase);
  EXPECT_GT(token->expires_on, before + 30min);  // the emulator issues one-hour tokens
  EXPECT_LT(token->expires_on, before + 2h);
  // A min_validity the held token satisfies is served from the cache.
  auto again = fetch(client(), {.resource = kDatabase, .min_validity = 600s});
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->access_token, token->access_token) << "the second call is served from cache";
}

TEST_F(TokenClientWithBroker, ValueReturnsTheTokenOrThrowsTheMessage) {
  start_emulator();
  start_broker();
  const auto token = client().get_token(kDatabaseRequest).value();
  remember_token(token.access_token);
  EXPECT_FALSE(token.access_token.empty());
  try {
    (void)Client({.socket_path = dir_.file("absent.sock")}).get_token(kDatabaseRequest).value();
    FAIL() << "value() must throw";
  } catch (const token_client::TokenError& error) {
    EXPECT_EQ(error.error().code, Errc::broker_not_running);
    EXPECT_EQ(std::string(error.what()).find(token.access_token), std::string::npos);
  }
}

TEST_F(TokenClientWithBroker, NoSocketMeansBrokerNotRunningWithAClearMessage) {
  const std::string path = dir_.file("nobody-here.sock");
  auto result = Client({.socket_path = path}).get_token(kDatabaseRequest);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::broker_not_running);
  EXPECT_EQ(result.error().http_status, 0);
  EXPECT_EQ(result.error().message,
            "token broker is not running: nothing listens on " + path +
                " (connect: No such file or directory); start token-broker or set "
                "TOKEN_BROKER_SOCKET");
}

TEST_F(TokenClientWithBroker, UpstreamFailuresComeBackAs503WithDescriptionAndRetryAfter) {
  start_emulator();
  set_faults({{"sequence", json::array()}, {"then", {{"status", 500}}}});
  start_broker({"--request-timeout", "1"});
  const auto started = Clock::now();
  auto result = client().get_token(kDatabaseRequest);
  const auto took = Clock::now() - started;
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::broker_unavailable) << result.error().message;
  EXPECT_EQ(result.error().http_status, 503);
  EXPECT_GT(result.error().retry_after.count(), 0);
  const std::string& message = result.error().message;
  EXPECT_EQ(
      message.rfind("token broker could not get a token for https://database.windows.net/: ", 0),
      0u)
      << message;
  EXPECT_NE(message.find("500"), std::string::npos) << "the description names the upstream status";
  EXPECT_NE(message.find("(retry in " + std::to_string(result.error().retry_after.count()) + " s)"),
            std::string::npos)
      << message;
  EXPECT_LT(took, 4s) << "the broker's --request-timeout bounds the wait";
}

TEST_F(TokenClientWithBroker, SlowUpstreamIsAnswered503BeforeTheClientTimesOut) {
  start_emulator();
  set_faults({{"sequence", json::array()}, {"then", {{"delay_ms", 5000}}}});
  start_broker();
  // The broker is asked to wait at most 0.8 s (timeout less a fifth), so the app learns why.
  const auto started = Clock::now();
  auto result = client(1000ms).get_token(kDatabaseRequest);
  const auto took = Clock::now() - started;
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::broker_unavailable) << result.error().message;
  EXPECT_EQ(result.error().http_status, 503);
  EXPECT_LT(took, 1000ms);
}

TEST_F(TokenClientWithBroker, UnknownIdentityIsABadRequestThatSaysSo) {
  start_emulator();
  start_broker();
  auto result = client().get_token({.resource = kDatabase, .client_id = "not-a-known-identity"});
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::bad_request);
  EXPECT_EQ(result.error().http_status, 400);
  EXPECT_NE(result.error().message.find("Identity not found"), std::string::npos)
      << result.error().message;
  EXPECT_FALSE(token_client::is_transient(result.error().code));
}

TEST_F(TokenClientWithBroker, SilentSocketTimesOutWithinTheDeadline) {
  const std::string path = dir_.file("silent.sock");
  SilentSocket silent(path);
  ASSERT_TRUE(silent.ok()) << std::strerror(errno);
  const auto started = Clock::now();
  auto result = Client({.socket_path = path, .timeout = 300ms}).get_token(kDatabaseRequest);
  const auto took = Clock::now() - started;
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::timeout);
  EXPECT_EQ(result.error().message.rfind("token broker did not answer within 300 ms", 0), 0u)
      << result.error().message;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 300ms + 200ms);
}

TEST_F(TokenClientWithBroker, AnswerThatIsNotTheBrokersIsAProtocolErrorWithoutTheToken) {
  const std::string path = dir_.file("fake.sock");
  const std::string secret = "eyJzZWNyZXQiOiJ5ZXMifQ.eyJub3QiOiJzaG93biJ9.c2lnbmF0dXJl";
  seen_.push_back(secret);
  const std::string body = R"({"access_token":")" + secret + R"(","expires_on":"soon"})";
  FakeServer fake(path, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body);
  ASSERT_TRUE(fake.ok());
  auto result = Client({.socket_path = path, .timeout = 2000ms}).get_token(kDatabaseRequest);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, Errc::protocol_error);
  EXPECT_NE(result.error().message.find("\"expires_on\""), std::string::npos)
      << result.error().message;
  expect_no_token_in(result.error().message);
}

TEST_F(TokenClientWithBroker, NoErrorMessageEverCarriesAToken) {
  // Short tokens: after the first fetch, the held token soon drops below min_validity, and the
  // broker (upstream down) must answer 503; neither message may hold the token.
  start_emulator({"--lifetime", "63"});
  start_broker({"--min-validity", "60", "--request-timeout", "1"});
  auto token = fetch(client(), kDatabaseRequest);
  ASSERT_TRUE(token) << token.error().message;
  emulator_->stop();
  std::vector<std::string> messages;
  for (const auto& request :
       {token_client::Request{.resource = kDatabase, .min_validity = 3600s},
        token_client::Request{.resource = kDatabase, .client_id = "x", .object_id = "y"}}) {
    auto result = client().get_token(request);
    ASSERT_FALSE(result);
    messages.push_back(result.error().message);
  }
  for (const auto& message : messages) expect_no_token_in(message);
  EXPECT_NE(messages[1].find("at most one identity"), std::string::npos) << messages[1];
}

TEST_F(TokenClientWithBroker, ConcurrentCallsFromManyThreadsAllGetTheToken) {
  start_emulator();
  start_broker();
  const Client shared = client();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        if (shared.get_token(kDatabaseRequest)) ++ok;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok, 200);
  EXPECT_EQ(emulator_stats()["token_requests"], 1);
}

TEST_F(TokenClientWithBroker, BenchModeMeasuresSequentialGetTokenCalls) {
  start_emulator();
  start_broker();
  const std::vector<std::string> args = {
      "--token-client", "--unix", socket_path(), "--requests", "50", "--warmup", "0", "--json"};
  std::ostringstream out;
  std::ostringstream err;
  ASSERT_EQ(token_bench::run(args, out, err, false), 0) << err.str();
  const auto report = json::parse(out.str());
  EXPECT_EQ(report["requests"], 50);
  EXPECT_EQ(report["errors"], 0);
  EXPECT_EQ(report["non_200"], 0);
  EXPECT_EQ(report["connections"], 1);
  EXPECT_GT(report["p50_us"].get<double>(), 0.0);
  EXPECT_GE(report["p99_us"].get<double>(), report["p50_us"].get<double>());

  std::ostringstream text;
  const std::vector<std::string> text_args = {
      "--token-client", "--unix", socket_path(), "--duration", "0.2", "--warmup", "0"};
  ASSERT_EQ(token_bench::run(text_args, text, err, false), 0) << err.str();
  EXPECT_NE(text.str().find("token_client get_token(https://database.windows.net/)"),
            std::string::npos)
      << text.str();
  EXPECT_NE(text.str().find("one call at a time, a new connection each"), std::string::npos);
}

TEST_F(TokenClientWithBroker, BenchModeWithoutABrokerSaysSoAndExits1) {
  const std::vector<std::string> args = {"--token-client", "--unix", dir_.file("none.sock"),
                                         "--requests", "5"};
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(token_bench::run(args, out, err, false), 1);
  EXPECT_NE(err.str().find("token broker is not running"), std::string::npos) << err.str();
}

TEST_F(TokenClientWithBroker, AWatchGivesTheCurrentTokenThenEachNewOneAndEndsOnShutdown) {
  start_emulator();
  start_broker({"--force-refresh-interval", "1"});
  auto token = fetch(client(), kDatabaseRequest);
  ASSERT_TRUE(token) << token.error().message;
  auto watch = client().watch(kDatabaseRequest);
  ASSERT_TRUE(watch) << watch.error().message;
  auto first = watch->next(2s);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->version, 1U);
  EXPECT_EQ(first->token_sha256, tb::hex(tb::sha256(token->access_token)));
  EXPECT_FALSE(first->forced);
  EXPECT_FALSE(first->access_token.has_value());
  EXPECT_EQ(first->expires_on, token->expires_on);
  // Nothing new yet: a timeout, and the watch goes on.
  auto quiet = watch->next(200ms);
  ASSERT_FALSE(quiet);
  EXPECT_EQ(quiet.error().code, token_client::Errc::timeout);

  auto refreshed = client().refresh(kDatabaseRequest, token->access_token);
  ASSERT_TRUE(refreshed) << refreshed.error().message;
  remember_token(refreshed->token.access_token);
  auto second = watch->next(2s);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(second->version, 2U);
  EXPECT_TRUE(second->forced);
  EXPECT_EQ(second->token_sha256, tb::hex(tb::sha256(refreshed->token.access_token)));

  // include_token: the events carry the token.
  auto with_token = client().watch(kDatabaseRequest, true);
  ASSERT_TRUE(with_token) << with_token.error().message;
  auto carried = with_token->next(2s);
  ASSERT_TRUE(carried) << carried.error().message;
  EXPECT_EQ(carried->access_token, std::optional<std::string>(refreshed->token.access_token));

  // SIGTERM: the watch ends with a transient error, so callers watch again.
  ASSERT_EQ(::kill(broker_->pid(), SIGTERM), 0);
  auto ended = watch->next(5s);
  ASSERT_FALSE(ended);
  EXPECT_EQ(ended.error().code, token_client::Errc::broker_unavailable);
  EXPECT_TRUE(token_client::is_transient(ended.error().code));
  expect_no_token_in(ended.error().message);
}

TEST_F(TokenClientWithBroker, AWatchThatCannotStartSaysWhyLikeGetToken) {
  auto none = client().watch(kDatabaseRequest);  // no broker
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, token_client::Errc::broker_not_running);
  start_emulator();
  start_broker();
  auto no_resource = client().watch({});
  ASSERT_FALSE(no_resource);
  EXPECT_EQ(no_resource.error().code, token_client::Errc::bad_request);
  auto unknown = client().watch({.resource = kDatabase, .client_id = "not-a-known-identity"});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, token_client::Errc::bad_request) << unknown.error().message;
}

}  // namespace
}  // namespace integration
