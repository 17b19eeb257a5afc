#include "bridge/auth/jwt.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <set>
#include <system_error>
#include <utility>

// cpp-jwt is used for signing only (SignToken): its decode() checks exp and nbf against the system
// clock and compares HMACs with ==, so verification below is done directly with OpenSSL, against
// the injected `now`, with a constant-time comparison. Having the signer and the verifier come
// from different code also makes the unit tests check one against the other.
#include <jwt/jwt.hpp>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace shapebridge::auth {
namespace {

constexpr char kHs256[] = "HS256";
constexpr char kRs256[] = "RS256";

// exp and nbf beyond this (year 2223) cannot be held by system_clock's nanosecond time_point.
constexpr double kMaxNumericDate = 8'000'000'000.0;

enum class Algorithm { kHs256, kRs256 };

// Untrusted strings are escaped and cut short before they go into a message.
std::string Quote(std::string_view value) {
  constexpr size_t kMaxShown = 64;
  const bool cut = value.size() > kMaxShown;
  return absl::StrCat("\"", absl::CHexEscape(std::string(value.substr(0, kMaxShown))),
                      cut ? "\"..." : "\"");
}

absl::Status Unauthenticated(std::string_view message) {
  return absl::UnauthenticatedError(std::string(message));
}

absl::Status Malformed(std::string_view what) {
  return absl::UnauthenticatedError(absl::StrCat("malformed token: ", std::string(what)));
}

// The OpenSSL error queue of this thread as one string, emptied so that later calls on the
// thread do not see stale errors.
std::string TakeOpenSslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buffer);
  }
  return out.empty() ? std::string("no OpenSSL error") : out;
}

int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '-') {
    return 62;
  }
  if (c == '_') {
    return 63;
  }
  return -1;
}

// RFC 7515 base64url without padding. Strict: no '=', no whitespace, no standard-alphabet '+' or
// '/', and the unused low bits of the last character must be zero, so that each byte string has
// exactly one encoding.
std::optional<std::string> Base64UrlDecode(std::string_view in) {
  if (in.size() % 4 == 1) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(in.size() / 4 * 3 + 2);
  uint32_t accumulator = 0;
  int bits = 0;
  for (char c : in) {
    const int value = Base64UrlValue(c);
    if (value < 0) {
      return std::nullopt;
    }
    accumulator = ((accumulator << 6) | static_cast<uint32_t>(value)) & 0xFFFFF;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((accumulator >> bits) & 0xFF));
    }
  }
  if ((accumulator & ((1u << bits) - 1)) != 0) {
    return std::nullopt;
  }
  return out;
}

// Decodes one base64url part (`what` is "header" or "payload") into a JSON object.
absl::StatusOr<nlohmann::json> DecodeJsonObject(std::string_view part, std::string_view what) {
  std::optional<std::string> bytes = Base64UrlDecode(part);
  if (!bytes.has_value()) {
    return Malformed(absl::StrCat(std::string(what), " is not base64url"));
  }
  nlohmann::json json = nlohmann::json::parse(*bytes, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return Malformed(absl::StrCat(std::string(what), " is not JSON"));
  }
  if (!json.is_object()) {
    return Malformed(absl::StrCat(std::string(what), " is not a JSON object"));
  }
  return json;
}

std::string FormatSeconds(double seconds_since_epoch) {
  return absl::FormatTime(
      "%Y-%m-%dT%H:%M:%SZ",
      absl::FromUnixSeconds(static_cast<int64_t>(std::floor(seconds_since_epoch))),
      absl::UTCTimeZone());
}

// A NumericDate claim (exp, nbf) as seconds since the epoch; nullopt when the claim is absent.
absl::StatusOr<std::optional<double>> NumericDate(const nlohmann::json& payload, const char* name) {
  auto it = payload.find(name);
  if (it == payload.end()) {
    return std::nullopt;
  }
  if (!it->is_number()) {
    return Malformed(absl::StrCat(name, " is not a number of seconds since 1970"));
  }
  const double value = it->get<double>();
  if (!std::isfinite(value) || value < 0 || value > kMaxNumericDate) {
    return Malformed(absl::StrCat(name, " ", it->dump(), " is out of range"));
  }
  return value;
}

