#pragma once
// token_client: asks token-broker (the pod's sidecar) for a managed-identity access token over
// its Unix socket. Blocking, one connection per call, no threads and no global state: any C++
// program can call it, e.g. right before opening a new database connection.

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace token_client {

/// Where token-broker listens unless told otherwise (the chart's shared emptyDir).
inline constexpr std::string_view kDefaultSocket = "/var/run/token-broker/broker.sock";
/// The environment variable that names another socket (the same one tokenctl reads).
inline constexpr std::string_view kSocketEnv = "TOKEN_BROKER_SOCKET";

struct Options {
  std::string socket_path = std::string(kDefaultSocket);
  /// The whole call at most: connect, send, and the broker's answer. The broker is asked to give
  /// up a little earlier (its `timeout` parameter), so that a slow upstream comes back as a 503
  /// that says why rather than as a bare timeout.
  std::chrono::milliseconds timeout{5000};

  /// Defaults, with `socket_path` from $TOKEN_BROKER_SOCKET when that is set and not empty.
  static Options from_environment();
};

/// What to ask for. At most one of client_id, object_id, mi_res_id (none: the broker's default
/// identity). Values are sent percent-encoded; the broker validates them.
struct Request {
  std::string resource;  ///< e.g. "https://database.windows.net/"
  std::string client_id;
  std::string object_id;
  std::string mi_res_id;
  /// Ask for a token with at least this much validity left (the broker never serves less than
  /// its own --min-validity).
  std::optional<std::chrono::seconds> min_validity;
};

/// A token as the broker served it. `access_token` is a secret: never log or print it.
struct Token {
  std::string access_token;
  std::string token_type;  ///< "Bearer"
  std::chrono::system_clock::time_point expires_on;
  std::string resource;
};

enum class Errc {
  broker_not_running = 1,  ///< nothing listens on the socket (absent, refused, not a socket)
  broker_unavailable,      ///< 503 (no valid token in time) or another 5xx; the broker hung up
  rate_limited,            ///< 429: a forced refresh too soon after the last one (Retry-After)
  refused,                 ///< 403, or the socket's permissions do not let this process in
  bad_request,             ///< 400 and other 4xx: the request is wrong; retrying will not help
  timeout,                 ///< no complete answer within Options::timeout
  protocol_error,          ///< the answer is not what token-broker sends (wrong socket?)
};

/// "broker_not_running", "timeout", ...: for logs and metrics labels.
std::string_view to_string(Errc code);

/// True for errors that may go away by themselves (broker starting, upstream outage, slow
/// answer): worth retrying with backoff. False when something must be fixed first.
bool is_transient(Errc code);

struct Error {
  Errc code = Errc::protocol_error;
  int http_status = 0;  ///< the broker's status; 0 when there was no HTTP answer
  /// From the broker's Retry-After (delta seconds); 0 when it sent none.
  std::chrono::seconds retry_after{0};
  /// One sentence that names what failed and what to do. Never contains the token.
  std::string message;
};

/// What `result<Token, Error>::value()` throws; `what()` is Error::message.
class TokenError : public std::runtime_error {
 public:
  explicit TokenError(Error error);
  const Error& error() const noexcept { return error_; }

 private:
  Error error_;
};

/// Lets `result<Token, Error>::value()` throw TokenError (found by argument-dependent lookup).
[[noreturn]] void throw_exception_from_error(const Error& error,
                                             const boost::source_location& location);

using Result = boost::system::result<Token, Error>;

/// What a forced refresh got.
struct Refreshed {
  Token token;
  /// False when the broker's upstream handed back the very token that was rejected (it cannot
  /// be told to skip its own cache, e.g. IMDS): using it again will fail again.
  bool is_new = true;
};
using RefreshResult = boost::system::result<Refreshed, Error>;

/// One event of a watch: the key's token when the watch starts, then each new one.
struct TokenEvent {
  std::uint64_t version = 0;  ///< 1, 2, … for the key's tokens, in order
  std::string token_sha256;   ///< the token's SHA-256, lower-case hex
  std::chrono::system_clock::time_point expires_on;
  bool forced = false;  ///< a forced refresh replaced the token before its time
  /// The token itself, only when the watch asked for it (a secret: never log it).
  std::optional<std::string> access_token;
};
using EventResult = boost::system::result<TokenEvent, Error>;

/// A watch stream (GET /v1/token/watch, Server-Sent Events) on a connection of its own: blocking
/// reads of its events, no threads. Move-only; the connection closes with it.
class Watch {
 public:
  Watch(Watch&& other) noexcept;
  Watch& operator=(Watch&& other) noexcept;
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;
  ~Watch();

  /// The next event, waiting up to `wait`. Errc::timeout: none came (keep-alives do not count),
  /// the stream goes on; call again. Any other error ends the stream (the broker stopped or
  /// dropped it, or it sent something else): watch again, with backoff.
  EventResult next(std::chrono::milliseconds wait);

 private:
  friend class Client;
  Watch(int fd, std::string buffered, std::string socket_path);
  int fd_ = -1;
  std::string buffer_;  ///< bytes received and not parsed yet
  std::string socket_path_;
  bool ended_ = false;
};
using WatchResult = boost::system::result<Watch, Error>;

class Client {
 public:
  explicit Client(Options options = Options::from_environment());

  /// Asks the broker for a token: one new connection, one GET /v1/token, blocking for at most
  /// Options::timeout. Thread-safe (calls share nothing).
  Result get_token(const Request& request) const;

  /// A forced refresh, for when the resource refused `rejected_token` although it has not
  /// expired (a role change, a revocation): one POST /v1/token/refresh carrying the token's
  /// SHA-256 (never the token), which makes the broker fetch a new token from its upstream now.
  /// The broker allows one forced refresh per resource and identity in its
  /// --force-refresh-interval (default 30 s); another gets Errc::rate_limited, unless the broker
  /// already holds a token other than the rejected one, which it then answers.
  RefreshResult refresh(const Request& request, std::string_view rejected_token) const;

  /// Opens a watch of the token for `request`: waits (at most Options::timeout) for the
  /// broker's first answer, which is the current token's event (or the same errors as
  /// get_token()); then Watch::next() gives it and each new token's. `include_token`: the events
  /// carry the token itself.
  WatchResult watch(const Request& request, bool include_token = false) const;

  const Options& options() const noexcept { return options_; }

 private:
  Options options_;
};

}  // namespace token_client
