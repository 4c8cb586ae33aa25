#include "todo/odbc_store.hpp"

#include "odbc_connection.hpp"
#include "todo/connection_pool.hpp"
#include "todo/odbc_text.hpp"

#include <tb/log.hpp>

#include <boost/throw_exception.hpp>

#include <mutex>
#include <stdexcept>

namespace todo {

void throw_exception_from_error(const StoreError& error, const boost::source_location& location) {
  boost::throw_exception(std::runtime_error(error.message), location);
}

std::optional<Dialect> parse_dialect(std::string_view text) {
  if (text == "sqlserver" || text == "mssql" || text == "azuresql") return Dialect::sqlserver;
  if (text == "postgresql" || text == "postgres") return Dialect::postgresql;
  if (text == "sqlite") return Dialect::sqlite;
  return std::nullopt;
}

std::optional<Auth> parse_auth(std::string_view text) {
  if (text == "access-token") return Auth::access_token;
  if (text == "password") return Auth::password;
  if (text == "none") return Auth::none;
  return std::nullopt;
}

std::string_view to_string(Dialect dialect) {
  switch (dialect) {
    case Dialect::sqlserver:
      return "sqlserver";
    case Dialect::postgresql:
      return "postgresql";
    case Dialect::sqlite:
      break;
  }
  return "sqlite";
}

std::string_view to_string(Auth auth) {
  switch (auth) {
    case Auth::access_token:
      return "access-token";
    case Auth::password:
      return "password";
    case Auth::none:
      break;
  }
  return "none";
}

namespace {

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::now();
  }
};

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// Start-up checks: every problem here is a configuration mistake, reported before any traffic.
odbc::ConnectSettings validate(const StorageConfig& config, const TokenSource& tokens) {
  if (config.connection_string.empty()) {
    throw std::invalid_argument("storage: the ODBC connection string is empty");
  }
  if (!odbc::parse_connection_string(config.connection_string)) {
    throw std::invalid_argument(
        "storage: the ODBC connection string has a '{' without its closing '}'");
  }
  if (config.pool_size == 0) throw std::invalid_argument("storage: the pool size must be >= 1");
  if (config.max_lifetime.count() <= 0) {
    throw std::invalid_argument("storage: the connection max lifetime must be > 0");
  }
  if (config.token_margin.count() < 0) {
    throw std::invalid_argument("storage: the token margin must be >= 0");
  }
  odbc::ConnectSettings settings;
  settings.connection_string = config.connection_string;
  settings.auth = config.auth;
  if (config.dialect) {
    settings.dialect = *config.dialect;
  } else if (auto detected = odbc::detect_dialect(config.connection_string)) {
    settings.dialect = *detected;
  } else {
    throw std::invalid_argument(
        "storage: cannot tell the SQL dialect from the connection string's Driver=; set the "
        "dialect (sqlserver, postgresql or sqlite)");
  }
  switch (config.auth) {
    case Auth::access_token: {
      if (settings.dialect != Dialect::sqlserver) {
        throw std::invalid_argument(
            "storage: auth access-token works only with SQL Server / Azure SQL (Microsoft ODBC "
            "Driver 18); use password for PostgreSQL or MySQL");
      }
      const auto keys = odbc::find_credential_keys(config.connection_string);
      if (!keys.empty()) {
        throw std::invalid_argument(
            "storage: with auth access-token the connection string must not carry credentials, "
            "but it has " +
            join(keys) + "; remove them (the token from token-broker is the credential)");
      }
      break;
    }
    case Auth::password:
      if (odbc::connection_value(config.connection_string, "pwd") ||
          odbc::connection_value(config.connection_string, "password")) {
        throw std::invalid_argument(
            "storage: with auth password the connection string must not have PWD/Password: the "
            "token from token-broker is the password");
      }
      break;
    case Auth::none:
      break;
  }
  if (config.auth != Auth::none && !tokens) {
    throw std::invalid_argument("storage: auth " + std::string(to_string(config.auth)) +
                                " needs a token source");
  }
  for (const char* key : {"uid", "user", "username", "user id"}) {
    if (auto value = odbc::connection_value(config.connection_string, key)) {
      settings.login_name = *value;
    }
  }
  return settings;
}

// Opens connections and makes sure the schema is in place on the first one that works.
class OdbcFactory {
 public:
  explicit OdbcFactory(odbc::ConnectSettings settings) : settings_(std::move(settings)) {}

  odbc::DbResult<std::unique_ptr<odbc::Connection>> operator()(const DbToken* token) {
    auto env = environment();
    if (!env) return env.error();
    auto connection = odbc::connect(*env, settings_, token);
    if (!connection) return connection.error();
    if (auto ok = ensure_schema(**connection); !ok) return ok.error();
    return std::unique_ptr<odbc::Connection>(std::move(*connection));
  }

 private:
  odbc::DbResult<std::shared_ptr<odbc::Environment>> environment() {
    std::lock_guard lock(mutex_);
    if (!env_) {
      auto env = odbc::Environment::create();
      if (!env) return env.error();
      env_ = std::move(*env);
    }
    return env_;
  }

  // Once per process; callers that connect meanwhile wait so nobody uses a missing table.
  odbc::DbResult<void> ensure_schema(odbc::OdbcConnection& connection) {
    std::lock_guard lock(schema_mutex_);
    if (schema_ready_) return {};
    auto version = connection.migrate();
    if (!version) return version.error();
    schema_ready_ = true;
    tb::log::info("database schema ready",
                  {{"dialect", to_string(settings_.dialect)}, {"version", *version}});
    return {};
  }

  odbc::ConnectSettings settings_;
  std::mutex mutex_;
  std::shared_ptr<odbc::Environment> env_;
  std::mutex schema_mutex_;
  bool schema_ready_ = false;
};

}  // namespace

std::shared_ptr<Clock> system_clock() {
  static const auto clock = std::make_shared<SystemClock>();
  return clock;
}

std::unique_ptr<TodoStore> make_odbc_store(StorageConfig config, TokenSource tokens,
                                           std::shared_ptr<Clock> clock,
                                           TokenReplaced* token_replaced) {
  auto settings = validate(config, tokens);
  if (!clock) clock = system_clock();
  tb::log::info("storage configured", {{"dialect", to_string(settings.dialect)},
                                       {"auth", to_string(config.auth)},
                                       {"pool_size", config.pool_size},
                                       {"max_lifetime_s", config.max_lifetime.count()},
                                       {"token_margin_s", config.token_margin.count()}});
  odbc::ConnectionPool::Options options;
  options.max_size = config.pool_size;
  options.max_lifetime = config.max_lifetime;
  options.token_margin = config.token_margin;
  options.acquire_timeout = config.acquire_timeout;
  options.dialect_name = std::string(to_string(settings.dialect));
  auto factory = std::make_shared<OdbcFactory>(std::move(settings));
  auto pool = std::make_shared<odbc::ConnectionPool>(
      options, [factory](const DbToken* token) { return (*factory)(token); },
      config.auth == Auth::none ? TokenSource() : std::move(tokens), std::move(clock));
  if (token_replaced != nullptr) {
    *token_replaced = [pool](const std::string& sha256) { return pool->token_replaced(sha256); };
  }
  odbc::RetryOptions retry;
  retry.attempts = config.attempts;
  return odbc::make_pooled_store(std::move(pool), std::move(retry));
}

}  // namespace todo
