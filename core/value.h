#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace shapebridge {

// The kinds of column value shapebridge distinguishes. kUnchanged is an unchanged TOASTed column
// of an UPDATE's new row: the value is the old one, which pgoutput does not repeat. It is never
// the same as kNull.
enum class ValueKind : uint8_t {
  kNull,
  kUnchanged,
  kBool,
  kInt,          // int2, int4, int8, oid
  kFloat,        // float4, float8 (NaN and +-Infinity included)
  kNumeric,      // exact decimal, kept as Postgres prints it ("NaN" and "Infinity" included)
  kText,         // text, varchar, bpchar, name, char
  kUuid,         // canonical lower-case text form
  kTimestamp,    // timestamp without time zone: microseconds since the Unix epoch
  kTimestampTz,  // timestamptz: microseconds since the Unix epoch, UTC
  kDate,         // days since 1970-01-01
  kJson,         // json and jsonb, as Postgres prints them
  kBytes,        // bytea, raw bytes
  kArray,        // any array type, in Postgres's text form ("{1,2,NULL}")
  kOther,        // any other type, in Postgres's text form
};

std::string_view ValueKindName(ValueKind kind);

// One column value, typed from the column's type OID. Infinite timestamps and dates are the
// extreme values of their representation, as in Postgres (kTimestampInfinity and so on).
class Value {
 public:
  static constexpr int64_t kTimestampInfinity = INT64_MAX;
  static constexpr int64_t kTimestampMinusInfinity = INT64_MIN;
  static constexpr int64_t kDateInfinity = INT32_MAX;
  static constexpr int64_t kDateMinusInfinity = INT32_MIN;

  Value() = default;  // null
  static Value Null() { return Value(); }
  static Value Unchanged() { return Value(ValueKind::kUnchanged); }
  static Value Bool(bool v);
  static Value Int(int64_t v);
  static Value Float(double v);
  static Value Timestamp(int64_t unix_micros);
  static Value TimestampTz(int64_t unix_micros);
  static Value Date(int64_t unix_days);
  // kNumeric, kText, kUuid, kJson, kBytes, kArray, kOther.
  static Value String(ValueKind kind, std::string v);

  ValueKind kind() const { return kind_; }
  bool is_null() const { return kind_ == ValueKind::kNull; }
  bool is_unchanged() const { return kind_ == ValueKind::kUnchanged; }
  bool bool_value() const { return int_ != 0; }
  // kInt, kTimestamp, kTimestampTz, kDate.
  int64_t int_value() const { return int_; }
  double float_value() const { return float_; }
  // The string kinds.
  const std::string& string_value() const { return string_; }

  // A readable rendering for logs and the CLI: null, unchanged-toast, true, 42, 'text',
  // 2024-01-02T03:04:05.000006Z, \x0102 ...
  std::string DebugString() const;

  friend bool operator==(const Value& a, const Value& b);

 private:
  explicit Value(ValueKind kind) : kind_(kind) {}

  ValueKind kind_ = ValueKind::kNull;
  int64_t int_ = 0;
  double float_ = 0;
  std::string string_;
};

// For test failure messages and logs: the DebugString.
std::ostream& operator<<(std::ostream& os, const Value& value);

// Postgres type OIDs of the built-in types shapebridge types specially.
namespace pgtype {
inline constexpr uint32_t kBool = 16;
inline constexpr uint32_t kBytea = 17;
inline constexpr uint32_t kChar = 18;
inline constexpr uint32_t kName = 19;
inline constexpr uint32_t kInt8 = 20;
inline constexpr uint32_t kInt2 = 21;
inline constexpr uint32_t kInt4 = 23;
inline constexpr uint32_t kText = 25;
inline constexpr uint32_t kOid = 26;
inline constexpr uint32_t kJson = 114;
inline constexpr uint32_t kFloat4 = 700;
inline constexpr uint32_t kFloat8 = 701;
inline constexpr uint32_t kBpchar = 1042;
inline constexpr uint32_t kVarchar = 1043;
inline constexpr uint32_t kDate = 1082;
inline constexpr uint32_t kTimestamp = 1114;
inline constexpr uint32_t kTimestampTz = 1184;
inline constexpr uint32_t kNumeric = 1700;
inline constexpr uint32_t kUuid = 2950;
inline constexpr uint32_t kJsonb = 3802;
// True for the array types of the built-in types (_int4, _text, ...).
bool IsBuiltinArray(uint32_t oid);
}  // namespace pgtype

// Converts a column value in Postgres's text output format to a typed Value. The text must come
// from a session with DateStyle=ISO, TimeZone=UTC, bytea_output=hex and extra_float_digits=3 (the
// replication connection sets them). `is_array` marks array types that are not built in (a Type
// message named "_something"). Unknown OIDs give kOther with the text unchanged. Malformed text
// for a known type is an error naming the type.
absl::StatusOr<Value> ParseTextValue(uint32_t type_oid, bool is_array, std::string_view text);

}  // namespace shapebridge
