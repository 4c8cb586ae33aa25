// Runs tokenctl's real request path (run() + tb::http::request_unix) against a canned answer
// served on a temporary Unix socket: encoding, HTTP framing and error mapping all for real.
#include "tokenctl/run.hpp"

#include <gtest/gtest.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace tokenctl {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using local = asio::local::stream_protocol;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

// A private directory under /tmp (short, well inside sun_path), removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/tokenctl-XXXXXX";
    if (mkdtemp(name) == nullptr) throw std::system_error(errno, std::generic_category());
    path_ = name;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const char* name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Accepts one connection, reads one request, writes `raw_answer` verbatim and closes. An empty
// answer means "never answer" (the client's deadline must fire).
class CannedBroker {
 public:
  explicit CannedBroker(std::string raw_answer)
      : socket_path_(dir_.file("broker.sock")), answer_(std::move(raw_answer)) {
    acceptor_.open();
    acceptor_.bind(local::endpoint(socket_path_));
    acceptor_.listen();
    asio::co_spawn(io_, serve(), asio::detached);
    thread_ = std::thread([this] { io_.run_for(std::chrono::seconds(10)); });
  }
  ~CannedBroker() {
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  CannedBroker(const CannedBroker&) = delete;
  CannedBroker& operator=(const CannedBroker&) = delete;

  const std::string& socket_path() const { return socket_path_; }

  /// The request target the broker saw; waits for the exchange to end.
  std::string received_target() {
    if (thread_.joinable()) thread_.join();
    return target_;
  }

 private:
  asio::awaitable<void> serve() {
    auto [accept_ec, socket] = co_await acceptor_.async_accept(use_nothrow);
    if (accept_ec) co_return;
    beast::flat_buffer buffer;
    beast::http::request<beast::http::string_body> request;
    auto [read_ec, read] = co_await beast::http::async_read(socket, buffer, request, use_nothrow);
    if (read_ec) co_return;
    target_ = std::string(request.target());
    if (answer_.empty()) {
      asio::steady_timer forever(socket.get_executor(), std::chrono::seconds(30));
      co_await forever.async_wait(use_nothrow);
      co_return;
    }
    co_await asio::async_write(socket, asio::buffer(answer_), use_nothrow);
    boost::system::error_code ignored;
    socket.shutdown(local::socket::shutdown_both, ignored);
  }

  TempDir dir_;
  std::string socket_path_;
  std::string answer_;
  std::string target_;
  asio::io_context io_;
  local::acceptor acceptor_{io_};
  std::thread thread_;
};

std::string http_answer(const std::string& status_line, const std::string& body,
                        const std::string& extra_headers = "") {
  return "HTTP/1.1 " + status_line + "\r\nContent-Type: application/json\r\n" + extra_headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

struct Run {
  int code;
  std::string out;
  std::string err;
};

Run tokenctl(std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = run(args, std::nullopt, &tb::http::request_unix, out, err);
  return {code, out.str(), err.str()};
}

TEST(TokenctlEndToEnd, GetPrintsTheAnswerOfARealSocketWithoutTheToken) {
  CannedBroker broker(http_answer(
      "200 OK",
      R"({"access_token":"secret.jwt.value","token_type":"Bearer","expires_on":1795996799,)"
      R"("expires_in":3598,"resource":"https://database.windows.net/"})"));
  auto result = tokenctl({"get", "https://database.windows.net/", "--socket", broker.socket_path(),
                          "--client-id", "a b"});
  EXPECT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(result.err, "");
  EXPECT_NE(result.out.find("expires_on: 2026-11-29T23:59:59Z (unix 1795996799)\n"),
            std::string::npos);
  EXPECT_NE(result.out.find("expires_in: 59m 58s\n"), std::string::npos);
  EXPECT_EQ(result.out.find("secret.jwt.value"), std::string::npos);
  EXPECT_EQ(broker.received_target(),
            "/v1/token?resource=https%3A%2F%2Fdatabase.windows.net%2F&client_id=a%20b&timeout=9");
}

TEST(TokenctlEndToEnd, ServiceUnavailableIsExitOneWithRetryAfter) {
  CannedBroker broker(
      http_answer("503 Service Unavailable",
                  R"({"error":"temporarily_unavailable","error_description":"IMDS timed out"})",
                  "Retry-After: 12\r\n"));
  auto result = tokenctl({"get", "R", "--socket", broker.socket_path()});
  EXPECT_EQ(result.code, 1);
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err,
            "tokenctl: broker answered 503: temporarily_unavailable: IMDS timed out (retry after "
            "12 s)\n");
}

TEST(TokenctlEndToEnd, HealthReportsWhatIsMissing) {
  CannedBroker broker(
      http_answer("503 Service Unavailable",
                  R"({"status":"not_ready","missing":["https://vault.azure.net"]})"));
  auto result = tokenctl({"health", "--socket", broker.socket_path()});
  EXPECT_EQ(result.code, 1);
  EXPECT_EQ(result.out, "not ready: no token yet for https://vault.azure.net\n");
  EXPECT_EQ(broker.received_target(), "/readyz");
}

TEST(TokenctlEndToEnd, MissingSocketSaysCannotConnect) {
  TempDir dir;
  const std::string path = dir.file("absent.sock");
  auto result = tokenctl({"health", "--socket", path});
  EXPECT_EQ(result.code, 1);
  EXPECT_EQ(result.err, "tokenctl: cannot connect to " + path +
                            ": No such file or directory — is token-broker running? (set "
                            "--socket or TOKEN_BROKER_SOCKET)\n");
}

TEST(TokenctlEndToEnd, SilentBrokerHitsTheClientDeadline) {
  CannedBroker broker("");
  const auto start = std::chrono::steady_clock::now();
  auto result = tokenctl({"get", "R", "--socket", broker.socket_path(), "--timeout", "1"});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(result.code, 1);
  EXPECT_EQ(result.err,
            "tokenctl: timed out after 1 s waiting for the broker — raise --timeout or check the "
            "broker's logs\n");
  EXPECT_LT(took, std::chrono::seconds(3));
}

}  // namespace
}  // namespace tokenctl
