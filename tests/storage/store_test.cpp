// The ODBC store against real databases: SQLite (a temp file) and PostgreSQL (a private cluster
// with a trust role). One test body, parameterised by backend.
#include "todo/odbc_store.hpp"

#include "pg_cluster.hpp"
#include "process.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>
#include <sql.h>
#include <sqlext.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <regex>
#include <set>
#include <thread>

namespace todo {
namespace {

using namespace std::chrono_literals;

// Runs a one-integer query on a connection of its own (raw ODBC, independent of the store).
std::optional<long> query_int(const std::string& connection_string, const std::string& sql) {
  SQLHENV env = SQL_NULL_HENV;
  SQLHDBC dbc = SQL_NULL_HDBC;
  SQLHSTMT stmt = SQL_NULL_HSTMT;
  std::optional<long> out;
  SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &env);
  SQLSetEnvAttr(env, SQL_ATTR_ODBC_VERSION, reinterpret_cast<SQLPOINTER>(SQL_OV_ODBC3), 0);
  SQLAllocHandle(SQL_HANDLE_DBC, env, &dbc);
  std::string cs = connection_string;
  std::string q = sql;
  if (SQL_SUCCEEDED(SQLDriverConnect(dbc, nullptr, reinterpret_cast<SQLCHAR*>(cs.data()), SQL_NTS,
                                     nullptr, 0, nullptr, SQL_DRIVER_NOPROMPT))) {
    SQLAllocHandle(SQL_HANDLE_STMT, dbc, &stmt);
    SQLINTEGER value = 0;
    SQLLEN ind = 0;
    if (SQL_SUCCEEDED(SQLExecDirect(stmt, reinterpret_cast<SQLCHAR*>(q.data()), SQL_NTS)) &&
        SQL_SUCCEEDED(SQLFetch(stmt)) &&
        SQL_SUCCEEDED(SQLGetData(stmt, 1, SQL_C_SLONG, &value, 0, &ind))) {
      out = value;
    }
    SQLFreeHandle(SQL_HANDLE_STMT, stmt);
    SQLDisconnect(dbc);
  }
  SQLFreeHandle(SQL_HANDLE_DBC, dbc);
  SQLFreeHandle(SQL_HANDLE_ENV, env);
  return out;
}

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string connection_string() = 0;
  /// Drops whatever an earlier test left.
  virtual void reset() = 0;
};

class SqliteBackend final : public Backend {
 public:
  std::string connection_string() override {
    return "Driver=SQLite3;Database=" + dir_->file("todo.db") + ";";
  }
  void reset() override { dir_ = std::make_unique<test_support::TempDir>(); }

 private:
  std::unique_ptr<test_support::TempDir> dir_ = std::make_unique<test_support::TempDir>();
};

// One cluster for the whole suite: starting PostgreSQL takes seconds.
class PgBackend final : public Backend {
 public:
  static PgBackend& instance() {
    static PgBackend backend;
    return backend;
  }
  std::string connection_string() override { return cluster_->odbc_connection_string("app"); }
  void reset() override {
    const auto [code, output] = cluster_->psql("DROP TABLE IF EXISTS todos, schema_version");
    ASSERT_EQ(code, 0) << output;
  }
  test_support::PgCluster& cluster() { return *cluster_; }
  const std::string& dir() const { return dir_->path(); }

 private:
  PgBackend()
      : dir_(std::make_unique<test_support::TempDir>()),
        cluster_(std::make_unique<test_support::PgCluster>(
            dir_->file("pg"), test_support::PgCluster::Options{.trust_roles = {"app"}})) {}
  std::unique_ptr<test_support::TempDir> dir_;
  std::unique_ptr<test_support::PgCluster> cluster_;
};

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      sqlite_ = std::make_unique<SqliteBackend>();
      backend_ = sqlite_.get();
    } else {
      backend_ = &PgBackend::instance();
    }
    backend_->reset();
  }

  std::unique_ptr<TodoStore> make_store(std::size_t pool_size = 4) {
    StorageConfig config;
    config.connection_string = backend_->connection_string();
    config.auth = Auth::none;
    config.pool_size = pool_size;
    return make_odbc_store(config, TokenSource());
  }

  Backend* backend_ = nullptr;
  std::unique_ptr<SqliteBackend> sqlite_;
};

