#pragma once
// An emulator and a broker as real processes in a temp dir, stopped by the test. Their output is
// checked for secrets when the test ends (tests/support/leak_check.hpp): every token the test got
// and its signature, the identity header, and anything shaped like a token.

#include "leak_check.hpp"
#include "process.hpp"
#include "tb/http_client.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

namespace integration {

using nlohmann::json;
using test_support::Process;

inline constexpr const char* kDatabase = "https://database.windows.net/";
/// Percent-encoded form of kDatabase for request targets.
inline constexpr const char* kDatabaseQuery = "https%3A%2F%2Fdatabase.windows.net%2F";

/// The emulator's identity when it runs without --identity (imds_emulator::default_identity();
/// drop_in_test.cpp checks that they agree).
inline constexpr const char* kEmulatorClientId = "11111111-1111-1111-1111-111111111111";
inline constexpr const char* kEmulatorObjectId = "22222222-2222-2222-2222-222222222222";
/// Its resource id, percent-encoded for a query.
inline constexpr const char* kEmulatorResourceIdQuery =
    "%2Fsubscriptions%2F00000000-0000-0000-0000-000000000000%2Fresourcegroups%2Fdev%2Fproviders%"
    "2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Ftoken-broker-dev";

class BrokerWithEmulator : public ::testing::Test {
 protected:
  void TearDown() override;

  void start_emulator(const std::vector<std::string>& extra = {});
  /// Starts the broker against the emulator and waits until its socket accepts connections;
  /// `env` is added to its environment.
  void start_broker(const std::vector<std::string>& extra = {},
                    const std::vector<std::pair<std::string, std::string>>& env = {});
  /// Waits until broker_ answers /healthz on its socket (fails the test after 10 s).
  void wait_for_broker();

  std::string socket_path() const { return dir_.file("broker.sock"); }
  std::string broker_log() const;
  std::string emulator_log() const;

  /// GET on the broker's socket; remembers any access_token it returns.
  tb::http::Response get(const std::string& target,
                         std::vector<std::pair<std::string, std::string>> headers = {});
  tb::http::Response get_token(const std::string& query_suffix = "");
  /// POST on the broker's socket (empty body); remembers any access_token it returns.
  tb::http::Response post(const std::string& target);
  /// POST /v1/token/refresh?resource=kDatabase + `query_suffix`.
  tb::http::Response refresh_token(const std::string& query_suffix = "");

  json emulator_stats();
  /// GET /_emulator/calls: the token calls the emulator served, oldest first.
  json emulator_calls();
  void set_faults(const json& script);
  /// A token (or other credential) that no output may contain.
  void remember_token(const std::string& token) { test_support::leaks::note_token(token); }

  /// Sends `request` to the broker's socket; remembers any access_token it returns.
  tb::http::Response send(tb::http::Request request);

  test_support::TempDir dir_;
  std::string emulator_port_;
  std::unique_ptr<Process> emulator_;
  std::unique_ptr<Process> broker_;
};

}  // namespace integration
