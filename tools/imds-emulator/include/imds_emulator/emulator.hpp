#pragma once
// The emulator's request logic, free of I/O: routing, IMDS validation, fault steps, token
// minting and counters. The transport (server.hpp) feeds it parsed requests and delivers
// the replies; time comes in as an argument.

#include "imds_emulator/faults.hpp"
#include "imds_emulator/jwt.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace imds_emulator {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Clock = std::chrono::system_clock;
using SteadyTime = std::chrono::steady_clock::time_point;

struct Identity {
  std::string client_id;
  std::string object_id;
  std::string mi_res_id;
};

/// An identity that the Entra-like route lets a service account use (a federated credential):
/// client assertions with `sub` == subject may obtain tokens for `identity`.
struct FederatedClient {
  Identity identity;
  std::string subject;  ///< e.g. system:serviceaccount:NS:NAME
};

struct Config {
  std::vector<Identity> identities;  ///< the first one answers requests that name none
  std::vector<FederatedClient> federated_clients;
  /// The service-account issuer's public key that signs client assertions; the Entra route
  /// refuses every assertion without it.
  std::shared_ptr<EVP_PKEY> sa_issuer_key;
  std::chrono::seconds lifetime{3600};
  std::string tenant = "72f988bf-0000-0000-0000-000000000000";
  std::string issuer;  ///< empty: https://sts.windows.net/{tenant}/
  /// The App Service route's secret (X-IDENTITY-HEADER); empty: GET /msi/token is not served.
  std::string identity_header;
  /// IMDS's throttle on the token routes (0: none): beyond `rate_limit` requests per second (a
  /// bucket holding one second's worth, refilled continuously) or beyond `max_concurrent`
  /// requests in flight, a request is answered 429 with Retry-After before it is looked at.
  double rate_limit = 0;
  unsigned max_concurrent = 0;
};

/// What the transport sends back (or, for drop/hang/reset, how it misbehaves).
struct Reply {
  unsigned status = 200;
  std::string body;  ///< JSON (truncated for malformed/reset)
  std::optional<std::string> retry_after;
  std::string allow;  ///< Allow header for 405
  Action action = Action::respond;
  nlohmann::json log;  ///< token route only: fields for the access log (never the token)
};

/// A token request that passed validation.
struct TokenCall {
  Identity identity;
  std::string resource;
  /// App Service: the token_sha256_to_refresh parameter (a forced refresh of that token), if any.
  std::string token_sha256_to_refresh;
  /// The x-ms-client-request-id header, if sent (cut at 64 characters).
  std::string client_request_id;
};

/// The Entra route's part of a job: the assertion is checked in complete(), where time is known.
struct EntraCall {
  std::string assertion;
  std::string subject;  ///< the federated client's expected `sub`
};

/// A token request that passed validation, as GET /_emulator/calls lists it: when it arrived
/// and which fault step it drew, so that tests can check the time between upstream calls.
struct CallRecord {
  std::int64_t at_ms = 0;  ///< unix milliseconds at arrival
  std::string resource;
  std::string client_id;
  unsigned status = 200;
  Action action = Action::respond;
  std::string token_sha256_to_refresh;  ///< App Service's forced-refresh parameter, if sent
  std::string client_request_id;        ///< the x-ms-client-request-id header, if sent
};

/// A validated token request together with the fault step it drew.
struct TokenJob {
  TokenCall call;
  FaultStep step;
  std::optional<EntraCall> entra;  ///< set for POST /{tenant}/oauth2/v2.0/token
  bool app_service = false;        ///< GET /msi/token: answered in App Service's shape
};

/// App Service's managed-identity route (IDENTITY_ENDPOINT) and the API version it speaks.
inline constexpr std::string_view kAppServicePath = "/msi/token";
inline constexpr std::string_view kAppServiceApiVersion = "2019-08-01";

/// An App Service-shaped error: {"statusCode":status,"message":message,"correlationId":…}.
Reply app_service_error_reply(unsigned status, std::string_view message);

/// App Service's checks for GET /msi/token: X-IDENTITY-HEADER (missing: 400, wrong: 401),
/// api-version 2019-08-01, resource, at most one of client_id/principal_id (alias object_id, as
/// MSAL sends it)/mi_res_id, known identity.
std::variant<TokenCall, Reply> validate_app_service_request(const Request& request,
                                                            std::string_view identity_header,
                                                            std::span<const Identity> identities);

/// The audience Entra requires in a federated client assertion.
inline constexpr std::string_view kTokenExchangeAudience = "api://AzureADTokenExchange";

