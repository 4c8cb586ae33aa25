#include "todo/run.hpp"

#include "tb/log.hpp"
#include "todo/csrf.hpp"
#include "todo/routes.hpp"
#include "todo/server.hpp"
#include "token_client/token_client.hpp"

#include <fmt/format.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <condition_variable>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <stop_token>
#include <thread>
#include <utility>

namespace todo {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

std::string read_secret(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::invalid_argument("cannot read --csrf-secret-file " + path);
  std::stringstream content;
  content << file.rdbuf();
  std::string secret = content.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.size() < 16) {
    throw std::invalid_argument("--csrf-secret-file " + path +
                                " must hold at least 16 bytes (e.g. openssl rand -hex 32)");
  }
  return secret;
}

/// The broker client and the request for the database token, as the flags say.
token_client::Client db_token_client(const AppConfig& config) {
  token_client::Options options;
  options.socket_path = config.broker_socket;
  options.timeout = config.broker_timeout;
  return token_client::Client(options);
}

token_client::Request db_token_request(const AppConfig& config) {
  token_client::Request request;
  request.resource = config.db_token_resource;
  request.client_id = config.db_client_id;
  // A connection lives while its token has more than the margin left: ask for a token that
  // leaves at least a little room beyond that (the broker refreshes early when it must).
  request.min_validity = config.db_token_margin + 10s;
  return request;
}

/// Before every new physical database connection: one token from the broker.
TokenSource broker_tokens(const AppConfig& config) {
  return [client = db_token_client(config),
          request = db_token_request(config)](const DbToken* rejected) -> StoreResult<DbToken> {
    if (rejected == nullptr) {
      auto token = client.get_token(request);
      if (!token) return StoreError{StoreErrc::unavailable, token.error().message};
      tb::log::info("database token from the broker",
                    {{"token_sha256", tb::log::fingerprint(token->access_token)},
                     {"expires_on", std::chrono::duration_cast<std::chrono::seconds>(
                                        token->expires_on.time_since_epoch())
                                        .count()}});
      return DbToken{std::move(token->access_token), token->expires_on};
    }
    // The database refused `rejected`: a forced refresh (the broker gets a new one upstream).
    auto refreshed = client.refresh(request, rejected->value);
    if (!refreshed) return StoreError{StoreErrc::unavailable, refreshed.error().message};
    tb::log::info("database token force-refreshed by the broker",
                  {{"rejected_sha256", tb::log::fingerprint(rejected->value)},
                   {"token_sha256", tb::log::fingerprint(refreshed->token.access_token)},
                   {"new", refreshed->is_new},
                   {"expires_on", std::chrono::duration_cast<std::chrono::seconds>(
                                      refreshed->token.expires_on.time_since_epoch())
                                      .count()}});
    if (!refreshed->is_new) {
      return StoreError{StoreErrc::unavailable,
                        "the token broker's upstream handed back the token the database refused "
                        "(it caches tokens and cannot be told to skip them); check the "
                        "identity's database login and roles, or wait for the token to expire"};
    }
    return DbToken{std::move(refreshed->token.access_token), refreshed->token.expires_on};
  };
}

