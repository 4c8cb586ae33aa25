#include "todo/config.hpp"

#include "todo/odbc_text.hpp"

#include <fmt/format.h>

namespace todo {
namespace {

using Flag = tb::flags::Flag<AppConfig>;
using Problem = std::optional<std::string>;
constexpr std::string_view kEnvPrefix = "TODO_";

const std::vector<Flag>& flags() {
  static const std::vector<Flag> kFlags = {
      {"listen", "HOST:PORT", "Address of the web UI and JSON API (default 0.0.0.0:8080).",
       [](AppConfig& c, const std::string& v) {
         return tb::flags::parse_host_port(v, c.listen_host, c.listen_port);
       }},
      {"admin-listen", "HOST:PORT|off",
       "Admin listener for /healthz, /readyz (with the reason when not ready) and /metrics, "
       "apart from the public port, which serves neither /metrics nor the reasons (default "
       "0.0.0.0:8082; probes and Prometheus go here, the Service and Ingress do not).",
       [](AppConfig& c, const std::string& v) -> Problem {
         if (v == "off") {
           c.admin_enabled = false;
           return std::nullopt;
         }
         c.admin_enabled = true;
         return tb::flags::parse_host_port(v, c.admin_host, c.admin_port);
       }},
      {"db-connection-string", "ODBC",
       "ODBC connection string WITHOUT credentials, e.g. 'Driver={ODBC Driver 18 for SQL "
       "Server};Server=tcp:x.database.windows.net,1433;Database=todo;Encrypt=yes;' (default "
       "'Driver=SQLite3;Database=todo.db;'). Never logged.",
       [](AppConfig& c, const std::string& v) -> Problem {
         c.db_connection_string = v;
         return std::nullopt;
       }},
      {"db-auth", "access-token|password|none",
       "How the app logs in: access-token (Azure SQL: the broker's token as "
       "SQL_COPT_SS_ACCESS_TOKEN), password (Azure Database for PostgreSQL/MySQL with Entra: the "
       "token as the password), none (SQLite or a server that needs no login; default).",
       [](AppConfig& c, const std::string& v) -> Problem {
         auto auth = parse_auth(v);
         if (!auth) return "must be access-token, password or none, got '" + v + "'";
         c.db_auth = *auth;
         return std::nullopt;
       }},
      {"db-dialect", "sqlserver|postgresql|sqlite",
       "SQL flavour (default: detected from the connection string's Driver=).",
       [](AppConfig& c, const std::string& v) -> Problem {
         auto dialect = parse_dialect(v);
         if (!dialect) return "must be sqlserver, postgresql or sqlite, got '" + v + "'";
         c.db_dialect = dialect;
         return std::nullopt;
       }},
      {"cloud", "NAME",
       "Azure cloud: AzurePublicCloud (default), AzureUSGovernment or AzureChinaCloud; sets the "
       "default of --db-token-resource.",
       [](AppConfig& c, const std::string& v) -> Problem {
         return tb::parse_cloud_flag(v, c.cloud);
       }},
      {"db-token-resource", "URI",
       "Resource the database token is for (default: the cloud's Azure SQL audience, "
       "https://database.windows.net/ in AzurePublicCloud; with the postgresql dialect its "
       "PostgreSQL/MySQL one, https://ossrdbms-aad.database.windows.net).",
       [](AppConfig& c, const std::string& v) -> Problem {
         c.db_token_resource = v;
         return std::nullopt;
       }},
      {"db-client-id", "ID",
       "Client id of the managed identity to log in with (default: the broker's default).",
       [](AppConfig& c, const std::string& v) -> Problem {
         c.db_client_id = v;
         return std::nullopt;
       }},
      {"broker-socket", "PATH",
       "token-broker's Unix socket (default /var/run/token-broker/broker.sock).",
       [](AppConfig& c, const std::string& v) -> Problem {
         c.broker_socket = v;
         return std::nullopt;
       },
       "TOKEN_BROKER_SOCKET"},
      {"broker-timeout-ms", "MS", "Deadline for one token request to the broker (default 5000).",
       tb::flags::int_range<AppConfig>(
           100, 120'000,
           [](AppConfig& c, std::int64_t v) { c.broker_timeout = std::chrono::milliseconds(v); })},
      {"db-pool-size", "N", "Database connections kept open at most (default 4).",
       tb::flags::int_range<AppConfig>(
           1, 256,
           [](AppConfig& c, std::int64_t v) { c.db_pool_size = static_cast<std::size_t>(v); })},
      {"db-max-lifetime", "SECONDS",
       "A database connection is closed after this long, whatever its token (default 1800).",
       tb::flags::int_range<AppConfig>(
           10, 86'400,
           [](AppConfig& c, std::int64_t v) { c.db_max_lifetime = std::chrono::seconds(v); })},
      {"db-token-margin", "SECONDS",
       "A database connection is closed when its token has less than this left (default 300).",
       tb::flags::int_range<AppConfig>(
           0, 3'600,
           [](AppConfig& c, std::int64_t v) { c.db_token_margin = std::chrono::seconds(v); })},
      {"threads", "N", "Worker threads; each can wait on one database call at a time (default 8).",
       tb::flags::int_range<AppConfig>(
           1, 256, [](AppConfig& c, std::int64_t v) { c.threads = static_cast<int>(v); })},
      {"drain-seconds", "SECONDS",
       "On SIGTERM, keep serving this long while /readyz answers 503, so that Services and "
       "Ingresses stop sending before the app stops listening (default 5).",
       tb::flags::int_range<AppConfig>(
           0, 300, [](AppConfig& c, std::int64_t v) { c.drain = std::chrono::seconds(v); })},
      {"shutdown-grace", "SECONDS",
       "After the drain, how long requests in flight may take before they are answered 503 "
       "(default 10).",
       tb::flags::int_range<AppConfig>(
           0, 300,
           [](AppConfig& c, std::int64_t v) { c.shutdown_grace = std::chrono::seconds(v); })},
      {"csrf-secret-file", "PATH",
       "File with the secret that signs form tokens; set the same file on every replica behind "
       "one address (default: a random secret per process).",
       [](AppConfig& c, const std::string& v) -> Problem {
         c.csrf_secret_file = v;
         return std::nullopt;
       }},
      {"log-format", "json|text", "Log lines as JSON (default) or text for people.",
       [](AppConfig& c, const std::string& v) -> Problem {
         if (!tb::log::parse_format(v, c.log_format))
           return "must be json or text, got '" + v + "'";
         return std::nullopt;
       }},
      {"log-level", "LEVEL", "trace|debug|info|warn|error|critical|off (default info).",
       [](AppConfig& c, const std::string& v) -> Problem {
         if (!tb::log::parse_level(v, c.log_level)) {
           return "must be one of trace, debug, info, warn, error, critical, off; got '" + v + "'";
         }
         return std::nullopt;
       }},
  };
  return kFlags;
}

}  // namespace

std::string usage() {
  return "Usage: todo-app [FLAGS]\n"
         "A to-do list web app (HTML UI + JSON API) that logs into its database with tokens\n"
         "from token-broker, never with a stored password.\n\n"
         "Every flag can also be set as an environment variable (shown in brackets); flags "
         "win.\n\n" +
         tb::flags::usage(flags(), kEnvPrefix);
}

ParseOutcome parse_config(const std::vector<std::string>& args, const tb::flags::Getenv& getenv) {
  ParseOutcome outcome;
  AppConfig config;
  auto parsed = tb::flags::parse(flags(), kEnvPrefix, args, getenv, config);
  outcome.help = parsed.help;
  outcome.version = parsed.version;
  outcome.error = std::move(parsed.error);
  if (!outcome.error.empty() || outcome.help || outcome.version) return outcome;
  if (config.db_connection_string.empty()) {
    outcome.error = "--db-connection-string must not be empty";
    return outcome;
  }
  if (config.db_token_resource.empty()) {
    const auto dialect =
        config.db_dialect ? config.db_dialect : odbc::detect_dialect(config.db_connection_string);
    const auto& cloud = tb::endpoints(config.cloud);
    config.db_token_resource =
        std::string(dialect == Dialect::postgresql ? cloud.ossrdbms_resource : cloud.sql_resource);
  }
  outcome.config = std::move(config);
  return outcome;
}

}  // namespace todo
