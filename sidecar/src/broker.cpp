#include "broker/broker.hpp"
#include "tb/asio_frame_warning.hpp"  // gcc 12 false positive, see there

#include "broker/api.hpp"
#include "broker/app_service.hpp"
#include "broker/cache.hpp"
#include "broker/imds.hpp"
#include "broker/listeners.hpp"
#include "broker/peer.hpp"
#include "broker/refresh.hpp"
#include "broker/sink.hpp"
#include "broker/watch.hpp"
#include "broker/workload_identity.hpp"
#include "tb/http/listen.hpp"
#include "tb/http/server.hpp"
#include "tb/log.hpp"

#include <fmt/format.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <unistd.h>

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

std::string route_label(std::string_view path) {
  for (std::string_view known : {kTokenRoute, kRefreshRoute, kWatchRoute, kImdsRoute,
                                 kAppServiceRoute, kHealthRoute, kReadyRoute, kMetricsRoute}) {
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
                           config.upstream_concurrency, 256, config.prefetch_jitter,
                           config.force_refresh_interval, config.idle_evict},
              metrics),
        sinks(io.get_executor(), config.sinks, clock, metrics),
        watchers(io.get_executor(), cache, clock, metrics,
                 WatchOptions{config.watch_keepalive, config.watch_buffer},
                 [this](const TokenKey& key, const Token& token,
                        const std::optional<PeerCredentials>& caller) {
                   audit(kWatchRoute, caller ? &*caller : nullptr, key, token, false);
                 }),
        api{config.default_identity, config.min_validity, config.request_timeout},
        limits{config.max_header_bytes, config.header_timeout, config.idle_timeout,
               config.max_connections, config.max_requests_per_connection},
        signals(io, SIGTERM, SIGINT) {
    cache.on_new_token([this](const TokenKey& key, const TokenPtr& token) {
      sinks.deliver(key, token);
      watchers.deliver(key, token);
    });
  }

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
    json files = json::array();
    for (const auto& sink : sinks.status()) {
      if (!sink.current) ready = false;
      json item = {{"path", sink.path},
                   {"resource", sink.key.resource},
                   {"identity", to_string(sink.key.identity)},
                   {"current", sink.current}};
      if (!sink.last_error.empty()) item["last_error"] = sink.last_error;
      files.push_back(std::move(item));
    }
    json out = {{"status", ready ? "ready" : "not_ready"},
                {"source", source->name()},
                {"missing", std::move(missing)},
                {"tokens", std::move(tokens)}};
    if (!files.empty()) out["sinks"] = std::move(files);
    return out;
  }

  /// Routes shared by both listeners; nullopt when the route is not one of them.
  std::optional<Response> common_route(const Request& request, std::string_view path) {
    if (path == kHealthRoute) return make_response(request, http::status::ok, R"({"status":"ok"})");
    if (path == kReadyRoute) {
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

  /// The --allow rules' answer for `peer` asking for `key` (nullopt: allowed). Callers of the
  /// drop-in listener (`peer` null) are not known by uid: the listener's own guards apply.
  std::optional<Response> policy_refusal(const Request& request, const PeerCredentials* peer,
                                         const TokenKey& key) {
    if (peer == nullptr || config.allow_rules.empty()) return std::nullopt;
    auto why = refusal(config.allow_rules, *peer, key, config.default_identity);
    if (!why) return std::nullopt;
    metrics.caller_refused("policy");
    tb::log::warn("caller refused by --allow", {{"pid", peer->pid},
                                                {"uid", peer->uid},
                                                {"gid", peer->gid},
                                                {"resource", key.resource},
                                                {"identity", to_string(key.identity)}});
    return make_error(request, HttpError{403, "caller_not_allowed", std::move(*why), 0s});
  }

  /// --caller-rate: one more upstream-bound request of `peer`'s uid (nullopt: within its rate).
  std::optional<Response> rate_refusal(const Request& request, const PeerCredentials* peer) {
    if (peer == nullptr || !limiter.enabled()) return std::nullopt;
    std::chrono::seconds retry_after{1};
    if (limiter.take(peer->uid, clock.steady_now(), retry_after)) return std::nullopt;
    metrics.caller_refused("rate_limited");
    tb::log::warn("caller rate-limited", {{"pid", peer->pid},
                                          {"uid", peer->uid},
                                          {"gid", peer->gid},
                                          {"caller_rate", config.caller_rate}});
    return make_error(
        request,
        HttpError{429, "caller_rate_limited",
                  "uid " + std::to_string(peer->uid) + " asked for more than " +
                      fmt::format("{:g}", config.caller_rate) +
                      " tokens a second that the broker does not hold (--caller-rate); ask for "
                      "the same resources again (held tokens are never limited) or retry later",
                  retry_after});
  }

  /// --audit-log: one line for a token handed out. Never the token: its fingerprint.
  void audit(std::string_view route, const PeerCredentials* peer, const TokenKey& key,
             const Token& token, bool cached) {
    if (!config.audit_log) return;
    json fields = {{"route", route},
                   {"resource", key.resource},
                   {"identity", to_string(key.identity)},
                   {"token_sha256", token.fingerprint},
                   {"cached", cached}};
    if (peer != nullptr) {
      fields["pid"] = peer->pid;
      fields["uid"] = peer->uid;
      fields["gid"] = peer->gid;
    } else {
      fields["caller"] = "drop-in listener (loopback)";
    }
    tb::log::info("token handed out", fields);
  }

  /// The answer to a token request when it needs no wait: a bad request, a refused caller, or a
  /// token held now (the common case: no coroutine, nothing suspends). nullopt when the cache
  /// must be waited for; `query` then holds the request's.
  std::optional<Response> token_now(const Request& request, std::optional<TokenQuery>& query,
                                    const PeerCredentials* peer) {
    auto parsed = parse_token_request(request, api);
    if (auto* error = std::get_if<HttpError>(&parsed)) return make_error(request, *error);
    query = std::move(std::get<TokenQuery>(parsed));
    if (auto refused = policy_refusal(request, peer, query->key)) return refused;
    const auto now = clock.steady_now();  // one instant for the check and the answer
    if (auto token = cache.held(query->key, query->min_validity, now)) {
      audit(target_path(request.target()), peer, query->key, *token, true);
      return make_response(request, http::status::ok, bodies.body(token, *query, now));
    }
    return std::nullopt;
  }

  asio::awaitable<Response> wait_for_token(const Request& request, const TokenQuery& query,
                                           const PeerCredentials* peer) {
    // A key nobody fetches yet costs an upstream call: that is what --caller-rate limits.
    if (cache.would_fetch(query.key)) {
      if (auto refused = rate_refusal(request, peer)) co_return std::move(*refused);
    }
    const auto start = clock.steady_now();
    auto result = co_await cache.get(query.key, query.min_validity, start + query.wait);
    while (auto* token = std::get_if<TokenPtr>(&result)) {
      // The answer is rendered for the instant it is checked at: it never reports less than
      // the caller's minimum (a token that crossed it since the cache's check is asked again).
      const auto now = clock.steady_now();
      if (usable(**token, now, query.min_validity)) {
        audit(target_path(request.target()), peer, query.key, **token, false);
        co_return make_response(request, http::status::ok, bodies.body(*token, query, now));
      }
      result = co_await cache.get(query.key, query.min_validity, start + query.wait);
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

  /// GET kWatchRoute: a Server-Sent Events stream of the key's tokens (watch.hpp). The first
  /// token is waited for as GET /v1/token waits for it, and its errors are that route's.
  asio::awaitable<Response> watch(const Request& request, const PeerCredentials* peer) {
    auto parsed = parse_token_request(request, api);
    if (auto* error = std::get_if<HttpError>(&parsed)) co_return make_error(request, *error);
    const auto query = std::move(std::get<TokenQuery>(parsed));
    if (auto refused = policy_refusal(request, peer, query.key)) co_return std::move(*refused);
    if (cache.would_fetch(query.key)) {
      if (auto refused = rate_refusal(request, peer)) co_return std::move(*refused);
    }
    const auto start = clock.steady_now();
    auto result = co_await cache.get(query.key, query.min_validity, start + query.wait);
    if (auto* error = std::get_if<TokenError>(&result)) {
      co_return make_error(request, to_http_error(*error));
    }
    if (watchers.size() >= config.max_watchers) {
      co_return make_error(
          request, HttpError{503, "too_many_watchers",
                             "the broker serves " + std::to_string(config.max_watchers) +
                                 " watch streams already (--max-watchers); close idle ones or "
                                 "poll /v1/token",
                             5s});
    }
    std::string first;
    const auto& token = *std::get<TokenPtr>(result);
    if (query.include_token) audit(kWatchRoute, peer, query.key, token, true);
    auto stream =
        watchers.add(query.key, query.include_token, token, first,
                     peer != nullptr ? std::optional<PeerCredentials>(*peer) : std::nullopt);
    auto response = make_response(request, http::status::ok, std::move(first));
    response.set(http::field::content_type, "text/event-stream");
    // NOLINTNEXTLINE(bugprone-unchecked-optional-access): set by listen(); only its routes call
    if (!socket_server->attach_stream(request, stream)) {
      stream->abort();
      stream->close();  // the watcher leaves the list
    }
    co_return response;
  }

  /// POST kRefreshRoute: a forced refresh (TokenCache::refresh).
  asio::awaitable<Response> forced_refresh(const Request& request, const PeerCredentials* peer) {
    auto parsed = parse_token_request(request, api);
    if (auto* error = std::get_if<HttpError>(&parsed)) co_return make_error(request, *error);
    const auto query = std::move(std::get<TokenQuery>(parsed));
    if (auto refused = policy_refusal(request, peer, query.key)) co_return std::move(*refused);
    // Callers who share a forced call in flight, or whose token was replaced already, cost none.
    if (cache.would_force(query.key, query.rejected_sha256)) {
      if (auto refused = rate_refusal(request, peer)) co_return std::move(*refused);
    }
    const auto start = clock.steady_now();
    auto result = co_await cache.refresh(query.key, query.rejected_sha256, query.min_validity,
                                         start + query.wait);
    if (auto* refreshed = std::get_if<Refreshed>(&result)) {
      audit(kRefreshRoute, peer, query.key, *refreshed->token, refreshed->shared);
      co_return make_response(
          request, http::status::ok,
          refresh_body(*refreshed->token, query, clock.steady_now(), refreshed->is_new));
    }
    const auto error = to_http_error(std::get<TokenError>(result));
    tb::log::info("forced refresh not served", {{"resource", query.key.resource},
                                                {"identity", to_string(query.key.identity)},
                                                {"status", error.status},
                                                {"error", error.error},
                                                {"description", error.description}});
    co_return make_error(request, error);
  }

  Response post_only(const Request& request) {
    auto response = make_error(
        request, HttpError{405, "method_not_allowed", "only POST is allowed on this route", 0s});
    response.set(http::field::allow, "POST");
    return response;
  }

  asio::awaitable<Response> handle_socket(const Request& request, const PeerCredentials* peer) {
    const auto path = route_of(target_path(request.target()));
    Response response;
    if (path == kRefreshRoute) {
      if (request.method() == http::verb::post) {
        response = co_await forced_refresh(request, peer);
      } else {
        response = post_only(request);
      }
    } else if (path == kWatchRoute) {
      if (request.method() == http::verb::get) {
        response = co_await watch(request, peer);
      } else {
        response = method_not_allowed(request);
      }
    } else if (path == kTokenRoute || path == kImdsRoute) {
      // (No co_await inside ?: — GCC 12 miscompiles that.)
      if (request.method() == http::verb::get) {
        std::optional<TokenQuery> query;
        if (auto now = token_now(request, query, peer)) {
          response = std::move(*now);
        } else {
          // token_now() sets `query` whenever it answers nothing.
          // NOLINTNEXTLINE(bugprone-unchecked-optional-access)
          response = co_await wait_for_token(request, *query, peer);
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
    } else if (path == kMetricsRoute) {
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
      if (auto now = token_now(request, query, nullptr)) {
        response = std::move(*now);
      } else {
        // token_now() sets `query` whenever it answers nothing.
        // NOLINTNEXTLINE(bugprone-unchecked-optional-access)
        response = co_await wait_for_token(request, *query, nullptr);
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

  HttpServer<local>::Admitted admit(local::socket& socket) {
    auto peer = peer_credentials(socket.native_handle());
    if (!peer) {
      tb::log::warn("caller refused: its credentials cannot be read");
      metrics.caller_refused("credentials");
      return {HttpError{403, "caller_not_allowed",
                        "the broker cannot read the caller's credentials", 0s},
              {}};
    }
    if (allowed(*peer, allow)) return {std::nullopt, *peer};
    tb::log::warn("caller refused", {{"pid", peer->pid}, {"uid", peer->uid}, {"gid", peer->gid}});
    metrics.caller_refused("uid_gid");
    return {HttpError{403, "caller_not_allowed",
                      "uid " + std::to_string(peer->uid) + " (gid " + std::to_string(peer->gid) +
                          ") may not ask for tokens; add it to --allow-uids or --allow-gids, or "
                          "run the caller in the socket's group",
                      0s},
            {}};
  }

  void listen() {
    sinks.check();  // before the socket exists: a bad --sink stops the start with nothing to undo
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
    socket_server.emplace(std::move(acceptor),
                          tb::http::CallerHandler([this](const Request& r, const std::any& caller) {
                            return handle_socket(r, std::any_cast<PeerCredentials>(&caller));
                          }),
                          server_options(true),
                          [this](local::socket& socket) { return admit(socket); });
    if (config.admin_enabled) {
      admin_server.emplace(
          tb::http::listen_tcp(io, "--admin-listen", config.admin_host, config.admin_port),
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
    auto acceptor =
        tb::http::listen_tcp(io, "--imds-listen", config.imds_listen_host, config.imds_listen_port);
    drop_in_address = tb::http::endpoint_text(acceptor.local_endpoint());
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

  /// SIGTERM/SIGINT: every server drains (DESIGN.md, Shutdown); when all are drained, or when
  /// the grace is over, the requests still waiting (for an upstream call) are answered 503 with
  /// Retry-After, and the broker stops.
  asio::awaitable<void> shutdown_when_signalled() {
    auto [ec, signal] = co_await signals.async_wait(use_nothrow);
    if (ec) co_return;
    tb::log::info("shutting down", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"},
                                    {"grace_s", config.shutdown_grace.count()}});
    watchers.close_all();  // each stream gets `event: shutdown`; drain() then closes them
    asio::steady_timer grace(io, config.shutdown_grace);
    std::size_t draining = 0;
    auto drain = [&](auto& server) {
      ++draining;
      server.drain([&] {
        if (--draining == 0) grace.cancel();
      });
    };
    drain(*socket_server);  // NOLINT(bugprone-unchecked-optional-access): set by listen()
    if (admin_server) drain(*admin_server);
    if (drop_in_server) drain(*drop_in_server);
    co_await grace.async_wait(use_nothrow);  // (drain() posts its callback: never before this)
    if (draining > 0) {
      const tb::http::Error late{503, "shutting_down",
                                 "token-broker is shutting down and its grace (--shutdown-grace) "
                                 "ended before this request could be answered; retry on the "
                                 "restarted broker",
                                 1s};
      std::size_t waiting = 0;
      auto close_busy = [&](auto& server) {
        waiting += server.busy();
        server.close_busy(late);
      };
      close_busy(*socket_server);  // NOLINT(bugprone-unchecked-optional-access): as above
      if (admin_server) close_busy(*admin_server);
      if (drop_in_server) close_busy(*drop_in_server);
      tb::log::warn("shutdown grace over: requests still waiting were answered 503",
                    {{"requests", waiting}});
    }
    cache.stop();
    sinks.stop();
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
  FileSinks sinks;
  Watchers watchers;
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
  CallerLimiter limiter{config.caller_rate};
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
  json sinks = json::array();
  for (const auto& sink : config.sinks) {
    impl.cache.prefetch(sink.key);
    sinks.push_back({{"path", sink.path},
                     {"resource", sink.key.resource},
                     {"identity", to_string(sink.key.identity)},
                     {"format", to_string(sink.format)},
                     {"mode", fmt::format("{:04o}", sink.mode)}});
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
       {"sinks", sinks},
       {"cloud", tb::endpoints(config.cloud).name},
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
