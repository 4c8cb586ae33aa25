// pg_token_auth::verify and friends: which tokens may log in as which role, and what is logged.
#include "pg_token_auth/verify.hpp"
#include "imds_emulator/jwt.hpp"
#include "tb/crypto.hpp"
#include "tb/log.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <set>

namespace {

using nlohmann::json;
using pg_token_auth::Config;
using pg_token_auth::verify;
using namespace std::chrono_literals;

constexpr std::int64_t kNow = 1'800'000'000;
constexpr const char* kOid = "22222222-2222-2222-2222-222222222222";
constexpr const char* kAppId = "11111111-1111-1111-1111-111111111111";
const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(kNow));

const imds_emulator::Signer& signer() {
  static const auto s = imds_emulator::Signer::generate();
  return s;
}

json claims() {
  return {{"aud", "https://ossrdbms-aad.database.windows.net"},
          {"iss", "https://sts.windows.net/tenant/"},
          {"iat", kNow - 10},
          {"nbf", kNow - 10},
          {"exp", kNow + 3600},
          {"oid", kOid},
          {"appid", kAppId}};
}

Config config() {
  Config c;
  c.public_key = pg_token_auth::parse_public_key(signer().public_key_pem());
  c.roles = {{"todo_app", {kOid}}, {"reporting", {kAppId}}, {"other", {"33333333"}}};
  return c;
}

std::string b64(const std::string& text) { return tb::base64url_encode(text); }

// A token with any header, signed (or not) as the test says.
std::string unsigned_token(const json& header, const json& payload, const std::string& sig) {
  return b64(header.dump()) + "." + b64(payload.dump()) + "." + b64(sig);
}

TEST(Verify, AcceptsAValidTokenAndReportsItsClaims) {
  const auto token = signer().sign(claims());
  const auto v = verify(token, "todo_app", config(), now);
  EXPECT_TRUE(v.accepted) << v.reason;
  EXPECT_EQ(v.reason, "ok");
  EXPECT_EQ(v.iat, kNow - 10);
  EXPECT_EQ(v.exp, kNow + 3600);
  EXPECT_EQ(v.oid, kOid);
  EXPECT_EQ(v.fingerprint, pg_token_auth::fingerprint(token));
  EXPECT_EQ(v.fingerprint.size(), 12u);
  // The broker and tokenctl log the same fingerprint (token_sha256): logs can be correlated.
  EXPECT_EQ(v.fingerprint, tb::log::fingerprint(token));
}

TEST(Verify, AcceptsByAppIdWhenTheRoleListsTheClientId) {
  EXPECT_TRUE(verify(signer().sign(claims()), "reporting", config(), now).accepted);
}

TEST(Verify, RefusesAnExpiredTokenAndOneExpiringNow) {
  auto c = claims();
  c["exp"] = kNow - 1;
  EXPECT_EQ(verify(signer().sign(c), "todo_app", config(), now).reason, "expired");
  c["exp"] = kNow;
  EXPECT_EQ(verify(signer().sign(c), "todo_app", config(), now).reason, "expired");
  c.erase("exp");
  EXPECT_EQ(verify(signer().sign(c), "todo_app", config(), now).reason, "no exp claim");
}

TEST(Verify, RefusesNbfInTheFutureBeyondTheSkewOnly) {
  auto c = claims();
  c["nbf"] = kNow + 30;  // within the default 60 s skew
  EXPECT_TRUE(verify(signer().sign(c), "todo_app", config(), now).accepted);
  c["nbf"] = kNow + 61;
  EXPECT_EQ(verify(signer().sign(c), "todo_app", config(), now).reason, "not valid yet (nbf)");
  c["nbf"] = "soon";
  EXPECT_FALSE(verify(signer().sign(c), "todo_app", config(), now).accepted);
}

