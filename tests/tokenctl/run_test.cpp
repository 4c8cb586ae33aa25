// Pins run(): what reaches the transport, which stream gets what, and the exit codes.
#include "tokenctl/run.hpp"

#include <gtest/gtest.h>
#include <boost/beast/http/status.hpp>
#include <boost/system/errc.hpp>

#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tokenctl {
namespace {

namespace http = boost::beast::http;

struct FakeBroker {
  boost::system::result<tb::http::Response> answer = tb::http::Response{http::status::ok, 11};
  bool throws = false;
  int calls = 0;
  std::string socket_path;
  tb::http::Request request;
  tb::http::Limits limits;

  Transport transport() {
    return [this](const std::string& path, tb::http::Request sent,
                  tb::http::Limits used) -> boost::system::result<tb::http::Response> {
      ++calls;
      socket_path = path;
      request = std::move(sent);
      limits = used;
      if (throws) throw std::runtime_error("boom");
      return answer;
    };
  }
};

struct Run {
  int code;
  std::string out;
  std::string err;
};

Run run_with(FakeBroker& broker, std::vector<std::string> args,
             std::optional<std::string_view> env = std::nullopt) {
  std::ostringstream out, err;
  int code = run(args, env, broker.transport(), out, err);
  return {code, out.str(), err.str()};
}

TEST(TokenctlRun, UsageErrorsExitTwoOnStderrWithoutCallingTheBroker) {
  FakeBroker broker;
  auto result = run_with(broker, {"get"});
  EXPECT_EQ(result.code, 2);
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err,
            "tokenctl: missing RESOURCE: tokenctl get RESOURCE, e.g. tokenctl get "
            "https://database.windows.net/\n(see 'tokenctl get --help')\n");
  EXPECT_EQ(run_with(broker, {}).code, 2);
  EXPECT_EQ(broker.calls, 0);
}

TEST(TokenctlRun, HelpGoesToStdoutAndExitsZero) {
  FakeBroker broker;
  auto result = run_with(broker, {"get", "--help"});
  EXPECT_EQ(result.code, 0);
  EXPECT_EQ(result.out.rfind("Usage: tokenctl get RESOURCE", 0), 0u);
  EXPECT_EQ(result.err, "");
  EXPECT_EQ(broker.calls, 0);
}

TEST(TokenctlRun, GetSendsTheTargetToTheChosenSocketWithTheDeadline) {
  FakeBroker broker;
  broker.answer = boost::system::errc::make_error_code(boost::system::errc::connection_refused);
  auto result = run_with(broker, {"get", "R", "--timeout", "4"}, "/env/broker.sock");
  EXPECT_EQ(result.code, 1);
  EXPECT_EQ(broker.calls, 1);
  EXPECT_EQ(broker.socket_path, "/env/broker.sock");
  EXPECT_EQ(broker.request.target, "/v1/token?resource=R&timeout=3");
  EXPECT_EQ(broker.limits.timeout, std::chrono::seconds(4));
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err.rfind("tokenctl: cannot connect to /env/broker.sock: ", 0), 0u);
}

TEST(TokenctlRun, HealthReadyExitsZero) {
  FakeBroker broker;
  auto result = run_with(broker, {"health"});
  EXPECT_EQ(result.code, 0);
  EXPECT_EQ(result.out, "ready\n");
  EXPECT_EQ(broker.request.target, "/readyz");
  EXPECT_EQ(broker.socket_path, "/var/run/token-broker/broker.sock");
}

TEST(TokenctlRun, AnUnexpectedExceptionBecomesExitOne) {
  FakeBroker broker;
  broker.throws = true;
  auto result = run_with(broker, {"health", "--socket", "/s"});
  EXPECT_EQ(result.code, 1);
  EXPECT_EQ(result.err, "tokenctl: request to /s failed: boom\n");
}

TEST(TokenctlRun, AFailedWriteToStdoutIsAnError) {
  FakeBroker broker;
  std::ostringstream out, err;
  out.setstate(std::ios::badbit);
  EXPECT_EQ(run(std::vector<std::string>{"health"}, std::nullopt, broker.transport(), out, err), 1);
  EXPECT_EQ(err.str(), "tokenctl: cannot write to standard output\n");
}

}  // namespace
}  // namespace tokenctl
