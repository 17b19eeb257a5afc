#include "bridge/auth/jwt.h"

#include <chrono>
#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shapebridge::auth {
namespace {

using std::chrono::seconds;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// A fixed 2048-bit RSA pair made for this test with `openssl genpkey`, and two other public keys.
constexpr char kRsaPrivatePem[] = R"(-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDZsn2jUXJcPbTJ
xNgiSxtsYSgDaG+OLO+opBg8L8wo3VnpkpqkA8+8N+qLHyyI3W9+jFdlo/rJf7A6
5Nxy9nMAK7QUPgvzkgSzwd7e21jH31Fx/TMduUeZcwLM1YlAvyYM9Hm7IwE8jaBo
wL1eL2CXZYQwrwFwpOHi4wP/IagJOKPR5OhtYmcmjzcUAvTN6IF8A5Q7XXBl23Rl
5YF4IEugkkoZxCIuYYfxIJiNeJkbsJz9qqezZAyK+zSTkbyW4+sKAuI7kbLqNk5C
MlJX+f/3LhvQfuGfZMrXlqHohZfZWobdJAz8hsnfcheL37LfmGMmxe/oTZAaR+3j
ROd99FpLAgMBAAECggEACVvoldhfC8MlXhVF23eSJr8oirj3LswUw5HGbvP5GXqm
rml8l3eIe0WGIlQFRJ8Md4rOCRMbKYWBTI7hQVoCCKxYUhR2zBJnfFjl3Xvdnb4m
kLl7dJguEVVF9gtqGqv9FUp/X0G6gGFwV4CNw5pS0z9shvFHJRIZmfj7h4Dpaff+
mMZJ3c+qtdGeTqjT+qC9fPG2TRMJ7ZbNpHwNXaS6SckyzQn2jTOUFL7Pzuewr6gM
pc1zCF24pGmZCljl0U+Q0d1DoxRUzywAelPz8t83/EZYx13qQ6vO69ATjf1KbwSR
p1t8ZrNMtaHywZWx8Q6iWciaz5QzzXIyFI4s7V35BQKBgQDybqZ9caw0pweCfQrf
eDtb/ebK4DBRWtZZt9DSq0L76+y/OM5XbkMaJxk1M6UiF078XPKuyLo74kJsUSmL
tWtBoGwn0JTmjN6FyOF3S0or3dCXOeA7CR/bs+avwxbYcgKX5FP5ubvXbbD8Ycil
bLlbHCP/9cgar7s5AIoR5gh9FQKBgQDl4XWxnk3L31AWVKDj0dFMaODXdX62xM8c
pxy80gj54vD+kXp8XkAFiuPykrR5Hu/L+1fm8WjNsaZXgZsxuZgWc58KtSH4bohh
RYgS5jzP1EfvAyKdLNGfoBNnqyXuCFkwoB68svzK1dKyoE3ict1Em482HtwyKnKU
7OIK1X0R3wKBgCrhd4FowdTuVl22UF4Gnjk/R7tKvEEnmBJ2ePFKaaa1rEKGgbjl
P+k4UTUf1W2aQdZRent/9bDx7F3MXVTg2f/ZqEfClRPShumTBo5bOttXeLXG/upy
SrhJsdwU3c2bHOpQ8KmTOK56MHvzr9HS0VZUO+niR2qw+qSye7l+vrGhAoGAHlSk
Gb5gV2DsiTW7ULPTYLiJygPXpzfKd+ZYtVUlGAtobr41Igmxesm7j7rpkv2Q+CH+
lBsQD+u7ndoc5u+s8HFq75e8lrHGzsbE0HGOXoGMyC1quMA8HEqbpNcBFyoE0pSd
2ZnoHr8doLHj9Nfg9/dqauKhfQD6w0mJ/ZHzgZMCgYEAu8i5L4KzIkLqjiMml0oH
2Hm5xIhc7AIMikJpYoXa7V39n3tqkcncuczxPpEEWgry1D82bAnRiqmFL2/oHE1i
tWOWukzLdSXvGxphaw1FZAu9OSqLSftPcAQZ3IyPYVRfmPJznXzFHI8MJSJJ66/k
QCuLcAT+/y3qPFaTpz0/Zhw=
-----END PRIVATE KEY-----
)";

