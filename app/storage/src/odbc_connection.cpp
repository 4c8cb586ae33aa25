#include "odbc_connection.hpp"

#include "todo/odbc_errors.hpp"
#include "todo/odbc_text.hpp"

#include <tb/log.hpp>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <mutex>

namespace todo::odbc {
namespace {

// ODBC passes integer attribute values in its SQLPOINTER argument: the cast is the API's.
// NOLINTNEXTLINE(performance-no-int-to-ptr)
SQLPOINTER integer_attribute(std::uintptr_t value) { return reinterpret_cast<SQLPOINTER>(value); }

bool succeeded(SQLRETURN rc) { return rc == SQL_SUCCESS || rc == SQL_SUCCESS_WITH_INFO; }

std::vector<Diagnostic> diagnostics(SQLSMALLINT type, SQLHANDLE handle,
                                    const std::vector<std::string_view>& secrets = {}) {
  std::vector<Diagnostic> out;
  for (SQLSMALLINT record = 1; record <= 8; ++record) {
    SQLCHAR state[6] = {};
    SQLINTEGER native = 0;
    SQLCHAR message[1024] = {};
    SQLSMALLINT length = 0;
    const SQLRETURN rc = SQLGetDiagRec(type, handle, record, state, &native, message,
                                       static_cast<SQLSMALLINT>(sizeof message), &length);
    if (!succeeded(rc)) break;
    Diagnostic d;
    d.sqlstate.assign(reinterpret_cast<const char*>(state), 5);
    d.sqlstate.resize(std::char_traits<char>::length(d.sqlstate.c_str()));
    d.native = static_cast<std::int32_t>(native);
    const auto size = std::min<std::size_t>(
        static_cast<std::size_t>(std::max<SQLSMALLINT>(length, 0)), sizeof message - 1);
    d.message = redact(std::string(reinterpret_cast<const char*>(message), size), secrets);
    out.push_back(std::move(d));
  }
  return out;
}

DbError internal(std::string message) {
  return {FailureKind::other, {StoreErrc::internal, std::move(message)}};
}

}  // namespace

// ---- Environment -------------------------------------------------------------------------------

DbResult<std::shared_ptr<Environment>> Environment::create() {
  // Process-wide: unixODBC's pool aborts on connection strings of 1 KiB and more and would hand a
  // connection opened with one token to a caller that brought another. Off is the default; say
  // so explicitly in case an odbcinst.ini turned it on.
  SQLSetEnvAttr(SQL_NULL_HENV, SQL_ATTR_CONNECTION_POOLING, integer_attribute(SQL_CP_OFF),
                SQL_IS_UINTEGER);
  SQLHENV env = SQL_NULL_HENV;
  if (!succeeded(SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &env))) {
    return internal("cannot allocate an ODBC environment (is unixODBC installed?)");
  }
  std::shared_ptr<Environment> out(new Environment(env));
  if (!succeeded(SQLSetEnvAttr(env, SQL_ATTR_ODBC_VERSION, integer_attribute(SQL_OV_ODBC3), 0))) {
    return internal("the ODBC driver manager refused ODBC version 3");
  }
  if (!succeeded(SQLSetEnvAttr(env, SQL_ATTR_CONNECTION_POOLING, integer_attribute(SQL_CP_OFF),
                               SQL_IS_UINTEGER))) {
    // Only the process-wide setting exists in some driver managers; that one is set above.
    tb::log::debug("ODBC environment: per-environment pooling attribute not supported");
  }
  return out;
}

Environment::~Environment() { SQLFreeHandle(SQL_HANDLE_ENV, env_); }

// ---- Statement ---------------------------------------------------------------------------------

