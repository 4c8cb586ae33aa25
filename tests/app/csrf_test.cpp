#include "todo/csrf.hpp"

#include <gtest/gtest.h>

namespace todo {
namespace {

TEST(Csrf, TokenBelongsToItsCookieOnly) {
  Csrf csrf(std::string(32, 's'));
  const auto cookie = csrf.new_cookie();
  const auto other = csrf.new_cookie();
  ASSERT_EQ(cookie.size(), 64u);
  EXPECT_NE(cookie, other);
  const auto token = csrf.token_for(cookie);
  EXPECT_TRUE(csrf.verify(cookie, token));
  EXPECT_FALSE(csrf.verify(other, token));
  EXPECT_FALSE(csrf.verify(cookie, csrf.token_for(other)));
  EXPECT_FALSE(csrf.verify(cookie, ""));
  EXPECT_FALSE(csrf.verify("", token));
  // The double-submit trick (token == cookie) does not pass.
  EXPECT_FALSE(csrf.verify(cookie, cookie));
}

TEST(Csrf, AnotherSecretGivesOtherTokens) {
  Csrf one(std::string(32, 'a'));
  Csrf two(std::string(32, 'b'));
  const auto cookie = one.new_cookie();
  EXPECT_FALSE(two.verify(cookie, one.token_for(cookie)));
}

TEST(Csrf, RefusesAShortSecret) { EXPECT_THROW(Csrf("short"), std::invalid_argument); }

}  // namespace
}  // namespace todo
