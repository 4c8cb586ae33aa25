#pragma once
// An upstream credential source: turns (identity, resource) into a token, one attempt per call.
// Retrying, backoff and caching are the cache's business, not the source's.

#include "broker/token.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace broker {

/// Settings of the workload-identity source (from the AZURE_* variables the workload-identity
/// webhook injects, and --ca-file).
struct WorkloadIdentitySettings {
  std::string authority_host = "https://login.microsoftonline.com/";  ///< AZURE_AUTHORITY_HOST
  std::string tenant_id;                                              ///< AZURE_TENANT_ID
  std::string client_id;             ///< AZURE_CLIENT_ID: used when a request names none
  std::string federated_token_file;  ///< AZURE_FEDERATED_TOKEN_FILE, re-read for every exchange
  std::string ca_file;               ///< empty: the system CA bundle
};

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
