#include "token_bench/bench.hpp"

#include "token_bench/request.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/throw_exception.hpp>

#include <algorithm>
#include <csignal>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

namespace token_bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
// One socket type for Unix and TCP targets: the bench code does not care which it is.
using Protocol = asio::generic::stream_protocol;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

constexpr std::uint64_t kMaxBody = std::uint64_t{1024} * 1024;
// After a failed connect: the server is not accepting, so retry soon but not in a tight loop.
constexpr std::chrono::milliseconds kConnectBackoff{10};
// How often the watchdog looks for requests over --timeout.
constexpr std::chrono::milliseconds kWatchdogTick{50};
// Once the window has closed, requests still in flight get this long before their sockets close.
constexpr std::chrono::milliseconds kStopGrace{1000};
// Samples are reserved up front so that recording never reallocates (and copies) in the middle
// of a run. Reserving only maps address space; pages are touched as samples arrive. The guess
// for --duration is a rate no single-threaded client reaches; past the cap the vector grows.
constexpr std::uint64_t kExpectedMaxRate = 500'000;
constexpr std::uint64_t kMaxReservedSamples = std::uint64_t{32} * 1024 * 1024;

// Parses one response and keeps only what the bench needs: the status (and, through
// basic_parser, keep-alive). The body is read and dropped, so a response allocates nothing.
class ResponseParser final : public http::basic_parser<false> {
 public:
  int status() const { return status_; }

 private:
  void on_request_impl(http::verb, beast::string_view, beast::string_view, int,
                       error_code&) override {}
  void on_response_impl(int code, beast::string_view, int, error_code&) override { status_ = code; }
  void on_field_impl(http::field, beast::string_view, beast::string_view, error_code&) override {}
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  std::size_t on_body_impl(beast::string_view body, error_code&) override { return body.size(); }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, error_code&) override {
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  int status_ = 0;
};

struct Connection {
  explicit Connection(asio::io_context& io) : socket(io) {}
  Protocol::socket socket;
  beast::flat_buffer buffer;  // keeps its capacity from one response to the next
  // Beast parsers parse one message each; this one is rebuilt in place for every response.
  std::optional<ResponseParser> parser;
  std::optional<Clock::time_point> busy_since;  // while a connect or request is in flight
  bool timed_out = false;                       // the watchdog closed the socket
};

// How one attempt ended: a response, or an error in one of its steps.
struct Outcome {
  bool responded = false;
  int status = 0;
  std::uint64_t latency_ns = 0;
  const char* failed_step = nullptr;  // "connect", "write" or "read" when !responded
  error_code error;
  bool timed_out = false;
};

constexpr const char* kConnectStep = "connect";

enum class Phase { warmup, measuring, done };

std::string format_ms(std::chrono::milliseconds ms) {
  return ms.count() % 1000 == 0 ? std::to_string(ms.count() / 1000) + " s"
                                : std::to_string(ms.count()) + " ms";
}

// Everything one run shares. Single-threaded: the connections, the phase timer, the watchdog and
// the signal handler all run on one io_context thread, so nothing here needs a lock.
class Bench {
 public:
  Bench(asio::io_context& io, const Options& options, Protocol::endpoint endpoint, bool tcp)
      : io_(io),
        options_(options),
        endpoint_(std::move(endpoint)),
        tcp_(tcp),
        request_(serialise_request(options.path, default_host(options.target), options.headers)),
        request_buffer_(asio::buffer(request_)),
        phase_timer_(io),
        watchdog_timer_(io),
        signals_(io) {
    connections_.reserve(options.connections);
    for (std::size_t i = 0; i < options.connections; ++i) {
      connections_.push_back(std::make_unique<Connection>(io));
    }
    const std::uint64_t expected =
        options.requests
            ? *options.requests
            : kExpectedMaxRate * static_cast<std::uint64_t>(options.duration.count()) / 1000 + 1;
    samples_.reserve(static_cast<std::size_t>(std::min(expected, kMaxReservedSamples)));
  }

  void start(bool stop_on_signals) {
    // Exceptions (there should be none) leave io_context::run() instead of vanishing.
    auto rethrow = [](const std::exception_ptr& error) {
      if (error) std::rethrow_exception(error);
    };
    // The phase controller first, so that with no warm-up the window opens before any request.
    asio::co_spawn(io_, control(), rethrow);
    if (stop_on_signals) {
      signals_.add(SIGINT);
      signals_.add(SIGTERM);
      signals_.async_wait([this](const error_code& ec, int /*signal*/) {
        if (!ec) finish_measuring();
      });
    }
    active_ = connections_.size();
    for (auto& connection : connections_) {
      asio::co_spawn(io_, run_connection(*connection), rethrow);
    }
    asio::co_spawn(io_, watchdog(), rethrow);
  }