constexpr char kRsaPublicPem[] = R"(-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA2bJ9o1FyXD20ycTYIksb
bGEoA2hvjizvqKQYPC/MKN1Z6ZKapAPPvDfqix8siN1vfoxXZaP6yX+wOuTccvZz
ACu0FD4L85IEs8He3ttYx99Rcf0zHblHmXMCzNWJQL8mDPR5uyMBPI2gaMC9Xi9g
l2WEMK8BcKTh4uMD/yGoCTij0eTobWJnJo83FAL0zeiBfAOUO11wZdt0ZeWBeCBL
oJJKGcQiLmGH8SCYjXiZG7Cc/aqns2QMivs0k5G8luPrCgLiO5Gy6jZOQjJSV/n/
9y4b0H7hn2TK15ah6IWX2VqG3SQM/IbJ33IXi9+y35hjJsXv6E2QGkft40TnffRa
SwIDAQAB
-----END PUBLIC KEY-----
)";

// An unrelated RSA public key (its private half was thrown away).
constexpr char kOtherRsaPublicPem[] = R"(-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA2jSBxyEdaFFiCm9ixgxt
7oQlia//WKtUqCtlJSQrItPRe0tqn4/Qrx6tNGzTcowU//wWw5K+BQvPomGwrAvL
+i7FaVxJtAvExuqsbfkURNGCcizPblKFtbS6PTR+9wV2LqWGWTK7akQvKS7D0+DT
Cp6FjsEtgqnSWMBl02pBk4kzN33bJxdGHxtFmam5Wc1KrBxngML7a+LZ0urg8D9z
Zl3KicoF5C69OyrtUbUv9Bxq2WJgB00qgBspk2i4hWvOHLFCbzOrYq8rQaAt1nQV
AbadPs3jjRHFFDZcfVsccHypU5qS3kmzucihppJjYAiEckQ2qzywES0B+9fB34OQ
qwIDAQAB
-----END PUBLIC KEY-----
)";

constexpr char kEcPublicPem[] = R"(-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1KbMPson/t3fao/rRW9KPXkgjMJM
4f5jwaH3XT5ypy58v3MOz5Mvov1/Mdy4+DQrdqJN8vaXm9WsQHHEmG43xA==
-----END PUBLIC KEY-----
)";

constexpr char kSecret[] = "a-shared-secret-of-at-least-32-bytes!";
constexpr char kIssuer[] = "https://issuer.test";
constexpr char kAudience[] = "shapebridge";

// 2027-01-15T08:00:00Z: all times in these tests are relative to this injected `now`.
constexpr int64_t kNowSeconds = 1'800'000'000;
const std::chrono::system_clock::time_point kNow{seconds(kNowSeconds)};

// Base64url without padding, written independently of the library's decoder.
std::string Base64Url(std::string_view bytes) {
  constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t n =
        (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += {kAlphabet[n >> 18], kAlphabet[(n >> 12) & 63], kAlphabet[(n >> 6) & 63],
            kAlphabet[n & 63]};
  }
  if (bytes.size() - i == 1) {
    const uint32_t n = uint8_t(bytes[i]) << 16;
    out += {kAlphabet[n >> 18], kAlphabet[(n >> 12) & 63]};
  } else if (bytes.size() - i == 2) {
    const uint32_t n = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += {kAlphabet[n >> 18], kAlphabet[(n >> 12) & 63], kAlphabet[(n >> 6) & 63]};
  }
  return out;
}

// The token's three parts, split by hand.
struct Parts {
  std::string header, payload, signature;
};
Parts Split(const std::string& token) {
  const size_t a = token.find('.');
  const size_t b = token.find('.', a + 1);
  return {token.substr(0, a), token.substr(a + 1, b - a - 1), token.substr(b + 1)};
}

// Claims that pass every check of DefaultConfig at kNow.
Json GoodClaims() {
  return Json{{"sub", "user-1"},           {"iss", kIssuer},          {"aud", kAudience},
              {"exp", kNowSeconds + 3600}, {"iat", kNowSeconds - 10}, {"tenant", "acme"}};
}

