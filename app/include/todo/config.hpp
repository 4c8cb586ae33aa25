#pragma once
// todo-app settings: command line and environment (TODO_<FLAG>, and TOKEN_BROKER_SOCKET for the
// broker's socket). Pure: the environment is passed in. Flags win over the environment.

#include "tb/cloud.hpp"
#include "tb/flags.hpp"
#include "tb/log.hpp"
#include "todo/odbc_store.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace todo {

struct AppConfig {
  std::string listen_host = "0.0.0.0";
  std::uint16_t listen_port = 8080;
  /// /healthz, /readyz (with the reason) and /metrics, apart from the public port.
  bool admin_enabled = true;
  std::string admin_host = "0.0.0.0";
  std::uint16_t admin_port = 8082;
  /// ODBC connection string without credentials.
  std::string db_connection_string = "Driver=SQLite3;Database=todo.db;";
  Auth db_auth = Auth::none;
  std::optional<Dialect> db_dialect;  ///< nullopt: detected from Driver=
  /// The Azure cloud, for the default of db_token_resource.
  tb::Cloud cloud = tb::Cloud::public_cloud;
  /// Resolved during parsing when not given: the cloud's Azure SQL audience, or its
  /// PostgreSQL/MySQL one for the postgresql dialect.
  std::string db_token_resource;
  std::string db_client_id;  ///< optional: which managed identity the broker should use
  std::string broker_socket = "/var/run/token-broker/broker.sock";
  std::chrono::milliseconds broker_timeout{5'000};
  std::size_t db_pool_size = 4;
  std::chrono::seconds db_max_lifetime{1'800};
  std::chrono::seconds db_token_margin{300};
  int threads = 8;
  /// On SIGTERM: this long serving as usual while /readyz says 503 (endpoints drop the pod).
  std::chrono::seconds drain{5};
  /// Then: this long for requests in flight before they are answered 503.
  std::chrono::seconds shutdown_grace{10};
  std::string csrf_secret_file;  ///< "" = a random secret per process
  tb::log::Format log_format = tb::log::Format::json;
  spdlog::level::level_enum log_level = spdlog::level::info;
};

struct ParseOutcome {
  std::optional<AppConfig> config;
  std::string error;  ///< one line naming the flag and the reason
  bool help = false;
  bool version = false;
};

/// `args` excludes the program name.
ParseOutcome parse_config(const std::vector<std::string>& args, const tb::flags::Getenv& getenv);

/// The --help text: every flag, its environment variable and its default.
std::string usage();

}  // namespace todo