/// Watches the database token (GET /v1/token/watch) until `stop`: when the broker replaces it
/// early (a forced refresh, because the database refused it or another replica asked), the pool
/// closes the connections that logged in with the old one, which may hold revoked roles. A
/// broker without the route, or down, is retried with backoff (1 s doubling to 30 s).
void watch_db_token(const AppConfig& config, const TokenReplaced& token_replaced,
                    const std::stop_token& stop) {
  const auto client = db_token_client(config);
  const auto request = db_token_request(config);
  std::mutex mutex;
  std::condition_variable_any wake;
  auto pause = [&](std::chrono::milliseconds how_long) {
    std::unique_lock lock(mutex);
    wake.wait_for(lock, stop, how_long, [] { return false; });
  };
  auto backoff = std::chrono::milliseconds(1000);
  bool warned = false;
  while (!stop.stop_requested()) {
    auto watch = client.watch(request);
    if (!watch) {
      // Once at warn level, then quietly: an old broker without the route would fill the log.
      if (!std::exchange(warned, true)) {
        tb::log::warn("cannot watch the database token; connections are still renewed by expiry",
                      {{"error", watch.error().message}, {"retry_in_ms", backoff.count()}});
      }
      pause(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(30'000));
      continue;
    }
    backoff = std::chrono::milliseconds(1000);
    warned = false;
    while (!stop.stop_requested()) {
      auto event = watch->next(std::chrono::milliseconds(500));
      if (!event) {
        if (event.error().code == token_client::Errc::timeout) continue;
        tb::log::debug("database token watch ended; watching again",
                       {{"error", event.error().message}});
        pause(backoff);
        break;
      }
      if (!event->forced) continue;
      const auto closed = token_replaced(event->token_sha256);
      tb::log::info("database token replaced early; closing connections that used the old one",
                    {{"token_sha256", event->token_sha256.substr(0, 12)},
                     {"version", event->version},
                     {"closed_now", closed}});
    }
  }
}

}  // namespace

int run(const AppConfig& config) {
  std::unique_ptr<TodoStore> store;
  TokenReplaced token_replaced;
  std::unique_ptr<Csrf> csrf;
  try {
    csrf = std::make_unique<Csrf>(config.csrf_secret_file.empty()
                                      ? Csrf::random_hex()
                                      : read_secret(config.csrf_secret_file));
    StorageConfig storage;
    storage.connection_string = config.db_connection_string;
    storage.auth = config.db_auth;
    storage.dialect = config.db_dialect;
    storage.pool_size = config.db_pool_size;
    storage.max_lifetime = config.db_max_lifetime;
    storage.token_margin = config.db_token_margin;
    TokenSource tokens;
    if (config.db_auth != Auth::none) tokens = broker_tokens(config);
    store = make_odbc_store(std::move(storage), std::move(tokens), system_clock(), &token_replaced);
  } catch (const std::exception& error) {
    tb::log::error("todo-app cannot start", {{"error", error.what()}});
    std::cerr << "todo-app: " << error.what() << "\n";
    return 2;
  }

  asio::io_context io(1);  // the server core's thread; requests run on config.threads workers
  App app(*store, *csrf);
  std::unique_ptr<Server> server;
  std::unique_ptr<Server> admin;  // probes and Prometheus; one worker: its answers are quick
  try {
    server = std::make_unique<Server>(
        io, "--listen", config.listen_host, config.listen_port,
        [&app](const Request& request) { return app.handle(request); }, config.threads);
    if (config.admin_enabled) {
      admin = std::make_unique<Server>(
          io, "--admin-listen", config.admin_host, config.admin_port,
          [&app](const Request& request) { return app.handle_admin(request); }, 1);
    }
  } catch (const std::runtime_error& error) {
    tb::log::error("todo-app cannot listen", {{"error", error.what()}});
    std::cerr << "todo-app: " << error.what() << "\n";
    return 1;
  }
  server->start();
  if (admin) admin->start();
  // Stopped (and joined) when run() returns, before the store goes.
  std::jthread token_watch;
  if (config.db_auth != Auth::none && token_replaced) {
    token_watch = std::jthread([&config, &token_replaced](const std::stop_token& stop) {
      watch_db_token(config, token_replaced, stop);
    });
  }

  // The first database round trip says at once whether the settings work (not fatal: the
  // database or the broker may come up later, and /readyz reports it).
  if (auto ping = store->ping(); ping) {
    tb::log::info("database reachable");
  } else {
    tb::log::warn("database not reachable yet", {{"error", ping.error().message}});
  }
  tb::log::info("todo-app listening",
                {{"url", fmt::format("http://{}:{}/", config.listen_host, server->port())},
                 {"admin", admin ? fmt::format("http://{}:{}/", config.admin_host, admin->port())
                                 : std::string("off")},
                 {"db_auth", std::string(to_string(config.db_auth))},
                 {"broker_socket", config.db_auth == Auth::none ? "" : config.broker_socket},
                 {"pool_size", config.db_pool_size},
                 {"threads", config.threads}});

  // SIGTERM/SIGINT: /readyz turns 503 and the app serves on for the drain period (endpoints
  // drop the pod meanwhile); then the server drains (answers what was received, closes idle
  // connections); requests still running when the grace ends are answered 503.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer timer(io);
  bool serving_stopped = false;
  auto stop_serving = [&] {
    if (std::exchange(serving_stopped, true)) return;
    tb::log::info("draining connections", {{"grace_s", config.shutdown_grace.count()}});
    // Both listeners drain; the app stops when neither has a connection left.
    auto draining = std::make_shared<int>(admin ? 2 : 1);
    auto drained = [&io, draining] {
      if (--*draining == 0) io.stop();
    };
    server->drain(drained);
    if (admin) admin->drain(drained);
    timer.expires_after(config.shutdown_grace);
    timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      tb::log::warn("shutdown grace over: requests still running were answered 503",
                    {{"requests", server->busy()}});
      server->close_busy();
      if (admin) admin->close_busy();
      io.stop();
    });
  };
  bool stopping = false;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signo) {
        if (ec) return;
        if (stopping) {
          // A second signal (Ctrl-C again): skip the rest of the drain period.
          if (!serving_stopped) {
            tb::log::info("second signal: draining now", {{"signal", signo}});
            timer.cancel();
            stop_serving();
          }
          return;
        }
        stopping = true;
        signals.async_wait(on_signal);
        tb::log::info("stopping: not ready, serving on for the drain period",
                      {{"signal", signo}, {"drain_s", config.drain.count()}});
        app.start_draining();
        timer.expires_after(config.drain);
        timer.async_wait([&](const boost::system::error_code& wait_ec) {
          if (!wait_ec) stop_serving();
        });
      };
  signals.async_wait(on_signal);

  io.run();
  // Its next wait ends within half a second (a watch being opened: within --broker-timeout).
  token_watch.request_stop();
  admin.reset();
  server.reset();  // waits for the workers' requests
  tb::log::info("todo-app stopped");
  return 0;
}

}  // namespace todo
