// The pool and the retry policy with a fake clock, a fake token source and fake connections:
// retirement by token expiry and lifetime, broken/expired connections, bounded size.
#include "todo/connection_pool.hpp"

#include "tb/crypto.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace todo::odbc {
namespace {

using namespace std::chrono_literals;
using time_point = std::chrono::system_clock::time_point;

class FakeClock final : public Clock {
 public:
  time_point now() const override {
    std::lock_guard lock(mutex_);
    return now_;
  }
  void advance(std::chrono::system_clock::duration d) {
    std::lock_guard lock(mutex_);
    now_ += d;
  }

 private:
  mutable std::mutex mutex_;
  time_point now_ = time_point(std::chrono::hours(24 * 365 * 50));
};

// Everything the fakes share, so tests can script failures and count what happened.
struct World {
  std::mutex mutex;
  std::map<std::int64_t, Todo> rows;
  std::int64_t next_id = 1;
  int opened = 0;
  int closed = 0;
  int tokens_issued = 0;
  std::vector<std::string> tokens_seen;    // token each connection was opened with
  std::vector<std::string> rejected_seen;  // tokens the pool asked to replace (forced refresh)
  std::vector<FailureKind> next_failures;  // consumed by the next operations, in order
  std::atomic<int> in_use{0};
  std::atomic<int> max_in_use{0};
};

class FakeConnection final : public Connection {
 public:
  explicit FakeConnection(World& world) : world_(world) {}
  ~FakeConnection() override {
    std::lock_guard lock(world_.mutex);
    ++world_.closed;
  }
  DbResult<std::vector<Todo>> list() override {
    return op<std::vector<Todo>>([&] {
      std::vector<Todo> out;
      for (const auto& [id, row] : world_.rows) out.push_back(row);
      return out;
    });
  }
  DbResult<std::optional<Todo>> get(std::int64_t id) override {
    return op<std::optional<Todo>>([&]() -> std::optional<Todo> {
      auto it = world_.rows.find(id);
      if (it == world_.rows.end()) return std::nullopt;
      return it->second;
    });
  }
  DbResult<std::int64_t> insert(const NewTodo& item) override {
    return op<std::int64_t>([&] {
      const auto id = world_.next_id++;
      world_.rows[id] = Todo{id, item.description, "2024-01-01T00:00:00Z", item.done};
      return id;
    });
  }
  DbResult<bool> update(std::int64_t id, const TodoPatch& patch) override {
    return op<bool>([&] {
      auto it = world_.rows.find(id);
      if (it == world_.rows.end()) return false;
      if (patch.description) it->second.description = *patch.description;
      if (patch.done) it->second.done = *patch.done;
      return true;
    });
  }
  DbResult<bool> remove(std::int64_t id) override {
    return op<bool>([&] { return world_.rows.erase(id) > 0; });
  }
  DbResult<void> ping() override {
    auto r = op<int>([] { return 1; });
    if (!r) return r.error();
    return {};
  }