JwtConfig Config(std::vector<JwtKey> keys) {
  JwtConfig config;
  config.keys = std::move(keys);
  config.issuer = kIssuer;
  config.audience = kAudience;
  return config;
}
JwtKey Hs256(std::string secret, std::string key_id = "") {
  return JwtKey{.algorithm = "HS256", .secret = std::move(secret), .key_id = std::move(key_id)};
}
JwtKey Rs256(std::string pem, std::string key_id = "") {
  return JwtKey{
      .algorithm = "RS256", .public_key_pem = std::move(pem), .key_id = std::move(key_id)};
}

std::unique_ptr<JwtVerifier> MakeVerifier(JwtConfig config) {
  auto verifier = JwtVerifier::Create(std::move(config));
  EXPECT_TRUE(verifier.ok()) << verifier.status();
  return verifier.ok() ? *std::move(verifier) : nullptr;
}

std::string Sign(const Json& claims, std::string_view algorithm, std::string_view key,
                 std::string_view key_id = "") {
  auto token = SignToken(claims, algorithm, key, key_id);
  EXPECT_TRUE(token.ok()) << token.status();
  return token.ok() ? *token : "";
}

void ExpectRejected(const absl::StatusOr<VerifiedToken>& result, std::string_view substring) {
  ASSERT_FALSE(result.ok()) << "accepted a token that should fail with: " << substring;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnauthenticated) << result.status();
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(std::string(substring)));
}

TEST(JwtTest, Hs256TokenVerifies) {
  auto verifier = MakeVerifier(Config({Hs256(kSecret)}));
  auto token = verifier->Verify(Sign(GoodClaims(), "HS256", kSecret), kNow);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->subject, "user-1");
  EXPECT_EQ(token->claims["tenant"], "acme");
  EXPECT_EQ(token->claims, GoodClaims());
  ASSERT_TRUE(token->expires_at.has_value());
  EXPECT_EQ(*token->expires_at, kNow + seconds(3600));
}

TEST(JwtTest, Rs256TokenVerifies) {
  auto verifier = MakeVerifier(Config({Rs256(kRsaPublicPem)}));
  auto token = verifier->Verify(Sign(GoodClaims(), "RS256", kRsaPrivatePem), kNow);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->subject, "user-1");
  EXPECT_EQ(token->claims["tenant"], "acme");
}

TEST(JwtTest, Rs256TokenFromAnotherKeyDoesNotVerify) {
  auto verifier = MakeVerifier(Config({Rs256(kOtherRsaPublicPem)}));
  ExpectRejected(verifier->Verify(Sign(GoodClaims(), "RS256", kRsaPrivatePem), kNow),
                 "token signature does not verify");
}

TEST(JwtTest, WrongSecretDoesNotVerify) {
  auto verifier = MakeVerifier(Config({Hs256(kSecret)}));
  ExpectRejected(verifier->Verify(Sign(GoodClaims(), "HS256", "another-secret"), kNow),
                 "token signature does not verify");
}

TEST(JwtTest, TamperedPayloadDoesNotVerify) {
  auto verifier = MakeVerifier(Config({Hs256(kSecret), Rs256(kRsaPublicPem)}));
  Json admin = GoodClaims();
  admin["sub"] = "admin";
  for (const std::string& token :
       {Sign(GoodClaims(), "HS256", kSecret), Sign(GoodClaims(), "RS256", kRsaPrivatePem)}) {
    ASSERT_TRUE(verifier->Verify(token, kNow).ok());
    const Parts parts = Split(token);
    const std::string tampered =
        parts.header + "." + Base64Url(admin.dump()) + "." + parts.signature;
    ExpectRejected(verifier->Verify(tampered, kNow), "token signature does not verify");
  }
}

TEST(JwtTest, TamperedSignatureDoesNotVerify) {
  auto verifier = MakeVerifier(Config({Hs256(kSecret)}));
  Parts parts = Split(Sign(GoodClaims(), "HS256", kSecret));
  parts.signature[0] = parts.signature[0] == 'A' ? 'B' : 'A';
  ExpectRejected(verifier->Verify(parts.header + "." + parts.payload + "." + parts.signature, kNow),
                 "token signature does not verify");
  // A truncated signature and no signature at all.
  ExpectRejected(
      verifier->Verify(parts.header + "." + parts.payload + "." + parts.signature.substr(0, 20),
                       kNow),
      "token signature does not verify");
  ExpectRejected(verifier->Verify(parts.header + "." + parts.payload + ".", kNow),
                 "token signature does not verify");
}

