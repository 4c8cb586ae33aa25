#include "imds_emulator/jwt.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <stdexcept>
#include <vector>

namespace imds_emulator {
namespace {

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string("OpenSSL: ") + what + " failed");
}

std::string sha256(std::string_view data) {
  std::string digest(EVP_MAX_MD_SIZE, '\0');
  unsigned int size = 0;
  if (EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(digest.data()), &size,
                 EVP_sha256(), nullptr) != 1) {
    fail("EVP_Digest");
  }
  digest.resize(size);
  return digest;
}

// An RSA parameter (n or e) as big-endian bytes, base64url-encoded.
std::string rsa_param(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) fail("EVP_PKEY_get_bn_param");
  std::string bytes(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(bytes.data()));
  BN_free(bn);
  return base64url_encode(bytes);
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  if (bytes.empty()) return {};
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int size = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                   reinterpret_cast<const unsigned char*>(bytes.data()),
                                   static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(size));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string standard;
  standard.reserve(text.size() + 3);
  for (char c : text) {
    if (c == '+' || c == '/' || c == '=') return std::nullopt;  // not the url alphabet
    standard += c == '-' ? '+' : c == '_' ? '/' : c;
  }
  const std::size_t padding = (4 - standard.size() % 4) % 4;
  standard.append(padding, '=');
  std::string out(standard.size() / 4 * 3, '\0');
  const int size = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                   reinterpret_cast<const unsigned char*>(standard.data()),
                                   static_cast<int>(standard.size()));
  if (size < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(size) - padding);  // EVP_DecodeBlock counts the padding
  return out;
}

std::string random_base64url(std::size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    fail("RAND_bytes");
  }
  return base64url_encode(raw);
}

std::shared_ptr<EVP_PKEY> load_public_key_pem(std::string_view pem, std::string& error) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) {
    error = "out of memory";
    return nullptr;
  }
  if (EVP_PKEY* key = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr)) {
    return {key, EVP_PKEY_free};
  }
  error = "not a PEM public key (-----BEGIN PUBLIC KEY-----)";
  return nullptr;
}

std::optional<nlohmann::json> verify_rs256(std::string_view jwt, EVP_PKEY* key,
                                           std::string& error) {
  const auto first = jwt.find('.');
  const auto second = first == std::string_view::npos ? first : jwt.find('.', first + 1);
  if (second == std::string_view::npos || jwt.find('.', second + 1) != std::string_view::npos) {
    error = "malformed: not three dot-separated parts";
    return std::nullopt;
  }
  auto header_text = base64url_decode(jwt.substr(0, first));
  auto claims_text = base64url_decode(jwt.substr(first + 1, second - first - 1));
  auto signature = base64url_decode(jwt.substr(second + 1));
  if (!header_text || !claims_text || !signature) {
    error = "malformed: a part is not base64url";
    return std::nullopt;
  }
  auto header = nlohmann::json::parse(*header_text, nullptr, false);
  auto claims = nlohmann::json::parse(*claims_text, nullptr, false);
  if (!header.is_object() || !claims.is_object()) {
    error = "malformed: header or claims are not JSON objects";
    return std::nullopt;
  }
  if (header.value("alg", "") != "RS256") {
    error = "unsupported alg (only RS256)";
    return std::nullopt;
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  const auto* input = reinterpret_cast<const unsigned char*>(jwt.data());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature->data()),
                       signature->size(), input, second) != 1) {
    error = "invalid signature";
    return std::nullopt;
  }
  return claims;
}

Signer Signer::generate(int bits) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(bits));
  if (key == nullptr) fail("RSA key generation");
  return Signer(std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free));
}

Signer::Signer(std::shared_ptr<EVP_PKEY> key)
    : key_(std::move(key)),
      n_(rsa_param(key_.get(), OSSL_PKEY_PARAM_RSA_N)),
      e_(rsa_param(key_.get(), OSSL_PKEY_PARAM_RSA_E)) {
  // RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
  kid_ = base64url_encode(sha256(R"({"e":")" + e_ + R"(","kty":"RSA","n":")" + n_ + R"("})"));
}

std::string Signer::sign(const nlohmann::json& claims) const {
  const nlohmann::json header = {{"alg", "RS256"}, {"typ", "JWT"}, {"kid", kid_}};
  const std::string input = base64url_encode(header.dump()) + '.' + base64url_encode(claims.dump());

  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t size = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &size, data, input.size()) != 1) {
    fail("EVP_DigestSign");
  }
  std::string signature(size, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size, data,
                     input.size()) != 1) {
    fail("EVP_DigestSign");
  }
  signature.resize(size);
  return input + '.' + base64url_encode(signature);
}

nlohmann::json Signer::jwks() const {
  return {{"keys", nlohmann::json::array({{{"kty", "RSA"},
                                           {"use", "sig"},
                                           {"alg", "RS256"},
                                           {"kid", kid_},
                                           {"n", n_},
                                           {"e", e_}}})}};
}

std::string Signer::public_key_pem() const {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key_.get()) != 1) fail("PEM_write_bio_PUBKEY");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(size)};
}

}  // namespace imds_emulator