 private:
  template <class T, class F>
  DbResult<T> op(F f) {
    const int now_in_use = ++world_.in_use;
    int seen = world_.max_in_use.load();
    while (now_in_use > seen && !world_.max_in_use.compare_exchange_weak(seen, now_in_use)) {
    }
    std::this_thread::yield();
    std::lock_guard lock(world_.mutex);
    --world_.in_use;
    if (!world_.next_failures.empty()) {
      const FailureKind kind = world_.next_failures.front();
      world_.next_failures.erase(world_.next_failures.begin());
      const StoreErrc code = kind == FailureKind::login   ? StoreErrc::login_failed
                             : kind == FailureKind::other ? StoreErrc::internal
                                                          : StoreErrc::unavailable;
      return DbError{kind, {code, "scripted failure"}};
    }
    return f();
  }
  World& world_;
};

class PoolTest : public ::testing::Test {
 protected:
  std::shared_ptr<ConnectionPool> make_pool(bool with_tokens = true) {
    ConnectionPool::Options options;
    options.max_size = max_size;
    options.max_lifetime = max_lifetime;
    options.token_margin = 5min;
    options.acquire_timeout = acquire_timeout;
    options.dialect_name = "fake";
    TokenSource tokens;
    if (with_tokens) {
      tokens = [this](const DbToken* rejected) -> StoreResult<DbToken> {
        std::lock_guard lock(world.mutex);
        if (rejected != nullptr) {
          world.rejected_seen.push_back(rejected->value);
          if (refresh_failure) return *refresh_failure;
        }
        if (token_failure) return *token_failure;
        ++world.tokens_issued;
        return DbToken{"token-" + std::to_string(world.tokens_issued),
                       clock->now() + token_lifetime};
      };
    }
    return std::make_shared<ConnectionPool>(
        options,
        [this](const DbToken* token) -> DbResult<std::unique_ptr<Connection>> {
          std::lock_guard lock(world.mutex);
          if (connect_failure) return *connect_failure;
          if (token != nullptr && refused_tokens.contains(token->value)) {
            return DbError{FailureKind::login,
                           {StoreErrc::login_failed, "password authentication failed"}};
          }
          ++world.opened;
          world.tokens_seen.push_back(token ? token->value : "");
          if (replace_during_login) std::exchange(replace_during_login, nullptr)();
          return std::unique_ptr<Connection>(std::make_unique<FakeConnection>(world));
        },
        tokens, clock);
  }

  std::unique_ptr<TodoStore> make_store(std::shared_ptr<ConnectionPool> pool) {
    RetryOptions retry;
    retry.sleep = [this](std::chrono::milliseconds pause) { sleeps.push_back(pause); };
    return make_pooled_store(std::move(pool), retry);
  }