// Everything after the signature: exp, nbf, iss, aud, sub.
absl::StatusOr<VerifiedToken> CheckClaims(nlohmann::json payload, const JwtConfig& config,
                                          std::chrono::system_clock::time_point now) {
  const double now_seconds = std::chrono::duration<double>(now.time_since_epoch()).count();
  const auto leeway = static_cast<double>(config.leeway.count());
  const std::string context =
      absl::StrCat("(now ", FormatSeconds(now_seconds), ", leeway ", config.leeway.count(), "s)");

  VerifiedToken verified;
  absl::StatusOr<std::optional<double>> exp = NumericDate(payload, "exp");
  if (!exp.ok()) {
    return exp.status();
  }
  if (exp->has_value()) {
    if (now_seconds >= **exp + leeway) {
      return Unauthenticated(absl::StrCat("token expired at ", FormatSeconds(**exp), " ", context));
    }
    verified.expires_at = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::duration<double>(**exp)));
  } else if (config.require_exp) {
    return Unauthenticated("token has no expiry (exp) and this server requires one");
  }

  absl::StatusOr<std::optional<double>> nbf = NumericDate(payload, "nbf");
  if (!nbf.ok()) {
    return nbf.status();
  }
  if (nbf->has_value() && now_seconds + leeway < **nbf) {
    return Unauthenticated(
        absl::StrCat("token not valid before ", FormatSeconds(**nbf), " ", context));
  }

  if (!config.issuer.empty()) {
    auto it = payload.find("iss");
    if (it == payload.end()) {
      return Unauthenticated(
          absl::StrCat("token has no issuer (iss); expected ", Quote(config.issuer)));
    }
    if (!it->is_string()) {
      return Malformed("iss is not a string");
    }
    const auto& issuer = it->get_ref<const std::string&>();
    if (issuer != config.issuer) {
      return Unauthenticated(
          absl::StrCat("token issuer ", Quote(issuer), " is not ", Quote(config.issuer)));
    }
  }

  if (!config.audience.empty()) {
    auto it = payload.find("aud");
    if (it == payload.end()) {
      return Unauthenticated(
          absl::StrCat("token has no audience (aud); expected ", Quote(config.audience)));
    }
    bool found = false;
    if (it->is_string()) {
      found = it->get_ref<const std::string&>() == config.audience;
    } else if (it->is_array()) {
      for (const nlohmann::json& audience : *it) {
        if (!audience.is_string()) {
          return Malformed("aud is neither a string nor an array of strings");
        }
        found = found || audience.get_ref<const std::string&>() == config.audience;
      }
    } else {
      return Malformed("aud is neither a string nor an array of strings");
    }
    if (!found) {
      return Unauthenticated(
          absl::StrCat("token audience does not include ", Quote(config.audience)));
    }
  }

  if (auto it = payload.find("sub"); it != payload.end()) {
    if (!it->is_string()) {
      return Malformed("sub is not a string");
    }
    verified.subject = it->get<std::string>();
  }
  verified.claims = std::move(payload);
  return verified;
}

// An RSA public key for RS256. Owns the OpenSSL handle; immutable once made, so several threads
// may verify with one key at once (OpenSSL 3 allows concurrent use of a const EVP_PKEY).
class RsaPublicKey {
 public:
  // Fails with the reason, without the key index (the caller adds it).
  static absl::StatusOr<RsaPublicKey> FromPem(std::string_view pem) {
    ERR_clear_error();
    std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (bio == nullptr) {
      return absl::ResourceExhaustedError(TakeOpenSslErrors());
    }
    RsaPublicKey key;
    key.key_.reset(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    if (key.key_ == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("public_key_pem is not a PEM public key (\"-----BEGIN PUBLIC KEY-----\"): ",
                       TakeOpenSslErrors()));
    }
    if (EVP_PKEY_get_base_id(key.key_.get()) != EVP_PKEY_RSA) {
      const char* type = EVP_PKEY_get0_type_name(key.key_.get());
      return absl::InvalidArgumentError(absl::StrCat("public_key_pem is a ",
                                                     type != nullptr ? type : "non-RSA",
                                                     " key; RS256 needs an RSA key"));
    }
    return key;
  }

  // RSASSA-PKCS1-v1_5 with SHA-256 over `signed_data`.
  bool Verify(std::string_view signed_data, std::string_view signature) const {
    std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> context(EVP_MD_CTX_new());
    const bool ok =
        context != nullptr &&
        EVP_DigestVerifyInit(context.get(), nullptr, EVP_sha256(), nullptr, key_.get()) == 1 &&
        EVP_DigestVerify(context.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                         signature.size(),
                         reinterpret_cast<const unsigned char*>(signed_data.data()),
                         signed_data.size()) == 1;
    ERR_clear_error();
    return ok;
  }

 private:
  struct BioDeleter {
    void operator()(BIO* bio) const { BIO_free(bio); }
  };
  struct PkeyDeleter {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
  };
  struct MdCtxDeleter {
    void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
  };

