#include "shapes/decimal.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "shapes/expr_internal.h"

namespace shapebridge::shapes {
namespace {

// Magnitudes are ASCII digit strings without leading zeros; "" is zero.
std::string Strip(std::string s) {
  size_t i = 0;
  while (i < s.size() && s[i] == '0') ++i;
  return s.substr(i);
}

int CmpMag(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  const int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

std::string AddMag(const std::string& a, const std::string& b) {
  std::string r;
  int carry = 0;
  for (size_t i = 0; i < std::max(a.size(), b.size()) || carry != 0; ++i) {
    int d = carry;
    if (i < a.size()) d += a[a.size() - 1 - i] - '0';
    if (i < b.size()) d += b[b.size() - 1 - i] - '0';
    r.push_back(static_cast<char>('0' + d % 10));
    carry = d / 10;
  }
  std::reverse(r.begin(), r.end());
  return Strip(std::move(r));
}

// a - b with a >= b.
std::string SubMag(const std::string& a, const std::string& b) {
  std::string r;
  int borrow = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    int d = (a[a.size() - 1 - i] - '0') - borrow;
    if (i < b.size()) d -= b[b.size() - 1 - i] - '0';
    borrow = d < 0 ? 1 : 0;
    if (d < 0) d += 10;
    r.push_back(static_cast<char>('0' + d));
  }
  std::reverse(r.begin(), r.end());
  return Strip(std::move(r));
}

std::string MulMag(const std::string& a, const std::string& b) {
  if (a.empty() || b.empty()) return "";
  std::vector<int> acc(a.size() + b.size(), 0);
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t j = 0; j < b.size(); ++j) {
      acc[i + j + 1] += (a[i] - '0') * (b[j] - '0');
    }
  }
  for (size_t k = acc.size() - 1; k > 0; --k) {
    acc[k - 1] += acc[k] / 10;
    acc[k] %= 10;
  }
  std::string r;
  for (int d : acc) r.push_back(static_cast<char>('0' + d));
  return Strip(std::move(r));
}

std::string Shift(const std::string& a, int zeros) {
  if (a.empty()) return a;
  return a + std::string(static_cast<size_t>(zeros), '0');
}

// Truncating division of magnitudes; b is not zero. Sets *rem to the remainder.
std::string DivMag(const std::string& a, const std::string& b, std::string* rem) {
  std::string q;
  std::string cur;
  for (char c : a) {
    cur = Strip(cur + c);
    int d = 0;
    while (CmpMag(cur, b) >= 0) {
      cur = SubMag(cur, b);
      ++d;
    }
    q.push_back(static_cast<char>('0' + d));
  }
  if (rem != nullptr) *rem = cur;
  return Strip(std::move(q));
}

// The NBASE (10000) weight and first digit of a finite non-zero magnitude at a scale, as
// Postgres's select_div_scale sees them.
void WeightAndFirst(const std::string& mag, int scale, int* weight, int* first) {
  *weight = 0;
  *first = 0;
  if (mag.empty()) return;
  std::string int_part;
  std::string frac;
  if (static_cast<int>(mag.size()) > scale) {
    int_part = mag.substr(0, mag.size() - static_cast<size_t>(scale));
    frac = mag.substr(mag.size() - static_cast<size_t>(scale));
  } else {
    frac = std::string(static_cast<size_t>(scale) - mag.size(), '0') + mag;
  }
  if (!int_part.empty()) {
    const int len = static_cast<int>(int_part.size());
    *weight = (len - 1) / 4;
    const int lead = len - *weight * 4;
    *first = std::stoi(int_part.substr(0, static_cast<size_t>(lead)));
    return;
  }
  while (frac.size() % 4 != 0) frac.push_back('0');
  for (size_t g = 0; g < frac.size() / 4; ++g) {
    const int v = std::stoi(frac.substr(g * 4, 4));
    if (v != 0) {
      *weight = -static_cast<int>(g) - 1;
      *first = v;
      return;
    }
  }
}

}  // namespace

