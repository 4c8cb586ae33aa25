#include "token_bench/client_bench.hpp"

#include "token_client/token_client.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <thread>
#include <variant>
#include <vector>

namespace token_bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Sequential calls over a new connection each do not go much beyond 20 000/s; reserving for
// that keeps recording from reallocating mid-run (capped like the keep-alive bench).
constexpr std::uint64_t kExpectedMaxRate = 20'000;
constexpr std::uint64_t kMaxReservedSamples = std::uint64_t{32} * 1024 * 1024;
// After a call that reached no broker, pause so that a dead socket is not hammered.
constexpr auto kPauseAfterConnectFailure = 10ms;

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int /*signal*/) { g_stop = 1; }

// SIGINT/SIGTERM set a flag that the loop checks between calls; the previous handlers are put
// back when the run ends.
class StopSignals {
 public:
  explicit StopSignals(bool install) : installed_(install) {
    g_stop = 0;
    if (!installed_) return;
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &previous_int_);
    sigaction(SIGTERM, &action, &previous_term_);
  }
  ~StopSignals() {
    if (!installed_) return;
    sigaction(SIGINT, &previous_int_, nullptr);
    sigaction(SIGTERM, &previous_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  bool stopped() const { return g_stop != 0; }

 private:
  bool installed_;
  struct sigaction previous_int_ {};
  struct sigaction previous_term_ {};
};

bool reached_no_broker(const token_client::Error& error) {
  return error.http_status == 0 && (error.code == token_client::Errc::broker_not_running ||
                                    error.code == token_client::Errc::refused ||
                                    error.code == token_client::Errc::bad_request);
}

std::uint64_t nanoseconds(Clock::duration d) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

}  // namespace

boost::system::result<Report, StartError> run_client_bench(const Options& options,
                                                           const RunControls& controls) {
  const auto* target = std::get_if<UnixTarget>(&options.target);
  if (target == nullptr) return StartError{"--token-client needs --unix PATH"};
  const token_client::Client client({.socket_path = target->path, .timeout = options.timeout});
  const token_client::Request request{.resource = options.resource};

  // One call first, so that "nothing listens there" is one clear message rather than a run
  // full of errors. Broker errors with a status (e.g. 503) are measured like any answer.
  if (auto first = client.get_token(request); !first && reached_no_broker(first.error())) {
    return StartError{first.error().message};
  }

  StopSignals signals(controls.stop_on_signals);
  const auto warmup_end = Clock::now() + options.warmup;
  while (!signals.stopped() && Clock::now() < warmup_end) {
    if (auto result = client.get_token(request); !result && result.error().http_status == 0) {
      std::this_thread::sleep_for(kPauseAfterConnectFailure);
    }
  }

  Report report;
  report.connections = 1;
  std::vector<std::uint64_t> samples;
  const std::uint64_t expected =
      options.requests
          ? *options.requests
          : kExpectedMaxRate * static_cast<std::uint64_t>(options.duration.count()) / 1000 + 1;
  samples.reserve(static_cast<std::size_t>(std::min(expected, kMaxReservedSamples)));

  const auto window_start = Clock::now();
  const auto window_end = window_start + options.duration;
  auto window_closed = window_start;
  std::uint64_t attempts = 0;
  while (!signals.stopped()) {
    if (options.requests ? attempts >= *options.requests : Clock::now() >= window_end) break;
    const auto started = Clock::now();
    auto result = client.get_token(request);
    const auto ended = Clock::now();
    // With --duration, a call that ends after the window closed is not counted.
    if (!options.requests && ended > window_end) break;
    window_closed = ended;
    ++attempts;
    if (result) {
      ++report.requests;
      samples.push_back(nanoseconds(ended - started));
    } else if (result.error().http_status != 0) {
      ++report.requests;
      ++report.non_200;
      samples.push_back(nanoseconds(ended - started));
    } else {
      ++report.errors;
      if (report.first_error.empty()) {
        report.first_error = std::string(token_client::to_string(result.error().code)) + ": " +
                             result.error().message;
      }
      if (result.error().code != token_client::Errc::timeout) {
        std::this_thread::sleep_for(kPauseAfterConnectFailure);
      }
    }
  }
  const bool full_window = !options.requests && !signals.stopped();
  report.elapsed =
      full_window
          ? std::chrono::duration_cast<std::chrono::nanoseconds>(window_end - window_start)
          : std::chrono::duration_cast<std::chrono::nanoseconds>(window_closed - window_start);
  report.latency = summarise(samples);
  return report;
}

}  // namespace token_bench
