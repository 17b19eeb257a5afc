// Text input/output, casts and comparison for the types of the WHERE language, following
// Postgres's input and output functions (a documented subset of their input syntax).

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "shapes/decimal.h"
#include "shapes/expr_internal.h"

namespace shapebridge::shapes::internal {
namespace {

constexpr int64_t kMicrosPerSecond = 1000000;
constexpr int64_t kMicrosPerDay = 86400 * kMicrosPerSecond;
// Unix day numbers of Postgres's first timestamp day (Julian day 0) and of the day after its last.
constexpr int64_t kTimestampBeginDays = -2440588;
constexpr int64_t kTimestampEndDays = 106762940;

struct Civil {
  int64_t year;
  int month;
  int day;
};

int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

Civil CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = yoe + era * 400;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  return Civil{y + (m <= 2 ? 1 : 0), m, d};
}

bool IsLeap(int64_t y) { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

int DaysInMonth(int64_t y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

std::string FormatDatePart(int64_t days, bool* bc) {
  const Civil c = CivilFromDays(days);
  *bc = c.year <= 0;
  const int64_t year = *bc ? 1 - c.year : c.year;
  return absl::StrFormat("%04d-%02d-%02d", year, c.month, c.day);
}

std::string FormatDate(int64_t days) {
  if (days == Value::kDateInfinity) return "infinity";
  if (days == Value::kDateMinusInfinity) return "-infinity";
  bool bc = false;
  std::string s = FormatDatePart(days, &bc);
  if (bc) s += " BC";
  return s;
}

std::string FormatTimestamp(int64_t micros, bool tz) {
  if (micros == Value::kTimestampInfinity) return "infinity";
  if (micros == Value::kTimestampMinusInfinity) return "-infinity";
  const int64_t days = FloorDiv(micros, kMicrosPerDay);
  int64_t rest = micros - days * kMicrosPerDay;
  bool bc = false;
  std::string s = FormatDatePart(days, &bc);
  const int64_t frac = rest % kMicrosPerSecond;
  rest /= kMicrosPerSecond;
  absl::StrAppendFormat(&s, " %02d:%02d:%02d", rest / 3600, rest / 60 % 60, rest % 60);
  if (frac != 0) {
    std::string f = absl::StrFormat("%06d", frac);
    while (f.back() == '0') f.pop_back();
    s += "." + f;
  }
  if (tz) s += "+00";
  if (bc) s += " BC";
  return s;
}

// Postgres's shortest-exact float output: %e style when the decimal exponent is < -4 or >=
// the type's digits (15 for float8, 6 for float4), plain otherwise.
std::string FormatFloat(double v, bool is_float4) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  std::to_chars_result res;
  if (is_float4) {
    res =
        std::to_chars(buf, buf + sizeof(buf), static_cast<float>(v), std::chars_format::scientific);
  } else {
    res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  }
  std::string sci(buf, res.ptr);
  const size_t e = sci.find('e');
  std::string mant = sci.substr(0, e);
  const int exp = std::atoi(sci.c_str() + e + 1);
  const bool neg = !mant.empty() && mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant) {
    if (c != '.') digits.push_back(c);
  }
  if (exp < -4 || exp >= (is_float4 ? 6 : 15)) return sci;
  std::string out = neg ? "-" : "";
  if (exp < 0) {
    out += "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  } else {
    const size_t int_len = static_cast<size_t>(exp) + 1;
    if (digits.size() <= int_len) {
      out += digits + std::string(int_len - digits.size(), '0');
    } else {
      out += digits.substr(0, int_len) + "." + digits.substr(int_len);
    }
  }
  return out;
}

absl::Status BadInput(TypeId id, std::string_view text) {
  return absl::InvalidArgumentError(absl::StrCat("invalid input syntax for type ",
                                                 std::string(PgTypeName(id)), ": \"",
                                                 std::string(text), "\""));
}

std::string_view RangeMessage(TypeId id) {
  switch (id) {
    case TypeId::kInt2:
      return "smallint out of range";
    case TypeId::kInt4:
      return "integer out of range";
    default:
      return "bigint out of range";
  }
}

bool IntFits(TypeId id, int64_t v) {
  switch (id) {
    case TypeId::kInt2:
      return v >= INT16_MIN && v <= INT16_MAX;
    case TypeId::kInt4:
      return v >= INT32_MIN && v <= INT32_MAX;
    default:
      return true;
  }
}

absl::StatusOr<Value> InputInt(TypeId id, std::string_view text) {
  const std::string_view t = TrimWs(text);
  std::string_view digits = t;
  bool neg = false;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
    neg = digits[0] == '-';
    digits.remove_prefix(1);
  }
  if (digits.empty()) return BadInput(id, text);
  for (char c : digits) {
    if (!absl::ascii_isdigit(c)) return BadInput(id, text);
  }
  // Accumulate negatively so that the minimum fits.
  int64_t v = 0;
  bool overflow = false;
  for (char c : digits) {
    if (__builtin_mul_overflow(v, 10, &v) || __builtin_sub_overflow(v, c - '0', &v)) {
      overflow = true;
      break;
    }
  }
  if (!overflow && !neg) {
    if (v == INT64_MIN) {
      overflow = true;
    } else {
      v = -v;
    }
  }
  if (overflow || !IntFits(id, v)) {
    return absl::OutOfRangeError(absl::StrCat("value \"", std::string(text),
                                              "\" is out of range for type ",
                                              std::string(PgTypeName(id))));
  }
  return Value::Int(v);
}