TEST(JwtTest, ExpiredTokenIsRejectedOutsideTheLeeway) {
  auto verifier = MakeVerifier(Config({Hs256(kSecret)}));  // leeway 30 s
  Json claims = GoodClaims();
  claims["exp"] = kNowSeconds - 60;
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "token expired at 2027-01-15T07:59:00Z (now 2027-01-15T08:00:00Z, leeway 30s)");
  // Exactly at exp + leeway the token is expired: exp means "valid strictly before".
  claims["exp"] = kNowSeconds - 30;
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow), "token expired at");

  claims["exp"] = kNowSeconds - 10;  // expired 10 s ago, within the 30 s leeway
  auto token = verifier->Verify(Sign(claims, "HS256", kSecret), kNow);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(token->expires_at, kNow - seconds(10));
}

TEST(JwtTest, ZeroLeewayMeansExpAtNowIsExpired) {
  JwtConfig config = Config({Hs256(kSecret)});
  config.leeway = seconds(0);
  auto verifier = MakeVerifier(std::move(config));
  Json claims = GoodClaims();
  claims["exp"] = kNowSeconds;
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "token expired at 2027-01-15T08:00:00Z");
  claims["exp"] = kNowSeconds + 1;
  EXPECT_TRUE(verifier->Verify(Sign(claims, "HS256", kSecret), kNow).ok());
}

// The time checks use the injected `now`, never the machine's clock: a token that expired long ago
// is valid at a `now` before its exp, and a token valid today is expired at a later `now`.
TEST(JwtTest, TimeChecksUseTheInjectedNow) {
  auto verifier = MakeVerifier(Config({Hs256(kSecret)}));
  Json claims = GoodClaims();
  claims["exp"] = 1'000'003'600;  // 2001-09-09T02:46:40Z
  const std::chrono::system_clock::time_point in_2001{seconds(1'000'000'000)};
  EXPECT_TRUE(verifier->Verify(Sign(claims, "HS256", kSecret), in_2001).ok());
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "token expired at 2001-09-09T02:46:40Z");

  claims["exp"] = 4'102'444'800;  // 2100-01-01T00:00:00Z
  const std::chrono::system_clock::time_point in_2100{seconds(4'102'444'800 + 31)};
  EXPECT_TRUE(verifier->Verify(Sign(claims, "HS256", kSecret), kNow).ok());
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), in_2100),
                 "token expired at 2100-01-01T00:00:00Z");
}

TEST(JwtTest, NotBeforeInTheFutureIsRejected) {
  auto verifier = MakeVerifier(Config({Hs256(kSecret)}));
  Json claims = GoodClaims();
  claims["nbf"] = kNowSeconds + 120;
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "token not valid before 2027-01-15T08:02:00Z");
  claims["nbf"] = kNowSeconds + 20;  // within the leeway
  EXPECT_TRUE(verifier->Verify(Sign(claims, "HS256", kSecret), kNow).ok());
  claims["nbf"] = kNowSeconds - 20;
  EXPECT_TRUE(verifier->Verify(Sign(claims, "HS256", kSecret), kNow).ok());
}

TEST(JwtTest, MissingExpIsRejectedUnlessNotRequired) {
  Json claims = GoodClaims();
  claims.erase("exp");
  const std::string token = Sign(claims, "HS256", kSecret);
  ExpectRejected(MakeVerifier(Config({Hs256(kSecret)}))->Verify(token, kNow),
                 "token has no expiry (exp)");

  JwtConfig config = Config({Hs256(kSecret)});
  config.require_exp = false;
  auto verified = MakeVerifier(std::move(config))->Verify(token, kNow);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_FALSE(verified->expires_at.has_value());
}

TEST(JwtTest, IssuerMustMatch) {
  auto verifier = MakeVerifier(Config({Hs256(kSecret)}));
  Json claims = GoodClaims();
  claims["iss"] = "https://evil.test";
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "token issuer \"https://evil.test\" is not \"https://issuer.test\"");
  claims.erase("iss");
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "token has no issuer (iss); expected \"https://issuer.test\"");
  claims["iss"] = 7;
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "malformed token: iss is not a string");

  // No configured issuer: any iss, or none, is accepted.
  JwtConfig config = Config({Hs256(kSecret)});
  config.issuer.clear();
  claims["iss"] = "https://evil.test";
  EXPECT_TRUE(MakeVerifier(std::move(config))->Verify(Sign(claims, "HS256", kSecret), kNow).ok());
}