  Report report() {
    report_.connections = options_.connections;
    report_.latency = summarise(samples_);
    return std::move(report_);
  }

 private:
  asio::awaitable<void> control() {
    if (options_.warmup.count() > 0) {
      phase_timer_.expires_after(options_.warmup);
      auto [warmup_ec] = co_await phase_timer_.async_wait(use_nothrow);
      if (warmup_ec || phase_ == Phase::done) co_return;  // stopped by a signal
    }
    start_measuring();
    if (options_.requests) co_return;  // the last measured attempt closes the window
    phase_timer_.expires_after(options_.duration);
    auto [duration_ec] = co_await phase_timer_.async_wait(use_nothrow);
    if (!duration_ec) finish_measuring();
  }

  // Closes the sockets of requests over --timeout, and after the window has closed those still
  // in flight past the grace period (their results would not be counted anyway).
  asio::awaitable<void> watchdog() {
    while (active_ > 0) {
      watchdog_timer_.expires_after(kWatchdogTick);
      co_await watchdog_timer_.async_wait(use_nothrow);
      const auto now = Clock::now();
      const bool past_grace = phase_ == Phase::done && now - done_at_ > kStopGrace;
      for (auto& connection : connections_) {
        if (!connection->busy_since) continue;
        const bool overdue = now - *connection->busy_since > options_.timeout;
        if (overdue || past_grace) {
          connection->timed_out = overdue;
          connection->busy_since.reset();
          error_code ignored;
          connection->socket.close(ignored);
        }
      }
    }
  }

  asio::awaitable<void> run_connection(Connection& connection) {
    while (phase_ != Phase::done) {
      const Phase started_in = phase_;
      if (started_in == Phase::measuring && options_.requests) {
        if (issued_ == *options_.requests) break;  // the other connections finish the run
        ++issued_;
      }
      const Outcome outcome = co_await attempt(connection);
      record(started_in, outcome);
      if (outcome.failed_step == kConnectStep && phase_ != Phase::done) {
        asio::steady_timer pause(io_, kConnectBackoff);
        co_await pause.async_wait(use_nothrow);
      }
    }
    close(connection);
    if (--active_ == 0) watchdog_timer_.cancel();
  }

