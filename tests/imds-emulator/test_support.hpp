#pragma once
// Helpers shared by the emulator tests: one RSA key per test binary, JWT decoding and
// RS256 verification (tb/crypto.hpp, pinned by tests/common/crypto_test.cpp).

#include "imds_emulator/emulator.hpp"
#include "tb/crypto.hpp"

#include <openssl/evp.h>

#include <memory>
#include <string>

namespace imds_emulator::testing {

inline const Signer& shared_signer() {
  static const Signer instance = Signer::generate();  // key generation is slow in Debug
  return instance;
}

inline bool verify_rs256(EVP_PKEY* key, const std::string& jwt) {
  const auto decoded = tb::decode_jwt(jwt);
  return std::holds_alternative<tb::Jwt>(decoded) &&
         !tb::check_rs256(std::get<tb::Jwt>(decoded), key);
}

/// The JSON of part `index` (0 header, 1 claims) of a compact JWT.
inline nlohmann::json jwt_part(const std::string& jwt, int index) {
  auto decoded = std::get<tb::Jwt>(tb::decode_jwt(jwt));
  return index == 0 ? std::move(decoded.header) : std::move(decoded.claims);
}

inline Request make_request(boost::beast::http::verb method, std::string target,
                            bool metadata = true, std::string body = {}) {
  Request request{method, target, 11};
  if (metadata) request.set("Metadata", "true");
  request.body() = std::move(body);
  request.prepare_payload();
  return request;
}

}  // namespace imds_emulator::testing
