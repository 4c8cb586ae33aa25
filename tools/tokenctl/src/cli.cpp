#include "tokenctl/cli.hpp"

#include "tb/args.hpp"

#include <boost/throw_exception.hpp>

#include <sys/un.h>

#include <charconv>
#include <cstdint>
#include <stdexcept>

namespace tokenctl {
namespace {

constexpr std::string_view kGeneralHelp =
    R"(Usage: tokenctl <command> [options]

Asks the token-broker sidecar, over its Unix socket, for Azure managed-identity tokens.

Commands:
  get RESOURCE    fetch a token for RESOURCE and show its expiry (the token only if asked)
  health          ask the broker whether it is ready (holds every prefetched token)

Options for every command:
  --socket PATH       broker socket (default: $TOKEN_BROKER_SOCKET,
                      else /var/run/token-broker/broker.sock)
  --timeout SECONDS   give up after this many seconds (default 10)
  -h, --help          show help; 'tokenctl get --help' lists the options of get

Exit codes: 0 ok; 1 error (broker unreachable, refused, not ready, bad answer, timed out);
            2 usage error.
)";

constexpr std::string_view kGetHelp =
    R"(Usage: tokenctl get RESOURCE [options]

Fetches a token for RESOURCE (e.g. https://database.windows.net/) from token-broker and prints
its resource, expiry, type and a SHA-256 fingerprint. The token itself is printed only with
--show-token.

Options:
  --client-id ID          user-assigned identity, by client id
  --object-id ID          user-assigned identity, by object id
  --mi-res-id ID          user-assigned identity, by Azure resource id
                          (at most one of these three; none = the default identity)
  --min-validity SECONDS  the token must stay valid at least this long (broker default 60)
  --show-token            print only the token, e.g. TOKEN=$(tokenctl get R --show-token)
  --json                  print the broker's JSON answer (access_token removed unless
                          --show-token is given too)
  --socket PATH           broker socket (default: $TOKEN_BROKER_SOCKET,
                          else /var/run/token-broker/broker.sock)
  --timeout SECONDS       give up after this many seconds (default 10)
  -h, --help              show this help

Exit codes: 0 ok; 1 error (broker unreachable, refused, bad answer, timed out); 2 usage error.
)";

constexpr std::string_view kHealthHelp =
    R"(Usage: tokenctl health [options]

Asks token-broker's /readyz whether it holds every token it was told to prefetch. Prints
"ready" (exit 0) or "not ready: <reason>" (exit 1).

Options:
  --socket PATH       broker socket (default: $TOKEN_BROKER_SOCKET,
                      else /var/run/token-broker/broker.sock)
  --timeout SECONDS   give up after this many seconds (default 10)
  -h, --help          show this help

Exit codes: 0 ready; 1 not ready or error (broker unreachable, bad answer, timed out);
            2 usage error.
)";

// sockaddr_un::sun_path holds the path and its terminating NUL.
constexpr std::size_t kMaxSocketPath = sizeof(sockaddr_un{}.sun_path) - 1;

std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

class Parser {
 public:
  Parser(Command command, std::span<const std::string> args) : args_(args) {
    options_.command = command;
  }

  ParseResult parse(std::optional<std::string_view> socket_env) {
    bool only_positionals = false;
    for (next_ = 0; next_ < args_.size();) {
      const std::string& arg = args_[next_++];
      bool ok = true;
      if (only_positionals || arg.empty() || arg == "-" || arg[0] != '-') {
        ok = positional(arg);
      } else if (arg == "--") {
        only_positionals = true;
      } else {
        ok = option(arg);
      }
      if (!ok) return error_;
    }
    if (options_.command == Command::get && !has_resource_) {
      return fail(
          "missing RESOURCE: tokenctl get RESOURCE, e.g. tokenctl get "
          "https://database.windows.net/");
    }
    if (!socket_set_) {
      options_.socket = socket_env && !socket_env->empty() ? std::string(*socket_env)
                                                           : std::string(kDefaultSocket);
    }
    if (options_.socket.size() > kMaxSocketPath) {
      return fail("socket path is too long (" + std::to_string(options_.socket.size()) +
                  " bytes, at most " + std::to_string(kMaxSocketPath) + "): " + options_.socket +
                  " — use a shorter --socket or TOKEN_BROKER_SOCKET");
    }
    return options_;
  }

 private:
  bool positional(const std::string& arg) {
    if (options_.command == Command::health) {
      return fail_flag("unexpected argument " + quoted(arg) + ": health takes no arguments");
    }
    if (has_resource_) {
      return fail_flag("unexpected argument " + quoted(arg) + ": get takes one RESOURCE (got " +
                       quoted(options_.resource) + " already)");
    }
    if (arg.empty()) return fail_flag("RESOURCE is empty, e.g. https://database.windows.net/");
    has_resource_ = true;
    options_.resource = arg;
    return true;
  }

