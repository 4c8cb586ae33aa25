#pragma once
// One token-bench invocation: parse, run, print, and return the exit code.

#include <ostream>
#include <span>
#include <string>

namespace token_bench {

/// Runs `token-bench args…` (the arguments after the program name). Returns 0 when at least one
/// request got a 200, 1 when every request failed or the target was unreachable, 2 on a usage
/// error.
int run(std::span<const std::string> args, std::ostream& out, std::ostream& err,
        bool stop_on_signals = true);

}  // namespace token_bench