absl::StatusOr<Value> InputFloat(TypeId id, std::string_view text) {
  const std::string t(TrimWs(text));
  const std::string lower = absl::AsciiStrToLower(t);
  if (lower == "nan") return Value::Float(std::numeric_limits<double>::quiet_NaN());
  if (lower == "infinity" || lower == "+infinity" || lower == "inf" || lower == "+inf") {
    return Value::Float(std::numeric_limits<double>::infinity());
  }
  if (lower == "-infinity" || lower == "-inf") {
    return Value::Float(-std::numeric_limits<double>::infinity());
  }
  // [+-] (digits [. digits] | . digits) [e [+-] digits]
  size_t i = 0;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
  size_t nd = 0;
  while (i < t.size() && absl::ascii_isdigit(t[i])) ++i, ++nd;
  if (i < t.size() && t[i] == '.') {
    ++i;
    while (i < t.size() && absl::ascii_isdigit(t[i])) ++i, ++nd;
  }
  if (nd == 0) return BadInput(id, text);
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    size_t ne = 0;
    while (i < t.size() && absl::ascii_isdigit(t[i])) ++i, ++ne;
    if (ne == 0) return BadInput(id, text);
  }
  if (i != t.size()) return BadInput(id, text);
  const absl::Status range = absl::OutOfRangeError(absl::StrCat(
      "\"", std::string(text), "\" is out of range for type ", std::string(PgTypeName(id))));
  errno = 0;
  if (id == TypeId::kFloat4) {
    const float f = std::strtof(t.c_str(), nullptr);
    if (errno == ERANGE && (f == 0.0f || std::isinf(f))) return range;
    return Value::Float(f);
  }
  const double d = std::strtod(t.c_str(), nullptr);
  if (errno == ERANGE && (d == 0.0 || std::isinf(d))) return range;
  return Value::Float(d);
}

absl::StatusOr<Value> InputBool(std::string_view text) {
  const std::string t = absl::AsciiStrToLower(std::string(TrimWs(text)));
  auto prefix_of = [&t](std::string_view word, size_t min_len) {
    return t.size() >= min_len && t.size() <= word.size() && word.substr(0, t.size()) == t;
  };
  if (t == "1" || prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2)) {
    return Value::Bool(true);
  }
  if (t == "0" || prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2)) {
    return Value::Bool(false);
  }
  return BadInput(TypeId::kBool, text);
}

absl::StatusOr<Value> InputUuid(std::string_view text) {
  std::string_view t = text;
  if (t.size() >= 2 && t.front() == '{' && t.back() == '}') t = t.substr(1, t.size() - 2);
  std::string hex;
  size_t group = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if (c == '-' && group == 4 && hex.size() < 32 && i + 1 < t.size()) {
      group = 0;
      continue;
    }
    if (!absl::ascii_isxdigit(c)) return BadInput(TypeId::kUuid, text);
    hex.push_back(absl::ascii_tolower(c));
    group = group == 4 ? 1 : group + 1;
  }
  if (hex.size() != 32) return BadInput(TypeId::kUuid, text);
  return Value::String(ValueKind::kUuid,
                       absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4),
                                    "-", hex.substr(16, 4), "-", hex.substr(20)));
}

// Reads exactly `n` digits.
bool Digits(std::string_view t, size_t* i, size_t min, size_t max, int64_t* v) {
  size_t n = 0;
  *v = 0;
  while (*i < t.size() && n < max && absl::ascii_isdigit(t[*i])) {
    *v = *v * 10 + (t[*i] - '0');
    ++*i;
    ++n;
  }
  return n >= min;
}

