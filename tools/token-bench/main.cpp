// token-bench: closed-loop load generator for token-broker. Everything but wiring is in
// token_bench_core.
#include "token_bench/run.hpp"

#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  return token_bench::run(args, std::cout, std::cerr);
}
