#include "tokenctl/run.hpp"

#include "tokenctl/broker.hpp"
#include "tokenctl/cli.hpp"

#include <exception>

namespace tokenctl {

int run(std::span<const std::string> args, std::optional<std::string_view> socket_env,
        const Transport& transport, std::ostream& out, std::ostream& err) {
  auto parsed = parse_args(args, socket_env);
  if (!parsed) {
    const UsageError& usage = parsed.error();
    const char* topic = usage.command == Command::get      ? "tokenctl get --help"
                        : usage.command == Command::health ? "tokenctl health --help"
                                                           : "tokenctl --help";
    err << "tokenctl: " << usage.message << "\n(see '" << topic << "')\n";
    return kExitUsage;
  }
  const Options& options = *parsed;
  if (options.help) {
    out << help_text(options.command);
    out.flush();
    return out ? kExitOk : kExitError;
  }

  Outcome outcome;
  try {
    outcome = interpret(options,
                        transport(options.socket, build_request(options), build_limits(options)));
  } catch (const std::exception& e) {
    // The client reports I/O failures as error codes; this only catches the unexpected
    // (allocation failure, an endpoint the OS rejects).
    outcome = {kExitError, "",
               "tokenctl: request to " + options.socket + " failed: " + e.what() + "\n"};
  }
  out << outcome.out;
  out.flush();
  err << outcome.err;
  if (!out) {
    // e.g. stdout is a full disk or a closed pipe: a script must not take silence for a token.
    err << "tokenctl: cannot write to standard output\n";
    return kExitError;
  }
  return outcome.exit_code;
}

}  // namespace tokenctl