TEST_P(StoreTest, CreateGetListUpdateRemoveRoundTrip) {
  auto store = make_store();
  auto empty = store->list();
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_TRUE(empty->empty());

  auto first = store->create({"buy milk", false});
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_GT(first->id, 0);
  EXPECT_EQ(first->description, "buy milk");
  EXPECT_FALSE(first->done);
  EXPECT_TRUE(
      std::regex_match(first->created_date, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
      << first->created_date;
  auto second = store->create({"walk the dog", true});
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_GT(second->id, first->id);
  EXPECT_TRUE(second->done);

  auto got = store->get(first->id);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->description, "buy milk");
  EXPECT_EQ(got->created_date, first->created_date);

  auto all = store->list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, first->id);
  EXPECT_EQ((*all)[1].id, second->id);

  auto renamed = store->update(first->id, {std::string("buy oat milk"), std::nullopt});
  ASSERT_TRUE(renamed) << renamed.error().message;
  EXPECT_EQ(renamed->description, "buy oat milk");
  EXPECT_FALSE(renamed->done);
  auto done = store->update(first->id, {std::nullopt, true});
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_TRUE(done->done);
  EXPECT_EQ(done->description, "buy oat milk");
  auto both = store->update(first->id, {std::string("buy milk"), false});
  ASSERT_TRUE(both) << both.error().message;
  EXPECT_EQ(both->description, "buy milk");
  EXPECT_FALSE(both->done);
  auto nothing = store->update(first->id, {});
  ASSERT_TRUE(nothing);
  EXPECT_EQ(nothing->description, "buy milk");

  ASSERT_TRUE(store->remove(first->id));
  EXPECT_EQ(store->get(first->id).error().code, StoreErrc::not_found);
  EXPECT_EQ(store->remove(first->id).error().code, StoreErrc::not_found);
  EXPECT_EQ(store->update(first->id, {std::nullopt, true}).error().code, StoreErrc::not_found);
  EXPECT_EQ(store->update(first->id, {}).error().code, StoreErrc::not_found);
  ASSERT_EQ(store->list()->size(), 1u);
  EXPECT_TRUE(store->ping());
}

TEST_P(StoreTest, UnicodeRoundTripsExactly) {
  auto store = make_store();
  const std::vector<std::string> texts = {
      "café crème, naïve façade, Ångström, ß",
      "日本語のテキスト 中文 한국어",
      "🎉 party 👍🏽 thumbs 👨‍👩‍👧 family 𝄞 clef",
      "quotes ' \" ; -- /* */ ? {braces} \\ backslash",
  };
  for (const auto& text : texts) {
    auto created = store->create({text, false});
    ASSERT_TRUE(created) << created.error().message;
    EXPECT_EQ(created->description, text);
    auto got = store->get(created->id);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->description, text);
    auto changed = store->update(created->id, {text + " ✓", std::nullopt});
    ASSERT_TRUE(changed);
    EXPECT_EQ(changed->description, text + " ✓");
  }
}

TEST_P(StoreTest, InvalidUtf8IsRefusedNotStored) {
  auto store = make_store();
  auto created = store->create({"bad \xC3\x28 text", false});
  ASSERT_FALSE(created);
  EXPECT_EQ(created.error().code, StoreErrc::internal);
  EXPECT_TRUE(store->list()->empty());
}

TEST_P(StoreTest, FourThousandCharacterDescriptionRoundTrips) {
  auto store = make_store();
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "a";
  for (int i = 0; i < 1000; ++i) text += "é";
  for (int i = 0; i < 1000; ++i) text += "日";
  for (int i = 0; i < 1000; ++i) text += "🎉";  // 4,000 characters, 10,000 bytes
  auto created = store->create({text, false});
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(created->description, text);
  auto all = store->list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ(all->front().description, text);
  // Stored as 4,000 characters, not as mis-decoded bytes that only round-trip through us.
  EXPECT_EQ(query_int(backend_->connection_string(), "SELECT MAX(LENGTH(description)) FROM todos"),
            4000);
}

TEST_P(StoreTest, ConcurrentCallersFromSeveralThreads) {
  auto store = make_store(3);
  constexpr int kThreads = 6;
  constexpr int kPerThread = 20;
  std::vector<std::thread> threads;
  std::mutex mutex;
  std::set<std::int64_t> ids;
  std::vector<std::string> errors;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string text = "thread " + std::to_string(t) + " item " + std::to_string(i);
        auto created = store->create({text, i % 2 == 0});
        if (!created) {
          std::lock_guard lock(mutex);
          errors.push_back(created.error().message);
          continue;
        }
        auto got = store->get(created->id);
        auto listed = store->list();
        std::lock_guard lock(mutex);
        if (!got || got->description != text) errors.push_back("get mismatch for " + text);
        if (!listed) errors.push_back(listed.error().message);
        ids.insert(created->id);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_EQ(store->list()->size(), static_cast<std::size_t>(kThreads * kPerThread));
}

