#include "core/value.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "core/lsn.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shapebridge {

// Readable failure messages for EXPECT_EQ on values.
void PrintTo(const Value& value, std::ostream* os) {
  *os << ValueKindName(value.kind()) << " " << value.DebugString();
}

namespace {

using ::testing::HasSubstr;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void ExpectParses(uint32_t oid, std::string_view text, const Value& want) {
  SCOPED_TRACE(absl::StrFormat("oid %d text \"%s\"", oid, text));
  const absl::StatusOr<Value> got = ParseTextValue(oid, /*is_array=*/false, text);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, want);
}

// Malformed text is InvalidArgument and the message names the type.
void ExpectRejects(uint32_t oid, std::string_view text, std::string_view type_name) {
  SCOPED_TRACE(absl::StrFormat("oid %d text \"%s\"", oid, text));
  const absl::StatusOr<Value> got = ParseTextValue(oid, /*is_array=*/false, text);
  ASSERT_FALSE(got.ok()) << "parsed as " << got->DebugString();
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr(absl::StrFormat("invalid %s value", type_name)));
}

void ExpectOutOfRange(uint32_t oid, std::string_view text) {
  SCOPED_TRACE(absl::StrFormat("oid %d text \"%s\"", oid, text));
  const absl::StatusOr<Value> got = ParseTextValue(oid, /*is_array=*/false, text);
  ASSERT_FALSE(got.ok()) << "parsed as " << got->DebugString();
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("out of range"));
}

// ---------------------------------------------------------------------------------------------
// Value itself.

TEST(ValueTest, DefaultIsNullAndNotUnchanged) {
  const Value v;
  EXPECT_TRUE(v.is_null());
  EXPECT_FALSE(v.is_unchanged());
  EXPECT_EQ(v.kind(), ValueKind::kNull);
  EXPECT_EQ(v, Value::Null());
  EXPECT_TRUE(Value::Unchanged().is_unchanged());
  EXPECT_FALSE(Value::Unchanged().is_null());
  EXPECT_NE(Value::Null(), Value::Unchanged());
}

TEST(ValueTest, FactoriesSetKindAndField) {
  EXPECT_EQ(Value::Bool(true).kind(), ValueKind::kBool);
  EXPECT_TRUE(Value::Bool(true).bool_value());
  EXPECT_FALSE(Value::Bool(false).bool_value());
  EXPECT_EQ(Value::Int(-7).kind(), ValueKind::kInt);
  EXPECT_EQ(Value::Int(-7).int_value(), -7);
  EXPECT_EQ(Value::Float(2.5).kind(), ValueKind::kFloat);
  EXPECT_EQ(Value::Float(2.5).float_value(), 2.5);
  EXPECT_EQ(Value::Timestamp(5).kind(), ValueKind::kTimestamp);
  EXPECT_EQ(Value::Timestamp(5).int_value(), 5);
  EXPECT_EQ(Value::TimestampTz(6).kind(), ValueKind::kTimestampTz);
  EXPECT_EQ(Value::TimestampTz(6).int_value(), 6);
  EXPECT_EQ(Value::Date(-1).kind(), ValueKind::kDate);
  EXPECT_EQ(Value::Date(-1).int_value(), -1);
  const Value s = Value::String(ValueKind::kJson, "{}");
  EXPECT_EQ(s.kind(), ValueKind::kJson);
  EXPECT_EQ(s.string_value(), "{}");
}

TEST(ValueDeathTest, StringWithNonStringKindAborts) {
  EXPECT_DEATH(Value::String(ValueKind::kInt, "1"), "non-string kind int");
}

TEST(ValueTest, EqualityComparesKindAndField) {
  EXPECT_EQ(Value::Int(1), Value::Int(1));
  EXPECT_NE(Value::Int(1), Value::Int(2));
  EXPECT_NE(Value::Int(1), Value::Bool(true));
  EXPECT_NE(Value::Int(1), Value::Date(1));
  EXPECT_NE(Value::Date(1), Value::Timestamp(1));
  EXPECT_NE(Value::Timestamp(1), Value::TimestampTz(1));
  EXPECT_NE(Value::Int(0), Value::Null());
  EXPECT_NE(Value::Float(1), Value::Int(1));
  EXPECT_EQ(Value::Bool(false), Value::Bool(false));
  EXPECT_NE(Value::Bool(false), Value::Bool(true));
  EXPECT_EQ(Value::String(ValueKind::kText, "a"), Value::String(ValueKind::kText, "a"));
  EXPECT_NE(Value::String(ValueKind::kText, "a"), Value::String(ValueKind::kText, "b"));
  EXPECT_NE(Value::String(ValueKind::kText, "a"), Value::String(ValueKind::kJson, "a"));
  EXPECT_NE(Value::String(ValueKind::kText, "1"), Value::String(ValueKind::kNumeric, "1"));
  EXPECT_NE(Value::String(ValueKind::kArray, "{}"), Value::String(ValueKind::kOther, "{}"));
  EXPECT_NE(Value::String(ValueKind::kText, std::string("a\0b", 3)),
            Value::String(ValueKind::kText, std::string("a\0c", 3)));
}

TEST(ValueTest, FloatEqualityTreatsNaNAsEqualAndSignedZerosAsDistinct) {
  EXPECT_EQ(Value::Float(kNaN), Value::Float(kNaN));
  EXPECT_EQ(Value::Float(kNaN), Value::Float(-kNaN));
  EXPECT_NE(Value::Float(kNaN), Value::Float(0));
  EXPECT_EQ(Value::Float(kInf), Value::Float(kInf));
  EXPECT_NE(Value::Float(kInf), Value::Float(-kInf));
  EXPECT_NE(Value::Float(0.0), Value::Float(-0.0));
  EXPECT_EQ(Value::Float(0.1), Value::Float(0.1));
  EXPECT_NE(Value::Float(0.1), Value::Float(0.1f));
}

