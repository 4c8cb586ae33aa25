#include "broker/broker.hpp"

#include "broker/api.hpp"
#include "broker/app_service.hpp"
#include "broker/cache.hpp"
#include "broker/imds.hpp"
#include "broker/peer.hpp"
#include "broker/refresh.hpp"
#include "broker/workload_identity.hpp"
#include "tb/http/server.hpp"
#include "tb/log.hpp"

#include <fmt/format.h>
#include <openssl/rand.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace broker {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;
using tcp = asio::ip::tcp;
using nlohmann::json;
using tb::http::HttpServer;
using tb::http::ServerLimits;
using tb::http::target_path;
using namespace std::chrono_literals;

namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

/// Tokens are served to many connections: allow as many descriptors as the hard limit permits,
/// and say so when that is too few for --max-connections.
void raise_file_limit(std::size_t max_connections) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) getrlimit(RLIMIT_NOFILE, &limit);
  }
  // The listeners, upstream connections and files need a few descriptors besides the callers'.
  constexpr rlim_t kReserve = 64;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < max_connections + kReserve) {
    tb::log::warn(
        "the open-file limit is too low for --max-connections: connections beyond it wait "
        "unaccepted instead of being answered 503; raise the nofile limit or lower "
        "--max-connections",
        {{"open_file_limit", static_cast<std::uint64_t>(limit.rlim_cur)},
         {"max_connections", max_connections}});
  }
}

/// Refuses a socket directory that anyone but the broker's user (and root) may change: one that
/// group or others may write to, or that another user owns. Such a user could replace the socket
/// with their own (callers would take "tokens" from an impostor) or plant files next to it, such
/// as the identity header; the sticky bit (/tmp) stops the replacement but not taking the name
/// first, so a sticky directory is refused too.
void check_socket_directory(const std::string& path, bool allow_shared) {
  const auto parent = std::filesystem::path(path).parent_path();
  const std::string dir = parent.empty() ? "." : parent.string();
  struct stat info {};
  if (::stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    throw StartupError("--socket " + path + ": directory " + dir +
                       " does not exist; create it (in Kubernetes: an emptyDir volume)");
  }
  const auto mode = fmt::format("{:04o}", info.st_mode & 07777);
  const bool shared = (info.st_mode & (S_IWGRP | S_IWOTH)) != 0;
  const bool foreign = info.st_uid != ::geteuid() && info.st_uid != 0;
  if (!shared && !foreign) return;
  if (allow_shared) {
    tb::log::info("serving from a shared socket directory (--allow-shared-socket-dir)",
                  {{"directory", dir}, {"mode", mode}, {"owner_uid", info.st_uid}});
    return;
  }
  constexpr const char* kOverride =
      " or pass --allow-shared-socket-dir true (e.g. for a Kubernetes emptyDir that only the "
      "pod's containers mount)";
  if (!shared) {
    throw StartupError(fmt::format(
        "--socket {}: directory {} belongs to uid {}, who could replace the socket; use a "
        "directory owned by the broker's user (uid {}) or root,{}",
        path, dir, info.st_uid, ::geteuid(), kOverride));
  }
  if ((info.st_mode & S_ISVTX) != 0) {
    throw StartupError(fmt::format(
        "--socket {}: directory {} has mode {}: other users may create files in it (the sticky "
        "bit does not stop them taking the socket's name first); use a directory of its own "
        "(e.g. mkdir -m 0750 {}/token-broker){}",
        path, dir, mode, dir == "/" ? "" : dir, kOverride));
  }
  throw StartupError(fmt::format(
      "--socket {}: directory {} has mode {}: group or others may write to it and could replace "
      "the socket; remove their write permission (chmod go-w {}){}",
      path, dir, mode, dir, kOverride));
}

/// True when something accepts connections on the Unix socket at `path`.
bool socket_in_use(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  const bool in_use =
      ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return in_use;
}

