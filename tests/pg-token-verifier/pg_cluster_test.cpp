// test_support::PgCluster in trust mode: the cluster other repository tests build on.
#include "pg_cluster.hpp"
#include "process.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace {

using test_support::PgCluster;

TEST(PgCluster, TrustRoleCanCreateTablesInTodoAndStopRemovesTheServer) {
  test_support::TempDir tmp;
  const std::string dir = tmp.file("pg");
  {
    PgCluster cluster(dir, {.trust_roles = {"todo_repo"}});
    EXPECT_GT(cluster.port(), 0);
    EXPECT_EQ(cluster.odbc_connection_string("todo_repo"),
              "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=" +
                  std::to_string(cluster.port()) + ";Database=todo;Uid=todo_repo;");

    auto [code, out] = cluster.psql("SELECT current_database(), 40 + 2;");
    EXPECT_EQ(code, 0) << out;
    EXPECT_EQ(out, "todo|42\n");

    // The trust role logs in over TCP without a password and can create tables in `todo`.
    auto [tcp_code, tcp_out] = test_support::run_and_capture(
        "/usr/bin/psql", {"-X", "-A", "-t", "-h", "127.0.0.1", "-p", std::to_string(cluster.port()),
                          "-U", "todo_repo", "-d", "todo", "-w", "-q", "-c",
                          "CREATE TABLE items(id int); SELECT current_user;"});
    EXPECT_EQ(tcp_code, 0) << tcp_out;
    EXPECT_EQ(tcp_out, "todo_repo\n");
    auto [owner_code, owner_out] =
        cluster.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'items';");
    EXPECT_EQ(owner_out, "todo_repo\n");

    // Roles that are not listed are rejected.
    auto [other_code, other_out] = test_support::run_and_capture(
        "/usr/bin/psql", {"-X", "-h", "127.0.0.1", "-p", std::to_string(cluster.port()), "-U",
                          "postgres", "-d", "todo", "-w", "-c", "SELECT 1"});
    EXPECT_NE(other_code, 0);
    EXPECT_NE(other_out.find("no pg_hba.conf entry"), std::string::npos) << other_out;

    auto [bad_code, bad_out] = cluster.psql("SELECT * FROM no_such_table;");
    EXPECT_NE(bad_code, 0);
    EXPECT_NE(bad_out.find("no_such_table"), std::string::npos) << bad_out;
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/data/postmaster.pid"));
}

}  // namespace
