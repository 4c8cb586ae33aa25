// Watch events (watch.hpp): what an event says, and Watchers delivering to a key's watchers only.
#include "broker/watch.hpp"

#include "fakes.hpp"
#include "tb/crypto.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <nlohmann/json.hpp>

namespace broker {
namespace {

using namespace std::chrono_literals;
using testing::FakeClock;

TokenPtr make_token(const std::string& access, const FakeClock& clock, std::uint64_t version,
                    bool forced = false) {
  auto token = std::make_shared<Token>();
  token->upstream.access_token = access;
  token->upstream.expires_on = clock.unix_now() + 3600;
  token->acquired_at = clock.steady_now();
  token->expires_at = clock.steady_now() + 3600s;
  token->sha256 = tb::hex(tb::sha256(access));
  token->fingerprint = token->sha256.substr(0, 12);
  token->version = version;
  token->forced = forced;
  return token;
}

/// The JSON of the event's data line.
nlohmann::json data_of(const std::string& event) {
  const auto at = event.find("data: ");
  if (at == std::string::npos) return nullptr;
  return nlohmann::json::parse(event.substr(at + 6, event.find('\n', at) - at - 6));
}

TEST(WatchEvent, SaysTheVersionHashAndExpiryAndTheTokenOnlyWhenAsked) {
  FakeClock clock;
  const TokenKey key{Identity{Identity::Kind::client_id, "C"}, "https://r/"};
  const auto token = make_token("secret-token", clock, 7, true);
  clock.advance(600s);
  const auto event = watch_event(key, *token, false, clock.steady_now());
  EXPECT_TRUE(event.starts_with("id: 7\nevent: token\ndata: {")) << event;
  EXPECT_TRUE(event.ends_with("}\n\n")) << event;
  EXPECT_EQ(event.find("secret-token"), std::string::npos);
  const auto data = data_of(event);
  EXPECT_EQ(data["resource"], "https://r/");
  EXPECT_EQ(data["identity"], "client_id=C");
  EXPECT_EQ(data["version"], 7);
  EXPECT_EQ(data["token_sha256"], token->sha256);
  EXPECT_EQ(data["expires_on"], token->upstream.expires_on);
  EXPECT_EQ(data["expires_in"], 3000);
  EXPECT_EQ(data["forced"], true);

  const auto with = watch_event(key, *token, true, clock.steady_now(), true);
  EXPECT_TRUE(with.starts_with("retry: 1000\nid: 7\n")) << with;
  EXPECT_EQ(data_of(with)["access_token"], "secret-token");
}

TEST(Watchers, DeliverReachesTheKeysWatchersOnlyAndCloseAllEndsThem) {
  boost::asio::io_context io;
  FakeClock clock;
  testing::FakeSource source;
  Metrics metrics;
  TokenCache cache(
      io.get_executor(), source, clock, [] { return 0.5; }, CacheOptions{}, metrics);
  Watchers watchers(io.get_executor(), cache, clock, metrics, WatchOptions{});
  const TokenKey key{Identity{}, "https://r/"};
  const TokenKey other{Identity{}, "https://other/"};
  std::string first;
  auto a = watchers.add(key, false, *make_token("t1", clock, 1), first);
  EXPECT_NE(first.find("id: 1\n"), std::string::npos);
  auto b = watchers.add(other, false, *make_token("o1", clock, 1), first);
  EXPECT_EQ(watchers.size(), 2U);

  std::optional<std::string> got_a;
  std::optional<std::string> got_b;
  auto read = [&](tb::http::Stream& stream, std::optional<std::string>& into) {
    boost::asio::co_spawn(
        io, [&]() -> boost::asio::awaitable<void> { into = co_await stream.next(); },
        boost::asio::detached);
  };
  read(*a, got_a);
  read(*b, got_b);
  watchers.deliver(key, make_token("t2", clock, 2));
  io.poll();
  ASSERT_TRUE(got_a.has_value());
  EXPECT_NE(got_a.value_or("").find("id: 2\n"), std::string::npos);
  EXPECT_FALSE(got_b.has_value());  // another key's watcher hears nothing

  watchers.close_all();
  io.poll();
  ASSERT_TRUE(got_b.has_value());
  EXPECT_NE(got_b.value_or("").find("event: shutdown"), std::string::npos);
  EXPECT_TRUE(a->ended());
  a->close();  // the server is done with them: they leave the list
  b->close();
  EXPECT_EQ(watchers.size(), 0U);
  EXPECT_NE(metrics.render({}).find("token_broker_watchers 0"), std::string::npos);
  cache.stop();
}

}  // namespace
}  // namespace broker
