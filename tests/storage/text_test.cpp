// Pure helpers: UTF-8 <-> UTF-16, connection-string parsing, credential refusal, the password
// and access-token encodings, dialect detection, redaction.
#include "todo/odbc_text.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace todo::odbc {
namespace {

TEST(AccessTokenBuffer, IsLittleEndianByteCountThenEachByteFollowedByZero) {
  EXPECT_EQ(access_token_buffer("ab"), (std::vector<std::uint8_t>{4, 0, 0, 0, 'a', 0, 'b', 0}));
  EXPECT_EQ(access_token_buffer(""), (std::vector<std::uint8_t>{0, 0, 0, 0}));
}

TEST(AccessTokenBuffer, CountIsTwiceTheTokenLengthForLongTokens) {
  const std::string token(1500, 'x');  // JWTs are often over 1 KiB
  const auto buffer = access_token_buffer(token);
  ASSERT_EQ(buffer.size(), 4 + 3000u);
  EXPECT_EQ(buffer[0], 3000 & 0xFF);
  EXPECT_EQ(buffer[1], 3000 >> 8);
  EXPECT_EQ(buffer[2], 0);
  EXPECT_EQ(buffer[3], 0);
  for (std::size_t i = 0; i < token.size(); ++i) {
    ASSERT_EQ(buffer[4 + 2 * i], 'x');
    ASSERT_EQ(buffer[5 + 2 * i], 0);
  }
}

TEST(FindCredentialKeys, FindsEachCredentialKeyCaseInsensitivelyWithWhitespace) {
  EXPECT_EQ(find_credential_keys("Driver={ODBC Driver 18 for SQL Server};UID=app;"),
            std::vector<std::string>{"UID"});
  EXPECT_EQ(find_credential_keys("Server=x; pwd =secret"), std::vector<std::string>{"pwd"});
  EXPECT_EQ(find_credential_keys("Server=x;{Authentication}=ActiveDirectoryMsi"),
            std::vector<std::string>{"Authentication"});
  EXPECT_EQ(find_credential_keys("Server=x;Authentication={ActiveDirectoryMsi}"),
            std::vector<std::string>{"Authentication"});
  EXPECT_EQ(find_credential_keys("Server=x;trusted_connection=yes"),
            std::vector<std::string>{"trusted_connection"});
  EXPECT_EQ(find_credential_keys("uid=a;PWD={b;c}};d};Trusted_Connection=no"),
            (std::vector<std::string>{"uid", "PWD", "Trusted_Connection"}));
}

TEST(FindCredentialKeys, AcceptsACleanAzureSqlString) {
  EXPECT_TRUE(find_credential_keys("Driver={ODBC Driver 18 for SQL Server};Server=tcp:x.database."
                                   "windows.net,1433;Database=todo;Encrypt=yes;")
                  .empty());
}

TEST(FindCredentialKeys, DoesNotMatchKeysInsideBracedValues) {
  EXPECT_TRUE(find_credential_keys("Server={a;UID=b;PWD=c};Database={x;Authentication=y}").empty());
  EXPECT_TRUE(find_credential_keys("App={has }} brace;UID=x}").empty());
}

TEST(FindCredentialKeys, DoesNotMatchKeysThatOnlyContainACredentialName) {
  EXPECT_TRUE(find_credential_keys("UIDX=a;MyPWD=b;AuthenticationMode=c").empty());
}

TEST(FindCredentialKeys, RefusesAStringWithAnUnclosedBrace) {
  EXPECT_FALSE(find_credential_keys("Server={abc;Database=x").empty());
  EXPECT_FALSE(parse_connection_string("Server={abc;Database=x").has_value());
}

TEST(ParseConnectionString, UnquotesBracesAndTrims) {
  const auto attributes =
      parse_connection_string(" Driver = {PostgreSQL Unicode} ; Pwd={a}}b;c};x=");
  ASSERT_TRUE(attributes);
  ASSERT_EQ(attributes->size(), 3u);
  EXPECT_EQ((*attributes)[0].key, "Driver");
  EXPECT_EQ((*attributes)[0].value, "PostgreSQL Unicode");
  EXPECT_EQ((*attributes)[1].key, "Pwd");
  EXPECT_EQ((*attributes)[1].value, "a}b;c");
  EXPECT_EQ((*attributes)[2].key, "x");
  EXPECT_EQ((*attributes)[2].value, "");
  EXPECT_EQ(connection_value("UID=a;uid=b", "Uid"), "b");
  EXPECT_FALSE(connection_value("UID=a", "pwd"));
}

TEST(WithPassword, AppendsABraceQuotedPasswordWithClosingBracesDoubled) {
  EXPECT_EQ(with_password("Driver=x;Uid=app;", "tok"), "Driver=x;Uid=app;PWD={tok};");
  EXPECT_EQ(with_password("Driver=x;Uid=app", "a}b;c{d"), "Driver=x;Uid=app;PWD={a}}b;c{d};");
  EXPECT_EQ(with_password("", "t"), "PWD={t};");
  // What a driver parses back is the token itself.
  EXPECT_EQ(connection_value(with_password("Driver=x", "a}}b};=;"), "pwd"), "a}}b};=;");
}

TEST(DetectDialect, FromTheDriverName) {
  EXPECT_EQ(detect_dialect("Driver={ODBC Driver 18 for SQL Server};Server=x"), Dialect::sqlserver);
  EXPECT_EQ(detect_dialect("DRIVER=/opt/microsoft/msodbcsql18/lib64/libmsodbcsql-18.3.so.2.1"),
            Dialect::sqlserver);
  EXPECT_EQ(detect_dialect("Driver={PostgreSQL Unicode};Server=x"), Dialect::postgresql);
  EXPECT_EQ(detect_dialect("driver=psqlodbcw.so"), Dialect::postgresql);
  EXPECT_EQ(detect_dialect("Driver=SQLite3;Database=/tmp/x.db"), Dialect::sqlite);
  EXPECT_FALSE(detect_dialect("Driver=MySQL ODBC 8.0;Server=x"));
  EXPECT_FALSE(detect_dialect("DSN=todo"));
}

TEST(Utf, RoundTripsAsciiAccentsCjkAndEmoji) {
  const std::string text = "plain é ü ß 日本語 한국어 🎉 👍🏽 𝄞";
  const auto wide = utf8_to_utf16(text);
  ASSERT_TRUE(wide);
  EXPECT_EQ(utf16_to_utf8(*wide), text);
}

TEST(Utf, EncodesSupplementaryPlaneAsSurrogatePair) {
  EXPECT_EQ(utf8_to_utf16("\xF0\x9F\x8E\x89"), std::u16string(u"\xD83C\xDF89"));  // U+1F389
  EXPECT_EQ(utf8_to_utf16("\xF4\x8F\xBF\xBF"), std::u16string(u"\xDBFF\xDFFF"));  // U+10FFFF
  EXPECT_EQ(utf8_to_utf16("\xC3\xA9"), std::u16string(u"\x00E9"));
  EXPECT_EQ(utf8_to_utf16("\xEF\xBF\xBD"), std::u16string(u"\xFFFD"));
  EXPECT_EQ(utf16_to_utf8(u"\xD83C\xDF89"), "\xF0\x9F\x8E\x89");
  EXPECT_EQ(utf8_to_utf16(std::string("a\0b", 3)), std::u16string(u"a\0b", 3));
}

TEST(Utf, RejectsInvalidUtf8) {
  for (const std::string& bad : {
           std::string("\x80"),              // continuation as lead
           std::string("\xC3"),              // truncated
           std::string("\xE6\x97"),          // truncated 3-byte
           std::string("\xC3\x28"),          // bad continuation
           std::string("\xC0\xAF"),          // overlong '/'
           std::string("\xE0\x80\xAF"),      // overlong
           std::string("\xF0\x82\x82\xAC"),  // overlong euro
           std::string("\xED\xA0\x80"),      // UTF-16 surrogate D800 encoded
           std::string("\xF4\x90\x80\x80"),  // > U+10FFFF
           std::string("\xFF"),
           std::string("ok\xF8\x88\x80\x80\x80"),
       }) {
    EXPECT_FALSE(utf8_to_utf16(bad)) << "accepted invalid UTF-8";
    EXPECT_FALSE(valid_utf8(bad));
  }
}

TEST(Utf, RejectsUnpairedSurrogates) {
  EXPECT_FALSE(utf16_to_utf8(std::u16string(1, char16_t(0xD83C))));
  EXPECT_FALSE(utf16_to_utf8(std::u16string(1, char16_t(0xDF89))));
  EXPECT_FALSE(utf16_to_utf8(std::u16string{char16_t(0xD83C), u'a'}));
}

TEST(Redact, ReplacesEverySecretOccurrence) {
  EXPECT_EQ(redact("token abc and abc", {"abc", ""}), "token [redacted] and [redacted]");
  EXPECT_EQ(redact("nothing", {"secret"}), "nothing");
}

}  // namespace
}  // namespace todo::odbc