/// Binds the token socket: replaces a stale socket file, refuses one that is served, and never
/// lets the file exist with wider permissions than `mode`.
local::acceptor bind_socket(asio::io_context& io, const std::string& path, mode_t mode,
                            bool allow_shared_dir) {
  check_socket_directory(path, allow_shared_dir);
  struct stat info {};
  if (::lstat(path.c_str(), &info) == 0) {
    if (!S_ISSOCK(info.st_mode)) {
      throw StartupError("--socket " + path +
                         " exists and is not a socket; remove it or choose another path");
    }
    if (socket_in_use(path)) {
      throw StartupError("--socket " + path +
                         " is in use by another process (is another token-broker running?)");
    }
    ::unlink(path.c_str());
  }
  local::acceptor acceptor(io);
  boost::system::error_code ec;
  acceptor.open(local(), ec);
  const mode_t old_umask = ::umask(static_cast<mode_t>(~mode & 0777));
  if (!ec) acceptor.bind(local::endpoint(path), ec);
  ::umask(old_umask);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw StartupError("--socket " + path + ": cannot listen: " + ec.message());
  if (::chmod(path.c_str(), mode) != 0) {
    throw StartupError("--socket " + path + ": cannot set its mode: " + std::strerror(errno));
  }
  return acceptor;
}

/// `flag` names the option in errors, e.g. "--admin-listen".
tcp::acceptor bind_tcp(asio::io_context& io, const std::string& flag, const std::string& host,
                       std::uint16_t port) {
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) throw StartupError(flag + ": '" + host + "' is not an IP address");
  tcp::acceptor acceptor(io);
  tcp::endpoint endpoint(address, port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw StartupError(flag + " " + host + ":" + std::to_string(port) +
                       ": cannot listen: " + ec.message());
  }
  return acceptor;
}

/// "127.0.0.1:8080" / "[::1]:8080".
std::string endpoint_text(const tcp::endpoint& endpoint) {
  const auto host = endpoint.address().to_string();
  const auto port = std::to_string(endpoint.port());
  return endpoint.address().is_v6() ? "[" + host + "]:" + port : host + ":" + port;
}

std::string trim(const std::string& text) {
  constexpr const char* kSpace = " \t\r\n";
  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string::npos) return {};
  return text.substr(first, text.find_last_not_of(kSpace) + 1 - first);
}

/// The App Service route's secret: the file's content when it exists, else 32 random bytes in
/// hex written to a new file with mode 0640 and group `group` (the socket's), so that the app's
/// container, which can open the socket, can read it too.
std::string load_identity_header(const std::string& path, std::optional<gid_t> group) {
  const std::string flag = "--identity-header-file " + path;
  for (int attempt = 0; attempt < 2; ++attempt) {
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0) {
      if (!S_ISREG(info.st_mode)) throw StartupError(flag + " exists and is not a regular file");
      std::ifstream in(path, std::ios::binary);
      std::stringstream content;
      content << in.rdbuf();
      if (!in) throw StartupError(flag + ": cannot read it: " + std::strerror(errno));
      auto secret = trim(content.str());
      if (secret.size() < 16 || secret.size() > 1024) {
        throw StartupError(flag +
                           " must hold a secret of 16 to 1024 characters (remove it to "
                           "have one generated)");
      }
      for (unsigned char c : secret) {
        if (c <= 0x20 || c >= 0x7f) {
          throw StartupError(flag +
                             " must hold printable ASCII without spaces (it is sent as "
                             "an HTTP header)");
        }
      }
      if ((info.st_mode & 0007) != 0) {
        tb::log::warn("the identity header file is readable by anyone; chmod o-rwx it",
                      {{"file", path}});
      }
      return secret;
    }
    std::array<unsigned char, 32> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
      throw StartupError(flag + ": no random bytes for a new secret");
    }
    std::string secret;
    for (unsigned char byte : bytes) secret += fmt::format("{:02x}", byte);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue;  // another process wrote it meanwhile: read that one
      throw StartupError(flag + ": cannot create it: " + std::strerror(errno) +
                         " (does its directory exist?)");
    }
    bool ok = ::write(fd, secret.data(), secret.size()) == static_cast<ssize_t>(secret.size());
    if (ok && group && ::fchown(fd, static_cast<uid_t>(-1), *group) != 0) {
      tb::log::warn("cannot give the identity header file the socket's group",
                    {{"file", path}, {"gid", *group}, {"reason", std::strerror(errno)}});
    }
    ok = ok && ::fchmod(fd, 0640) == 0;
    ok = (::close(fd) == 0) && ok;
    if (!ok) {
      ::unlink(path.c_str());
      throw StartupError(flag + ": cannot write it: " + std::strerror(errno));
    }
    tb::log::info("identity header generated", {{"file", path}});
    return secret;
  }
  throw StartupError(flag + " keeps changing while it is read");
}

