#include "token_bench/options.hpp"

#include "tb/args.hpp"

#include <boost/throw_exception.hpp>

#include <sys/un.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace token_bench {
namespace {

constexpr std::string_view kHelp =
    R"(Usage: token-bench (--unix PATH | --tcp HOST:PORT) [options]
       token-bench --token-client --unix PATH [--resource R] [options]

Closed-loop HTTP/1.1 load generator for token-broker (or any HTTP server): N keep-alive
connections each send a GET, read the whole response, record its latency and send the next.
One thread, so it leaves the other cores to the server under test.

Target (exactly one):
  --unix PATH            the server's Unix socket, e.g. /var/run/token-broker/broker.sock
  --tcp HOST:PORT        a TCP server, e.g. 127.0.0.1:8081 or [::1]:8081

Options:
  --path TARGET          request-target (default
                         /v1/token?resource=https%3A%2F%2Fdatabase.windows.net%2F)
  --header 'Name: value' add a request header (repeatable; a Host header replaces the default)
  --connections N        concurrent keep-alive connections, 1 to 10000 (default 16)
  --duration SECONDS     measure for this long, e.g. 10 or 0.5 (default 10)
  --requests N           instead of --duration: measure exactly N attempts (responses + errors)
  --warmup SECONDS       run unmeasured for this long first (default 1; 0 for none)
  --timeout SECONDS      a connect or request taking longer is an error (default 10)
  --json                 print one JSON object instead of the text report
  --token-client         measure the token_client library instead: call get_token one at a
                         time, each on a new connection (as an app does before each new
                         database connection); needs --unix; --path, --header, --connections
                         do not apply
  --resource R           the resource get_token asks for, with --token-client (default
                         https://database.windows.net/)
  -h, --help             show this help

Reports responses per second, latency percentiles p50/p90/p99/p99.9/max in microseconds (exact,
from every recorded sample), errors (no response: connect/write/read failures, timeouts) and
non-200 responses. SIGINT/SIGTERM end the measurement early and report what was measured.

Exit codes: 0 at least one 200 response; 1 every request failed (or the target is unreachable);
            2 usage error.
)";

// sockaddr_un::sun_path holds the path and its terminating NUL.
constexpr std::size_t kMaxSocketPath = sizeof(sockaddr_un{}.sun_path) - 1;
constexpr std::chrono::milliseconds kMaxDuration{86'400'000};
constexpr std::chrono::milliseconds kMaxWarmup{3'600'000};
constexpr std::chrono::milliseconds kMaxTimeout{3'600'000};

std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

bool is_tchar(char c) {
  // RFC 9110 token characters, the only ones allowed in a header name.
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool iequals(std::string_view a, std::string_view b) {
  return std::ranges::equal(a, b, [](char x, char y) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    return lower(x) == lower(y);
  });
}

// "10", "0.5", "1.250": whole seconds with at most three decimals, as milliseconds.
std::optional<std::chrono::milliseconds> parse_seconds(std::string_view text) {
  const auto dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view fraction =
      dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
  if (whole.empty() || (dot != std::string_view::npos && fraction.empty()) || fraction.size() > 3) {
    return std::nullopt;
  }
  std::uint64_t seconds = 0;
  auto [end, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), seconds);
  if (ec != std::errc{} || end != whole.data() + whole.size() || seconds > 10'000'000) {
    return std::nullopt;
  }
  std::uint64_t millis = 0;
  std::uint64_t scale = 100;
  for (char c : fraction) {
    if (c < '0' || c > '9') return std::nullopt;
    millis += static_cast<std::uint64_t>(c - '0') * scale;
    scale /= 10;
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000 + millis));
}

// 1500 ms -> "1.5", 3600000 ms -> "3600": the inverse of parse_seconds, for messages.
std::string format_seconds(std::chrono::milliseconds ms) {
  std::string text = std::to_string(ms.count() / 1000);
  if (const auto millis = ms.count() % 1000; millis != 0) {
    std::string fraction = std::to_string(1000 + millis).substr(1);
    while (fraction.ends_with('0')) fraction.pop_back();
    text += "." + fraction;
  }
  return text;
}

std::optional<std::uint64_t> parse_count(std::string_view text) {
  std::uint64_t number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return number;
}

class Parser {
 public:
  explicit Parser(std::span<const std::string> args) : args_(args) {}

