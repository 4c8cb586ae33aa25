// Start-up validation of StorageConfig: bad configuration is refused before any traffic, and a
// good one builds a store without connecting (the database may still be down).
#include "todo/odbc_store.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace todo {
namespace {

TokenSource fake_tokens() {
  return [](const DbToken*) -> StoreResult<DbToken> {
    return DbToken{"t", std::chrono::system_clock::now() + std::chrono::hours(1)};
  };
}

std::string start_error(StorageConfig config, TokenSource tokens = fake_tokens()) {
  try {
    make_odbc_store(std::move(config), std::move(tokens));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

constexpr const char* kAzureSql =
    "Driver={ODBC Driver 18 for SQL Server};Server=tcp:x.database.windows.net,1433;"
    "Database=todo;Encrypt=yes;";

TEST(StorageConfig, AccessTokenRefusesCredentialsInTheConnectionString) {
  const auto error =
      start_error({std::string(kAzureSql) + "uid = app;PWD={x;y}", Auth::access_token});
  EXPECT_NE(error.find("must not carry credentials, but it has uid, PWD"), std::string::npos)
      << error;
  EXPECT_EQ(error.find("x;y"), std::string::npos) << "the value leaked: " << error;
  EXPECT_NE(start_error(
                {std::string(kAzureSql) + "Authentication=ActiveDirectoryMsi", Auth::access_token})
                .find("Authentication"),
            std::string::npos);
  EXPECT_NE(start_error({std::string(kAzureSql) + "Trusted_Connection=yes", Auth::access_token}),
            "");
}

TEST(StorageConfig, AccessTokenWithACleanStringBuildsWithoutConnecting) {
  EXPECT_EQ(start_error({kAzureSql, Auth::access_token}), "");
}

TEST(StorageConfig, AccessTokenIsOnlyForSqlServer) {
  EXPECT_NE(start_error({"Driver={PostgreSQL Unicode};Server=x", Auth::access_token})
                .find("only with SQL Server"),
            std::string::npos);
}

TEST(StorageConfig, PasswordModeRefusesAPasswordInTheString) {
  EXPECT_NE(start_error({"Driver={PostgreSQL Unicode};Uid=a;Pwd=x", Auth::password}), "");
  EXPECT_EQ(start_error({"Driver={PostgreSQL Unicode};Uid=a", Auth::password}), "");
}

TEST(StorageConfig, TokenModesNeedATokenSource) {
  EXPECT_NE(start_error({"Driver={PostgreSQL Unicode};Uid=a", Auth::password}, TokenSource())
                .find("needs a token source"),
            std::string::npos);
}

TEST(StorageConfig, UnknownDialectAndBadStringsAreRefused) {
  EXPECT_NE(start_error({"Driver=MySQL;Server=x", Auth::none}).find("cannot tell the SQL dialect"),
            std::string::npos);
  EXPECT_NE(start_error({"Driver={SQLite3;Database=x", Auth::none}).find("'{'"), std::string::npos);
  EXPECT_NE(start_error({"", Auth::none}), "");
  StorageConfig zero{"Driver=SQLite3;Database=/tmp/x.db", Auth::none};
  zero.pool_size = 0;
  EXPECT_NE(start_error(zero), "");
  StorageConfig explicit_dialect{"DSN=todo", Auth::none, Dialect::sqlite};
  EXPECT_EQ(start_error(explicit_dialect), "");
}

TEST(StorageConfig, ParsesNames) {
  EXPECT_EQ(parse_auth("access-token"), Auth::access_token);
  EXPECT_EQ(parse_auth("password"), Auth::password);
  EXPECT_EQ(parse_auth("none"), Auth::none);
  EXPECT_FALSE(parse_auth("token"));
  EXPECT_EQ(parse_dialect("postgresql"), Dialect::postgresql);
  EXPECT_FALSE(parse_dialect("oracle"));
  EXPECT_EQ(to_string(Auth::access_token), "access-token");
  EXPECT_EQ(to_string(Dialect::sqlserver), "sqlserver");
}

}  // namespace
}  // namespace todo
