// pg-token-verifier --config FILE --user ROLE   (token on stdin)
//   exit 0: accepted, 1: refused, 2: bad usage or config (or the log cannot be written).
// pg-token-verifier --config FILE --check
//   validates the config, creates the log file if needed, prints its path; exit 0 or 2.
// Run by pam_token_broker.so for each PostgreSQL login; see README.md.
#include "pg_token_auth/verify.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace {

constexpr int kAccepted = 0;
constexpr int kRefused = 1;
constexpr int kBadConfig = 2;

// Appends one line with a single write(2), so that concurrent logins never interleave.
bool append_line(const std::string& path, std::string line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  line += '\n';
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  return ::close(fd) == 0 && ok;
}

// At most kMaxTokenSize + 1 bytes: enough to tell that a longer password is too long.
std::string read_token() {
  std::string token;
  char buffer[4096];
  while (token.size() <= pg_token_auth::kMaxTokenSize) {
    const ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    token.append(buffer, static_cast<std::size_t>(n));
  }
  if (token.size() > pg_token_auth::kMaxTokenSize) token.resize(pg_token_auth::kMaxTokenSize + 1);
  // A trailing newline from `echo TOKEN |` is not part of the token.
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  return token;
}

int usage(const char* error) {
  (void)std::fprintf(stderr,
                     "pg-token-verifier: %s\n"
                     "usage: pg-token-verifier --config FILE --user ROLE   (token on stdin)\n"
                     "       pg-token-verifier --config FILE --check\n",
                     error);
  return kBadConfig;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, user;
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--check") {
      check = true;
    } else if ((arg == "--config" || arg == "--user") && i + 1 < argc) {
      (arg == "--config" ? config_path : user) = argv[++i];
    } else {
      return usage("unknown or incomplete argument");
    }
  }
  if (config_path.empty() || (user.empty() && !check))
    return usage("--config and --user are required");

  const auto loaded = pg_token_auth::load_config(config_path);
  if (!loaded.config) {
    (void)std::fprintf(stderr, "pg-token-verifier: %s\n", loaded.error.c_str());
    return kBadConfig;
  }
  const auto& config = *loaded.config;
  if (check) {
    const int fd = ::open(config.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
      (void)std::fprintf(stderr, "pg-token-verifier: cannot open log %s: %s\n",
                         config.log_path.c_str(), std::strerror(errno));
      return kBadConfig;
    }
    ::close(fd);
    std::printf("%s\n", config.log_path.c_str());
    return 0;
  }

  const std::string token = read_token();
  const auto now = std::chrono::system_clock::now();
  const auto verdict = pg_token_auth::verify(token, user, config, now);
  if (!append_line(config.log_path, pg_token_auth::log_line(verdict, user, now))) {
    (void)std::fprintf(stderr, "pg-token-verifier: cannot write log %s: %s; refusing the login\n",
                       config.log_path.c_str(), std::strerror(errno));
    return kBadConfig;
  }
  return verdict.accepted ? kAccepted : kRefused;
}