TEST(JwtTest, AudienceStringOrArrayMustContainTheConfiguredOne) {
  auto verifier = MakeVerifier(Config({Hs256(kSecret)}));
  Json claims = GoodClaims();
  claims["aud"] = Json::array({"other", kAudience});
  EXPECT_TRUE(verifier->Verify(Sign(claims, "HS256", kSecret), kNow).ok());

  claims["aud"] = Json::array({"other", "another"});
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "token audience does not include \"shapebridge\"");
  claims["aud"] = "other";
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "token audience does not include \"shapebridge\"");
  claims["aud"] = Json::array();
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "token audience does not include \"shapebridge\"");
  claims.erase("aud");
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "token has no audience (aud); expected \"shapebridge\"");
  claims["aud"] = Json::array({kAudience, 3});
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "malformed token: aud is neither a string nor an array of strings");
  claims["aud"] = Json{{"name", kAudience}};
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "malformed token: aud is neither a string nor an array of strings");
}

TEST(JwtTest, AlgorithmNoneIsRejected) {
  auto verifier = MakeVerifier(Config({Hs256(kSecret), Rs256(kRsaPublicPem)}));
  const std::string payload = Base64Url(GoodClaims().dump());
  for (const char* alg : {"none", "None", "NONE"}) {
    const std::string header = Base64Url(Json{{"alg", alg}, {"typ", "JWT"}}.dump());
    const std::string message =
        std::string("token algorithm \"") + alg + "\" is not accepted (accepted: HS256, RS256)";
    ExpectRejected(verifier->Verify(header + "." + payload + ".", kNow), message);
    // With a signature that would verify as HS256: still the algorithm decides.
    const Parts hs256 = Split(Sign(GoodClaims(), "HS256", kSecret));
    ExpectRejected(verifier->Verify(header + "." + payload + "." + hs256.signature, kNow), message);
  }
}

// The classic attack: the attacker takes the server's RSA public key (which is public) and MACs an
// HS256 token with the PEM text as the secret. A verifier that lets the header pick the algorithm
// and uses "the key" as an HMAC secret accepts it.
TEST(JwtTest, AlgorithmConfusionForgedTokenIsRejected) {
  Json claims = GoodClaims();
  claims["sub"] = "admin";
  const std::string forged = Sign(claims, "HS256", kRsaPublicPem);

  // The forged token is exactly what it claims to be: a verifier that uses the PEM text as an
  // HS256 secret accepts it, so the rejections below are the verifier's doing.
  auto naive = MakeVerifier(Config({Hs256(kRsaPublicPem)}));
  ASSERT_TRUE(naive->Verify(forged, kNow).ok());

  auto rsa_only = MakeVerifier(Config({Rs256(kRsaPublicPem)}));
  ExpectRejected(rsa_only->Verify(forged, kNow),
                 "token algorithm \"HS256\" is not accepted (accepted: RS256)");

  // With an HS256 key configured too, HS256 tokens are checked against that secret only.
  auto both = MakeVerifier(Config({Rs256(kRsaPublicPem), Hs256(kSecret)}));
  ExpectRejected(both->Verify(forged, kNow), "token signature does not verify");
}

TEST(JwtTest, UnconfiguredAlgorithmIsRejected) {
  auto hs_only = MakeVerifier(Config({Hs256(kSecret)}));
  ExpectRejected(hs_only->Verify(Sign(GoodClaims(), "RS256", kRsaPrivatePem), kNow),
                 "token algorithm \"RS256\" is not accepted (accepted: HS256)");
  const Parts parts = Split(Sign(GoodClaims(), "HS256", kSecret));
  const std::string hs512 = Base64Url(R"({"alg":"HS512","typ":"JWT"})");
  ExpectRejected(hs_only->Verify(hs512 + "." + parts.payload + "." + parts.signature, kNow),
                 "token algorithm \"HS512\" is not accepted (accepted: HS256)");
}

