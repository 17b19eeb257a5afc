#include "core/value.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace shapebridge {
namespace {

constexpr int64_t kMicrosPerSecond = 1'000'000;
constexpr int64_t kSecondsPerDay = 86'400;
constexpr int64_t kMicrosPerDay = kSecondsPerDay * kMicrosPerSecond;

// Error messages quote at most this many bytes of the offending text: a malformed 1 GB value must
// not become a 1 GB log line.
constexpr size_t kMaxQuotedBytes = 64;

bool IsStringKind(ValueKind kind) {
  switch (kind) {
    case ValueKind::kNumeric:
    case ValueKind::kText:
    case ValueKind::kUuid:
    case ValueKind::kJson:
    case ValueKind::kBytes:
    case ValueKind::kArray:
    case ValueKind::kOther:
      return true;
    default:
      return false;
  }
}

// Howard Hinnant's days_from_civil (http://howardhinnant.github.io/date_algorithms.html):
// proleptic Gregorian, astronomical years (1 BC is year 0). The parsers feed it years of at most
// 7 digits, far from any overflow.
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;                                    // [0, 399]
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;  // [0, 365]
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;            // [0, 146096]
  return era * 146097 + doe - 719468;
}

struct Civil {
  int64_t year;  // astronomical
  int month;
  int day;
};

// The inverse, civil_from_days, from the same source.
Civil CivilFromDays(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;                                       // [0, 146096]
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
  const int64_t mp = (5 * doy + 2) / 153;                                     // [0, 11]
  const int day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  return Civil{yoe + era * 400 + (month <= 2 ? 1 : 0), month, day};
}

bool IsLeapYear(int64_t y) { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

int DaysInMonth(int64_t y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeapYear(y) ? 29 : kDays[m - 1];
}

int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// ISO 8601 with astronomical years: 1 BC prints as 0000, 2 BC as -0001.
std::string FormatDate(int64_t unix_days) {
  const Civil c = CivilFromDays(unix_days);
  if (c.year < 0) {
    return absl::StrFormat("-%04d-%02d-%02d", -c.year, c.month, c.day);
  }
  return absl::StrFormat("%04d-%02d-%02d", c.year, c.month, c.day);
}

std::string FormatTimestamp(int64_t unix_micros, bool utc) {
  const int64_t days = FloorDiv(unix_micros, kMicrosPerDay);
  const int64_t in_day = unix_micros - days * kMicrosPerDay;
  const int64_t secs = in_day / kMicrosPerSecond;
  return absl::StrFormat("%sT%02d:%02d:%02d.%06d%s", FormatDate(days), secs / 3600, secs / 60 % 60,
                         secs % 60, in_day % kMicrosPerSecond, utc ? "Z" : "");
}

std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  // Without a precision, to_chars gives the shortest text that reads back as the same double.
  const auto result = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, result.ptr);
}

// This abseil build has its own string_view type, distinct from std::string_view.
absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status Invalid(std::string_view type, std::string_view text, std::string_view detail = "") {
  const bool truncated = text.size() > kMaxQuotedBytes;
  return absl::InvalidArgumentError(
      absl::StrFormat("invalid %s value \"%s%s\"%s%s", type,
                      absl::Utf8SafeCEscape(AbslView(text.substr(0, kMaxQuotedBytes))),
                      truncated ? "..." : "", detail.empty() ? "" : ": ", detail));
}

