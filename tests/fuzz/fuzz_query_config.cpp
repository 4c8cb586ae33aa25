// Query strings and settings. The input is lines: the first is the query string of a token
// request, sent to each of the broker's three token routes; the rest are the settings, where
// a line NAME=VALUE with NAME in [A-Z0-9_] is an environment variable and any other line is one
// command-line argument. The settings go to both token-broker's and todo-app's parsers.
//
// Invariants: a token request is either a query within the documented bounds or a 4xx with a
// description; a settings parse ends in exactly one of config / error / --help / --version, an
// error is one non-empty line, and a drop-in listener is only ever on a loopback address.

#include "broker/api.hpp"
#include "broker/config.hpp"
#include "fuzz_check.hpp"
#include "todo/config.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace http = boost::beast::http;

constexpr std::string_view kIdentityHeader = "fuzz-identity-header-0123456789abcdef";

void check_query(std::string_view route, std::string_view query) {
  static const broker::ApiOptions options{broker::Identity{}, 60s, 10'000ms,
                                          std::string(kIdentityHeader)};
  std::string target(route);
  target += '?';
  target += query;
  broker::Request request{http::verb::get, target, 11};
  request.set("Metadata", "true");
  request.set(broker::kIdentityHeader, kIdentityHeader);
  const auto outcome = broker::parse_token_request(request, options);
  if (const auto* error = std::get_if<broker::HttpError>(&outcome)) {
    FUZZ_CHECK(error->status >= 400 && error->status <= 499);
    FUZZ_CHECK(!error->error.empty() && !error->description.empty());
    return;
  }
  const auto& parsed = std::get<broker::TokenQuery>(outcome);
  FUZZ_CHECK(!parsed.key.resource.empty() && parsed.key.resource.size() <= 1024);
  FUZZ_CHECK(parsed.wait >= 1ms && parsed.wait <= options.max_wait);
  FUZZ_CHECK(parsed.min_validity >= options.min_validity && parsed.min_validity <= 86'400s);
  if (parsed.key.identity.kind != broker::Identity::Kind::none) {
    FUZZ_CHECK(!parsed.key.identity.value.empty());
  }
}

bool is_env_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

template <class Outcome>
void check_outcome(const Outcome& outcome) {
  const int ends = (outcome.config ? 1 : 0) + (outcome.error.empty() ? 0 : 1) +
                   (outcome.help ? 1 : 0) + (outcome.version ? 1 : 0);
  FUZZ_CHECK(ends == 1);
  FUZZ_CHECK(outcome.error.find('\n') == std::string::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool silenced = (fuzz::silence_logs(), true);
  (void)silenced;
  std::string_view input(reinterpret_cast<const char*>(data), size);

  auto next_line = [&input]() {
    const auto end = input.find('\n');
    const auto line = input.substr(0, end);
    input = end == std::string_view::npos ? std::string_view{} : input.substr(end + 1);
    return line;
  };
  const auto query = next_line();
  check_query(broker::kTokenRoute, query);
  check_query(broker::kImdsRoute, query);
  check_query(broker::kAppServiceRoute, query);

  std::vector<std::string> args;
  std::map<std::string, std::string, std::less<>> env;
  while (!input.empty()) {
    const auto line = next_line();
    const auto equals = line.find('=');
    if (equals != std::string_view::npos && is_env_name(line.substr(0, equals))) {
      env.emplace(std::string(line.substr(0, equals)), std::string(line.substr(equals + 1)));
    } else {
      args.emplace_back(line);
    }
  }
  const tb::flags::Getenv getenv = [&env](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };

  const auto broker_outcome = broker::parse_config(args, getenv);
  check_outcome(broker_outcome);
  if (const auto& config = broker_outcome.config) {
    if (config->imds_listen_enabled) {
      FUZZ_CHECK(broker::is_loopback_address(config->imds_listen_host));
    }
    FUZZ_CHECK(!config->socket_path.empty());
    FUZZ_CHECK(config->retry.cap >= config->retry.base);
  }
  check_outcome(todo::parse_config(args, getenv));
  return 0;
}