TEST(ValueTest, KindNames) {
  EXPECT_EQ(ValueKindName(ValueKind::kNull), "null");
  EXPECT_EQ(ValueKindName(ValueKind::kUnchanged), "unchanged");
  EXPECT_EQ(ValueKindName(ValueKind::kBool), "bool");
  EXPECT_EQ(ValueKindName(ValueKind::kInt), "int");
  EXPECT_EQ(ValueKindName(ValueKind::kFloat), "float");
  EXPECT_EQ(ValueKindName(ValueKind::kNumeric), "numeric");
  EXPECT_EQ(ValueKindName(ValueKind::kText), "text");
  EXPECT_EQ(ValueKindName(ValueKind::kUuid), "uuid");
  EXPECT_EQ(ValueKindName(ValueKind::kTimestamp), "timestamp");
  EXPECT_EQ(ValueKindName(ValueKind::kTimestampTz), "timestamptz");
  EXPECT_EQ(ValueKindName(ValueKind::kDate), "date");
  EXPECT_EQ(ValueKindName(ValueKind::kJson), "json");
  EXPECT_EQ(ValueKindName(ValueKind::kBytes), "bytes");
  EXPECT_EQ(ValueKindName(ValueKind::kArray), "array");
  EXPECT_EQ(ValueKindName(ValueKind::kOther), "other");
}

TEST(ValueDebugStringTest, Scalars) {
  EXPECT_EQ(Value::Null().DebugString(), "null");
  EXPECT_EQ(Value::Unchanged().DebugString(), "unchanged-toast");
  EXPECT_EQ(Value::Bool(true).DebugString(), "true");
  EXPECT_EQ(Value::Bool(false).DebugString(), "false");
  EXPECT_EQ(Value::Int(42).DebugString(), "42");
  EXPECT_EQ(Value::Int(kInt64Min).DebugString(), "-9223372036854775808");
  EXPECT_EQ(Value::Int(kInt64Max).DebugString(), "9223372036854775807");
}

TEST(ValueDebugStringTest, FloatsAreShortestRoundTrip) {
  EXPECT_EQ(Value::Float(1.5).DebugString(), "1.5");
  EXPECT_EQ(Value::Float(0.1).DebugString(), "0.1");
  EXPECT_EQ(Value::Float(1.0 / 3).DebugString(), "0.3333333333333333");
  EXPECT_EQ(Value::Float(1e100).DebugString(), "1e+100");
  EXPECT_EQ(Value::Float(-2).DebugString(), "-2");
  EXPECT_EQ(Value::Float(-0.0).DebugString(), "-0");
  EXPECT_EQ(Value::Float(5e-324).DebugString(), "5e-324");
  EXPECT_EQ(Value::Float(kNaN).DebugString(), "NaN");
  EXPECT_EQ(Value::Float(kInf).DebugString(), "Infinity");
  EXPECT_EQ(Value::Float(-kInf).DebugString(), "-Infinity");
}

