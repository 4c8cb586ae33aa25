// The rotation soak, short: an emulator issuing 10 s tokens (so that the broker renews one every
// few seconds), a broker with --min-validity 3, and closed-loop clients on kept-alive
// connections for TB_SOAK_SECONDS (default 60; `TB_SOAK_SECONDS=300 ./scripts/test -R Soak`
// for the long one, docs/performance.md). Every answer is a 200 whose token has at least the
// minimum left by its expires_in, its expires_on and its own exp, the broker renews as it
// should, and its memory and open descriptors stay flat.
#include "fixture.hpp"
#include "jwt_peek.hpp"
#include "raw_client.hpp"

#include <fmt/format.h>

#include <dirent.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

namespace integration {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test_support::wait_until;

constexpr int kMinValidity = 3;

std::chrono::seconds soak_duration() {
  const char* text = std::getenv("TB_SOAK_SECONDS");
  const int seconds = text != nullptr ? std::atoi(text) : 60;
  return std::chrono::seconds(seconds > 0 ? seconds : 60);
}

/// VmRSS of `pid` in KiB.
std::int64_t rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

/// Open descriptors of `pid`.
int open_files(pid_t pid) {
  DIR* dir = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (dir == nullptr) return -1;
  int count = 0;
  while (const dirent* entry = ::readdir(dir)) count += entry->d_name[0] != '.' ? 1 : 0;
  ::closedir(dir);
  return count;
}

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Tally {
  std::uint64_t answers = 0;
  std::uint64_t non_200 = 0;
  std::uint64_t too_short = 0;   ///< an answer with less than the minimum left, by any measure
  std::uint64_t lost = 0;        ///< a request sent that got no answer
  std::set<std::string> tokens;  ///< distinct tokens served (by signature)
  std::string first_problem;
};

class Soak : public BrokerWithEmulator {};

TEST_F(Soak, RotatingTokensUnderClosedLoopLoadServeOnly200sAboveTheMinimumWithFlatResources) {
  const auto duration = soak_duration();
  start_emulator({"--lifetime", "10"});
  // Without ASan's quarantine (freed memory it holds back to catch use-after-free) the broker's
  // memory shows what the broker keeps, not what the sanitizer does.
  std::string asan = std::getenv("ASAN_OPTIONS") != nullptr ? std::getenv("ASAN_OPTIONS") : "";
  asan += std::string(asan.empty() ? "" : ":") + "quarantine_size_mb=0";
  start_broker({"--prefetch", kDatabase, "--min-validity", std::to_string(kMinValidity)},
               {{"ASAN_OPTIONS", asan}});

  constexpr int kClients = 4;
  std::vector<Tally> tallies(kClients);
  std::atomic<bool> stop{false};
  std::mutex remember_mutex;  // the leak check's list is not thread-safe
  std::vector<std::thread> clients;
  const std::string request = fmt::format(
      "GET /v1/token?resource={}&timeout=5 HTTP/1.1\r\nHost: localhost\r\n\r\n", kDatabaseQuery);
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      auto& tally = tallies[static_cast<std::size_t>(i)];
      const auto problem = [&](const std::string& what) {
        if (tally.first_problem.empty()) tally.first_problem = what;
      };
      while (!stop) {
        Raw connection(socket_path());
        if (!connection.ok()) {
          ++tally.lost;
          problem("could not connect");
          std::this_thread::sleep_for(10ms);
          continue;
        }
        while (!stop) {
          if (!connection.send(request)) {
            ++tally.lost;
            problem("send failed");
            break;
          }
          const auto next = connection.next_response(10s);
          if (!next) {
            ++tally.lost;
            problem("no answer");
            break;
          }
          const auto received_ms = unix_ms();
          const auto& answer = *next;
          ++tally.answers;
          if (answer.result_int() != 200) {
            ++tally.non_200;
            problem("status " + std::to_string(answer.result_int()) + ": " + answer.body());
          } else {
            const auto body = json::parse(answer.body());
            const auto token = body["access_token"].get<std::string>();
            const auto expires_on = body["expires_on"].get<std::int64_t>();
            const auto expires_in = body["expires_in"].get<std::int64_t>();
            const auto claims = test_support::jwt_claims(token);
            const auto exp = claims.is_object() && claims.contains("exp")
                                 ? claims["exp"].get<std::int64_t>()
                                 : std::int64_t{0};
            // (The answer was on its way for a moment: 100 ms of slack for that, no more.)
            const bool short_by_expires_on =
                expires_on * 1000 - received_ms < kMinValidity * 1000 - 100;
            if (expires_in < kMinValidity || short_by_expires_on || exp < expires_on) {
              ++tally.too_short;
              problem(fmt::format("expires_in {} expires_on {} exp {} at {} ms", expires_in,
                                  expires_on, exp, received_ms));
            }
            if (tally.tokens.insert(test_support::jwt_signature(token)).second) {
              const std::lock_guard lock(remember_mutex);
              remember_token(token);
            }
          }
          if (!answer.keep_alive()) break;
        }
      }
    });
  }

  // Resources after a warm-up, and at the end.
  const pid_t pid = broker_->pid();
  std::this_thread::sleep_for(std::min<std::chrono::seconds>(duration / 6, 10s));
  const auto rss_start = rss_kib(pid);
  const auto fds_start = open_files(pid);
  std::this_thread::sleep_until(Clock::now() + duration -
                                std::min<std::chrono::seconds>(duration / 6, 10s));
  const auto rss_end = rss_kib(pid);
  const auto fds_end = open_files(pid);
  stop = true;
  for (auto& client : clients) client.join();

  Tally total;
  std::set<std::string> tokens;
  for (const auto& tally : tallies) {
    total.answers += tally.answers;
    total.non_200 += tally.non_200;
    total.too_short += tally.too_short;
    total.lost += tally.lost;
    tokens.insert(tally.tokens.begin(), tally.tokens.end());
    if (total.first_problem.empty()) total.first_problem = tally.first_problem;
  }
  RecordProperty("answers", std::to_string(total.answers));
  RecordProperty("tokens", std::to_string(tokens.size()));
  RecordProperty("rss_kib", std::to_string(rss_start) + " -> " + std::to_string(rss_end));
  RecordProperty("fds", std::to_string(fds_start) + " -> " + std::to_string(fds_end));
  std::cout << fmt::format("soak {} s: {} answers, {} tokens, RSS {} -> {} KiB, fds {} -> {}\n",
                           duration.count(), total.answers, tokens.size(), rss_start, rss_end,
                           fds_start, fds_end);

  EXPECT_GT(total.answers, 1000u);
  EXPECT_EQ(total.non_200, 0u) << total.first_problem;
  EXPECT_EQ(total.too_short, 0u) << total.first_problem;
  EXPECT_EQ(total.lost, 0u) << total.first_problem;
  // 10 s tokens renewed around their half-life: one every 4 to 5 s.
  EXPECT_GE(tokens.size(), static_cast<std::size_t>(duration / 6s)) << "the broker renews";
  EXPECT_LE(tokens.size(), static_cast<std::size_t>(duration / 3s) + 2) << "but not in a loop";
  ASSERT_GT(rss_start, 0);
  ASSERT_GT(fds_start, 0);
  // Flat: the connections come and go (the request budget), nothing accumulates.
  EXPECT_LE(fds_end, fds_start + kClients) << "descriptors accumulate";
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer's shadow memory grows with what it has seen: memory is checked in the
  // ASan stage and in the long soak on a release build.
#else
  EXPECT_LE(rss_end, rss_start + rss_start / 10 + 2048) << "memory grows";
#endif
}

}  // namespace
}  // namespace integration
