#pragma once
// Command line and environment (TOKEN_BROKER_<FLAG>) → Config. Pure: the environment is passed
// in, nothing is read or opened here. Flags win over the environment.

#include "broker/policy.hpp"
#include "broker/retry.hpp"
#include "broker/sink.hpp"
#include "broker/source.hpp"
#include "broker/token.hpp"
#include "tb/cloud.hpp"
#include "tb/flags.hpp"
#include "tb/log.hpp"

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace broker {

struct Config {
  std::string source = "imds";  ///< resolved: "auto" is decided during parsing
  std::string source_reason;    ///< why this source (for the start-up log line)
  std::string imds_endpoint = "http://169.254.169.254";
  /// --source workload-identity: the AZURE_* variables and --ca-file (ca_file also applies to
  /// nothing else).
  WorkloadIdentitySettings workload_identity;
  /// --source app-service: IDENTITY_ENDPOINT, IDENTITY_HEADER, IDENTITY_HEADER_FILE (and
  /// --ca-file for an https:// endpoint).
  AppServiceSettings app_service;
  std::string socket_path = "/var/run/token-broker/broker.sock";
  mode_t socket_mode = 0660;
  /// Serve from a socket directory that group or others may write to (e.g. a Kubernetes emptyDir
  /// shared only by the pod's containers); refused at start otherwise.
  bool allow_shared_socket_dir = false;
  /// Callers allowed on the socket (SO_PEERCRED). Unset: the broker's own uid / the socket
  /// file's group.
  std::optional<std::vector<unsigned>> allow_uids;
  std::optional<std::vector<unsigned>> allow_gids;
  /// --allow (repeatable): which uid/gid may ask for which resources and identities; empty: any
  /// caller the socket admits may ask for anything.
  std::vector<AllowRule> allow_rules;
  /// Upstream-bound requests (a key not fetched yet, a forced refresh) per second per uid on the
  /// socket; beyond, 429. 0: no limit.
  double caller_rate = 10;
  /// A log line for every token handed out (who, which, cached or fresh; never the token).
  bool audit_log = false;
  bool admin_enabled = true;
  std::string admin_host = "0.0.0.0";
  std::uint16_t admin_port = 8081;
  /// The drop-in listener for unmodified Azure SDKs (IMDS and App Service routes), loopback only.
  bool imds_listen_enabled = false;
  std::string imds_listen_host = "127.0.0.1";
  std::uint16_t imds_listen_port = 0;
  /// The App Service route's secret (X-IDENTITY-HEADER): read at start, generated if absent.
  /// Resolved during parsing: default `<socket dir>/identity-header`.
  std::string identity_header_file;
  std::vector<std::string> prefetch;
  /// --sink (repeatable): files that get each new token of a key. Resolved during parsing: a
  /// sink that names no identity has the default identity (--client-id).
  std::vector<SinkSpec> sinks;
  /// The Azure cloud: workload identity's Entra authority unless AZURE_AUTHORITY_HOST is set.
  tb::Cloud cloud = tb::Cloud::public_cloud;
  /// Each prefetched resource's first upstream call waits a random time below this.
  std::chrono::milliseconds prefetch_jitter{0};
  /// At most one forced refresh (POST /v1/token/refresh) per resource and identity in this time.
  std::chrono::seconds force_refresh_interval{30};
  /// A token nobody asked for in this long is dropped at its refresh time (prefetched: never);
  /// 0: never.
  std::chrono::seconds idle_evict{3600};
  Identity default_identity;
  std::chrono::seconds min_validity{60};
  std::chrono::milliseconds request_timeout{10'000};
  std::chrono::milliseconds upstream_timeout{10'000};
  int upstream_concurrency = 4;
  RetryPolicy retry;
  std::chrono::seconds error_ttl{5};
  /// Watch streams (GET /v1/token/watch) open at once; more get 503. Each is a connection too.
  std::size_t max_watchers = 1000;
  /// A keep-alive comment on every watch stream this often.
  std::chrono::seconds watch_keepalive{15};
  /// Bytes an event stream may queue for a watcher that does not read, beyond its socket's
  /// buffer; more and it is dropped.
  std::size_t watch_buffer = std::size_t{64} * 1024;
  std::chrono::seconds shutdown_grace{10};
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds header_timeout{10};
  std::size_t max_connections = 1024;
  std::size_t max_header_bytes = std::size_t{8} * 1024;  ///< request line + headers
  std::size_t max_requests_per_connection = 1000;        ///< 0: no limit
  tb::log::Format log_format = tb::log::Format::json;
  spdlog::level::level_enum log_level = spdlog::level::info;
};

struct ParseOutcome {
  std::optional<Config> config;
  std::string error;  ///< one line naming the flag and the reason
  bool help = false;
  bool version = false;
};

using Getenv = tb::flags::Getenv;

/// `args` excludes the program name.
ParseOutcome parse_config(const std::vector<std::string>& args, const Getenv& getenv);

/// True when `host` is a loopback IP address (127.0.0.0/8, ::1, or ::ffff:127.x.y.z).
bool is_loopback_address(const std::string& host);

/// The --help text: every flag, its environment variable and its default.
std::string usage();

}  // namespace broker
