#include "todo/validate.hpp"

#include <gtest/gtest.h>

namespace todo {
namespace {

TEST(Validate, CountsCodePointsNotBytes) {
  EXPECT_EQ(utf8_length("abc"), 3u);
  EXPECT_EQ(utf8_length("h\xC3\xA9"), 2u);                 // é
  EXPECT_EQ(utf8_length("\xE6\x97\xA5\xE6\x9C\xAC"), 2u);  // 日本
  EXPECT_EQ(utf8_length("\xF0\x9F\x98\x80"), 1u);          // 😀
}

TEST(Validate, RejectsInvalidUtf8) {
  EXPECT_FALSE(utf8_length("\xC3"));              // truncated
  EXPECT_FALSE(utf8_length("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(utf8_length("\xED\xA0\x80"));      // UTF-16 surrogate
  EXPECT_FALSE(utf8_length("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(utf8_length("\xFF"));
  EXPECT_FALSE(utf8_length("a\x80"));
}

TEST(Validate, DescriptionMustBeNonEmptyAndAtMost4000Characters) {
  EXPECT_FALSE(description_problem("Buy milk"));
  EXPECT_TRUE(description_problem(""));
  EXPECT_TRUE(description_problem("  \t "));
  EXPECT_FALSE(description_problem(std::string(4000, 'x')));
  EXPECT_TRUE(description_problem(std::string(4001, 'x')));
  std::string emoji;
  for (int i = 0; i < 4000; ++i) emoji += "\xF0\x9F\x98\x80";
  EXPECT_FALSE(description_problem(emoji)) << "4,000 emoji are 16,000 bytes but 4,000 characters";
  EXPECT_TRUE(description_problem(emoji + "x"));
  EXPECT_TRUE(description_problem(std::string("a\0b", 3)));
  EXPECT_TRUE(description_problem("\xC3"));
  EXPECT_FALSE(description_problem("line one\nline two"));
}

TEST(Validate, IdsArePositiveWholeNumbers) {
  EXPECT_EQ(parse_id("1"), 1);
  EXPECT_EQ(parse_id("9223372036854775807"), INT64_MAX);
  EXPECT_FALSE(parse_id("9223372036854775808"));
  EXPECT_FALSE(parse_id("0"));
  EXPECT_FALSE(parse_id("-1"));
  EXPECT_FALSE(parse_id("01"));
  EXPECT_FALSE(parse_id("1a"));
  EXPECT_FALSE(parse_id(""));
}

}  // namespace
}  // namespace todo