absl::StatusOr<Decimal> Decimal::Parse(std::string_view text) {
  std::string_view t = internal::TrimWs(text);
  const absl::Status bad = absl::InvalidArgumentError("invalid input syntax for type numeric: \"" +
                                                      std::string(text) + "\"");
  Decimal d;
  const std::string lower = absl::AsciiStrToLower(std::string(t));
  if (lower == "nan") {
    d.special_ = Special::kNaN;
    return d;
  }
  if (lower == "infinity" || lower == "+infinity" || lower == "inf" || lower == "+inf") {
    d.special_ = Special::kPosInf;
    return d;
  }
  if (lower == "-infinity" || lower == "-inf") {
    d.special_ = Special::kNegInf;
    return d;
  }
  size_t i = 0;
  bool neg = false;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
    neg = t[i] == '-';
    ++i;
  }
  std::string digits;
  int frac = 0;
  bool any = false;
  while (i < t.size() && absl::ascii_isdigit(t[i])) {
    digits.push_back(t[i++]);
    any = true;
  }
  if (i < t.size() && t[i] == '.') {
    ++i;
    while (i < t.size() && absl::ascii_isdigit(t[i])) {
      digits.push_back(t[i++]);
      ++frac;
      any = true;
    }
  }
  if (!any) return bad;
  int64_t exp = 0;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    bool eneg = false;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
      eneg = t[i] == '-';
      ++i;
    }
    bool edig = false;
    while (i < t.size() && absl::ascii_isdigit(t[i])) {
      exp = exp * 10 + (t[i++] - '0');
      edig = true;
      if (exp > 100000) exp = 100000;  // checked against kMaxExponent below
    }
    if (!edig) return bad;
    if (eneg) exp = -exp;
  }
  if (i != t.size()) return bad;
  if (exp > kMaxExponent || exp < -kMaxExponent || digits.size() > kMaxDigits) {
    return absl::OutOfRangeError("value overflows numeric format");
  }
  // value = digits * 10^(exp - frac); display scale = max(0, frac - exp).
  int64_t scale = frac - exp;
  std::string mag = Strip(digits);
  if (scale < 0) {
    mag = Shift(mag, static_cast<int>(-scale));
    scale = 0;
  }
  d.digits_ = mag;
  d.scale_ = static_cast<int>(scale);
  d.neg_ = neg && !mag.empty();
  return d;
}

Decimal Decimal::FromInt(int64_t v) {
  Decimal d;
  d.neg_ = v < 0;
  const uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  d.digits_ = mag == 0 ? "" : std::to_string(mag);
  return d;
}

std::string Decimal::ToString() const {
  switch (special_) {
    case Special::kNaN:
      return "NaN";
    case Special::kPosInf:
      return "Infinity";
    case Special::kNegInf:
      return "-Infinity";
    case Special::kFinite:
      break;
  }
  std::string mag = digits_;
  if (static_cast<int>(mag.size()) <= scale_) {
    mag = std::string(static_cast<size_t>(scale_) - mag.size() + 1, '0') + mag;
  }
  std::string out = neg_ ? "-" : "";
  out += mag.substr(0, mag.size() - static_cast<size_t>(scale_));
  if (scale_ > 0) {
    out += '.';
    out += mag.substr(mag.size() - static_cast<size_t>(scale_));
  }
  return out;
}

double Decimal::ToDouble() const {
  switch (special_) {
    case Special::kNaN:
      return std::numeric_limits<double>::quiet_NaN();
    case Special::kPosInf:
      return std::numeric_limits<double>::infinity();
    case Special::kNegInf:
      return -std::numeric_limits<double>::infinity();
    case Special::kFinite:
      break;
  }
  const std::string s = ToString();
  double v = 0;
  const auto res = std::from_chars(s.data(), s.data() + s.size(), v);
  if (res.ec == std::errc::result_out_of_range) {
    return neg_ ? -std::numeric_limits<double>::infinity()
                : std::numeric_limits<double>::infinity();
  }
  return v;
}

bool Decimal::ToInt64(int64_t* out) const {
  if (special_ != Special::kFinite) return false;
  std::string rem;
  std::string q = scale_ == 0 ? digits_ : DivMag(digits_, "1" + std::string(scale_, '0'), &rem);
  if (scale_ > 0 && CmpMag(AddMag(rem, rem), "1" + std::string(scale_, '0')) >= 0) {
    q = AddMag(q, "1");
  }
  if (q.size() > 19) return false;
  const unsigned long long mag = q.empty() ? 0 : std::stoull(q);
  if (neg_) {
    if (mag > 9223372036854775808ULL) return false;
    *out = mag == 9223372036854775808ULL ? std::numeric_limits<int64_t>::min()
                                         : -static_cast<int64_t>(mag);
  } else {
    if (mag > 9223372036854775807ULL) return false;
    *out = static_cast<int64_t>(mag);
  }
  return true;
}

int Decimal::Compare(const Decimal& a, const Decimal& b) {
  auto rank = [](const Decimal& d) {
    switch (d.special_) {
      case Special::kNaN:
        return 3;
      case Special::kPosInf:
        return 2;
      case Special::kNegInf:
        return 0;
      case Special::kFinite:
        return 1;
    }
    return 1;
  };
  const int ra = rank(a);
  const int rb = rank(b);
  if (ra != rb) return ra < rb ? -1 : 1;
  if (ra != 1) return 0;
  if (a.neg_ != b.neg_) return a.neg_ ? -1 : 1;
  const int scale = std::max(a.scale_, b.scale_);
  const int c = CmpMag(Shift(a.digits_, scale - a.scale_), Shift(b.digits_, scale - b.scale_));
  return a.neg_ ? -c : c;
}

Decimal Decimal::Negate() const {
  Decimal d = *this;
  if (special_ == Special::kPosInf) {
    d.special_ = Special::kNegInf;
  } else if (special_ == Special::kNegInf) {
    d.special_ = Special::kPosInf;
  } else if (special_ == Special::kFinite) {
    d.neg_ = !neg_ && !digits_.empty();
  }
  return d;
}