// Accepted input: YYYY-MM-DD, then for timestamps an optional [ T]HH:MM[:SS[.frac]], then an
// optional zone (Z, UTC, +HH, +HH:MM, +HHMM; ignored for timestamp as Postgres does), then an
// optional " BC". infinity, -infinity. Returns micros (or days for a date).
absl::StatusOr<Value> InputDateTime(TypeId id, std::string_view text) {
  const std::string t = absl::AsciiStrToLower(std::string(TrimWs(text)));
  auto make = [id](int64_t micros_or_days) {
    switch (id) {
      case TypeId::kDate:
        return Value::Date(micros_or_days);
      case TypeId::kTimestamp:
        return Value::Timestamp(micros_or_days);
      default:
        return Value::TimestampTz(micros_or_days);
    }
  };
  const bool is_date = id == TypeId::kDate;
  if (t == "infinity" || t == "+infinity") {
    return make(is_date ? Value::kDateInfinity : Value::kTimestampInfinity);
  }
  if (t == "-infinity") {
    return make(is_date ? Value::kDateMinusInfinity : Value::kTimestampMinusInfinity);
  }
  size_t i = 0;
  int64_t year = 0;
  int64_t month = 0;
  int64_t day = 0;
  if (!Digits(t, &i, 4, 7, &year) || i >= t.size() || t[i++] != '-' ||
      !Digits(t, &i, 1, 2, &month) || i >= t.size() || t[i++] != '-' ||
      !Digits(t, &i, 1, 2, &day)) {
    return BadInput(id, text);
  }
  int64_t hour = 0;
  int64_t minute = 0;
  int64_t second = 0;
  int64_t micros = 0;
  if (i < t.size() && (t[i] == ' ' || t[i] == 't') && i + 1 < t.size() &&
      absl::ascii_isdigit(t[i + 1])) {
    ++i;
    if (!Digits(t, &i, 1, 2, &hour) || i >= t.size() || t[i++] != ':' ||
        !Digits(t, &i, 2, 2, &minute)) {
      return BadInput(id, text);
    }
    if (i < t.size() && t[i] == ':') {
      ++i;
      if (!Digits(t, &i, 2, 2, &second)) return BadInput(id, text);
      if (i < t.size() && t[i] == '.') {
        ++i;
        size_t n = 0;
        int64_t frac = 0;
        int round = 0;
        while (i < t.size() && absl::ascii_isdigit(t[i])) {
          if (n < 6) {
            frac = frac * 10 + (t[i] - '0');
          } else if (n == 6) {
            round = t[i] >= '5' ? 1 : 0;
          }
          ++n;
          ++i;
        }
        if (n == 0) return BadInput(id, text);
        for (size_t k = n; k < 6; ++k) frac *= 10;
        micros = frac + round;
      }
    }
    if (hour > 24 || minute > 59 || second > 60 ||
        (hour == 24 && (minute != 0 || second != 0 || micros != 0))) {
      return absl::InvalidArgumentError(
          absl::StrCat("date/time field value out of range: \"", std::string(text), "\""));
    }
  }
  int64_t offset = 0;
  if (i < t.size() && t[i] == ' ' && i + 1 < t.size() &&
      (t[i + 1] == '+' || t[i + 1] == '-' || t.substr(i + 1, 3) == "utc")) {
    ++i;
  }
  if (i < t.size() && (t[i] == '+' || t[i] == '-' || t[i] == 'z' || t.substr(i, 3) == "utc")) {
    if (t[i] == 'z') {
      ++i;
    } else if (t[i] == 'u') {
      i += 3;
    } else {
      const int sign = t[i] == '-' ? -1 : 1;
      ++i;
      int64_t oh = 0;
      int64_t om = 0;
      if (!Digits(t, &i, 1, 2, &oh)) return BadInput(id, text);
      if (i < t.size() && t[i] == ':') {
        ++i;
        if (!Digits(t, &i, 2, 2, &om)) return BadInput(id, text);
      } else if (i + 1 < t.size() && absl::ascii_isdigit(t[i])) {
        if (!Digits(t, &i, 2, 2, &om)) return BadInput(id, text);
      }
      if (oh > 15 || om > 59) return BadInput(id, text);
      offset = sign * (oh * 3600 + om * 60);
    }
  }
  if (year == 0) return BadInput(id, text);
  if (t.substr(i) == " bc") {
    year = 1 - year;  // 1 BC is year 0 of the proleptic calendar
    i = t.size();
  }
  if (i != t.size()) return BadInput(id, text);
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, static_cast<int>(month))) {
    return absl::InvalidArgumentError(
        absl::StrCat("date/time field value out of range: \"", std::string(text), "\""));
  }
  const int64_t days = DaysFromCivil(year, month, day);
  if (is_date) return make(days);
  if (id == TypeId::kTimestamp) offset = 0;  // Postgres ignores a zone in timestamp input
  int64_t result = 0;
  if (__builtin_mul_overflow(days, kMicrosPerDay, &result) ||
      __builtin_add_overflow(
          result, (hour * 3600 + minute * 60 + second - offset) * kMicrosPerSecond + micros,
          &result)) {
    return absl::OutOfRangeError(
        absl::StrCat("timestamp out of range: \"", std::string(text), "\""));
  }
  // Postgres's timestamps start at 4714-11-24 BC; its end (294276 AD) lies beyond int64
  // microseconds since 1970, which the overflow check above catches.
  if (result < kTimestampBeginDays * kMicrosPerDay) {
    return absl::OutOfRangeError(
        absl::StrCat("timestamp out of range: \"", std::string(text), "\""));
  }
  return make(result);
}