  RsaPublicKey() = default;

  std::unique_ptr<EVP_PKEY, PkeyDeleter> key_;
};

bool HmacSha256Verifies(std::string_view secret, std::string_view signed_data,
                        std::string_view signature) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(signed_data.data()), signed_data.size(), mac,
           &mac_size) == nullptr) {
    ERR_clear_error();
    return false;
  }
  // Constant time, so that the time taken does not reveal how much of a forged MAC is right.
  return signature.size() == mac_size && CRYPTO_memcmp(mac, signature.data(), mac_size) == 0;
}

}  // namespace

// The secret and key_id stay in config_.keys[i]; this adds what Create parsed.
struct JwtVerifier::ParsedKey {
  Algorithm algorithm = Algorithm::kHs256;
  std::optional<RsaPublicKey> rsa;  // RS256
};

JwtVerifier::JwtVerifier(JwtConfig config, std::vector<ParsedKey> keys)
    : config_(std::move(config)), keys_(std::move(keys)) {
  std::set<std::string> algorithms;
  for (const JwtKey& key : config_.keys) {
    algorithms.insert(key.algorithm);
  }
  accepted_ = absl::StrJoin(algorithms, ", ");
}

JwtVerifier::~JwtVerifier() = default;

absl::StatusOr<std::unique_ptr<JwtVerifier>> JwtVerifier::Create(JwtConfig config) {
  if (config.keys.empty()) {
    return absl::InvalidArgumentError("jwt config has no keys: configure at least one");
  }
  std::vector<ParsedKey> keys;
  for (size_t i = 0; i < config.keys.size(); ++i) {
    const JwtKey& key = config.keys[i];
    const std::string where = absl::StrCat("jwt key ", i, ": ");
    ParsedKey parsed;
    if (key.algorithm == kHs256) {
      parsed.algorithm = Algorithm::kHs256;
      if (key.secret.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(where, "HS256 key has an empty secret"));
      }
      if (!key.public_key_pem.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "HS256 key must not set public_key_pem (that is for RS256)"));
      }
    } else if (key.algorithm == kRs256) {
      parsed.algorithm = Algorithm::kRs256;
      if (!key.secret.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "RS256 key must not set secret (that is for HS256)"));
      }
      if (key.public_key_pem.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(where, "RS256 key has no public_key_pem"));
      }
      absl::StatusOr<RsaPublicKey> rsa = RsaPublicKey::FromPem(key.public_key_pem);
      if (!rsa.ok()) {
        return absl::Status(rsa.status().code(),
                            absl::StrCat(where, std::string(rsa.status().message())));
      }
      parsed.rsa = std::move(*rsa);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "unknown algorithm ", Quote(key.algorithm), " (supported: HS256, RS256)"));
    }
    keys.push_back(std::move(parsed));
  }
  return std::unique_ptr<JwtVerifier>(new JwtVerifier(std::move(config), std::move(keys)));
}

