#pragma once
// Child processes for integration tests: started with fork/exec, output captured to a file,
// always stopped by the test (the destructor kills what is still running). Every output file is
// checked for secrets and tokens when the test ends (leak_check.hpp), except the output of a
// command asked to print a token (`--show-token`).

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace test_support {

class Process {
 public:
  struct Options {
    std::vector<std::pair<std::string, std::string>> env;  ///< added to the parent's environment
    std::string output;        ///< file for stdout and stderr ("" = /dev/null)
    std::optional<uid_t> uid;  ///< run as this uid, gid = uid, no supplementary groups (root only)
  };

  Process(const std::string& program, const std::vector<std::string>& args, Options options);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int signo);
  /// Waits for exit; returns the exit code (128+signal when killed), nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  /// SIGTERM, then SIGKILL after `grace`.
  std::optional<int> stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  int watch_ = 0;  ///< leak_check handle of the output file (0: not watched)
};

/// Runs `program` to completion; returns {exit code, combined output}.
std::pair<int, std::string> run_and_capture(
    const std::string& program, const std::vector<std::string>& args, Process::Options options = {},
    std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// Polls `condition` every 10 ms until it is true or `timeout` passes.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

std::string read_file(const std::string& path);

}  // namespace test_support