std::string route_label(std::string_view path) {
  for (std::string_view known :
       {kTokenRoute, kImdsRoute, kAppServiceRoute, std::string_view("/healthz"),
        std::string_view("/readyz"), std::string_view("/metrics")}) {
    if (path == known) return std::string(known);
  }
  return "other";
}

}  // namespace

struct Broker::Impl {
  explicit Impl(Config c)
      : config(std::move(c)),
        source(make_source()),
        cache(io.get_executor(), *source, clock, random_jitter(),
              CacheOptions{config.retry, config.upstream_timeout, config.error_ttl,
                           config.upstream_concurrency, 256},
              metrics),
        api{config.default_identity, config.min_validity, config.request_timeout},
        limits{config.max_header_bytes, config.header_timeout, config.idle_timeout,
               config.max_connections, config.max_requests_per_connection},
        signals(io, SIGTERM, SIGINT) {}

  std::unique_ptr<Source> make_source() {
    if (config.source == "app-service") {
      try {
        return std::make_unique<AppServiceSource>(config.app_service, clock);
      } catch (const std::exception& e) {
        throw StartupError(std::string("--source app-service: ") + e.what());
      }
    }
    if (config.source == "workload-identity") {
      try {
        return std::make_unique<WorkloadIdentitySource>(config.workload_identity, clock);
      } catch (const std::exception& e) {
        throw StartupError(std::string("--source workload-identity: ") + e.what());
      }
    }
    try {
      return std::make_unique<ImdsSource>(config.imds_endpoint, clock);
    } catch (const std::invalid_argument& e) {
      throw StartupError("--imds-endpoint " + config.imds_endpoint + " " + e.what());
    }
  }

  json readiness(bool& ready) const {
    ready = true;
    json missing = json::array();
    json tokens = json::array();
    for (const auto& status : cache.status()) {
      const bool ok = status.held && status.time_left > config.min_validity;
      if (status.prefetched && !ok) {
        ready = false;
        missing.push_back(status.key.resource);
      }
      json item = {{"resource", status.key.resource},
                   {"identity", to_string(status.key.identity)},
                   {"held", status.held},
                   {"prefetched", status.prefetched}};
      if (status.held) item["expires_in"] = status.time_left.count();
      if (!status.last_error.empty()) item["last_error"] = status.last_error;
      tokens.push_back(std::move(item));
    }
    return {{"status", ready ? "ready" : "not_ready"},
            {"source", source->name()},
            {"missing", std::move(missing)},
            {"tokens", std::move(tokens)}};
  }

  /// Routes shared by both listeners; nullopt when the route is not one of them.
  std::optional<Response> common_route(const Request& request, std::string_view path) {
    if (path == "/healthz") return make_response(request, http::status::ok, R"({"status":"ok"})");
    if (path == "/readyz") {
      bool ready = false;
      auto body = readiness(ready).dump(-1, ' ', false, json::error_handler_t::replace);
      return make_response(request, ready ? http::status::ok : http::status::service_unavailable,
                           std::move(body));
    }
    return std::nullopt;
  }

