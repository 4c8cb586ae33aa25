// todo-app: reads its settings and runs; everything else is in app_core.
#include "todo/config.hpp"
#include "todo/run.hpp"

#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  auto outcome =
      todo::parse_config(args, [](const std::string& name) -> std::optional<std::string> {
        if (const char* value = std::getenv(name.c_str())) return std::string(value);
        return std::nullopt;
      });
  if (outcome.help) {
    std::cout << todo::usage();
    return 0;
  }
  if (outcome.version) {
    std::cout << "todo-app " << TODO_APP_VERSION << "\n";
    return 0;
  }
  if (!outcome.config) {
    std::cerr << "todo-app: " << outcome.error << "\n";
    return 2;
  }
  tb::log::init(outcome.config->log_format, outcome.config->log_level);
  return todo::run(*outcome.config);
}