Decimal Decimal::Add(const Decimal& a, const Decimal& b) {
  Decimal r;
  if (a.is_nan() || b.is_nan()) {
    r.special_ = Special::kNaN;
    return r;
  }
  if (a.is_inf() || b.is_inf()) {
    if (a.is_inf() && b.is_inf() && a.special_ != b.special_) {
      r.special_ = Special::kNaN;
    } else {
      r.special_ = a.is_inf() ? a.special_ : b.special_;
    }
    return r;
  }
  const int scale = std::max(a.scale_, b.scale_);
  const std::string ma = Shift(a.digits_, scale - a.scale_);
  const std::string mb = Shift(b.digits_, scale - b.scale_);
  r.scale_ = scale;
  if (a.neg_ == b.neg_) {
    r.digits_ = AddMag(ma, mb);
    r.neg_ = a.neg_;
  } else if (CmpMag(ma, mb) >= 0) {
    r.digits_ = SubMag(ma, mb);
    r.neg_ = a.neg_;
  } else {
    r.digits_ = SubMag(mb, ma);
    r.neg_ = b.neg_;
  }
  if (r.digits_.empty()) r.neg_ = false;
  return r;
}

Decimal Decimal::Sub(const Decimal& a, const Decimal& b) { return Add(a, b.Negate()); }

Decimal Decimal::Mul(const Decimal& a, const Decimal& b) {
  Decimal r;
  if (a.is_nan() || b.is_nan()) {
    r.special_ = Special::kNaN;
    return r;
  }
  if (a.is_inf() || b.is_inf()) {
    if (a.is_zero() || b.is_zero()) {
      r.special_ = Special::kNaN;
    } else {
      r.special_ = a.negative() != b.negative() ? Special::kNegInf : Special::kPosInf;
    }
    return r;
  }
  r.digits_ = MulMag(a.digits_, b.digits_);
  r.scale_ = a.scale_ + b.scale_;
  r.neg_ = !r.digits_.empty() && a.neg_ != b.neg_;
  return r;
}

absl::StatusOr<Decimal> Decimal::Div(const Decimal& a, const Decimal& b) {
  Decimal r;
  if (a.is_nan() || b.is_nan()) {
    r.special_ = Special::kNaN;
    return r;
  }
  if (b.is_zero()) return absl::InvalidArgumentError("division by zero");
  if (a.is_inf()) {
    if (b.is_inf()) {
      r.special_ = Special::kNaN;
    } else {
      r.special_ = a.negative() != b.negative() ? Special::kNegInf : Special::kPosInf;
    }
    return r;
  }
  if (b.is_inf()) return r;  // finite / infinity is zero
  // Postgres's select_div_scale.
  int w1 = 0;
  int f1 = 0;
  int w2 = 0;
  int f2 = 0;
  WeightAndFirst(a.digits_, a.scale_, &w1, &f1);
  WeightAndFirst(b.digits_, b.scale_, &w2, &f2);
  int qweight = w1 - w2;
  if (f1 <= f2) --qweight;
  int rscale = 16 - qweight * 4;
  rscale = std::max({rscale, a.scale_, b.scale_, 0});
  rscale = std::min(rscale, 1000);
  // Q = round(A * 10^(rscale + sb - sa) / B), computed with one extra digit.
  const int e = rscale + b.scale_ - a.scale_ + 1;
  std::string num = a.digits_;
  std::string den = b.digits_;
  if (e >= 0) {
    num = Shift(num, e);
  } else {
    den = Shift(den, -e);
  }
  std::string q = DivMag(num, den, nullptr);
  // Round half away from zero on the extra digit.
  const bool up = !q.empty() && q.back() >= '5';
  q = q.empty() ? "" : Strip(q.substr(0, q.size() - 1));
  if (up) q = AddMag(q, "1");
  r.digits_ = q;
  r.scale_ = rscale;
  r.neg_ = !q.empty() && a.neg_ != b.neg_;
  return r;
}

absl::StatusOr<Decimal> Decimal::Mod(const Decimal& a, const Decimal& b) {
  Decimal r;
  if (a.is_nan() || b.is_nan()) {
    r.special_ = Special::kNaN;
    return r;
  }
  if (b.is_zero()) return absl::InvalidArgumentError("division by zero");
  if (a.is_inf()) {
    r.special_ = Special::kNaN;
    return r;
  }
  if (b.is_inf()) return a;
  const int scale = std::max(a.scale_, b.scale_);
  std::string rem;
  DivMag(Shift(a.digits_, scale - a.scale_), Shift(b.digits_, scale - b.scale_), &rem);
  r.digits_ = rem;
  r.scale_ = scale;
  r.neg_ = !rem.empty() && a.neg_;
  return r;
}

}  // namespace shapebridge::shapes
