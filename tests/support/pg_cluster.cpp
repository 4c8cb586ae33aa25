#include "pg_cluster.hpp"

#include "process.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#ifndef TB_SOURCE_DIR
#error "TB_SOURCE_DIR must name the repository root (set in tests/support/CMakeLists.txt)"
#endif

namespace test_support {
namespace {

// A port nobody listens on right now; the script retries on the rare race with another process.
int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  if (port == 0) throw std::runtime_error("could not find a free loopback port");
  return port;
}

}  // namespace

std::string PgCluster::script() { return std::string(TB_SOURCE_DIR) + "/scripts/pg-cluster"; }

PgCluster::PgCluster(const std::string& dir, Options options)
    : dir_(std::filesystem::absolute(dir).lexically_normal().string()) {
  // The server runs as `postgres`: it must be able to pass through the test's (0700) temp dir.
  const auto parent = std::filesystem::path(dir_).parent_path();
  struct stat st {};
  if (::stat(parent.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0) {
    ::chmod(parent.c_str(), (st.st_mode & 07777) | S_IXOTH);
  }

  std::vector<std::string> args = {"start", dir_, "--port", ""};
  for (const auto& role : options.trust_roles) args.insert(args.end(), {"--trust-role", role});
  for (const auto& role : options.pam_roles) args.insert(args.end(), {"--pam-role", role});
  if (!options.verifier_config.empty()) {
    args.insert(args.end(), {"--verifier-config", options.verifier_config});
  }
  if (!options.pam_module.empty()) args.insert(args.end(), {"--pam-module", options.pam_module});
  if (!options.verifier.empty()) args.insert(args.end(), {"--verifier", options.verifier});

  std::string output;
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = free_loopback_port();
    args[3] = std::to_string(port_);
    auto [code, out] = run_and_capture(script(), args, {}, std::chrono::seconds(120));
    if (code == 0) return;
    output = std::move(out);
    // Only a lost race for the port is worth another try.
    if (output.find("did not start") == std::string::npos) break;
  }
  run_and_capture(script(), {"stop", dir_});
  throw std::runtime_error("scripts/pg-cluster start failed:\n" + output);
}

PgCluster::~PgCluster() { run_and_capture(script(), {"stop", dir_}); }

std::string PgCluster::odbc_connection_string(const std::string& role,
                                              const std::string& password) const {
  std::string text = "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=" + std::to_string(port_) +
                     ";Database=todo;Uid=" + role + ";";
  if (!password.empty()) text += "Pwd={" + password + "};";
  return text;
}

std::pair<int, std::string> PgCluster::psql(const std::string& sql) const {
  // Through a file in the cluster dir: `postgres` can read it, and any SQL (several statements,
  // psql meta-commands) works the same.
  static std::atomic<int> counter{0};
  const std::string file = dir_ + "/query-" + std::to_string(++counter) + ".sql";
  {
    std::ofstream out(file, std::ios::trunc);
    out << sql << '\n';
  }
  ::chmod(file.c_str(), 0644);
  auto result =
      run_and_capture(script(), {"psql", dir_, "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", file});
  std::filesystem::remove(file);
  return result;
}

}  // namespace test_support