TEST(ValueDebugStringTest, Strings) {
  EXPECT_EQ(Value::String(ValueKind::kText, "abc").DebugString(), "'abc'");
  EXPECT_EQ(Value::String(ValueKind::kText, "").DebugString(), "''");
  EXPECT_EQ(Value::String(ValueKind::kText, "it's").DebugString(), "'it''s'");
  EXPECT_EQ(Value::String(ValueKind::kText, "''").DebugString(), "''''''");
  EXPECT_EQ(Value::String(ValueKind::kNumeric, "-1.50").DebugString(), "-1.50");
  EXPECT_EQ(Value::String(ValueKind::kUuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").DebugString(),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  EXPECT_EQ(Value::String(ValueKind::kJson, "{\"a\": 1}").DebugString(), "{\"a\": 1}");
  EXPECT_EQ(Value::String(ValueKind::kArray, "{1,NULL}").DebugString(), "{1,NULL}");
  EXPECT_EQ(Value::String(ValueKind::kOther, "(1,2)").DebugString(), "(1,2)");
  EXPECT_EQ(Value::String(ValueKind::kBytes, std::string("\x00\xff\x10", 3)).DebugString(),
            "\\x00ff10");
  EXPECT_EQ(Value::String(ValueKind::kBytes, "").DebugString(), "\\x");
}

TEST(ValueDebugStringTest, Timestamps) {
  EXPECT_EQ(Value::Timestamp(0).DebugString(), "1970-01-01T00:00:00.000000");
  EXPECT_EQ(Value::TimestampTz(0).DebugString(), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(Value::Timestamp(1704164645000006).DebugString(), "2024-01-02T03:04:05.000006");
  EXPECT_EQ(Value::TimestampTz(1704164645000006).DebugString(), "2024-01-02T03:04:05.000006Z");
  EXPECT_EQ(Value::TimestampTz(-1).DebugString(), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(Value::TimestampTz(-1'000'000).DebugString(), "1969-12-31T23:59:59.000000Z");
  EXPECT_EQ(Value::TimestampTz(-86'400'000'000).DebugString(), "1969-12-31T00:00:00.000000Z");
  EXPECT_EQ(Value::Timestamp(-2208988799999999).DebugString(), "1900-01-01T00:00:00.000001");
  // 1 BC is year 0 in ISO 8601.
  EXPECT_EQ(Value::Timestamp(-62167219200000000).DebugString(), "0000-01-01T00:00:00.000000");
  EXPECT_EQ(Value::Timestamp(253402300800500000).DebugString(), "10000-01-01T00:00:00.500000");
  EXPECT_EQ(Value::Timestamp(kInt64Max - 1).DebugString(), "294247-01-10T04:00:54.775806");
  EXPECT_EQ(Value::Timestamp(Value::kTimestampInfinity).DebugString(), "infinity");
  EXPECT_EQ(Value::Timestamp(Value::kTimestampMinusInfinity).DebugString(), "-infinity");
  EXPECT_EQ(Value::TimestampTz(Value::kTimestampInfinity).DebugString(), "infinity");
  EXPECT_EQ(Value::TimestampTz(Value::kTimestampMinusInfinity).DebugString(), "-infinity");
}

TEST(ValueDebugStringTest, Dates) {
  EXPECT_EQ(Value::Date(0).DebugString(), "1970-01-01");
  EXPECT_EQ(Value::Date(-1).DebugString(), "1969-12-31");
  EXPECT_EQ(Value::Date(19724).DebugString(), "2024-01-02");
  EXPECT_EQ(Value::Date(11016).DebugString(), "2000-02-29");
  EXPECT_EQ(Value::Date(-719162).DebugString(), "0001-01-01");
  EXPECT_EQ(Value::Date(-719528).DebugString(), "0000-01-01");
  EXPECT_EQ(Value::Date(-720930).DebugString(), "-0004-02-29");  // 5 BC, a leap year
  EXPECT_EQ(Value::Date(2932897).DebugString(), "10000-01-01");
  EXPECT_EQ(Value::Date(2145042905).DebugString(), "5874897-12-31");
  EXPECT_EQ(Value::Date(Value::kDateInfinity).DebugString(), "infinity");
  EXPECT_EQ(Value::Date(Value::kDateMinusInfinity).DebugString(), "-infinity");
  // Far outside any date Postgres has: still printable, no overflow.
  EXPECT_THAT(Value::Date(kInt64Max).DebugString(), HasSubstr("9223372036854775807"));
  EXPECT_THAT(Value::Date(kInt64Min).DebugString(), HasSubstr("-9223372036854775808"));
}

// Two independent implementations of the civil calendar (gmtime_r in lsn.cc, Hinnant's algorithm
// in value.cc) must agree.
TEST(ValueDebugStringTest, TimestampTzAgreesWithPgTimestamp) {
  std::mt19937_64 rng(42);
  // 1800-01-01 .. 2200-01-01 in microseconds since 1970.
  std::uniform_int_distribution<int64_t> dist(-5364662400000000, 7258118400000000);
  std::vector<int64_t> samples = {0, -1, 1, 946684800000000, 951782400000000, -2208988800000000};
  for (int i = 0; i < 20000; ++i) samples.push_back(dist(rng));
  for (const int64_t micros : samples) {
    ASSERT_EQ(Value::TimestampTz(micros).DebugString(),
              PgTimestamp::FromUnixMicros(micros).ToString())
        << micros;
  }
}

// ---------------------------------------------------------------------------------------------
// IsBuiltinArray.

TEST(IsBuiltinArrayTest, KnowsTheArrayTypesOfBuiltins) {
  for (const uint32_t oid : {1000u, 1001u, 1002u, 1003u, 1005u, 1007u, 1009u, 1014u, 1015u,
                             1016u, 1021u, 1022u, 1028u, 1115u, 1182u, 1183u, 1185u, 1187u,
                             1231u, 1270u, 2951u, 3807u, 199u,  143u,  1041u, 3905u, 6150u}) {
    EXPECT_TRUE(pgtype::IsBuiltinArray(oid)) << oid;
  }
}

TEST(IsBuiltinArrayTest, ScalarsAndUnknownsAreNotArrays) {
  for (const uint32_t oid : {0u,
                             pgtype::kBool,
                             pgtype::kBytea,
                             pgtype::kChar,
                             pgtype::kName,
                             pgtype::kInt8,
                             pgtype::kInt2,
                             pgtype::kInt4,
                             pgtype::kText,
                             pgtype::kOid,
                             pgtype::kJson,
                             pgtype::kFloat4,
                             pgtype::kFloat8,
                             pgtype::kBpchar,
                             pgtype::kVarchar,
                             pgtype::kDate,
                             pgtype::kTimestamp,
                             pgtype::kTimestampTz,
                             pgtype::kNumeric,
                             pgtype::kUuid,
                             pgtype::kJsonb,
                             22u /* int2vector */,
                             30u /* oidvector */,
                             1004u,
                             2287u /* _record, a pseudo-type */,
                             16384u,
                             4294967295u}) {
    EXPECT_FALSE(pgtype::IsBuiltinArray(oid)) << oid;
  }
}

// ---------------------------------------------------------------------------------------------
// ParseTextValue, type by type.

TEST(ParseBoolTest, AcceptsOnlyTAndF) {
  ExpectParses(pgtype::kBool, "t", Value::Bool(true));
  ExpectParses(pgtype::kBool, "f", Value::Bool(false));
  for (const char* text : {"", "true", "false", "T", "F", "1", "0", "y", "t ", " t", "tt"}) {
    ExpectRejects(pgtype::kBool, text, "bool");
  }
}

TEST(ParseIntTest, Int2) {
  ExpectParses(pgtype::kInt2, "0", Value::Int(0));
  ExpectParses(pgtype::kInt2, "-0", Value::Int(0));
  ExpectParses(pgtype::kInt2, "42", Value::Int(42));
  ExpectParses(pgtype::kInt2, "-32768", Value::Int(-32768));
  ExpectParses(pgtype::kInt2, "32767", Value::Int(32767));
  ExpectOutOfRange(pgtype::kInt2, "32768");
  ExpectOutOfRange(pgtype::kInt2, "-32769");
  ExpectOutOfRange(pgtype::kInt2, "99999999999999999999");
  ExpectRejects(pgtype::kInt2, "32768", "int2");
}

TEST(ParseIntTest, Int4) {
  ExpectParses(pgtype::kInt4, "2147483647", Value::Int(2147483647));
  ExpectParses(pgtype::kInt4, "-2147483648", Value::Int(-2147483648LL));
  ExpectParses(pgtype::kInt4, "1000000", Value::Int(1000000));
  ExpectOutOfRange(pgtype::kInt4, "2147483648");
  ExpectOutOfRange(pgtype::kInt4, "-2147483649");
  ExpectRejects(pgtype::kInt4, "2147483648", "int4");
}

TEST(ParseIntTest, Int8) {
  ExpectParses(pgtype::kInt8, "9223372036854775807", Value::Int(kInt64Max));
  ExpectParses(pgtype::kInt8, "-9223372036854775808", Value::Int(kInt64Min));
  ExpectParses(pgtype::kInt8, "-1", Value::Int(-1));
  ExpectParses(pgtype::kInt8, "4294967296", Value::Int(4294967296LL));
  ExpectOutOfRange(pgtype::kInt8, "9223372036854775808");
  ExpectOutOfRange(pgtype::kInt8, "-9223372036854775809");
  ExpectOutOfRange(pgtype::kInt8, "100000000000000000000000000000");
  ExpectRejects(pgtype::kInt8, "9223372036854775808", "int8");
}

TEST(ParseIntTest, Oid) {
  ExpectParses(pgtype::kOid, "0", Value::Int(0));
  ExpectParses(pgtype::kOid, "16384", Value::Int(16384));
  ExpectParses(pgtype::kOid, "4294967295", Value::Int(4294967295LL));
  ExpectOutOfRange(pgtype::kOid, "4294967296");
  ExpectRejects(pgtype::kOid, "-1", "oid");
  ExpectRejects(pgtype::kOid, "", "oid");
  ExpectRejects(pgtype::kOid, "1a", "oid");
}

TEST(ParseIntTest, RejectsMalformedIntegers) {
  const std::vector<std::pair<uint32_t, std::string_view>> types = {
      {pgtype::kInt2, "int2"}, {pgtype::kInt4, "int4"}, {pgtype::kInt8, "int8"}};
  for (const auto& [oid, name] : types) {
    for (const char* text :
         {"", "-", "+1", " 1", "1 ", "12a", "a12", "1.0", "1e3", "0x10", "1_000", "--1", "١"}) {
      ExpectRejects(oid, text, name);
    }
  }
}

TEST(ParseIntTest, ErrorMessageQuotesTheText) {
  const absl::StatusOr<Value> v = ParseTextValue(pgtype::kInt4, false, "12a");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), "invalid int4 value \"12a\"");
}

TEST(ParseIntTest, ErrorMessageQuotesABoundedPrefix) {
  const std::string long_text = std::string(100000, '7') + "x";
  const absl::StatusOr<Value> v = ParseTextValue(pgtype::kInt8, false, long_text);
  ASSERT_FALSE(v.ok());
  EXPECT_LT(v.status().message().size(), 200u);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("invalid int8 value \"777"));
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("...\""));
}

TEST(ParseIntTest, ErrorMessageEscapesControlCharacters) {
  const absl::StatusOr<Value> v = ParseTextValue(pgtype::kInt4, false, std::string("1\n\"\0", 4));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), "invalid int4 value \"1\\n\\\"\\000\"");
}