  Response method_not_allowed(const Request& request) {
    auto response = make_error(
        request, HttpError{405, "method_not_allowed", "only GET is allowed on this route", 0s});
    response.set(http::field::allow, "GET");
    return response;
  }

  /// The answer to a token request when it needs no wait: a bad request, or a token held now
  /// (the common case: no coroutine, nothing suspends). nullopt when the cache must be waited
  /// for; `query` then holds the request's.
  std::optional<Response> token_now(const Request& request, std::optional<TokenQuery>& query) {
    auto parsed = parse_token_request(request, api);
    if (auto* error = std::get_if<HttpError>(&parsed)) return make_error(request, *error);
    query = std::move(std::get<TokenQuery>(parsed));
    if (auto token = cache.held(query->key, query->min_validity)) {
      return make_response(request, http::status::ok,
                           bodies.body(token, *query, clock.steady_now()));
    }
    return std::nullopt;
  }

  asio::awaitable<Response> wait_for_token(const Request& request, const TokenQuery& query) {
    const auto start = clock.steady_now();
    auto result = co_await cache.get(query.key, query.min_validity, start + query.wait);
    if (auto* token = std::get_if<TokenPtr>(&result)) {
      co_return make_response(request, http::status::ok,
                              bodies.body(*token, query, clock.steady_now()));
    }
    const auto error = to_http_error(std::get<TokenError>(result));
    tb::log::info("token request not served",
                  {{"resource", query.key.resource},
                   {"identity", to_string(query.key.identity)},
                   {"status", error.status},
                   {"error", error.error},
                   {"description", error.description},
                   {"waited_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                     clock.steady_now() - start)
                                     .count()}});
    co_return make_error(request, error);
  }

  asio::awaitable<Response> handle_socket(const Request& request) {
    const auto path = route_of(target_path(request.target()));
    Response response;
    if (path == kTokenRoute || path == kImdsRoute) {
      // (No co_await inside ?: — GCC 12 miscompiles that.)
      if (request.method() == http::verb::get) {
        std::optional<TokenQuery> query;
        if (auto now = token_now(request, query)) {
          response = std::move(*now);
        } else {
          // token_now() sets `query` whenever it answers nothing.
          // NOLINTNEXTLINE(bugprone-unchecked-optional-access)
          response = co_await wait_for_token(request, *query);
        }
      } else {
        response = method_not_allowed(request);
      }
    } else if (auto common = common_route(request, path)) {
      response =
          request.method() == http::verb::get ? std::move(*common) : method_not_allowed(request);
    } else {
      response = make_error(request, HttpError{404, "not_found",
                                               "no such route; token requests go to "
                                               "/v1/token?resource=…",
                                               0s});
    }
    metrics.request(route_label(path), response.result_int());
    co_return response;
  }

  asio::awaitable<Response> handle_admin(const Request& request) {
    const auto path = target_path(request.target());
    Response response;
    if (request.method() != http::verb::get) {
      response = method_not_allowed(request);
    } else if (auto common = common_route(request, path)) {
      response = std::move(*common);
    } else if (path == "/metrics") {
      response = make_response(request, http::status::ok, metrics.render(cache.expiries()));
      response.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    } else {
      response = make_error(request, HttpError{404, "not_found",
                                               "the admin listener serves /healthz, /readyz and "
                                               "/metrics only (tokens: the Unix socket)",
                                               0s});
    }
    co_return response;
  }

