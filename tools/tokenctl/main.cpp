// tokenctl: command-line client of token-broker. Everything but wiring lives in tokenctl_core.
#include "tokenctl/run.hpp"

#include <tb/http_client.hpp>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  std::optional<std::string_view> socket_env;
  if (const char* value = std::getenv("TOKEN_BROKER_SOCKET")) socket_env = value;
  return tokenctl::run(args, socket_env, &tb::http::request_unix, std::cout, std::cerr);
}
