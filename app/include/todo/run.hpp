#pragma once
// Wires the whole app from its settings: logger, token client, ODBC store, web server, signals.

#include "todo/config.hpp"

namespace todo {

/// Runs until SIGINT/SIGTERM. Returns the process exit code: 0 after a clean stop, 2 for
/// settings that cannot work (the reason is logged), 1 when the port cannot be opened.
int run(const AppConfig& config);

}  // namespace todo