  /// The drop-in listener for unmodified Azure SDKs: IMDS's and App Service's token routes only.
  asio::awaitable<Response> handle_drop_in(const Request& request) {
    const auto path = route_of(target_path(request.target()));
    Response response;
    if (path != kImdsRoute && path != kAppServiceRoute) {
      response = make_error(request, HttpError{404, "not_found",
                                               "this listener serves "
                                               "/metadata/identity/oauth2/token (IMDS) and "
                                               "/msi/token (App Service) only",
                                               0s});
    } else if (request.method() != http::verb::get) {
      response = method_not_allowed(request);
    } else if (request.find("X-Forwarded-For") != request.end()) {
      // As IMDS: a proxied request is someone else's, relayed (server-side request forgery).
      response = make_error(request, HttpError{400, "invalid_request",
                                               "Request with X-Forwarded-For header is not "
                                               "allowed",
                                               0s});
    } else {
      std::optional<TokenQuery> query;
      if (auto now = token_now(request, query)) {
        response = std::move(*now);
      } else {
        // token_now() sets `query` whenever it answers nothing.
        // NOLINTNEXTLINE(bugprone-unchecked-optional-access)
        response = co_await wait_for_token(request, *query);
      }
    }
    metrics.request(route_label(path), response.result_int());
    co_return response;
  }

  /// Who may call: the configured ids, else the broker's own uid and the socket file's group.
  void resolve_allow_list() {
    if (config.allow_uids) {
      allow.uids.assign(config.allow_uids->begin(), config.allow_uids->end());
    } else {
      allow.uids = {::geteuid()};
    }
    if (config.allow_gids) {
      allow.gids.assign(config.allow_gids->begin(), config.allow_gids->end());
    } else {
      struct stat info {};
      if (::stat(config.socket_path.c_str(), &info) == 0) allow.gids = {info.st_gid};
    }
  }

  std::optional<HttpError> admit(local::socket& socket) {
    auto peer = peer_credentials(socket.native_handle());
    if (!peer) {
      tb::log::warn("caller refused: its credentials cannot be read");
      return HttpError{403, "caller_not_allowed", "the broker cannot read the caller's credentials",
                       0s};
    }
    if (allowed(*peer, allow)) return std::nullopt;
    tb::log::warn("caller refused", {{"pid", peer->pid}, {"uid", peer->uid}, {"gid", peer->gid}});
    return HttpError{403, "caller_not_allowed",
                     "uid " + std::to_string(peer->uid) + " (gid " + std::to_string(peer->gid) +
                         ") may not ask for tokens; add it to --allow-uids or --allow-gids, or "
                         "run the caller in the socket's group",
                     0s};
  }

  void listen() {
    try {
      bind_listeners();
    } catch (...) {
      remove_socket();  // the destructor does not run when the constructor throws
      throw;
    }
  }

  void bind_listeners() {
    raise_file_limit(config.max_connections);
    auto acceptor =
        bind_socket(io, config.socket_path, config.socket_mode, config.allow_shared_socket_dir);
    socket_bound = true;
    resolve_allow_list();
    socket_server.emplace(
        std::move(acceptor), [this](const Request& r) { return handle_socket(r); },
        server_options(true), [this](local::socket& socket) { return admit(socket); });
    if (config.admin_enabled) {
      admin_server.emplace(
          bind_tcp(io, "--admin-listen", config.admin_host, config.admin_port),
          [this](const Request& r) { return handle_admin(r); }, server_options(false));
    }
    if (config.imds_listen_enabled) bind_drop_in();
  }

  void bind_drop_in() {
    // parse_config checked this already; checked again where the port is opened, because
    // tokens on a non-loopback TCP port would be anyone's.
    if (!is_loopback_address(config.imds_listen_host)) {
      throw StartupError("--imds-listen " + config.imds_listen_host +
                         " is not a loopback address (127.0.0.0/8 or [::1])");
    }
    std::optional<gid_t> group;
    struct stat info {};
    if (::stat(config.socket_path.c_str(), &info) == 0) group = info.st_gid;
    api.identity_header = load_identity_header(config.identity_header_file, group);
    auto acceptor = bind_tcp(io, "--imds-listen", config.imds_listen_host, config.imds_listen_port);
    drop_in_address = endpoint_text(acceptor.local_endpoint());
    drop_in_server.emplace(
        std::move(acceptor), [this](const Request& r) { return handle_drop_in(r); },
        server_options(true));
  }