  World world;
  std::shared_ptr<FakeClock> clock = std::make_shared<FakeClock>();
  std::size_t max_size = 2;
  std::chrono::seconds max_lifetime = 30min;
  std::chrono::milliseconds acquire_timeout{2000};
  std::chrono::system_clock::duration token_lifetime = 60min;
  std::optional<StoreError> token_failure;
  std::optional<DbError> connect_failure;
  std::set<std::string> refused_tokens;  // the database refuses logins with these
  std::optional<StoreError> refresh_failure;
  std::function<void()> replace_during_login;  // called once, inside the next login
  std::vector<std::chrono::milliseconds> sleeps;
};

TEST_F(PoolTest, ReusesAnIdleConnectionWithoutANewToken) {
  auto pool = make_pool();
  auto store = make_store(pool);
  ASSERT_TRUE(store->ping());
  ASSERT_TRUE(store->ping());
  ASSERT_TRUE(store->list());
  EXPECT_EQ(world.opened, 1);
  EXPECT_EQ(world.tokens_issued, 1);
  EXPECT_EQ(pool->open_count(), 1u);
  EXPECT_EQ(pool->idle_count(), 1u);
}

TEST_F(PoolTest, ATokenReplacedByAForcedRefreshClosesTheConnectionsThatLoggedInWithAnother) {
  auto pool = make_pool();
  auto leased = pool->acquire();  // token-1, in use while the token is replaced
  ASSERT_TRUE(leased);
  {
    auto idle = pool->acquire();  // token-2, returned: idle
    ASSERT_TRUE(idle);
  }
  ASSERT_EQ(pool->idle_count(), 1u);
  ASSERT_EQ(world.tokens_seen, (std::vector<std::string>{"token-1", "token-2"}));

  // The broker's watch says token-2 replaced token-1 early: token-1's connection goes (when it
  // comes back), token-2's stays.
  EXPECT_EQ(pool->token_replaced(tb::hex(tb::sha256("token-2"))), 0u);
  EXPECT_EQ(pool->idle_count(), 1u);
  { auto returned = std::move(*leased); }
  EXPECT_EQ(world.closed, 1);
  EXPECT_EQ(pool->open_count(), 1u);

  // Replaced again, by a token no connection has: the idle one closes at once.
  EXPECT_EQ(pool->token_replaced(tb::hex(tb::sha256("token-9"))), 1u);
  EXPECT_EQ(world.closed, 2);
  EXPECT_EQ(pool->open_count(), 0u);
  // A new connection logs in with a new token and is kept.
  auto store = make_store(pool);
  ASSERT_TRUE(store->ping());
  ASSERT_TRUE(store->ping());
  EXPECT_EQ(world.opened, 3);
  EXPECT_EQ(pool->idle_count(), 1u);
}

TEST_F(PoolTest, AConnectionLoggingInWhileItsTokenIsReplacedIsClosedWhenItComesBack) {
  auto pool = make_pool();
  // The watch thread hears of a forced refresh while this connection logs in with token-1.
  replace_during_login = [&] { pool->token_replaced(tb::hex(tb::sha256("token-9"))); };
  {
    auto lease = pool->acquire();
    ASSERT_TRUE(lease);
  }
  EXPECT_EQ(world.closed, 1);  // it logged in with the replaced token: not kept
  EXPECT_EQ(pool->open_count(), 0u);
}

TEST_F(PoolTest, RetiresAConnectionWhoseTokenHasLessThanTheMarginLeft) {
  max_lifetime = 2h;
  auto pool = make_pool();
  auto store = make_store(pool);
  ASSERT_TRUE(store->ping());
  clock->advance(54min + 59s);  // 5 min 1 s left: still usable
  ASSERT_TRUE(store->ping());
  EXPECT_EQ(world.opened, 1);
  clock->advance(2s);  // 4 min 59 s left: below the margin
  ASSERT_TRUE(store->ping());
  EXPECT_EQ(world.opened, 2);
  EXPECT_EQ(world.closed, 1);
  EXPECT_EQ(world.tokens_seen, (std::vector<std::string>{"token-1", "token-2"}));
  EXPECT_EQ(pool->open_count(), 1u);
}

TEST_F(PoolTest, RetiresAConnectionAfterItsMaxLifetimeEvenWithoutATokenExpiry) {
  auto pool = make_pool(false);
  auto store = make_store(pool);
  ASSERT_TRUE(store->ping());
  clock->advance(29min);
  ASSERT_TRUE(store->ping());
  EXPECT_EQ(world.opened, 1);
  clock->advance(1min);
  ASSERT_TRUE(store->ping());
  EXPECT_EQ(world.opened, 2);
  EXPECT_EQ(world.closed, 1);
  EXPECT_EQ(world.tokens_seen, (std::vector<std::string>{"", ""}));
}

TEST_F(PoolTest, ShortLivedTokensRetireBeforeTheLifetimeDoes) {
  token_lifetime = 10min;
  auto pool = make_pool();
  auto store = make_store(pool);
  ASSERT_TRUE(store->ping());
  clock->advance(5min + 1s);
  ASSERT_TRUE(store->ping());
  EXPECT_EQ(world.opened, 2);
}

TEST_F(PoolTest, RefusesAFreshTokenThatIsAlreadyWithinTheMargin) {
  token_lifetime = 4min;
  auto pool = make_pool();
  auto store = make_store(pool);
  auto result = store->ping();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, StoreErrc::unavailable);
  EXPECT_NE(result.error().message.find("less than the 300 s margin"), std::string::npos);
  EXPECT_EQ(world.opened, 0);
  EXPECT_EQ(pool->open_count(), 0u);
}

TEST_F(PoolTest, TokenSourceFailureIsUnavailableWithItsMessageAndNoConnect) {
  token_failure = StoreError{StoreErrc::unavailable, "token-broker is not reachable at /x.sock"};
  auto pool = make_pool();
  auto store = make_store(pool);
  auto result = store->list();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, StoreErrc::unavailable);
  EXPECT_EQ(result.error().message, "token-broker is not reachable at /x.sock");
  EXPECT_EQ(world.opened, 0);
  EXPECT_TRUE(sleeps.empty());
  EXPECT_EQ(pool->open_count(), 0u);
}

