#include "todo/connection_pool.hpp"

#include <tb/crypto.hpp>
#include <tb/log.hpp>

#include <boost/throw_exception.hpp>

#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>

namespace todo::odbc {
namespace {

using std::chrono::duration_cast;
using std::chrono::seconds;

std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return duration_cast<seconds>(t.time_since_epoch()).count();
}

}  // namespace

void throw_exception_from_error(const DbError& error, const boost::source_location& location) {
  boost::throw_exception(std::runtime_error(error.error.message), location);
}

// ---- Lease -------------------------------------------------------------------------------------

ConnectionPool::Lease::Lease(ConnectionPool* pool, std::unique_ptr<Slot> slot)
    : pool_(pool), slot_(std::move(slot)) {}

ConnectionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), slot_(std::move(other.slot_)) {}

ConnectionPool::Lease::~Lease() {
  if (slot_) pool_->release(std::move(slot_));
}

void ConnectionPool::Lease::retire(std::string_view reason) {
  if (slot_) pool_->retire(std::move(slot_), reason);
}

// ---- ConnectionPool ----------------------------------------------------------------------------

ConnectionPool::ConnectionPool(Options options, ConnectionFactory factory, TokenSource tokens,
                               std::shared_ptr<Clock> clock)
    : options_(std::move(options)),
      factory_(std::move(factory)),
      tokens_(std::move(tokens)),
      clock_(std::move(clock)) {
  if (options_.max_size == 0) throw std::invalid_argument("the pool size must be at least 1");
  if (!factory_ || !clock_)
    throw std::invalid_argument("connection pool: factory and clock needed");
}

ConnectionPool::~ConnectionPool() = default;

const char* ConnectionPool::retire_reason(const Slot& slot,
                                          std::chrono::system_clock::time_point now,
                                          const Options& options) {
  if (slot.token_expires_on && *slot.token_expires_on - now < options.token_margin) {
    return "token expiring";
  }
  if (now - slot.created >= options.max_lifetime) return "max lifetime reached";
  return nullptr;
}

DbResult<ConnectionPool::Lease> ConnectionPool::acquire() {
  std::unique_lock lock(mutex_);
  const auto deadline = std::chrono::steady_clock::now() + options_.acquire_timeout;
  for (;;) {
    while (!idle_.empty()) {
      std::unique_ptr<Slot> slot = std::move(idle_.back());
      idle_.pop_back();
      const char* reason = replaced(*slot) ? "token replaced by a forced refresh"
                                           : retire_reason(*slot, clock_->now(), options_);
      if (reason != nullptr) {
        // Closing talks to the server: not under the lock.
        lock.unlock();
        retire(std::move(slot), reason);
        lock.lock();
        continue;
      }
      return Lease(this, std::move(slot));
    }
    if (open_ < options_.max_size) {
      ++open_;
      lock.unlock();
      auto slot = open();
      if (!slot) {
        lock.lock();
        --open_;
        returned_.notify_one();
        return slot.error();
      }
      return Lease(this, std::move(*slot));
    }
    if (returned_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        open_ >= options_.max_size) {
      return DbError{FailureKind::busy,
                     {StoreErrc::unavailable, "all " + std::to_string(options_.max_size) +
                                                  " database connections are busy; retry later"}};
    }
  }
}

DbResult<DbToken> ConnectionPool::take_token(const DbToken* rejected) {
  auto fetched = tokens_(rejected);
  if (!fetched) return DbError{FailureKind::token, fetched.error()};
  const auto left = duration_cast<seconds>(fetched->expires_on - clock_->now());
  if (left < options_.token_margin) {
    return DbError{
        FailureKind::token,
        {StoreErrc::unavailable, "the database token from the token broker expires in " +
                                     std::to_string(left.count()) + " s, less than the " +
                                     std::to_string(options_.token_margin.count()) +
                                     " s margin the store keeps; retry later"}};
  }
  return std::move(*fetched);
}

