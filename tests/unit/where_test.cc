// Unit tests of the WHERE language: parser, type checker, evaluator, Bind, Canonical, Conjuncts.
//
// The table kPostgresCases was checked against PostgreSQL 15 (C collation, TimeZone=UTC): each
// expression was run as `SELECT (expr)::text FROM (VALUES <the row of TestRow()>)` and the result
// (or the error message) is what Postgres returned. Our parse-time errors add " (position N)".

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shapes/decimal.h"
#include "shapes/expr.h"
#include "shapes/expr_internal.h"

namespace shapebridge::shapes {
namespace {

using ::testing::HasSubstr;

Schema TestSchema() {
  return {
      {"i", {TypeId::kInt4}},         {"b", {TypeId::kInt8}},        {"s", {TypeId::kInt2}},
      {"n", {TypeId::kNumeric}},      {"f", {TypeId::kFloat8}},      {"r", {TypeId::kFloat4}},
      {"t", {TypeId::kText}},         {"d", {TypeId::kDate}},        {"ts", {TypeId::kTimestamp}},
      {"tz", {TypeId::kTimestampTz}}, {"u", {TypeId::kUuid}},        {"ok", {TypeId::kBool}},
      {"ia", {TypeId::kInt4, true}},  {"ta", {TypeId::kText, true}}, {"z", {TypeId::kInt4}}};
}

// i=7, b=9000000000, s=300, n=12.50, f=2.5, r=0.1::float4, t='Hello', d=2024-01-01,
// ts=2024-01-01 01:00, tz=2024-01-01 00:00+00, u=a0eebc99-..., ok=true, ia={1,2,NULL},
// ta={a,"b c"}, z=NULL.
std::vector<Value> TestRow() {
  return {Value::Int(7),
          Value::Int(9000000000),
          Value::Int(300),
          Value::String(ValueKind::kNumeric, "12.50"),
          Value::Float(2.5),
          Value::Float(0.1f),
          Value::String(ValueKind::kText, "Hello"),
          Value::Date(19723),
          Value::Timestamp(1704067200000000 + 3600000000LL),
          Value::TimestampTz(1704067200000000),
          Value::String(ValueKind::kUuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
          Value::Bool(true),
          Value::String(ValueKind::kArray, "{1,2,NULL}"),
          Value::String(ValueKind::kArray, "{a,\"b c\"}"),
          Value::Null()};
}

ParamTypes TestParams() { return {{"p", {TypeId::kInt4}}, {"ids", {TypeId::kInt4, true}}}; }
ParamValues TestParamValues() {
  return {{"p", Value::Int(7)}, {"ids", Value::String(ValueKind::kArray, "{7,8}")}};
}

// Evaluates any expression (not only a boolean one) by parsing "(expr) IS NULL" and evaluating
// its operand; renders the result as Postgres's ::text would, NULL, or "ERROR: message".
std::string EvalText(const std::string& text) {
  absl::StatusOr<std::unique_ptr<Expr>> e =
      ParseWhere("(" + text + ") is null", TestSchema(), TestParams());
  if (!e.ok()) return "ERROR: " + std::string(e.status().message());
  const Expr& inner = *(*e)->args[0];
  absl::StatusOr<Value> v = Evaluate(inner, TestRow(), TestParamValues());
  if (!v.ok()) return "ERROR: " + std::string(v.status().message());
  if (v->is_null()) return "NULL";
  return internal::FormatText(*v, inner.type);
}

std::string ParseError(const std::string& text) {
  absl::StatusOr<std::unique_ptr<Expr>> e = ParseWhere(text, TestSchema(), TestParams());
  if (e.ok()) return "parsed: " + Canonical(**e);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument) << text;
  return std::string(e.status().message());
}

std::string Canon(const std::string& text) {
  absl::StatusOr<std::unique_ptr<Expr>> e = ParseWhere(text, TestSchema(), TestParams());
  if (!e.ok()) return "ERROR: " + std::string(e.status().message());
  return Canonical(**e);
}

struct Case {
  const char* expr;
  const char* want;
};

constexpr Case kPostgresCases[] = {
    {"i + 1", "8"},
    {"i * 2147483647", "ERROR: integer out of range"},
    {"2147483647 + 1", "ERROR: integer out of range"},
    {"-2147483648", "-2147483648"},
    {"-2147483648 - 1", "ERROR: integer out of range"},
    {"9223372036854775807 + 1", "ERROR: bigint out of range"},
    {"s * 200", "60000"},
    {"s + s", "600"},
    {"i / 2", "3"},
    {"-7 / 2", "-3"},
    {"-7 % 3", "-1"},
    {"7 % -3", "1"},
    {"i / 0", "ERROR: division by zero"},
    {"i % 0", "ERROR: division by zero"},
    {"n / 3", "4.1666666666666667"},
    {"n * 1.5", "18.750"},
    {"1 / 3.0", "0.33333333333333333333"},
    {"10 / 4.000", "2.5000000000000000"},
    {"n + 1", "13.50"},
    {"n % 3", "0.50"},
    {"2.5::numeric / 7", "0.35714285714285714286"},
    {"1e5", "100000"},
    {"123456789012345678901234567890 + 1", "123456789012345678901234567891"},
    {"f * 1e308", "ERROR: value out of range: overflow"},
    {"f / 0", "ERROR: division by zero"},
    {"1e308::float8 * 10", "ERROR: value out of range: overflow"},
    {"1e-308::float8 * 1e-308", "ERROR: value out of range: underflow"},
    {"r + r", "0.2"},
    {"r * 2", "0.20000000298023224"},
    {"r + 1", "1.1000000014901161"},
    {"i + r", "7.100000001490116"},
    {"f + n", "15"},
    {"0.1::float8 + 0.2", "0.30000000000000004"},
    {"1e15::float8", "1e+15"},
    {"123456789012345::float8", "123456789012345"},
    {"1234567890123456::float8", "1.234567890123456e+15"},
    {"1e-5::float8", "1e-05"},
    {"0.0001::float8", "0.0001"},
    {"1e6::float4", "1e+06"},
    {"123456::float4", "123456"},
    {"t || 1", "Hello1"},
    {"'a' || 1", "a1"},
    {"t || true", "Hellotrue"},
    {"t || null", "NULL"},
    {"1 || 'x'", "1x"},
    {"t || n", "Hello12.50"},
    {"t || d", "Hello2024-01-01"},
    {"t || ts", "Hello2024-01-01 01:00:00"},
    {"t || tz", "Hello2024-01-01 00:00:00+00"},
    {"t || f", "Hello2.5"},
    {"t || r", "Hello0.1"},
    {"lower(t)", "hello"},
    {"upper(t)", "HELLO"},
    {"coalesce(z, 5)", "5"},
    {"coalesce(z, 1.5)", "1.5"},
    {"coalesce(null, 'x')", "x"},
    {"i = 7", "true"},
    {"i = '7'", "true"},
    {"i = 'abc'", "ERROR: invalid input syntax for type integer: \"abc\" (position 5)"},
    {"i = z", "NULL"},
    {"null = null", "NULL"},
    {"true and null", "NULL"},
    {"false and null", "false"},
    {"true or null", "true"},
    {"false or null", "NULL"},
    {"not null::bool", "NULL"},
    {"z is null", "true"},
    {"z is not null", "false"},
    {"ok is true", "true"},
    {"null::bool is not true", "true"},
    {"i between 1 and 10", "true"},
    {"i not between 1 and 10", "false"},
    {"i between z and 10", "NULL"},
    {"i between 10 and z", "false"},
    {"i in (1, 7)", "true"},
    {"i in (1, null)", "NULL"},
    {"i in (7, null)", "true"},
    {"i not in (1, null)", "NULL"},
    {"z in (1)", "NULL"},
    {"i = any('{1,7}')", "true"},
    {"i = any(ia)", "NULL"},
    {"3 = any(ia)", "NULL"},
    {"z = any(ia)", "NULL"},
    {"i = any($ids)", "true"},
    {"$p = i", "true"},
    {"ia @> '{1}'", "true"},
    {"ia @> '{1,null}'", "false"},
    {"ia <@ '{1,2,3}'", "false"},
    {"ia && '{2,9}'", "true"},
    {"ia && '{}'", "false"},
    {"ta @> '{\"b c\"}'", "true"},
    {"'abc' like 'a%'", "true"},
    {"'abc' like 'a_c'", "true"},
    {"'a%c' like 'a\\%c'", "true"},
    {"'abc' like 'a\\%c'", "false"},
    {"'abc' like 'abc\\'", "false"},
    {"'ABC' ilike 'a%'", "true"},
    {"'ABC' not ilike 'a%'", "false"},
    {"t like 'H%'", "true"},
    {"'abc'::int", "ERROR: invalid input syntax for type integer: \"abc\" (position 1)"},
    {"'12'::int2", "12"},
    {"'99999'::int2", "ERROR: value \"99999\" is out of range for type smallint (position 1)"},
    {"' 12 '::int4", "12"},
    {"'1.5'::int", "ERROR: invalid input syntax for type integer: \"1.5\" (position 1)"},
    {"1.5::int", "2"},
    {"2.5::int", "3"},
    {"-2.5::int", "-3"},
    {"2.5::float8::int", "2"},
    {"3.5::float8::int", "4"},
    {"'abc'::numeric", "ERROR: invalid input syntax for type numeric: \"abc\" (position 1)"},
    {"'1e3'::numeric", "1000"},
    {"'1.50'::numeric", "1.50"},
    {"'nan'::numeric", "NaN"},
    {"'x'::float8", "ERROR: invalid input syntax for type double precision: \"x\" (position 1)"},
    {"'inf'::float8", "Infinity"},
    {"'yes'::bool", "true"},
    {"'of'::bool", "false"},
    {"'maybe'::bool", "ERROR: invalid input syntax for type boolean: \"maybe\" (position 1)"},
    {"'2024-02-30'::date",
     "ERROR: date/time field value out of range: \"2024-02-30\" (position 1)"},
    {"'2024-01-01 10:00+05'::timestamp", "2024-01-01 10:00:00"},
    {"'2024-01-01 10:00+05'::timestamptz", "2024-01-01 05:00:00+00"},
    {"'2024-01-01T10:00:00Z'::timestamptz", "2024-01-01 10:00:00+00"},
    {"'2024-01-01'::timestamp", "2024-01-01 00:00:00"},
    {"ts::date", "2024-01-01"},
    {"d::timestamp", "2024-01-01 00:00:00"},
    {"d::timestamptz", "2024-01-01 00:00:00+00"},
    {"tz::timestamp", "2024-01-01 00:00:00"},
    {"date '2024-01-01' + 1", "2024-01-02"},
    {"d - 1", "2023-12-31"},
    {"d - date '2023-01-01'", "365"},
    {"d < ts", "true"},
    {"d = '2024-01-01'", "true"},
    {"ts > '2024-01-01'", "true"},
    {"u = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", "true"},
    {"u = 'a0eebc999c0b4ef8bb6d6bb9bd380a11'", "true"},
    {"u::text", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
    {"'abc'::uuid", "ERROR: invalid input syntax for type uuid: \"abc\" (position 1)"},
    {"i::text", "7"},
    {"n::text", "12.50"},
    {"f::text", "2.5"},
    {"ok::text", "true"},
    {"ok::int", "1"},
    {"1::bool", "true"},
    {"i::float4", "7"},
    {"n::int", "13"},
    {"n::float8", "12.5"},
    {"9000000000::int4", "ERROR: integer out of range"},
    {"b::int4", "ERROR: integer out of range"},
    {"b::int2", "ERROR: smallint out of range"},
    {"300::int2 * 300::int2", "ERROR: smallint out of range"},
    {"-(-2147483648)", "2147483648"},
    {"- i", "-7"},
    {"- n", "-12.50"},
    {"- f", "-2.5"},
    {"'abc' < 'abd'", "true"},
    {"'a' < 'B'", "false"},
    {"'é' > 'z'", "true"},
    {"(1 = 1) = true", "true"},
    {"1 = 1 is true", "true"},
    {"not 1 = 2", "true"},
    {"i = 7 and t = 'Hello'", "true"},
    {"i < 10 or 1/0 = 1", "true"},
    {"false and 1/0 = 1", "false"},
    {"-9223372036854775808", "-9223372036854775808"},
    {"9223372036854775808", "9223372036854775808"},
    {"-2147483648::int8", "-2147483648"},
    {"1 / 7.0", "0.14285714285714285714"},
    {"1.0 / 3", "0.33333333333333333333"},
    {"100000 / 3.0", "33333.333333333333"},
    {"0.0001 / 3", "0.000033333333333333333333"},
    {"1234567.89 / 0.001", "1234567890.00000000"},
    {"22 / 7.0000000000000000001", "3.1428571428571428571"},
    {"1e-20 / 3", "0.0000000000000000000033333333333333333333"},
    {"-1 / 3.0", "-0.33333333333333333333"},
    {"2 / 3.0", "0.66666666666666666667"},
    {"0.5 / 0.5", "1.00000000000000000000"},
    {"n / 0", "ERROR: division by zero"},
    {"n % 0", "ERROR: division by zero"},
    {"-7.5 % 2", "-1.5"},
    {"7.5 % -2", "1.5"},
    {"1.5 * 1.25", "1.875"},
    {"0.1 + 0.2 = 0.3", "true"},
    {"0.1::float8 + 0.2::float8 = 0.3::float8", "false"},
    {"1e20::float8", "1e+20"},
    {"1.5e-7::float8", "1.5e-07"},
    {"100::float4 / 3", "33.333333333333336"},
    {"1::float4 / 3::float4", "0.33333334"},
    {"r::float8", "0.10000000149011612"},
    {"r::numeric", "0.1"},
    {"f::numeric", "2.5"},
    {"(1.0/3)::float8", "0.3333333333333333"},
    {"12345678901234567890::float8", "1.2345678901234567e+19"},
    {"12.5::int2", "13"},
    {"'  42  '::int8", "42"},
    {"'+42'::int4", "42"},
    {"'-0'::int4", "0"},
    {"'1_000'::int4", "ERROR: invalid input syntax for type integer: \"1_000\" (position 1)"},
    {"'0x10'::int4", "ERROR: invalid input syntax for type integer: \"0x10\" (position 1)"},
    {"'1e2'::int4", "ERROR: invalid input syntax for type integer: \"1e2\" (position 1)"},
    {"'1e2'::float8", "100"},
    {"'.5'::float8", "0.5"},
    {"'5.'::float8", "5"},
    {"'-.5e-3'::numeric", "-0.0005"},
    {"'  1.50  '::numeric", "1.50"},
    {"'Infinity'::numeric", "Infinity"},
    {"'infinity'::float8", "Infinity"},
    {"'-INF'::float8", "-Infinity"},
    {"'on'::bool", "true"},
    {"'  true  '::bool", "true"},
    {"'TRUE'::bool", "true"},
    {"'1'::bool", "true"},
    {"'2'::bool", "ERROR: invalid input syntax for type boolean: \"2\" (position 1)"},
    {"'2024-01-01 10:00:00.1234567'::timestamp", "2024-01-01 10:00:00.123457"},
    {"'2024-01-01 24:00:00'::timestamp", "2024-01-02 00:00:00"},
    {"'2024-01-01 10:00'::date", "2024-01-01"},
    {"'infinity'::date", "infinity"},
    {"'-infinity'::timestamp", "-infinity"},
    {"'0001-01-01 BC'::date", "0001-01-01 BC"},
    {"'2024-1-5'::date", "2024-01-05"},
    {"'2024-01-01 10:00:00-08:30'::timestamptz", "2024-01-01 18:30:00+00"},
    {"'2024-01-01 10:00:00 UTC'::timestamptz", "2024-01-01 10:00:00+00"},
    {"'{1,2,3}'::int[]", "{1,2,3}"},
    {"'{1, 2 , NULL}'::int[]", "{1,2,NULL}"},
    {"'{\"a\",\"b\"}'::text[]", "{a,b}"},
    {"'{}'::int[]", "{}"},
    {"'{1,a}'::int[]", "ERROR: invalid input syntax for type integer: \"a\" (position 1)"},
    {"ia::text", "{1,2,NULL}"},
    {"ta::text", "{a,\"b c\"}"},
    {"ARRAY[1,2]", "{1,2}"},
    {"ARRAY[1,null]", "{1,NULL}"},
    {"ARRAY['a b', 'c']", "{\"a b\",c}"},
    {"ARRAY[1, 2.5]", "{1,2.5}"},
    {"i in (7.0, 8)", "true"},
    {"i in ('7', '8')", "true"},
    {"n in (12.5, 1)", "true"},
    {"f in (2.5)", "true"},
    {"t in ('Hello', 'x')", "true"},
    {"'x' in ('x', 'y')", "true"},
    {"null in (1, 2)", "NULL"},
    {"i = any(ARRAY[1,7])", "true"},
    {"i = any('{}')", "false"},
    {"z = any('{}')", "false"},
    {"i = any(null::int[])", "NULL"},
    {"i = any('{1,NULL}')", "NULL"},
    {"'{1,2}'::int[] @> '{}'", "true"},
    {"'{}'::int[] <@ '{1}'", "true"},
    {"'{1,null}'::int[] @> '{1}'", "true"},
    {"'{null}'::int[] && '{null}'", "false"},
    {"ia @> null", "NULL"},
    {"coalesce(z, i, 3)", "7"},
    {"coalesce(z, null)", "NULL"},
    {"coalesce(null, null)", "NULL"},
    {"coalesce(d, ts)", "2024-01-01 00:00:00"},
    {"coalesce(z, 'x')", "ERROR: invalid input syntax for type integer: \"x\" (position 13)"},
    {"coalesce('1', 2)", "1"},
    {"lower('ÀB')", "Àb"},
    {"upper('àb')", "àB"},
    {"lower(null)", "NULL"},
    {"t || 1 || 2", "Hello12"},
    {"'a' || 'b'", "ab"},
    {"ok || 'x'", "truex"},
    {"u || 'x'", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11x"},
    {"1 + '2'", "3"},
    {"'1' + '2'", "ERROR: operator is not unique: unknown + unknown (position 5)"},
    {"d + 1", "2024-01-02"},
    {"d + '1'", "ERROR: operator is not unique: date + unknown (position 3)"},
    {"1 + d", "2024-01-02"},
    {"d - '2023-01-01'", "365"},
    {"d + 1.5", "ERROR: operator does not exist: date + numeric (position 3)"},
    {"'a' < 'b' < 'c'", "ERROR: syntax error at or near \"<\" (position 11)"},
    {"1 = 1 = true", "ERROR: syntax error at or near \"=\" (position 7)"},
    {"i = 7 is true", "true"},
    {"not i = 7 is false", "true"},
    {"i between 1 and 10 and true", "true"},
    {"i not between 10 and 1", "true"},
    {"'b' between 'a' and 'c'", "true"},
    {"i between 1.5 and 7.5", "true"},
    {"d between '2023-01-01' and '2025-01-01'", "true"},
    {"t like null", "NULL"},
    {"null like 'a'", "NULL"},
    {"'a_c' like 'a\\_c'", "true"},
    {"'abc' like 'a\\_c'", "false"},
    {"'' like '%'", "true"},
    {"'' like '_'", "false"},
    {"'ab' like '%b%'", "true"},
    {"'ab' like '%\\'", "ERROR: LIKE pattern must not end with escape character"},
    {"'a' like 'ab\\'", "false"},
    {"'aé' like 'a_'", "true"},
    {"'AÉ' ilike 'aé'", "false"},
    {"'ab' ilike 'A%'", "true"},
    {"i::text || 'x'", "7x"},
    {"1::bool::text", "true"},
    {"true::int", "1"},
    {"5::bool", "true"},
    {"'5'::int::bool", "true"},
    {"1.5::text", "1.5"},
    {"i / 2 * 2", "6"},
    {"i - 2 - 2", "3"},
    {"i - (2 - 2)", "7"},
    {"2 + 3 * 4", "14"},
    {"(2 + 3) * 4", "20"},
    {"-i * 2", "-14"},
    {"- - 5", "5"},
    {"- -i", "7"},
    {"not true", "false"},
    {"true is true", "true"},
    {"true is not true", "false"},
    {"true is false", "false"},
    {"true is not false", "true"},
    {"true is null", "false"},
    {"true is not null", "true"},
    {"true and true", "true"},
    {"true or true", "true"},
    {"true = true", "true"},
    {"true and false", "false"},
    {"true or false", "true"},
    {"true = false", "false"},
    {"true and null::bool", "NULL"},
    {"true or null::bool", "true"},
    {"true = null::bool", "NULL"},
    {"not false", "true"},
    {"false is true", "false"},
    {"false is not true", "true"},
    {"false is false", "true"},
    {"false is not false", "false"},
    {"false is null", "false"},
    {"false is not null", "true"},
    {"false and true", "false"},
    {"false or true", "true"},
    {"false = true", "false"},
    {"false and false", "false"},
    {"false or false", "false"},
    {"false = false", "true"},
    {"false and null::bool", "false"},
    {"false or null::bool", "NULL"},
    {"false = null::bool", "NULL"},
    {"null::bool is true", "false"},
    {"null::bool is false", "false"},
    {"null::bool is not false", "true"},
    {"null::bool is null", "true"},
    {"null::bool is not null", "false"},
    {"null::bool and true", "NULL"},
    {"null::bool or true", "true"},
    {"null::bool = true", "NULL"},
    {"null::bool and false", "false"},
    {"null::bool or false", "NULL"},
    {"null::bool = false", "NULL"},
    {"null::bool and null::bool", "NULL"},
    {"null::bool or null::bool", "NULL"},
    {"null::bool = null::bool", "NULL"},
    {"1 = 1", "true"},
    {"1 <> 1", "false"},
    {"1 < 1", "false"},
    {"1 <= 1", "true"},
    {"1 > 1", "false"},
    {"1 >= 1", "true"},
    {"1 = 2", "false"},
    {"1 <> 2", "true"},
    {"1 < 2", "true"},
    {"1 <= 2", "true"},
    {"1 > 2", "false"},
    {"1 >= 2", "false"},
    {"1 = null::int", "NULL"},
    {"1 <> null::int", "NULL"},
    {"1 < null::int", "NULL"},
    {"1 <= null::int", "NULL"},
    {"1 > null::int", "NULL"},
    {"1 >= null::int", "NULL"},
    {"null::int = 1", "NULL"},
    {"null::int <> 1", "NULL"},
    {"null::int < 1", "NULL"},
    {"null::int <= 1", "NULL"},
    {"null::int > 1", "NULL"},
    {"null::int >= 1", "NULL"},
    {"null::int = 2", "NULL"},
    {"null::int <> 2", "NULL"},
    {"null::int < 2", "NULL"},
    {"null::int <= 2", "NULL"},
    {"null::int > 2", "NULL"},
    {"null::int >= 2", "NULL"},
    {"null::int = null::int", "NULL"},
    {"null::int <> null::int", "NULL"},
    {"null::int < null::int", "NULL"},
    {"null::int <= null::int", "NULL"},
    {"null::int > null::int", "NULL"},
    {"null::int >= null::int", "NULL"},
    {"1 in (2, null)", "NULL"},
    {"1 not in (2, null)", "NULL"},
    {"1 not in (1, null)", "false"},
    {"null::int in (1)", "NULL"},
    {"null::int not in (1)", "NULL"},
    {"1 between null and 2", "NULL"},
    {"3 between null and 2", "false"},
    {"1 not between null and 0", "true"},
    {"1 not between null and 2", "NULL"},
    {"2 between 1 and 3 and null", "NULL"},
    {"1 + 2 * 3 = 7", "true"},
    {"1 = 1 or 1 = 1 and false", "true"},
    {"not true = false", "true"},
    {"not false and false", "false"},
    {"i > 1 and i < 10 or i = 100", "true"},
    {"'a' || 'b' = 'ab' and true", "true"},
    {"t like 'H' || '%'", "true"},
    {"2 * 3 between 5 and 7", "true"},
    {"1 + 1 in (2)", "true"},
    {"'x' || 'y' in ('xy')", "true"},
    {"i = 7 is not false", "true"},
    {"32767::int2 + 1::int2", "ERROR: smallint out of range"},
    {"(-32768)::int2 - 1::int2", "ERROR: smallint out of range"},
    {"(-32768)::int2 / (-1)::int2", "ERROR: smallint out of range"},
    {"(-2147483648) / -1", "ERROR: integer out of range"},
    {"(-2147483648) % -1", "0"},
    {"(-9223372036854775808) / -1", "ERROR: bigint out of range"},
    {"(-9223372036854775808) * -1", "ERROR: bigint out of range"},
    {"5 / -2", "-2"},
    {"-5 % 2", "-1"},
    {"1::int2 + 1", "2"},
    {"1::int2 + 1::int8", "2"},
    {"s * s", "ERROR: smallint out of range"},
    {"s / 7", "42"},
    {"b * 2", "18000000000"},
    {"b * b", "ERROR: bigint out of range"},
    {"i * 1.0", "7.0"},
    {"i / 2.0", "3.5000000000000000"},
    {"i + 0.5::float4", "7.5"},
    {"n + f", "15"},
    {"n * r", "1.2500000186264515"},
    {"r + f", "2.600000001490116"},
    {"1.5::float4 * 2::float4", "3"},
    {"3.4e38::float4 * 10::float4", "ERROR: value out of range: overflow"},
    {"1e-45::float4 / 10::float4", "ERROR: value out of range: underflow"},
    {"'1e400'::float8", "ERROR: \"1e400\" is out of range for type double precision (position 1)"},
    {"'1e-400'::float8",
     "ERROR: \"1e-400\" is out of range for type double precision (position 1)"},
    {"'4e-320'::float8", "4e-320"},
    {"'NaN'::float8 = 'NaN'::float8", "true"},
    {"'NaN'::float8 > 'Infinity'::float8", "true"},
    {"'NaN'::numeric = 'NaN'::numeric", "true"},
    {"'NaN'::numeric > 1e100", "true"},
    {"'-Infinity'::numeric < -1e100", "true"},
    {"'Infinity'::numeric + 1", "Infinity"},
    {"'Infinity'::numeric - 'Infinity'::numeric", "NaN"},
    {"'Infinity'::float8 - 'Infinity'::float8", "NaN"},
    {"0.0::float8 = -0.0::float8", "true"},
    {"-0.0::float8", "-0"},
    {"1 / 'Infinity'::float8", "0"},
    {"'NaN'::float8 / 0", "NaN"},
    {"0.000000000000000000001 * 0.000000000000000000001",
     "0.000000000000000000000000000000000000000001"},
    {"99999999999999999999.99 + 0.01", "100000000000000000000.00"},
    {"12.50 - 12.5", "0.00"},
    {"-0.00 + 0", "0.00"},
    {"10::numeric / 3", "3.3333333333333333"},
    {"10::numeric / 4", "2.5000000000000000"},
    {"1::numeric / 8", "0.12500000000000000000"},
    {"12345678901234567890::numeric / 7", "1763668414462081127"},
    {"0.001 / 7", "0.00014285714285714286"},
    {"7 / 0.001", "7000.0000000000000000"},
    {"1.23456789 / 1.1", "1.12233444545454545455"},
    {"100 % 7.5", "2.5"},
    {"-100 % 7.5", "-2.5"},
    {"5.5 % 2", "1.5"},
    {"'abc' < 'abcd'", "true"},
    {"'' < 'a'", "true"},
    {"'Z' < 'a'", "true"},
    {"'é' > 'e'", "true"},
    {"d > '2023-12-31'", "true"},
    {"d = ts::date", "true"},
    {"ts = tz", "false"},
    {"ts::timestamptz = tz", "false"},
    {"d < tz", "false"},
    {"'infinity'::date > d", "true"},
    {"'-infinity'::timestamptz < tz", "true"},
    {"'2000-02-29'::date + 365", "2001-02-28"},
    {"'2000-01-01'::date - '1999-01-01'::date", "365"},
    {"'2024-03-10 12:34:56.5'::timestamp::text", "2024-03-10 12:34:56.5"},
    {"'2024-03-10 12:34:56.000001'::timestamptz::date", "2024-03-10"},
    {"'1999-12-31 23:59:59.9999996'::timestamp", "2000-01-01 00:00:00"},
    {"'0044-03-15 BC'::date::timestamp", "0044-03-15 00:00:00 BC"},
    {"'  2024-01-01  '::date", "2024-01-01"},
    {"'2024-13-01'::date",
     "ERROR: date/time field value out of range: \"2024-13-01\" (position 1)"},
    {"'2024-01-01x'::date",
     "ERROR: invalid input syntax for type date: \"2024-01-01x\" (position 1)"},
    {"'{a,NULL,\"NULL\"}'::text[]", "{a,NULL,\"NULL\"}"},
    {"'{\"a\\\\\"b\"}'::text[]", "ERROR: malformed array literal: \"{\"a\\\\\"b\"}\" (position 1)"},
    {"'{ a , b }'::text[]", "{a,b}"},
    {"'{1,,2}'::int[]", "ERROR: malformed array literal: \"{1,,2}\" (position 1)"},
    {"'1,2'::int[]", "ERROR: malformed array literal: \"1,2\" (position 1)"},
    {"ta && '{a}'", "true"},
    {"ta <@ '{a,\"b c\",d}'", "true"},
    {"'{1,2}'::int8[] @> '{2}'", "true"},
    {"'{1.0,2}'::numeric[] @> '{1}'", "true"},
    {"'{a}'::text[] @> '{A}'", "false"},
    {"i = any('{1,2}'::int8[])", "false"},
    {"n = any('{12.5}')", "true"},
    {"t = any(ta)", "false"},
    {"'b c' = any(ta)", "true"},
    {"u = any('{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}')", "true"},
    {"d = any('{2024-01-01}')", "true"},
    {"1 = any(ARRAY[1, null])", "true"},
    {"2 = any(ARRAY[1, null])", "NULL"},
    {"coalesce(null, 1, 2)", "1"},
    {"coalesce(z, b)", "9000000000"},
    {"coalesce(z, n)", "12.50"},
    {"coalesce(z, f)", "2.5"},
    {"coalesce(t, 'x')", "Hello"},
    {"coalesce(null::text, null)", "NULL"},
    {"coalesce(1, 1/0)", "1"},
    {"lower(t) = 'hello'", "true"},
    {"upper(null)", "NULL"},
    {"lower('ABC' || 1)", "abc1"},
    {"upper(t) like 'HEL%'", "true"},
    {"r * 3", "0.30000000447034836"},
    {"r / 3", "0.033333333830038704"},
    {"r - 1", "-0.8999999985098839"},
    {"r::text", "0.1"},
    {"(r * 1e30::float4)", "1e+29"},
    {"f * r", "0.2500000037252903"},
    {"1.1::float4 + 2.2::float4", "3.3000002"},
    {"1.1::float4 = 1.1", "false"},
    {"1.1::float4 = 1.1::float8", "false"},
    {"0.1::float4 < 0.1", "false"},
    {"n = 12.5::float8", "true"},
    {"n > f", "true"},
    {"i = 7.0::float8", "true"},
    {"b = 9e9::float8", "true"},
    {"1e300::float8 * 1e300::float8", "ERROR: value out of range: overflow"},
    {"-1e300::float8 * 1e300::float8", "ERROR: value out of range: overflow"},
    {"1e300::float8 / 1e-300::float8", "ERROR: value out of range: overflow"},
    {"5e-324::float8 / 2", "ERROR: value out of range: underflow"},
    {"2.5::float8 - 2.5::float8", "0"},
    {"'1.7976931348623157e308'::float8", "1.7976931348623157e+308"},
    {"1.7976931348623157e308::float8 + 1e292::float8", "ERROR: value out of range: overflow"},
    {"0.30000000000000004::float8", "0.30000000000000004"},
    {"1e22::float8", "1e+22"},
    {"1e21::float8", "1e+21"},
    {"123456789.123::float8", "123456789.123"},
    {"-1.5e-10::float8", "-1.5e-10"},
    {"100::float8 / 7", "14.285714285714286"},
    {"(100::float8 / 7)::numeric", "14.2857142857143"},
    {"(1e20::float8)::numeric", "100000000000000000000"},
    {"(1e-20::float8)::numeric", "0.00000000000000000001"},
    {"0.1::float4::numeric", "0.1"},
    {"12.345::float4::float8", "12.345000267028809"},
    {"2.5::float4::int", "2"},
    {"3.5::float4::int", "4"},
    {"-2.5::float8::int8", "-2"},
    {"1e19::float8::int8", "ERROR: bigint out of range"},
    {"'NaN'::float8::int", "ERROR: integer out of range"},
    {"'Infinity'::numeric::int", "ERROR: cannot convert infinity to integer"},
    {"'NaN'::numeric::int", "ERROR: cannot convert NaN to integer"},
    {"123.456::numeric::float4", "123.456"},
    {"'abc' || 1.50", "abc1.50"},
    {"'a' || 2.5::float8", "a2.5"},
    {"'a' || 1e20::float8", "a1e+20"},
    {"'a' || d", "a2024-01-01"},
    {"'a' || tz", "a2024-01-01 00:00:00+00"},
    {"'a' || ts", "a2024-01-01 01:00:00"},
    {"'a' || u", "aa0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
    {"'a' || false", "afalse"},
    {"'a' || null::int", "NULL"},
    {"null || 'a'", "NULL"},
    {"'x' || s", "x300"},
    {"'x' || b", "x9000000000"},
    {"coalesce(s, i)", "300"},
    {"coalesce(s, b)::text", "300"},
    {"coalesce(r, f)", "0.10000000149011612"},
    {"coalesce(r, 1)", "0.1"},
    {"coalesce(n, 1)", "12.50"},
    {"coalesce(d, tz)", "2024-01-01 00:00:00+00"},
    {"lower('ABC')", "abc"},
    {"upper('abc' || t)", "ABCHELLO"},
    {"i in (1, 2.5, 7)", "true"},
    {"i in (1, 7::int8)", "true"},
    {"s in (300, 70000)", "true"},
    {"i in (7.0::float8)", "true"},
    {"n in (12.5::float8)", "true"},
    {"t in ('Hello', null)", "true"},
    {"d in ('2024-01-01')", "true"},
    {"i = 1 or i = 7 and t = 'x'", "false"},
    {"true > false", "true"},
    {"ok < true", "false"},
    {"ok >= ok", "true"},
    {"u > '00000000-0000-0000-0000-000000000000'", "true"},
    {"u < 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "true"},
    {"d = '2024-01-01 00:00'::timestamp", "true"},
    {"d::timestamptz = tz", "true"},
    {"'2024-01-01 23:59:59.999999'::timestamp::date", "2024-01-01"},
    {"'1970-01-01'::date - 1", "1969-12-31"},
    {"'0001-01-01'::date - 1", "0001-12-31 BC"},
    {"'5874897-12-31'::date + 1", "ERROR: date out of range"},
    {"'2024-01-01'::timestamptz::text", "2024-01-01 00:00:00+00"},
    {"'2024-06-01 12:00:00.100'::timestamptz", "2024-06-01 12:00:00.1+00"},
    {"'1900-01-01'::timestamp::text", "1900-01-01 00:00:00"},
    {"'2024-01-01 00:00:00+14'::timestamptz", "2023-12-31 10:00:00+00"},
    {"'2024-01-01 00:00:00-12:30'::timestamptz", "2024-01-01 12:30:00+00"},
    {"i::numeric / 3", "2.3333333333333333"},
    {"b / 7", "1285714285"},
    {"b % 7", "5"},
    {"b::numeric * b", "81000000000000000000"},
    {"s / 0", "ERROR: division by zero"},
    {"s % 0::int2", "ERROR: division by zero"},
    {"-s", "-300"},
    {"-(-32768)::int2", "ERROR: smallint out of range"},
    {"(-32768)::int2 * -1::int2", "ERROR: smallint out of range"},
    {"t = any('{Hello,x}')", "true"},
    {"'3' = any(ia)", "NULL"},
    {"null = any(ia)", "NULL"},
    {"null::int = any('{}')", "false"},
    {"'{}'::int[] && '{}'", "false"},
    {"'{NULL}'::int[] <@ '{NULL}'", "false"},
    {"'{1,1}'::int[] <@ '{1}'", "true"},
    {"ta @> '{}'::text[]", "true"},
    {"coalesce(s, n)", "300"},
    {"ARRAY[0.5::float4, 1]", "{0.5,1}"},
    {"0 / 5.0", "0.00000000000000000000"},
    {"0.000 / 7", "0.00000000000000000000"},
    {"-0.5 * 0", "0.0"},
    {"12345.6789 / 0.0001", "123456789.000000000000"},
    {"99999999 / 0.00000001", "9999999900000000.00000000"},
    {"1 / 99999999999.0", "0.0000000000100000000001000000"},
    {"0.00001 / 100000", "0.0000000001000000000000000000"},
    {"123456789012345678 / 1000000000000000000.0", "0.12345678901234567800"},
    {"-5.5 / -1.1", "5.0000000000000000"},
    {"5 % 0.3", "0.2"},
    {"0.3 % 5", "0.3"},
    {"1e-3 + 1e3", "1000.001"},
    {"1.000 * 2.00", "2.00000"},
    {"n * n * n", "1953.125000"},
    {"n / n", "1.00000000000000000000"},
    {"'NaN'::numeric + 1", "NaN"},
    {"'NaN'::numeric / 0", "NaN"},
    {"'Infinity'::numeric / 0", "ERROR: division by zero"},
    {"'Infinity'::numeric * 0", "NaN"},
    {"1 / 'Infinity'::numeric", "0"},
    {"'Infinity'::numeric % 3", "NaN"},
    {"3 % 'Infinity'::numeric", "3"},
    {"-'Infinity'::numeric", "-Infinity"},
    {"'1e1000'::numeric > 1", "true"},
    {"'1e-1000'::numeric > 0", "true"},
    {"1.5::numeric::text", "1.5"},
    {"2.0::float8::text", "2"},
    {"'-0'::float8", "-0"},
    {"-0.0::float8 = 0", "true"},
    {"f::text || r::text", "2.50.1"},
    {"1e16::float8::text", "1e+16"},
    {"9007199254740993::float8", "9.007199254740992e+15"},
    {"0.1::float4 + 0.2::float4", "0.3"},
    {"3.0::float4 / 7::float4", "0.42857143"},
    {"1e38::float4 * 10", "9.999999680285692e+38"},
    {"'3.4028235e38'::float4", "3.4028235e+38"},
    {"'3.5e38'::float4", "ERROR: \"3.5e38\" is out of range for type real (position 1)"},
    {"'1e-46'::float4", "ERROR: \"1e-46\" is out of range for type real (position 1)"},
    {"'' = t", "false"},
    {"'Hello' >= t", "true"},
    {"t like ''", "false"},
    {"'' like ''", "true"},
    {"'%' like '\\%'", "true"},
    {"'_' like '\\_'", "true"},
    {"'a\\b' like 'a\\\\b'", "true"},
    {"'abc' like '%%%c'", "true"},
    {"'abcabc' like '%b_a%'", "true"},
    {"'aaa' like 'a%a%a%a'", "false"},
    {"'xyz' ilike '%Y%'", "true"},
    {"'ǅ' ilike 'ǆ'", "false"},
};

TEST(WherePostgres, EveryCaseMatchesPostgres) {
  for (const Case& c : kPostgresCases) {
    EXPECT_EQ(EvalText(c.expr), c.want) << "expression: " << c.expr;
  }
}

TEST(WhereParse, ErrorsNameTheConstructAndPosition) {
  EXPECT_EQ(ParseError("titel = 'x'"), "unknown column \"titel\" at position 0");
  EXPECT_EQ(ParseError("i = $nope"), "unknown parameter $nope at position 4");
  EXPECT_EQ(ParseError("i = $1"),
            "positional parameters ($1) are not supported, use $name (position 4)");
  EXPECT_EQ(ParseError("tz < now()"),
            "function now() is not supported (position 5): shapes may use only lower, upper, "
            "coalesce");
  EXPECT_EQ(ParseError("random() > 0.5"),
            "function random() is not supported (position 0): shapes may use only lower, upper, "
            "coalesce");
  EXPECT_EQ(ParseError("i in (select 1)"), "subqueries are not supported (position 6)");
  EXPECT_EQ(ParseError("exists (select 1)"), "subqueries are not supported (position 0)");
  EXPECT_EQ(ParseError("i = (select 1)"), "subqueries are not supported (position 5)");
  EXPECT_EQ(ParseError("i = any(select 1)"), "subqueries are not supported (position 8)");
  EXPECT_EQ(ParseError("t = 5"), "operator does not exist: text = int4 (position 2)");
  EXPECT_EQ(ParseError("i = 'abc'"), "invalid input syntax for type integer: \"abc\" (position 4)");
  EXPECT_EQ(ParseError("i"), "argument of WHERE must be type boolean, not type int4 (position 0)");
  EXPECT_EQ(ParseError("ok and i"),
            "argument of AND must be type boolean, not type int4 (position 7)");
  EXPECT_EQ(ParseError("ok or t"),
            "argument of OR must be type boolean, not type text (position 6)");
  EXPECT_EQ(ParseError("not i"),
            "argument of NOT must be type boolean, not type int4 (position 4)");
  EXPECT_EQ(ParseError("i is true"),
            "argument of IS TRUE must be type boolean, not type int4 (position 0)");
  EXPECT_EQ(ParseError(""), "empty WHERE expression");
  EXPECT_EQ(ParseError("i ="), "syntax error at end of input (position 3)");
  EXPECT_EQ(ParseError("i = 1)"), "syntax error at or near \")\" (position 5)");
  EXPECT_EQ(ParseError("(i = 1"), "syntax error at end of input (position 6)");
  EXPECT_EQ(ParseError("i < 1 < 2"), "syntax error at or near \"<\" (position 6)");
  EXPECT_EQ(ParseError("i ^ 2 = 1"), "operator is not supported: ^ (position 2)");
  EXPECT_EQ(ParseError("i ~ 'x'"), "operator is not supported: ~ (position 2)");
  EXPECT_EQ(ParseError("t = 'x"), "unterminated quoted string (position 4)");
  EXPECT_EQ(ParseError("\"t = 1"), "unterminated quoted identifier (position 0)");
  EXPECT_EQ(ParseError("t = E'x'"), "E'...' string constants are not supported (position 4)");
  EXPECT_EQ(ParseError("i = 12abc"),
            "trailing junk after numeric literal at or near \"12a\" (position 4)");
  EXPECT_EQ(ParseError("t like 'a' escape '#'"), "LIKE ... ESCAPE is not supported (position 11)");
  EXPECT_EQ(ParseError("t similar to 'a'"), "SIMILAR TO is not supported (position 2)");
  EXPECT_EQ(ParseError("i is distinct from 1"), "IS DISTINCT is not supported (position 5)");
  EXPECT_EQ(ParseError("i = all(ia)"),
            "= ALL(...) is not supported, only = ANY(array) (position 4)");
  EXPECT_EQ(ParseError("i < any(ia)"),
            "< ANY(...) is not supported, only = ANY(array) (position 4)");
  EXPECT_EQ(ParseError("i = any(5)"),
            "op ANY/ALL (array) requires array on right side, not int4 (position 8)");
  EXPECT_EQ(ParseError("t = any(ia)"), "operator does not exist: text = ANY(int4[]) (position 2)");
  EXPECT_EQ(ParseError("i::varchar(10) = 'x'"),
            "type modifiers (varchar(...)) are not supported (position 10)");
  EXPECT_EQ(ParseError("i::money = 1"), "type \"money\" is not supported (position 3)");
  EXPECT_EQ(ParseError("u::int = 1"), "cannot cast type uuid to int4 (position 1)");
  EXPECT_EQ(ParseError("ia[1] = 1"), "array subscripts are not supported (position 2)");
  EXPECT_EQ(ParseError("(i, b) = (1, 2)"), "row constructors are not supported (position 2)");
  EXPECT_EQ(ParseError("lower(i) = 'x'"), "function lower(int4) does not exist (position 0)");
  EXPECT_EQ(ParseError("lower(t, t) = 'x'"), "function lower() takes one argument (position 0)");
  EXPECT_EQ(ParseError("coalesce(i, t) = 1"),
            "COALESCE types int4 and text cannot be matched (position 12)");
  EXPECT_EQ(ParseError("ia @> '{1}'::int8[]"),
            "operator does not exist: int4[] @> int8[] (position 3)");
  EXPECT_EQ(ParseError("ARRAY[i] @> ia"), "ARRAY[...] elements must be constants (position 6)");
  EXPECT_EQ(ParseError("'1' + '2' = 3"), "operator is not unique: unknown + unknown (position 4)");
  EXPECT_EQ(ParseError("1 || 2 = 'x'"), "operator does not exist: int4 || int4 (position 2)");
  EXPECT_EQ(EvalText("9000000000::int4 = i"), "ERROR: integer out of range");
  EXPECT_EQ(ParseError("i = 1 /* open"), "unterminated /* comment (position 6)");
  // Found by the fuzzer: huge exponents made numeric arithmetic take a minute.
  EXPECT_EQ(ParseError("n = 48E58268/548E587"), "value overflows numeric format (position 4)");
  EXPECT_EQ(EvalText("'1e1001'::numeric"), "ERROR: value overflows numeric format (position 1)");
}

TEST(WhereParse, UnsupportedColumnTypeIsRejectedWhenUsed) {
  Schema schema = {{"a", {TypeId::kInt4}}, {"weird", {TypeId::kUnknown}}};
  EXPECT_TRUE(ParseWhere("a = 1", schema, {}).ok());
  absl::StatusOr<std::unique_ptr<Expr>> e = ParseWhere("weird = 1", schema, {});
  ASSERT_FALSE(e.ok());
  EXPECT_THAT(std::string(e.status().message()), HasSubstr("type shapes do not support"));
}

TEST(WhereParse, DeepNestingIsAnErrorNotACrash) {
  std::string deep(2000, '(');
  deep += "true";
  deep += std::string(2000, ')');
  EXPECT_THAT(ParseError(deep), HasSubstr("nested too deeply"));
  std::string nots;
  for (int i = 0; i < 2000; ++i) nots += "not ";
  EXPECT_THAT(ParseError(nots + "true"), HasSubstr("nested too deeply"));
  std::string sum = "i";
  for (int i = 0; i < 1000; ++i) sum += " + 1";
  EXPECT_EQ(ParseError(sum + " = 0"), "expression is nested too deeply (more than 256 levels)");
  std::string many = "i in (0";
  for (int i = 0; i < 6000; ++i) many += ", 1";
  EXPECT_EQ(ParseError(many + ")"), "expression is too long (more than 10000 tokens)");
  std::string minus(5000, '-');
  EXPECT_THAT(ParseError("i = " + minus), HasSubstr("position"));
}

TEST(WhereParse, IdentifiersFoldCaseUnlessQuoted) {
  Schema schema = {{"name", {TypeId::kText}}, {"Mixed", {TypeId::kText}}};
  EXPECT_TRUE(ParseWhere("NAME = 'x'", schema, {}).ok());
  EXPECT_TRUE(ParseWhere("\"Mixed\" = 'x'", schema, {}).ok());
  EXPECT_FALSE(ParseWhere("Mixed = 'x'", schema, {}).ok());
  EXPECT_FALSE(ParseWhere("\"NAME\" = 'x'", schema, {}).ok());
  EXPECT_EQ(Canonical(**ParseWhere("\"Mixed\" = 'x'", schema, {})), "\"Mixed\" = 'x'");
}

TEST(WhereParse, LiteralTypes) {
  auto type_of = [](const std::string& text) {
    absl::StatusOr<std::unique_ptr<Expr>> e =
        ParseWhere("(" + text + ") is null", TestSchema(), TestParams());
    return e.ok() ? (*e)->args[0]->type.ToString() : std::string(e.status().message());
  };
  EXPECT_EQ(type_of("2147483647"), "int4");
  EXPECT_EQ(type_of("-2147483648"), "int4");
  EXPECT_EQ(type_of("2147483648"), "int8");
  EXPECT_EQ(type_of("-(-2147483648)"), "int8");
  EXPECT_EQ(type_of("9223372036854775807"), "int8");
  EXPECT_EQ(type_of("-9223372036854775808"), "int8");
  EXPECT_EQ(type_of("9223372036854775808"), "numeric");
  EXPECT_EQ(type_of("1.5"), "numeric");
  EXPECT_EQ(type_of("1e3"), "numeric");
  EXPECT_EQ(type_of(".5"), "numeric");
  EXPECT_EQ(type_of("'x'"), "text");
  EXPECT_EQ(type_of("null"), "unknown");
  EXPECT_EQ(type_of("true"), "bool");
  EXPECT_EQ(type_of("DATE '2024-01-01'"), "date");
  EXPECT_EQ(type_of("TIMESTAMP '2024-01-01 10:00'"), "timestamp");
  EXPECT_EQ(type_of("TIMESTAMPTZ '2024-01-01 10:00'"), "timestamptz");
  EXPECT_EQ(type_of("timestamp with time zone '2024-01-01'"), "timestamptz");
  EXPECT_EQ(type_of("'1'::double precision"), "float8");
  EXPECT_EQ(type_of("cast('1' as bigint)"), "int8");
  EXPECT_EQ(type_of("ARRAY[1, 2]"), "int4[]");
  EXPECT_EQ(type_of("ARRAY[1, 2.5]"), "numeric[]");
  EXPECT_EQ(type_of("'{a}'::varchar[]"), "text[]");
  EXPECT_EQ(type_of("s + s"), "int2");
  EXPECT_EQ(type_of("s + i"), "int4");
  EXPECT_EQ(type_of("i + b"), "int8");
  EXPECT_EQ(type_of("b + n"), "numeric");
  EXPECT_EQ(type_of("r + r"), "float4");
  EXPECT_EQ(type_of("r + i"), "float8");
  EXPECT_EQ(type_of("n + f"), "float8");
  EXPECT_EQ(type_of("t || 1"), "text");
  EXPECT_EQ(type_of("coalesce(z, b)"), "int8");
  EXPECT_EQ(type_of("d - d"), "int4");
  EXPECT_EQ(type_of("d + 1"), "date");
}

TEST(WhereParse, PrecedenceFollowsPostgres) {
  // The canonical form shows the grouping the parser chose.
  EXPECT_EQ(Canon("ok or ok and not ok"), "ok or not ok and ok");
  EXPECT_EQ(Canon("(ok or ok) and ok"), "(ok or ok) and ok");
  EXPECT_EQ(Canon("not i = 1"), "not i = 1");
  EXPECT_EQ(Canon("not (i = 1)"), "not i = 1");
  EXPECT_EQ(Canon("i = 1 is true"), "i = 1 is true");
  EXPECT_EQ(Canon("i + 1 * 2 = 3"), "i + 1 * 2 = 3");
  EXPECT_EQ(Canon("(i + 1) * 2 = 3"), "(i + 1) * 2 = 3");
  EXPECT_EQ(Canon("i - 1 - 1 = 0"), "i - 1 - 1 = 0");
  EXPECT_EQ(Canon("i - (1 - 1) = 0"), "i - (1 - 1) = 0");
  EXPECT_EQ(Canon("-i * 2 = 0"), "-i * 2 = 0");
  EXPECT_EQ(Canon("-(i * 2) = 0"), "-(i * 2) = 0");
  EXPECT_EQ(Canon("t || 'a' = 'b'"), "t || 'a' = 'b'");
  EXPECT_EQ(Canon("t || 'a' like 'b'"), "t || 'a' like 'b'");
  EXPECT_EQ(Canon("i + 1 between 1 and 2 + 3"), "i + 1 between 1 and 2 + 3");
  EXPECT_EQ(Canon("i between 1 and 2 and ok"), "i between 1 and 2 and ok");
  EXPECT_EQ(Canon("i + 1 in (1, 2)"), "i + 1 in (1, 2)");
  EXPECT_EQ(Canon("(i + 1)::text = '1'"), "(i + 1)::text = '1'");
  EXPECT_EQ(Canon("-i::int8 = 1"), "-i::int8 = 1");
  EXPECT_EQ(Canon("i isnull"), "i is null");
  EXPECT_EQ(Canon("i notnull"), "i is not null");
  EXPECT_EQ(Canon("ok is not true is false"), "ok is not true is false");
  EXPECT_EQ(EvalText("1 + 2 * 3"), "7");
  EXPECT_EQ(EvalText("(1 + 2) * 3"), "9");
  EXPECT_EQ(EvalText("10 - 4 - 3"), "3");
  EXPECT_EQ(EvalText("2 * 3 % 4"), "2");
  EXPECT_EQ(EvalText("true or true and false"), "true");
  EXPECT_EQ(EvalText("not true or true"), "true");
  EXPECT_EQ(EvalText("not (true or true)"), "false");
}

TEST(WhereCanonical, EqualForEquivalentText) {
  const std::vector<std::pair<std::string, std::string>> same = {
      {"i = 7 AND t = 'x'", "t='x'   and   I=7"},
      {"i = 7 and (t = 'x' and ok)", "((ok)) AND (i = 7) AND t = 'x'"},
      {"b = '5'", "b = 5::int8"},
      {"b = '5'", "B = CAST(5 AS BIGINT)"},
      {"d = DATE '2024-01-01'", "d = '2024-01-01'"},
      {"tz = '2024-01-01 10:00+02'", "tz = TIMESTAMPTZ '2024-01-01 08:00:00Z'"},
      {"u = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", "u = 'a0eebc999c0b4ef8bb6d6bb9bd380a11'"},
      {"i in (1, 2)", "i IN (1,2)"},
      {"i isnull", "i IS NULL"},
      {"t <> 'a'", "t != 'a'"},
      {"i = -5", "i = - 5"},
      {"i = 1 -- comment", "i = /* c */ 1"},
  };
  for (const auto& [a, b] : same) EXPECT_EQ(Canon(a), Canon(b)) << a << " vs " << b;
  EXPECT_NE(Canon("i = 1 or ok"), Canon("ok or i = 1"));  // OR keeps its order
  EXPECT_NE(Canon("i = 1"), Canon("i = 2"));
  EXPECT_NE(Canon("t = 'a'"), Canon("t = 'A'"));
}

TEST(WhereCanonical, ReparsesToTheSameCanonical) {
  const std::vector<std::string> inputs = {
      "i = 7 and t = 'it''s'",
      "b = 9223372036854775807 or b = -9223372036854775808",
      "n = 1.50 and n <> 5::numeric and n > -0.5",
      "f = 'NaN' or f = 'Infinity' or f = 1e300::float8 or r = 0.1::float4",
      "ia @> '{1,2}' and ta && ARRAY['a', 'b c', null]",
      "i = any($ids) and $p = i",
      "-(-5) = i and -5::int8 = b and (-5)::int8 = b",
      "z = null and null is null",
      "coalesce(z, -1) = -1 and lower(t) || 'x' = upper(t)",
      "ts between '2024-01-01' and '2024-12-31 23:59:59.999999' and d < tz",
      "t not ilike '%x\\%' and t like '_'",
      "\"select\" = 1",
      "ok is not false and not ok is null",
      "i - (2 - 3) * -i % 4 = 1",
  };
  Schema schema = TestSchema();
  schema.push_back({"select", {TypeId::kInt4}});
  for (const std::string& in : inputs) {
    absl::StatusOr<std::unique_ptr<Expr>> e = ParseWhere(in, schema, TestParams());
    ASSERT_TRUE(e.ok()) << in << ": " << e.status();
    const std::string c = Canonical(**e);
    absl::StatusOr<std::unique_ptr<Expr>> again = ParseWhere(c, schema, TestParams());
    ASSERT_TRUE(again.ok()) << c << ": " << again.status();
    EXPECT_EQ(Canonical(**again), c);
    // Same results on the test row.
    absl::StatusOr<Value> v1 = Evaluate(
        **e,
        [] {
          std::vector<Value> row = TestRow();
          row.push_back(Value::Int(1));
          return row;
        }(),
        TestParamValues());
    absl::StatusOr<Value> v2 = Evaluate(
        **again,
        [] {
          std::vector<Value> row = TestRow();
          row.push_back(Value::Int(1));
          return row;
        }(),
        TestParamValues());
    ASSERT_EQ(v1.ok(), v2.ok()) << in;
    if (v1.ok()) {
      EXPECT_EQ(*v1, *v2) << in;
    }
  }
}

TEST(WhereConjuncts, FlattensNestedAnds) {
  absl::StatusOr<std::unique_ptr<Expr>> e = ParseWhere(
      "i = 1 and (t = 'x' and (ok and b > 2)) and (z is null or ok)", TestSchema(), TestParams());
  ASSERT_TRUE(e.ok()) << e.status();
  std::vector<const Expr*> c = Conjuncts(**e);
  ASSERT_EQ(c.size(), 5u);
  EXPECT_EQ(Canonical(*c[0]), "i = 1");
  EXPECT_EQ(Canonical(*c[1]), "t = 'x'");
  EXPECT_EQ(Canonical(*c[2]), "ok");
  EXPECT_EQ(Canonical(*c[3]), "b > 2");
  EXPECT_EQ(Canonical(*c[4]), "z is null or ok");
  absl::StatusOr<std::unique_ptr<Expr>> single = ParseWhere("i = 1 or ok", TestSchema(), {});
  ASSERT_TRUE(single.ok());
  ASSERT_EQ(Conjuncts(**single).size(), 1u);
  EXPECT_EQ(Conjuncts(**single)[0], single->get());
}

TEST(WhereTree, ShapesOfTheTree) {
  absl::StatusOr<std::unique_ptr<Expr>> e =
      ParseWhere("i = $p and t in ('a', 'b') and i = any($ids)", TestSchema(), TestParams());
  ASSERT_TRUE(e.ok()) << e.status();
  const Expr& root = **e;
  ASSERT_EQ(root.kind, Expr::Kind::kOp);
  ASSERT_EQ(root.op, Op::kAnd);
  ASSERT_EQ(root.args.size(), 3u);
  const Expr& eq = *root.args[0];
  EXPECT_EQ(eq.op, Op::kEq);
  EXPECT_EQ(eq.position, 2);
  EXPECT_EQ(eq.args[0]->kind, Expr::Kind::kColumn);
  EXPECT_EQ(eq.args[0]->column, 0);
  EXPECT_EQ(eq.args[1]->kind, Expr::Kind::kParam);
  EXPECT_EQ(eq.args[1]->name, "p");
  const Expr& in = *root.args[1];
  EXPECT_EQ(in.op, Op::kIn);
  ASSERT_EQ(in.args.size(), 3u);
  EXPECT_EQ(in.args[1]->literal, Value::String(ValueKind::kText, "a"));
  EXPECT_EQ(in.args[1]->type, SqlType{TypeId::kText});
  EXPECT_EQ(root.args[2]->op, Op::kEqAny);
  EXPECT_EQ(root.args[2]->args[1]->type, (SqlType{TypeId::kInt4, true}));
  std::unique_ptr<Expr> copy = root.Clone();
  EXPECT_EQ(Canonical(*copy), Canonical(root));
  // A literal coerced to the column's type holds a value of that type.
  absl::StatusOr<std::unique_ptr<Expr>> ts = ParseWhere("ts = '2024-01-01'", TestSchema(), {});
  ASSERT_TRUE(ts.ok());
  EXPECT_EQ((*ts)->args[1]->literal, Value::Timestamp(1704067200000000));
}

TEST(WhereBind, ReplacesParamsWithLiterals) {
  absl::StatusOr<std::unique_ptr<Expr>> e =
      ParseWhere("i = $p and i = any($ids)", TestSchema(), TestParams());
  ASSERT_TRUE(e.ok());
  absl::StatusOr<std::unique_ptr<Expr>> bound = Bind(**e, TestParamValues());
  ASSERT_TRUE(bound.ok()) << bound.status();
  EXPECT_EQ(Canonical(**bound), "i = 7 and i = any('{7,8}'::int4[])");
  EXPECT_EQ((*bound)->args[0]->args[1]->kind, Expr::Kind::kLiteral);
  absl::StatusOr<bool> m = Matches(**bound, TestRow());
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(*m);

  absl::StatusOr<std::unique_ptr<Expr>> missing = Bind(**e, {{"p", Value::Int(1)}});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "no value for parameter $ids");
  absl::StatusOr<std::unique_ptr<Expr>> wrong =
      Bind(**e, {{"p", Value::String(ValueKind::kText, "7")}, {"ids", Value::Null()}});
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().message(), "parameter $p is int4 but its value is text");
  absl::StatusOr<std::unique_ptr<Expr>> range =
      Bind(**e, {{"p", Value::Int(1LL << 40)}, {"ids", Value::Null()}});
  ASSERT_FALSE(range.ok());
  EXPECT_EQ(range.status().message(), "parameter $p: integer out of range");
  absl::StatusOr<std::unique_ptr<Expr>> null_ok =
      Bind(**e, {{"p", Value::Null()}, {"ids", Value::Null()}});
  ASSERT_TRUE(null_ok.ok());
  absl::StatusOr<Value> v = Evaluate(**null_ok, TestRow());
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->is_null());
}

// Postgres casts numeric to float through float4in / float8in, which reject a non-zero value that
// underflows to zero (found by the differential test: 5e-324::numeric::float4).
TEST(WhereEvaluate, NumericToFloatUnderflowIsAnError) {
  auto tiny4 = ParseWhere("(n * 1e-60)::float4 IS NULL", TestSchema(), {});
  ASSERT_TRUE(tiny4.ok()) << tiny4.status();
  absl::StatusOr<bool> r4 = Matches(**tiny4, TestRow());
  ASSERT_FALSE(r4.ok());
  EXPECT_THAT(std::string(r4.status().message()),
              ::testing::HasSubstr("out of range for type real"));
  // A value float4 can still hold as a subnormal is fine.
  auto small4 = ParseWhere("(n * 1e-40)::float4 > 0", TestSchema(), {});
  ASSERT_TRUE(small4.ok()) << small4.status();
  EXPECT_TRUE(*Matches(**small4, TestRow()));
  auto tiny8 = ParseWhere("(n * 1e-400)::float8 IS NULL", TestSchema(), {});
  ASSERT_TRUE(tiny8.ok()) << tiny8.status();
  absl::StatusOr<bool> r8 = Matches(**tiny8, TestRow());
  ASSERT_FALSE(r8.ok());
  EXPECT_THAT(std::string(r8.status().message()),
              ::testing::HasSubstr("out of range for type double precision"));
  auto zero = ParseWhere("(n * 0)::float4 = 0", TestSchema(), {});
  ASSERT_TRUE(zero.ok());
  EXPECT_TRUE(*Matches(**zero, TestRow()));
}

TEST(WhereEvaluate, MatchesAndRowErrors) {
  absl::StatusOr<std::unique_ptr<Expr>> e = ParseWhere("z = 1 or i = 7", TestSchema(), {});
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(*Matches(**e, TestRow()));
  absl::StatusOr<std::unique_ptr<Expr>> null_result = ParseWhere("z = 1", TestSchema(), {});
  ASSERT_TRUE(null_result.ok());
  EXPECT_FALSE(*Matches(**null_result, TestRow()));  // NULL does not match
  std::vector<Value> row = TestRow();
  row[14] = Value::Unchanged();
  absl::StatusOr<bool> unchanged = Matches(**null_result, row);
  ASSERT_FALSE(unchanged.ok());
  EXPECT_EQ(unchanged.status().message(), "column \"z\" is an unchanged TOAST value");
  row[14] = Value::String(ValueKind::kText, "1");
  absl::StatusOr<bool> wrong_kind = Matches(**null_result, row);
  ASSERT_FALSE(wrong_kind.ok());
  EXPECT_EQ(wrong_kind.status().message(), "column \"z\" is int4 but its value is text");
  absl::StatusOr<bool> short_row = Matches(**null_result, {Value::Int(1)});
  EXPECT_FALSE(short_row.ok());
  absl::StatusOr<std::unique_ptr<Expr>> p = ParseWhere("i = $p", TestSchema(), TestParams());
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(*Matches(**p, TestRow(), TestParamValues()));
  absl::StatusOr<bool> no_param = Matches(**p, TestRow());
  ASSERT_FALSE(no_param.ok());
  EXPECT_EQ(no_param.status().message(), "no value for parameter $p");
  absl::StatusOr<bool> wrong_param =
      Matches(**p, TestRow(), {{"p", Value::String(ValueKind::kText, "7")}});
  ASSERT_FALSE(wrong_param.ok());
  EXPECT_EQ(wrong_param.status().message(), "parameter $p is int4 but its value is text");
  absl::StatusOr<std::unique_ptr<Expr>> div = ParseWhere("i / 0 = 1", TestSchema(), {});
  ASSERT_TRUE(div.ok());
  absl::StatusOr<bool> div_result = Matches(**div, TestRow());
  ASSERT_FALSE(div_result.ok());
  EXPECT_EQ(div_result.status().message(), "division by zero");
  absl::StatusOr<std::unique_ptr<Expr>> ovf = ParseWhere("i * 2147483647 > 0", TestSchema(), {});
  ASSERT_TRUE(ovf.ok());
  absl::StatusOr<bool> ovf_result = Matches(**ovf, TestRow());
  ASSERT_FALSE(ovf_result.ok());
  EXPECT_EQ(ovf_result.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ovf_result.status().message(), "integer out of range");
}

TEST(WhereEvaluate, AndOrShortCircuitLeftToRight) {
  EXPECT_EQ(EvalText("false and 1/0 = 1"), "false");
  EXPECT_EQ(EvalText("true or 1/0 = 1"), "true");
  EXPECT_EQ(EvalText("null and 1/0 = 1"), "ERROR: division by zero");
  EXPECT_EQ(EvalText("i between 8 and 1/0"), "false");
}

TEST(WhereEvaluate, ColumnsOfEveryKind) {
  Schema schema = {
      {"j", {TypeId::kJsonb}}, {"by", {TypeId::kBytea}}, {"da", {TypeId::kDate, true}}};
  std::vector<Value> row = {Value::String(ValueKind::kJson, "{\"a\": 1}"),
                            Value::String(ValueKind::kBytes, std::string("\x01\xff", 2)),
                            Value::String(ValueKind::kArray, "{2024-01-01,NULL}")};
  auto eval = [&](const std::string& text) -> std::string {
    absl::StatusOr<std::unique_ptr<Expr>> e = ParseWhere(text, schema, {});
    if (!e.ok()) return "ERROR: " + std::string(e.status().message());
    absl::StatusOr<Value> v = Evaluate(**e, row);
    if (!v.ok()) return "ERROR: " + std::string(v.status().message());
    return v->DebugString();
  };
  EXPECT_EQ(eval("j::text = '{\"a\": 1}'"), "true");
  EXPECT_EQ(eval("j < j"), "ERROR: operator does not exist: jsonb < jsonb (position 2)");
  EXPECT_EQ(eval("by = '\\x01ff'"), "true");
  EXPECT_EQ(eval("by::text = '\\x01ff'"), "true");
  EXPECT_EQ(eval("by < '\\x02'"), "true");
  EXPECT_EQ(eval("'2024-01-01' = any(da)"), "true");
  EXPECT_EQ(eval("da @> '{2024-01-01}'"), "true");
  EXPECT_EQ(eval("da::text = '{2024-01-01,NULL}'"), "true");
}

TEST(WhereTypes, NamesAndOids) {
  EXPECT_EQ((SqlType{TypeId::kInt4}).ToString(), "int4");
  EXPECT_EQ((SqlType{TypeId::kText, true}).ToString(), "text[]");
  EXPECT_EQ(SqlTypeFromOid(pgtype::kVarchar), (SqlType{TypeId::kText}));
  EXPECT_EQ(SqlTypeFromOid(1007), (SqlType{TypeId::kInt4, true}));
  EXPECT_EQ(SqlTypeFromOid(pgtype::kTimestampTz), (SqlType{TypeId::kTimestampTz}));
  EXPECT_EQ(SqlTypeFromOid(pgtype::kJson), std::nullopt);
  EXPECT_EQ(SqlTypeFromOid(600), std::nullopt);  // point
  EXPECT_EQ(ParseTypeName("INTEGER"), (SqlType{TypeId::kInt4}));
  EXPECT_EQ(ParseTypeName("double  precision"), (SqlType{TypeId::kFloat8}));
  EXPECT_EQ(ParseTypeName("timestamp with time zone"), (SqlType{TypeId::kTimestampTz}));
  EXPECT_EQ(ParseTypeName("bigint[]"), (SqlType{TypeId::kInt8, true}));
  EXPECT_EQ(ParseTypeName("uuid"), (SqlType{TypeId::kUuid}));
  EXPECT_EQ(ParseTypeName("money"), std::nullopt);
  EXPECT_EQ(OpName(Op::kContainedBy), "<@");
}

TEST(WhereDecimal, PostgresDivisionScaleAndRounding) {
  auto div = [](const std::string& a, const std::string& b) {
    absl::StatusOr<Decimal> r = Decimal::Div(*Decimal::Parse(a), *Decimal::Parse(b));
    return r.ok() ? r->ToString() : std::string(r.status().message());
  };
  // Checked against PostgreSQL 15.
  EXPECT_EQ(div("1", "3"), "0.33333333333333333333");
  EXPECT_EQ(div("2", "3"), "0.66666666666666666667");
  EXPECT_EQ(div("-2", "3"), "-0.66666666666666666667");
  EXPECT_EQ(div("10", "4"), "2.5000000000000000");
  EXPECT_EQ(div("1", "8"), "0.12500000000000000000");
  EXPECT_EQ(div("100000", "3"), "33333.333333333333");
  EXPECT_EQ(div("1", "0"), "division by zero");
  EXPECT_EQ(Decimal::Parse("1.5e3")->ToString(), "1500");
  EXPECT_EQ(Decimal::Parse("1.50")->ToString(), "1.50");
  EXPECT_EQ(Decimal::Parse("-0.00")->ToString(), "0.00");
  EXPECT_EQ(Decimal::Parse(".5")->ToString(), "0.5");
  EXPECT_FALSE(Decimal::Parse("1.2.3").ok());
  EXPECT_FALSE(Decimal::Parse("e5").ok());
  int64_t v = 0;
  ASSERT_TRUE(Decimal::Parse("2.5")->ToInt64(&v));
  EXPECT_EQ(v, 3);
  ASSERT_TRUE(Decimal::Parse("-2.5")->ToInt64(&v));
  EXPECT_EQ(v, -3);
  EXPECT_FALSE(Decimal::Parse("9223372036854775808")->ToInt64(&v));
  ASSERT_TRUE(Decimal::Parse("-9223372036854775808")->ToInt64(&v));
  EXPECT_EQ(v, INT64_MIN);
}

}  // namespace
}  // namespace shapebridge::shapes
