#include "jwt_peek.hpp"

#include <openssl/evp.h>

#include <vector>

namespace test_support {

namespace {
std::string base64url_decode(std::string text) {
  for (char& c : text) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (text.size() % 4 != 0) text += '=';
  std::vector<unsigned char> out(text.size());
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return {};
  std::size_t size = static_cast<std::size_t>(n);
  // EVP_DecodeBlock counts padding as zero bytes.
  for (auto it = text.rbegin(); it != text.rend() && *it == '=' && size > 0; ++it) --size;
  return std::string(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(size));
}
}  // namespace

nlohmann::json jwt_claims(const std::string& token) {
  const auto first = token.find('.');
  const auto second = token.find('.', first + 1);
  if (first == std::string::npos || second == std::string::npos) return nullptr;
  return nlohmann::json::parse(base64url_decode(token.substr(first + 1, second - first - 1)),
                               nullptr, false);
}

std::string jwt_signature(const std::string& token) {
  const auto last = token.rfind('.');
  if (last == std::string::npos) return {};
  return token.substr(last + 1);
}

}  // namespace test_support
