#pragma once
// Shared by the fuzz targets: a check that stops the run (libFuzzer reports a crash and saves the
// input) and a switch that silences the components' logs, which would otherwise flood the output.

#include <spdlog/spdlog.h>

#include <cstdio>

/// Fails the run when `cond` is false, after naming the broken invariant on stderr.
#define FUZZ_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      __builtin_trap();                                                                   \
    }                                                                                     \
  } while (false)

namespace fuzz {
inline void silence_logs() { spdlog::default_logger_raw()->set_level(spdlog::level::off); }
}  // namespace fuzz
