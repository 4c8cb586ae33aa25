#include "imds_emulator/jwt.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>

#include <stdexcept>

namespace imds_emulator {
namespace {

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string("OpenSSL: ") + what + " failed");
}

// An RSA parameter (n or e) as big-endian bytes, base64url-encoded.
std::string rsa_param(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) fail("EVP_PKEY_get_bn_param");
  std::string bytes(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(bytes.data()));
  BN_free(bn);
  return tb::base64url_encode(bytes);
}

}  // namespace

Signer Signer::generate(int bits) { return Signer(tb::generate_rsa_key(bits)); }

Signer::Signer(std::shared_ptr<EVP_PKEY> key)
    : key_(std::move(key)),
      n_(rsa_param(key_.get(), OSSL_PKEY_PARAM_RSA_N)),
      e_(rsa_param(key_.get(), OSSL_PKEY_PARAM_RSA_E)) {
  // RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
  const auto digest = tb::sha256(R"({"e":")" + e_ + R"(","kty":"RSA","n":")" + n_ + R"("})");
  kid_ = tb::base64url_encode(
      std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::string Signer::sign(const nlohmann::json& claims) const {
  const nlohmann::json header = {{"alg", "RS256"}, {"typ", "JWT"}, {"kid", kid_}};
  const std::string input =
      tb::base64url_encode(header.dump()) + '.' + tb::base64url_encode(claims.dump());

  return input + '.' + tb::base64url_encode(tb::rs256_sign(key_.get(), input));
}

nlohmann::json Signer::jwks() const {
  return {{"keys", nlohmann::json::array({{{"kty", "RSA"},
                                           {"use", "sig"},
                                           {"alg", "RS256"},
                                           {"kid", kid_},
                                           {"n", n_},
                                           {"e", e_}}})}};
}

std::string Signer::public_key_pem() const { return tb::public_key_pem(key_.get()); }

}  // namespace imds_emulator