TEST_F(PoolTest, BrokenConnectionIsRetiredAndTheCallRetriedOnAFreshOne) {
  auto pool = make_pool();
  auto store = make_store(pool);
  ASSERT_TRUE(store->ping());
  world.next_failures = {FailureKind::broken};
  auto created = store->create({"after a failover", false});
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(created->description, "after a failover");
  EXPECT_EQ(world.opened, 2);
  EXPECT_EQ(world.closed, 1);
  EXPECT_EQ(sleeps, (std::vector<std::chrono::milliseconds>{200ms}));
}

TEST_F(PoolTest, TransientFailuresAreRetriedAtMostThreeTimesWithBackoff) {
  auto pool = make_pool();
  auto store = make_store(pool);
  world.next_failures = {FailureKind::transient, FailureKind::transient, FailureKind::transient,
                         FailureKind::transient};
  auto result = store->list();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, StoreErrc::unavailable);
  EXPECT_EQ(world.opened, 3);
  EXPECT_EQ(sleeps, (std::vector<std::chrono::milliseconds>{200ms, 600ms}));
  EXPECT_EQ(world.next_failures.size(), 1u);
}

TEST_F(PoolTest, LoginFailureOnAFreshConnectionIsNotRetried) {
  auto pool = make_pool();
  auto store = make_store(pool);
  world.next_failures = {FailureKind::login};
  auto result = store->ping();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, StoreErrc::login_failed);
  EXPECT_EQ(world.opened, 1);
  EXPECT_EQ(world.closed, 1);
  EXPECT_TRUE(sleeps.empty());
}

TEST_F(PoolTest, LoginExpiredOnAReusedConnectionIsRetriedWithAFreshToken) {
  auto pool = make_pool();
  auto store = make_store(pool);
  ASSERT_TRUE(store->ping());
  world.next_failures = {FailureKind::login};
  ASSERT_TRUE(store->ping());
  EXPECT_EQ(world.tokens_seen, (std::vector<std::string>{"token-1", "token-2"}));
  EXPECT_EQ(world.closed, 1);
}

TEST_F(PoolTest, ARefusedTokenIsForceRefreshedOnceAndTheLoginTriedAgain) {
  refused_tokens = {"token-1"};  // e.g. revoked, or its roles changed: it has not expired
  auto pool = make_pool();
  auto store = make_store(pool);
  auto created = store->create({"after a revocation", false});
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(world.rejected_seen, (std::vector<std::string>{"token-1"}));
  EXPECT_EQ(world.tokens_seen, (std::vector<std::string>{"token-2"}));
  EXPECT_EQ(world.opened, 1);
  EXPECT_TRUE(sleeps.empty());
  // The new connection is pooled: no more tokens.
  ASSERT_TRUE(store->list());
  EXPECT_EQ(world.tokens_issued, 2);
}

TEST_F(PoolTest, ATokenRefusedAgainAfterTheRefreshIsALoginFailureAfterOneRefresh) {
  refused_tokens = {"token-1", "token-2"};  // the identity itself has no login
  auto pool = make_pool();
  auto store = make_store(pool);
  auto result = store->ping();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, StoreErrc::login_failed);
  EXPECT_EQ(world.rejected_seen, (std::vector<std::string>{"token-1"}));
  EXPECT_EQ(world.tokens_issued, 2);
  EXPECT_EQ(world.opened, 0);
  EXPECT_EQ(pool->open_count(), 0u);
}

TEST_F(PoolTest, AFailedRefreshLeavesTheLoginFailure) {
  refused_tokens = {"token-1"};
  refresh_failure = StoreError{StoreErrc::unavailable, "token broker: refresh_rate_limited"};
  auto pool = make_pool();
  auto store = make_store(pool);
  auto result = store->ping();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, StoreErrc::login_failed);
  EXPECT_NE(result.error().message.find("refresh_rate_limited"), std::string::npos);
  EXPECT_EQ(world.rejected_seen.size(), 1u);
  EXPECT_EQ(world.tokens_issued, 1);
  EXPECT_EQ(pool->open_count(), 0u);
}

