// SHA-256 uses OpenSSL's direct functions rather than EVP_Digest: the first EVP digest or
// signature call loads and initialises OpenSSL's default provider (its algorithm tables and name
// maps), which makes about 1.9 MiB more of libcrypto resident in a process that otherwise never
// needs it, such as token-broker with an IMDS source (measured with /proc/PID/smaps; see
// docs/performance.md). The direct functions run the same SHA-256 code. OpenSSL 3 marks them
// deprecated in favour of EVP, hence the macro; a test pins the digests to the standard's test
// vectors. base64 (EVP_EncodeBlock, EVP_DecodeBlock) needs no provider either; only keys and
// signatures do, and the broker uses neither.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "tb/crypto.hpp"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <stdexcept>

namespace tb {
namespace {

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string("OpenSSL: ") + what + " failed");
}

const unsigned char* bytes_of(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

bool url_alphabet(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

using MdContext = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

}  // namespace

Sha256 sha256(std::string_view data) {
  Sha256 digest{};
  SHA256_CTX context;
  SHA256_Init(&context);
  SHA256_Update(&context, data.data(), data.size());
  SHA256_Final(digest.data(), &context);
  return digest;
}

std::string hex(const Sha256& digest, std::size_t bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes);
  for (std::size_t i = 0; i < bytes && i < digest.size(); ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

bool secret_equals(std::string_view given, std::string_view expected) {
  // Digests of equal length, compared in constant time: neither where the two differ nor the
  // expected secret's length shows in the time taken.
  const auto a = sha256(given);
  const auto b = sha256(expected);
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0 && !expected.empty();
}

std::string base64url_encode(std::string_view bytes) {
  if (bytes.empty()) return {};
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int size = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes_of(bytes),
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
    if (!url_alphabet(c)) return std::nullopt;  // padding, '+', '/', whitespace, anything else
    standard += c == '-' ? '+' : c == '_' ? '/' : c;
  }
  const std::size_t padding = (4 - standard.size() % 4) % 4;
  standard.append(padding, '=');
  std::string out(standard.size() / 4 * 3, '\0');
  const int size = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes_of(standard),
                                   static_cast<int>(standard.size()));
  if (size < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(size) - padding);  // EVP_DecodeBlock counts the padding
  // Canonical encodings only (the unused bits of the last character zero): one text per value.
  if (base64url_encode(out) != text) return std::nullopt;
  return out;
}

std::string random_base64url(std::size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    fail("RAND_bytes");
  }
  return base64url_encode(raw);
}

std::string random_uuid() {
  std::array<unsigned char, 16> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) fail("RAND_bytes");
  raw[6] = static_cast<unsigned char>((raw[6] & 0x0f) | 0x40);  // version 4
  raw[8] = static_cast<unsigned char>((raw[8] & 0x3f) | 0x80);  // variant 10
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kDigits[raw[i] >> 4];
    out += kDigits[raw[i] & 0x0f];
  }
  return out;
}

Key generate_rsa_key(int bits) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(bits));
  if (key == nullptr) fail("RSA key generation");
  return {key, EVP_PKEY_free};
}

Key load_public_key_pem(std::string_view pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) return nullptr;
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) return nullptr;
  return {key, EVP_PKEY_free};
}

std::string public_key_pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) fail("PEM_write_bio_PUBKEY");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return {data, static_cast<std::size_t>(size)};
}

std::string rs256_sign(EVP_PKEY* key, std::string_view data) {
  MdContext ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t size = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &size, bytes_of(data), data.size()) != 1) {
    fail("EVP_DigestSign");
  }
  std::string signature(size, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                     bytes_of(data), data.size()) != 1) {
    fail("EVP_DigestSign");
  }
  signature.resize(size);
  return signature;
}

bool rs256_verify(EVP_PKEY* key, std::string_view data, std::string_view signature) {
  if (key == nullptr) return false;
  MdContext ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
         EVP_DigestVerify(ctx.get(), bytes_of(signature), signature.size(), bytes_of(data),
                          data.size()) == 1;
}

std::string_view to_string(JwtProblem problem) {
  switch (problem) {
    case JwtProblem::not_three_parts:
      return "not a JWT (expected header.payload.signature)";
    case JwtProblem::not_base64url:
      return "a part of the JWT is not base64url";
    case JwtProblem::header_not_object:
      return "the JWT header is not a JSON object";
    case JwtProblem::claims_not_object:
      return "the JWT payload is not a JSON object";
    case JwtProblem::not_rs256:
      return "the JWT's alg is not RS256 (the only one accepted)";
    case JwtProblem::bad_signature:
      return "the JWT's signature does not verify";
  }
  return "not a valid JWT";
}

std::variant<Jwt, JwtProblem> decode_jwt(std::string_view token) {
  const auto first = token.find('.');
  const auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return JwtProblem::not_three_parts;
  }
  const auto header_text = base64url_decode(token.substr(0, first));
  const auto claims_text = base64url_decode(token.substr(first + 1, second - first - 1));
  auto signature = base64url_decode(token.substr(second + 1));
  if (!header_text || !claims_text || !signature) return JwtProblem::not_base64url;
  Jwt jwt;
  jwt.header = nlohmann::json::parse(*header_text, nullptr, false);
  if (!jwt.header.is_object()) return JwtProblem::header_not_object;
  jwt.claims = nlohmann::json::parse(*claims_text, nullptr, false);
  if (!jwt.claims.is_object()) return JwtProblem::claims_not_object;
  jwt.signature = std::move(*signature);
  jwt.signed_part = token.substr(0, second);
  return jwt;
}

std::optional<JwtProblem> check_rs256(const Jwt& jwt, EVP_PKEY* key) {
  const auto alg = jwt.header.find("alg");
  if (alg == jwt.header.end() || !alg->is_string() || alg->get<std::string>() != "RS256") {
    return JwtProblem::not_rs256;
  }
  if (!rs256_verify(key, jwt.signed_part, jwt.signature)) return JwtProblem::bad_signature;
  return std::nullopt;
}

}  // namespace tb
