#include "fixture.hpp"

#include <filesystem>

namespace integration {

using namespace std::chrono_literals;
using test_support::read_file;
using test_support::wait_until;

void BrokerWithEmulator::start_emulator(const std::vector<std::string>& extra) {
  const auto port_file = dir_.file("emulator.port");
  std::vector<std::string> args = {"--listen", "127.0.0.1:0", "--port-file", port_file};
  args.insert(args.end(), extra.begin(), extra.end());
  emulator_ = std::make_unique<Process>(TB_EMULATOR_BIN, args,
                                        Process::Options{{}, dir_.file("emulator.log"), {}});
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(port_file); }, 10s))
      << "emulator did not start:\n"
      << emulator_log();
  emulator_port_ = read_file(port_file);
  while (!emulator_port_.empty() && (emulator_port_.back() == '\n')) emulator_port_.pop_back();
}

void BrokerWithEmulator::start_broker(const std::vector<std::string>& extra,
                                      const std::vector<std::pair<std::string, std::string>>& env) {
  std::vector<std::string> args = {"--imds-endpoint", "http://127.0.0.1:" + emulator_port_,
                                   "--socket",        socket_path(),
                                   "--admin-listen",  "off",
                                   "--retry-base-ms", "100",
                                   "--retry-max-ms",  "1000"};
  args.insert(args.end(), extra.begin(), extra.end());
  // With --imds-listen the broker generates its App Service secret here (unless told otherwise).
  test_support::leaks::note_secret_file("the identity header", dir_.file("identity-header"));
  broker_ = std::make_unique<Process>(TB_BROKER_BIN, args,
                                      Process::Options{env, dir_.file("broker.log"), {}});
  wait_for_broker();
}

void BrokerWithEmulator::wait_for_broker() {
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = tb::http::request_unix(socket_path(), {.target = "/healthz"}, {.timeout = 1s});
        return r && r->result_int() == 200;
      },
      10s))
      << "broker did not start:\n"
      << broker_log();
}

std::string BrokerWithEmulator::broker_log() const { return read_file(dir_.file("broker.log")); }
std::string BrokerWithEmulator::emulator_log() const {
  return read_file(dir_.file("emulator.log"));
}

tb::http::Response BrokerWithEmulator::post(const std::string& target) {
  return send(tb::http::Request{.method = boost::beast::http::verb::post, .target = target});
}

tb::http::Response BrokerWithEmulator::refresh_token(const std::string& query_suffix) {
  return post(std::string("/v1/token/refresh?resource=") + kDatabaseQuery + query_suffix);
}

tb::http::Response BrokerWithEmulator::get(
    const std::string& target, std::vector<std::pair<std::string, std::string>> headers) {
  return send(tb::http::Request{.target = target, .headers = std::move(headers)});
}

tb::http::Response BrokerWithEmulator::send(tb::http::Request request) {
  const std::string target = request.target;
  auto response = tb::http::request_unix(socket_path(), std::move(request), {.timeout = 30s});
  if (!response) {
    ADD_FAILURE() << "request " << target << " failed: " << response.error().message();
    return {};
  }
  auto body = json::parse(response->body(), nullptr, false);
  if (body.is_object() && body.contains("access_token") && body["access_token"].is_string()) {
    remember_token(body["access_token"]);
  }
  return *response;
}

tb::http::Response BrokerWithEmulator::get_token(const std::string& query_suffix) {
  return get(std::string("/v1/token?resource=") + kDatabaseQuery + query_suffix);
}

json BrokerWithEmulator::emulator_calls() {
  auto response =
      tb::http::request_tcp("127.0.0.1", emulator_port_, {.target = "/_emulator/calls"});
  if (!response) {
    ADD_FAILURE() << "emulator calls: " << response.error().message();
    return json::object();
  }
  return json::parse(response->body())["calls"];
}

json BrokerWithEmulator::emulator_stats() {
  auto response =
      tb::http::request_tcp("127.0.0.1", emulator_port_, {.target = "/_emulator/stats"});
  if (!response) {
    ADD_FAILURE() << "emulator stats: " << response.error().message();
    return json::object();
  }
  return json::parse(response->body());
}

void BrokerWithEmulator::set_faults(const json& script) {
  tb::http::Request request{.method = boost::beast::http::verb::post,
                            .target = "/_emulator/faults",
                            .headers = {{"Content-Type", "application/json"}},
                            .body = script.dump()};
  auto response = tb::http::request_tcp("127.0.0.1", emulator_port_, std::move(request));
  ASSERT_TRUE(response) << response.error().message();
  ASSERT_EQ(response->result_int(), 200) << response->body();
}

void BrokerWithEmulator::TearDown() {
  // Stopped before the temp dir goes: the leak check reads the identity header file as the
  // broker exits, and every output once the test has ended.
  if (broker_) broker_->stop();
  if (emulator_) emulator_->stop();
}

}  // namespace integration
