#include "broker/config.hpp"

#include "broker/app_service.hpp"

#include "broker/peer.hpp"
#include "tb/flags.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <boost/asio/ip/address.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <charconv>
#include <filesystem>

namespace broker {
namespace {

using Flag = tb::flags::Flag<Config>;
using tb::flags::parse_host_port;
constexpr std::string_view kEnvPrefix = "TOKEN_BROKER_";

auto int_range(std::int64_t low, std::int64_t high,
               std::function<void(Config&, std::int64_t)> set) {
  return tb::flags::int_range<Config>(low, high, std::move(set));
}

/// "http://host:" parses as a URL with a port, an empty one: connecting to it can only fail.
bool has_empty_port(const boost::urls::url_view& url) {
  return url.has_port() && url.port().empty();
}

const std::vector<Flag>& flags() {
  static const std::vector<Flag> kFlags = {
      {"source", "auto|imds|workload-identity|app-service",
       "Where tokens come from. auto (default): workload identity if AZURE_FEDERATED_TOKEN_FILE "
       "is set, App Service if IDENTITY_ENDPOINT is set, else IMDS/NMI. workload-identity reads "
       "AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and AZURE_AUTHORITY_HOST "
       "(default https://login.microsoftonline.com/). app-service reads IDENTITY_ENDPOINT and "
       "IDENTITY_HEADER, or IDENTITY_HEADER_FILE (re-read for every call).",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         if (v != "auto" && v != "imds" && v != "workload-identity" && v != "app-service") {
           return "must be auto, imds, workload-identity or app-service, got '" + v + "'";
         }
         c.source = v;
         return std::nullopt;
       }},
      {"imds-endpoint", "URL", "IMDS/NMI base URL (default http://169.254.169.254).",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         auto url = boost::urls::parse_absolute_uri(v);
         if (!url || url->scheme() != "http" || url->host().empty() || has_empty_port(*url)) {
           return "must be an http:// URL with a host, e.g. http://169.254.169.254, got '" + v +
                  "'";
         }
         c.imds_endpoint = v;
         return std::nullopt;
       }},
      {"ca-file", "PATH",
       "PEM CA certificates that the workload-identity token endpoint's certificate must chain "
       "to (default: the system CA bundle).",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         if (v.empty()) return "must be a path to a PEM file";
         c.workload_identity.ca_file = v;
         return std::nullopt;
       }},
      {"socket", "PATH",
       "Unix socket the token API listens on (default /var/run/token-broker/broker.sock).",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         // sun_path holds 108 bytes including the terminating NUL.
         if (v.empty() || v.size() > 107) return "must be a path of 1 to 107 bytes";
         c.socket_path = v;
         return std::nullopt;
       }},
      {"socket-mode", "OCTAL", "Permissions of the socket file (default 0660).",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         const auto mode = tb::flags::parse_octal_mode(v);
         if (!mode) return "must be an octal mode such as 0660, got '" + v + "'";
         if ((*mode & 0600) != 0600) return "must let the owner read and write (e.g. 0660)";
         c.socket_mode = static_cast<mode_t>(*mode);
         return std::nullopt;
       }},
      {"allow-shared-socket-dir", "true|false",
       "Serve from a socket directory that group or others may write to (default false: such a "
       "directory stops the start, since another user could replace the socket). true for a "
       "Kubernetes emptyDir shared only by the pod's containers.",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         if (v != "true" && v != "false") return "must be true or false, got '" + v + "'";
         c.allow_shared_socket_dir = v == "true";
         return std::nullopt;
       }},
      {"allow-uids", "UID[,UID...]",
       "Caller uids allowed on the socket (checked with SO_PEERCRED; default: the broker's own "
       "uid).",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         c.allow_uids = parse_id_list(v);
         if (!c.allow_uids) return "must be numeric uids separated by commas, got '" + v + "'";
         return std::nullopt;
       }},
      {"allow-gids", "GID[,GID...]",
       "Caller primary gids allowed on the socket (default: the socket file's group).",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         c.allow_gids = parse_id_list(v);
         if (!c.allow_gids) return "must be numeric gids separated by commas, got '" + v + "'";
         return std::nullopt;
       }},
      {"admin-listen", "HOST:PORT|off",
       "Admin listener for /healthz, /readyz, /metrics (default 0.0.0.0:8081; never serves "
       "tokens).",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         if (v == "off") {
           c.admin_enabled = false;
           return std::nullopt;
         }
         c.admin_enabled = true;
         return parse_host_port(v, c.admin_host, c.admin_port);
       }},
      {"imds-listen", "127.0.0.1:PORT|off",
       "Drop-in listener for unmodified Azure SDKs on loopback TCP (default off): the IMDS route "
       "(Metadata: true) and the App Service route /msi/token (X-IDENTITY-HEADER).",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         if (v == "off") {
           c.imds_listen_enabled = false;
           return std::nullopt;
         }
         std::string host;
         std::uint16_t port = 0;
         if (auto problem = parse_host_port(v, host, port)) return problem;
         // Tokens over TCP only on loopback: anything else would let the network (or a
         // server-side request forgery) reach them.
         if (!is_loopback_address(host)) {
           return "must be a loopback address (127.0.0.0/8 or [::1]) so that only this pod can "
                  "connect, got '" +
                  host + "'";
         }
         c.imds_listen_enabled = true;
         c.imds_listen_host = host;
         c.imds_listen_port = port;
         return std::nullopt;
       }},
      {"identity-header-file", "PATH",
       "Secret that callers of /msi/token send as X-IDENTITY-HEADER (IDENTITY_HEADER); generated "
       "at start if absent, mode 0640 (default: identity-header next to --socket).",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         if (v.empty()) return "must be a path";
         c.identity_header_file = v;
         return std::nullopt;
       }},
      {"prefetch", "R[,R...]",
       "Resources to fetch at start; /readyz is 200 only when all are held.",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         c.prefetch.clear();
         std::size_t start = 0;
         while (start <= v.size()) {
           auto end = v.find(',', start);
           if (end == std::string::npos) end = v.size();
           auto item = v.substr(start, end - start);
           if (!item.empty()) c.prefetch.push_back(item);
           start = end + 1;
         }
         return std::nullopt;
       }},
      {"sink", "resource=R,path=P[,...]",
       "Write the token for R to the file P on every new token, atomically (temp file, fsync, "
       "rename: readers never see a partial file). Fields: resource=R, client_id|object_id|"
       "mi_res_id=ID (default: --client-id), path=P (absolute; its directory must exist), "
       "mode=0640 (octal; pgpass 0600), format=raw|json|pgpass (raw: the token alone; json: the "
       "/v1/token body; pgpass: a libpq password file line, with pghost, pgport, pgdatabase, "
       "pguser, each * by default). Repeatable; in the environment, separate sinks with ';'. R is "
       "fetched at start and /readyz waits until every file is written.",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         std::size_t start = 0;
         while (start <= v.size()) {
           auto end = v.find(';', start);
           if (end == std::string::npos) end = v.size();
           auto item = std::string_view(v).substr(start, end - start);
           start = end + 1;
           const auto first = item.find_first_not_of(" \n\t");
           if (first == std::string_view::npos) continue;
           item = item.substr(first, item.find_last_not_of(" \n\t") - first + 1);
           auto parsed = parse_sink(item);
           if (auto* problem = std::get_if<std::string>(&parsed)) return std::move(*problem);
           c.sinks.push_back(std::get<SinkSpec>(std::move(parsed)));
         }
         return std::nullopt;
       },
       "", [](Config& c) { c.sinks.clear(); }},
      {"cloud", "NAME",
       "Azure cloud: AzurePublicCloud (default), AzureUSGovernment or AzureChinaCloud; sets "
       "workload identity's Entra authority when AZURE_AUTHORITY_HOST is unset.",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         return tb::parse_cloud_flag(v, c.cloud);
       }},
      {"prefetch-jitter", "SECONDS",
       "Spread each --prefetch resource's first upstream call over a random delay below this, so "
       "that brokers starting together on a node do not all call its IMDS at once (default 0; a "
       "request that needs the token starts the call at once).",
       int_range(0, 300,
                 [](Config& c, std::int64_t v) { c.prefetch_jitter = std::chrono::seconds(v); })},
      {"force-refresh-interval", "SECONDS",
       "At most one forced refresh (POST /v1/token/refresh) per resource and identity in this "
       "time; further ones share the call in flight or get 429 with Retry-After (default 30).",
       int_range(
           1, 3600,
           [](Config& c, std::int64_t v) { c.force_refresh_interval = std::chrono::seconds(v); })},
      {"idle-evict", "SECONDS",
       "A token nobody asked for in this long is not refreshed but dropped when its refresh "
       "comes (--prefetch resources never are; default 3600, 0: never).",
       int_range(0, 604'800,  // a week
                 [](Config& c, std::int64_t v) { c.idle_evict = std::chrono::seconds(v); })},
      {"allow", "uid=N|gid=N;resource=R[;…]",
       "A rule of who may ask for what on the socket: the caller's uid (or primary gid), "
       "resource=R (repeatable, * for any) and optionally identity=default|client_id=ID|"
       "object_id=ID|mi_res_id=ID (repeatable, * for any). With rules, the first naming the "
       "caller's uid, else its gid, decides, and a caller no rule names is refused (403). "
       "Repeatable; several rules in one value are separated by spaces. Callers must also pass "
       "--allow-uids/--allow-gids.",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         std::size_t start = 0;
         while (start < v.size()) {
           const auto first = v.find_first_not_of(" \t\n", start);
           if (first == std::string::npos) break;
           auto end = v.find_first_of(" \t\n", first);
           if (end == std::string::npos) end = v.size();
           auto parsed = parse_allow_rule(std::string_view(v).substr(first, end - first));
           if (auto* problem = std::get_if<std::string>(&parsed)) {
             return "rule '" + v.substr(first, end - first) + "' " + *problem;
           }
           c.allow_rules.push_back(std::get<AllowRule>(std::move(parsed)));
           start = end;
         }
         return std::nullopt;
       },
       "", [](Config& c) { c.allow_rules.clear(); }},
      {"caller-rate", "N",
       "Upstream-bound requests (a token not fetched yet, a forced refresh) each uid may make per "
       "second on the socket, N at once; beyond, 429 caller_rate_limited with Retry-After "
       "(default 10; 0: no limit). Tokens the broker holds are never limited.",
       int_range(0, 100'000,
                 [](Config& c, std::int64_t v) { c.caller_rate = static_cast<double>(v); })},
      {"audit-log", "true|false",
       "Log a line for every token handed out: route, caller pid/uid/gid, resource, identity, "
       "token fingerprint, cached or fresh; never the token (default false).",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         if (v != "true" && v != "false") return "must be true or false, got '" + v + "'";
         c.audit_log = v == "true";
         return std::nullopt;
       }},
      {"max-watchers", "N",
       "Watch streams (GET /v1/token/watch) open at once; more are answered 503 (default 1000; "
       "each is a connection, within --max-connections).",
       int_range(0, 100'000,
                 [](Config& c, std::int64_t v) { c.max_watchers = static_cast<std::size_t>(v); })},
      {"watch-keepalive", "SECONDS",
       "A keep-alive comment on every watch stream this often (default 15).",
       int_range(1, 300,
                 [](Config& c, std::int64_t v) { c.watch_keepalive = std::chrono::seconds(v); })},
      {"watch-buffer", "BYTES",
       "Bytes a watch stream may queue for a reader that does not read (beyond its socket's "
       "small buffer); more and the stream is closed (default 65536).",
       int_range(1024, std::int64_t{16} * 1024 * 1024,
                 [](Config& c, std::int64_t v) { c.watch_buffer = static_cast<std::size_t>(v); })},
      {"client-id", "ID", "Default identity (user-assigned client ID) for requests that name none.",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         c.default_identity = v.empty() ? Identity{} : Identity{Identity::Kind::client_id, v};
         return std::nullopt;
       }},
      {"min-validity", "SECONDS",
       "A token is served only while it has at least this long left (default 60).",
       int_range(0, 3600,
                 [](Config& c, std::int64_t v) { c.min_validity = std::chrono::seconds(v); })},
      {"request-timeout", "SECONDS",
       "How long a token request waits for an upstream call (default 10; ?timeout= may lower it).",
       int_range(1, 300,
                 [](Config& c, std::int64_t v) { c.request_timeout = std::chrono::seconds(v); })},
      {"upstream-timeout", "SECONDS", "Timeout of one upstream attempt (default 10).",
       int_range(1, 300,
                 [](Config& c, std::int64_t v) { c.upstream_timeout = std::chrono::seconds(v); })},
      {"upstream-concurrency", "N", "Upstream calls in flight at most (default 4).",
       int_range(1, 64,
                 [](Config& c, std::int64_t v) { c.upstream_concurrency = static_cast<int>(v); })},
      {"retry-base-ms", "MS", "Backoff base between upstream attempts (default 1000).",
       int_range(1, 60'000,
                 [](Config& c, std::int64_t v) { c.retry.base = std::chrono::milliseconds(v); })},
      {"retry-max-ms", "MS", "Backoff cap between upstream attempts (default 30000).",
       int_range(1, 600'000,
                 [](Config& c, std::int64_t v) { c.retry.cap = std::chrono::milliseconds(v); })},
      {"error-ttl", "SECONDS",
       "How long an upstream 400/401/403 is remembered and answered from memory (default 5).",
       int_range(0, 600, [](Config& c, std::int64_t v) { c.error_ttl = std::chrono::seconds(v); })},
      {"max-connections", "N", "Client connections open at most (default 1024).",
       int_range(
           1, 100'000,
           [](Config& c, std::int64_t v) { c.max_connections = static_cast<std::size_t>(v); })},
      {"max-header-bytes", "BYTES",
       "Request line + headers at most; more is answered 431 (default 8192).",
       int_range(1024, 65536,
                 [](Config& c, std::int64_t v) {
                   c.max_header_bytes = static_cast<std::size_t>(v);
                 })},
      {"max-requests-per-connection", "N",
       "Requests served on one connection; the last answer says Connection: close (default "
       "1000, 0 = no limit).",
       int_range(0, 1'000'000,
                 [](Config& c, std::int64_t v) {
                   c.max_requests_per_connection = static_cast<std::size_t>(v);
                 })},
      {"idle-timeout", "SECONDS", "Close a keep-alive connection idle this long (default 60).",
       int_range(1, 3600,
                 [](Config& c, std::int64_t v) { c.idle_timeout = std::chrono::seconds(v); })},
      {"header-timeout", "SECONDS", "Time allowed to send a request's headers (default 10).",
       int_range(1, 300,
                 [](Config& c, std::int64_t v) { c.header_timeout = std::chrono::seconds(v); })},
      {"shutdown-grace", "SECONDS",
       "On SIGTERM, how long requests in flight may take to finish (default 10).",
       int_range(0, 300,
                 [](Config& c, std::int64_t v) { c.shutdown_grace = std::chrono::seconds(v); })},
      {"log-format", "json|text", "One JSON object per line (default) or text for people.",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         if (!tb::log::parse_format(v, c.log_format))
           return "must be json or text, got '" + v + "'";
         return std::nullopt;
       }},
      {"log-level", "LEVEL", "trace, debug, info (default), warn, error, critical or off.",
       [](Config& c, const std::string& v) -> std::optional<std::string> {
         if (!tb::log::parse_level(v, c.log_level)) {
           return "must be one of trace, debug, info, warn, error, critical, off; got '" + v + "'";
         }
         return std::nullopt;
       }},
  };
  return kFlags;
}

}  // namespace