// A cursor over the text being parsed. Every Consume* advances only on success.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : rest_(text) {}

  bool AtEnd() const { return rest_.empty(); }

  bool ConsumeChar(char c) {
    if (rest_.empty() || rest_.front() != c) return false;
    rest_.remove_prefix(1);
    return true;
  }

  bool ConsumeLiteral(std::string_view literal) {
    if (!rest_.starts_with(literal)) return false;
    rest_.remove_prefix(literal.size());
    return true;
  }

  // Between min_digits and max_digits decimal digits (as many as present, up to the maximum).
  bool ConsumeDigits(size_t min_digits, size_t max_digits, int64_t* value,
                     size_t* count = nullptr) {
    size_t n = 0;
    int64_t v = 0;
    while (n < rest_.size() && n < max_digits && absl::ascii_isdigit(rest_[n])) {
      v = v * 10 + (rest_[n] - '0');
      ++n;
    }
    if (n < min_digits) return false;
    rest_.remove_prefix(n);
    *value = v;
    if (count != nullptr) *count = n;
    return true;
  }

  // One or more digits, however many.
  bool ConsumeDigitRun() {
    size_t n = 0;
    while (n < rest_.size() && absl::ascii_isdigit(rest_[n])) ++n;
    rest_.remove_prefix(n);
    return n > 0;
  }

  // A field of exactly `digits` digits whose value is at most `max`.
  bool ConsumeField(size_t digits, int64_t max, int64_t* value) {
    Scanner copy = *this;
    if (!copy.ConsumeDigits(digits, digits, value) || *value > max) return false;
    *this = copy;
    return true;
  }

 private:
  std::string_view rest_;
};

// "YYYY-MM-DD" (the year has 4 to 7 digits, as Postgres prints years up to 5874897). The year is
// as printed, before any " BC"; FinishDate applies that and validates the day of the month.
bool ScanDate(Scanner& s, Civil* date) {
  int64_t year = 0;
  int64_t month = 0;
  int64_t day = 0;
  size_t year_digits = 0;
  // Read one digit more than allowed so that an 8-digit year is an error, not a truncation.
  if (!s.ConsumeDigits(4, 8, &year, &year_digits) || year_digits > 7 || !s.ConsumeChar('-') ||
      !s.ConsumeField(2, 12, &month) || !s.ConsumeChar('-') || !s.ConsumeField(2, 31, &day)) {
    return false;
  }
  *date = Civil{year, static_cast<int>(month), static_cast<int>(day)};
  return true;
}

// Applies an optional " BC" suffix (year N BC is astronomical year 1 - N) and checks the day of
// the month. Returns the day number, or nullopt.
std::optional<int64_t> FinishDate(Scanner& s, Civil date) {
  if (date.year == 0 || date.month < 1) return std::nullopt;  // Postgres has no year 0 AD/BC
  if (s.ConsumeLiteral(" BC")) date.year = 1 - date.year;
  if (date.day < 1 || date.day > DaysInMonth(date.year, date.month)) return std::nullopt;
  return DaysFromCivil(date.year, date.month, date.day);
}

absl::StatusOr<Value> ParseDate(std::string_view text) {
  if (text == "infinity") return Value::Date(Value::kDateInfinity);
  if (text == "-infinity") return Value::Date(Value::kDateMinusInfinity);
  Scanner s(text);
  Civil date{};
  if (!ScanDate(s, &date)) return Invalid("date", text);
  const std::optional<int64_t> days = FinishDate(s, date);
  if (!days || !s.AtEnd()) return Invalid("date", text);
  // Postgres's own range is narrower; this keeps finite dates off the infinity sentinels.
  if (*days <= Value::kDateMinusInfinity || *days >= Value::kDateInfinity) {
    return Invalid("date", text, "out of range");
  }
  return Value::Date(*days);
}

