#pragma once
// A private PostgreSQL 15 cluster for tests, run by scripts/pg-cluster: started on a free
// loopback port in a directory the test owns, stopped (and its PAM service removed) by the
// destructor. Needs root (as the tests and CI run); see scripts/pg-cluster for the layout.

#include <string>
#include <utility>
#include <vector>

namespace test_support {

class PgCluster {
 public:
  struct Options {
    /// Roles that log into database `todo` over 127.0.0.1 without a password.
    std::vector<std::string> trust_roles;
    /// Roles that log in with a token checked by pam_token_broker.so + pg-token-verifier.
    std::vector<std::string> pam_roles;
    /// pg-token-verifier config (required with pam_roles), see tools/pg-token-auth/README.md.
    std::string verifier_config;
    /// Built module and verifier; "" = the script's defaults (build/dev/tools/pg-token-auth).
    std::string pam_module;
    std::string verifier;
  };

  /// Starts the cluster in `dir` (created when absent; its parent gets o+x so that the
  /// `postgres` user can reach it). Throws std::runtime_error with the script's output on failure.
  PgCluster(const std::string& dir, Options options);
  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  std::string server_log() const { return dir_ + "/server.log"; }

  /// "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=P;Database=todo;Uid=ROLE;" plus
  /// "Pwd={PASSWORD};" when `password` is not empty.
  std::string odbc_connection_string(const std::string& role,
                                     const std::string& password = "") const;

  /// Runs `sql` as the superuser in database `todo` (psql -X -A -t, ON_ERROR_STOP): returns
  /// {exit code, stdout+stderr}, e.g. {0, "1\n"} for "SELECT 1".
  std::pair<int, std::string> psql(const std::string& sql) const;

  /// Path of scripts/pg-cluster.
  static std::string script();

 private:
  std::string dir_;
  int port_ = 0;
};

}  // namespace test_support
