// GET /v1/token/watch against the emulator: the first event at once, a forced refresh reaching a
// watcher within 100 ms, 1,000 watchers at once, a watcher that stops reading dropped while the
// others go on, keep-alive comments, and a clean end on SIGTERM.
#include "fixture.hpp"
#include "raw_client.hpp"

#include "tb/crypto.hpp"

#include <signal.h>

#include <chrono>
#include <memory>
#include <vector>

namespace integration {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Event {
  std::string name;  ///< the `event:` field ("message" when absent)
  std::string id;
  json data;
};

/// The complete events in `bytes` (after the response head), in order; comments are skipped.
std::vector<Event> events_in(const std::string& bytes, std::size_t* comments = nullptr) {
  std::vector<Event> out;
  auto start = bytes.find("\r\n\r\n");
  if (start == std::string::npos) return out;
  start += 4;
  while (true) {
    const auto end = bytes.find("\n\n", start);
    if (end == std::string::npos) break;
    Event event{"message", "", nullptr};
    bool any = false;
    std::size_t line_start = start;
    while (line_start < end) {
      auto line_end = bytes.find('\n', line_start);
      if (line_end == std::string::npos || line_end > end) line_end = end;
      const auto line = bytes.substr(line_start, line_end - line_start);
      line_start = line_end + 1;
      if (line.starts_with(":")) {
        if (comments != nullptr) ++*comments;
        continue;
      }
      any = true;
      if (line.starts_with("event: ")) event.name = line.substr(7);
      if (line.starts_with("id: ")) event.id = line.substr(4);
      if (line.starts_with("data: ")) event.data = json::parse(line.substr(6), nullptr, false);
    }
    if (any) out.push_back(std::move(event));
    start = end + 2;
  }
  return out;
}

/// A watcher on a raw connection: what it has read so far.
struct Watcher {
  explicit Watcher(const std::string& socket) : raw(socket) {}
  bool open(const std::string& query) {
    return raw.ok() && raw.send("GET /v1/token/watch?resource=" + std::string(kDatabaseQuery) +
                                query + " HTTP/1.1\r\nHost: broker\r\n\r\n");
  }
  /// Reads until `count` events have arrived (or `wait` passes); the events so far.
  std::vector<Event> read_events(std::size_t count, std::chrono::milliseconds wait = 5s) {
    end = raw.read_until([&](const std::string& b) { return events_in(b).size() >= count; }, wait,
                         bytes);
    return events_in(bytes);
  }
  Raw raw;
  std::string bytes;
  Raw::End end = Raw::End::open;
};

std::string access_token(const tb::http::Response& response) {
  const auto body = json::parse(response.body(), nullptr, false);
  return body.is_object() ? body.value("access_token", "") : "";
}

TEST_F(BrokerWithEmulator, AWatcherGetsTheCurrentTokenAtOnceAndAForcedRefreshWithin100ms) {
  start_emulator();
  start_broker({"--force-refresh-interval", "1"});
  const auto token = access_token(get_token());
  ASSERT_FALSE(token.empty());

  Watcher watcher(socket_path());
  ASSERT_TRUE(watcher.open(""));
  auto events = watcher.read_events(1);
  ASSERT_EQ(events.size(), 1U) << watcher.bytes;
  EXPECT_NE(watcher.bytes.find("Content-Type: text/event-stream"), std::string::npos);
  EXPECT_EQ(watcher.bytes.find("Content-Length"), std::string::npos) << watcher.bytes;
  EXPECT_EQ(events[0].name, "token");
  EXPECT_EQ(events[0].id, "1");
  EXPECT_EQ(events[0].data["version"], 1);
  EXPECT_EQ(events[0].data["resource"], kDatabase);
  EXPECT_EQ(events[0].data["token_sha256"], tb::hex(tb::sha256(token)));
  EXPECT_EQ(events[0].data["forced"], false);
  EXPECT_GT(events[0].data["expires_in"].get<int>(), 3000);
  EXPECT_FALSE(events[0].data.contains("access_token"));  // only with include_token=true

  for (int round = 0; round < 3; ++round) {
    if (round > 0) std::this_thread::sleep_for(1100ms);  // past --force-refresh-interval
    const auto asked = Clock::now();
    const auto refreshed = refresh_token();
    const auto answered = Clock::now();
    ASSERT_EQ(refreshed.result_int(), 200) << refreshed.body();
    const auto fresh = access_token(refreshed);
    events = watcher.read_events(static_cast<std::size_t>(round) + 2, 2s);
    const auto delivered = Clock::now();
    ASSERT_EQ(events.size(), static_cast<std::size_t>(round) + 2) << watcher.bytes;
    const auto& event = events.back();
    EXPECT_EQ(event.data["token_sha256"], tb::hex(tb::sha256(fresh)));
    EXPECT_EQ(event.data["version"], round + 2);
    EXPECT_EQ(event.data["forced"], true);
    // The event is pushed before the refresh's own answer is written.
    EXPECT_LT(delivered - answered, 100ms);
    RecordProperty(
        "refresh_to_event_ms_round" + std::to_string(round),
        static_cast<int>(
            std::chrono::duration_cast<std::chrono::milliseconds>(delivered - asked).count()));
  }

  // With include_token=true the events carry the token itself.
  Watcher with_token(socket_path());
  ASSERT_TRUE(with_token.open("&include_token=true"));
  const auto first = with_token.read_events(1);
  ASSERT_EQ(first.size(), 1U) << with_token.bytes;
  const std::string carried = first[0].data.value("access_token", "");
  EXPECT_EQ(carried, access_token(get_token()));
  remember_token(carried);
}

TEST_F(BrokerWithEmulator, AWatchForAKeyThatCannotBeFetchedIsAnsweredLikeATokenRequest) {
  start_emulator();
  start_broker();
  set_faults({{"sequence", json::array()}, {"then", {{"status", 400}}}});
  const auto refused = get(std::string("/v1/token/watch?resource=") + kDatabaseQuery);
  EXPECT_EQ(refused.result_int(), 400) << refused.body();
  EXPECT_EQ(get("/v1/token/watch").result_int(), 400);  // no resource
  EXPECT_EQ(get(std::string("/v1/token/watch?resource=") + kDatabaseQuery + "&include_token=yes")
                .result_int(),
            400);
  EXPECT_EQ(post(std::string("/v1/token/watch?resource=") + kDatabaseQuery).result_int(), 405);
}

TEST_F(BrokerWithEmulator, AThousandWatchersAllGetEachNewToken) {
  FileLimit files(4096);
  ASSERT_TRUE(files.ok()) << "the hard open-file limit (" << files.hard() << ") is below 4096";
  start_emulator();
  start_broker({"--force-refresh-interval", "1", "--max-watchers", "1000"});
  ASSERT_EQ(get_token().result_int(), 200);
  constexpr std::size_t kWatchers = 1000;
  std::vector<std::unique_ptr<Watcher>> watchers;
  for (std::size_t i = 0; i < kWatchers; ++i) {
    watchers.push_back(std::make_unique<Watcher>(socket_path()));
    ASSERT_TRUE(watchers.back()->open("")) << i;
  }
  for (auto& watcher : watchers) ASSERT_EQ(watcher->read_events(1).size(), 1U) << watcher->bytes;
  // One more is refused: --max-watchers.
  const auto over = get(std::string("/v1/token/watch?resource=") + kDatabaseQuery);
  EXPECT_EQ(over.result_int(), 503) << over.body();

  const auto refreshed = refresh_token();
  ASSERT_EQ(refreshed.result_int(), 200) << refreshed.body();
  const auto sha = tb::hex(tb::sha256(access_token(refreshed)));
  const auto answered = Clock::now();
  std::size_t got = 0;
  for (auto& watcher : watchers) {
    const auto events = watcher->read_events(2, 5s);
    if (events.size() == 2 && events[1].data["token_sha256"] == sha) ++got;
  }
  const auto all_read = Clock::now();
  EXPECT_EQ(got, kWatchers);
  RecordProperty(
      "thousand_watchers_read_ms",
      static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(all_read - answered).count()));
  // The broker still answers token requests at once.
  EXPECT_EQ(get_token().result_int(), 200);
}