/// An Entra-shaped error: {"error","error_description":"AADSTS<code>: …","error_codes":[code],
/// "timestamp","trace_id","correlation_id","error_uri"}.
Reply entra_error_reply(unsigned status, std::string_view error, int code,
                        std::string_view description);

/// Entra's checks for POST /{tenant}/oauth2/v2.0/token (form body): tenant, grant_type,
/// client_id among the federated clients, scope ending in /.default, assertion type and
/// presence. The assertion itself is checked by check_client_assertion().
std::variant<std::pair<TokenCall, EntraCall>, Reply> validate_entra_request(
    const Request& request, std::string_view tenant, std::span<const FederatedClient> clients);

/// Verifies the assertion's RS256 signature with `key` and its claims at `now`: aud contains
/// api://AzureADTokenExchange, nbf/exp (5 minutes of skew for nbf), sub == call.subject.
/// nullopt when it is acceptable, else the Entra error reply (401 invalid_client).
std::optional<Reply> check_client_assertion(const EntraCall& call, EVP_PKEY* key,
                                            Clock::time_point now);

/// IMDS's checks for GET /metadata/identity/oauth2/token: Metadata header, api-version,
/// resource, at most one of client_id/object_id/mi_res_id/msi_res_id, known identity.
std::variant<TokenCall, Reply> validate_token_request(const Request& request,
                                                      std::span<const Identity> identities);

/// client_id 1111…, object_id 2222…, mi_res_id …/userAssignedIdentities/token-broker-dev.
Identity default_identity();

/// {"error":error,"error_description":description} as a reply with `status`.
Reply error_reply(unsigned status, std::string_view error, std::string_view description);

class Emulator {
 public:
  Emulator(Config config, Signer signer);

  /// Routes one request. Token requests that pass validation draw their fault step and come
  /// back as a TokenJob (the transport applies delay_ms, then calls complete()); everything
  /// else is answered at once. `now` is for the throttle (Config::rate_limit).
  std::variant<Reply, TokenJob> dispatch(const Request& request,
                                         SteadyTime now = std::chrono::steady_clock::now());
  /// Produces the token-route reply for a job at time `now`.
  Reply complete(const TokenJob& job, Clock::time_point now);

  /// Token requests being served (including those waiting in delay_ms or hang).
  void begin_in_flight();
  void end_in_flight();

  nlohmann::json stats() const;
  /// Notes the arrival of `job` at `arrived` for GET /_emulator/calls (the transport calls it
  /// when dispatch() hands out a job; the last kMaxCalls are kept).
  void record_call(const TokenJob& job, Clock::time_point arrived);
  /// {"calls":[{"at_ms","resource","client_id","status","action"[,"token_sha256_to_refresh"][,"client_request_id"]},…]},
  /// oldest first.
  nlohmann::json calls() const;
  static constexpr std::size_t kMaxCalls = 10'000;
  const Config& config() const { return config_; }
  const Signer& signer() const { return signer_; }

 private:
  Reply count(Reply reply);
  /// The 429 for a token request over the throttle at `now`, else nullopt (and the request
  /// takes its share of the bucket).
  std::optional<Reply> throttle(SteadyTime now);
  Reply complete_entra(const TokenJob& job, const EntraCall& entra, Clock::time_point now);
  Reply complete_app_service(const TokenJob& job, Clock::time_point now);
  /// The fault actions that mangle a token answer (missing token, malformed, reset) and the
  /// bookkeeping of an issued token; shared by the IMDS and Entra routes.
  Reply token_reply(Reply reply, const nlohmann::json& body, const FaultStep& step,
                    const std::string& token, const std::string& key);
  std::string mint(const TokenCall& call, Clock::time_point issued,
                   Clock::time_point expires_on) const;

  Config config_;  // identities never empty (default_identity() when none given)
  Signer signer_;
  FaultPlan faults_;
  std::map<std::string, std::string> last_response_;  // client_id '\n' resource -> body
  std::uint64_t token_requests_ = 0;
  std::uint64_t tokens_issued_ = 0;
  std::map<std::string, std::uint64_t> responses_;
  std::map<std::string, std::uint64_t> by_resource_;
  std::uint64_t in_flight_ = 0;
  std::uint64_t max_in_flight_ = 0;
  std::uint64_t throttled_ = 0;
  double bucket_ = 0;  // requests the throttle admits now (full at start)
  std::optional<SteadyTime> bucket_at_;
  std::deque<CallRecord> calls_;
};

}  // namespace imds_emulator