DbResult<std::unique_ptr<ConnectionPool::Slot>> ConnectionPool::open() {
  // Taken before the token is: a token_replaced() during the login below must catch this one.
  std::uint64_t epoch = 0;
  {
    std::lock_guard lock(mutex_);
    epoch = replace_epoch_;
  }
  std::optional<DbToken> token;
  if (tokens_) {
    auto fetched = take_token(nullptr);
    if (!fetched) return fetched.error();
    token = std::move(*fetched);
  }
  auto connection = factory_(token ? &*token : nullptr);
  if (!connection && token && connection.error().kind == FailureKind::login) {
    // The database refused a token that has not expired: its roles changed, or it was revoked.
    // Ask once for a genuinely new token (a forced refresh) and try the login once more.
    tb::log::warn("database refused the token; asking the token broker for a new one",
                  {{"dialect", options_.dialect_name},
                   {"token", tb::log::fingerprint(token->value)},
                   {"error", connection.error().error.message}});
    auto renewed = take_token(&*token);
    if (!renewed) {
      tb::log::warn("no new database token",
                    {{"dialect", options_.dialect_name}, {"error", renewed.error().error.message}});
      auto refused = connection.error();
      refused.error.message +=
          "; asking the token broker for a new token failed too: " + renewed.error().error.message;
      return refused;
    }
    token = std::move(*renewed);
    connection = factory_(&*token);
  }
  if (!connection) return connection.error();

  auto slot = std::make_unique<Slot>();
  slot->connection = std::move(*connection);
  slot->created = clock_->now();
  slot->replace_epoch = epoch;
  {
    std::lock_guard lock(mutex_);
    slot->serial = next_serial_++;
  }
  nlohmann::json fields = {{"dialect", options_.dialect_name}, {"connection", slot->serial}};
  if (token) {
    slot->token_expires_on = token->expires_on;
    slot->token_sha256 = tb::hex(tb::sha256(token->value));
    fields["token"] = tb::log::fingerprint(token->value);
    fields["token_expires_on"] = unix_seconds(token->expires_on);
    fields["token_expires_in_s"] =
        duration_cast<seconds>(token->expires_on - slot->created).count();
  }
  tb::log::info("database connection opened", fields);
  return slot;
}

void ConnectionPool::release(std::unique_ptr<Slot> slot) {
  std::unique_lock lock(mutex_);
  if (replaced(*slot)) {
    lock.unlock();
    retire(std::move(slot), "token replaced by a forced refresh");
    return;
  }
  slot->reused = true;
  idle_.push_back(std::move(slot));
  returned_.notify_one();
}

bool ConnectionPool::replaced(const Slot& slot) const {
  return slot.replace_epoch < replace_epoch_ && !slot.token_sha256.empty() &&
         slot.token_sha256 != current_sha256_;
}

