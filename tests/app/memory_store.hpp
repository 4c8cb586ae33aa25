#pragma once
// An in-memory TodoStore for web-layer tests, with a switch that makes every call fail the way
// a database outage would.

#include "todo/store.hpp"

#include <algorithm>
#include <mutex>
#include <optional>

namespace test_fakes {

class MemoryStore : public todo::TodoStore {
 public:
  std::optional<todo::StoreError> failure;  ///< when set, every call returns it

  todo::StoreResult<std::vector<todo::Todo>> list() override {
    std::lock_guard lock(mutex_);
    if (failure) return *failure;
    return items_;
  }
  todo::StoreResult<todo::Todo> get(std::int64_t id) override {
    std::lock_guard lock(mutex_);
    if (failure) return *failure;
    auto it = find(id);
    if (it == items_.end()) return not_found(id);
    return *it;
  }
  todo::StoreResult<todo::Todo> create(const todo::NewTodo& item) override {
    std::lock_guard lock(mutex_);
    if (failure) return *failure;
    items_.push_back(todo::Todo{next_id_++, item.description, "2026-11-29T01:02:03Z", item.done});
    return items_.back();
  }
  todo::StoreResult<todo::Todo> update(std::int64_t id, const todo::TodoPatch& patch) override {
    std::lock_guard lock(mutex_);
    if (failure) return *failure;
    auto it = find(id);
    if (it == items_.end()) return not_found(id);
    if (patch.description) it->description = *patch.description;
    if (patch.done) it->done = *patch.done;
    return *it;
  }
  todo::StoreResult<void> remove(std::int64_t id) override {
    std::lock_guard lock(mutex_);
    if (failure) return *failure;
    auto it = find(id);
    if (it == items_.end()) return not_found(id);
    items_.erase(it);
    return {};
  }
  todo::StoreResult<void> ping() override {
    std::lock_guard lock(mutex_);
    if (failure) return *failure;
    return {};
  }

 private:
  std::vector<todo::Todo>::iterator find(std::int64_t id) {
    return std::find_if(items_.begin(), items_.end(),
                        [id](const todo::Todo& item) { return item.id == id; });
  }
  static todo::StoreError not_found(std::int64_t id) {
    return {todo::StoreErrc::not_found, "no to-do with id " + std::to_string(id)};
  }

  std::mutex mutex_;
  std::vector<todo::Todo> items_;
  std::int64_t next_id_ = 1;
};

}  // namespace test_fakes
