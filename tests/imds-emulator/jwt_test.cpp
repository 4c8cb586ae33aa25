// Pins: tokens are real RS256 JWTs that verify with the published key (PEM and JWKS).
#include "imds_emulator/jwt.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <memory>

namespace imds_emulator {
namespace {

using nlohmann::json;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

const Signer& signer() { return testing::shared_signer(); }
using testing::verify_rs256;

KeyPtr key_from_jwk(const json& jwk) {
  const auto n = tb::base64url_decode(jwk.at("n").get<std::string>());
  const auto e = tb::base64url_decode(jwk.at("e").get<std::string>());
  if (!n || !e) return {nullptr, EVP_PKEY_free};
  auto* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()),
                         static_cast<int>(n->size()), nullptr);
  auto* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()),
                         static_cast<int>(e->size()), nullptr);
  OSSL_PARAM_BLD* builder = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_N, bn_n);
  OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_E, bn_e);
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(builder);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* key = nullptr;
  EVP_PKEY_fromdata_init(ctx);
  EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(builder);
  BN_free(bn_n);
  BN_free(bn_e);
  return {key, EVP_PKEY_free};
}

TEST(Signer, SignedTokenVerifiesWithThePublicKeyPem) {
  const std::string jwt = signer().sign({{"aud", "https://database.windows.net/"}});
  EXPECT_EQ(jwt.find_first_of("+/="), std::string::npos);
  const std::string pem = signer().public_key_pem();
  ASSERT_EQ(pem.rfind("-----BEGIN PUBLIC KEY-----", 0), 0U);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  KeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  ASSERT_TRUE(key);
  EXPECT_TRUE(verify_rs256(key.get(), jwt));
  std::string tampered = jwt;
  tampered[jwt.find('.') + 2] ^= 1;
  EXPECT_FALSE(verify_rs256(key.get(), tampered));
}

TEST(Signer, HeaderNamesAlgTypAndKid) {
  const std::string jwt = signer().sign({{"x", 1}});
  EXPECT_EQ(testing::jwt_part(jwt, 0),
            (json{{"alg", "RS256"}, {"typ", "JWT"}, {"kid", signer().kid()}}));
  EXPECT_EQ(testing::jwt_part(jwt, 1), (json{{"x", 1}}));
}

TEST(Signer, JwksModulusAndExponentRebuildAKeyThatVerifies) {
  const json jwks = signer().jwks();
  ASSERT_EQ(jwks.at("keys").size(), 1U);
  const json& jwk = jwks["keys"][0];
  EXPECT_EQ(jwk.at("kty"), "RSA");
  EXPECT_EQ(jwk.at("use"), "sig");
  EXPECT_EQ(jwk.at("alg"), "RS256");
  EXPECT_EQ(jwk.at("kid"), signer().kid());
  EXPECT_EQ(jwk.at("e"), "AQAB");
  EXPECT_EQ(tb::base64url_decode(jwk.at("n").get<std::string>())->size(), 256U);  // RSA-2048
  KeyPtr key = key_from_jwk(jwk);
  ASSERT_TRUE(key);
  EXPECT_TRUE(verify_rs256(key.get(), signer().sign({{"sub", "me"}})));
}

}  // namespace
}  // namespace imds_emulator
