// Pins tb/crypto.hpp, the one crypto unit: SHA-256 against the standard's vectors, strict
// base64url, constant-time secret comparison, PEM keys, RS256 and JWT decoding with each way a
// token can be wrong.
#include "tb/crypto.hpp"

#include "tb/log.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>

namespace tb {
namespace {

using nlohmann::json;

const Key& test_key() {
  static const Key key = generate_rsa_key();  // key generation is slow under ASan
  return key;
}

std::string b64(const std::string& text) { return base64url_encode(text); }

std::string signed_jwt(const json& header, const json& claims, EVP_PKEY* key) {
  const std::string input = b64(header.dump()) + '.' + b64(claims.dump());
  return input + '.' + b64(rs256_sign(key, input));
}

JwtProblem problem_of(const std::string& token) {
  const auto decoded = decode_jwt(token);
  EXPECT_TRUE(std::holds_alternative<JwtProblem>(decoded)) << token;
  return std::holds_alternative<JwtProblem>(decoded) ? std::get<JwtProblem>(decoded)
                                                     : JwtProblem::bad_signature;
}

TEST(Sha256, GivesTheStandardsTestVectorsAndTheLogFingerprintIsItsPrefix) {
  // FIPS 180-2, appendix B.
  EXPECT_EQ(hex(sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex(sha256("abc"), 6), "ba7816bf8f01");
  EXPECT_EQ(log::fingerprint("abc"), "ba7816bf8f01");
}

TEST(SecretEquals, ComparesWholeValues) {
  const std::string secret = "0123456789abcdef0123456789abcdef";
  EXPECT_TRUE(secret_equals(secret, secret));
  EXPECT_FALSE(secret_equals(secret + " ", secret));
  EXPECT_FALSE(secret_equals("", secret));
  EXPECT_FALSE(secret_equals("", ""));  // an unset secret admits nobody
}

TEST(Base64Url, EncodesWithoutPaddingInTheUrlAlphabet) {
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_encode(""), "");
  for (std::string sample : {"a", "ab", "abc", "abcd", "\xff\xfe\xfd\xfc\xfb"}) {
    const std::string encoded = base64url_encode(sample);
    EXPECT_EQ(encoded.find_first_of("+/="), std::string::npos) << encoded;
    EXPECT_EQ(base64url_decode(encoded), sample);
  }
}

TEST(Base64Url, DecodesStrictlyWithoutPadding) {
  EXPECT_EQ(base64url_decode(""), "");
  EXPECT_EQ(base64url_decode("Zm9vYg"), "foob");
  EXPECT_EQ(base64url_decode("-_8"), std::string("\xfb\xff", 2));
  EXPECT_FALSE(base64url_decode("Zm9vYg=="));  // padding
  EXPECT_FALSE(base64url_decode("Zm9vY"));     // 1 char left over
  EXPECT_FALSE(base64url_decode("a"));
  EXPECT_FALSE(base64url_decode("Zm9vYh"));  // non-zero unused bits: not the canonical text
  EXPECT_FALSE(base64url_decode("Zm 9v"));
  EXPECT_FALSE(base64url_decode("ab+c"));  // the standard alphabet's characters
  EXPECT_FALSE(base64url_decode("ab/c"));
  EXPECT_FALSE(base64url_decode(std::string("ab\0c", 4)));
}

TEST(RandomBase64Url, GivesThatManyFreshBytes) {
  const auto a = random_base64url(16);
  const auto b = random_base64url(16);
  EXPECT_EQ(base64url_decode(a)->size(), 16u);
  EXPECT_NE(a, b);
}

TEST(RandomUuid, IsAFreshVersion4UuidInCanonicalForm) {
  const std::regex canonical(
      "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const auto id = random_uuid();
    EXPECT_TRUE(std::regex_match(id, canonical)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(PublicKeyPem, RoundTripsAndRefusesOtherText) {
  const std::string pem = public_key_pem(test_key().get());
  ASSERT_EQ(pem.rfind("-----BEGIN PUBLIC KEY-----", 0), 0u);
  const Key loaded = load_public_key_pem(pem);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(EVP_PKEY_eq(loaded.get(), test_key().get()), 1);
  EXPECT_FALSE(load_public_key_pem(""));
  EXPECT_FALSE(load_public_key_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"));
}

TEST(Rs256, VerifiesItsOwnSignatureAndNothingElse) {
  const auto signature = rs256_sign(test_key().get(), "header.payload");
  EXPECT_EQ(signature.size(), 256u);  // RSA-2048
  EXPECT_TRUE(rs256_verify(test_key().get(), "header.payload", signature));
  EXPECT_FALSE(rs256_verify(test_key().get(), "header.payloaD", signature));
  std::string flipped = signature;
  flipped[10] = static_cast<char>(flipped[10] ^ 1);
  EXPECT_FALSE(rs256_verify(test_key().get(), "header.payload", flipped));
  const Key other = generate_rsa_key();
  EXPECT_FALSE(rs256_verify(other.get(), "header.payload", signature));
  EXPECT_FALSE(rs256_verify(nullptr, "header.payload", signature));
  // The public half alone verifies.
  const Key public_only = load_public_key_pem(public_key_pem(test_key().get()));
  EXPECT_TRUE(rs256_verify(public_only.get(), "header.payload", signature));
}

TEST(Jwt, DecodesHeaderClaimsAndSignedPartWithoutAKey) {
  const std::string token =
      signed_jwt({{"alg", "RS256"}, {"typ", "JWT"}}, {{"exp", 1'800'000'000}}, test_key().get());
  const auto decoded = decode_jwt(token);
  ASSERT_TRUE(std::holds_alternative<Jwt>(decoded));
  const auto& jwt = std::get<Jwt>(decoded);
  EXPECT_EQ(jwt.header["alg"], "RS256");
  EXPECT_EQ(jwt.claims["exp"], 1'800'000'000);
  EXPECT_EQ(jwt.signed_part, token.substr(0, token.rfind('.')));
  EXPECT_EQ(check_rs256(jwt, test_key().get()), std::nullopt);
}

TEST(Jwt, NamesEachWayATokenIsWrong) {
  const std::string e30 = b64("{}");
  EXPECT_EQ(problem_of(""), JwtProblem::not_three_parts);
  EXPECT_EQ(problem_of("a.b"), JwtProblem::not_three_parts);
  EXPECT_EQ(problem_of("a.b.c.d"), JwtProblem::not_three_parts);
  EXPECT_EQ(problem_of("a*b." + e30 + ".AA"), JwtProblem::not_base64url);
  EXPECT_EQ(problem_of(e30 + "=." + e30 + ".AA"), JwtProblem::not_base64url);
  EXPECT_EQ(problem_of(b64("not json") + "." + e30 + ".AA"), JwtProblem::header_not_object);
  EXPECT_EQ(problem_of(b64("[1]") + "." + e30 + ".AA"), JwtProblem::header_not_object);
  EXPECT_EQ(problem_of(e30 + "." + b64("{not json") + ".AA"), JwtProblem::claims_not_object);

  auto check = [](const std::string& token, EVP_PKEY* key) {
    return check_rs256(std::get<Jwt>(decode_jwt(token)), key);
  };
  EXPECT_EQ(
      check(signed_jwt({{"alg", "HS256"}}, json::object(), test_key().get()), test_key().get()),
      JwtProblem::not_rs256);
  EXPECT_EQ(check(signed_jwt({{"typ", "JWT"}}, json::object(), test_key().get()), test_key().get()),
            JwtProblem::not_rs256);
  const std::string good = signed_jwt({{"alg", "RS256"}}, {{"sub", "me"}}, test_key().get());
  std::string tampered = good;
  tampered[good.find('.') + 2] = tampered[good.find('.') + 2] == 'A' ? 'B' : 'A';
  if (std::holds_alternative<Jwt>(decode_jwt(tampered))) {
    EXPECT_EQ(check(tampered, test_key().get()), JwtProblem::bad_signature);
  }
  const Key other = generate_rsa_key();
  EXPECT_EQ(check(good, other.get()), JwtProblem::bad_signature);
  for (auto problem :
       {JwtProblem::not_three_parts, JwtProblem::not_base64url, JwtProblem::header_not_object,
        JwtProblem::claims_not_object, JwtProblem::not_rs256, JwtProblem::bad_signature}) {
    EXPECT_FALSE(to_string(problem).empty());
  }
}

}  // namespace
}  // namespace tb