class Statement {
 public:
  Statement(OdbcConnection& connection, std::string_view during)
      : connection_(connection), during_(during) {
    if (!succeeded(SQLAllocHandle(SQL_HANDLE_STMT, connection.dbc_, &stmt_))) {
      stmt_ = SQL_NULL_HSTMT;
    }
    // A statement that hangs (a lock held elsewhere) must not hold a worker forever; drivers
    // without the attribute just ignore it.
    if (stmt_ != SQL_NULL_HSTMT) {
      SQLSetStmtAttr(stmt_, SQL_ATTR_QUERY_TIMEOUT, integer_attribute(30), SQL_IS_UINTEGER);
    }
  }
  ~Statement() {
    if (stmt_ != SQL_NULL_HSTMT) SQLFreeHandle(SQL_HANDLE_STMT, stmt_);
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  DbResult<void> bind_text(const std::string& utf8) {
    if (!valid_utf8(utf8)) return internal("the description is not valid UTF-8");
    auto& ind = indicators_.emplace_back();
    const auto number = static_cast<SQLUSMALLINT>(indicators_.size());
    SQLRETURN rc = SQL_ERROR;
    if (connection_.sql_.text == TextEncoding::utf16) {
      auto converted = utf8_to_utf16(utf8);
      if (!converted) return internal("the description is not valid UTF-8");
      auto& text = wide_.emplace_back(std::move(*converted));
      const auto units = text.size();
      ind = static_cast<SQLLEN>(units * sizeof(char16_t));
      rc = SQLBindParameter(stmt_, number, SQL_PARAM_INPUT, SQL_C_WCHAR,
                            units > 4000 ? SQL_WLONGVARCHAR : SQL_WVARCHAR,
                            std::max<SQLULEN>(units, 1), 0, text.data(), ind, &ind);
    } else {
      auto& text = narrow_.emplace_back(utf8);
      ind = static_cast<SQLLEN>(text.size());
      rc = SQLBindParameter(stmt_, number, SQL_PARAM_INPUT, SQL_C_CHAR,
                            text.size() > 8000 ? SQL_LONGVARCHAR : SQL_VARCHAR,
                            std::max<SQLULEN>(text.size(), 1), 0, text.data(), ind, &ind);
    }
    return check(rc);
  }

  DbResult<void> bind_int64(std::int64_t value) {
    auto& ind = indicators_.emplace_back(0);
    auto& slot = integers_.emplace_back(value);
    const auto number = static_cast<SQLUSMALLINT>(indicators_.size());
    return check(SQLBindParameter(stmt_, number, SQL_PARAM_INPUT, SQL_C_SBIGINT, SQL_BIGINT, 0, 0,
                                  &slot, 0, &ind));
  }

  DbResult<void> bind_flag(bool value) {
    auto& ind = indicators_.emplace_back(0);
    auto& slot = flags_.emplace_back(value ? 1 : 0);
    const auto number = static_cast<SQLUSMALLINT>(indicators_.size());
    return check(SQLBindParameter(stmt_, number, SQL_PARAM_INPUT, SQL_C_SLONG, SQL_INTEGER, 0, 0,
                                  &slot, 0, &ind));
  }

  /// Runs `sql`; SQL_NO_DATA (a searched UPDATE/DELETE that matched nothing) is a success.
  DbResult<void> execute(const std::string& sql) {
    if (stmt_ == SQL_NULL_HSTMT) return check(SQL_ERROR);
    std::string text = sql;
    const SQLRETURN rc = SQLExecDirect(stmt_, reinterpret_cast<SQLCHAR*>(text.data()), SQL_NTS);
    if (rc == SQL_NO_DATA) return {};
    return check(rc);
  }

  /// False when there are no more rows.
  DbResult<bool> fetch() {
    const SQLRETURN rc = SQLFetch(stmt_);
    if (rc == SQL_NO_DATA) return false;
    if (auto ok = check(rc); !ok) return ok.error();
    return true;
  }

  DbResult<std::int64_t> row_count() {
    SQLLEN count = 0;
    if (auto ok = check(SQLRowCount(stmt_, &count)); !ok) return ok.error();
    return static_cast<std::int64_t>(count);
  }

  DbResult<std::int64_t> get_int64(SQLUSMALLINT column) {
    SQLBIGINT value = 0;
    SQLLEN ind = 0;
    if (auto ok = check(SQLGetData(stmt_, column, SQL_C_SBIGINT, &value, 0, &ind)); !ok) {
      return ok.error();
    }
    return ind == SQL_NULL_DATA ? 0 : static_cast<std::int64_t>(value);
  }

  /// A text column as UTF-8, read in chunks (the description can be 4,000 characters).
  DbResult<std::string> get_text(SQLUSMALLINT column) {
    if (connection_.sql_.text == TextEncoding::utf16) {
      std::u16string text;
      char16_t buffer[1024];
      for (;;) {
        SQLLEN ind = 0;
        const SQLRETURN rc = SQLGetData(stmt_, column, SQL_C_WCHAR, buffer, sizeof buffer, &ind);
        if (rc == SQL_NO_DATA) break;
        if (auto ok = check(rc); !ok) return ok.error();
        if (ind == SQL_NULL_DATA) break;
        const std::size_t capacity = std::size(buffer) - 1;  // one unit for the terminator
        const std::size_t units =
            (ind == SQL_NO_TOTAL || static_cast<std::size_t>(ind) / 2 > capacity)
                ? capacity
                : static_cast<std::size_t>(ind) / 2;
        text.append(buffer, units);
        if (rc == SQL_SUCCESS) break;
      }
      auto utf8 = utf16_to_utf8(text);
      if (!utf8) return internal("the database returned text that is not valid UTF-16");
      return std::move(*utf8);
    }
    std::string text;
    char buffer[2048];
    for (;;) {
      SQLLEN ind = 0;
      const SQLRETURN rc = SQLGetData(stmt_, column, SQL_C_CHAR, buffer, sizeof buffer, &ind);
      if (rc == SQL_NO_DATA) break;
      if (auto ok = check(rc); !ok) return ok.error();
      if (ind == SQL_NULL_DATA) break;
      const std::size_t capacity = sizeof buffer - 1;
      const std::size_t bytes = (ind == SQL_NO_TOTAL || static_cast<std::size_t>(ind) > capacity)
                                    ? capacity
                                    : static_cast<std::size_t>(ind);
      text.append(buffer, bytes);
      if (rc == SQL_SUCCESS) break;
    }
    return text;
  }

  DbResult<Todo> get_todo() {
    Todo todo;
    auto id = get_int64(1);
    if (!id) return id.error();
    auto description = get_text(2);
    if (!description) return description.error();
    auto created = get_text(3);
    if (!created) return created.error();
    auto done = get_int64(4);
    if (!done) return done.error();
    todo.id = *id;
    todo.description = std::move(*description);
    todo.created_date = std::move(*created);
    todo.done = *done != 0;
    return todo;
  }

 private:
  DbResult<void> check(SQLRETURN rc) {
    if (succeeded(rc)) return {};
    if (stmt_ == SQL_NULL_HSTMT) return error_from(SQL_HANDLE_DBC, connection_.dbc_);
    return error_from(SQL_HANDLE_STMT, stmt_);
  }
  DbError error_from(SQLSMALLINT type, SQLHANDLE handle) {
    return to_db_error(diagnostics(type, handle), during_, false, connection_.login_name_);
  }

  OdbcConnection& connection_;
  std::string_view during_;
  SQLHSTMT stmt_ = SQL_NULL_HSTMT;
  // Bound parameters must stay where they are until the statement has run: deques keep addresses.
  std::deque<SQLLEN> indicators_;
  std::deque<std::u16string> wide_;
  std::deque<std::string> narrow_;
  std::deque<SQLBIGINT> integers_;
  std::deque<SQLINTEGER> flags_;
};

// ---- OdbcConnection ----------------------------------------------------------------------------

OdbcConnection::OdbcConnection(std::shared_ptr<Environment> env, const DialectSql& sql,
                               std::string login_name)
    : env_(std::move(env)), sql_(sql), login_name_(std::move(login_name)) {}

OdbcConnection::~OdbcConnection() {
  if (dbc_ == SQL_NULL_HDBC) return;
  if (connected_) SQLDisconnect(dbc_);
  SQLFreeHandle(SQL_HANDLE_DBC, dbc_);
}

DbResult<std::unique_ptr<OdbcConnection>> connect(const std::shared_ptr<Environment>& env,
                                                  const ConnectSettings& settings,
                                                  const DbToken* token) {
  auto connection =
      std::make_unique<OdbcConnection>(env, dialect_sql(settings.dialect), settings.login_name);
  if (!succeeded(SQLAllocHandle(SQL_HANDLE_DBC, env->handle(), &connection->dbc_))) {
    connection->dbc_ = SQL_NULL_HDBC;
    return internal("cannot allocate an ODBC connection handle");
  }
  SQLHDBC dbc = connection->dbc_;
  // Bounded connect: a database that does not answer must not hold a worker for minutes.
  SQLSetConnectAttr(dbc, SQL_ATTR_LOGIN_TIMEOUT, integer_attribute(15), SQL_IS_UINTEGER);

  const std::string_view token_value = token ? std::string_view(token->value) : std::string_view();
  const auto password_in_string = connection_value(settings.connection_string, "pwd");
  const std::vector<std::string_view> secrets = {
      token_value, password_in_string ? std::string_view(*password_in_string) : std::string_view()};

  std::string connection_string = settings.connection_string;
  switch (settings.auth) {
    case Auth::access_token: {
      if (!token) return internal("no access token for an access-token connection");
      connection->access_token_ = access_token_buffer(token->value);
      const SQLRETURN rc = SQLSetConnectAttr(dbc, kSqlCoptSsAccessToken,
                                             connection->access_token_.data(), SQL_IS_POINTER);
      if (!succeeded(rc)) {
        auto error = to_db_error(diagnostics(SQL_HANDLE_DBC, dbc, secrets),
                                 "setting the access token", true, settings.login_name);
        error.error.message +=
            " (SQL_COPT_SS_ACCESS_TOKEN needs Microsoft ODBC Driver 17/18 for "
            "SQL Server)";
        return error;
      }
      break;
    }
    case Auth::password:
      if (!token) return internal("no token for a password connection");
      connection_string = with_password(connection_string, token->value);
      break;
    case Auth::none:
      break;
  }

  // psqlODBC calls setlocale() while it connects, which races with any other thread doing the
  // same (ThreadSanitizer shows it): its connects are serialised. New connections are rare (the
  // pool keeps them), so this only slows filling the pool.
  static std::mutex psqlodbc_connect_mutex;
  std::unique_lock<std::mutex> serial;
  if (settings.dialect == Dialect::postgresql) {
    serial = std::unique_lock<std::mutex>(psqlodbc_connect_mutex);
  }
  // No output buffer: the completed connection string would echo the password.
  const SQLRETURN rc =
      SQLDriverConnect(dbc, nullptr, reinterpret_cast<SQLCHAR*>(connection_string.data()), SQL_NTS,
                       nullptr, 0, nullptr, SQL_DRIVER_NOPROMPT);
  std::fill(connection_string.begin(), connection_string.end(), '\0');
  if (!succeeded(rc)) {
    return to_db_error(diagnostics(SQL_HANDLE_DBC, dbc, secrets), "connecting", true,
                       settings.login_name);
  }
  connection->connected_ = true;
  return connection;
}

DbResult<std::vector<Todo>> OdbcConnection::list() {
  Statement statement(*this, "listing the to-do items");
  if (auto ok = statement.execute(sql_.list); !ok) return ok.error();
  std::vector<Todo> out;
  for (;;) {
    auto row = statement.fetch();
    if (!row) return row.error();
    if (!*row) break;
    auto todo = statement.get_todo();
    if (!todo) return todo.error();
    out.push_back(std::move(*todo));
  }
  return out;
}

DbResult<std::optional<Todo>> OdbcConnection::get(std::int64_t id) {
  Statement statement(*this, "reading a to-do item");
  if (auto ok = statement.bind_int64(id); !ok) return ok.error();
  if (auto ok = statement.execute(sql_.get); !ok) return ok.error();
  auto row = statement.fetch();
  if (!row) return row.error();
  if (!*row) return std::optional<Todo>();
  auto todo = statement.get_todo();
  if (!todo) return todo.error();
  return std::optional<Todo>(std::move(*todo));
}

namespace {
DbResult<std::int64_t> read_id(Statement& statement) {
  auto row = statement.fetch();
  if (!row) return row.error();
  if (!*row) return internal("adding a to-do item: the database returned no id");
  return statement.get_int64(1);
}
}  // namespace

DbResult<std::int64_t> OdbcConnection::insert(const NewTodo& item) {
  Statement statement(*this, "adding a to-do item");
  if (auto ok = statement.bind_text(item.description); !ok) return ok.error();
  if (auto ok = statement.bind_flag(item.done); !ok) return ok.error();
  if (auto ok = statement.execute(sql_.insert); !ok) return ok.error();
  if (!sql_.last_insert_id.empty()) {
    Statement last(*this, "reading the new item's id");
    if (auto ok = last.execute(sql_.last_insert_id); !ok) return ok.error();
    return read_id(last);
  }
  return read_id(statement);
}

DbResult<bool> OdbcConnection::update(std::int64_t id, const TodoPatch& patch) {
  Statement statement(*this, "changing a to-do item");
  const std::string* sql = &sql_.update_done;
  if (patch.description) {
    if (auto ok = statement.bind_text(*patch.description); !ok) return ok.error();
    sql = patch.done ? &sql_.update_description_and_done : &sql_.update_description;
  }
  if (patch.done) {
    if (auto ok = statement.bind_flag(*patch.done); !ok) return ok.error();
  }
  if (auto ok = statement.bind_int64(id); !ok) return ok.error();
  if (auto ok = statement.execute(*sql); !ok) return ok.error();
  auto count = statement.row_count();
  if (!count) return count.error();
  return *count > 0;
}

DbResult<bool> OdbcConnection::remove(std::int64_t id) {
  Statement statement(*this, "deleting a to-do item");
  if (auto ok = statement.bind_int64(id); !ok) return ok.error();
  if (auto ok = statement.execute(sql_.remove); !ok) return ok.error();
  auto count = statement.row_count();
  if (!count) return count.error();
  return *count > 0;
}

DbResult<void> OdbcConnection::ping() {
  Statement statement(*this, "checking the database");
  if (auto ok = statement.execute(sql_.ping); !ok) return ok.error();
  auto row = statement.fetch();
  if (!row) return row.error();
  return {};
}

DbResult<int> OdbcConnection::migrate() {
  {
    Statement statement(*this, "creating the schema_version table");
    if (auto ok = statement.execute(sql_.create_schema_version); !ok) return ok.error();
  }
  int version = 0;
  {
    Statement statement(*this, "reading the schema version");
    if (auto ok = statement.execute(sql_.select_schema_version); !ok) return ok.error();
    auto row = statement.fetch();
    if (!row) return row.error();
    if (*row) {
      auto value = statement.get_int64(1);
      if (!value) return value.error();
      version = static_cast<int>(*value);
    }
  }
  for (const auto& migration : sql_.migrations) {
    if (migration.version <= version) continue;
    for (const auto& sql : migration.statements) {
      Statement statement(*this, "migrating the schema");
      if (auto ok = statement.execute(sql); !ok) return ok.error();
    }
    Statement statement(*this, "recording the schema version");
    if (auto ok = statement.bind_int64(migration.version); !ok) return ok.error();
    if (auto ok = statement.execute(sql_.insert_schema_version); !ok) {
      // Another process recorded the same version first (SQL Server has no INSERT OR IGNORE).
      if (ok.error().error.message.find("[23") == std::string::npos) return ok.error();
      tb::log::warn("schema version already recorded", {{"version", migration.version}});
    }
    tb::log::info("database schema migrated",
                  {{"dialect", to_string(sql_.dialect)}, {"version", migration.version}});
    version = migration.version;
  }
  return version;
}

}  // namespace todo::odbc
