#pragma once
// The closed-loop load generator: N keep-alive connections on one thread, each sending the
// pre-serialised request, reading the whole response, recording the latency and repeating.

#include "token_bench/options.hpp"
#include "token_bench/stats.hpp"

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <string>

namespace token_bench {

/// Why a run could not start (the target cannot be resolved or nothing accepts connections).
struct StartError {
  std::string message;
};

/// Lets `result<Report, StartError>::value()` throw (found by argument-dependent lookup).
[[noreturn]] void throw_exception_from_error(const StartError& error,
                                             const boost::source_location& location);

struct RunControls {
  /// Stop measuring at SIGINT/SIGTERM and report what was measured so far (the executable sets
  /// this; tests leave the process's signals alone).
  bool stop_on_signals = false;
};

/// Runs the bench described by validated `options` on the calling thread (its own io_context)
/// and returns what it measured. Blocks for warm-up + duration (or until `options.requests`
/// attempts were measured).
boost::system::result<Report, StartError> run_bench(const Options& options,
                                                    const RunControls& controls = {});

}  // namespace token_bench