  // One request on `connection` (connecting first if needed): write the pre-serialised bytes,
  // read the whole response. The latency is write start to response end; connecting is not in it.
  asio::awaitable<Outcome> attempt(Connection& connection) {
    Outcome outcome;
    auto fail = [&](const char* step, error_code ec) {
      outcome.failed_step = step;
      outcome.error = ec;
      outcome.timed_out = connection.timed_out;
      connection.timed_out = false;
      close(connection);
    };
    if (!connection.socket.is_open()) {
      connection.busy_since = Clock::now();
      auto [connect_ec] = co_await connection.socket.async_connect(endpoint_, use_nothrow);
      if (connect_ec) {
        fail(kConnectStep, connect_ec);
        co_return outcome;
      }
      if (tcp_) {
        error_code ignored;
        connection.socket.set_option(asio::ip::tcp::no_delay(true), ignored);
      }
    }
    const auto start = Clock::now();
    connection.busy_since = start;
    auto [write_ec, written] =
        co_await asio::async_write(connection.socket, request_buffer_, use_nothrow);
    if (write_ec) {
      fail("write", write_ec);
      co_return outcome;
    }
    connection.parser.emplace();
    connection.parser->body_limit(kMaxBody);
    auto [read_ec, read] = co_await http::async_read(connection.socket, connection.buffer,
                                                     *connection.parser, use_nothrow);
    const auto end = Clock::now();
    if (read_ec) {
      fail("read", read_ec);
      co_return outcome;
    }
    connection.busy_since.reset();
    outcome.responded = true;
    outcome.status = connection.parser->status();
    outcome.latency_ns = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count());
    if (!connection.parser->keep_alive()) close(connection);  // the next attempt reconnects
    co_return outcome;
  }

  // Counts an attempt if it started and ended inside the measurement window.
  void record(Phase started_in, const Outcome& outcome) {
    if (started_in != Phase::measuring || phase_ != Phase::measuring) return;
    if (outcome.responded) {
      ++report_.requests;
      if (outcome.status != 200) ++report_.non_200;
      samples_.push_back(outcome.latency_ns);
    } else {
      ++report_.errors;
      if (report_.first_error.empty()) {
        report_.first_error = std::string(outcome.failed_step) + ": " +
                              (outcome.timed_out ? "no answer within " + format_ms(options_.timeout)
                                                 : outcome.error.message());
      }
    }
    if (options_.requests && ++completed_ == *options_.requests) finish_measuring();
  }

  void start_measuring() {
    phase_ = Phase::measuring;
    window_start_ = Clock::now();
  }

  void finish_measuring() {
    if (phase_ == Phase::done) return;
    done_at_ = Clock::now();
    if (phase_ == Phase::measuring) report_.elapsed = done_at_ - window_start_;
    phase_ = Phase::done;
    phase_timer_.cancel();
    error_code ignored;
    signals_.cancel(ignored);
  }

  static void close(Connection& connection) {
    connection.busy_since.reset();
    connection.buffer.clear();
    if (!connection.socket.is_open()) return;
    error_code ignored;
    connection.socket.shutdown(Protocol::socket::shutdown_both, ignored);
    connection.socket.close(ignored);
  }

  asio::io_context& io_;
  const Options& options_;
  const Protocol::endpoint endpoint_;
  const bool tcp_;
  const std::string request_;
  const asio::const_buffer request_buffer_;  // over request_, written as is for every request
  asio::steady_timer phase_timer_;
  asio::steady_timer watchdog_timer_;
  asio::signal_set signals_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::size_t active_ = 0;  // connection loops still running
  Phase phase_ = Phase::warmup;
  Clock::time_point window_start_;
  Clock::time_point done_at_;
  std::uint64_t issued_ = 0;            // --requests: attempts started in the window
  std::uint64_t completed_ = 0;         // --requests: attempts counted
  std::vector<std::uint64_t> samples_;  // latency of every counted response, in ns
  Report report_;
};

// The endpoints to try: the Unix path, or every address HOST resolves to.
boost::system::result<std::vector<Protocol::endpoint>, StartError> endpoints_of(
    asio::io_context& io, const Target& target) {
  if (const auto* unix_target = std::get_if<UnixTarget>(&target)) {
    return std::vector<Protocol::endpoint>{
        Protocol::endpoint(asio::local::stream_protocol::endpoint(unix_target->path))};
  }
  const auto& tcp = std::get<TcpTarget>(target);
  asio::ip::tcp::resolver resolver(io);
  error_code ec;
  auto results = resolver.resolve(tcp.host, tcp.port, ec);
  if (ec) return StartError{"cannot resolve " + tcp.host + ": " + ec.message()};
  std::vector<Protocol::endpoint> out;
  for (const auto& entry : results) out.emplace_back(entry.endpoint());
  return out;
}

}  // namespace

void throw_exception_from_error(const StartError& error, const boost::source_location& location) {
  boost::throw_exception(std::runtime_error(error.message), location);
}

boost::system::result<Report, StartError> run_bench(const Options& options,
                                                    const RunControls& controls) {
  if (std::holds_alternative<std::monostate>(options.target)) {
    return StartError{"no target: give --unix PATH or --tcp HOST:PORT"};
  }
  // One thread: tell Asio so that it can skip locking.
  asio::io_context io(1);
  auto endpoints = endpoints_of(io, options.target);
  if (!endpoints) return endpoints.error();

  // One connection first, so that "nothing listens there" is one clear message rather than a
  // run full of connect errors. Of several addresses, the first that accepts is used.
  error_code ec;
  std::optional<Protocol::endpoint> reachable;
  for (const auto& endpoint : *endpoints) {
    Protocol::socket probe(io);
    probe.connect(endpoint, ec);
    if (!ec) {
      reachable = endpoint;
      break;
    }
  }
  if (!reachable) {
    return StartError{"cannot connect to " + describe(options.target) + ": " + ec.message() +
                      " — is the server running?"};
  }

  Bench bench(io, options, *reachable, std::holds_alternative<TcpTarget>(options.target));
  bench.start(controls.stop_on_signals);
  io.run();
  return bench.report();
}

}  // namespace token_bench