  ParseResult parse() {
    while (next_ < args_.size()) {
      const std::string& arg = args_[next_++];
      if (!arg.starts_with("-") || arg == "-") {
        return UsageError{"unexpected argument " + quoted(arg) +
                          ": token-bench takes only options, e.g. --unix PATH"};
      }
      if (!option(arg)) return error_;
    }
    if (std::holds_alternative<std::monostate>(options_.target)) {
      return UsageError{"no target: give --unix PATH or --tcp HOST:PORT"};
    }
    if (options_.requests && duration_set_) {
      return UsageError{"--duration and --requests both say when to stop: give one of them"};
    }
    if (resource_set_ && !options_.token_client) {
      return UsageError{"--resource applies only with --token-client (raw requests: use --path)"};
    }
    if (options_.token_client) {
      if (!std::holds_alternative<UnixTarget>(options_.target)) {
        return UsageError{"--token-client needs --unix PATH: token_client speaks to a Unix socket"};
      }
      if (path_set_ || !options_.headers.empty() || connections_set_) {
        return UsageError{
            "--path, --header and --connections do not apply with --token-client: it sends what "
            "token_client sends, one call at a time"};
      }
      options_.connections = 1;
    }
    return options_;
  }

 private:
  bool option(const std::string& arg) {
    // "--name=value" and "--name value" are both accepted.
    std::string_view name = arg;
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); eq != std::string_view::npos) {
      inline_value = std::string(name.substr(eq + 1));
      name = name.substr(0, eq);
    }
    auto once = [&](bool& seen) {
      if (seen) return fail(std::string(name) + " given twice");
      seen = true;
      return true;
    };
    std::string text;

    if (name == "--json") {
      if (inline_value) return fail("--json takes no value");
      if (!once(json_set_)) return false;
      options_.json = true;
      return true;
    }
    if (name == "--token-client") {
      if (inline_value) return fail("--token-client takes no value");
      if (!once(token_client_set_)) return false;
      options_.token_client = true;
      return true;
    }
    if (name == "--resource") {
      if (!once(resource_set_) || !value(name, inline_value, text)) return false;
      if (text.empty()) return fail("--resource needs a value, e.g. https://database.windows.net/");
      options_.resource = std::move(text);
      return true;
    }
    if (name == "--unix" || name == "--tcp") {
      if (!std::holds_alternative<std::monostate>(options_.target)) {
        return fail("give one target: --unix PATH or --tcp HOST:PORT, not two");
      }
      if (!value(name, inline_value, text)) return false;
      return name == "--unix" ? unix_target(std::move(text)) : tcp_target(text);
    }
    if (name == "--path") {
      return once(path_set_) && value(name, inline_value, text) && path(std::move(text));
    }
    if (name == "--header") return value(name, inline_value, text) && header(text);
    if (name == "--connections") {
      if (!once(connections_set_) || !value(name, inline_value, text)) return false;
      auto count = parse_count(text);
      if (!count || *count < 1 || *count > kMaxConnections) {
        return fail("--connections expects a whole number from 1 to " +
                    std::to_string(kMaxConnections) + ", got " + quoted(text));
      }
      options_.connections = static_cast<std::size_t>(*count);
      return true;
    }
    if (name == "--requests") {
      if (options_.requests) return fail("--requests given twice");
      if (!value(name, inline_value, text)) return false;
      auto count = parse_count(text);
      if (!count || *count < 1 || *count > kMaxRequests) {
        return fail("--requests expects a whole number from 1 to " + std::to_string(kMaxRequests) +
                    ", got " + quoted(text));
      }
      options_.requests = count;
      return true;
    }
    if (name == "--duration") {
      return once(duration_set_) && value(name, inline_value, text) &&
             seconds(name, text, std::chrono::milliseconds(1), kMaxDuration, options_.duration);
    }
    if (name == "--warmup") {
      return once(warmup_set_) && value(name, inline_value, text) &&
             seconds(name, text, std::chrono::milliseconds(0), kMaxWarmup, options_.warmup);
    }
    if (name == "--timeout") {
      return once(timeout_set_) && value(name, inline_value, text) &&
             seconds(name, text, std::chrono::milliseconds(1), kMaxTimeout, options_.timeout);
    }
    return fail("unknown option " + quoted(name));
  }

  bool unix_target(std::string path) {
    if (path.size() > kMaxSocketPath) {
      return fail("--unix path is too long (" + std::to_string(path.size()) + " bytes, at most " +
                  std::to_string(kMaxSocketPath) + "): " + path);
    }
    options_.target = UnixTarget{std::move(path)};
    return true;
  }

  bool tcp_target(std::string_view text) {
    const auto colon = text.rfind(':');
    const std::string_view usage = ": expected HOST:PORT, e.g. 127.0.0.1:8081 or [::1]:8081";
    if (colon == std::string_view::npos) {
      return fail("--tcp " + quoted(text) + " has no port" + std::string(usage));
    }
    std::string_view host = text.substr(0, colon);
    const std::string_view port = text.substr(colon + 1);
    if (host.starts_with('[') && host.ends_with(']')) {
      host = host.substr(1, host.size() - 2);
    } else if (host.find(':') != std::string_view::npos) {
      return fail("--tcp " + quoted(text) + ": put an IPv6 address in brackets, e.g. [::1]:8081");
    }
    auto number = parse_count(port);
    if (host.empty() || !number || *number < 1 || *number > 65535) {
      return fail("--tcp " + quoted(text) + " is not HOST:PORT with a port from 1 to 65535" +
                  std::string(usage));
    }
    options_.target = TcpTarget{std::string(host), std::string(port)};
    return true;
  }

  bool path(std::string text) {
    if (!text.starts_with('/')) {
      return fail("--path must start with '/', e.g. /v1/token?resource=..., got " + quoted(text));
    }
    // A request-target is visible ASCII; spaces and the like must be percent-encoded.
    if (!std::ranges::all_of(text, [](char c) { return c > 0x20 && c < 0x7f; })) {
      return fail("--path " + quoted(text) +
                  " has a space, control or non-ASCII character: percent-encode it (%20)");
    }
    options_.path = std::move(text);
    return true;
  }

  bool header(std::string_view text) {
    const auto colon = text.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return fail("--header expects 'Name: value', got " + quoted(text));
    }
    const std::string_view name = text.substr(0, colon);
    std::string_view value = text.substr(colon + 1);
    if (!std::ranges::all_of(name, is_tchar)) {
      return fail("--header name " + quoted(name) + " has a character not allowed in a name");
    }
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (!std::ranges::all_of(value, [](char c) {
          const auto u = static_cast<unsigned char>(c);
          return c == '\t' || (u >= 0x20 && u != 0x7f);
        })) {
      return fail("--header " + quoted(name) + " value has a control character (CR, LF, ...)");
    }
    if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding")) {
      return fail("--header " + std::string(name) + " is not allowed: token-bench sends no body");
    }
    options_.headers.push_back({std::string(name), std::string(value)});
    return true;
  }

  bool value(std::string_view name, const std::optional<std::string>& inline_value,
             std::string& out) {
    if (auto problem = tb::args::take_value(name, inline_value, args_, next_, out)) {
      return fail(std::move(*problem));
    }
    return true;
  }

  bool seconds(std::string_view name, const std::string& text, std::chrono::milliseconds min,
               std::chrono::milliseconds max, std::chrono::milliseconds& out) {
    auto parsed = parse_seconds(text);
    if (!parsed || *parsed < min || *parsed > max) {
      return fail(std::string(name) + " expects seconds from " + format_seconds(min) + " to " +
                  format_seconds(max) + " (at most 3 decimals, e.g. 0.5), got " + quoted(text));
    }
    out = *parsed;
    return true;
  }

  bool fail(std::string message) {
    error_ = UsageError{std::move(message)};
    return false;
  }

  std::span<const std::string> args_;
  std::size_t next_ = 0;
  Options options_;
  UsageError error_;
  bool json_set_ = false;
  bool path_set_ = false;
  bool connections_set_ = false;
  bool duration_set_ = false;
  bool warmup_set_ = false;
  bool timeout_set_ = false;
  bool token_client_set_ = false;
  bool resource_set_ = false;
};

}  // namespace

std::string describe(const Target& target) {
  if (const auto* unix_target = std::get_if<UnixTarget>(&target)) {
    return "unix:" + unix_target->path;
  }
  if (const auto* tcp = std::get_if<TcpTarget>(&target)) {
    const bool ipv6 = tcp->host.find(':') != std::string::npos;
    return "tcp:" + (ipv6 ? "[" + tcp->host + "]" : tcp->host) + ":" + tcp->port;
  }
  return "(no target)";
}

void throw_exception_from_error(const UsageError& error, const boost::source_location& location) {
  boost::throw_exception(std::invalid_argument(error.message), location);
}

ParseResult parse_args(std::span<const std::string> args) {
  // --help anywhere wins over every other mistake on the line.
  for (const auto& arg : args) {
    if (arg == "-h" || arg == "--help") {
      Options options;
      options.help = true;
      return options;
    }
  }
  return Parser(args).parse();
}

std::string_view help_text() { return kHelp; }

}  // namespace token_bench
