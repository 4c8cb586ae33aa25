#include "jwt_peek.hpp"

#include "tb/crypto.hpp"

namespace test_support {

nlohmann::json jwt_claims(const std::string& token) {
  const auto decoded = tb::decode_jwt(token);
  if (const auto* jwt = std::get_if<tb::Jwt>(&decoded)) return jwt->claims;
  return nullptr;
}

std::string jwt_signature(const std::string& token) {
  const auto last = token.rfind('.');
  if (last == std::string::npos) return {};
  return token.substr(last + 1);
}

}  // namespace test_support
