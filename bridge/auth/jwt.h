#pragma once

// Verification of the JWTs that clients present as "authorization: Bearer <JWT>". Pure logic over
// bytes and an injected time: no I/O, no clock, no global state. The crypto library and cpp-jwt
// stay inside jwt.cc; this header exposes only strings, JSON and statuses.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace shapebridge::auth {

// One key a token may be signed with.
struct JwtKey {
  std::string algorithm;       // "HS256" or "RS256"
  std::string secret;          // HS256: the shared secret (bytes)
  std::string public_key_pem;  // RS256: PEM public key ("-----BEGIN PUBLIC KEY-----")
  std::string
      key_id;  // optional: when non-empty, only tokens whose header kid equals it use this key
};

struct JwtConfig {
  std::vector<JwtKey> keys;         // at least one
  std::string issuer;               // when non-empty, `iss` must equal it
  std::string audience;             // when non-empty, `aud` (string or array) must contain it
  std::chrono::seconds leeway{30};  // clock skew allowed for exp and nbf
  bool require_exp = true;          // a token without exp is rejected
};

// What a token that verified says. Only produced by JwtVerifier::Verify.
struct VerifiedToken {
  nlohmann::json claims;                                            // the payload object
  std::optional<std::chrono::system_clock::time_point> expires_at;  // from exp
  std::string subject;                                              // `sub` or ""
};

// Verifies compact JWS tokens (RFC 7515/7519) signed with HS256 or RS256 against a fixed set of
// keys. The accepted algorithms are exactly the algorithms of the configured keys: the token header
// only selects among them, so "none" and algorithm confusion (an HS256 token MACed with an RSA
// public key) are rejected. Immutable after Create: Verify may be called from any number of
// threads at once.
class JwtVerifier {
 public:
  JwtVerifier(const JwtVerifier&) = delete;
  JwtVerifier& operator=(const JwtVerifier&) = delete;
  ~JwtVerifier();

  // Validates the keys and parses the PEMs once. InvalidArgument naming the key index and what is
  // wrong: no keys, unknown algorithm, empty secret, unparsable PEM, a PEM that is not RSA, or a
  // key that sets the field of the other algorithm.
  static absl::StatusOr<std::unique_ptr<JwtVerifier>> Create(JwtConfig config);

  // Verifies a compact JWS at time `now`. The checks, in order: size (at most kMaxTokenBytes);
  // three dot-separated base64url parts; the header a JSON object whose `alg` is one of the
  // configured algorithms, without `crit`, with a string `kid` if any; the payload a JSON object;
  // a key of that algorithm whose key_id is empty or equals the kid; the signature (any such key
  // verifying is enough); then the claims: exp (required when require_exp) and nbf against `now`
  // with the leeway, iss, aud. Claims of the wrong type (exp/nbf not a number or out of range, iss
  // or sub not a string, aud not a string or an array of strings) make the token malformed. Every
  // failure is Unauthenticated with a message a person can act on, e.g.
  // "token expired at 2026-11-22T10:00:00Z (now ..., leeway 30s)", "token signature does not
  // verify", "token algorithm \"none\" is not accepted (accepted: HS256, RS256)",
  // "malformed token: ...". Strings from the token are escaped and cut in messages. Never throws.
  absl::StatusOr<VerifiedToken> Verify(std::string_view token,
                                       std::chrono::system_clock::time_point now) const;

  // Longer tokens are rejected before any decoding.
  static constexpr size_t kMaxTokenBytes = 16 * 1024;

 private:
  struct ParsedKey;  // what Create parsed from one JwtKey; defined in jwt.cc

  JwtVerifier(JwtConfig config, std::vector<ParsedKey> keys);

  JwtConfig config_;
  std::vector<ParsedKey> keys_;  // one per config_.keys entry, same order
  std::string accepted_;         // "HS256, RS256": the configured algorithms, for messages
};

// The token of an "authorization" value "Bearer <token>" (scheme case-insensitive, surrounding
// whitespace ignored). The result points into `authorization`. Unauthenticated ("authorization
// metadata must be \"Bearer <JWT>\"") for any other scheme, a missing or empty token, or a token
// containing whitespace.
absl::StatusOr<std::string_view> BearerToken(std::string_view authorization);

// Signs `claims` (a JSON object) into a compact token, for tests and the development token command.
// `algorithm` "HS256" takes the shared secret as `key`, "RS256" a PEM private key. A non-empty
// `key_id` is written as the header's kid. InvalidArgument for a non-object claims, an unknown
// algorithm, an empty key or a key that cannot sign.
absl::StatusOr<std::string> SignToken(const nlohmann::json& claims, std::string_view algorithm,
                                      std::string_view key, std::string_view key_id = "");

}  // namespace shapebridge::auth