TEST(JwtTest, KeyIdSelectsTheKey) {
  auto verifier =
      MakeVerifier(Config({Hs256("secret-one", "one"), Hs256("secret-two", "two"),
                           Rs256(kOtherRsaPublicPem, "rsa-old"), Rs256(kRsaPublicPem, "rsa-new")}));
  EXPECT_TRUE(verifier->Verify(Sign(GoodClaims(), "HS256", "secret-two", "two"), kNow).ok());
  EXPECT_TRUE(verifier->Verify(Sign(GoodClaims(), "HS256", "secret-one", "one"), kNow).ok());
  EXPECT_TRUE(verifier->Verify(Sign(GoodClaims(), "RS256", kRsaPrivatePem, "rsa-new"), kNow).ok());

  // The kid names a key that did not sign the token: that key alone is tried.
  ExpectRejected(verifier->Verify(Sign(GoodClaims(), "HS256", "secret-two", "one"), kNow),
                 "token signature does not verify");
  ExpectRejected(verifier->Verify(Sign(GoodClaims(), "RS256", kRsaPrivatePem, "rsa-old"), kNow),
                 "token signature does not verify");
  // A kid of a key with another algorithm does not select it.
  ExpectRejected(verifier->Verify(Sign(GoodClaims(), "HS256", "secret-one", "rsa-new"), kNow),
                 "token key id (kid) \"rsa-new\" matches no configured HS256 key");
  ExpectRejected(verifier->Verify(Sign(GoodClaims(), "HS256", "secret-one", "three"), kNow),
                 "token key id (kid) \"three\" matches no configured HS256 key");
  ExpectRejected(verifier->Verify(Sign(GoodClaims(), "HS256", "secret-one"), kNow),
                 "token has no key id (kid) and every configured HS256 key requires one");
}

TEST(JwtTest, KeyWithoutKeyIdAcceptsAnyKid) {
  auto verifier = MakeVerifier(Config({Hs256(kSecret)}));
  EXPECT_TRUE(verifier->Verify(Sign(GoodClaims(), "HS256", kSecret, "whatever"), kNow).ok());
  const Parts parts = Split(Sign(GoodClaims(), "HS256", kSecret));
  const std::string numeric_kid = Base64Url(R"({"alg":"HS256","kid":5})");
  ExpectRejected(verifier->Verify(numeric_kid + "." + parts.payload + "." + parts.signature, kNow),
                 "malformed token: header kid is not a string");
}

TEST(JwtTest, EveryMatchingKeyIsTried) {
  // Key rotation without kids: the old and the new key are both configured.
  auto verifier = MakeVerifier(Config(
      {Hs256("old-secret"), Hs256(kSecret), Rs256(kOtherRsaPublicPem), Rs256(kRsaPublicPem)}));
  EXPECT_TRUE(verifier->Verify(Sign(GoodClaims(), "HS256", kSecret), kNow).ok());
  EXPECT_TRUE(verifier->Verify(Sign(GoodClaims(), "HS256", "old-secret"), kNow).ok());
  EXPECT_TRUE(verifier->Verify(Sign(GoodClaims(), "RS256", kRsaPrivatePem), kNow).ok());
  ExpectRejected(verifier->Verify(Sign(GoodClaims(), "HS256", "unknown-secret"), kNow),
                 "token signature does not verify");
}

