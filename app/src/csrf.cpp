#include "todo/csrf.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <stdexcept>
#include <vector>

namespace todo {
namespace {

std::string to_hex(const unsigned char* data, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 0xf];
  }
  return out;
}

}  // namespace

Csrf::Csrf(std::string secret) : secret_(std::move(secret)) {
  if (secret_.size() < 16) throw std::invalid_argument("the CSRF secret must be at least 16 bytes");
}

std::string Csrf::random_hex(std::size_t bytes) {
  std::vector<unsigned char> buffer(bytes);
  if (RAND_bytes(buffer.data(), static_cast<int>(buffer.size())) != 1) {
    throw std::runtime_error("OpenSSL RAND_bytes failed");
  }
  return to_hex(buffer.data(), buffer.size());
}

std::string Csrf::token_for(std::string_view cookie) const {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(cookie.data()), cookie.size(), mac.data(), &size);
  return to_hex(mac.data(), size);
}

bool Csrf::verify(std::string_view cookie, std::string_view token) const {
  // A cookie we did not issue has the wrong shape; refuse it before doing any work.
  if (cookie.size() != 64 || token.size() != 64) return false;
  const std::string expected = token_for(cookie);
  return CRYPTO_memcmp(expected.data(), token.data(), expected.size()) == 0;
}

}  // namespace todo
