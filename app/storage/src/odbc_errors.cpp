#include "todo/odbc_errors.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace todo::odbc {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool contains_any(const std::string& haystack, std::initializer_list<std::string_view> needles) {
  return std::any_of(needles.begin(), needles.end(), [&](std::string_view needle) {
    return haystack.find(needle) != std::string::npos;
  });
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// SQL Server native errors that mean a failed or expired login.
constexpr std::array<std::int32_t, 5> kSqlServerLogin = {18456, 18486, 18487, 18488, 4060};
// Azure SQL / SQL Server: connection dropped at the transport level.
constexpr std::array<std::int32_t, 6> kSqlServerBroken = {233, 10053, 10054, 10060, 64, 40197};
// Azure SQL throttling, failover, database moving; SQL Server deadlock victim.
constexpr std::array<std::int32_t, 9> kSqlServerTransient = {40613, 40501, 40540, 49918, 49919,
                                                             49920, 10928, 10929, 1205};

template <std::size_t N>
bool in(const std::array<std::int32_t, N>& codes, std::int32_t code) {
  return std::find(codes.begin(), codes.end(), code) != codes.end();
}

FailureKind classify_one(const Diagnostic& d) {
  const std::string message = lower(d.message);
  if (starts_with(d.sqlstate, "28") || in(kSqlServerLogin, d.native) ||
      contains_any(message, {"password authentication failed", "pam authentication failed",
                             "authentication failed for user", "no pg_hba.conf entry",
                             "login failed", "token is expired", "token has expired"})) {
    return FailureKind::login;
  }
  if (starts_with(d.sqlstate, "08") || d.sqlstate == "57P01" || d.sqlstate == "57P02" ||
      d.sqlstate == "57P03" || in(kSqlServerBroken, d.native) ||
      contains_any(message, {"server closed the connection", "connection dead",
                             "no connection to the server", "terminating connection",
                             "communication link failure", "could not connect to server",
                             "connection refused", "the database system is"})) {
    return FailureKind::broken;
  }
  if (d.sqlstate == "40001" || d.sqlstate == "40P01" || d.sqlstate == "HYT00" ||
      d.sqlstate == "HYT01" || in(kSqlServerTransient, d.native) ||
      contains_any(message, {"database is locked", "database table is locked"})) {
    return FailureKind::transient;
  }
  return FailureKind::other;
}

std::string summary(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  // Two records are plenty; some drivers repeat the same text several times.
  for (std::size_t i = 0; i < diagnostics.size() && i < 2; ++i) {
    std::string message = diagnostics[i].message;
    while (!message.empty() && std::isspace(static_cast<unsigned char>(message.back()))) {
      message.pop_back();
    }
    if (!out.empty()) out += "; ";
    out += "[" + diagnostics[i].sqlstate + "] " + message;
  }
  return out.empty() ? "no diagnostic from the driver" : out;
}

}  // namespace

FailureKind classify(const std::vector<Diagnostic>& diagnostics) {
  // The most telling record wins: a login failure is often followed by a generic 08001.
  FailureKind best = FailureKind::other;
  const auto rank = [](FailureKind k) {
    switch (k) {
      case FailureKind::login:
        return 3;
      case FailureKind::broken:
        return 2;
      case FailureKind::transient:
        return 1;
      default:
        return 0;
    }
  };
  for (const auto& d : diagnostics) {
    const FailureKind kind = classify_one(d);
    if (rank(kind) > rank(best)) best = kind;
  }
  return best;
}

DbError to_db_error(const std::vector<Diagnostic>& diagnostics, std::string_view during,
                    bool connecting, std::string_view login_name) {
  const FailureKind kind = classify(diagnostics);
  const std::string text = summary(diagnostics);
  switch (kind) {
    case FailureKind::login: {
      const std::string who =
          login_name.empty() ? std::string("this identity") : "role " + std::string(login_name);
      return {kind,
              {StoreErrc::login_failed, "the database refused the login for " + who + ": " + text +
                                            "; check that the identity is granted access to the "
                                            "database and that its token is for the database"}};
    }
    case FailureKind::broken:
      return {kind,
              {StoreErrc::unavailable, connecting ? "cannot reach the database: " + text
                                                  : "lost the connection to the database while " +
                                                        std::string(during) + ": " + text}};
    case FailureKind::transient:
      return {kind,
              {StoreErrc::unavailable, "the database could not complete " + std::string(during) +
                                           " now: " + text + "; retry later"}};
    default:
      // A connect that fails for another reason (SQLite cannot open its file, a driver that is
      // not installed) is still "no database": the caller should report not ready, not a bug.
      if (connecting) {
        return {kind, {StoreErrc::unavailable, "cannot connect to the database: " + text}};
      }
      return {kind,
              {StoreErrc::internal, "database error while " + std::string(during) + ": " + text}};
  }
}

}  // namespace todo::odbc
