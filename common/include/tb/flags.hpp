#pragma once
// Table-driven command-line + environment parsing shared by the daemons (token-broker,
// todo-app). Each flag has a name, a help line and a setter that validates its value; every flag
// can also come from an environment variable (PREFIX_FLAG_NAME unless the flag names its own).
// Flags win over the environment. Pure: the environment is passed in.

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tb::flags {

using Getenv = std::function<std::optional<std::string>(const std::string& name)>;

template <class Config>
struct Flag {
  std::string name;  ///< without the leading dashes
  std::string value_name;
  std::string help;
  /// Validates and stores the value; returns what is wrong with it, or nullopt.
  std::function<std::optional<std::string>(Config&, const std::string&)> set;
  std::string env = {};  ///< environment variable; "" = the prefix + the upper-cased name
  /// A repeatable flag: each occurrence adds to the value, and the first one on the command line
  /// calls this first, to drop what the environment set (flags win over the environment).
  std::function<void(Config&)> reset = {};
};

struct Outcome {
  std::string error;  ///< one line naming the flag and the reason ("" = none)
  bool help = false;
  bool version = false;
};

inline std::string env_name(std::string_view prefix, std::string_view flag) {
  std::string out(prefix);
  for (char c : flag) {
    out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

template <class Config>
std::string env_of(const Flag<Config>& flag, std::string_view prefix) {
  return flag.env.empty() ? env_name(prefix, flag.name) : flag.env;
}

inline std::optional<std::int64_t> to_int(std::string_view text) {
  std::int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

/// A file mode in octal ("0640" or "640"), at most 0777; nullopt for anything else.
inline std::optional<unsigned> parse_octal_mode(std::string_view text) {
  unsigned mode = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), mode, 8);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || mode > 0777) {
    return std::nullopt;
  }
  return mode;
}

/// A setter for a whole number in [low, high].
template <class Config>
auto int_range(std::int64_t low, std::int64_t high,
               std::function<void(Config&, std::int64_t)> set) {
  return [low, high, set = std::move(set)](Config& config,
                                           const std::string& value) -> std::optional<std::string> {
    auto parsed = to_int(value);
    if (!parsed || *parsed < low || *parsed > high) {
      return fmt::format("must be a whole number from {} to {}, got '{}'", low, high, value);
    }
    set(config, *parsed);
    return std::nullopt;
  };
}

/// Parses HOST:PORT (IPv6 hosts in brackets) into `host` and `port`; returns what is wrong.
inline std::optional<std::string> parse_host_port(const std::string& value, std::string& host,
                                                  std::uint16_t& port) {
  auto colon = value.rfind(':');
  if (colon == std::string::npos || colon == 0) return "must be HOST:PORT, e.g. 127.0.0.1:8080";
  host = value.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  auto parsed = to_int(std::string_view(value).substr(colon + 1));
  if (!parsed || *parsed < 0 || *parsed > 65535) return "has an invalid port (0-65535)";
  port = static_cast<std::uint16_t>(*parsed);
  return std::nullopt;
}

/// Applies the environment, then `args` (without the program name), to `config`.
template <class Config>
Outcome parse(const std::vector<Flag<Config>>& flags, std::string_view env_prefix,
              const std::vector<std::string>& args, const Getenv& getenv, Config& config) {
  Outcome outcome;
  for (const auto& flag : flags) {
    const auto name = env_of(flag, env_prefix);
    if (auto value = getenv(name)) {
      if (auto problem = flag.set(config, *value)) {
        outcome.error = fmt::format("{} (environment, for --{}) {}", name, flag.name, *problem);
        return outcome;
      }
    }
  }
  std::vector<const Flag<Config>*> repeated;  // repeatable flags seen on the command line
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      outcome.help = true;
      return outcome;
    }
    if (arg == "--version") {
      outcome.version = true;
      return outcome;
    }
    if (!arg.starts_with("--")) {
      outcome.error = "unexpected argument '" + arg + "' (flags start with --; see --help)";
      return outcome;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const Flag<Config>* flag = nullptr;
    for (const auto& candidate : flags) {
      if (candidate.name == name) flag = &candidate;
    }
    if (flag == nullptr) {
      outcome.error = "unknown flag --" + name + " (see --help)";
      return outcome;
    }
    if (!value) {
      // "--socket --min-validity 5" is a forgotten value, not a socket named "--min-validity".
      if (i + 1 >= args.size() || args[i + 1].starts_with("--")) {
        outcome.error = "--" + name + " needs a value (" + flag->value_name + ")";
        return outcome;
      }
      value = args[++i];
    }
    if (flag->reset && std::find(repeated.begin(), repeated.end(), flag) == repeated.end()) {
      flag->reset(config);
      repeated.push_back(flag);
    }
    if (auto problem = flag->set(config, *value)) {
      outcome.error = "--" + name + " " + *problem;
      return outcome;
    }
  }
  return outcome;
}

/// The flag part of --help: every flag, its value, its help line and its environment variable.
template <class Config>
std::string usage(const std::vector<Flag<Config>>& flags, std::string_view env_prefix) {
  std::string out;
  for (const auto& flag : flags) {
    out += fmt::format("  --{} {}\n      {} [{}]\n", flag.name, flag.value_name, flag.help,
                       env_of(flag, env_prefix));
  }
  out += "  --help      Show this text.\n  --version   Show the version.\n";
  return out;
}

}  // namespace tb::flags
