#pragma once
// The ODBC implementation of TodoStore: configuration, the token hook and the factory the app
// wires at start-up. The pieces behind it (pool, dialects, text helpers) have their own headers
// so that they can be unit-tested without a database.

#include "todo/store.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace todo {

/// The SQL flavour. Chosen in the configuration or detected from the connection string's Driver=.
enum class Dialect { sqlserver, postgresql, sqlite };

/// How the database login proves who we are.
enum class Auth {
  access_token,  ///< SQL Server / Azure SQL: SQL_COPT_SS_ACCESS_TOKEN before SQLDriverConnect
  password,      ///< Azure Database for PostgreSQL/MySQL with Entra: the token is PWD
  none,          ///< the connection string is complete (SQLite, trust)
};

std::optional<Dialect> parse_dialect(std::string_view text);  ///< sqlserver|postgresql|sqlite
std::optional<Auth> parse_auth(std::string_view text);        ///< access-token|password|none
std::string_view to_string(Dialect dialect);
std::string_view to_string(Auth auth);

/// A database access token as the token source hands it over.
struct DbToken {
  std::string value;
  std::chrono::system_clock::time_point expires_on;
};

/// Called once per new physical connection (never for Auth::none), with `rejected` null. When
/// the database refuses the login with a token that has not expired (a role change, a revoked
/// token), called once more with that token as `rejected`: it should then get a genuinely new
/// one (token_client's forced refresh), or fail. Blocks; on failure its message says what went
/// wrong (the store passes it on as `unavailable`).
using TokenSource = std::function<StoreResult<DbToken>(const DbToken* rejected)>;

/// Wall-clock time, injectable so that token-expiry decisions are tested without sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point now() const = 0;
};

/// The real clock (one shared instance).
std::shared_ptr<Clock> system_clock();

struct StorageConfig {
  /// ODBC connection string ("Driver=...;..."). Never logged, never shown in errors.
  std::string connection_string;
  Auth auth = Auth::none;
  /// nullopt: detected from the connection string's Driver= (error if that is not possible).
  std::optional<Dialect> dialect;
  /// Physical connections open at most; callers beyond that wait up to `acquire_timeout`.
  std::size_t pool_size = 4;
  /// A connection older than this is closed instead of reused.
  std::chrono::seconds max_lifetime{1800};
  /// A connection whose token has less than this left is closed instead of reused.
  std::chrono::seconds token_margin{300};
  /// How long a call waits for a free connection when all `pool_size` are busy.
  std::chrono::milliseconds acquire_timeout{5000};
  /// Attempts per call for transient failures (broken connection, deadlock, timeout), each on a
  /// fresh connection, with a short backoff in between.
  int attempts = 3;
};

/// Checks the configuration (throws std::invalid_argument with a clear message: credentials in
/// the connection string with Auth::access_token, a password with Auth::password, unknown
/// dialect, unbalanced braces, pool_size 0, no token source when one is needed) and returns the
/// store. Does not connect: the first call does, and the schema is created or migrated on the
/// first successful connection of the process, so the store can be built while the database is
/// still down.
/// Told that the token broker replaced the database token early (a forced refresh) with the
/// token whose SHA-256 is the argument: the pool closes connections that logged in with another
/// (ConnectionPool::token_replaced); returns how many it closed at once.
using TokenReplaced = std::function<std::size_t(const std::string& new_sha256)>;

/// `token_replaced`, when not null, is set to the pool's TokenReplaced.
std::unique_ptr<TodoStore> make_odbc_store(StorageConfig config, TokenSource tokens,
                                           std::shared_ptr<Clock> clock = system_clock(),
                                           TokenReplaced* token_replaced = nullptr);

}  // namespace todo
