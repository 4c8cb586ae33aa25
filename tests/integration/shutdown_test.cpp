// SIGTERM under load, with real processes and raw sockets: the drain of the one server core
// (tb::http::HttpServer::drain / close_busy) as the broker uses it. No request that reached the
// broker goes unanswered: requests in flight and those already sent behind them are answered,
// the last one on each connection with `Connection: close`; requests still waiting for the
// upstream when the grace ends get 503 with Retry-After; then the broker exits 0.
#include "fixture.hpp"
#include "raw_client.hpp"

#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <thread>

namespace integration {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test_support::wait_until;

std::string token_request(std::string_view resource_query = kDatabaseQuery,
                          std::string_view extra = "") {
  return fmt::format("GET /v1/token?resource={}{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
                     resource_query, extra);
}

std::string error_of(const Answer& answer) {
  auto body = json::parse(answer.body(), nullptr, false);
  return body.is_object() && body.contains("error") ? body["error"].get<std::string>() : "";
}

class Shutdown : public BrokerWithEmulator {
 protected:
  void remember(const Answer& answer) {
    auto body = json::parse(answer.body(), nullptr, false);
    if (body.is_object() && body.contains("access_token") && body["access_token"].is_string()) {
      remember_token(body["access_token"]);
    }
  }
};

/// What one closed-loop client saw: answers, connections the broker ended with an answer that
/// said `Connection: close`, and requests it sent that got no answer (the defect: a reset, a
/// broken pipe or an end of stream where a response was due).
struct ClientTally {
  std::size_t answered = 0;
  std::size_t non_200 = 0;
  std::size_t closed_by_answer = 0;
  std::size_t lost = 0;
};

TEST_F(Shutdown, SigtermUnderKeepAliveLoadAnswersEveryRequestSentAndExitsZero) {
  start_emulator();
  start_broker({"--prefetch", kDatabase, "--shutdown-grace", "10"});
  ASSERT_EQ(get_token().result_int(), 200);

  constexpr int kClients = 16;
  std::vector<ClientTally> tallies(kClients);
  std::atomic<int> warmed_up{0};
  std::string token;  // one of the answers, for the leak check
  std::mutex token_mutex;
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      auto& tally = tallies[static_cast<std::size_t>(i)];
      bool counted = false;
      // Closed loop over keep-alive connections until the broker takes no new connection.
      while (true) {
        Raw connection(socket_path());
        if (!connection.ok()) return;  // refused: the broker is draining or gone
        while (true) {
          if (!connection.send(token_request())) {
            ++tally.lost;  // the broker closed a connection it had not said it would close
            break;
          }
          const auto answer = connection.next_response(15s);
          if (!answer) {
            ++tally.lost;
            break;
          }
          ++tally.answered;
          if (answer->result_int() != 200) ++tally.non_200;
          if (tally.answered == 1) {
            const std::lock_guard lock(token_mutex);
            if (token.empty()) token = json::parse(answer->body())["access_token"];
          }
          if (!counted && tally.answered >= 50) {
            counted = true;
            ++warmed_up;
          }
          if (!answer->keep_alive()) {
            ++tally.closed_by_answer;
            break;
          }
        }
      }
    });
  }
  EXPECT_TRUE(wait_until([&] { return warmed_up == kClients; }, 20s));
  const auto signalled = Clock::now();
  broker_->signal(SIGTERM);
  const auto code = broker_->wait(15s);
  const auto exit_after = Clock::now() - signalled;
  for (auto& client : clients) client.join();
  if (!token.empty()) remember_token(token);

  EXPECT_EQ(code, 0);
  // Busy connections end within the idle grace of the drain, not the shutdown grace.
  EXPECT_LT(exit_after, 5s);
  ClientTally total;
  for (const auto& tally : tallies) {
    total.answered += tally.answered;
    total.non_200 += tally.non_200;
    total.closed_by_answer += tally.closed_by_answer;
    total.lost += tally.lost;
  }
  EXPECT_EQ(total.lost, 0u) << "requests sent that got no answer";
  EXPECT_EQ(total.non_200, 0u);
  // Every connection open at SIGTERM ended with an answer saying so.
  EXPECT_GE(total.closed_by_answer, static_cast<std::size_t>(kClients));
  RecordProperty("answered", std::to_string(total.answered));
}