absl::StatusOr<Value> InputBytea(std::string_view text) {
  if (!text.starts_with("\\x")) {
    // The escape format: bytes as they are, \\ for a backslash, \ooo for an octal byte.
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] != '\\') {
        out.push_back(text[i]);
        continue;
      }
      if (i + 1 < text.size() && text[i + 1] == '\\') {
        out.push_back('\\');
        ++i;
        continue;
      }
      if (i + 3 < text.size() && text[i + 1] >= '0' && text[i + 1] <= '3' && text[i + 2] >= '0' &&
          text[i + 2] <= '7' && text[i + 3] >= '0' && text[i + 3] <= '7') {
        out.push_back(static_cast<char>((text[i + 1] - '0') << 6 | (text[i + 2] - '0') << 3 |
                                        (text[i + 3] - '0')));
        i += 3;
        continue;
      }
      return absl::InvalidArgumentError("invalid input syntax for type bytea");
    }
    return Value::String(ValueKind::kBytes, std::move(out));
  }
  std::string out;
  const std::string_view hex = text.substr(2);
  if (hex.size() % 2 != 0) {
    return absl::InvalidArgumentError("invalid hexadecimal data: odd number of digits");
  }
  for (size_t i = 0; i < hex.size(); i += 2) {
    if (!absl::ascii_isxdigit(hex[i]) || !absl::ascii_isxdigit(hex[i + 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid hexadecimal digit: \"", std::string(1, hex[i]), "\""));
    }
    auto nib = [](char c) {
      return absl::ascii_isdigit(c) ? c - '0' : absl::ascii_tolower(c) - 'a' + 10;
    };
    out.push_back(static_cast<char>(nib(hex[i]) << 4 | nib(hex[i + 1])));
  }
  return Value::String(ValueKind::kBytes, std::move(out));
}

int64_t ToMicros(const Value& v, TypeId id) {
  if (id != TypeId::kDate) return v.int_value();
  if (v.int_value() == Value::kDateInfinity) return Value::kTimestampInfinity;
  if (v.int_value() == Value::kDateMinusInfinity) return Value::kTimestampMinusInfinity;
  // As Postgres's date2timestamp_opt_overflow in cross-type comparisons: a date beyond the
  // timestamp range is above every finite timestamp and below infinity (and the mirror image).
  if (v.int_value() >= kTimestampEndDays) return Value::kTimestampInfinity - 1;
  if (v.int_value() < kTimestampBeginDays) return Value::kTimestampMinusInfinity + 1;
  return v.int_value() * kMicrosPerDay;
}

double ToDouble(const Value& v, TypeId id) {
  if (IsIntFamily(id)) return static_cast<double>(v.int_value());
  if (id == TypeId::kNumeric) {
    absl::StatusOr<Decimal> d = Decimal::Parse(v.string_value());
    return d.ok() ? d->ToDouble() : std::numeric_limits<double>::quiet_NaN();
  }
  return v.float_value();
}

int CompareDoubles(double a, double b) {
  if (std::isnan(a)) return std::isnan(b) ? 0 : 1;
  if (std::isnan(b)) return -1;
  return a < b ? -1 : (a > b ? 1 : 0);
}

template <typename T>
int Cmp(const T& a, const T& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

absl::StatusOr<Decimal> ToDecimal(const Value& v, TypeId id) {
  if (IsIntFamily(id)) return Decimal::FromInt(v.int_value());
  return Decimal::Parse(v.string_value());
}

absl::StatusOr<Value> IntResult(TypeId id, int64_t v) {
  if (!IntFits(id, v)) return absl::OutOfRangeError(std::string(RangeMessage(id)));
  return Value::Int(v);
}

}  // namespace

std::string_view PgTypeName(TypeId id) {
  switch (id) {
    case TypeId::kUnknown:
      return "unknown";
    case TypeId::kBool:
      return "boolean";
    case TypeId::kInt2:
      return "smallint";
    case TypeId::kInt4:
      return "integer";
    case TypeId::kInt8:
      return "bigint";
    case TypeId::kFloat4:
      return "real";
    case TypeId::kFloat8:
      return "double precision";
    case TypeId::kNumeric:
      return "numeric";
    case TypeId::kText:
      return "text";
    case TypeId::kUuid:
      return "uuid";
    case TypeId::kTimestamp:
      return "timestamp";
    case TypeId::kTimestampTz:
      return "timestamp with time zone";
    case TypeId::kDate:
      return "date";
    case TypeId::kJsonb:
      return "jsonb";
    case TypeId::kBytea:
      return "bytea";
  }
  return "unknown";
}

