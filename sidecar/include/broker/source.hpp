#pragma once
// An upstream credential source: turns (identity, resource) into a token, one attempt per call.
// Retrying, backoff and caching are the cache's business, not the source's.

#include "broker/token.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace broker {

/// Settings of the workload-identity source (from the AZURE_* variables the workload-identity
/// webhook injects, and --ca-file).
struct WorkloadIdentitySettings {
  std::string authority_host = "https://login.microsoftonline.com/";  ///< AZURE_AUTHORITY_HOST
  std::string tenant_id;                                              ///< AZURE_TENANT_ID
  std::string client_id;             ///< AZURE_CLIENT_ID: used when a request names none
  std::string federated_token_file;  ///< AZURE_FEDERATED_TOKEN_FILE, re-read for every exchange
  std::string ca_file;               ///< empty: the system CA bundle
  /// AKS identity bindings (what the webhook injects with AZURE_KUBERNETES_TOKEN_PROXY, read by
  /// recent Azure SDKs): the same exchange, sent to this https:// proxy instead of the
  /// authority host (its path, then /{tenant}/oauth2/v2.0/token). Empty: the authority host.
  std::string token_proxy;
  std::string
      sni_name;  ///< AZURE_KUBERNETES_SNI_NAME: SNI and the name the proxy's certificate must carry
  std::string proxy_ca_file;  ///< AZURE_KUBERNETES_CA_FILE: re-read for every exchange (rotation)
  std::string proxy_ca_data;  ///< AZURE_KUBERNETES_CA_DATA: PEM; at most one of the two
};

/// Settings of the App Service source (the variables App Service, Functions and Container Apps
/// set: IDENTITY_ENDPOINT, IDENTITY_HEADER; IDENTITY_HEADER_FILE is ours).
struct AppServiceSettings {
  std::string endpoint;         ///< IDENTITY_ENDPOINT, e.g. http://127.0.0.1:41741/msi/token
  std::string identity_header;  ///< IDENTITY_HEADER: read once, at start
  /// IDENTITY_HEADER_FILE: when set, the header is read from this file for every call instead,
  /// so that a rotated secret needs no restart.
  std::string identity_header_file;
  std::string ca_file;  ///< for an https:// endpoint; empty: the system CA bundle
};

/// Reads a small secret file (a token, a header value): trimmed of surrounding whitespace; nullopt
/// with `error` set, naming `what` and the path, when it is missing, unreadable, empty or larger
/// than 64 KiB.
std::optional<std::string> read_secret_file(const std::string& path, std::string_view what,
                                            std::string& error);

/// An upstream's error made fit for logs, /readyz and callers' errors: in `error` and
/// `description`, anything shaped like a credential (a JWT, or a run of 32 or more base64url
/// characters with upper case, lower case and digits, such as a signature) becomes "[redacted]",
/// control characters become spaces, and `error` is cut at 64 bytes, `description` at 300.
FetchError redact_upstream_error(FetchError error);

/// The header that names one upstream attempt, as the Azure SDKs and MSAL send it: a new random
/// UUID for every attempt, logged with its outcome, so that a failure can be matched with
/// Microsoft's logs (IMDS, Entra and App Service record it).
inline constexpr std::string_view kClientRequestIdHeader = "x-ms-client-request-id";

/// `result`, with its request_id (UpstreamToken's or FetchError's) set to `id`.
inline FetchResult with_request_id(FetchResult result, const std::string& id) {
  std::visit([&](auto& value) { value.request_id = id; }, result);
  return result;
}

class Source {
 public:
  virtual ~Source() = default;
  /// One upstream attempt, bounded by `timeout`, sent with a new kClientRequestIdHeader that
  /// the result carries (request_id).
  virtual boost::asio::awaitable<FetchResult> fetch(const TokenKey& key,
                                                    std::chrono::milliseconds timeout) = 0;
  /// One upstream attempt for a forced refresh: the token whose SHA-256 (lower-case hex) is
  /// `token_sha256_to_refresh` was rejected, so a new one is wanted. Sources whose upstream keeps
  /// a cache it can be told to skip pass the hash on (App Service's `token_sha256_to_refresh`,
  /// as MSAL sends it); the others make an ordinary call.
  virtual boost::asio::awaitable<FetchResult> fetch_replacing(
      const TokenKey& key, std::chrono::milliseconds timeout,
      const std::string& token_sha256_to_refresh) {
    (void)token_sha256_to_refresh;
    return fetch(key, timeout);
  }
  /// "imds", "workload-identity", …: for logs and /readyz.
  virtual std::string_view name() const = 0;
  /// Where it fetches from, for the start-up log line.
  virtual std::string describe() const = 0;
};

}  // namespace broker
