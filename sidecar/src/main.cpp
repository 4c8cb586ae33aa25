// token-broker: read the configuration, wire the broker, run it.
#include "broker/broker.hpp"
#include "broker/config.hpp"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <stdexcept>

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  auto outcome =
      broker::parse_config(args, [](const std::string& name) -> std::optional<std::string> {
        const char* value = std::getenv(name.c_str());
        return value != nullptr ? std::optional<std::string>(value) : std::nullopt;
      });
  if (outcome.help) {
    std::cout << broker::usage();
    return 0;
  }
  if (outcome.version) {
    std::cout << "token-broker " << TOKEN_BROKER_VERSION << "\n";
    return 0;
  }
  if (!outcome.config) {
    std::cerr << "token-broker: " << outcome.error << "\n";
    return 2;
  }
  tb::log::init(outcome.config->log_format, outcome.config->log_level);
  try {
    broker::Broker broker(std::move(*outcome.config));
    return broker.run();
  } catch (const std::runtime_error& e) {  // StartupError, tb::http::ListenError: bad settings
    std::cerr << "token-broker: " << e.what() << "\n";
    return 2;
  }
}