bool is_loopback_address(const std::string& host) {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(host, ec);
  if (ec) return false;
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6())
        .is_loopback();
  }
  return address.is_loopback();
}

std::string usage() {
  return "Usage: token-broker [FLAGS]\n"
         "Keeps Azure managed-identity tokens fresh and serves them on a Unix socket.\n\n"
         "Every flag can also be set as an environment variable (shown in brackets); flags "
         "win.\n\n" +
         tb::flags::usage(flags(), kEnvPrefix);
}

ParseOutcome parse_config(const std::vector<std::string>& args, const Getenv& getenv) {
  ParseOutcome outcome;
  Config config;
  config.source = "auto";
  auto parsed = tb::flags::parse(flags(), kEnvPrefix, args, getenv, config);
  outcome.help = parsed.help;
  outcome.version = parsed.version;
  outcome.error = std::move(parsed.error);
  if (!outcome.error.empty() || outcome.help || outcome.version) return outcome;

  if (config.retry.cap < config.retry.base) {
    outcome.error = "--retry-max-ms must not be smaller than --retry-base-ms";
    return outcome;
  }
  if (config.identity_header_file.empty()) {
    config.identity_header_file =
        (std::filesystem::path(config.socket_path).parent_path() / "identity-header").string();
  }
  for (std::size_t i = 0; i < config.sinks.size(); ++i) {
    auto& sink = config.sinks[i];
    if (sink.key.identity.kind == Identity::Kind::none) sink.key.identity = config.default_identity;
    for (std::size_t j = 0; j < i; ++j) {
      if (config.sinks[j].path == sink.path) {
        outcome.error = "--sink path=" + sink.path + " is given to two sinks; give each its file";
        return outcome;
      }
    }
    for (const auto& [flag, other] :
         {std::pair{"--socket", &config.socket_path},
          std::pair{"--identity-header-file", &config.identity_header_file}}) {
      if (sink.path == std::filesystem::path(*other).lexically_normal().string()) {
        outcome.error = "--sink path=" + sink.path + " is the " + flag + " path; name another file";
        return outcome;
      }
    }
  }
  auto env = [&](const char* name) { return getenv(name).value_or(std::string()); };
  if (config.source == "auto") {
    if (!env("AZURE_FEDERATED_TOKEN_FILE").empty()) {
      config.source = "workload-identity";
      config.source_reason = "auto: AZURE_FEDERATED_TOKEN_FILE is set";
    } else if (!env("IDENTITY_ENDPOINT").empty()) {
      config.source = "app-service";
      config.source_reason = "auto: IDENTITY_ENDPOINT is set";
    } else {
      config.source = "imds";
      config.source_reason =
          "auto: neither AZURE_FEDERATED_TOKEN_FILE nor IDENTITY_ENDPOINT is set";
    }
  } else {
    config.source_reason = "--source " + config.source;
  }
  if (config.source == "workload-identity") {
    auto& wi = config.workload_identity;
    wi.tenant_id = env("AZURE_TENANT_ID");
    wi.federated_token_file = env("AZURE_FEDERATED_TOKEN_FILE");
    wi.client_id = env("AZURE_CLIENT_ID");
    wi.authority_host = std::string(tb::endpoints(config.cloud).authority_host);
    if (auto host = env("AZURE_AUTHORITY_HOST"); !host.empty()) wi.authority_host = host;
    // --client-id is the default identity of every request, so it stands in for AZURE_CLIENT_ID.
    if (wi.client_id.empty() && config.default_identity.kind == Identity::Kind::client_id) {
      wi.client_id = config.default_identity.value;
    }
    std::vector<std::string> missing;
    if (wi.client_id.empty()) missing.emplace_back("AZURE_CLIENT_ID (or --client-id)");
    if (wi.tenant_id.empty()) missing.emplace_back("AZURE_TENANT_ID");
    if (wi.federated_token_file.empty()) missing.emplace_back("AZURE_FEDERATED_TOKEN_FILE");
    if (!missing.empty()) {
      outcome.error = "--source workload-identity needs " +
                      fmt::format("{}", fmt::join(missing, ", ")) +
                      " in the environment (the workload-identity webhook sets them when the pod's "
                      "service account is annotated with azure.workload.identity/client-id)";
      return outcome;
    }
    auto url = boost::urls::parse_absolute_uri(wi.authority_host);
    if (!url || url->scheme() != "https" || url->host().empty() || has_empty_port(*url)) {
      outcome.error =
          "AZURE_AUTHORITY_HOST must be an https:// URL such as "
          "https://login.microsoftonline.com/, got '" +
          wi.authority_host + "'";
      return outcome;
    }  // AKS identity bindings: the webhook adds these four; recent Azure SDKs read them.
    wi.token_proxy = env("AZURE_KUBERNETES_TOKEN_PROXY");
    wi.sni_name = env("AZURE_KUBERNETES_SNI_NAME");
    wi.proxy_ca_file = env("AZURE_KUBERNETES_CA_FILE");
    wi.proxy_ca_data = env("AZURE_KUBERNETES_CA_DATA");
    if (wi.token_proxy.empty() &&
        (!wi.sni_name.empty() || !wi.proxy_ca_file.empty() || !wi.proxy_ca_data.empty())) {
      outcome.error =
          "AZURE_KUBERNETES_SNI_NAME, AZURE_KUBERNETES_CA_FILE or AZURE_KUBERNETES_CA_DATA is set "
          "but AZURE_KUBERNETES_TOKEN_PROXY is not: set the proxy's URL too (the AKS identity "
          "binding webhook sets all of them), or unset the others";
      return outcome;
    }
    if (!wi.proxy_ca_file.empty() && !wi.proxy_ca_data.empty()) {
      outcome.error =
          "AZURE_KUBERNETES_CA_FILE and AZURE_KUBERNETES_CA_DATA are both set: give the token "
          "proxy's CA one way only";
      return outcome;
    }
    if (!wi.token_proxy.empty()) {
      auto proxy = boost::urls::parse_absolute_uri(wi.token_proxy);
      if (!proxy || proxy->scheme() != "https" || proxy->host().empty() || has_empty_port(*proxy) ||
          proxy->has_query() || proxy->has_fragment() || proxy->has_userinfo()) {
        outcome.error =
            "AZURE_KUBERNETES_TOKEN_PROXY must be an https:// URL without user info, query or "
            "fragment, got '" +
            wi.token_proxy + "'";
        return outcome;
      }
      config.source_reason += "; through the AKS token proxy (AZURE_KUBERNETES_TOKEN_PROXY)";
    }
  }
  if (config.source == "app-service") {
    auto& as = config.app_service;
    as.endpoint = env("IDENTITY_ENDPOINT");
    as.identity_header = env("IDENTITY_HEADER");
    as.identity_header_file = env("IDENTITY_HEADER_FILE");
    as.ca_file = config.workload_identity.ca_file;
    if (as.endpoint.empty() || (as.identity_header.empty() && as.identity_header_file.empty())) {
      outcome.error =
          "--source app-service needs IDENTITY_ENDPOINT and IDENTITY_HEADER (or "
          "IDENTITY_HEADER_FILE) in the environment, as App Service, Functions and Container Apps "
          "set them for an app with a managed identity";
      return outcome;
    }
    auto url = boost::urls::parse_absolute_uri(as.endpoint);
    if (!url || (url->scheme() != "http" && url->scheme() != "https") || url->host().empty() ||
        has_empty_port(*url)) {
      outcome.error =
          "IDENTITY_ENDPOINT must be an http:// or https:// URL such as "
          "http://127.0.0.1:41741/msi/token, got '" +
          as.endpoint + "'";
      return outcome;
    }
    if (!is_header_value(as.identity_header)) {
      outcome.error =
          "IDENTITY_HEADER holds characters an HTTP header cannot carry (control characters or "
          "non-ASCII); check the variable";
      return outcome;
    }
  }
  outcome.config = std::move(config);
  return outcome;
}

}  // namespace broker
