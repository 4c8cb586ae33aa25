#include "token_bench/run.hpp"

#include "token_bench/bench.hpp"
#include "token_bench/client_bench.hpp"
#include "token_bench/options.hpp"
#include "token_bench/stats.hpp"

#include <sys/resource.h>

#include <exception>
#include <optional>

namespace token_bench {
namespace {

// Besides the connections: stdio, epoll, the eventfd, the timer and signal descriptors.
constexpr rlim_t kSpareDescriptors = 32;

// Each connection is a file descriptor: raise the soft limit if it is too low, or say what to do.
std::optional<std::string> ensure_descriptors(std::size_t connections) {
  const rlim_t needed = static_cast<rlim_t>(connections) + kSpareDescriptors;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= needed) return std::nullopt;
  if (limit.rlim_max >= needed) {
    limit.rlim_cur = needed;
    if (setrlimit(RLIMIT_NOFILE, &limit) == 0) return std::nullopt;
  }
  return "--connections " + std::to_string(connections) + " needs about " + std::to_string(needed) +
         " open files, but the limit is " + std::to_string(limit.rlim_max) +
         ": use fewer connections or raise 'ulimit -n'";
}

}  // namespace

int run(std::span<const std::string> args, std::ostream& out, std::ostream& err,
        bool stop_on_signals) {
  auto parsed = parse_args(args);
  if (!parsed) {
    err << "token-bench: " << parsed.error().message << "\nTry 'token-bench --help'.\n";
    return 2;
  }
  const Options& options = *parsed;
  if (options.help) {
    out << help_text();
    return 0;
  }
  if (auto problem = ensure_descriptors(options.connections)) {
    err << "token-bench: " << *problem << "\n";
    return 2;
  }
  try {
    const RunControls controls{.stop_on_signals = stop_on_signals};
    auto report =
        options.token_client ? run_client_bench(options, controls) : run_bench(options, controls);
    if (!report) {
      err << "token-bench: " << report.error().message << "\n";
      return 1;
    }
    if (options.json) {
      out << format_json(*report);
    } else {
      out << format_text(
          *report, {.target = describe(options.target),
                    .path = options.path,
                    .warmup = options.warmup,
                    .client_call = options.token_client ? "get_token(" + options.resource + ")"
                                                        : std::string()});
    }
    out.flush();
    if (options.json && report->errors > 0) {
      err << "token-bench: " << report->errors << " errors, the first: " << report->first_error
          << "\n";
    }
    const int code = exit_code(*report);
    if (code != 0) {
      err << "token-bench: no request got a 200 (" << report->non_200 << " other statuses, "
          << report->errors << " errors)\n";
    }
    return code;
  } catch (const std::exception& error) {
    err << "token-bench: " << error.what() << "\n";
    return 1;
  }
}

}  // namespace token_bench
