#pragma once
// An upstream credential source: turns (identity, resource) into a token, one attempt per call.
// Retrying, backoff and caching are the cache's business, not the source's.

#include "broker/token.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <string_view>

namespace broker {

class Source {
 public:
  virtual ~Source() = default;
  /// One upstream attempt, bounded by `timeout`.
  virtual boost::asio::awaitable<FetchResult> fetch(const TokenKey& key,
                                                    std::chrono::milliseconds timeout) = 0;
  /// "imds", "workload-identity", …: for logs and /readyz.
  virtual std::string_view name() const = 0;
  /// Where it fetches from, for the start-up log line.
  virtual std::string describe() const = 0;
};

}  // namespace broker
