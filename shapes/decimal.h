#pragma once

// Exact decimal arithmetic with Postgres numeric semantics (display scale rules, rounding half
// away from zero, select_div_scale for division, NaN and +-Infinity). Internal to shapes/.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace shapebridge::shapes {

// Limits that keep evaluation cheap (Postgres allows 131072 digits before the point and 16383
// after): input exponents beyond +-kMaxExponent and results longer than kMaxDigits are
// "value overflows numeric format".
inline constexpr int kMaxExponent = 1000;
inline constexpr size_t kMaxDigits = 4000;

class Decimal {
 public:
  enum class Special : uint8_t { kFinite, kNaN, kPosInf, kNegInf };

  // Parses Postgres numeric INPUT syntax: optional whitespace, sign, digits with an optional
  // point, an optional exponent, or NaN / Infinity / inf (any case). nullopt-like error on bad
  // text.
  static absl::StatusOr<Decimal> Parse(std::string_view text);
  static Decimal FromInt(int64_t v);

  // Postgres's output form: [-]digits[.digits] with exactly `scale` fraction digits, or
  // NaN / Infinity / -Infinity.
  std::string ToString() const;
  double ToDouble() const;
  bool is_nan() const { return special_ == Special::kNaN; }
  bool is_inf() const { return special_ == Special::kPosInf || special_ == Special::kNegInf; }
  size_t digit_count() const { return digits_.size(); }
  bool is_zero() const { return special_ == Special::kFinite && digits_.empty(); }
  bool negative() const { return neg_ || special_ == Special::kNegInf; }
  // Rounds half away from zero to an integer; false when it does not fit int64 or is special.
  bool ToInt64(int64_t* out) const;

  // -1, 0, 1; NaN sorts above everything and equals itself, as in Postgres.
  static int Compare(const Decimal& a, const Decimal& b);

  static Decimal Add(const Decimal& a, const Decimal& b);
  static Decimal Sub(const Decimal& a, const Decimal& b);
  static Decimal Mul(const Decimal& a, const Decimal& b);
  // "division by zero" is InvalidArgument.
  static absl::StatusOr<Decimal> Div(const Decimal& a, const Decimal& b);
  static absl::StatusOr<Decimal> Mod(const Decimal& a, const Decimal& b);
  Decimal Negate() const;

 private:
  Special special_ = Special::kFinite;
  bool neg_ = false;
  std::string digits_;  // unscaled magnitude, ASCII digits, no leading zeros ("" is zero)
  int scale_ = 0;       // display scale: digits after the point
};

}  // namespace shapebridge::shapes