TEST(Verify, RefusesAnotherAudienceAndAcceptsAConfiguredOne) {
  auto c = claims();
  c["aud"] = "https://database.windows.net/";
  EXPECT_EQ(verify(signer().sign(c), "todo_app", config(), now).reason, "wrong audience");
  auto custom = config();
  custom.audience = "https://database.windows.net/";
  EXPECT_TRUE(verify(signer().sign(c), "todo_app", custom, now).accepted);
  c["aud"] = json::array({"x", "https://ossrdbms-aad.database.windows.net"});
  EXPECT_TRUE(verify(signer().sign(c), "todo_app", config(), now).accepted);
  c.erase("aud");
  EXPECT_EQ(verify(signer().sign(c), "todo_app", config(), now).reason, "wrong audience");
}

TEST(Verify, ChecksTheIssuerOnlyWhenConfigured) {
  auto custom = config();
  custom.issuer = "https://sts.windows.net/other/";
  EXPECT_EQ(verify(signer().sign(claims()), "todo_app", custom, now).reason, "wrong issuer");
  custom.issuer = "https://sts.windows.net/tenant/";
  EXPECT_TRUE(verify(signer().sign(claims()), "todo_app", custom, now).accepted);
}

TEST(Verify, RefusesATokenWithAnyByteFlipped) {
  const auto token = signer().sign(claims());
  // A flipped signature byte, and a payload changed after signing.
  auto bad_sig = token;
  auto& last = bad_sig[bad_sig.size() - 2];
  last = last == 'A' ? 'B' : 'A';
  EXPECT_EQ(verify(bad_sig, "todo_app", config(), now).reason, "bad signature");

  const auto dot1 = token.find('.');
  const auto dot2 = token.find('.', dot1 + 1);
  auto c = claims();
  c["oid"] = "33333333";
  const auto forged = token.substr(0, dot1) + "." + b64(c.dump()) + token.substr(dot2);
  EXPECT_EQ(verify(forged, "other", config(), now).reason, "bad signature");
}

TEST(Verify, RefusesATokenSignedWithAnotherKey) {
  const auto other = imds_emulator::Signer::generate();
  EXPECT_EQ(verify(other.sign(claims()), "todo_app", config(), now).reason, "bad signature");
}

TEST(Verify, RefusesAlgNoneAndHs256) {
  const auto token = signer().sign(claims());
  const auto signature = token.substr(token.rfind('.') + 1);
  EXPECT_EQ(
      verify(unsigned_token({{"alg", "none"}}, claims(), ""), "todo_app", config(), now).reason,
      "alg none is not RS256");
  // HS256 "signed" with the public key as the HMAC secret: the classic confusion attack.
  EXPECT_EQ(verify(unsigned_token({{"alg", "HS256"}, {"typ", "JWT"}}, claims(), "mac"), "todo_app",
                   config(), now)
                .reason,
            "alg HS256 is not RS256");
  EXPECT_EQ(
      verify(unsigned_token({{"typ", "JWT"}}, claims(), "x"), "todo_app", config(), now).reason,
      "header has no alg");
  EXPECT_FALSE(verify(token.substr(0, token.rfind('.') + 1), "todo_app", config(), now).accepted);
}

TEST(Verify, RefusesMalformedTokens) {
  const auto token = signer().sign(claims());
  const std::map<std::string, std::string> cases = {
      {"", "empty password"},
      {"password123", "not a JWT (expected header.payload.signature)"},
      {"a.b", "not a JWT (expected header.payload.signature)"},
      {token + ".x", "not a JWT (expected header.payload.signature)"},
      {"a*b.c.d", "bad base64url in token"},
      {"eyJhbGciOiJSUzI1NiJ9=.e30.AA", "bad base64url in token"},  // padding is not base64url
      {"Zm9v+.e30.AA", "bad base64url in token"},                  // '+' is not base64url
      {b64("not json") + ".e30.AA", "header is not a JSON object"},
      {b64("[1]") + ".e30.AA", "header is not a JSON object"},
  };
  for (const auto& [input, reason] : cases) {
    const auto v = verify(input, "todo_app", config(), now);
    EXPECT_FALSE(v.accepted) << input;
    EXPECT_EQ(v.reason, reason) << input;
  }
  // A signed payload that is not JSON.
  const auto header = token.substr(0, token.find('.'));
  std::string payload = b64("{not json");
  EXPECT_FALSE(verify(header + "." + payload + ".AA", "todo_app", config(), now).accepted);
  EXPECT_EQ(
      verify(std::string(pg_token_auth::kMaxTokenSize + 1, 'a'), "todo_app", config(), now).reason,
      "token longer than 16 KiB");
}

