#pragma once
// The real Connection: RAII ODBC handles over unixODBC. Private to todo_storage.

#include "todo/connection_pool.hpp"
#include "todo/sql_dialect.hpp"

#include <sql.h>
#include <sqlext.h>

#include <memory>
#include <string>
#include <vector>

namespace todo::odbc {

/// SQL Server's pre-connect attribute for an Entra access token (msodbcsql.h).
inline constexpr SQLINTEGER kSqlCoptSsAccessToken = 1256;

/// An ODBC environment (ODBC 3, driver-manager pooling off). Shared by all connections.
class Environment {
 public:
  static DbResult<std::shared_ptr<Environment>> create();
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
  SQLHENV handle() const { return env_; }

 private:
  explicit Environment(SQLHENV env) : env_(env) {}
  SQLHENV env_;
};

struct ConnectSettings {
  std::string connection_string;
  Auth auth = Auth::none;
  Dialect dialect = Dialect::sqlite;
  std::string login_name;  ///< UID from the connection string, for error messages
};

class OdbcConnection;

/// Opens one physical connection, injecting `token` as `settings.auth` says.
DbResult<std::unique_ptr<OdbcConnection>> connect(const std::shared_ptr<Environment>& env,
                                                  const ConnectSettings& settings,
                                                  const DbToken* token);

class OdbcConnection final : public Connection {
 public:
  OdbcConnection(std::shared_ptr<Environment> env, const DialectSql& sql, std::string login_name);
  ~OdbcConnection() override;
  OdbcConnection(const OdbcConnection&) = delete;
  OdbcConnection& operator=(const OdbcConnection&) = delete;

  DbResult<std::vector<Todo>> list() override;
  DbResult<std::optional<Todo>> get(std::int64_t id) override;
  DbResult<std::int64_t> insert(const NewTodo& item) override;
  DbResult<bool> update(std::int64_t id, const TodoPatch& patch) override;
  DbResult<bool> remove(std::int64_t id) override;
  DbResult<void> ping() override;

  /// Creates the schema_version table and applies the migrations not yet recorded.
  DbResult<int> migrate();

 private:
  friend DbResult<std::unique_ptr<OdbcConnection>> connect(const std::shared_ptr<Environment>&,
                                                           const ConnectSettings&, const DbToken*);
  friend class Statement;

  // Declared first so they are destroyed last: the driver may read the access token buffer
  // until the connection handle is freed (connection resiliency reconnects with it).
  std::shared_ptr<Environment> env_;
  std::vector<std::uint8_t> access_token_;
  const DialectSql& sql_;
  std::string login_name_;
  SQLHDBC dbc_ = SQL_NULL_HDBC;
  bool connected_ = false;
};

}  // namespace todo::odbc
