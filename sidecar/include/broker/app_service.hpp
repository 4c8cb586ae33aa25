#pragma once
// The App Service source: GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=… with
// X-IDENTITY-HEADER, as App Service, Azure Functions and Container Apps serve it.

#include "broker/source.hpp"

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace broker {

/// The query for `key`: "api-version=2019-08-01&resource=…" plus client_id, principal_id (for
/// an object id) or mi_res_id, percent-encoded.
std::string app_service_query(const TokenKey& key);

/// Turns a non-200 App Service answer into a FetchError. App Service sends
/// {"statusCode":…,"message":…,"correlationId":…}; an `error`/`error_description` body is read
/// too. 400 and 401 get a hint on what to check.
FetchError app_service_error(unsigned status, std::string_view body, std::string_view retry_after,
                             SystemTime now);

/// True when `value` can be sent as an HTTP header value (visible ASCII and spaces, no CR/LF).
bool is_header_value(std::string_view value);

class AppServiceSource final : public Source {
 public:
  /// Throws std::invalid_argument (IDENTITY_ENDPOINT not an http(s) URL) or std::runtime_error
  /// (CA file) with a message that names the setting.
  AppServiceSource(AppServiceSettings settings, const Clock& clock);

  boost::asio::awaitable<FetchResult> fetch(const TokenKey& key,
                                            std::chrono::milliseconds timeout) override;
  /// Adds `token_sha256_to_refresh=<hash>` to the query, as MSAL does for a revoked token, so
  /// that App Service's token service skips its cached token.
  boost::asio::awaitable<FetchResult> fetch_replacing(
      const TokenKey& key, std::chrono::milliseconds timeout,
      const std::string& token_sha256_to_refresh) override;
  std::string_view name() const override { return "app-service"; }
  std::string describe() const override { return settings_.endpoint; }

 private:
  boost::asio::awaitable<FetchResult> call(std::string target, std::chrono::milliseconds timeout);

  AppServiceSettings settings_;
  std::string host_;
  std::string port_;
  std::string path_;  ///< with any query IDENTITY_ENDPOINT carried, then '?' or '&'
  std::string host_header_;
  std::shared_ptr<boost::asio::ssl::context> tls_;  ///< null for http://
  const Clock& clock_;
};

}  // namespace broker
