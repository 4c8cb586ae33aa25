#pragma once
// Helpers shared by the emulator tests: one RSA key per test binary, JWT decoding and
// RS256 verification with OpenSSL (independent of the code under test's signing path).

#include "imds_emulator/emulator.hpp"

#include <openssl/evp.h>

#include <memory>
#include <string>

namespace imds_emulator::testing {

inline const Signer& shared_signer() {
  static const Signer instance = Signer::generate();  // key generation is slow in Debug
  return instance;
}

inline bool verify_rs256(EVP_PKEY* key, const std::string& jwt) {
  const auto last_dot = jwt.rfind('.');
  if (last_dot == std::string::npos) return false;
  const auto signature = base64url_decode(jwt.substr(last_dot + 1));
  if (!signature) return false;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  return EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature->data()),
                          signature->size(), reinterpret_cast<const unsigned char*>(jwt.data()),
                          last_dot) == 1;
}

/// The JSON of part `index` (0 header, 1 claims) of a compact JWT.
inline nlohmann::json jwt_part(const std::string& jwt, int index) {
  const auto first = jwt.find('.');
  const auto second = jwt.find('.', first + 1);
  const std::string part =
      index == 0 ? jwt.substr(0, first) : jwt.substr(first + 1, second - first - 1);
  return nlohmann::json::parse(base64url_decode(part).value());
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
