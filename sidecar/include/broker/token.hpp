#pragma once
// The values that flow between sources, the cache and the API.

#include "broker/clock.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace broker {

/// Which managed identity a token is for. `none` means the upstream's default identity.
struct Identity {
  enum class Kind { none, client_id, object_id, mi_res_id };
  Kind kind = Kind::none;
  std::string value;

  bool operator==(const Identity&) const = default;
};

/// Human-readable form for logs and errors, e.g. "client_id=1234" or "default".
std::string to_string(const Identity& identity);

/// The identity kind a parameter names, as IMDS and App Service name them: client_id, object_id
/// (or principal_id), mi_res_id (or msi_res_id); nullopt for any other name.
std::optional<Identity::Kind> identity_parameter(std::string_view name);

/// Resources (URIs) and identities (GUIDs, ARM paths) are 1 to 1024 printable ASCII characters;
/// anything else is a mistake or an attack, and would otherwise end up in logs, /readyz and
/// /metrics.
bool valid_key_text(std::string_view text);

struct TokenKey {
  Identity identity;
  std::string resource;

  bool operator==(const TokenKey&) const = default;
  /// A flat string that identifies the key in maps.
  std::string flat() const;
};

/// What an upstream answer says about when its token expires, each in unix seconds (nullopt:
/// not said). They can disagree: the token is then taken to end at the earliest.
struct ExpiryClaims {
  std::optional<std::int64_t> expires_on;  ///< the expires_on field
  std::optional<std::int64_t> expires_in;  ///< the time received + the expires_in field
  std::optional<std::int64_t> jwt_exp;     ///< the access token's own `exp`, when it is a JWT
  /// Latest minus earliest of those given (0 when fewer than two are).
  std::int64_t spread() const;
};

/// A token as a source delivers it.
struct UpstreamToken {
  std::string access_token;
  std::string token_type = "Bearer";
  /// The effective expiry: the earliest of `said` (what clients are told, in both fields).
  std::int64_t expires_on = 0;         ///< unix seconds
  std::chrono::seconds expires_in{0};  ///< expires_on minus the time received (whole seconds)
  ExpiryClaims said;
  std::optional<std::chrono::seconds> refresh_in;
  std::string resource;        ///< as echoed by the upstream (may be empty)
  std::string client_id;       ///< optional echo from IMDS
  std::string not_before;      ///< optional echo from IMDS
  std::string ext_expires_in;  ///< optional echo from IMDS
  std::string request_id;      ///< the attempt's x-ms-client-request-id (see source.hpp)
};

/// A token held by the cache.
struct Token {
  UpstreamToken upstream;
  /// upstream.expires_on on the monotonic clock (taken at the instant the token arrived), so
  /// that the time left counted here is the time left a client computes from expires_on.
  SteadyTime expires_at;
  SteadyTime acquired_at;
  std::string fingerprint;    ///< short SHA-256 prefix: what logs show instead of the token
  std::string sha256;         ///< the whole SHA-256 in lower-case hex (forced refresh compares it)
  std::uint64_t version = 0;  ///< 1 for the key's first token, one more for each after it
  bool forced = false;        ///< it came from a forced refresh
};

/// Tokens are shared, never changed: the cache holds one, callers and sinks hold it too.
using TokenPtr = std::shared_ptr<const Token>;

/// Why a source could not deliver.
struct FetchError {
  unsigned status = 0;      ///< upstream HTTP status; 0 for transport or parse failures
  std::string error;        ///< upstream `error` code or our own short code
  std::string description;  ///< what went wrong, for people
  std::optional<std::chrono::milliseconds> retry_after;
  std::string request_id;  ///< the attempt's x-ms-client-request-id (see source.hpp)
};

using FetchResult = std::variant<UpstreamToken, FetchError>;

}  // namespace broker
