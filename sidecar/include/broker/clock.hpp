#pragma once
// Time and randomness are injected so that refresh and retry decisions can be tested with a fake
// clock and a fixed jitter source.

#include <chrono>
#include <functional>
#include <random>

namespace broker {

using SteadyTime = std::chrono::steady_clock::time_point;
using SystemTime = std::chrono::system_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime steady_now() const = 0;
  virtual SystemTime system_now() const = 0;
};

class RealClock final : public Clock {
 public:
  SteadyTime steady_now() const override { return std::chrono::steady_clock::now(); }
  SystemTime system_now() const override { return std::chrono::system_clock::now(); }
};

/// Returns a uniformly distributed number in [0, 1).
using Jitter = std::function<double()>;

inline Jitter random_jitter() {
  return [engine = std::mt19937_64{std::random_device{}()}]() mutable {
    return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
  };
}

}  // namespace broker
