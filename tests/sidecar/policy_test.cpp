// --allow rules and --caller-rate: what a rule says, which rule decides, what a refusal names,
// and the per-uid token bucket.
#include "broker/policy.hpp"

#include <gtest/gtest.h>

namespace broker {
namespace {

using namespace std::chrono_literals;

AllowRule rule(std::string_view text) {
  auto parsed = parse_allow_rule(text);
  if (auto* problem = std::get_if<std::string>(&parsed)) {
    ADD_FAILURE() << text << ": " << *problem;
    return {};
  }
  return std::get<AllowRule>(parsed);
}

std::string refused(std::string_view text) {
  auto parsed = parse_allow_rule(text);
  if (std::holds_alternative<AllowRule>(parsed)) {
    ADD_FAILURE() << text << " was accepted";
    return {};
  }
  return std::get<std::string>(parsed);
}

const TokenKey kSql{Identity{}, "https://database.windows.net/"};
const TokenKey kStorage{Identity{}, "https://storage.azure.com/"};
const TokenKey kSqlAsX{Identity{Identity::Kind::client_id, "X"}, "https://database.windows.net/"};

TEST(ParseAllowRule, TakesASubjectResourcesAndIdentities) {
  const auto one =
      rule("uid=1000;resource=https://database.windows.net/;resource=https://storage.azure.com/");
  EXPECT_EQ(one.uid, 1000U);
  EXPECT_FALSE(one.gid);
  EXPECT_EQ(one.resources, (std::vector<std::string>{"https://database.windows.net/",
                                                     "https://storage.azure.com/"}));
  EXPECT_TRUE(one.identities.empty());  // any

  const auto two = rule("gid=65532;resource=*;identity=default;identity=client_id=X");
  EXPECT_EQ(two.gid, 65532U);
  EXPECT_TRUE(two.resources.empty());  // any
  EXPECT_EQ(two.identities, (std::vector<std::string>{"default", "client_id=X"}));
  EXPECT_EQ(rule("uid=1;resource=R;identity=msi_res_id=/x").identities,
            (std::vector<std::string>{"mi_res_id=/x"}));
}

TEST(ParseAllowRule, RefusesWhatIsNotARuleNamingTheField) {
  EXPECT_NE(refused("resource=R").find("uid"), std::string::npos);
  EXPECT_NE(refused("uid=1000").find("resource"), std::string::npos);
  EXPECT_NE(refused("uid=one;resource=R").find("uid"), std::string::npos);
  EXPECT_NE(refused("uid=1;gid=2;resource=R").find("one"), std::string::npos);
  EXPECT_NE(refused("uid=1;resource=R;identity=someone").find("identity"), std::string::npos);
  EXPECT_NE(refused("uid=1;resource=R;colour=blue").find("colour"), std::string::npos);
  EXPECT_NE(refused("uid=1;resource").find("resource"), std::string::npos);
}

TEST(Refusal, TheCallersUidRuleDecidesElseItsGidRuleElseItIsRefused) {
  const std::vector<AllowRule> rules = {rule("gid=50;resource=*"),
                                        rule("uid=1000;resource=https://database.windows.net/"),
                                        rule("uid=2000;resource=*;identity=client_id=X")};
  const PeerCredentials app{10, 1000, 50};
  EXPECT_EQ(refusal(rules, app, kSql), std::nullopt);
  // The uid rule decides, although the gid rule would allow it.
  const auto storage = refusal(rules, app, kStorage);
  ASSERT_TRUE(storage.has_value());
  EXPECT_NE(storage->find("rule 2"), std::string::npos) << *storage;
  EXPECT_NE(storage->find("https://storage.azure.com/"), std::string::npos) << *storage;
  // No uid rule: the gid rule.
  EXPECT_EQ(refusal(rules, PeerCredentials{11, 3000, 50}, kStorage), std::nullopt);
  // Identities.
  EXPECT_EQ(refusal(rules, PeerCredentials{12, 2000, 7}, kSqlAsX), std::nullopt);
  const auto other_identity = refusal(rules, PeerCredentials{12, 2000, 7}, kSql);
  ASSERT_TRUE(other_identity.has_value());
  EXPECT_NE(other_identity->find("rule 3"), std::string::npos) << *other_identity;
  // Nobody's rule.
  const auto stranger = refusal(rules, PeerCredentials{13, 4000, 8}, kSql);
  ASSERT_TRUE(stranger.has_value());
  EXPECT_NE(stranger->find("no --allow rule"), std::string::npos) << *stranger;
  // `default` is what a request naming no identity gets: the broker's --client-id, if any.
  const std::vector<AllowRule> defaults = {rule("uid=1;resource=*;identity=default")};
  const Identity configured{Identity::Kind::client_id, "D"};
  const TokenKey as_default{configured, "https://database.windows.net/"};
  EXPECT_EQ(refusal(defaults, PeerCredentials{1, 1, 1}, as_default, configured), std::nullopt);
  EXPECT_TRUE(refusal(defaults, PeerCredentials{1, 1, 1}, kSqlAsX, configured).has_value());
  // No rules at all: anyone the socket admits.
  EXPECT_EQ(refusal({}, PeerCredentials{13, 4000, 8}, kSql), std::nullopt);
}

TEST(CallerLimiter, AllowsTheRateAtOnceThenRefillsPerUid) {
  CallerLimiter limiter(2);
  const SteadyTime start{std::chrono::hours(1)};
  std::chrono::seconds retry_after{0};
  EXPECT_TRUE(limiter.take(1000, start, retry_after));
  EXPECT_TRUE(limiter.take(1000, start, retry_after));
  EXPECT_FALSE(limiter.take(1000, start, retry_after));
  EXPECT_EQ(retry_after, 1s);
  EXPECT_TRUE(limiter.take(2000, start, retry_after));          // another uid has its own bucket
  EXPECT_TRUE(limiter.take(1000, start + 500ms, retry_after));  // half a second: one more
  EXPECT_FALSE(limiter.take(1000, start + 500ms, retry_after));
  EXPECT_TRUE(limiter.take(1000, start + 10s, retry_after));
  CallerLimiter off(0);
  EXPECT_FALSE(off.enabled());
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(off.take(1, start, retry_after));
}

}  // namespace
}  // namespace broker