  /// The HTTP layer's settings for one listener; `counted`: its connections show in /metrics.
  tb::http::ServerOptions server_options(bool counted) {
    tb::http::ServerOptions options{limits, make_error, nullptr};
    if (counted) {
      options.on_connection = [this](int delta) {
        if (delta > 0) {
          metrics.connection_opened();
        } else {
          metrics.connection_closed();
        }
      };
    }
    return options;
  }

  asio::awaitable<void> shutdown_when_signalled() {
    auto [ec, signal] = co_await signals.async_wait(use_nothrow);
    if (ec) co_return;
    tb::log::info("shutting down", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"},
                                    {"grace_s", config.shutdown_grace.count()}});
    socket_server->drain();  // NOLINT(bugprone-unchecked-optional-access): set by listen()
    if (admin_server) admin_server->drain();
    if (drop_in_server) drop_in_server->drain();
    // Requests in flight (including ones waiting for an upstream call) may finish.
    const auto give_up = clock.steady_now() + config.shutdown_grace;
    asio::steady_timer tick(io);
    auto open_connections = [this] {
      return socket_server->connections() + (admin_server ? admin_server->connections() : 0) +
             (drop_in_server ? drop_in_server->connections() : 0);
    };
    while (open_connections() > 0 && clock.steady_now() < give_up) {
      tick.expires_after(20ms);
      co_await tick.async_wait(use_nothrow);
    }
    cache.stop();
    remove_socket();
    io.stop();
  }

  void remove_socket() {
    if (socket_bound) {
      ::unlink(config.socket_path.c_str());
      socket_bound = false;
    }
  }

  Config config;
  asio::io_context io{1};
  RealClock clock;
  Metrics metrics;
  std::unique_ptr<Source> source;
  TokenCache cache;
  TokenBodies bodies;
  ApiOptions api;
  ServerLimits limits;
  asio::signal_set signals;
  std::optional<HttpServer<local>> socket_server;
  std::optional<HttpServer<tcp>> admin_server;
  std::optional<HttpServer<tcp>> drop_in_server;
  std::string drop_in_address;  ///< as bound (the port when 0 was asked for)
  bool socket_bound = false;
  AllowList allow;
};

Broker::Broker(Config config) : impl_(std::make_unique<Impl>(std::move(config))) {
  impl_->listen();
}

Broker::~Broker() {
  if (impl_) impl_->remove_socket();
}

int Broker::run() {
  auto& impl = *impl_;
  const auto& config = impl.config;
  impl.socket_server->start();  // NOLINT(bugprone-unchecked-optional-access): set by listen()
  if (impl.admin_server) impl.admin_server->start();
  if (impl.drop_in_server) impl.drop_in_server->start();
  asio::co_spawn(impl.io, impl.shutdown_when_signalled(), asio::detached);
  for (const auto& resource : config.prefetch) {
    impl.cache.prefetch(TokenKey{config.default_identity, resource});
  }
  json prefetch = config.prefetch;
  tb::log::info(
      "token-broker started",
      {{"source", impl.source->name()},
       {"source_reason", config.source_reason},
       {"upstream", impl.source->describe()},
       {"socket", config.socket_path},
       {"admin",
        config.admin_enabled ? config.admin_host + ":" + std::to_string(config.admin_port) : "off"},
       {"imds_listen", impl.drop_in_server ? impl.drop_in_address : "off"},
       {"identity_header_file", impl.drop_in_server ? config.identity_header_file : "-"},
       {"prefetch", prefetch},
       {"default_identity", to_string(config.default_identity)},
       {"allow_uids", impl.allow.uids},
       {"allow_gids", impl.allow.gids},
       {"min_validity_s", config.min_validity.count()}});
  impl.io.run();
  impl.remove_socket();
  tb::log::info("token-broker stopped");
  return 0;
}

}  // namespace broker