TEST_F(Shutdown, RequestsBehindAWaitingOneOnTheSameConnectionAreAllAnswered) {
  const std::string slow = "https%3A%2F%2Fslow.example%2F";
  start_emulator();
  set_faults({{"sequence", json::array({json{{"delay_ms", 1500}}})}});
  start_broker({"--shutdown-grace", "10"});
  Raw connection(socket_path());
  ASSERT_TRUE(connection.ok());
  // One request that waits for the upstream, two pipelined behind it.
  ASSERT_TRUE(connection.send(token_request(slow) + token_request() + token_request()));
  ASSERT_TRUE(wait_until([&] { return emulator_stats()["in_flight"] == 1; }, 5s));
  broker_->signal(SIGTERM);
  auto answers = connection.read_responses(3, 10s);
  ASSERT_EQ(answers.size(), 3u);
  for (const auto& answer : answers) {
    EXPECT_EQ(answer.result_int(), 200) << answer.body();
    remember(answer);
  }
  EXPECT_TRUE(answers[0].keep_alive());
  EXPECT_TRUE(answers[1].keep_alive());
  EXPECT_FALSE(answers[2].keep_alive()) << "the last answer closes the connection";
  auto [rest, end] = connection.read_to_end(5s);
  EXPECT_TRUE(rest.empty());
  EXPECT_EQ(end, Raw::End::eof);
  EXPECT_EQ(broker_->wait(10s), 0);
}

TEST_F(Shutdown, RequestsStillWaitingWhenTheGraceEndsGet503WithRetryAfter) {
  const std::string slow = "https%3A%2F%2Fslow.example%2F";
  start_emulator();
  set_faults({{"sequence", json::array({json{{"delay_ms", 8000}}})}});
  start_broker({"--shutdown-grace", "2"});
  std::vector<Raw> waiting;
  for (int i = 0; i < 3; ++i) {
    waiting.emplace_back(socket_path());
    ASSERT_TRUE(waiting.back().ok());
    ASSERT_TRUE(waiting.back().send(token_request(slow, "&timeout=30")));
  }
  ASSERT_TRUE(wait_until([&] { return emulator_stats()["in_flight"] == 1; }, 5s));
  const auto signalled = Clock::now();
  broker_->signal(SIGTERM);
  for (auto& connection : waiting) {
    auto answers = connection.read_responses(1, 10s);
    ASSERT_EQ(answers.size(), 1u);
    const auto& answer = answers.front();
    EXPECT_EQ(answer.result_int(), 503) << answer.body();
    EXPECT_EQ(error_of(answer), "shutting_down");
    EXPECT_FALSE(answer[boost::beast::http::field::retry_after].empty());
    EXPECT_FALSE(answer.keep_alive());
  }
  const auto answered_after = Clock::now() - signalled;
  EXPECT_GE(answered_after, 1900ms) << "answered before the grace was over";
  EXPECT_LT(answered_after, 5s);
  EXPECT_EQ(broker_->wait(5s), 0);
}

TEST_F(Shutdown, IdleKeptAliveConnectionIsClosedCleanlyAfterTheIdleGrace) {
  start_emulator();
  start_broker({"--shutdown-grace", "10"});
  Raw idle(socket_path());
  ASSERT_TRUE(idle.ok());
  ASSERT_TRUE(idle.send(token_request()));
  auto answers = idle.read_responses(1);
  ASSERT_EQ(answers.size(), 1u);
  remember(answers.front());
  ASSERT_TRUE(answers.front().keep_alive());
  const auto signalled = Clock::now();
  broker_->signal(SIGTERM);
  auto [rest, end] = idle.read_to_end(5s);
  EXPECT_TRUE(rest.empty());
  EXPECT_EQ(end, Raw::End::eof) << "a clean end of stream, not a reset";
  EXPECT_LT(Clock::now() - signalled, 3s);
  EXPECT_EQ(broker_->wait(5s), 0);
  // New connections are not taken while draining or after.
  EXPECT_FALSE(Raw(socket_path()).ok());
}

}  // namespace
}  // namespace integration
