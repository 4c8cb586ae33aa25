#pragma once
// The project's one crypto unit, on OpenSSL 3: SHA-256, constant-time secret comparison,
// base64url, random identifiers, RSA keys as PEM, RS256 signatures and compact JWTs. The
// emulator signs with it, the PostgreSQL verifier and the tests check with it, the broker
// fingerprints and compares with it. Library target tb_crypto (OpenSSL and nlohmann/json only, so
// that the small verifier program need not link the rest of tb_common).

#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace tb {

using Sha256 = std::array<unsigned char, 32>;

/// The SHA-256 digest of `data`.
Sha256 sha256(std::string_view data);

/// The first `bytes` bytes of `digest` as lower-case hex.
std::string hex(const Sha256& digest, std::size_t bytes = 32);

/// True when `given` equals `expected` and `expected` is not empty, in time that does not depend
/// on where they differ (both are hashed first, so not on their lengths either).
bool secret_equals(std::string_view given, std::string_view expected);

/// base64url (RFC 4648 section 5) without padding.
std::string base64url_encode(std::string_view bytes);
/// Strict inverse of base64url_encode: only the URL alphabet, no padding, and the canonical
/// encoding only (unused bits zero); nullopt for anything else.
std::optional<std::string> base64url_decode(std::string_view text);
/// `bytes` random bytes from OpenSSL's CSPRNG, base64url-encoded; throws std::runtime_error
/// when the generator fails.
std::string random_base64url(std::size_t bytes);
/// A random UUID (RFC 9562 version 4, lower-case, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") from
/// the same generator; throws std::runtime_error when it fails.
std::string random_uuid();

using Key = std::shared_ptr<EVP_PKEY>;

/// A new RSA key pair; throws std::runtime_error when OpenSSL fails.
Key generate_rsa_key(int bits = 2048);
/// A public key from PEM SubjectPublicKeyInfo text ("-----BEGIN PUBLIC KEY-----"); nullptr when
/// the text is not one.
Key load_public_key_pem(std::string_view pem);
/// `key`'s public half as PEM SubjectPublicKeyInfo; throws std::runtime_error when OpenSSL fails.
std::string public_key_pem(EVP_PKEY* key);

/// The RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature of `data`; throws std::runtime_error.
std::string rs256_sign(EVP_PKEY* key, std::string_view data);
/// Whether `signature` is `key`'s RS256 signature of `data`.
bool rs256_verify(EVP_PKEY* key, std::string_view data, std::string_view signature);

/// A compact JWT, decoded but not verified.
struct Jwt {
  nlohmann::json header;         ///< a JSON object
  nlohmann::json claims;         ///< a JSON object
  std::string signature;         ///< the decoded signature bytes
  std::string_view signed_part;  ///< "header.payload" as received: what the signature covers
};

/// Why a text is not a (valid) JWT.
enum class JwtProblem {
  not_three_parts,    ///< not header.payload.signature
  not_base64url,      ///< a part is not strict base64url
  header_not_object,  ///< the header is not a JSON object
  claims_not_object,  ///< the payload is not a JSON object
  not_rs256,          ///< the header's alg is missing or not RS256
  bad_signature,      ///< the RS256 signature does not verify with the key
};
/// A short description of `problem`, for logs and error responses.
std::string_view to_string(JwtProblem problem);

/// Splits and decodes `token` without checking its signature (`signed_part` points into it).
std::variant<Jwt, JwtProblem> decode_jwt(std::string_view token);
/// Not for a temporary: `signed_part` would point into a string that is gone.
std::variant<Jwt, JwtProblem> decode_jwt(std::string&& token) = delete;
/// Checks that `jwt` says alg RS256 and that its signature verifies with `key`.
std::optional<JwtProblem> check_rs256(const Jwt& jwt, EVP_PKEY* key);

}  // namespace tb
