#pragma once
// What tokenctl asks the broker and what it makes of the answer. Pure functions: requests are
// built from Options, and an answer (or a transport error) becomes an Outcome - the text for
// stdout and stderr and the exit code - without any I/O.

#include "token_client/routes.hpp"
#include "tokenctl/cli.hpp"

#include <tb/http_client.hpp>

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace tokenctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

inline constexpr std::string_view kTokenPath = token_client::routes::kToken;
inline constexpr std::string_view kReadyPath = token_client::routes::kReady;

struct Outcome {
  int exit_code = kExitOk;
  std::string out;  ///< for stdout
  std::string err;  ///< for stderr, each line starting with "tokenctl: "
};

/// The seconds the broker is given to answer: one less than the client's own deadline, so that
/// its explanation (a 503 saying why) arrives before tokenctl gives up.
std::int64_t broker_timeout_seconds(const Options& options);

/// The /v1/token target for a `get`, every query value percent-encoded.
std::string token_target(const Options& options);

/// The HTTP request for the command in `options` (get -> /v1/token, health -> /readyz).
tb::http::Request build_request(const Options& options);

/// The client-side limits: the whole exchange must finish within --timeout.
tb::http::Limits build_limits(const Options& options);

/// Turns the broker's answer to `options.command` into what tokenctl prints and returns.
Outcome interpret(const Options& options, const boost::system::result<tb::http::Response>& answer);

/// "cannot connect to …", "timed out after …": what went wrong and what to do, without prefix.
std::string describe_transport_error(const Options& options, boost::system::error_code ec);

/// "broker answered 503: error: description (retry after 5 s)", without prefix.
std::string describe_http_error(const Options& options, const tb::http::Response& response);

/// 3598 -> "59m 58s", 45 -> "45s", 7322 -> "2h 2m 2s"; negative -> "expired".
std::string format_duration(std::int64_t seconds);

/// 1795996799 -> "2026-11-29T23:59:59Z".
std::string format_utc(std::int64_t unix_seconds);

/// Untrusted text made safe for a terminal: control characters become \xNN, and long text is
/// cut at `max_size` bytes with "…".
std::string printable(std::string_view text, std::size_t max_size = 300);

}  // namespace tokenctl
