#pragma once
// tokenctl's command line: argv -> Options, or a usage error. Pure: the one environment value
// it depends on is passed in, and nothing is printed here.

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace tokenctl {

inline constexpr std::string_view kDefaultSocket = "/var/run/token-broker/broker.sock";
inline constexpr std::string_view kSocketEnv = "TOKEN_BROKER_SOCKET";
inline constexpr std::chrono::seconds kDefaultTimeout{10};
inline constexpr std::chrono::seconds kMaxTimeout{3600};
// Entra tokens live at most 24 h, so asking for more validity than that can never succeed.
inline constexpr std::chrono::seconds kMaxMinValidity{86400};

enum class Command { none, get, health };

/// Which managed identity a token is for; `system_assigned` sends no selector.
enum class IdentityKind { system_assigned, client_id, object_id, mi_res_id };

/// The broker's query parameter for `kind` ("" for the system-assigned identity).
std::string_view query_name(IdentityKind kind);

struct Identity {
  IdentityKind kind = IdentityKind::system_assigned;
  std::string value;
};

struct Options {
  Command command = Command::none;
  bool help = false;   ///< print the help of `command` (general help for `none`) and exit 0
  std::string socket;  ///< resolved: --socket, else $TOKEN_BROKER_SOCKET, else kDefaultSocket
  std::chrono::seconds timeout = kDefaultTimeout;
  // `get` only:
  std::string resource;
  Identity identity;
  std::optional<std::chrono::seconds> min_validity;
  bool show_token = false;
  bool json = false;
};

struct UsageError {
  std::string message;              ///< what was wrong, e.g. "--timeout needs a value"
  Command command = Command::none;  ///< whose help to point the user at
};

/// Lets `result<Options, UsageError>::value()` throw (found by argument-dependent lookup).
[[noreturn]] void throw_exception_from_error(const UsageError& error,
                                             const boost::source_location& location);

using ParseResult = boost::system::result<Options, UsageError>;

/// Parses the arguments after the program name. `socket_env` is $TOKEN_BROKER_SOCKET if set.
ParseResult parse_args(std::span<const std::string> args,
                       std::optional<std::string_view> socket_env);

/// The --help text of `command` (general help for Command::none).
std::string_view help_text(Command command);

}  // namespace tokenctl