TEST(JwtTest, MalformedTokensAreRejected) {
  auto verifier = MakeVerifier(Config({Hs256(kSecret)}));
  const Parts good = Split(Sign(GoodClaims(), "HS256", kSecret));

  ExpectRejected(verifier->Verify("", kNow), "malformed token: empty");
  ExpectRejected(verifier->Verify("abc", kNow),
                 "malformed token: expected 3 dot-separated parts (header.payload.signature), "
                 "got 1");
  ExpectRejected(verifier->Verify(good.header + "." + good.payload, kNow),
                 "expected 3 dot-separated parts (header.payload.signature), got 2");
  ExpectRejected(
      verifier->Verify(good.header + "." + good.payload + "." + good.signature + ".x", kNow),
      "expected 3 dot-separated parts (header.payload.signature), got 4");

  // Bad base64url: characters outside the alphabet, padding, the standard alphabet, impossible
  // length, non-zero unused bits.
  ExpectRejected(verifier->Verify("!!!." + good.payload + "." + good.signature, kNow),
                 "malformed token: header is not base64url");
  ExpectRejected(verifier->Verify(good.header + "=." + good.payload + "." + good.signature, kNow),
                 "malformed token: header is not base64url");
  ExpectRejected(verifier->Verify(good.header + "." + good.payload + "+/." + good.signature, kNow),
                 "malformed token: payload is not base64url");
  ExpectRejected(
      verifier->Verify(good.header + "." + good.payload + "." + good.signature + "AA", kNow),
      "malformed token: signature is not base64url");
  ExpectRejected(verifier->Verify(good.header + "." + good.payload + "." + "AB", kNow),
                 "malformed token: signature is not base64url");  // "AB": unused bits not zero

  ExpectRejected(
      verifier->Verify(Base64Url("{not json") + "." + good.payload + "." + good.signature, kNow),
      "malformed token: header is not JSON");
  ExpectRejected(
      verifier->Verify(Base64Url(R"(["HS256"])") + "." + good.payload + "." + good.signature, kNow),
      "malformed token: header is not a JSON object");
  ExpectRejected(
      verifier->Verify(Base64Url(R"({"typ":"JWT"})") + "." + good.payload + "." + good.signature,
                       kNow),
      "malformed token: header has no \"alg\" string");
  ExpectRejected(verifier->Verify("." + good.payload + "." + good.signature, kNow),
                 "malformed token: header is not JSON");

  for (const char* payload : {"[1,2]", "\"sub\"", "42", "null"}) {
    ExpectRejected(
        verifier->Verify(good.header + "." + Base64Url(payload) + "." + good.signature, kNow),
        "malformed token: payload is not a JSON object");
  }
  ExpectRejected(verifier->Verify(good.header + ".." + good.signature, kNow),
                 "malformed token: payload is not JSON");

  ExpectRejected(verifier->Verify(std::string(JwtVerifier::kMaxTokenBytes + 1, 'a'), kNow),
                 "malformed token: longer than 16384 bytes");
}

TEST(JwtTest, ClaimsOfTheWrongTypeAreMalformed) {
  auto verifier = MakeVerifier(Config({Hs256(kSecret)}));
  Json claims = GoodClaims();
  claims["exp"] = "tomorrow";
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "malformed token: exp is not a number");
  claims["exp"] = -5;
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "malformed token: exp -5 is out of range");
  claims["exp"] = 1e300;
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "malformed token: exp 1e+300 is out of range");
  claims = GoodClaims();
  claims["nbf"] = true;
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "malformed token: nbf is not a number");
  claims = GoodClaims();
  claims["sub"] = Json::array({"a"});
  ExpectRejected(verifier->Verify(Sign(claims, "HS256", kSecret), kNow),
                 "malformed token: sub is not a string");
  // A fractional exp is a valid NumericDate.
  claims = GoodClaims();
  claims["exp"] = kNowSeconds + 0.5;
  EXPECT_TRUE(verifier->Verify(Sign(claims, "HS256", kSecret), kNow).ok());
}

TEST(JwtTest, CriticalHeaderExtensionsAreRejected) {
  auto verifier = MakeVerifier(Config({Hs256(kSecret)}));
  const Parts parts = Split(Sign(GoodClaims(), "HS256", kSecret));
  const std::string header = Base64Url(R"({"alg":"HS256","crit":["exp"],"exp":1})");
  ExpectRejected(verifier->Verify(header + "." + parts.payload + "." + parts.signature, kNow),
                 "token header has \"crit\" extensions, which are not supported");
}

TEST(JwtTest, UntrustedStringsInMessagesAreEscapedAndCut) {
  auto verifier = MakeVerifier(Config({Hs256(kSecret)}));
  Json claims = GoodClaims();
  claims["iss"] = "line\nbreak \"quoted\" " + std::string(100, 'x');
  auto result = verifier->Verify(Sign(claims, "HS256", kSecret), kNow);
  ExpectRejected(result, "token issuer \"line\\nbreak \\\"quoted\\\" xxx");
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("xxx\"... is not"));
}