absl::StatusOr<Value> ParseTimestamp(std::string_view text, bool with_tz) {
  const std::string_view type = with_tz ? "timestamptz" : "timestamp";
  auto make = [with_tz](int64_t micros) {
    return with_tz ? Value::TimestampTz(micros) : Value::Timestamp(micros);
  };
  if (text == "infinity") return make(Value::kTimestampInfinity);
  if (text == "-infinity") return make(Value::kTimestampMinusInfinity);

  Scanner s(text);
  Civil date{};
  int64_t hour = 0;
  int64_t minute = 0;
  int64_t second = 0;
  if (!ScanDate(s, &date) || !s.ConsumeChar(' ') || !s.ConsumeField(2, 23, &hour) ||
      !s.ConsumeChar(':') || !s.ConsumeField(2, 59, &minute) || !s.ConsumeChar(':') ||
      !s.ConsumeField(2, 59, &second)) {
    return Invalid(type, text);
  }
  int64_t micros = 0;
  if (s.ConsumeChar('.')) {
    size_t digits = 0;
    if (!s.ConsumeDigits(1, 6, &micros, &digits)) return Invalid(type, text);
    for (size_t i = digits; i < 6; ++i) micros *= 10;
  }
  // The UTC offset comes before " BC": "0001-01-01 00:19:32+00:19:32 BC".
  int64_t offset_seconds = 0;
  if (with_tz) {
    int sign = 0;
    if (s.ConsumeChar('+')) {
      sign = 1;
    } else if (s.ConsumeChar('-')) {
      sign = -1;
    } else {
      return Invalid(type, text, "missing UTC offset");
    }
    int64_t off_hour = 0;
    int64_t off_minute = 0;
    int64_t off_second = 0;
    if (!s.ConsumeField(2, 23, &off_hour)) return Invalid(type, text);
    if (s.ConsumeChar(':')) {
      if (!s.ConsumeField(2, 59, &off_minute)) return Invalid(type, text);
      if (s.ConsumeChar(':') && !s.ConsumeField(2, 59, &off_second)) return Invalid(type, text);
    }
    offset_seconds = sign * (off_hour * 3600 + off_minute * 60 + off_second);
  }
  const std::optional<int64_t> days = FinishDate(s, date);
  if (!days || !s.AtEnd()) return Invalid(type, text);

  // local time - offset = UTC. Timestamps near Postgres's upper limit (294276 AD) do not fit in
  // int64 microseconds since 1970 (Postgres counts from 2000), so overflow is checked.
  const int64_t seconds_in_day = hour * 3600 + minute * 60 + second - offset_seconds;
  int64_t result = 0;
  if (__builtin_mul_overflow(*days, kMicrosPerDay, &result) ||
      __builtin_add_overflow(result, seconds_in_day * kMicrosPerSecond + micros, &result) ||
      result == Value::kTimestampInfinity || result == Value::kTimestampMinusInfinity) {
    return Invalid(type, text, "out of range");
  }
  return make(result);
}

absl::StatusOr<Value> ParseInt(std::string_view type, std::string_view text, int64_t min,
                               int64_t max) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec == std::errc::result_out_of_range) return Invalid(type, text, "out of range");
  if (ec != std::errc() || ptr != end) return Invalid(type, text);
  if (v < min || v > max) return Invalid(type, text, "out of range");
  return Value::Int(v);
}

absl::StatusOr<Value> ParseOid(std::string_view text) {
  uint32_t v = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec == std::errc::result_out_of_range) return Invalid("oid", text, "out of range");
  if (ec != std::errc() || ptr != end) return Invalid("oid", text);
  return Value::Int(v);
}

absl::StatusOr<Value> ParseFloat(std::string_view type, std::string_view text) {
  if (text == "NaN") return Value::Float(std::numeric_limits<double>::quiet_NaN());
  if (text == "Infinity") return Value::Float(std::numeric_limits<double>::infinity());
  if (text == "-Infinity") return Value::Float(-std::numeric_limits<double>::infinity());
  // Postgres prints -?D+(.D+)?(e[+-]D+)?. from_chars alone would also take "inf", "nan", ".5" and
  // "1.", so the grammar is checked first.
  Scanner s(text);
  s.ConsumeChar('-');
  if (!s.ConsumeDigitRun() || (s.ConsumeChar('.') && !s.ConsumeDigitRun())) {
    return Invalid(type, text);
  }
  if (s.ConsumeChar('e') &&
      ((!s.ConsumeChar('+') && !s.ConsumeChar('-')) || !s.ConsumeDigitRun())) {
    return Invalid(type, text);
  }
  if (!s.AtEnd()) return Invalid(type, text);
  double v = 0;
  const char* end = text.data() + text.size();
  // std::from_chars is locale independent, unlike strtod.
  const auto [ptr, ec] = std::from_chars(text.data(), end, v, std::chars_format::general);
  if (ec == std::errc::result_out_of_range) return Invalid(type, text, "out of range");
  if (ec != std::errc() || ptr != end) return Invalid(type, text);
  return Value::Float(v);
}

