#pragma once
// Token checks for PostgreSQL logins (pam_token_broker.so -> pg-token-verifier): is this JWT a
// currently valid RS256 token from our issuer, for the database audience, and for an identity
// the login role allows? Pure functions: no I/O except load_config, time is passed in.

#include <openssl/evp.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace pg_token_auth {

/// Longest token accepted; real Entra/emulator tokens are 1.5-2.5 KB.
inline constexpr std::size_t kMaxTokenSize = std::size_t{16} * 1024;
inline constexpr std::string_view kDefaultAudience = "https://ossrdbms-aad.database.windows.net";

struct Config {
  std::shared_ptr<EVP_PKEY> public_key;  ///< RSA, checks RS256 signatures
  std::string audience{kDefaultAudience};
  std::string issuer;  ///< "" = any issuer
  std::string log_path;
  std::chrono::seconds clock_skew{60};  ///< tolerated for nbf (a token from a clock just ahead)
  /// Login role -> object ids / client ids (oid / appid claims) that may log in as it.
  std::map<std::string, std::vector<std::string>> roles;
  /// SHA-256 (lower-case hex) of tokens that are refused although valid: the "revoked" file,
  /// read with the config at every login.
  std::set<std::string> revoked;
};

struct ConfigResult {
  std::optional<Config> config;
  std::string error;  ///< set when config is empty: what is wrong and where
};

/// Parses the JSON config (see README.md); `public_key_pem` is the text of the file it names,
/// read by the caller through `read_file`, which returns nullopt when the file is unreadable.
ConfigResult parse_config(std::string_view json_text,
                          std::optional<std::string> (*read_file)(const std::string& path));
/// Reads and parses the config file at `path` (the one place that touches the file system).
ConfigResult load_config(const std::string& path);
/// An RSA public key from PEM SubjectPublicKeyInfo text; nullptr when it is not one.
std::shared_ptr<EVP_PKEY> parse_public_key(std::string_view pem);

/// First 12 hex digits of SHA-256(token): names a token in logs without revealing it.
std::string fingerprint(std::string_view token);

struct Verdict {
  bool accepted = false;
  std::string reason;  ///< "ok", or why the token was refused (never contains the token)
  std::string fingerprint;
  std::optional<std::int64_t> iat;  ///< claims of a token whose signature checked out
  std::optional<std::int64_t> exp;
  std::string oid;
  std::string appid;
};

/// Decides whether `token` may log in as `role` at `now`.
Verdict verify(std::string_view token, std::string_view role, const Config& config,
               std::chrono::system_clock::time_point now);

/// One JSON log line (no trailing newline): time, role, result, reason, fingerprint, iat, exp,
/// oid, appid.
std::string log_line(const Verdict& verdict, std::string_view role,
                     std::chrono::system_clock::time_point now);

}  // namespace pg_token_auth