TEST(Verify, RefusesARoleThatIsNotMappedOrAnIdentityTheRoleDoesNotAllow) {
  const auto token = signer().sign(claims());
  EXPECT_EQ(verify(token, "postgres", config(), now).reason, "role not mapped");
  EXPECT_EQ(verify(token, "other", config(), now).reason, "identity not allowed for role");
  auto c = claims();
  c.erase("oid");
  c.erase("appid");
  EXPECT_EQ(verify(signer().sign(c), "todo_app", config(), now).reason,
            "identity not allowed for role");
}

TEST(Verify, AcceptsA2500CharacterToken) {
  auto c = claims();
  // Real Entra tokens carry many claims: pad one until the token is 2,500 characters.
  std::string token;
  for (std::size_t filler = 1000; token.size() < 2500; ++filler) {
    c["groups"] = std::string(filler, 'g');
    token = signer().sign(c);
  }
  ASSERT_LE(token.size(), 2502u);
  EXPECT_TRUE(verify(token, "todo_app", config(), now).accepted);
}

TEST(LogLine, NamesTheTokenByFingerprintOnly) {
  const auto token = signer().sign(claims());
  const auto v = verify(token, "todo_app", config(), now);
  const auto line = pg_token_auth::log_line(v, "todo_app", now + 123ms);
  EXPECT_EQ(line.find(token.substr(token.rfind('.') + 1)), std::string::npos);
  EXPECT_EQ(line.find(token.substr(0, token.find('.'))), std::string::npos);
  const auto parsed = json::parse(line);
  EXPECT_EQ(parsed["time"], "2027-01-15T08:00:00.123Z");
  EXPECT_EQ(parsed["role"], "todo_app");
  EXPECT_EQ(parsed["result"], "accepted");
  EXPECT_EQ(parsed["reason"], "ok");
  EXPECT_EQ(parsed["fingerprint"], pg_token_auth::fingerprint(token));
  EXPECT_EQ(parsed["iat"], kNow - 10);
  EXPECT_EQ(parsed["exp"], kNow + 3600);

  const auto refused =
      pg_token_auth::log_line(verify("junk", "bad\xff\n", config(), now), "bad\xff\n", now);
  const auto r = json::parse(refused);
  EXPECT_EQ(r["result"], "refused");
  EXPECT_TRUE(r["iat"].is_null());
  EXPECT_EQ(refused.find('\n'), std::string::npos);
}

std::optional<std::string> fake_files(const std::string& path) {
  if (path == "/keys/good.pem") return signer().public_key_pem();
  if (path == "/keys/junk.pem")
    return "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
  if (path == "/revoked/list") {
    return "# revoked tokens\n\n  " + std::string(64, 'A') + "  \n" + std::string(64, 'b') + "\r\n";
  }
  if (path == "/revoked/empty") return std::string();
  if (path == "/revoked/junk") return std::string("0123\n");
  return std::nullopt;
}

TEST(Verify, RefusesARevokedTokenAndOnlyThatOne) {
  const auto token = signer().sign(claims());
  auto c = config();
  c.revoked = {tb::hex(tb::sha256(token))};
  const auto v = verify(token, "todo_app", c, now);
  EXPECT_FALSE(v.accepted);
  EXPECT_EQ(v.reason, "revoked");
  auto other = claims();
  other["uti"] = "another";
  EXPECT_TRUE(verify(signer().sign(other), "todo_app", c, now).accepted);
}

