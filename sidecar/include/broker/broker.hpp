#pragma once
// The one place that wires every component from its Config (source, cache, listeners, signals).

#include "broker/config.hpp"

#include <memory>

namespace broker {

/// Raised during start-up when the broker cannot run as configured (e.g. the socket is in use).
struct StartupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Broker {
 public:
  /// Binds every listener and starts prefetching; throws StartupError with a clear message.
  explicit Broker(Config config);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  /// Serves until SIGTERM/SIGINT, then drains and removes the socket. Returns the exit code.
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace broker
