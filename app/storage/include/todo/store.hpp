#pragma once
// The to-do model and the storage interface the web layer talks to. Calls block (ODBC is a
// blocking API); the web server runs them on its worker threads, never on the I/O thread.

#include <boost/system/result.hpp>

#include <boost/assert/source_location.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace todo {

/// One item, as in the original sample: Todo(ID, Description, CreatedDate, Done).
struct Todo {
  std::int64_t id = 0;
  std::string description;   ///< UTF-8, 1..4,000 characters (validated by the web layer)
  std::string created_date;  ///< UTC, ISO 8601 "YYYY-MM-DDTHH:MM:SSZ"
  bool done = false;
};

struct NewTodo {
  std::string description;
  bool done = false;
};

/// PUT sets both fields, PATCH any subset.
struct TodoPatch {
  std::optional<std::string> description;
  std::optional<bool> done;
};

enum class StoreErrc {
  not_found = 1,  ///< no item with that id
  unavailable,    ///< database or token broker unreachable / not ready; retry later
  login_failed,   ///< the database refused the login (token rejected or identity not allowed)
  internal,       ///< anything else (a bug or an unexpected database answer)
};

/// `message` is shown to users and written to logs: it must never contain a token, a password
/// or a connection string. It names what failed and what to do.
struct StoreError {
  StoreErrc code = StoreErrc::internal;
  std::string message;
};

[[noreturn]] void throw_exception_from_error(const StoreError& error,
                                             const boost::source_location& location);

template <class T>
using StoreResult = boost::system::result<T, StoreError>;

class TodoStore {
 public:
  virtual ~TodoStore() = default;
  /// All items, oldest first.
  virtual StoreResult<std::vector<Todo>> list() = 0;
  virtual StoreResult<Todo> get(std::int64_t id) = 0;
  virtual StoreResult<Todo> create(const NewTodo& item) = 0;
  /// Returns the item after the change; not_found if there is none.
  virtual StoreResult<Todo> update(std::int64_t id, const TodoPatch& patch) = 0;
  virtual StoreResult<void> remove(std::int64_t id) = 0;
  /// One database round trip (for /readyz).
  virtual StoreResult<void> ping() = 0;
};

}  // namespace todo