TEST_F(BrokerWithEmulator, AWatcherThatStopsReadingIsDroppedAndTheOthersGoOn) {
  // 2-second tokens and forced refreshes: new tokens come fast. Events carry the token, so the
  // stuck watcher's small buffer (--watch-buffer) and its socket's fill after a few.
  start_emulator({"--lifetime", "2"});
  start_broker({"--min-validity", "0", "--force-refresh-interval", "1", "--watch-buffer", "1024"});
  ASSERT_EQ(get_token().result_int(), 200);
  Watcher stuck(socket_path());
  ASSERT_TRUE(stuck.open("&include_token=true"));
  Watcher reading(socket_path());
  ASSERT_TRUE(reading.open("&include_token=true"));
  ASSERT_EQ(reading.read_events(1).size(), 1U);
  // `stuck` never reads again. Tokens come until the broker drops it.
  bool dropped = false;
  const auto until = Clock::now() + 60s;
  std::size_t seen = 1;
  while (!dropped && Clock::now() < until) {
    (void)refresh_token();
    const auto events = reading.read_events(seen + 1, 1500ms);
    seen = events.size();
    for (const auto& event : events) remember_token(event.data.value("access_token", ""));
    dropped = broker_log().find("watch stream dropped") != std::string::npos;
  }
  EXPECT_TRUE(dropped) << broker_log();
  EXPECT_GE(seen, 3U);
  // The reading watcher goes on: the next token reaches it.
  std::this_thread::sleep_for(1100ms);
  ASSERT_EQ(refresh_token().result_int(), 200);
  EXPECT_GE(reading.read_events(seen + 1, 3s).size(), seen + 1);
  // The stuck one finds its stream ended once it reads: what was in its socket, then the end.
  std::string rest;
  const auto end = stuck.raw.read_for(2s, rest);
  EXPECT_NE(end, Raw::End::open);
}

TEST_F(BrokerWithEmulator, WatchStreamsGetKeepAlivesAndEndCleanlyOnSigterm) {
  start_emulator();
  start_broker({"--watch-keepalive", "1"});
  Watcher watcher(socket_path());
  ASSERT_TRUE(watcher.open(""));
  ASSERT_EQ(watcher.read_events(1).size(), 1U);
  std::size_t comments = 0;
  watcher.raw.read_until(
      [&](const std::string& b) {
        comments = 0;
        events_in(b, &comments);
        return comments >= 2;
      },
      5s, watcher.bytes);
  EXPECT_GE(comments, 2U) << watcher.bytes;

  const auto signalled = Clock::now();
  ASSERT_EQ(::kill(broker_->pid(), SIGTERM), 0);
  const auto events = watcher.read_events(2, 5s);
  ASSERT_EQ(events.size(), 2U) << watcher.bytes;
  EXPECT_EQ(events[1].name, "shutdown");
  std::string rest;
  EXPECT_EQ(watcher.raw.read_for(3s, rest), Raw::End::eof);  // a clean end, not a reset
  EXPECT_EQ(broker_->wait(5s), 0);
  EXPECT_LT(Clock::now() - signalled, 4s);  // the streams do not hold the shutdown
}

}  // namespace
}  // namespace integration
