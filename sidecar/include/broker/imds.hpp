#pragma once
// The NMI / VM IMDS source: GET {endpoint}/metadata/identity/oauth2/token with `Metadata: true`.

#include "broker/source.hpp"

#include <boost/system/result.hpp>

#include <string>

namespace broker {

/// The request target for `key`, e.g.
/// "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=…&client_id=…".
std::string imds_target(const TokenKey& key);

/// Parses a token response. Numeric fields may be strings or numbers; `expires_on` may be unix
/// seconds or a date string ("11/28/2026 11:45:12 PM +00:00"). The token's expiry is the
/// earliest of expires_on, `now` + expires_in and, when the access token is a JWT, its `exp`
/// (decoded, not verified): an upstream whose fields disagree cannot make the broker serve an
/// expired token. Errors name the bad field. Returns FetchError with status 0 on a malformed
/// body.
FetchResult parse_token_response(std::string_view body, SystemTime now);

/// Turns a non-200 upstream answer into a FetchError (reads `error`/`error_description` when the
/// body is JSON, and Retry-After).
FetchError upstream_error(unsigned status, std::string_view body, std::string_view retry_after,
                          SystemTime now);

/// The FetchError for an exchange with `url` that failed below HTTP: a timeout, a TLS failure
/// (names what the certificate must chain to — `ca_file`, or the system bundle when empty — and
/// the `host` it must name), or an unreachable endpoint.
FetchError transport_error(const boost::system::error_code& ec, const std::string& url,
                           std::chrono::milliseconds timeout, const std::string& host = {},
                           const std::string& ca_file = {});

class ImdsSource final : public Source {
 public:
  /// `endpoint` like "http://169.254.169.254" (http only, as IMDS and NMI are).
  /// Throws std::invalid_argument with a clear message when it is not a usable URL.
  ImdsSource(std::string endpoint, const Clock& clock);

  boost::asio::awaitable<FetchResult> fetch(const TokenKey& key,
                                            std::chrono::milliseconds timeout) override;
  std::string_view name() const override { return "imds"; }
  std::string describe() const override { return endpoint_; }

 private:
  std::string endpoint_;
  std::string host_;
  std::string port_;
  std::string base_path_;
  const Clock& clock_;
};

}  // namespace broker
