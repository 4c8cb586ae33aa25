#pragma once
// ODBC diagnostics -> what they mean for the pool (FailureKind) and for the user (StoreError).
// Pure functions, so the SQL Server codes are tested without a server.

#include "todo/connection_pool.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace todo::odbc {

/// One SQLGetDiagRec record. `message` is already redacted (no token, no password).
struct Diagnostic {
  std::string sqlstate;
  std::int32_t native = 0;
  std::string message;
};

/// 08xxx, 57P01-03 and lost-connection messages -> broken; 28xxx, SQL Server 18456/18488 and
/// PostgreSQL authentication messages -> login; deadlocks, serialization failures, timeouts,
/// Azure SQL throttling/failover codes and SQLite BUSY/LOCKED -> transient; else other.
FailureKind classify(const std::vector<Diagnostic>& diagnostics);

/// The error the caller sees. `connecting` selects the wording for a failed SQLDriverConnect;
/// `login_name` (the UID, may be empty) names who was refused.
DbError to_db_error(const std::vector<Diagnostic>& diagnostics, std::string_view during,
                    bool connecting, std::string_view login_name);

}  // namespace todo::odbc
