#include "broker/token.hpp"

#include <gtest/gtest.h>

namespace broker {
namespace {

TEST(IdentityToString, NamesTheKindAndValueOrSaysDefault) {
  EXPECT_EQ(to_string(Identity{}), "default");
  EXPECT_EQ(to_string(Identity{Identity::Kind::client_id, "c"}), "client_id=c");
  EXPECT_EQ(to_string(Identity{Identity::Kind::object_id, "o"}), "object_id=o");
  EXPECT_EQ(to_string(Identity{Identity::Kind::mi_res_id, "/s/r"}), "mi_res_id=/s/r");
}

TEST(TokenKeyFlat, SameValueUnderDifferentIdentityKindsGivesDifferentKeys) {
  const std::string resource = "https://database.windows.net/";
  const TokenKey none{{}, resource};
  const TokenKey client{{Identity::Kind::client_id, "x"}, resource};
  const TokenKey object{{Identity::Kind::object_id, "x"}, resource};
  const TokenKey res_id{{Identity::Kind::mi_res_id, "x"}, resource};
  EXPECT_NE(none.flat(), client.flat());
  EXPECT_NE(client.flat(), object.flat());
  EXPECT_NE(object.flat(), res_id.flat());
  EXPECT_NE(client.flat(), res_id.flat());
}

TEST(TokenKeyFlat, EqualKeysGiveEqualFlatStrings) {
  const TokenKey a{{Identity::Kind::client_id, "x"}, "r"};
  const TokenKey b{{Identity::Kind::client_id, "x"}, "r"};
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.flat(), b.flat());
  EXPECT_NE(a.flat(), (TokenKey{{Identity::Kind::client_id, "x"}, "r2"}).flat());
  EXPECT_NE(a.flat(), (TokenKey{{Identity::Kind::client_id, "xr"}, ""}).flat());
}

}  // namespace
}  // namespace broker