// Postgres prints numeric as [-]digits[.digits], or NaN, Infinity, -Infinity; never an exponent.
absl::StatusOr<Value> ParseNumeric(std::string_view text) {
  if (text == "NaN" || text == "Infinity" || text == "-Infinity") {
    return Value::String(ValueKind::kNumeric, std::string(text));
  }
  Scanner s(text);
  s.ConsumeChar('-');
  if (!s.ConsumeDigitRun() || (s.ConsumeChar('.') && !s.ConsumeDigitRun()) || !s.AtEnd()) {
    return Invalid("numeric", text);
  }
  return Value::String(ValueKind::kNumeric, std::string(text));
}

absl::StatusOr<Value> ParseUuid(std::string_view text) {
  bool ok = text.size() == 36;
  for (size_t i = 0; ok && i < text.size(); ++i) {
    ok = (i == 8 || i == 13 || i == 18 || i == 23) ? text[i] == '-' : absl::ascii_isxdigit(text[i]);
  }
  if (!ok) return Invalid("uuid", text);
  return Value::String(ValueKind::kUuid, absl::AsciiStrToLower(AbslView(text)));
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::StatusOr<Value> ParseBytea(std::string_view text) {
  if (!text.starts_with("\\x")) return Invalid("bytea", text, "expected hex format \\x...");
  const std::string_view hex = text.substr(2);
  if (hex.size() % 2 != 0) return Invalid("bytea", text, "odd number of hex digits");
  std::string bytes;
  bytes.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = HexDigit(hex[i]);
    const int lo = HexDigit(hex[i + 1]);
    if (hi < 0 || lo < 0) return Invalid("bytea", text);
    bytes.push_back(static_cast<char>(hi << 4 | lo));
  }
  return Value::String(ValueKind::kBytes, std::move(bytes));
}

}  // namespace

std::string_view ValueKindName(ValueKind kind) {
  switch (kind) {
    case ValueKind::kNull:
      return "null";
    case ValueKind::kUnchanged:
      return "unchanged";
    case ValueKind::kBool:
      return "bool";
    case ValueKind::kInt:
      return "int";
    case ValueKind::kFloat:
      return "float";
    case ValueKind::kNumeric:
      return "numeric";
    case ValueKind::kText:
      return "text";
    case ValueKind::kUuid:
      return "uuid";
    case ValueKind::kTimestamp:
      return "timestamp";
    case ValueKind::kTimestampTz:
      return "timestamptz";
    case ValueKind::kDate:
      return "date";
    case ValueKind::kJson:
      return "json";
    case ValueKind::kBytes:
      return "bytes";
    case ValueKind::kArray:
      return "array";
    case ValueKind::kOther:
      return "other";
  }
  return "invalid";
}

Value Value::Bool(bool v) {
  Value value(ValueKind::kBool);
  value.int_ = v ? 1 : 0;
  return value;
}

Value Value::Int(int64_t v) {
  Value value(ValueKind::kInt);
  value.int_ = v;
  return value;
}

Value Value::Float(double v) {
  Value value(ValueKind::kFloat);
  value.float_ = v;
  return value;
}

Value Value::Timestamp(int64_t unix_micros) {
  Value value(ValueKind::kTimestamp);
  value.int_ = unix_micros;
  return value;
}

Value Value::TimestampTz(int64_t unix_micros) {
  Value value(ValueKind::kTimestampTz);
  value.int_ = unix_micros;
  return value;
}

Value Value::Date(int64_t unix_days) {
  Value value(ValueKind::kDate);
  value.int_ = unix_days;
  return value;
}

Value Value::String(ValueKind kind, std::string v) {
  if (!IsStringKind(kind)) {
    // A programming error, not bad input.
    const std::string_view name = ValueKindName(kind);
    std::fprintf(stderr, "Value::String called with non-string kind %.*s\n",
                 static_cast<int>(name.size()), name.data());
    std::abort();
  }
  Value value(kind);
  value.string_ = std::move(v);
  return value;
}

