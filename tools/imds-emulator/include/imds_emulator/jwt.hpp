#pragma once
// RS256 signing for the emulator: one RSA-2048 key generated per process, JWTs in compact
// form, and the public key published as a JWKS and as PEM. The crypto itself is tb/crypto.hpp.

#include "tb/crypto.hpp"

#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace imds_emulator {

class Signer {
 public:
  /// Generates a fresh RSA key; throws std::runtime_error when OpenSSL fails.
  static Signer generate(int bits = 2048);
  /// A signer for `key` (an RSA private key).
  explicit Signer(std::shared_ptr<EVP_PKEY> key);

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
  std::shared_ptr<EVP_PKEY> key_;
  std::string n_;  // base64url, big-endian
  std::string e_;
  std::string kid_;
};

}  // namespace imds_emulator