TEST_F(PoolTest, ConnectFailureThatIsBrokenIsRetriedThenReported) {
  connect_failure =
      DbError{FailureKind::broken, {StoreErrc::unavailable, "cannot reach the database: x"}};
  auto pool = make_pool();
  auto store = make_store(pool);
  auto result = store->ping();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message, "cannot reach the database: x");
  EXPECT_EQ(sleeps.size(), 2u);
  EXPECT_EQ(pool->open_count(), 0u);
  connect_failure.reset();
  EXPECT_TRUE(store->ping());
}

TEST_F(PoolTest, OtherErrorsKeepTheConnectionAndAreNotRetried) {
  auto pool = make_pool();
  auto store = make_store(pool);
  world.next_failures = {FailureKind::other};
  auto result = store->get(1);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, StoreErrc::internal);
  EXPECT_EQ(world.closed, 0);
  EXPECT_EQ(pool->idle_count(), 1u);
}

TEST_F(PoolTest, MissingRowsAreNotFound) {
  auto store = make_store(make_pool());
  EXPECT_EQ(store->get(42).error().code, StoreErrc::not_found);
  EXPECT_EQ(store->update(42, {std::string("x"), std::nullopt}).error().code, StoreErrc::not_found);
  EXPECT_EQ(store->remove(42).error().code, StoreErrc::not_found);
  auto created = store->create({"a", false});
  ASSERT_TRUE(created);
  auto updated = store->update(created->id, {std::nullopt, true});
  ASSERT_TRUE(updated);
  EXPECT_TRUE(updated->done);
  EXPECT_EQ(updated->description, "a");
  EXPECT_TRUE(store->remove(created->id));
  EXPECT_EQ(store->get(created->id).error().code, StoreErrc::not_found);
}

TEST_F(PoolTest, WaitsForAFreeConnectionAndGivesUpAfterTheAcquireTimeout) {
  max_size = 1;
  acquire_timeout = 50ms;
  auto pool = make_pool();
  auto held = pool->acquire();
  ASSERT_TRUE(held);
  auto busy = pool->acquire();
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().kind, FailureKind::busy);
  EXPECT_EQ(busy.error().error.message, "all 1 database connections are busy; retry later");

  acquire_timeout = 5000ms;
  auto patient_pool = make_pool();
  auto first = patient_pool->acquire();
  ASSERT_TRUE(first);
  std::thread releaser([lease = std::move(*first)]() mutable {
    std::this_thread::sleep_for(20ms);
    (void)lease;  // returned when the thread ends
  });
  auto second = patient_pool->acquire();
  releaser.join();
  EXPECT_TRUE(second);
  EXPECT_EQ(patient_pool->open_count(), 1u);
}

TEST_F(PoolTest, ConcurrentCallersNeverOpenMoreThanThePoolSize) {
  max_size = 3;
  auto pool = make_pool();
  auto store = make_store(pool);
  // The pool logs each connection it opens. spdlog's registry is created on first use inside
  // libspdlog.so, which TSan does not instrument: if the first two log calls of this process
  // came from two of these threads at once, TSan could not see that its construction comes
  // first and would report a race in spdlog. The programs call tb::log::init before any thread;
  // this test creates the registry here, before its threads, for the same reason.
  spdlog::default_logger_raw();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        if (!store->create({"t" + std::to_string(t) + "-" + std::to_string(i), false})) ++failures;
        if (i % 10 == 0) clock->advance(1min);  // some retirements along the way
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(world.max_in_use.load(), 3);
  EXPECT_LE(pool->open_count(), 3u);
  EXPECT_EQ(world.rows.size(), 800u);
  EXPECT_EQ(world.opened - world.closed, static_cast<int>(pool->open_count()));
}

}  // namespace
}  // namespace todo::odbc