uint32_t TypeOid(TypeId id) {
  switch (id) {
    case TypeId::kBool:
      return pgtype::kBool;
    case TypeId::kInt2:
      return pgtype::kInt2;
    case TypeId::kInt4:
      return pgtype::kInt4;
    case TypeId::kInt8:
      return pgtype::kInt8;
    case TypeId::kFloat4:
      return pgtype::kFloat4;
    case TypeId::kFloat8:
      return pgtype::kFloat8;
    case TypeId::kNumeric:
      return pgtype::kNumeric;
    case TypeId::kUuid:
      return pgtype::kUuid;
    case TypeId::kTimestamp:
      return pgtype::kTimestamp;
    case TypeId::kTimestampTz:
      return pgtype::kTimestampTz;
    case TypeId::kDate:
      return pgtype::kDate;
    case TypeId::kJsonb:
      return pgtype::kJsonb;
    case TypeId::kBytea:
      return pgtype::kBytea;
    case TypeId::kUnknown:
    case TypeId::kText:
      return pgtype::kText;
  }
  return pgtype::kText;
}

ValueKind ValueKindFor(const SqlType& type) {
  if (type.array) return ValueKind::kArray;
  switch (type.id) {
    case TypeId::kBool:
      return ValueKind::kBool;
    case TypeId::kInt2:
    case TypeId::kInt4:
    case TypeId::kInt8:
      return ValueKind::kInt;
    case TypeId::kFloat4:
    case TypeId::kFloat8:
      return ValueKind::kFloat;
    case TypeId::kNumeric:
      return ValueKind::kNumeric;
    case TypeId::kUuid:
      return ValueKind::kUuid;
    case TypeId::kTimestamp:
      return ValueKind::kTimestamp;
    case TypeId::kTimestampTz:
      return ValueKind::kTimestampTz;
    case TypeId::kDate:
      return ValueKind::kDate;
    case TypeId::kJsonb:
      return ValueKind::kJson;
    case TypeId::kBytea:
      return ValueKind::kBytes;
    case TypeId::kUnknown:
    case TypeId::kText:
      return ValueKind::kText;
  }
  return ValueKind::kText;
}

bool IsIntFamily(TypeId id) {
  return id == TypeId::kInt2 || id == TypeId::kInt4 || id == TypeId::kInt8;
}
bool IsNumericFamily(TypeId id) {
  return IsIntFamily(id) || id == TypeId::kNumeric || id == TypeId::kFloat4 ||
         id == TypeId::kFloat8;
}
int NumericRank(TypeId id) {
  switch (id) {
    case TypeId::kInt2:
      return 0;
    case TypeId::kInt4:
      return 1;
    case TypeId::kInt8:
      return 2;
    case TypeId::kNumeric:
      return 3;
    case TypeId::kFloat4:
      return 4;
    default:
      return 5;
  }
}
bool IsDateTimeFamily(TypeId id) {
  return id == TypeId::kDate || id == TypeId::kTimestamp || id == TypeId::kTimestampTz;
}

std::string FormatText(const Value& value, const SqlType& type) {
  if (type.array) return value.string_value();
  switch (type.id) {
    case TypeId::kBool:
      return value.bool_value() ? "true" : "false";
    case TypeId::kInt2:
    case TypeId::kInt4:
    case TypeId::kInt8:
      return std::to_string(value.int_value());
    case TypeId::kFloat4:
      return FormatFloat(value.float_value(), true);
    case TypeId::kFloat8:
      return FormatFloat(value.float_value(), false);
    case TypeId::kDate:
      return FormatDate(value.int_value());
    case TypeId::kTimestamp:
      return FormatTimestamp(value.int_value(), false);
    case TypeId::kTimestampTz:
      return FormatTimestamp(value.int_value(), true);
    case TypeId::kBytea: {
      std::string out = "\\x";
      for (unsigned char c : value.string_value()) absl::StrAppendFormat(&out, "%02x", c);
      return out;
    }
    case TypeId::kUnknown:
    case TypeId::kNumeric:
    case TypeId::kText:
    case TypeId::kUuid:
    case TypeId::kJsonb:
      return value.string_value();
  }
  return value.string_value();
}