std::string Value::DebugString() const {
  switch (kind_) {
    case ValueKind::kNull:
      return "null";
    case ValueKind::kUnchanged:
      return "unchanged-toast";
    case ValueKind::kBool:
      return int_ != 0 ? "true" : "false";
    case ValueKind::kInt:
      return absl::StrCat(int_);
    case ValueKind::kFloat:
      return FormatDouble(float_);
    case ValueKind::kText: {
      std::string out = "'";
      for (char c : string_) {
        if (c == '\'') out.push_back('\'');
        out.push_back(c);
      }
      out.push_back('\'');
      return out;
    }
    case ValueKind::kTimestamp:
    case ValueKind::kTimestampTz:
      if (int_ == kTimestampInfinity) return "infinity";
      if (int_ == kTimestampMinusInfinity) return "-infinity";
      return FormatTimestamp(int_, kind_ == ValueKind::kTimestampTz);
    case ValueKind::kDate:
      if (int_ == kDateInfinity) return "infinity";
      if (int_ == kDateMinusInfinity) return "-infinity";
      // Beyond Postgres's range only through Value::Date; keeps CivilFromDays from overflowing.
      if (int_ > (int64_t{1} << 40) || int_ < -(int64_t{1} << 40)) {
        return absl::StrCat("date(", int_, " days)");
      }
      return FormatDate(int_);
    case ValueKind::kBytes:
      return absl::StrCat("\\x", absl::BytesToHexString(string_));
    case ValueKind::kNumeric:
    case ValueKind::kUuid:
    case ValueKind::kJson:
    case ValueKind::kArray:
    case ValueKind::kOther:
      return string_;
  }
  return "invalid";
}

bool operator==(const Value& a, const Value& b) {
  if (a.kind_ != b.kind_) return false;
  switch (a.kind_) {
    case ValueKind::kNull:
    case ValueKind::kUnchanged:
      return true;
    case ValueKind::kBool:
    case ValueKind::kInt:
    case ValueKind::kTimestamp:
    case ValueKind::kTimestampTz:
    case ValueKind::kDate:
      return a.int_ == b.int_;
    case ValueKind::kFloat:
      // Equal when Postgres would print them the same: every NaN is "NaN", but 0 and -0 differ.
      if (std::isnan(a.float_) && std::isnan(b.float_)) return true;
      return std::bit_cast<uint64_t>(a.float_) == std::bit_cast<uint64_t>(b.float_);
    case ValueKind::kNumeric:
    case ValueKind::kText:
    case ValueKind::kUuid:
    case ValueKind::kJson:
    case ValueKind::kBytes:
    case ValueKind::kArray:
    case ValueKind::kOther:
      return a.string_ == b.string_;
  }
  return false;
}