TEST_P(StoreTest, SchemaIsCreatedOnceAndDataSurvivesANewStore) {
  std::int64_t id = 0;
  {
    auto store = make_store();
    auto created = store->create({"persisted ✓", true});
    ASSERT_TRUE(created) << created.error().message;
    id = created->id;
  }
  auto again = make_store();
  auto got = again->get(id);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->description, "persisted ✓");
  EXPECT_TRUE(got->done);
  const auto cs = backend_->connection_string();
  EXPECT_EQ(query_int(cs, "SELECT COUNT(*) FROM schema_version"), 1);
  EXPECT_EQ(query_int(cs, "SELECT MAX(version) FROM schema_version"), 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param_info) { return param_info.param; });

TEST(SqliteStore, ConstructsWhileTheDatabaseCannotBeOpenedAndReportsOnUse) {
  StorageConfig config;
  config.connection_string = "Driver=SQLite3;Database=/nonexistent-dir/x/todo.db;";
  auto store = make_odbc_store(config, TokenSource());
  auto result = store->list();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, StoreErrc::unavailable);
  EXPECT_NE(result.error().message.find("cannot connect to the database"), std::string::npos);
  std::cout << "error shown: " << result.error().message << "\n";
}

// PostgreSQL goes away under a running store, then comes back.
TEST(PgStore, StoppedClusterIsUnavailableAndARestartRecovers) {
  auto& backend = PgBackend::instance();
  backend.reset();
  StorageConfig config;
  config.connection_string = backend.connection_string();
  config.pool_size = 2;
  auto store = make_odbc_store(config, TokenSource());
  auto created = store->create({"before the outage", false});
  ASSERT_TRUE(created) << created.error().message;

  const auto script = test_support::PgCluster::script();
  const auto pg_dir = backend.dir() + "/pg";
  auto [stop_code, stop_output] = test_support::run_and_capture(script, {"stop", pg_dir});
  ASSERT_EQ(stop_code, 0) << stop_output;

  const auto down = store->list();
  ASSERT_FALSE(down);
  std::cout << "error shown: " << down.error().message << "\n";
  EXPECT_EQ(down.error().code, StoreErrc::unavailable) << down.error().message;
  EXPECT_EQ(down.error().message.find("Pwd"), std::string::npos);
  const auto ping = store->ping();
  ASSERT_FALSE(ping);
  EXPECT_NE(ping.error().message.find("cannot reach the database"), std::string::npos)
      << ping.error().message;

  auto [start_code, start_output] = test_support::run_and_capture(
      script,
      {"start", pg_dir, "--port", std::to_string(backend.cluster().port()), "--trust-role", "app"});
  ASSERT_EQ(start_code, 0) << start_output;
  auto after = store->list();
  ASSERT_TRUE(after) << after.error().message;
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ(after->front().description, "before the outage");
}

// Password mode: one token per physical connection, appended as a brace-quoted PWD (the trust
// role ignores it, so a token with '}' and ';' shows the quoting keeps the string intact).
TEST(PgStore, PasswordModeTakesOneTokenPerConnection) {
  auto& backend = PgBackend::instance();
  backend.reset();
  std::atomic<int> issued{0};
  StorageConfig config;
  config.connection_string = backend.connection_string();
  config.auth = Auth::password;
  auto store = make_odbc_store(config, [&](const DbToken*) -> StoreResult<DbToken> {
    ++issued;
    return DbToken{"eyJ.tok}en;Uid=x", std::chrono::system_clock::now() + 1h};
  });
  ASSERT_TRUE(store->create({"with a token", false}));
  ASSERT_TRUE(store->list());
  EXPECT_EQ(issued.load(), 1);
}

TEST(PgStore, TokenSourceFailureIsUnavailableWithItsMessage) {
  auto& backend = PgBackend::instance();
  StorageConfig config;
  config.connection_string = backend.connection_string();
  config.auth = Auth::password;
  auto store = make_odbc_store(config, [](const DbToken*) -> StoreResult<DbToken> {
    return StoreError{StoreErrc::unavailable, "token-broker: no token yet"};
  });
  auto result = store->ping();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, StoreErrc::unavailable);
  EXPECT_EQ(result.error().message, "token-broker: no token yet");
}

TEST(PgStore, UnknownRoleIsALoginFailure) {
  auto& backend = PgBackend::instance();
  StorageConfig config;
  config.connection_string = backend.cluster().odbc_connection_string("nobody");
  auto store = make_odbc_store(config, TokenSource());
  auto result = store->ping();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, StoreErrc::login_failed) << result.error().message;
  EXPECT_NE(result.error().message.find("role nobody"), std::string::npos);
  std::cout << "error shown: " << result.error().message << "\n";
}

}  // namespace
}  // namespace todo