absl::StatusOr<Value> InputText(const SqlType& type, std::string_view text) {
  if (type.array) {
    absl::StatusOr<std::vector<std::optional<std::string>>> elements = SplitArray(text);
    if (!elements.ok()) return elements.status();
    const SqlType element{type.id, false};
    for (std::optional<std::string>& e : *elements) {
      if (!e) continue;
      absl::StatusOr<Value> v = InputText(element, *e);
      if (!v.ok()) return v.status();
      e = FormatText(*v, element);
    }
    return Value::String(ValueKind::kArray, JoinArray(*elements));
  }
  switch (type.id) {
    case TypeId::kBool:
      return InputBool(text);
    case TypeId::kInt2:
    case TypeId::kInt4:
    case TypeId::kInt8:
      return InputInt(type.id, text);
    case TypeId::kFloat4:
    case TypeId::kFloat8:
      return InputFloat(type.id, text);
    case TypeId::kNumeric: {
      absl::StatusOr<Decimal> d = Decimal::Parse(text);
      if (!d.ok()) return d.status();
      return Value::String(ValueKind::kNumeric, d->ToString());
    }
    case TypeId::kUnknown:
    case TypeId::kText:
      return Value::String(ValueKind::kText, std::string(text));
    case TypeId::kUuid:
      return InputUuid(text);
    case TypeId::kDate:
    case TypeId::kTimestamp:
    case TypeId::kTimestampTz:
      return InputDateTime(type.id, text);
    case TypeId::kBytea:
      return InputBytea(text);
    case TypeId::kJsonb:
      return absl::UnimplementedError("jsonb input is not supported in shapes");
  }
  return absl::InternalError("unreachable");
}

absl::StatusOr<std::vector<std::optional<std::string>>> SplitArray(std::string_view text) {
  const absl::Status bad = absl::InvalidArgumentError(
      absl::StrCat("malformed array literal: \"", std::string(text), "\""));
  std::string_view t = TrimWs(text);
  if (t.starts_with('[')) {  // explicit bounds "[0:1]={...}": the bounds do not matter here
    const size_t eq = t.find('=');
    if (eq == std::string_view::npos) return bad;
    t = TrimWs(t.substr(eq + 1));
  }
  if (t.size() < 2 || t.front() != '{' || t.back() != '}') return bad;
  std::vector<std::optional<std::string>> out;
  size_t i = 1;
  const size_t end = t.size() - 1;
  auto skip_ws = [&] {
    while (i < end && absl::ascii_isspace(t[i])) ++i;
  };
  skip_ws();
  if (i == end) return out;
  while (true) {
    skip_ws();
    if (i >= end) return bad;
    if (t[i] == '{') {
      return absl::InvalidArgumentError("multidimensional arrays are not supported in shapes");
    }
    std::string element;
    bool quoted = false;
    if (t[i] == '"') {
      quoted = true;
      ++i;
      while (i < end && t[i] != '"') {
        if (t[i] == '\\') {
          ++i;
          if (i >= end) return bad;
        }
        element.push_back(t[i++]);
      }
      if (i >= end) return bad;
      ++i;
      skip_ws();
    } else {
      size_t last_non_ws = 0;
      while (i < end && t[i] != ',') {
        if (t[i] == '"' || t[i] == '{' || t[i] == '}') return bad;
        if (t[i] == '\\') {
          ++i;
          if (i >= end) return bad;
          element.push_back(t[i++]);
          last_non_ws = element.size();
          continue;
        }
        element.push_back(t[i]);
        if (!absl::ascii_isspace(t[i])) last_non_ws = element.size();
        ++i;
      }
      element.resize(last_non_ws);
      if (element.empty()) return bad;
    }
    if (!quoted && absl::AsciiStrToLower(element) == "null") {
      out.push_back(std::nullopt);
    } else {
      out.push_back(std::move(element));
    }
    if (i == end) break;
    if (t[i] != ',') return bad;
    ++i;
  }
  return out;
}