namespace pgtype {

bool IsBuiltinArray(uint32_t oid) {
  // The array types of the base types in Postgres's pg_type.dat (checked against PG 15's
  // pg_type, typcategory 'A'). Catalog row types and pseudo-types are left out.
  switch (oid) {
    case 143:   // _xml
    case 199:   // _json
    case 271:   // _xid8
    case 629:   // _line
    case 651:   // _cidr
    case 719:   // _circle
    case 775:   // _macaddr8
    case 791:   // _money
    case 1000:  // _bool
    case 1001:  // _bytea
    case 1002:  // _char
    case 1003:  // _name
    case 1005:  // _int2
    case 1006:  // _int2vector
    case 1007:  // _int4
    case 1008:  // _regproc
    case 1009:  // _text
    case 1010:  // _tid
    case 1011:  // _xid
    case 1012:  // _cid
    case 1013:  // _oidvector
    case 1014:  // _bpchar
    case 1015:  // _varchar
    case 1016:  // _int8
    case 1017:  // _point
    case 1018:  // _lseg
    case 1019:  // _path
    case 1020:  // _box
    case 1021:  // _float4
    case 1022:  // _float8
    case 1027:  // _polygon
    case 1028:  // _oid
    case 1034:  // _aclitem
    case 1040:  // _macaddr
    case 1041:  // _inet
    case 1115:  // _timestamp
    case 1182:  // _date
    case 1183:  // _time
    case 1185:  // _timestamptz
    case 1187:  // _interval
    case 1231:  // _numeric
    case 1263:  // _cstring
    case 1270:  // _timetz
    case 1561:  // _bit
    case 1563:  // _varbit
    case 2201:  // _refcursor
    case 2207:  // _regprocedure
    case 2208:  // _regoper
    case 2209:  // _regoperator
    case 2210:  // _regclass
    case 2211:  // _regtype
    case 2949:  // _txid_snapshot
    case 2951:  // _uuid
    case 3221:  // _pg_lsn
    case 3643:  // _tsvector
    case 3644:  // _gtsvector
    case 3645:  // _tsquery
    case 3735:  // _regconfig
    case 3770:  // _regdictionary
    case 3807:  // _jsonb
    case 3905:  // _int4range
    case 3907:  // _numrange
    case 3909:  // _tsrange
    case 3911:  // _tstzrange
    case 3913:  // _daterange
    case 3927:  // _int8range
    case 4073:  // _jsonpath
    case 4090:  // _regnamespace
    case 4097:  // _regrole
    case 4192:  // _regcollation
    case 5039:  // _pg_snapshot
    case 6150:  // _int4multirange
    case 6151:  // _nummultirange
    case 6152:  // _tsmultirange
    case 6153:  // _tstzmultirange
    case 6155:  // _datemultirange
    case 6157:  // _int8multirange
      return true;
    default:
      return false;
  }
}

}  // namespace pgtype

absl::StatusOr<Value> ParseTextValue(uint32_t type_oid, bool is_array, std::string_view text) {
  if (is_array || pgtype::IsBuiltinArray(type_oid)) {
    // "{...}", or "[lo:hi]={...}" when the lower bound is not 1.
    if (!text.starts_with('{') && !text.starts_with('[')) return Invalid("array", text);
    return Value::String(ValueKind::kArray, std::string(text));
  }
  switch (type_oid) {
    case pgtype::kBool:
      if (text == "t") return Value::Bool(true);
      if (text == "f") return Value::Bool(false);
      return Invalid("bool", text);
    case pgtype::kInt2:
      return ParseInt("int2", text, std::numeric_limits<int16_t>::min(),
                      std::numeric_limits<int16_t>::max());
    case pgtype::kInt4:
      return ParseInt("int4", text, std::numeric_limits<int32_t>::min(),
                      std::numeric_limits<int32_t>::max());
    case pgtype::kInt8:
      return ParseInt("int8", text, std::numeric_limits<int64_t>::min(),
                      std::numeric_limits<int64_t>::max());
    case pgtype::kOid:
      return ParseOid(text);
    case pgtype::kFloat4:
      return ParseFloat("float4", text);
    case pgtype::kFloat8:
      return ParseFloat("float8", text);
    case pgtype::kNumeric:
      return ParseNumeric(text);
    case pgtype::kText:
    case pgtype::kVarchar:
    case pgtype::kBpchar:
    case pgtype::kName:
    case pgtype::kChar:
      return Value::String(ValueKind::kText, std::string(text));
    case pgtype::kUuid:
      return ParseUuid(text);
    case pgtype::kJson:
    case pgtype::kJsonb:
      return Value::String(ValueKind::kJson, std::string(text));
    case pgtype::kBytea:
      return ParseBytea(text);
    case pgtype::kDate:
      return ParseDate(text);
    case pgtype::kTimestamp:
      return ParseTimestamp(text, /*with_tz=*/false);
    case pgtype::kTimestampTz:
      return ParseTimestamp(text, /*with_tz=*/true);
    default:
      return Value::String(ValueKind::kOther, std::string(text));
  }
}

std::ostream& operator<<(std::ostream& os, const Value& value) { return os << value.DebugString(); }

}  // namespace shapebridge
