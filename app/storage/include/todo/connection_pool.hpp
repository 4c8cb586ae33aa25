#pragma once
// The store's own connection pool and the retry policy around it. The physical connection is
// behind `Connection`, so that pool decisions (token expiry, lifetime, broken connections) and
// retries are unit-tested with a fake clock and fake connections.

#include "todo/odbc_store.hpp"

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace todo::odbc {

/// What a failure means for the connection it happened on and for a retry.
enum class FailureKind {
  broken,     ///< the connection is gone (SQLSTATE 08xxx, server shutting down): retire, retry
  login,      ///< the server refused or expired the login (28xxx, SQL Server 18456): retire
  transient,  ///< deadlock, serialization failure, timeout, Azure SQL "busy": retire, retry
  token,      ///< the token source failed: nothing to retire, no retry (it retries itself)
  busy,       ///< every pooled connection is in use: no retry
  other,      ///< anything else: the connection stays, no retry
};

struct DbError {
  FailureKind kind = FailureKind::other;
  StoreError error;  ///< what the caller sees; never holds a secret
};

[[noreturn]] void throw_exception_from_error(const DbError& error,
                                             const boost::source_location& location);

template <class T>
using DbResult = boost::system::result<T, DbError>;

/// One physical connection. Used by one thread at a time (the pool hands it out exclusively).
class Connection {
 public:
  virtual ~Connection() = default;
  virtual DbResult<std::vector<Todo>> list() = 0;
  virtual DbResult<std::optional<Todo>> get(std::int64_t id) = 0;
  /// Returns the new id.
  virtual DbResult<std::int64_t> insert(const NewTodo& item) = 0;
  /// False when there is no such row. `patch` has at least one field.
  virtual DbResult<bool> update(std::int64_t id, const TodoPatch& patch) = 0;
  /// False when there is no such row.
  virtual DbResult<bool> remove(std::int64_t id) = 0;
  virtual DbResult<void> ping() = 0;
};

/// Opens a physical connection; `token` is null for Auth::none.
using ConnectionFactory =
    std::function<DbResult<std::unique_ptr<Connection>>(const DbToken* token)>;

/// A fixed-size pool. Every new physical connection gets a fresh token from the token source;
/// an idle connection is closed instead of reused when its token has less than `token_margin`
/// left or it is older than `max_lifetime`; a caller retires a connection that failed.
class ConnectionPool {
 public:
  struct Options {
    std::size_t max_size = 4;
    std::chrono::seconds max_lifetime{1800};
    std::chrono::seconds token_margin{300};
    std::chrono::milliseconds acquire_timeout{5000};
    std::string dialect_name;  ///< for logs
  };

  struct Slot {
    std::unique_ptr<Connection> connection;
    std::uint64_t serial = 0;
    std::chrono::system_clock::time_point created;
    std::optional<std::chrono::system_clock::time_point> token_expires_on;
    bool reused = false;       ///< handed out before (a login failure on it may be an expiry)
    std::string token_sha256;  ///< of the token it logged in with (empty: none)
    /// token_replaced() calls before its token was fetched (see replaced()).
    std::uint64_t replace_epoch = 0;
  };

  /// Exclusive use of one connection; returns it to the pool when destroyed unless retired.
  class Lease {
   public:
    Lease(ConnectionPool* pool, std::unique_ptr<Slot> slot);
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();
    Connection& operator*() const { return *slot_->connection; }
    Connection* operator->() const { return slot_->connection.get(); }
    /// True when the connection had been used before this lease.
    bool reused() const { return slot_->reused; }
    /// Closes the connection now instead of returning it; `reason` is logged.
    void retire(std::string_view reason);

   private:
    ConnectionPool* pool_;
    std::unique_ptr<Slot> slot_;
  };

  /// `tokens` is empty for Auth::none.
  ConnectionPool(Options options, ConnectionFactory factory, TokenSource tokens,
                 std::shared_ptr<Clock> clock);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  /// An idle connection still fit for use, or a new one (token first), or - when `max_size`
  /// are open and busy - waits up to `acquire_timeout` for one to come back.
  DbResult<Lease> acquire();

  /// The token broker replaced the token early (a forced refresh: the old one was revoked or
  /// its roles changed) with the token whose SHA-256 is `new_sha256`: connections that logged in
  /// with another token are closed, the idle ones now, the leased ones when they come back.
  /// Returns how many were closed now.
  std::size_t token_replaced(const std::string& new_sha256);

  std::size_t open_count() const;  ///< idle + leased
  std::size_t idle_count() const;

  /// Why an idle connection must not be used at `now` (nullptr: it may be).
  static const char* retire_reason(const Slot& slot, std::chrono::system_clock::time_point now,
                                   const Options& options);

 private:
  void release(std::unique_ptr<Slot> slot);
  /// It logged in with a token that token_replaced() replaced (under the lock).
  bool replaced(const Slot& slot) const;
  void retire(std::unique_ptr<Slot> slot, std::string_view reason);
  /// A new connection: a token first; when the login is refused (FailureKind::login), one
  /// forced refresh of the token and one more login.
  DbResult<std::unique_ptr<Slot>> open();
  /// tokens_(rejected), checked against the margin.
  DbResult<DbToken> take_token(const DbToken* rejected);

  Options options_;
  ConnectionFactory factory_;
  TokenSource tokens_;
  std::shared_ptr<Clock> clock_;
  mutable std::mutex mutex_;
  std::condition_variable returned_;
  std::deque<std::unique_ptr<Slot>> idle_;  ///< most recently returned at the back
  std::size_t open_ = 0;                    ///< idle + leased + being opened
  std::uint64_t next_serial_ = 1;
  /// token_replaced() calls so far: a connection whose token was fetched before the last one,
  /// and is not current_sha256_, is closed.
  std::uint64_t replace_epoch_ = 0;
  std::string current_sha256_;
};

struct RetryOptions {
  int attempts = 3;
  /// Pause before attempt 2, 3, ... (the last value repeats).
  std::vector<std::chrono::milliseconds> backoff{std::chrono::milliseconds(200),
                                                 std::chrono::milliseconds(600)};
  /// Injected so that tests do not sleep.
  std::function<void(std::chrono::milliseconds)> sleep;
};

/// The TodoStore over a pool: maps not-found, retries transient failures on fresh connections.
std::unique_ptr<TodoStore> make_pooled_store(std::shared_ptr<ConnectionPool> pool,
                                             RetryOptions retry);

}  // namespace todo::odbc
