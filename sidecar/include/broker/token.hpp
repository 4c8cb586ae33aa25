#pragma once
// The values that flow between sources, the cache and the API.

#include "broker/clock.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
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

struct TokenKey {
  Identity identity;
  std::string resource;

  bool operator==(const TokenKey&) const = default;
  /// A flat string that identifies the key in maps.
  std::string flat() const;
};

/// A token as a source delivers it.
struct UpstreamToken {
  std::string access_token;
  std::string token_type = "Bearer";
  std::chrono::seconds expires_in{0};  ///< lifetime left when the upstream answered
  std::int64_t expires_on = 0;         ///< unix seconds, as the upstream said (or derived)
  std::optional<std::chrono::seconds> refresh_in;
  std::string resource;        ///< as echoed by the upstream (may be empty)
  std::string client_id;       ///< optional echo from IMDS
  std::string not_before;      ///< optional echo from IMDS
  std::string ext_expires_in;  ///< optional echo from IMDS
};

/// A token held by the cache.
struct Token {
  UpstreamToken upstream;
  SteadyTime expires_at;  ///< from expires_in against the monotonic clock
  SteadyTime acquired_at;
  std::string fingerprint;  ///< short SHA-256 prefix: what logs show instead of the token
};

/// Why a source could not deliver.
struct FetchError {
  unsigned status = 0;      ///< upstream HTTP status; 0 for transport or parse failures
  std::string error;        ///< upstream `error` code or our own short code
  std::string description;  ///< what went wrong, for people
  std::optional<std::chrono::milliseconds> retry_after;
};

using FetchResult = std::variant<UpstreamToken, FetchError>;

}  // namespace broker