TEST(ParseFloatTest, AcceptsWhatPostgresPrints) {
  for (const uint32_t oid : {pgtype::kFloat4, pgtype::kFloat8}) {
    ExpectParses(oid, "0", Value::Float(0));
    ExpectParses(oid, "-0", Value::Float(-0.0));
    ExpectParses(oid, "1.5", Value::Float(1.5));
    ExpectParses(oid, "-2.25", Value::Float(-2.25));
    ExpectParses(oid, "0.1", Value::Float(0.1));
    ExpectParses(oid, "1e+100", Value::Float(1e100));
    ExpectParses(oid, "1e-05", Value::Float(1e-5));
    ExpectParses(oid, "1.2345678901234567e-300", Value::Float(1.2345678901234567e-300));
    ExpectParses(oid, "3.4028235e+38", Value::Float(3.4028235e+38));
    ExpectParses(oid, "NaN", Value::Float(kNaN));
    ExpectParses(oid, "Infinity", Value::Float(kInf));
    ExpectParses(oid, "-Infinity", Value::Float(-kInf));
  }
  ExpectParses(pgtype::kFloat8, "1.7976931348623157e+308",
               Value::Float(std::numeric_limits<double>::max()));
  ExpectParses(pgtype::kFloat8, "-1.7976931348623157e+308",
               Value::Float(std::numeric_limits<double>::lowest()));
  ExpectParses(pgtype::kFloat8, "5e-324", Value::Float(std::numeric_limits<double>::denorm_min()));
  ExpectParses(pgtype::kFloat8, "2.2250738585072014e-308",
               Value::Float(std::numeric_limits<double>::min()));
}

TEST(ParseFloatTest, NaNParsesToNaN) {
  const absl::StatusOr<Value> v = ParseTextValue(pgtype::kFloat8, false, "NaN");
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(std::isnan(v->float_value()));
  EXPECT_EQ(v->DebugString(), "NaN");
}

TEST(ParseFloatTest, RejectsMalformedFloats) {
  const std::vector<std::pair<uint32_t, std::string_view>> types = {{pgtype::kFloat4, "float4"},
                                                                    {pgtype::kFloat8, "float8"}};
  for (const auto& [oid, name] : types) {
    for (const char* text :
         {"",     "-",     "nan", "inf", "-inf", "infinity", "INFINITY", "+Infinity",
          " 1",   "1 ",    ".5",  "-.5", "1.",   "1e",       "1e+",      "1,5",
          "1.5f", "0x1p3", "+1",  "--1", "1..2", "NaN ",     "e5"}) {
      ExpectRejects(oid, text, name);
    }
  }
  ExpectOutOfRange(pgtype::kFloat8, "1e+999");
  ExpectOutOfRange(pgtype::kFloat8, "-1e+999");
}

