// ODBC diagnostics -> pool decision and user-facing error, incl. SQL Server codes.
#include "todo/odbc_errors.hpp"

#include <gtest/gtest.h>

namespace todo::odbc {
namespace {

TEST(Classify, SqlStateClassesAndSqlServerNativeCodes) {
  EXPECT_EQ(classify({{"08001", 0, "could not connect"}}), FailureKind::broken);
  EXPECT_EQ(classify({{"08S01", 10054, "Communication link failure"}}), FailureKind::broken);
  EXPECT_EQ(classify({{"28000", 18456, "Login failed for user '<token-identified principal>'."}}),
            FailureKind::login);
  EXPECT_EQ(classify({{"42000", 18456, "Login failed"}}), FailureKind::login);
  EXPECT_EQ(classify({{"HY000", 40613, "Database 'todo' is not currently available."}}),
            FailureKind::transient);
  EXPECT_EQ(classify({{"40001", 1205, "deadlock victim"}}), FailureKind::transient);
  EXPECT_EQ(classify({{"40P01", 0, "deadlock detected"}}), FailureKind::transient);
  EXPECT_EQ(classify({{"HYT00", 0, "Query timeout expired"}}), FailureKind::transient);
  EXPECT_EQ(classify({{"57P01", 0, "terminating connection due to administrator command"}}),
            FailureKind::broken);
  EXPECT_EQ(classify({{"HY000", 5, "database is locked"}}), FailureKind::transient);
  EXPECT_EQ(classify({{"42S02", 208, "Invalid object name 'todos'."}}), FailureKind::other);
  EXPECT_EQ(classify({}), FailureKind::other);
}

TEST(Classify, PostgresqlAuthenticationFailureReportedAs08001IsALoginFailure) {
  EXPECT_EQ(classify({{"08001", 101, "FATAL:  PAM authentication failed for user \"app\""}}),
            FailureKind::login);
  EXPECT_EQ(classify({{"08001", 0, "connection refused"},
                      {"28P01", 0, "password authentication failed"}}),
            FailureKind::login);
}

TEST(ToDbError, ConnectFailureIsUnavailableAndNamesTheDriverMessage) {
  const auto error = to_db_error({{"08001", 0, "could not connect to server: Connection refused"}},
                                 "connecting", true, "app");
  EXPECT_EQ(error.kind, FailureKind::broken);
  EXPECT_EQ(error.error.code, StoreErrc::unavailable);
  EXPECT_EQ(error.error.message,
            "cannot reach the database: [08001] could not connect to server: Connection refused");
}

TEST(ToDbError, LoginFailureNamesTheRoleAndWhatToCheck) {
  const auto error =
      to_db_error({{"28000", 18456, "Login failed for user 'app'.\n"}}, "connecting", true, "app");
  EXPECT_EQ(error.error.code, StoreErrc::login_failed);
  EXPECT_NE(error.error.message.find("the database refused the login for role app: [28000] "
                                     "Login failed for user 'app'."),
            std::string::npos);
  EXPECT_NE(error.error.message.find("check that the identity is granted access"),
            std::string::npos);
}

TEST(ToDbError, OtherErrorsAreInternal) {
  const auto error = to_db_error({{"42S02", 208, "Invalid object name"}}, "listing", false, "");
  EXPECT_EQ(error.kind, FailureKind::other);
  EXPECT_EQ(error.error.code, StoreErrc::internal);
  EXPECT_EQ(error.error.message, "database error while listing: [42S02] Invalid object name");
}

TEST(ToDbError, AnyOtherConnectFailureIsUnavailableNotInternal) {
  const auto error = to_db_error({{"HY000", 0, "[SQLite]connect failed"}}, "connecting", true, "");
  EXPECT_EQ(error.kind, FailureKind::other);  // not retried
  EXPECT_EQ(error.error.code, StoreErrc::unavailable);
  EXPECT_EQ(error.error.message, "cannot connect to the database: [HY000] [SQLite]connect failed");
}

}  // namespace
}  // namespace todo::odbc