std::string JoinArray(const std::vector<std::optional<std::string>>& elements) {
  std::string out = "{";
  for (size_t i = 0; i < elements.size(); ++i) {
    if (i > 0) out += ',';
    if (!elements[i]) {
      out += "NULL";
      continue;
    }
    const std::string& e = *elements[i];
    bool quote = e.empty() || absl::AsciiStrToLower(e) == "null";
    for (char c : e) {
      if (c == '{' || c == '}' || c == ',' || c == '"' || c == '\\' || absl::ascii_isspace(c)) {
        quote = true;
      }
    }
    if (!quote) {
      out += e;
      continue;
    }
    out += '"';
    for (char c : e) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

absl::StatusOr<std::vector<Value>> ArrayElements(const Value& array, TypeId element) {
  absl::StatusOr<std::vector<std::optional<std::string>>> parts = SplitArray(array.string_value());
  if (!parts.ok()) return parts.status();
  std::vector<Value> out;
  out.reserve(parts->size());
  for (const std::optional<std::string>& p : *parts) {
    if (!p) {
      out.push_back(Value::Null());
      continue;
    }
    // Array text from Postgres holds elements in output format, which the input functions
    // accept.
    absl::StatusOr<Value> v = InputText(SqlType{element, false}, *p);
    if (!v.ok()) return v.status();
    out.push_back(*std::move(v));
  }
  return out;
}

bool CanCast(const SqlType& from, const SqlType& to) {
  if (from == to) return true;
  if (from.id == TypeId::kUnknown) return true;
  if (to.id == TypeId::kText && !to.array) return true;  // every type has a text output
  if (from.array || to.array) return from.id == TypeId::kText && !from.array;
  if (from.id == TypeId::kText) return to.id != TypeId::kJsonb;
  if (IsNumericFamily(from.id) && IsNumericFamily(to.id)) return true;
  if ((from.id == TypeId::kInt4 && to.id == TypeId::kBool) ||
      (from.id == TypeId::kBool && to.id == TypeId::kInt4)) {
    return true;
  }
  if (IsDateTimeFamily(from.id) && IsDateTimeFamily(to.id)) return true;
  return false;
}

absl::StatusOr<Value> CastValue(const Value& value, const SqlType& from, const SqlType& to) {
  if (value.is_null()) return Value::Null();
  if (from == to) return value;
  if (to.id == TypeId::kText && !to.array) {
    return Value::String(ValueKind::kText, FormatText(value, from));
  }
  if (from.id == TypeId::kText || from.id == TypeId::kUnknown) {
    return InputText(to, value.string_value());
  }
  const TypeId f = from.id;
  const TypeId t = to.id;
  if (!from.array && !to.array) {
    if (IsIntFamily(f)) {
      if (IsIntFamily(t)) return IntResult(t, value.int_value());
      if (t == TypeId::kNumeric) {
        return Value::String(ValueKind::kNumeric, std::to_string(value.int_value()));
      }
      if (t == TypeId::kFloat8) return Value::Float(static_cast<double>(value.int_value()));
      if (t == TypeId::kFloat4) {
        return Value::Float(static_cast<float>(value.int_value()));
      }
      if (t == TypeId::kBool && f == TypeId::kInt4) return Value::Bool(value.int_value() != 0);
    }
    if (f == TypeId::kBool && t == TypeId::kInt4) return Value::Int(value.bool_value() ? 1 : 0);
    if (f == TypeId::kNumeric) {
      absl::StatusOr<Decimal> d = Decimal::Parse(value.string_value());
      if (!d.ok()) return d.status();
      if (IsIntFamily(t)) {
        if (d->is_nan()) {
          return absl::InvalidArgumentError(
              absl::StrCat("cannot convert NaN to ", std::string(PgTypeName(t))));
        }
        if (d->is_inf()) {
          return absl::InvalidArgumentError(
              absl::StrCat("cannot convert infinity to ", std::string(PgTypeName(t))));
        }
        int64_t v = 0;
        if (!d->ToInt64(&v)) return absl::OutOfRangeError(std::string(RangeMessage(t)));
        return IntResult(t, v);
      }
      // Postgres converts through the numeric's text and float8in / float4in, which reject a
      // value that overflows or underflows to zero.
      const double v = d->ToDouble();
      if (t == TypeId::kFloat8) {
        if ((std::isinf(v) && !d->is_inf()) || (v == 0.0 && !d->is_zero() && !d->is_nan())) {
          return absl::OutOfRangeError(absl::StrCat(
              "\"", value.string_value(), "\" is out of range for type double precision"));
        }
        return Value::Float(v);
      }
      if (t == TypeId::kFloat4) {
        const float r = static_cast<float>(v);
        if ((std::isinf(r) && !d->is_inf()) || (r == 0.0f && !d->is_zero() && !d->is_nan())) {
          return absl::OutOfRangeError(
              absl::StrCat("\"", value.string_value(), "\" is out of range for type real"));
        }
        return Value::Float(r);
      }
    }
    if (f == TypeId::kFloat4 || f == TypeId::kFloat8) {
      const double v = value.float_value();
      if (IsIntFamily(t)) {
        const double r = std::rint(v);
        const bool fits =
            !std::isnan(r) &&
            ((t == TypeId::kInt2 && r >= -32768.0 && r < 32768.0) ||
             (t == TypeId::kInt4 && r >= -2147483648.0 && r < 2147483648.0) ||
             (t == TypeId::kInt8 && r >= -9223372036854775808.0 && r < 9223372036854775808.0));
        if (!fits) return absl::OutOfRangeError(std::string(RangeMessage(t)));
        return Value::Int(static_cast<int64_t>(r));
      }
      if (t == TypeId::kNumeric) {
        if (std::isnan(v)) return Value::String(ValueKind::kNumeric, "NaN");
        if (std::isinf(v))
          return Value::String(ValueKind::kNumeric, v > 0 ? "Infinity" : "-Infinity");
        // Postgres converts through %.*g with DBL_DIG (FLT_DIG for float4) digits.
        const std::string s = absl::StrFormat("%.*g", f == TypeId::kFloat4 ? 6 : 15, v);
        absl::StatusOr<Decimal> d = Decimal::Parse(s);
        if (!d.ok()) return d.status();
        return Value::String(ValueKind::kNumeric, d->ToString());
      }
      if (t == TypeId::kFloat8) return value;
      if (t == TypeId::kFloat4) {
        const float r = static_cast<float>(v);
        if (std::isinf(r) && !std::isinf(v)) {
          return absl::OutOfRangeError("value out of range: overflow");
        }
        if (r == 0.0f && v != 0.0) return absl::OutOfRangeError("value out of range: underflow");
        return Value::Float(r);
      }
    }
    if (IsDateTimeFamily(f) && IsDateTimeFamily(t)) {
      if (t == TypeId::kDate) {
        const int64_t m = value.int_value();
        if (m == Value::kTimestampInfinity) return Value::Date(Value::kDateInfinity);
        if (m == Value::kTimestampMinusInfinity) return Value::Date(Value::kDateMinusInfinity);
        return Value::Date(FloorDiv(m, kMicrosPerDay));
      }
      if (f == TypeId::kDate && value.int_value() != Value::kDateInfinity &&
          value.int_value() != Value::kDateMinusInfinity &&
          (value.int_value() >= kTimestampEndDays ||
           value.int_value() > INT64_MAX / kMicrosPerDay - 1)) {
        return absl::OutOfRangeError("date out of range for timestamp");
      }
      const int64_t m = ToMicros(value, f);
      return t == TypeId::kTimestamp ? Value::Timestamp(m) : Value::TimestampTz(m);
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("cannot cast type ", from.ToString(), " to ", to.ToString()));
}

bool Comparable(const SqlType& a, const SqlType& b, bool ordering) {
  if (a.array || b.array) return false;
  if (IsNumericFamily(a.id) && IsNumericFamily(b.id)) return true;
  if (IsDateTimeFamily(a.id) && IsDateTimeFamily(b.id)) return true;
  if (a.id != b.id) return false;
  if (a.id == TypeId::kJsonb) return !ordering;  // equality of the normalized text only
  return true;
}

absl::StatusOr<int> CompareValues(const Value& a, const SqlType& ta, const Value& b,
                                  const SqlType& tb) {
  const TypeId x = ta.id;
  const TypeId y = tb.id;
  if (IsNumericFamily(x) && IsNumericFamily(y)) {
    if (IsIntFamily(x) && IsIntFamily(y)) return Cmp(a.int_value(), b.int_value());
    if (x == TypeId::kFloat4 || x == TypeId::kFloat8 || y == TypeId::kFloat4 ||
        y == TypeId::kFloat8) {
      return CompareDoubles(ToDouble(a, x), ToDouble(b, y));
    }
    absl::StatusOr<Decimal> da = ToDecimal(a, x);
    absl::StatusOr<Decimal> db = ToDecimal(b, y);
    if (!da.ok()) return da.status();
    if (!db.ok()) return db.status();
    return Decimal::Compare(*da, *db);
  }
  if (IsDateTimeFamily(x) && IsDateTimeFamily(y)) {
    if (x == TypeId::kDate && y == TypeId::kDate) return Cmp(a.int_value(), b.int_value());
    return Cmp(ToMicros(a, x), ToMicros(b, y));
  }
  switch (x) {
    case TypeId::kBool:
      return Cmp(a.bool_value(), b.bool_value());
    case TypeId::kText:
    case TypeId::kUuid:
    case TypeId::kJsonb:
    case TypeId::kBytea:
    case TypeId::kUnknown: {
      // Bytewise, the C collation.
      const int c = a.string_value().compare(b.string_value());
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    default:
      break;
  }
  return absl::InternalError("values are not comparable");
}

std::optional<SqlType> ArithmeticType(Op op, const SqlType& a, const SqlType& b) {
  if (a.array || b.array) return std::nullopt;
  const TypeId x = a.id;
  const TypeId y = b.id;
  if (x == TypeId::kDate || y == TypeId::kDate) {
    if (op == Op::kAdd && ((x == TypeId::kDate && IsIntFamily(y) && y != TypeId::kInt8) ||
                           (y == TypeId::kDate && IsIntFamily(x) && x != TypeId::kInt8))) {
      return SqlType{TypeId::kDate};
    }
    if (op == Op::kSub && x == TypeId::kDate && IsIntFamily(y) && y != TypeId::kInt8) {
      return SqlType{TypeId::kDate};
    }
    if (op == Op::kSub && x == TypeId::kDate && y == TypeId::kDate) {
      return SqlType{TypeId::kInt4};
    }
    return std::nullopt;
  }
  if (!IsNumericFamily(x) || !IsNumericFamily(y)) return std::nullopt;
  TypeId r = NumericRank(x) >= NumericRank(y) ? x : y;
  // Postgres has float4 op float4 and float4 op float8 only; numeric or integers with float4
  // resolve to float8 (its preferred type).
  if (r == TypeId::kFloat4 && (x != TypeId::kFloat4 || y != TypeId::kFloat4)) {
    r = TypeId::kFloat8;
  }
  if (op == Op::kMod && (r == TypeId::kFloat4 || r == TypeId::kFloat8)) return std::nullopt;
  return SqlType{r};
}

}  // namespace shapebridge::shapes::internal
