#pragma once
// token-bench's command line: argv -> Options, or a usage error. Pure: nothing is printed and
// nothing is connected here.

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace token_bench {

inline constexpr std::string_view kDefaultPath =
    "/v1/token?resource=https%3A%2F%2Fdatabase.windows.net%2F";
inline constexpr std::size_t kDefaultConnections = 16;
inline constexpr std::size_t kMaxConnections = 10'000;
inline constexpr std::chrono::milliseconds kDefaultDuration{10'000};
inline constexpr std::chrono::milliseconds kDefaultWarmup{1'000};
inline constexpr std::chrono::milliseconds kDefaultTimeout{10'000};
inline constexpr std::uint64_t kMaxRequests = 1'000'000'000;
inline constexpr std::string_view kDefaultResource = "https://database.windows.net/";

/// `--unix PATH`: the server listens on a Unix stream socket.
struct UnixTarget {
  std::string path;
};

/// `--tcp HOST:PORT`: HOST without brackets (an IPv6 literal is given as `[::1]:PORT`).
struct TcpTarget {
  std::string host;
  std::string port;
};

using Target = std::variant<std::monostate, UnixTarget, TcpTarget>;

/// "unix:PATH" or "tcp:HOST:PORT" (IPv6 hosts in brackets), for messages and reports.
std::string describe(const Target& target);

struct Header {
  std::string name;
  std::string value;
};

struct Options {
  bool help = false;  ///< print help_text() and exit 0; nothing else is meaningful then
  Target target;
  std::string path = std::string(kDefaultPath);  ///< request-target of every request
  std::vector<Header> headers;                   ///< extra request headers, in order
  std::size_t connections = kDefaultConnections;
  std::chrono::milliseconds duration = kDefaultDuration;  ///< ignored when `requests` is set
  std::optional<std::uint64_t> requests;  ///< stop after this many measured attempts instead
  std::chrono::milliseconds warmup = kDefaultWarmup;
  std::chrono::milliseconds timeout = kDefaultTimeout;  ///< one request (or connect) at most
  bool json = false;
  /// `--token-client`: instead of raw keep-alive requests, call token_client::Client::get_token
  /// sequentially (a new connection each call, as an application does before each new database
  /// connection). Only with --unix; --path, --header and --connections do not apply.
  bool token_client = false;
  std::string resource = std::string(kDefaultResource);  ///< `--resource`, with --token-client
};

struct UsageError {
  std::string message;  ///< what was wrong, e.g. "--connections needs a value"
};

/// Lets `result<Options, UsageError>::value()` throw (found by argument-dependent lookup).
[[noreturn]] void throw_exception_from_error(const UsageError& error,
                                             const boost::source_location& location);

using ParseResult = boost::system::result<Options, UsageError>;

/// Parses the arguments after the program name.
ParseResult parse_args(std::span<const std::string> args);

/// The --help text.
std::string_view help_text();

}  // namespace token_bench
