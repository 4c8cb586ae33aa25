#pragma once
// RS256 signing for the emulator: one RSA-2048 key generated per process, JWTs in compact
// form, and the public key published as a JWKS and as PEM. All crypto is OpenSSL 3 EVP.

#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace imds_emulator {

/// base64url (RFC 4648 §5) without padding.
std::string base64url_encode(std::string_view bytes);
/// Inverse of base64url_encode; nullopt for text that is not unpadded base64url.
std::optional<std::string> base64url_decode(std::string_view text);
/// `bytes` random bytes from OpenSSL's CSPRNG, base64url-encoded.
std::string random_base64url(std::size_t bytes);

/// Reads a PEM public key (SubjectPublicKeyInfo) or certificate; nullptr with `error` on failure.
std::shared_ptr<EVP_PKEY> load_public_key_pem(std::string_view pem, std::string& error);

/// Checks an RS256 JWT's signature with `key` and returns its claims; nullopt with `error`
/// ("malformed", "unsupported alg", "invalid signature") otherwise. Claims are not checked.
std::optional<nlohmann::json> verify_rs256(std::string_view jwt, EVP_PKEY* key, std::string& error);

class Signer {
 public:
  /// Generates a fresh RSA key; throws std::runtime_error when OpenSSL fails.
  static Signer generate(int bits = 2048);

  /// Signs `claims` as a JWT with header {"alg":"RS256","typ":"JWT","kid":kid()}.
  std::string sign(const nlohmann::json& claims) const;
  /// RFC 7638 thumbprint of the public key.
  const std::string& kid() const { return kid_; }
  /// {"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid","n","e"}]}
  nlohmann::json jwks() const;
  /// The public key as PEM SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----").
  std::string public_key_pem() const;
  EVP_PKEY* key() const { return key_.get(); }

 private:
  explicit Signer(std::shared_ptr<EVP_PKEY> key);
  std::shared_ptr<EVP_PKEY> key_;
  std::string n_;  // base64url, big-endian
  std::string e_;
  std::string kid_;
};

}  // namespace imds_emulator