TEST(ParseNumericTest, KeepsTheText) {
  for (const char* text :
       {"0", "-0", "1", "-1.5", "0.00", "100000000000000000000", "12345678901234.123456",
        "-99999999999999999999999999999999999999999999.000000000000000000000000000000000000001",
        "NaN", "Infinity", "-Infinity"}) {
    ExpectParses(pgtype::kNumeric, text, Value::String(ValueKind::kNumeric, text));
  }
}

TEST(ParseNumericTest, RejectsMalformedNumerics) {
  for (const char* text : {"",         "-",         "+1",   "1.",    ".5",  "-.5",  "1e5",
                           "1E5",      "1.5e-3",    "1..2", "1.2.3", "--1", "nan",  "inf",
                           "infinity", "+Infinity", " 1",   "1 ",    "1,5", "0x10", "12a"}) {
    ExpectRejects(pgtype::kNumeric, text, "numeric");
  }
}

TEST(ParseTextTest, TextTypesAreUnchanged) {
  for (const uint32_t oid :
       {pgtype::kText, pgtype::kVarchar, pgtype::kBpchar, pgtype::kName, pgtype::kChar}) {
    for (const std::string& text : {std::string(""), std::string("abc"), std::string("  padded  "),
                                    std::string("it's \"q\" \\x00"), std::string("héllo ✓"),
                                    std::string("NULL"), std::string(100000, 'x')}) {
      ExpectParses(oid, text, Value::String(ValueKind::kText, text));
    }
  }
}