  bool option(const std::string& arg) {
    // "--name=value" and "--name value" are both accepted.
    std::string_view name = arg;
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); name.starts_with("--") && eq != std::string_view::npos) {
      inline_value = std::string(name.substr(eq + 1));
      name = name.substr(0, eq);
    }
    const bool is_get = options_.command == Command::get;

    if (name == "--show-token" || name == "--json") {
      if (!is_get) return not_for_health(name);
      if (inline_value) return fail_flag(std::string(name) + " takes no value");
      bool& flag = name == "--json" ? options_.json : options_.show_token;
      if (flag) return given_twice(name);
      flag = true;
      return true;
    }
    if (name == "--socket") {
      if (socket_set_) return given_twice(name);
      socket_set_ = true;
      return value(name, inline_value, options_.socket);
    }
    if (name == "--timeout") {
      if (timeout_set_) return given_twice(name);
      timeout_set_ = true;
      return seconds(name, inline_value, std::chrono::seconds(1), kMaxTimeout, options_.timeout);
    }
    if (name == "--min-validity") {
      if (!is_get) return not_for_health(name);
      if (options_.min_validity) return given_twice(name);
      std::chrono::seconds parsed{};
      if (!seconds(name, inline_value, std::chrono::seconds(0), kMaxMinValidity, parsed)) {
        return false;
      }
      options_.min_validity = parsed;
      return true;
    }
    if (auto kind = identity_kind(name)) {
      if (!is_get) return not_for_health(name);
      if (options_.identity.kind == *kind) return given_twice(name);
      if (options_.identity.kind != IdentityKind::system_assigned) {
        return fail_flag(std::string(identity_flag(options_.identity.kind)) + " and " +
                         std::string(name) + " both select an identity: give at most one of " +
                         "--client-id, --object-id, --mi-res-id");
      }
      options_.identity.kind = *kind;
      return value(name, inline_value, options_.identity.value);
    }
    return fail_flag("unknown option " + quoted(name));
  }

  static std::string_view identity_flag(IdentityKind kind) {
    switch (kind) {
      case IdentityKind::client_id:
        return "--client-id";
      case IdentityKind::object_id:
        return "--object-id";
      case IdentityKind::mi_res_id:
        return "--mi-res-id";
      case IdentityKind::system_assigned:
        break;
    }
    return "";
  }

  static std::optional<IdentityKind> identity_kind(std::string_view name) {
    if (name == "--client-id") return IdentityKind::client_id;
    if (name == "--object-id") return IdentityKind::object_id;
    if (name == "--mi-res-id") return IdentityKind::mi_res_id;
    return std::nullopt;
  }

  bool value(std::string_view name, const std::optional<std::string>& inline_value,
             std::string& out) {
    if (auto problem = tb::args::take_value(name, inline_value, args_, next_, out)) {
      return fail_flag(std::move(*problem));
    }
    return true;
  }

  bool seconds(std::string_view name, const std::optional<std::string>& inline_value,
               std::chrono::seconds min, std::chrono::seconds max, std::chrono::seconds& out) {
    std::string text;
    if (!value(name, inline_value, text)) return false;
    std::uint64_t number = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, number);
    if (ec != std::errc{} || ptr != end || number < static_cast<std::uint64_t>(min.count()) ||
        number > static_cast<std::uint64_t>(max.count())) {
      return fail_flag(std::string(name) + " expects whole seconds from " +
                       std::to_string(min.count()) + " to " + std::to_string(max.count()) +
                       ", got " + quoted(text));
    }
    out = std::chrono::seconds(static_cast<std::int64_t>(number));
    return true;
  }

  bool not_for_health(std::string_view name) {
    return fail_flag(std::string(name) +
                     " is an option of 'tokenctl get', not of 'tokenctl health'");
  }
  bool given_twice(std::string_view name) { return fail_flag(std::string(name) + " given twice"); }

  bool fail_flag(std::string message) {
    error_ = UsageError{std::move(message), options_.command};
    return false;
  }
  UsageError fail(std::string message) { return {std::move(message), options_.command}; }

  std::span<const std::string> args_;
  std::size_t next_ = 0;
  Options options_;
  UsageError error_;
  bool has_resource_ = false;
  bool socket_set_ = false;
  bool timeout_set_ = false;
};

bool is_help(std::string_view arg) { return arg == "-h" || arg == "--help"; }

Options help_for(Command command) {
  Options options;
  options.command = command;
  options.help = true;
  return options;
}

std::optional<Command> command_named(std::string_view name) {
  if (name == "get") return Command::get;
  if (name == "health") return Command::health;
  return std::nullopt;
}

}  // namespace

std::string_view query_name(IdentityKind kind) {
  switch (kind) {
    case IdentityKind::client_id:
      return "client_id";
    case IdentityKind::object_id:
      return "object_id";
    case IdentityKind::mi_res_id:
      return "mi_res_id";
    case IdentityKind::system_assigned:
      break;
  }
  return "";
}

void throw_exception_from_error(const UsageError& error, const boost::source_location& location) {
  boost::throw_exception(std::invalid_argument(error.message), location);
}

ParseResult parse_args(std::span<const std::string> args,
                       std::optional<std::string_view> socket_env) {
  if (args.empty()) return UsageError{"missing command: expected 'get' or 'health'"};
  const std::string& first = args.front();
  if (is_help(first)) return help_for(Command::none);
  if (first == "help") {
    // "tokenctl help get" reads naturally; an unknown topic falls back to the general help.
    auto topic = args.size() > 1 ? command_named(args[1]) : std::nullopt;
    return help_for(topic.value_or(Command::none));
  }
  auto command = command_named(first);
  if (!command) {
    if (first.starts_with("-")) {
      return UsageError{
          "the command comes first: tokenctl get RESOURCE [options] or "
          "tokenctl health [options]"};
    }
    return UsageError{"unknown command " + quoted(first) + ": expected 'get' or 'health'"};
  }
  auto rest = args.subspan(1);
  // --help anywhere (before "--") wins over every other mistake on the line.
  for (const auto& arg : rest) {
    if (arg == "--") break;
    if (is_help(arg)) return help_for(*command);
  }
  return Parser(*command, rest).parse(socket_env);
}

std::string_view help_text(Command command) {
  switch (command) {
    case Command::get:
      return kGetHelp;
    case Command::health:
      return kHealthHelp;
    case Command::none:
      break;
  }
  return kGeneralHelp;
}

}  // namespace tokenctl