absl::StatusOr<VerifiedToken> JwtVerifier::Verify(std::string_view token,
                                                  std::chrono::system_clock::time_point now) const {
  // Nothing below is expected to throw (JSON is parsed without exceptions and read only after type
  // checks), but a token is untrusted input: whatever escapes becomes a rejection, never a crash.
  try {
    if (token.empty()) {
      return Malformed("empty");
    }
    if (token.size() > kMaxTokenBytes) {
      return Malformed(absl::StrCat("longer than ", kMaxTokenBytes, " bytes"));
    }
    const size_t parts = static_cast<size_t>(std::count(token.begin(), token.end(), '.')) + 1;
    if (parts != 3) {
      return Malformed(
          absl::StrCat("expected 3 dot-separated parts (header.payload.signature), got ", parts));
    }
    const size_t first_dot = token.find('.');
    const size_t second_dot = token.find('.', first_dot + 1);
    const std::string_view header_part = token.substr(0, first_dot);
    const std::string_view payload_part = token.substr(first_dot + 1, second_dot - first_dot - 1);
    const std::string_view signature_part = token.substr(second_dot + 1);
    const std::string_view signed_data = token.substr(0, second_dot);

    absl::StatusOr<nlohmann::json> header = DecodeJsonObject(header_part, "header");
    if (!header.ok()) {
      return header.status();
    }
    auto alg = header->find("alg");
    if (alg == header->end() || !alg->is_string()) {
      return Malformed("header has no \"alg\" string");
    }
    const auto& algorithm = alg->get_ref<const std::string&>();
    // The header only selects among the configured algorithms; "none", "HS256" against an RS256
    // key (algorithm confusion) and anything else unconfigured end here.
    const bool accepted =
        std::any_of(config_.keys.begin(), config_.keys.end(),
                    [&](const JwtKey& key) { return key.algorithm == algorithm; });
    if (!accepted) {
      return Unauthenticated(absl::StrCat("token algorithm ", Quote(algorithm),
                                          " is not accepted (accepted: ", accepted_, ")"));
    }
    if (header->contains("crit")) {
      return Unauthenticated("token header has \"crit\" extensions, which are not supported");
    }
    std::optional<std::string> kid;
    if (auto it = header->find("kid"); it != header->end()) {
      if (!it->is_string()) {
        return Malformed("header kid is not a string");
      }
      kid = it->get<std::string>();
    }

    absl::StatusOr<nlohmann::json> payload = DecodeJsonObject(payload_part, "payload");
    if (!payload.ok()) {
      return payload.status();
    }
    std::optional<std::string> signature = Base64UrlDecode(signature_part);
    if (!signature.has_value()) {
      return Malformed("signature is not base64url");
    }

    // Every key of the token's algorithm whose key_id (when set) equals the token's kid.
    bool any_candidate = false;
    bool verified = false;
    for (size_t i = 0; i < keys_.size() && !verified; ++i) {
      const JwtKey& key = config_.keys[i];
      if (key.algorithm != algorithm || (!key.key_id.empty() && key.key_id != kid)) {
        continue;
      }
      any_candidate = true;
      verified = keys_[i].algorithm == Algorithm::kHs256
                     ? HmacSha256Verifies(key.secret, signed_data, *signature)
                     : keys_[i].rsa->Verify(signed_data, *signature);
    }
    if (!any_candidate) {
      if (kid.has_value()) {
        return Unauthenticated(absl::StrCat("token key id (kid) ", Quote(*kid),
                                            " matches no configured ", algorithm, " key"));
      }
      return Unauthenticated(absl::StrCat("token has no key id (kid) and every configured ",
                                          algorithm, " key requires one"));
    }
    if (!verified) {
      return Unauthenticated("token signature does not verify");
    }
    return CheckClaims(*std::move(payload), config_, now);
  } catch (const std::exception& e) {
    return Malformed(e.what());
  } catch (...) {
    return Malformed("unexpected error");
  }
}

absl::StatusOr<std::string_view> BearerToken(std::string_view authorization) {
  const absl::Status invalid =
      absl::UnauthenticatedError("authorization metadata must be \"Bearer <JWT>\"");
  auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!authorization.empty() && is_space(authorization.front())) {
    authorization.remove_prefix(1);
  }
  while (!authorization.empty() && is_space(authorization.back())) {
    authorization.remove_suffix(1);
  }
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size() || !is_space(authorization[kScheme.size()]) ||
      !absl::EqualsIgnoreCase(std::string(authorization.substr(0, kScheme.size())),
                              std::string(kScheme))) {
    return invalid;
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && is_space(token.front())) {
    token.remove_prefix(1);
  }
  if (token.empty() || std::any_of(token.begin(), token.end(), is_space)) {
    return invalid;
  }
  return token;
}

absl::StatusOr<std::string> SignToken(const nlohmann::json& claims, std::string_view algorithm,
                                      std::string_view key, std::string_view key_id) {
  if (!claims.is_object()) {
    return absl::InvalidArgumentError("claims must be a JSON object");
  }
  if (algorithm != kHs256 && algorithm != kRs256) {
    return absl::InvalidArgumentError(absl::StrCat("cannot sign with algorithm ", Quote(algorithm),
                                                   " (supported: HS256, RS256)"));
  }
  if (key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(algorithm), " signing key is empty"));
  }
  // cpp-jwt reads some of its string_view arguments as C strings: give it NUL-terminated ones.
  const std::string algorithm_name(algorithm);
  const std::string key_bytes(key);
  try {
    jwt::jwt_object object{jwt::params::algorithm(algorithm_name), jwt::params::secret(key_bytes)};
    for (auto it = claims.begin(); it != claims.end(); ++it) {
      object.payload().add_claim(it.key(), it.value());
    }
    if (!key_id.empty()) {
      object.header().add_header("kid", std::string(key_id));
    }
    std::error_code error;
    std::string token = object.signature(error);
    if (error) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot sign with the given ", algorithm_name, " key: ", error.message(),
                       algorithm == kRs256 ? " (RS256 needs a PEM RSA private key)" : ""));
    }
    return token;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot sign token: ", e.what()));
  } catch (...) {
    return absl::InternalError("cannot sign token: unexpected error");
  }
}

}  // namespace shapebridge::auth