TEST(ParseConfig, ReadsTheRevocationListFromItsFile) {
  const auto result = pg_token_auth::parse_config(
      R"({"public_key":"/keys/good.pem","log":"/l","roles":{"r":["a"]},"revoked":"/revoked/list"})",
      fake_files);
  ASSERT_TRUE(result.config) << result.error;
  EXPECT_EQ(result.config->revoked,
            (std::set<std::string>{std::string(64, 'a'), std::string(64, 'b')}));
  const auto empty = pg_token_auth::parse_config(
      R"({"public_key":"/keys/good.pem","log":"/l","roles":{"r":["a"]},"revoked":"/revoked/empty"})",
      fake_files);
  ASSERT_TRUE(empty.config) << empty.error;
  EXPECT_TRUE(empty.config->revoked.empty());
}

TEST(ParseConfig, ReadsAllSettings) {
  const auto result = pg_token_auth::parse_config(
      R"({"public_key":"/keys/good.pem","log":"/var/log/v.log","issuer":"https://iss/",
          "audience":"https://aud","clock_skew_seconds":5,"roles":{"todo_app":["a","b"]}})",
      fake_files);
  ASSERT_TRUE(result.config) << result.error;
  EXPECT_EQ(result.config->audience, "https://aud");
  EXPECT_EQ(result.config->issuer, "https://iss/");
  EXPECT_EQ(result.config->log_path, "/var/log/v.log");
  EXPECT_EQ(result.config->clock_skew, 5s);
  EXPECT_EQ(result.config->roles.at("todo_app"), (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(result.config->public_key);

  const auto defaults = pg_token_auth::parse_config(
      R"({"public_key":"/keys/good.pem","log":"/l","roles":{"r":["a"]}})", fake_files);
  ASSERT_TRUE(defaults.config) << defaults.error;
  EXPECT_EQ(defaults.config->audience, pg_token_auth::kDefaultAudience);
  EXPECT_EQ(defaults.config->clock_skew, 60s);
}

TEST(ParseConfig, ExplainsWhatIsWrong) {
  const std::map<std::string, std::string> cases = {
      {"nope", "config is not a JSON object"},
      {R"({"log":"/l","roles":{"r":["a"]}})", "\"public_key\" is missing"},
      {R"({"public_key":"/keys/good.pem","roles":{"r":["a"]}})", "\"log\" is missing"},
      {R"({"public_key":"/keys/good.pem","log":"/l"})", "\"roles\" must be an object"},
      {R"({"public_key":"/keys/good.pem","log":"/l","roles":{"r":[]}})", "\"roles\".\"r\""},
      {R"({"public_key":"/keys/good.pem","log":"/l","roles":{"r":[1]}})", "\"roles\".\"r\""},
      {R"({"public_key":"/keys/none.pem","log":"/l","roles":{"r":["a"]}})",
       "cannot read public key file /keys/none.pem"},
      {R"({"public_key":"/keys/junk.pem","log":"/l","roles":{"r":["a"]}})",
       "is not a PEM RSA public key"},
      {R"({"public_key":"/keys/good.pem","log":"/l","clock_skew_seconds":-1,"roles":{"r":["a"]}})",
       "clock_skew_seconds"},
      // A revocation list that cannot be read refuses every login rather than none.
      {R"({"public_key":"/keys/good.pem","log":"/l","roles":{"r":["a"]},"revoked":"/revoked/x"})",
       "/revoked/x"},
      {R"({"public_key":"/keys/good.pem","log":"/l","roles":{"r":["a"]},"revoked":"/revoked/junk"})",
       "line 1"},
      {R"({"public_key":"/keys/good.pem","log":"/l","roles":{"r":["a"]},"revoked":7})",
       "\"revoked\""},
  };
  for (const auto& [text, error] : cases) {
    const auto result = pg_token_auth::parse_config(text, fake_files);
    EXPECT_FALSE(result.config) << text;
    EXPECT_NE(result.error.find(error), std::string::npos) << text << " -> " << result.error;
  }
}

}  // namespace
