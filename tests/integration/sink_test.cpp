// File sinks (--sink) against the emulator: a reader in a tight loop never sees a partial or
// empty file while the broker replaces it token after token; what each format holds, the modes,
// readiness, and a sink that cannot be written stopping the start.
#include "fixture.hpp"
#include "jwt_peek.hpp"

#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <set>
#include <thread>

namespace integration {
namespace {

using namespace std::chrono_literals;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

unsigned mode_of(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 ? (info.st_mode & 07777) : 0;
}

std::string access_token(const tb::http::Response& response) {
  const auto body = json::parse(response.body(), nullptr, false);
  return body.is_object() ? body.value("access_token", "") : "";
}

TEST_F(BrokerWithEmulator, ASinkReaderInATightLoopNeverSeesAPartialOrEmptyFile) {
  // 3-second tokens: the broker refreshes about every 1.5 s, and forced refreshes add more.
  start_emulator({"--lifetime", "3"});
  set_faults({{"sequence", {{{"status", 500}, {"count", 1}}}}});  // not ready at first
  const auto sinks = dir_.file("sinks");
  std::filesystem::create_directory(sinks);
  const auto raw = sinks + "/token";
  const auto as_json = sinks + "/token.json";
  const auto pgpass = sinks + "/pgpass";
  const std::string resource = std::string("resource=") + kDatabase;
  start_broker({"--min-validity", "0", "--force-refresh-interval", "1",  //
                "--sink", resource + ",path=" + raw,                     //
                "--sink", resource + ",path=" + as_json + ",format=json", "--sink",
                resource + ",path=" + pgpass + ",format=pgpass,pguser=todo"});
  const auto first_ready = get("/readyz");
  if (first_ready.result_int() == 503) {
    const auto body = json::parse(first_ready.body());
    ASSERT_EQ(body["sinks"].size(), 3U) << body;
    EXPECT_EQ(body["sinks"][0]["current"], false) << body;
  }
  ASSERT_TRUE(test_support::wait_until([&] { return get("/readyz").result_int() == 200; }, 15s))
      << get("/readyz").body() << broker_log();
  const auto ready = json::parse(get("/readyz").body());
  for (const auto& sink : ready["sinks"]) EXPECT_EQ(sink["current"], true) << ready;

  std::atomic<bool> stop{false};
  std::atomic<long> reads{0};
  std::mutex mutex;
  std::vector<std::string> bad;  // what a reader saw that was not a whole token
  std::set<std::string> seen;
  std::thread reader([&] {
    while (!stop) {
      std::ifstream in(raw, std::ios::binary);
      std::string content{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      ++reads;
      const bool whole = in.is_open() && !content.empty() &&
                         !test_support::jwt_claims(content).is_null() &&
                         !test_support::jwt_signature(content).empty();
      std::lock_guard lock(mutex);
      if (!whole) {
        bad.push_back(in.is_open()
                          ? "a partial file of " + std::to_string(content.size()) + " bytes"
                          : "no file");
      } else {
        seen.insert(content);
      }
    }
  });
  const auto until = std::chrono::steady_clock::now() + 6s;
  while (std::chrono::steady_clock::now() < until) {
    (void)refresh_token();  // a forced refresh when the rate limit allows: one more write
    std::this_thread::sleep_for(300ms);
  }
  stop = true;
  reader.join();
  for (const auto& token : seen) remember_token(token);  // no log may contain them
  EXPECT_TRUE(bad.empty()) << bad.size() << " bad reads of " << reads << ", first: " << bad.front();
  EXPECT_GT(reads.load(), 1000);
  EXPECT_GE(seen.size(), 5U) << "tokens the reader saw";

  // Each file holds the token the broker serves (once the last write has landed).
  std::string served;
  EXPECT_TRUE(test_support::wait_until(
      [&] {
        served = access_token(get_token());
        return read_file(raw) == served;
      },
      3s));
  EXPECT_EQ(json::parse(read_file(as_json))["access_token"], served);
  EXPECT_EQ(json::parse(read_file(as_json))["resource"], kDatabase);
  EXPECT_EQ(read_file(pgpass), "*:*:*:todo:" + served + "\n");
  EXPECT_EQ(mode_of(raw), 0640U);
  EXPECT_EQ(mode_of(as_json), 0640U);
  EXPECT_EQ(mode_of(pgpass), 0600U);
  // No temporary file is left in the directory.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(sinks),
                          std::filesystem::directory_iterator()),
            3);
  // The log says which file got which token, by fingerprint.
  EXPECT_NE(broker_log().find("token file written"), std::string::npos);
}

TEST_F(BrokerWithEmulator, ASinkWhoseDirectoryIsMissingStopsTheStartNamingIt) {
  start_emulator();
  const auto missing = dir_.file("no-such-dir") + "/token";
  auto [code, output] = test_support::run_and_capture(
      TB_BROKER_BIN, {"--socket", socket_path(), "--admin-listen", "off", "--imds-endpoint",
                      "http://127.0.0.1:" + emulator_port_, "--sink",
                      std::string("resource=") + kDatabase + ",path=" + missing});
  EXPECT_EQ(code, 2);
  EXPECT_NE(output.find("--sink path=" + missing), std::string::npos) << output;
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
  EXPECT_FALSE(std::filesystem::exists(socket_path()));

  auto [bad_code, bad_output] = test_support::run_and_capture(
      TB_BROKER_BIN, {"--sink", std::string("resource=") + kDatabase + ",path=relative"});
  EXPECT_EQ(bad_code, 2);
  EXPECT_NE(bad_output.find("--sink"), std::string::npos) << bad_output;
}

}  // namespace
}  // namespace integration