std::size_t ConnectionPool::token_replaced(const std::string& new_sha256) {
  std::vector<std::unique_ptr<Slot>> stale;
  {
    std::lock_guard lock(mutex_);
    ++replace_epoch_;
    current_sha256_ = new_sha256;
    for (auto it = idle_.begin(); it != idle_.end();) {
      if (replaced(**it)) {
        stale.push_back(std::move(*it));
        it = idle_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Closing talks to the server: not under the lock.
  for (auto& slot : stale) retire(std::move(slot), "token replaced by a forced refresh");
  return stale.size();
}

void ConnectionPool::retire(std::unique_ptr<Slot> slot, std::string_view reason) {
  const auto now = clock_->now();
  tb::log::info("database connection retired",
                {{"dialect", options_.dialect_name},
                 {"connection", slot->serial},
                 {"reason", reason},
                 {"age_s", duration_cast<seconds>(now - slot->created).count()}});
  slot.reset();
  std::lock_guard lock(mutex_);
  --open_;
  returned_.notify_one();
}

std::size_t ConnectionPool::open_count() const {
  std::lock_guard lock(mutex_);
  return open_;
}

std::size_t ConnectionPool::idle_count() const {
  std::lock_guard lock(mutex_);
  return idle_.size();
}

// ---- PooledStore -------------------------------------------------------------------------------

namespace {

class PooledStore final : public TodoStore {
 public:
  PooledStore(std::shared_ptr<ConnectionPool> pool, RetryOptions retry)
      : pool_(std::move(pool)), retry_(std::move(retry)) {
    if (retry_.attempts < 1) retry_.attempts = 1;
    if (!retry_.sleep) {
      retry_.sleep = [](std::chrono::milliseconds pause) { std::this_thread::sleep_for(pause); };
    }
  }

  StoreResult<std::vector<Todo>> list() override {
    return run([](Connection& c) { return c.list(); });
  }

  StoreResult<Todo> get(std::int64_t id) override {
    auto found = run([&](Connection& c) { return c.get(id); });
    if (!found) return found.error();
    auto& stored = *found;
    if (!stored) return not_found(id);
    return std::move(*stored);
  }

  StoreResult<Todo> create(const NewTodo& item) override {
    // Insert and read back on the same connection, so the caller sees created_date as stored.
    auto created = run([&](Connection& c) -> DbResult<std::optional<Todo>> {
      auto id = c.insert(item);
      if (!id) return id.error();
      return c.get(*id);
    });
    if (!created) return created.error();
    auto& stored = *created;
    if (!stored) {
      return StoreError{StoreErrc::internal, "the new to-do item was not found after the insert"};
    }
    return std::move(*stored);
  }

  StoreResult<Todo> update(std::int64_t id, const TodoPatch& patch) override {
    auto updated = run([&](Connection& c) -> DbResult<std::optional<Todo>> {
      if (patch.description || patch.done) {
        auto changed = c.update(id, patch);
        if (!changed) return changed.error();
        if (!*changed) return std::optional<Todo>();
      }
      return c.get(id);
    });
    if (!updated) return updated.error();
    auto& stored = *updated;
    if (!stored) return not_found(id);
    return std::move(*stored);
  }

  StoreResult<void> remove(std::int64_t id) override {
    auto removed = run([&](Connection& c) { return c.remove(id); });
    if (!removed) return removed.error();
    if (!*removed) return not_found(id);
    return {};
  }

  StoreResult<void> ping() override {
    auto pinged = run([](Connection& c) { return c.ping(); });
    if (!pinged) return pinged.error();
    return {};
  }

 private:
  static StoreError not_found(std::int64_t id) {
    return {StoreErrc::not_found, "there is no to-do item with id " + std::to_string(id)};
  }

  std::chrono::milliseconds backoff(int attempt) const {
    if (retry_.backoff.empty()) return std::chrono::milliseconds(0);
    const auto index = static_cast<std::size_t>(attempt - 1);
    return retry_.backoff[std::min(index, retry_.backoff.size() - 1)];
  }

  // Runs `op` on a pooled connection. A failure that says the connection is unusable retires it;
  // a broken connection, a transient error, or a login failure on a connection that had worked
  // before (an expired login) is tried again on a fresh connection after a short pause.
  template <class Op>
  auto run(Op op) -> StoreResult<typename decltype(op(std::declval<Connection&>()))::value_type> {
    DbError last;
    for (int attempt = 1; attempt <= retry_.attempts; ++attempt) {
      if (attempt > 1) retry_.sleep(backoff(attempt - 1));
      auto lease = pool_->acquire();
      if (!lease) {
        last = lease.error();
        if (last.kind == FailureKind::broken || last.kind == FailureKind::transient) continue;
        return last.error;
      }
      auto result = op(**lease);
      if (result) {
        if constexpr (std::is_void_v<typename decltype(result)::value_type>) {
          return {};
        } else {
          return std::move(*result);
        }
      }
      last = result.error();
      bool retry = false;
      switch (last.kind) {
        case FailureKind::broken:
          lease->retire("connection broken");
          retry = true;
          break;
        case FailureKind::transient:
          lease->retire("transient error");
          retry = true;
          break;
        case FailureKind::login:
          retry = lease->reused();
          lease->retire("login failed or expired");
          break;
        default:
          break;
      }
      if (!retry) return last.error;
    }
    return last.error;
  }

  std::shared_ptr<ConnectionPool> pool_;
  RetryOptions retry_;
};

}  // namespace

std::unique_ptr<TodoStore> make_pooled_store(std::shared_ptr<ConnectionPool> pool,
                                             RetryOptions retry) {
  return std::make_unique<PooledStore>(std::move(pool), std::move(retry));
}

}  // namespace todo::odbc