TEST(JwtTest, BearerTokenParsing) {
  EXPECT_EQ(BearerToken("Bearer abc.def.ghi").value_or("?"), "abc.def.ghi");
  EXPECT_EQ(BearerToken("bearer abc").value_or("?"), "abc");
  EXPECT_EQ(BearerToken("BEARER   abc  ").value_or("?"), "abc");
  EXPECT_EQ(BearerToken(" Bearer\tabc").value_or("?"), "abc");

  for (const char* bad : {"", "Bearer", "Bearer ", "Bearer   ", "Basic dXNlcjpwYXNz", "Bearerabc",
                          "Bearer a b", "abc.def.ghi", "Token abc"}) {
    auto token = BearerToken(bad);
    ASSERT_FALSE(token.ok()) << "accepted \"" << bad << "\"";
    EXPECT_EQ(token.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(std::string(token.status().message()),
                HasSubstr("authorization metadata must be \"Bearer <JWT>\""));
  }
}

void ExpectCreateFails(JwtConfig config, std::string_view substring) {
  auto verifier = JwtVerifier::Create(std::move(config));
  ASSERT_FALSE(verifier.ok()) << "accepted a config that should fail with: " << substring;
  EXPECT_EQ(verifier.status().code(), absl::StatusCode::kInvalidArgument) << verifier.status();
  EXPECT_THAT(std::string(verifier.status().message()), HasSubstr(std::string(substring)));
}

TEST(JwtTest, CreateRejectsBadKeys) {
  ExpectCreateFails(Config({}), "jwt config has no keys");
  ExpectCreateFails(Config({JwtKey{.algorithm = "ES256", .public_key_pem = kEcPublicPem}}),
                    "jwt key 0: unknown algorithm \"ES256\" (supported: HS256, RS256)");
  ExpectCreateFails(Config({JwtKey{.algorithm = "none"}}), "jwt key 0: unknown algorithm \"none\"");
  ExpectCreateFails(Config({Hs256(kSecret), Hs256("")}),
                    "jwt key 1: HS256 key has an empty secret");
  ExpectCreateFails(Config({Hs256(kSecret), Rs256(kRsaPublicPem), Rs256("not a pem")}),
                    "jwt key 2: public_key_pem is not a PEM public key");
  ExpectCreateFails(Config({Rs256(kRsaPrivatePem)}),
                    "jwt key 0: public_key_pem is not a PEM public key");
  ExpectCreateFails(Config({Rs256(kEcPublicPem)}),
                    "jwt key 0: public_key_pem is a EC key; RS256 needs an RSA key");
  ExpectCreateFails(Config({Rs256("")}), "jwt key 0: RS256 key has no public_key_pem");
  ExpectCreateFails(
      Config({JwtKey{.algorithm = "RS256", .secret = kSecret, .public_key_pem = kRsaPublicPem}}),
      "jwt key 0: RS256 key must not set secret");
  ExpectCreateFails(
      Config({JwtKey{.algorithm = "HS256", .secret = kSecret, .public_key_pem = kRsaPublicPem}}),
      "jwt key 0: HS256 key must not set public_key_pem");
}

TEST(JwtTest, SignTokenRejectsBadArguments) {
  auto expect_invalid = [](const absl::StatusOr<std::string>& token, std::string_view substring) {
    ASSERT_FALSE(token.ok());
    EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(token.status().message()), HasSubstr(std::string(substring)));
  };
  expect_invalid(SignToken(Json::array({1}), "HS256", kSecret), "claims must be a JSON object");
  expect_invalid(SignToken(GoodClaims(), "none", kSecret),
                 "cannot sign with algorithm \"none\" (supported: HS256, RS256)");
  expect_invalid(SignToken(GoodClaims(), "hs256", kSecret), "cannot sign with algorithm");
  expect_invalid(SignToken(GoodClaims(), "HS256", ""), "HS256 signing key is empty");
  expect_invalid(SignToken(GoodClaims(), "RS256", kRsaPublicPem),
                 "cannot sign with the given RS256 key");
  expect_invalid(SignToken(GoodClaims(), "RS256", "not a pem"),
                 "cannot sign with the given RS256 key");
}

TEST(JwtTest, SignTokenWritesTheKeyId) {
  // Checked through a verifier whose only key requires the kid.
  auto verifier = MakeVerifier(Config({Hs256(kSecret, "k-2026")}));
  EXPECT_TRUE(verifier->Verify(Sign(GoodClaims(), "HS256", kSecret, "k-2026"), kNow).ok());
  ExpectRejected(verifier->Verify(Sign(GoodClaims(), "HS256", kSecret), kNow),
                 "token has no key id (kid)");
}

}  // namespace
}  // namespace shapebridge::auth