TEST(ParseUuidTest, ValidatesAndLowerCases) {
  ExpectParses(pgtype::kUuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
               Value::String(ValueKind::kUuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
  ExpectParses(pgtype::kUuid, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
               Value::String(ValueKind::kUuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
  ExpectParses(pgtype::kUuid, "00000000-0000-0000-0000-000000000000",
               Value::String(ValueKind::kUuid, "00000000-0000-0000-0000-000000000000"));
  for (const char* text :
       {"", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
        "a0eebc999c0b4ef8bb6d6bb9bd380a11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
        "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d_6bb9bd380a11",
        "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11", " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"}) {
    ExpectRejects(pgtype::kUuid, text, "uuid");
  }
}

TEST(ParseJsonTest, JsonAndJsonbAreUnchanged) {
  for (const uint32_t oid : {pgtype::kJson, pgtype::kJsonb}) {
    for (const char* text : {"{\"a\": [1, null]}", "[]", "null", "\"x\"", "1.5e3", "  {}  "}) {
      ExpectParses(oid, text, Value::String(ValueKind::kJson, text));
    }
  }
}

TEST(ParseByteaTest, DecodesHex) {
  ExpectParses(pgtype::kBytea, "\\x", Value::String(ValueKind::kBytes, ""));
  ExpectParses(pgtype::kBytea, "\\x00ff10", Value::String(ValueKind::kBytes, {"\x00\xff\x10", 3}));
  ExpectParses(pgtype::kBytea, "\\xDEADbeef", Value::String(ValueKind::kBytes, "\xde\xad\xbe\xef"));
  ExpectParses(pgtype::kBytea, "\\x5c78", Value::String(ValueKind::kBytes, "\\x"));
  std::string all;
  std::string hex = "\\x";
  for (int i = 0; i < 256; ++i) {
    all.push_back(static_cast<char>(i));
    hex += absl::StrFormat("%02x", i);
  }
  ExpectParses(pgtype::kBytea, hex, Value::String(ValueKind::kBytes, all));
}

TEST(ParseByteaTest, RejectsMalformedBytea) {
  for (const char* text : {"", "\\", "x00", "00ff", "\\x0", "\\x0g", "\\xg0", "\\x 00", "\\x00 ",
                           "\\X00", "\\000", "abc", "\\x-1"}) {
    ExpectRejects(pgtype::kBytea, text, "bytea");
  }
}

// Expected day numbers come from Postgres 15: SELECT d - '1970-01-01'::date.
TEST(ParseDateTest, DaysSinceUnixEpoch) {
  ExpectParses(pgtype::kDate, "1970-01-01", Value::Date(0));
  ExpectParses(pgtype::kDate, "1970-01-02", Value::Date(1));
  ExpectParses(pgtype::kDate, "1969-12-31", Value::Date(-1));
  ExpectParses(pgtype::kDate, "2000-01-01", Value::Date(10957));
  ExpectParses(pgtype::kDate, "2000-02-29", Value::Date(11016));
  ExpectParses(pgtype::kDate, "2024-01-02", Value::Date(19724));
  ExpectParses(pgtype::kDate, "2024-02-29", Value::Date(19782));
  ExpectParses(pgtype::kDate, "1900-03-01", Value::Date(-25508));
  ExpectParses(pgtype::kDate, "2100-03-01", Value::Date(47541));
  ExpectParses(pgtype::kDate, "1582-10-04", Value::Date(-141438));  // proleptic Gregorian
  ExpectParses(pgtype::kDate, "0001-01-01", Value::Date(-719162));
  ExpectParses(pgtype::kDate, "9999-12-31", Value::Date(2932896));
  ExpectParses(pgtype::kDate, "10000-01-01", Value::Date(2932897));
  ExpectParses(pgtype::kDate, "5874897-12-31", Value::Date(2145042905));
}

TEST(ParseDateTest, BeforeChrist) {
  // 1 BC is astronomical year 0, a leap year, so 0001-01-01 BC is 366 days before 0001-01-01.
  ExpectParses(pgtype::kDate, "0001-12-31 BC", Value::Date(-719163));
  ExpectParses(pgtype::kDate, "0001-01-01 BC", Value::Date(-719528));
  ExpectParses(pgtype::kDate, "0001-02-29 BC", Value::Date(-719528 + 59));
  ExpectParses(pgtype::kDate, "0005-02-29 BC", Value::Date(-720930));  // 5 BC = year -4
  ExpectParses(pgtype::kDate, "4713-11-24 BC", Value::Date(-2440222));
  ExpectRejects(pgtype::kDate, "0004-02-29 BC", "date");  // 4 BC = year -3, not leap
  ExpectRejects(pgtype::kDate, "0002-02-29 BC", "date");
}

TEST(ParseDateTest, Infinity) {
  ExpectParses(pgtype::kDate, "infinity", Value::Date(Value::kDateInfinity));
  ExpectParses(pgtype::kDate, "-infinity", Value::Date(Value::kDateMinusInfinity));
}

TEST(ParseDateTest, RejectsMalformedDates) {
  for (const char* text : {"",
                           "Infinity",
                           "+infinity",
                           "infinity ",
                           "1900-02-29",
                           "2023-02-29",
                           "2100-02-29",
                           "2024-04-31",
                           "2024-13-01",
                           "2024-00-10",
                           "2024-01-00",
                           "2024-01-32",
                           "0000-01-01",
                           "0000-01-01 BC",
                           "24-01-01",
                           "024-01-01",
                           "2024-1-01",
                           "2024-01-1",
                           "2024-01-01 ",
                           " 2024-01-01",
                           "2024-01-01 AD",
                           "2024-01-01BC",
                           "2024-01-01 bc",
                           "2024-01-01 BC ",
                           "2024/01/01",
                           "20240101",
                           "12345678-01-01",
                           "2024-01-01 00:00:00",
                           "-2024-01-01",
                           "2024-01-01T",
                           "２０２４-01-01"}) {
    ExpectRejects(pgtype::kDate, text, "date");
  }
}

// Every day from 4713 BC to 10000 AD survives DebugString → Postgres text → ParseTextValue.
TEST(ParseDateTest, RoundTripsThroughDebugString) {
  for (int64_t day = -2440222; day <= 2932897; day += (day > -30000 && day < 60000) ? 1 : 7) {
    const std::string iso = Value::Date(day).DebugString();
    // ISO years are astronomical; Postgres prints year N <= 0 as 1 - N BC.
    int64_t year = 0;
    int month = 0;
    int dom = 0;
    ASSERT_EQ(std::sscanf(iso.c_str(), "%ld-%d-%d", &year, &month, &dom), 3) << iso;
    const std::string pg =
        year > 0 ? iso : absl::StrFormat("%04d-%02d-%02d BC", 1 - year, month, dom);
    const absl::StatusOr<Value> parsed = ParseTextValue(pgtype::kDate, false, pg);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    ASSERT_EQ(parsed->int_value(), day) << pg;
  }
}

// Expected microseconds come from Postgres 15: SELECT extract(epoch from t) * 1000000, and
// Python's datetime.
TEST(ParseTimestampTest, MicrosSinceUnixEpoch) {
  ExpectParses(pgtype::kTimestamp, "1970-01-01 00:00:00", Value::Timestamp(0));
  ExpectParses(pgtype::kTimestamp, "2000-01-01 00:00:00", Value::Timestamp(946684800000000));
  ExpectParses(pgtype::kTimestamp, "1969-12-31 23:59:59.999999", Value::Timestamp(-1));
  ExpectParses(pgtype::kTimestamp, "1969-12-31 23:59:59", Value::Timestamp(-1000000));
  ExpectParses(pgtype::kTimestamp, "2024-02-29 12:34:56.789", Value::Timestamp(1709210096789000));
  ExpectParses(pgtype::kTimestamp, "2024-01-02 03:04:05.000006",
               Value::Timestamp(1704164645000006));
  ExpectParses(pgtype::kTimestamp, "1900-01-01 00:00:00.000001",
               Value::Timestamp(-2208988799999999));
  ExpectParses(pgtype::kTimestamp, "10000-01-01 00:00:00.5", Value::Timestamp(253402300800500000));
  ExpectParses(pgtype::kTimestamp, "0001-01-01 00:00:00 BC", Value::Timestamp(-62167219200000000));
  ExpectParses(pgtype::kTimestamp, "4713-11-24 00:00:00 BC", Value::Timestamp(-210835180800000000));
  ExpectParses(pgtype::kTimestamp, "1970-01-01 23:59:59", Value::Timestamp(86399000000));
}

TEST(ParseTimestampTest, FractionsHaveOneToSixDigits) {
  const int64_t base = 946684800000000;
  ExpectParses(pgtype::kTimestamp, "2000-01-01 00:00:00.1", Value::Timestamp(base + 100000));
  ExpectParses(pgtype::kTimestamp, "2000-01-01 00:00:00.12", Value::Timestamp(base + 120000));
  ExpectParses(pgtype::kTimestamp, "2000-01-01 00:00:00.123", Value::Timestamp(base + 123000));
  ExpectParses(pgtype::kTimestamp, "2000-01-01 00:00:00.0123", Value::Timestamp(base + 12300));
  ExpectParses(pgtype::kTimestamp, "2000-01-01 00:00:00.00012", Value::Timestamp(base + 120));
  ExpectParses(pgtype::kTimestamp, "2000-01-01 00:00:00.000001", Value::Timestamp(base + 1));
  ExpectParses(pgtype::kTimestamp, "2000-01-01 00:00:00.999999", Value::Timestamp(base + 999999));
  // Before 1970 the fraction still counts forward from the second.
  ExpectParses(pgtype::kTimestamp, "1969-12-31 23:59:58.5", Value::Timestamp(-1500000));
  ExpectRejects(pgtype::kTimestamp, "2000-01-01 00:00:00.1234567", "timestamp");
  ExpectRejects(pgtype::kTimestamp, "2000-01-01 00:00:00.", "timestamp");
  ExpectRejects(pgtype::kTimestamp, "2000-01-01 00:00:00.-1", "timestamp");
}

TEST(ParseTimestampTest, UpperLimitOfInt64Micros) {
  // INT64_MAX microseconds is 294247-01-10 04:00:54.775807; that value is the infinity sentinel.
  ExpectParses(pgtype::kTimestamp, "294247-01-10 04:00:54.775806", Value::Timestamp(kInt64Max - 1));
  ExpectOutOfRange(pgtype::kTimestamp, "294247-01-10 04:00:54.775807");
  ExpectOutOfRange(pgtype::kTimestamp, "294247-01-10 04:00:55");
  // Postgres accepts up to 294276 AD because it counts from 2000.
  ExpectOutOfRange(pgtype::kTimestamp, "294276-12-31 23:59:59.999999");
  ExpectOutOfRange(pgtype::kTimestamp, "5874897-12-31 00:00:00");
  ExpectOutOfRange(pgtype::kTimestampTz, "294276-12-31 23:59:59.999999+00");
  ExpectParses(pgtype::kTimestampTz, "294247-01-10 05:00:54.775806+01",
               Value::TimestampTz(kInt64Max - 1));
}

TEST(ParseTimestampTest, Infinity) {
  ExpectParses(pgtype::kTimestamp, "infinity", Value::Timestamp(Value::kTimestampInfinity));
  ExpectParses(pgtype::kTimestamp, "-infinity", Value::Timestamp(Value::kTimestampMinusInfinity));
  ExpectParses(pgtype::kTimestampTz, "infinity", Value::TimestampTz(Value::kTimestampInfinity));
  ExpectParses(pgtype::kTimestampTz, "-infinity",
               Value::TimestampTz(Value::kTimestampMinusInfinity));
}

TEST(ParseTimestampTest, RejectsMalformedTimestamps) {
  for (const char* text : {"",
                           "Infinity",
                           "infinity ",
                           "2000-01-01",
                           "2000-01-01 00:00",
                           "2000-01-01T00:00:00",
                           "2000-01-01  00:00:00",
                           "2000-01-01 0:00:00",
                           "2000-01-01 00:0:00",
                           "2000-01-01 00:00:0",
                           "2000-01-01 24:00:00",
                           "2000-01-01 00:60:00",
                           "2000-01-01 00:00:60",
                           "2000-01-01 00:00:00+00",
                           "2000-01-01 00:00:00Z",
                           "2000-01-01 00:00:00 ",
                           "2000-01-01 00:00:00 AD",
                           "2000-01-01 00:00:00BC",
                           "2000-02-30 00:00:00",
                           "0000-01-01 00:00:00",
                           "2000-01-01 00:00:00,5",
                           "2000-01-01 00:00:00 BC BC",
                           "2000-01-01 00:00:00.5 BC "}) {
    ExpectRejects(pgtype::kTimestamp, text, "timestamp");
  }
}

TEST(ParseTimestampTzTest, ConvertsOffsetsToUtc) {
  ExpectParses(pgtype::kTimestampTz, "1970-01-01 00:00:00+00", Value::TimestampTz(0));
  ExpectParses(pgtype::kTimestampTz, "2000-01-01 00:00:00+00", Value::TimestampTz(946684800000000));
  ExpectParses(pgtype::kTimestampTz, "2024-06-30 23:59:59.123456+00",
               Value::TimestampTz(1719791999123456));
  ExpectParses(pgtype::kTimestampTz, "2000-01-01 00:00:00+05:45",
               Value::TimestampTz(946664100000000));
  ExpectParses(pgtype::kTimestampTz, "2000-01-01 00:00:00-03:30",
               Value::TimestampTz(946697400000000));
  // What Postgres prints for 2000-01-01 00:00:00 UTC in Asia/Kathmandu and America/St_Johns.
  ExpectParses(pgtype::kTimestampTz, "2000-01-01 05:45:00+05:45",
               Value::TimestampTz(946684800000000));
  ExpectParses(pgtype::kTimestampTz, "1999-12-31 20:30:00-03:30",
               Value::TimestampTz(946684800000000));
  ExpectParses(pgtype::kTimestampTz, "1970-01-01 00:00:00-01", Value::TimestampTz(3600000000));
  ExpectParses(pgtype::kTimestampTz, "1970-01-01 00:00:00+01", Value::TimestampTz(-3600000000));
  ExpectParses(pgtype::kTimestampTz, "1970-01-01 00:00:00+00:00", Value::TimestampTz(0));
  ExpectParses(pgtype::kTimestampTz, "1970-01-01 00:00:00+00:00:00", Value::TimestampTz(0));
  ExpectParses(pgtype::kTimestampTz, "1970-01-01 00:00:00.000001+00", Value::TimestampTz(1));
  ExpectParses(pgtype::kTimestampTz, "1970-01-01 00:00:00-12", Value::TimestampTz(43200000000));
  ExpectParses(pgtype::kTimestampTz, "1970-01-01 00:00:00+14", Value::TimestampTz(-50400000000));
}

TEST(ParseTimestampTzTest, SecondsOffsetsAndBeforeChrist) {
  // Local mean time of Amsterdam, as Postgres prints 1900-01-01 00:00:00 UTC there.
  ExpectParses(pgtype::kTimestampTz, "1900-01-01 00:19:32+00:19:32",
               Value::TimestampTz(-2208988800000000));
  ExpectParses(pgtype::kTimestampTz, "1899-12-31 23:40:28-00:19:32",
               Value::TimestampTz(-2208988800000000));
  // The offset comes before " BC".
  ExpectParses(pgtype::kTimestampTz, "0001-01-01 00:00:00+00 BC",
               Value::TimestampTz(-62167219200000000));
  ExpectParses(pgtype::kTimestampTz, "0001-01-01 00:19:32+00:19:32 BC",
               Value::TimestampTz(-62167219200000000));
  ExpectParses(pgtype::kTimestampTz, "0001-12-31 23:00:00-01 BC",
               Value::TimestampTz(-62135596800000000));  // 0001-01-01 00:00:00 UTC
}

TEST(ParseTimestampTzTest, RejectsMalformedTimestampTz) {
  for (const char* text : {"",
                           "2000-01-01 00:00:00",
                           "2000-01-01 00:00:00Z",
                           "2000-01-01 00:00:00 +00",
                           "2000-01-01 00:00:00+0",
                           "2000-01-01 00:00:00+000",
                           "2000-01-01 00:00:00+00:",
                           "2000-01-01 00:00:00+00:0",
                           "2000-01-01 00:00:00+00:00:",
                           "2000-01-01 00:00:00+00:00:0",
                           "2000-01-01 00:00:00+00:00:00:00",
                           "2000-01-01 00:00:00+0000",
                           "2000-01-01 00:00:00+24",
                           "2000-01-01 00:00:00+00:60",
                           "2000-01-01 00:00:00+00 ",
                           "2000-01-01 00:00:00 BC+00",
                           "2000-01-01 00:00:00+00BC",
                           "2000-01-01 00:00:00.+00",
                           "2000-01-01 00:00:00 UTC",
                           "2000-01-01 00:00:00++00",
                           "2000-01-01 00:00:00+-1"}) {
    ExpectRejects(pgtype::kTimestampTz, text, "timestamptz");
  }
}

// Parsing a timestamp and printing it gives the same wall-clock time in ISO 8601.
TEST(ParseTimestampTest, DebugStringShowsTheParsedTime) {
  const std::vector<std::pair<std::string_view, std::string_view>> cases = {
      {"2024-01-02 03:04:05.000006", "2024-01-02T03:04:05.000006"},
      {"2024-02-29 23:59:59.5", "2024-02-29T23:59:59.500000"},
      {"1950-06-15 12:00:00", "1950-06-15T12:00:00.000000"},
      {"0001-01-01 00:00:00", "0001-01-01T00:00:00.000000"},
      {"0002-03-04 05:06:07 BC", "-0001-03-04T05:06:07.000000"},
  };
  for (const auto& [pg, iso] : cases) {
    const absl::StatusOr<Value> v = ParseTextValue(pgtype::kTimestamp, false, pg);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->DebugString(), iso);
  }
  const absl::StatusOr<Value> tz =
      ParseTextValue(pgtype::kTimestampTz, false, "2024-01-02 08:49:05.25+05:45");
  ASSERT_TRUE(tz.ok()) << tz.status();
  EXPECT_EQ(tz->DebugString(), "2024-01-02T03:04:05.250000Z");
}

TEST(ParseArrayTest, BuiltinArraysKeepTheirText) {
  const std::vector<std::pair<uint32_t, std::string_view>> cases = {
      {1007, "{1,NULL,3}"},
      {1007, "{}"},
      {1007, "[0:1]={1,2}"},
      {1007, "{{1,2},{3,4}}"},
      {1009, "{\"a b\",c}"},
      {3807, "{\"{\\\"a\\\": 1}\"}"},
      {1185, "{\"2000-01-01 00:00:00+00\"}"},
  };
  for (const auto& [oid, text] : cases) {
    const absl::StatusOr<Value> v = ParseTextValue(oid, false, text);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(*v, Value::String(ValueKind::kArray, std::string(text)));
  }
}

TEST(ParseArrayTest, IsArrayMarksOtherArrays) {
  // A user-defined enum's array type, and is_array winning over a scalar OID.
  for (const uint32_t oid : {16385u, pgtype::kInt4}) {
    const absl::StatusOr<Value> v = ParseTextValue(oid, /*is_array=*/true, "{a,b}");
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(*v, Value::String(ValueKind::kArray, "{a,b}"));
  }
}

TEST(ParseArrayTest, RejectsTextThatIsNotAnArray) {
  for (const char* text : {"", "1,2", " {1}", "(1,2)", "NULL"}) {
    ExpectRejects(1007, text, "array");
    const absl::StatusOr<Value> v = ParseTextValue(16385, /*is_array=*/true, text);
    EXPECT_FALSE(v.ok()) << text;
  }
}

TEST(ParseOtherTest, UnknownTypesKeepTheirText) {
  const std::vector<std::pair<uint32_t, std::string_view>> cases = {
      {1083, "12:34:56"},        // time
      {1186, "1 day 02:00:00"},  // interval
      {869, "192.168.0.1"},      // inet
      {3220, "16/B374D848"},     // pg_lsn
      {16390, "(1,\"two\")"},    // a composite
      {16391, ""},               // anything at all
      {22, "1 2 3"},             // int2vector, not an array in text form
  };
  for (const auto& [oid, text] : cases) {
    const absl::StatusOr<Value> v = ParseTextValue(oid, false, text);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(*v, Value::String(ValueKind::kOther, std::string(text)));
  }
}

// Parsing the same text twice gives equal values, for every kind (NaN included).
TEST(ParseTextValueTest, ParsesAreEqualToThemselves) {
  const std::vector<std::pair<uint32_t, std::string_view>> cases = {
      {pgtype::kBool, "t"},
      {pgtype::kInt8, "-5"},
      {pgtype::kFloat8, "NaN"},
      {pgtype::kFloat4, "-0"},
      {pgtype::kNumeric, "1.50"},
      {pgtype::kText, "x"},
      {pgtype::kUuid, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"},
      {pgtype::kJsonb, "{}"},
      {pgtype::kBytea, "\\x01"},
      {pgtype::kDate, "-infinity"},
      {pgtype::kTimestamp, "2000-01-01 00:00:00"},
      {pgtype::kTimestampTz, "2000-01-01 00:00:00+00"},
      {1007, "{1}"},
      {1083, "00:00:00"},
  };
  for (const auto& [oid, text] : cases) {
    const absl::StatusOr<Value> a = ParseTextValue(oid, false, text);
    const absl::StatusOr<Value> b = ParseTextValue(oid, false, text);
    ASSERT_TRUE(a.ok() && b.ok()) << text;
    EXPECT_EQ(*a, *b) << text;
  }
}

}  // namespace
}  // namespace shapebridge
