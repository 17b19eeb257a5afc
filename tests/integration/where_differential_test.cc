// The WHERE language against Postgres itself: random (expression, row) pairs over every operator
// and type of the language, NULLs and errors included. For each pair the evaluator's result must be
// what the test Postgres returns for the same expression on the same row.
//
// The expressions are well-typed most of the time and deliberately ill-typed some of the time;
// literals and row values include the edge cases (integer limits, NaN, -0, infinities, leap days,
// fractional seconds, '%' and '_' and '\' in LIKE patterns, empty strings). Row values go through
// Postgres first, so the evaluator sees them as replication would deliver them (ParseTextValue of
// Postgres's output). Reproduce a failure
// with SHAPEBRIDGE_DIFF_SEED=<seed printed by the test>; SHAPEBRIDGE_DIFF_CASES sets the count,
// SHAPEBRIDGE_DIFF_VERBOSE=1 prints every case with Postgres's answer, SHAPEBRIDGE_DIFF_PRINT=n
// prints the first n mismatches (60 by default).

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/value.h"
#include "gtest/gtest.h"
#include "shapes/expr.h"
#include "tests/harness/test_postgres.h"

namespace shapebridge::shapes {
namespace {

using ::shapebridge::testing::ConnectOrDie;
using ::shapebridge::testing::ExecOrDie;
using ::shapebridge::testing::TestPostgres;

// The types the generator works with: every scalar type of the language and two array types.
enum class T : uint8_t {
  kBool,
  kInt2,
  kInt4,
  kInt8,
  kFloat4,
  kFloat8,
  kNumeric,
  kText,
  kUuid,
  kTimestamp,
  kTimestampTz,
  kDate,
  kJsonb,
  kBytea,
  kInt4Array,
  kTextArray,
};
constexpr int kTypeCount = 16;

struct TypeInfo {
  const char* sql;  // as written in a cast
  uint32_t oid;
  SqlType sql_type;
};

const TypeInfo& Info(T t) {
  static const std::array<TypeInfo, kTypeCount> kInfo = {{
      {"bool", pgtype::kBool, {TypeId::kBool, false}},
      {"int2", pgtype::kInt2, {TypeId::kInt2, false}},
      {"int4", pgtype::kInt4, {TypeId::kInt4, false}},
      {"int8", pgtype::kInt8, {TypeId::kInt8, false}},
      {"float4", pgtype::kFloat4, {TypeId::kFloat4, false}},
      {"float8", pgtype::kFloat8, {TypeId::kFloat8, false}},
      {"numeric", pgtype::kNumeric, {TypeId::kNumeric, false}},
      {"text", pgtype::kText, {TypeId::kText, false}},
      {"uuid", pgtype::kUuid, {TypeId::kUuid, false}},
      {"timestamp", pgtype::kTimestamp, {TypeId::kTimestamp, false}},
      {"timestamptz", pgtype::kTimestampTz, {TypeId::kTimestampTz, false}},
      {"date", pgtype::kDate, {TypeId::kDate, false}},
      {"jsonb", pgtype::kJsonb, {TypeId::kJsonb, false}},
      {"bytea", pgtype::kBytea, {TypeId::kBytea, false}},
      {"int4[]", 1007, {TypeId::kInt4, true}},
      {"text[]", 1009, {TypeId::kText, true}},
  }};
  return kInfo[static_cast<int>(t)];
}

// The type OID Postgres reports for a value of `type` (0 when there is none to compare).
uint32_t OidOf(const SqlType& type) {
  static const std::map<TypeId, std::pair<uint32_t, uint32_t>> kOids = {
      {TypeId::kBool, {16, 1000}},          {TypeId::kInt2, {21, 1005}},
      {TypeId::kInt4, {23, 1007}},          {TypeId::kInt8, {20, 1016}},
      {TypeId::kFloat4, {700, 1021}},       {TypeId::kFloat8, {701, 1022}},
      {TypeId::kNumeric, {1700, 1231}},     {TypeId::kText, {25, 1009}},
      {TypeId::kUuid, {2950, 2951}},        {TypeId::kTimestamp, {1114, 1115}},
      {TypeId::kTimestampTz, {1184, 1185}}, {TypeId::kDate, {1082, 1182}},
      {TypeId::kJsonb, {3802, 3807}},       {TypeId::kBytea, {17, 1001}},
  };
  const auto it = kOids.find(type.id);
  if (it == kOids.end()) return 0;
  return type.array ? it->second.second : it->second.first;
}

bool IsNumericFamily(T t) {
  return t == T::kInt2 || t == T::kInt4 || t == T::kInt8 || t == T::kFloat4 || t == T::kFloat8 ||
         t == T::kNumeric;
}
bool IsDateTime(T t) { return t == T::kDate || t == T::kTimestamp || t == T::kTimestampTz; }
// Types Postgres compares with each other through implicit casts.
bool Comparable(T a, T b) {
  return a == b || (IsNumericFamily(a) && IsNumericFamily(b)) || (IsDateTime(a) && IsDateTime(b));
}

std::string Quote(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

// The table: one or two columns of every type.
struct ColumnDef {
  const char* name;
  T type;
};
constexpr std::array<ColumnDef, 20> kColumns = {{
    {"b1", T::kBool},    {"b2", T::kBool},       {"s1", T::kInt2},         {"i1", T::kInt4},
    {"i2", T::kInt4},    {"l1", T::kInt8},       {"r1", T::kFloat4},       {"f1", T::kFloat8},
    {"n1", T::kNumeric}, {"n2", T::kNumeric},    {"t1", T::kText},         {"t2", T::kText},
    {"u1", T::kUuid},    {"ts1", T::kTimestamp}, {"tz1", T::kTimestampTz}, {"d1", T::kDate},
    {"j1", T::kJsonb},   {"y1", T::kBytea},      {"ia", T::kInt4Array},    {"ta", T::kTextArray},
}};
// The parameters, declared with these types.
constexpr std::array<ColumnDef, 10> kParams = {{
    {"pb", T::kBool},
    {"pi", T::kInt4},
    {"pl", T::kInt8},
    {"pn", T::kNumeric},
    {"pf", T::kFloat8},
    {"pt", T::kText},
    {"pd", T::kDate},
    {"ptz", T::kTimestampTz},
    {"pai", T::kInt4Array},
    {"pat", T::kTextArray},
}};

// Valid input literals for row and parameter values (Postgres canonicalizes them).
const std::vector<std::string>& ValuePool(T t) {
  static const std::map<T, std::vector<std::string>> kPools = {
      {T::kBool, {"true", "false"}},
      {T::kInt2, {"0", "1", "-1", "2", "7", "-7", "100", "181", "32767", "-32768", "255"}},
      {T::kInt4,
       {"0", "1", "-1", "2", "3", "7", "-7", "10", "100", "46341", "65536", "2147483647",
        "-2147483648", "1000000", "-65536"}},
      {T::kInt8,
       {"0", "1", "-1", "2", "-7", "100", "3037000500", "4294967296", "2147483648",
        "9223372036854775807", "-9223372036854775808", "-2147483649"}},
      {T::kFloat4,
       {"0", "-0", "1.5", "0.1", "1.1", "-2.5", "1e30", "3.4e38", "NaN", "Infinity", "-Infinity",
        "1e-40", "100", "16777217", "0.5"}},
      {T::kFloat8,
       {"0", "-0", "1.5", "0.1", "-2.5", "1e308", "1.7976931348623157e308", "NaN", "Infinity",
        "-Infinity", "5e-324", "0.3333333333333333", "100", "2147483647.5", "-0.5", "2.5",
        "9007199254740993"}},
      {T::kNumeric,
       {"0", "1", "-1", "0.5", "-0.5", "2.5", "123.456", "12345678901234567890.123456789",
        "0.000001", "NaN", "Infinity", "-Infinity", "100.00", "3", "-7", "1e-20", "2147483647",
        "99999999999999999999"}},
      {T::kText, {"",           "a",    "abc", "ABC", "Abc",  "a%b", "a_c", "%",
                  "_",          "it's", " x ", "z",   "123",  "1.5", "t",   "false",
                  "2024-02-29", "a\\b", "é",   "ÄbC", "abc%", "b",   "-5",  " 42 "}},
      {T::kUuid,
       {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12",
        "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"}},
      {T::kTimestamp,
       {"2024-02-29 12:34:56.789012", "2023-12-31 23:59:59.999999", "1970-01-01 00:00:00",
        "infinity", "-infinity", "2000-01-01", "1999-12-31 23:59:59.5", "2024-03-01 00:00:00",
        "2024-02-28 23:59:59", "1900-02-28 01:02:03.000001"}},
      {T::kTimestampTz,
       {"2024-02-29 12:34:56.789012+00", "2024-02-29 12:34:56+05:30",
        "2023-12-31 23:59:59.999999-08", "1970-01-01 00:00:00+00", "infinity", "-infinity",
        "2000-01-01 00:00:00+00", "2024-03-01 00:00:00+00", "2024-02-29 00:00:00+00"}},
      {T::kDate,
       {"2024-02-29", "2023-02-28", "2023-03-01", "2000-02-29", "1900-03-01", "infinity",
        "-infinity", "1970-01-01", "9999-12-31", "2024-03-01", "1999-12-31"}},
      {T::kJsonb,
       {"{}", "[]", "{\"a\": 1}", "[1, 2]", "\"x\"", "null", "1.5", "true", "{\"b\": [1, null]}"}},
      {T::kBytea, {"\\x", "\\x00", "\\xdeadbeef", "\\x61", "\\x6162"}},
      {T::kInt4Array,
       {"{}", "{1,2,3}", "{1,NULL}", "{NULL}", "{-1,0,2147483647}", "{2,3}", "{7}", "{1,1}"}},
      {T::kTextArray,
       {"{}", "{a,b}", "{\"a b\",c}", "{NULL,a}", "{\"\"}", "{abc,ABC}", "{b}", "{%,_}"}},
  };
  return kPools.at(t);
}

// One row: the columns' and parameters' values, as Postgres prints them (nullopt for NULL).
struct Row {
  std::vector<std::optional<std::string>> columns;
  std::vector<std::optional<std::string>> params;
  std::vector<Value> column_values;
  ParamValues param_values;
  std::string values_sql;  // the VALUES row, every value with an explicit cast
};

std::string TypedLiteral(const std::optional<std::string>& text, T t) {
  return (text ? Quote(*text) : std::string("NULL")) + "::" + Info(t).sql;
}

// A generated expression in three renderings: for ParseWhere (parameters as $name), for Postgres
// (parameters as typed literals) and for Postgres with every literal hidden in a scalar subquery,
// which Postgres cannot fold at plan time. Postgres folds constant subexpressions while planning
// and so raises their errors even where evaluation would never reach them (`false AND 1/0 = 1`),
// or skips errors that evaluation would raise (`1/c = 1 AND false`); the hidden rendering gives
// the evaluation-time semantics that the evaluator implements.
struct Node {
  std::string ours;
  std::string pg;
  std::string hidden;
  // Built only from constructs the language lists as supported: ParseWhere may reject an
  // expression Postgres accepts only when this is false.
  bool supported = true;
  // An untyped NULL, whose type comes from the context.
  bool untyped_null = false;
};

class Generator {
 public:
  Generator(uint64_t seed, const Row& row) : rng_(seed), row_(row) {}

  // A boolean expression most of the time, one of any type otherwise.
  std::pair<Node, T> Top() {
    const T t = Uniform(10) < 6 ? T::kBool : static_cast<T>(Uniform(kTypeCount));
    return {Gen(t, 0), t};
  }

 private:
  int Uniform(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  template <typename V>
  const V& Pick(const std::vector<V>& v) {
    return v[Uniform(static_cast<int>(v.size()))];
  }
  const char* Kw(const char* upper, const char* lower) { return Chance(0.8) ? upper : lower; }

  // An operand type of the same family as `t` most of the time, any type sometimes (ill-typed).
  T Related(T t) {
    if (Chance(0.05)) return static_cast<T>(Uniform(kTypeCount));
    if (IsNumericFamily(t) && Chance(0.3)) {
      static const std::vector<T> kNum = {T::kInt2,   T::kInt4,   T::kInt8,
                                          T::kFloat4, T::kFloat8, T::kNumeric};
      return Pick(kNum);
    }
    if (IsDateTime(t) && Chance(0.3)) {
      static const std::vector<T> kDt = {T::kDate, T::kTimestamp, T::kTimestampTz};
      return Pick(kDt);
    }
    return t;
  }
  // Any type, scalars more often.
  T AnyType() {
    if (Chance(0.1)) return Chance(0.5) ? T::kInt4Array : T::kTextArray;
    return static_cast<T>(Uniform(14));
  }

  static Node Leaf(std::string text) { return Node{text, text, text, true}; }
  static Node Leaf(std::string text, std::string hidden_type) {
    return Node{text, text, "(SELECT " + text + "::" + hidden_type + ")", true};
  }
  // A self-typed literal (its type does not depend on the context).
  static Node Literal(std::string text) { return Node{text, text, "(SELECT " + text + ")", true}; }

  static Node Unlisted(Node node) {
    node.supported = false;
    return node;
  }

  template <typename F>
  static Node Combine(const std::vector<Node>& args, F render, bool supported = true) {
    Node out;
    std::vector<std::string> ours, pg, hidden;
    out.supported = supported;
    for (const Node& a : args) {
      ours.push_back(a.ours);
      pg.push_back(a.pg);
      hidden.push_back(a.hidden);
      out.supported = out.supported && a.supported;
    }
    out.ours = render(ours);
    out.pg = render(pg);
    out.hidden = render(hidden);
    return out;
  }
  static Node Unary(const Node& a, const std::string& prefix, const std::string& suffix,
                    bool supported = true) {
    return Combine(
        {a}, [&](const std::vector<std::string>& s) { return prefix + s[0] + suffix; }, supported);
  }
  static Node Binary(const Node& a, const std::string& op, const Node& b, bool supported = true) {
    return Combine(
        {a, b},
        [&](const std::vector<std::string>& s) { return "(" + s[0] + " " + op + " " + s[1] + ")"; },
        supported);
  }
  static Node List(const std::string& prefix, const std::vector<Node>& args,
                   const std::string& separator, const std::string& suffix, bool supported = true) {
    return Combine(
        args,
        [&](const std::vector<std::string>& s) {
          std::string out = prefix;
          for (size_t i = 0; i < s.size(); ++i) out += (i > 0 ? separator : "") + s[i];
          return out + suffix;
        },
        supported);
  }

  Node Column(T t) {
    std::vector<const char*> names;
    for (const ColumnDef& c : kColumns) {
      if (c.type == t) names.push_back(c.name);
    }
    return Leaf(Pick(names));
  }
  std::optional<Node> Param(T t) {
    for (size_t i = 0; i < kParams.size(); ++i) {
      if (kParams[i].type != t) continue;
      const std::string literal = TypedLiteral(row_.params[i], t);
      return HiddenArray(
          Node{std::string("$") + kParams[i].name, literal, "(SELECT " + literal + ")", true}, t);
    }
    return std::nullopt;
  }
  // `x = ANY((SELECT ...))` is a subquery comparison, not an array one: a hidden array literal
  // gets a cast after its subquery.
  static Node HiddenArray(Node node, T t) {
    if ((t == T::kInt4Array || t == T::kTextArray) && node.hidden.starts_with("(SELECT ")) {
      node.hidden += std::string("::") + Info(t).sql;
    }
    return node;
  }
  Node Null(T t) {
    if (Chance(0.5)) {
      Node node = Leaf(Kw("NULL", "null"), Info(t).sql);
      node.untyped_null = true;
      return node;
    }
    return Literal(std::string("NULL::") + Info(t).sql);
  }

  Node Const(T t) {
    switch (t) {
      case T::kBool:
        return Literal(Pick(std::vector<std::string>{"true", "false", "TRUE", "'t'::bool"}));
      case T::kInt2:
        return Literal(Pick(std::vector<std::string>{"'5'::int2", "32767::int2", "'-32768'::int2",
                                                     "0::int2", "'-1'::int2", "(181)::smallint"}));
      case T::kInt4:
        if (Chance(0.03)) return Literal("-2147483648");
        return Literal(Pick(std::vector<std::string>{"0", "1", "-1", "2", "3", "7", "-7", "10",
                                                     "100", "2147483647", "46341", "65536", "0",
                                                     "1", "2", "'-2147483648'::int4"}));
      case T::kInt8:
        return Literal(Pick(std::vector<std::string>{
            "2147483648", "9223372036854775807", "'-9223372036854775808'::int8", "3037000500",
            "4294967296", "'1'::int8", "0::bigint", "(-3)::int8"}));
      case T::kFloat4:
        return Literal(
            Pick(std::vector<std::string>{"'1.1'::float4", "'3.4e38'::float4", "'0.1'::real",
                                          "'NaN'::float4", "'-0'::float4", "'2.5'::float4"}));
      case T::kFloat8:
        return Literal(Pick(std::vector<std::string>{
            "'1.5'::float8", "'0.1'::float8", "'NaN'::float8", "'Infinity'::float8", "'-0'::float8",
            "'1e308'::float8", "'-2.5'::float8", "0.5::float8", "'3'::double precision",
            "'1e-300'::float8"}));
      case T::kNumeric:
        return Literal(Pick(std::vector<std::string>{
            "1.5", "0.1", "0.5", "-2.5", "100.00", "12345678901234567890.123456789", "1e-5",
            "'NaN'::numeric", "0.000000001", "9223372036854775808", "3.0", "'-7'::numeric", "2.50",
            "0.333"}));
      case T::kText:
        if (Chance(0.6)) {
          const std::string s = Quote(Pick(std::vector<std::string>{
              "abc",  "",           "ABC",  "a%", "%b%", "_",    "a_c", "it's", "%",  "123", "1.5",
              "true", "2024-02-29", " 42 ", "é",  "Abc", "a\\%", "\\",  "A%",   "%B", "__",  "b"}));
          return Chance(0.5) ? Leaf(s, "text") : Literal(s + "::text");
        }
        return Leaf(Quote(Pick(ValuePool(T::kText))), "text");
      case T::kUuid:
        return Literal(Pick(std::vector<std::string>{
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
            "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12'::uuid",
            "'{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}'::uuid",
            "'00000000-0000-0000-0000-000000000000'::uuid", "'xyz'::uuid"}));
      case T::kTimestamp:
        return Literal(Pick(std::vector<std::string>{
            "'2024-02-29 12:34:56.789'::timestamp", "timestamp '2024-02-29 23:59:59.999999'",
            "'2024-02-29T01:02:03'::timestamp", "'2000-01-01'::timestamp", "'infinity'::timestamp",
            "'2024-02-29 12:00:00.1234567'::timestamp", "'2023-02-29 00:00:00'::timestamp",
            "'1970-01-01 00:00:00'::timestamp"}));
      case T::kTimestampTz:
        return Literal(Pick(std::vector<std::string>{
            "'2024-02-29 12:34:56.789+00'::timestamptz", "'2024-02-29 12:34:56+05:30'::timestamptz",
            "timestamptz '2024-01-01 00:00:00+00'", "'2024-06-30 23:59:59.999999-07'::timestamptz",
            "'infinity'::timestamptz", "'-infinity'::timestamptz",
            "'2024-02-29 00:00:00'::timestamptz"}));
      case T::kDate:
        return Literal(Pick(std::vector<std::string>{
            "'2024-02-29'::date", "date '2000-02-29'", "'2023-02-29'::date", "'infinity'::date",
            "'1970-01-01'::date", "'2024-03-01'::date", "'2023-12-31'::date",
            "'5874897-12-31'::date"}));
      case T::kJsonb:
        // jsonb and bytea literals are not listed in the language.
        return Unlisted(Literal(
            Pick(std::vector<std::string>{"'{\"a\": 1}'::jsonb", "'[1, 2]'::jsonb", "'null'::jsonb",
                                          "'\"x\"'::jsonb", "'{}'::jsonb", "'1.5'::jsonb"})));
      case T::kBytea:
        return Unlisted(Literal(Pick(std::vector<std::string>{"'\\x00ff'::bytea", "'\\x'::bytea",
                                                              "'abc'::bytea", "'\\x61'::bytea"})));
      case T::kInt4Array: {
        // Array literals are not listed in the language.
        return Unlisted(Literal(Pick(std::vector<std::string>{
            "'{1,2,3}'::int4[]", "'{}'::int4[]", "'{NULL,1}'::int4[]", "'{7}'::int4[]"})));
      }
      case T::kTextArray: {
        return Unlisted(Literal(Pick(
            std::vector<std::string>{"'{a,b}'::text[]", "'{}'::text[]", "'{NULL,b}'::text[]"})));
      }
    }
    return Null(t);
  }

  Node LeafOf(T t) {
    const int k = Uniform(10);
    if (k < 4) return Column(t);
    if (k < 6) {
      if (auto p = Param(t)) return *p;
      return Column(t);
    }
    if (k < 7) return HiddenArray(Null(t), t);
    return HiddenArray(Const(t), t);
  }

  Node Cast(T to, int depth) {
    // The source: same family, text, or anything.
    const int k = Uniform(10);
    T from = k < 4 ? Related(to) : k < 7 ? T::kText : AnyType();
    if (to == T::kText && Chance(0.5)) from = AnyType();
    bool supported = from == to || (IsNumericFamily(from) && IsNumericFamily(to)) ||
                     (IsDateTime(from) && IsDateTime(to)) ||
                     (from == T::kText && to != T::kInt4Array && to != T::kTextArray &&
                      to != T::kJsonb && to != T::kBytea) ||
                     (to == T::kText && from != T::kInt4Array && from != T::kTextArray &&
                      from != T::kJsonb && from != T::kBytea) ||
                     (from == T::kBool && to == T::kInt4) || (from == T::kInt4 && to == T::kBool);
    Node arg = (from == T::kText && Chance(0.5)) ? Leaf(Quote(Pick(ValuePool(T::kText))), "text")
                                                 : Gen(from, depth + 1);
    std::string type = Info(to).sql;
    if (to == T::kInt4 && Chance(0.2)) type = "integer";
    if (to == T::kFloat8 && Chance(0.2)) type = "double precision";
    if (to == T::kTimestampTz && Chance(0.2)) type = "timestamp with time zone";
    if (to == T::kBool && Chance(0.2)) type = "boolean";
    if (Chance(0.2)) {
      // CAST(x AS type) is Postgres's other spelling; the language lists only ::type.
      return Unary(arg, std::string(Kw("CAST(", "cast(")), " AS " + type + ")", false);
    }
    return Unary(arg, "(", ")::" + type, supported);
  }

  Node Coalesce(T t, int depth) {
    std::vector<Node> args;
    const int n = 1 + Uniform(3);
    for (int i = 0; i < n; ++i)
      args.push_back(i == 0 || Chance(0.9) ? Gen(t, depth + 1) : Gen(Related(t), depth + 1));
    // coalesce(NULL, ...) of untyped NULLs only is text in Postgres, whatever the context.
    const bool typed =
        std::any_of(args.begin(), args.end(), [](const Node& a) { return !a.untyped_null; });
    return List(std::string(Kw("coalesce(", "COALESCE(")), args, ", ", ")", typed);
  }

  Node Arith(T t, int depth) {
    if (Chance(0.15)) return Unary(Gen(t, depth + 1), "(- ", ")");
    std::vector<std::string> ops = {"+", "-", "*", "/"};
    if (t != T::kFloat4 && t != T::kFloat8) ops.push_back("%");
    const std::string op = Pick(ops);
    T a = t, b = t;
    if (Chance(0.4)) (Chance(0.5) ? a : b) = Related(t);
    return Binary(Gen(a, depth + 1), op, Gen(b, depth + 1));
  }

  Node Compare(int depth) {
    const T a = AnyType();
    const T b = Related(a);
    const std::string op = Pick(std::vector<std::string>{"=", "<>", "!=", "<", "<=", ">", ">="});
    // Comparing jsonb, bytea and arrays is not listed in the language.
    const bool listed = Comparable(a, b) && a != T::kJsonb && a != T::kBytea &&
                        a != T::kInt4Array && a != T::kTextArray;
    Node left = Gen(a, depth + 1);
    Node right = (a == T::kText && Chance(0.3)) ? Leaf(Quote(Pick(ValuePool(T::kText))), "text")
                                                : Gen(b, depth + 1);
    if (Chance(0.1) && a != T::kText && a != T::kBool) {
      // An untyped string literal takes the type of the other side.
      right = Leaf(Quote(Pick(ValuePool(a))), Info(a).sql);
    }
    // An untyped NULL takes the type of the other side.
    if (right.untyped_null) right.hidden = std::string("(SELECT NULL::") + Info(a).sql + ")";
    if (left.untyped_null) left.hidden = std::string("(SELECT NULL::") + Info(b).sql + ")";
    return Binary(left, op, right, listed);
  }

  Node Bool(int depth) {
    const int k = Uniform(100);
    if (k < 18) return Compare(depth);
    if (k < 28) {
      std::vector<Node> args;
      const int n = 2 + (Chance(0.3) ? 1 : 0);
      for (int i = 0; i < n; ++i)
        args.push_back(Gen(Chance(0.97) ? T::kBool : AnyType(), depth + 1));
      return List("(", args, Chance(0.5) ? Kw(" AND ", " and ") : Kw(" OR ", " or "), ")");
    }
    if (k < 32) {
      return Unary(Gen(Chance(0.97) ? T::kBool : AnyType(), depth + 1), Kw("(NOT ", "(not "), ")");
    }
    if (k < 39) {
      const std::string test = Chance(0.5) ? " IS NULL)" : " IS NOT NULL)";
      return Unary(Gen(AnyType(), depth + 1), "(", test);
    }
    if (k < 46) {
      const std::string test = Pick(
          std::vector<std::string>{" IS TRUE)", " IS NOT TRUE)", " IS FALSE)", " IS NOT FALSE)"});
      return Unary(Gen(Chance(0.95) ? T::kBool : AnyType(), depth + 1), "(", test);
    }
    if (k < 54) {
      const T a = Chance(0.5) ? T::kText : AnyType();
      const T b = Related(a);
      const T c = Related(a);
      // Postgres compares a with b and a with c separately, so an untyped a may take two
      // different types; the language needs the three comparable.
      const bool listed = Comparable(a, b) && Comparable(a, c) && Comparable(b, c) &&
                          a != T::kJsonb && a != T::kBytea && a != T::kInt4Array &&
                          a != T::kTextArray;
      const std::string op =
          Chance(0.5) ? Kw(" BETWEEN ", " between ") : Kw(" NOT BETWEEN ", " not between ");
      return Combine(
          {Gen(a, depth + 1), Gen(b, depth + 1), Gen(c, depth + 1)},
          [&](const std::vector<std::string>& s) {
            return "(" + s[0] + op + s[1] + Kw(" AND ", " and ") + s[2] + ")";
          },
          listed);
    }
    if (k < 62) {
      const T a = AnyType();
      bool listed = a != T::kJsonb && a != T::kBytea && a != T::kInt4Array && a != T::kTextArray;
      std::vector<Node> list = {Gen(a, depth + 1)};
      std::vector<T> types = {a};
      const int n = 1 + Uniform(4);
      for (int i = 0; i < n; ++i) {
        types.push_back(Related(a));
        list.push_back(Gen(types.back(), depth + 1));
      }
      // Postgres compares an untyped left side with each item that references a column
      // separately, so it may take several types; the language needs one type for all.
      for (T x : types) {
        for (T y : types) listed = listed && Comparable(x, y);
      }
      const std::string op = Chance(0.5) ? Kw(" IN (", " in (") : Kw(" NOT IN (", " not in (");
      return Combine(
          list,
          [&](const std::vector<std::string>& s) {
            std::string out = "(" + s[0] + op;
            for (size_t i = 1; i < s.size(); ++i) out += (i > 1 ? ", " : "") + s[i];
            return out + "))";
          },
          listed);
    }
    if (k < 70) {
      // = ANY(array): array parameters are listed, array columns are not.
      const bool ints = Chance(0.5);
      const T elem = ints ? Related(T::kInt4) : Related(T::kText);
      const T array_type = ints ? T::kInt4Array : T::kTextArray;
      Node arr = Chance(0.7) ? *Param(array_type) : LeafOf(Chance(0.95) ? array_type : AnyType());
      const bool listed = arr.ours.starts_with("$");
      return Combine(
          {Gen(elem, depth + 1), arr},
          [&](const std::vector<std::string>& s) {
            return "(" + s[0] + " = " + Kw("ANY(", "any(") + s[1] + "))";
          },
          listed);
    }
    if (k < 78) {
      const T a = Chance(0.5) ? T::kInt4Array : T::kTextArray;
      const T b = Chance(0.95) ? a : AnyType();
      const std::string op = Pick(std::vector<std::string>{"@>", "<@", "&&"});
      Node left = Chance(0.8) ? Column(a) : LeafOf(a);
      Node right = Chance(0.85) ? LeafOf(b) : Gen(b, depth + 1);
      return Binary(left, op, right);
    }
    if (k < 88) {
      const std::string op = Pick(
          std::vector<std::string>{"LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE", "like", "not ilike"});
      Node pattern = Chance(0.6)
                         ? Leaf(Quote(Pick(std::vector<std::string>{
                                    "%",     "a%",  "%b%", "_",     "a_c", "%\\%", "\\_%", "A%",
                                    "%C",    "",    "abc", "\\",    "a\\", "%é%",  "__",   "_%_",
                                    "%a%b%", "a%c", "%%",  "\\\\%", "1%",  "t"})),
                                "text")
                         : Gen(T::kText, depth + 1);
      const T left = Chance(0.95) ? T::kText : AnyType();
      // LIKE on text is listed; Postgres also has bytea LIKE.
      return Binary(Gen(left, depth + 1), op, pattern, left == T::kText);
    }
    if (k < 92) return Coalesce(T::kBool, depth);
    if (k < 96) return Cast(T::kBool, depth);
    return LeafOf(T::kBool);
  }

 public:
  Node Gen(T t, int depth) {
    const double leaf_chance = depth == 0 ? 0.05 : 0.25 + 0.2 * depth;
    if (depth >= 4 || Chance(leaf_chance)) return LeafOf(t);
    switch (t) {
      case T::kBool:
        return Bool(depth);
      case T::kInt2:
      case T::kInt4:
      case T::kInt8: {
        const int k = Uniform(10);
        if (k < 5) return Arith(t, depth);
        if (k < 6) return Coalesce(t, depth);
        if (k < 8) return Cast(t, depth);
        if (k < 9 && t == T::kInt4) {
          return Binary(Gen(T::kDate, depth + 1), "-",
                        Gen(Chance(0.95) ? T::kDate : AnyType(), depth + 1));
        }
        return LeafOf(t);
      }
      case T::kFloat4:
      case T::kFloat8:
      case T::kNumeric: {
        const int k = Uniform(10);
        if (k < 5) return Arith(t, depth);
        if (k < 6) return Coalesce(t, depth);
        if (k < 8) return Cast(t, depth);
        return LeafOf(t);
      }
      case T::kText: {
        const int k = Uniform(10);
        if (k < 3) {
          // text || text, text || anynonarray, anynonarray || text.
          T a = T::kText, b = T::kText;
          if (Chance(0.3)) (Chance(0.5) ? a : b) = AnyType();
          // Only text || text is listed; Postgres also concatenates text with any non-array.
          return Binary(Gen(a, depth + 1), "||", Gen(b, depth + 1), a == b);
        }
        if (k < 5) {
          return Unary(Gen(Chance(0.95) ? T::kText : AnyType(), depth + 1),
                       Chance(0.5) ? Kw("lower(", "LOWER(") : Kw("upper(", "UPPER("), ")");
        }
        if (k < 6) return Coalesce(t, depth);
        if (k < 8) return Cast(t, depth);
        return LeafOf(t);
      }
      case T::kDate: {
        const int k = Uniform(10);
        if (k < 4) {
          // date + int4, int4 + date, date - int4.
          Node d = Gen(T::kDate, depth + 1);
          Node n = Gen(Chance(0.9) ? T::kInt4 : AnyType(), depth + 1);
          const int form = Uniform(3);
          if (form == 0) return Binary(d, "+", n);
          if (form == 1) return Binary(n, "+", d);
          return Binary(d, "-", n);
        }
        if (k < 5) return Coalesce(t, depth);
        if (k < 8) return Cast(t, depth);
        return LeafOf(t);
      }
      case T::kTimestamp:
      case T::kTimestampTz:
      case T::kUuid:
      case T::kJsonb:
      case T::kBytea: {
        const int k = Uniform(10);
        if (k < 2) return Coalesce(t, depth);
        if (k < 5) return Cast(t, depth);
        return LeafOf(t);
      }
      case T::kInt4Array:
      case T::kTextArray:
        if (Chance(0.2)) return Coalesce(t, depth);
        return LeafOf(t);
    }
    return LeafOf(t);
  }

 private:
  std::mt19937_64 rng_;
  const Row& row_;
};

// Postgres's answer for one query: a value (text form, nullopt for NULL) with its type, or an
// error with its SQLSTATE.
struct PgAnswer {
  bool ok = false;
  uint32_t oid = 0;
  std::optional<std::string> text;
  std::string sqlstate;
  std::string message;

  std::string ToString() const {
    if (!ok) return "ERROR " + sqlstate + ": " + message;
    return (text ? Quote(*text) : std::string("NULL")) + " (type oid " + std::to_string(oid) + ")";
  }
};

void CountOps(const Expr& expr, std::map<Op, int>& counts) {
  if (expr.kind == Expr::Kind::kOp) ++counts[expr.op];
  for (const auto& arg : expr.args) CountOps(*arg, counts);
}

std::string StatusText(const absl::Status& status) { return status.ToString(); }

// Syntax errors and type errors (class 42) come from parsing; the others (data exceptions, class
// 22, and a few such as "cannot convert NaN to bigint", 0A000) from evaluation.
bool IsParseError(const PgAnswer& answer) {
  return !answer.ok && answer.sqlstate.starts_with("42");
}

// Errors match loosely: both sides fail, and for the two errors the language names (division by
// zero, out of range) the evaluator's message says the same.
bool ErrorsMatch(const PgAnswer& pg, const absl::Status& ours) {
  if (ours.ok()) return false;
  const std::string message(ours.message());
  if (pg.sqlstate == "22012") return message.find("division by zero") != std::string::npos;
  // An input function's "value "99999999999" is out of range for type integer" may be an
  // "invalid input syntax" error for the evaluator when the text is not a number either.
  if (pg.sqlstate == "22003" && pg.message.find("is out of range for type") == std::string::npos) {
    return message.find("out of range") != std::string::npos ||
           message.find("overflow") != std::string::npos;
  }
  return true;
}

bool ValuesMatch(const Value& expected, const Value& got, uint32_t oid) {
  if (oid == pgtype::kFloat4 && expected.kind() == ValueKind::kFloat &&
      got.kind() == ValueKind::kFloat) {
    // float4 travels as the double nearest to its printed form; compare at float4 precision.
    const float a = static_cast<float>(expected.float_value());
    const float b = static_cast<float>(got.float_value());
    if (std::isnan(a) && std::isnan(b)) return true;
    return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
  }
  return expected == got;
}

std::string ResultText(const absl::StatusOr<Value>& result) {
  if (!result.ok()) return "ERROR " + StatusText(result.status());
  return result->DebugString();
}

class WhereDifferentialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    conn_ = ConnectOrDie(TestPostgres::Get().CreateDatabase("where_differential"));
    ExecOrDie(*conn_, "SET extra_float_digits = 3");
    for (const ColumnDef& c : kColumns) schema_.push_back(Column{c.name, Info(c.type).sql_type});
    for (const ColumnDef& p : kParams) param_types_[p.name] = Info(p.type).sql_type;
  }

  PgAnswer Query(const std::string& expr, const Row& row) {
    std::string names;
    for (const ColumnDef& c : kColumns) names += std::string(names.empty() ? "" : ", ") + c.name;
    const std::string sql = "SELECT pg_typeof(" + expr + ")::oid, (" + expr +
                            ") FROM (SELECT * FROM (VALUES " + row.values_sql +
                            ") AS v OFFSET 0) AS t(" + names + ")";
    PgAnswer answer;
    auto result = conn_->Exec(sql);
    if (!result.ok()) {
      answer.sqlstate = SqlStateOf(result.status());
      answer.message = std::string(result.status().message());
      return answer;
    }
    answer.ok = true;
    answer.oid = static_cast<uint32_t>(std::stoul(std::string(result->Get(0, 0))));
    answer.text = result->GetOptional(0, 1);
    return answer;
  }

  // Random rows, canonicalized by Postgres: the evaluator sees what replication would give it.
  std::vector<Row> MakeRows(std::mt19937_64& rng, int count) {
    std::vector<Row> rows;
    auto random_value = [&](T t) -> std::optional<std::string> {
      if (std::bernoulli_distribution(0.15)(rng)) return std::nullopt;
      const auto& pool = ValuePool(t);
      return pool[std::uniform_int_distribution<size_t>(0, pool.size() - 1)(rng)];
    };
    for (int r = 0; r < count; ++r) {
      std::vector<std::string> literals;
      std::vector<T> types;
      for (const ColumnDef& c : kColumns) {
        literals.push_back(TypedLiteral(random_value(c.type), c.type));
        types.push_back(c.type);
      }
      for (const ColumnDef& p : kParams) {
        literals.push_back(TypedLiteral(random_value(p.type), p.type));
        types.push_back(p.type);
      }
      std::string select = "SELECT ";
      for (size_t i = 0; i < literals.size(); ++i) select += (i > 0 ? ", " : "") + literals[i];
      const PgResult result = ExecOrDie(*conn_, select);
      Row row;
      std::vector<std::string> typed;
      for (size_t i = 0; i < literals.size(); ++i) {
        std::optional<std::string> text = result.GetOptional(0, static_cast<int>(i));
        absl::StatusOr<Value> value =
            text ? ParseTextValue(Info(types[i]).oid, false, *text) : Value::Null();
        EXPECT_TRUE(value.ok()) << value.status() << " for " << literals[i];
        if (!value.ok()) value = Value::Null();
        if (i < kColumns.size()) {
          row.columns.push_back(text);
          row.column_values.push_back(*value);
          typed.push_back(TypedLiteral(text, types[i]));
        } else {
          row.params.push_back(text);
          row.param_values[kParams[i - kColumns.size()].name] = *value;
        }
      }
      row.values_sql = "(";
      for (size_t i = 0; i < typed.size(); ++i) row.values_sql += (i > 0 ? ", " : "") + typed[i];
      row.values_sql += ")";
      rows.push_back(std::move(row));
    }
    return rows;
  }

  std::unique_ptr<PgConnection> conn_;
  Schema schema_;
  ParamTypes param_types_;
};

std::string RowText(const Row& row) {
  std::string out;
  for (size_t i = 0; i < kColumns.size(); ++i) {
    out += std::string(out.empty() ? "" : ", ") + kColumns[i].name + "=" +
           (row.columns[i] ? Quote(*row.columns[i]) : "NULL");
  }
  for (size_t i = 0; i < kParams.size(); ++i) {
    out += std::string(", $") + kParams[i].name + "=" +
           (row.params[i] ? Quote(*row.params[i]) : "NULL");
  }
  return out;
}

// The differences from Postgres that shapes/README.md documents ("Known gaps vs Postgres"), by
// name, or "" for a mismatch nobody has accepted. They are counted, printed and bounded.
std::string KnownGap(const std::string& expression, const std::string& detail) {
  // Date/time text input is a documented subset (no "YYYYMMDD", "today", Postgres's quirks).
  if (detail.find("invalid input syntax for type date") != std::string::npos ||
      detail.find("invalid input syntax for type timestamp") != std::string::npos) {
    return "date/time input subset";
  }
  // Intervals (date or timestamp minus timestamp) are not in the language.
  if (detail.find("operator does not exist: date - timestamp") != std::string::npos ||
      detail.find("operator does not exist: timestamp") != std::string::npos) {
    return "interval arithmetic";
  }
  std::string lower = expression;
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  // IN resolves the operand type pair by pair, Postgres over the whole list: they differ when
  // a date beyond the timestamp range meets timestamps in one list.
  if (lower.find(" in (") != std::string::npos &&
      detail.find("date out of range for timestamp") != std::string::npos) {
    return "IN list typing with out-of-range dates";
  }
  // ... and when float4 meets numeric or float8 in one list.
  if (lower.find(" in (") != std::string::npos &&
      (lower.find("float4") != std::string::npos || lower.find("r1") != std::string::npos ||
       lower.find("r2") != std::string::npos)) {
    return "IN list typing with float4";
  }
  return "";
}

TEST_F(WhereDifferentialTest, EvaluatorAgreesWithPostgres) {
  // A fixed seed keeps CI deterministic; SHAPEBRIDGE_DIFF_SEED=random explores new cases.
  uint64_t seed = 20261122;
  if (const char* env = std::getenv("SHAPEBRIDGE_DIFF_SEED")) {
    seed = std::string(env) == "random" ? std::random_device{}() : std::stoull(env);
  }
  constexpr int kMinCases = 20000;
  int cases = kMinCases;
  if (const char* env = std::getenv("SHAPEBRIDGE_DIFF_CASES")) cases = std::stoi(env);
  std::cout << "where differential: seed " << seed << " (SHAPEBRIDGE_DIFF_SEED=" << seed
            << " reproduces), " << cases << " cases" << std::endl;
  SCOPED_TRACE("SHAPEBRIDGE_DIFF_SEED=" + std::to_string(seed));

  const bool verbose = std::getenv("SHAPEBRIDGE_DIFF_VERBOSE") != nullptr;
  int max_printed = 60;
  if (const char* env = std::getenv("SHAPEBRIDGE_DIFF_PRINT")) max_printed = std::stoi(env);
  std::mt19937_64 rng(seed);
  const std::vector<Row> rows = MakeRows(rng, 300);

  int run = 0, pg_values = 0, pg_runtime_errors = 0, pg_parse_errors = 0, non_null = 0;
  int rejected_unsupported = 0, folding = 0, inconclusive = 0, mismatches = 0;
  std::map<Op, int> op_counts;
  std::map<std::string, int> mismatch_kinds;
  std::map<std::string, int> known_gaps;

  for (int c = 0; c < cases; ++c) {
    const Row& row = rows[std::uniform_int_distribution<size_t>(0, rows.size() - 1)(rng)];
    Generator gen(rng(), row);
    const auto [node, top_type] = gen.Top();
    // A WHERE clause is boolean: an expression of another type goes to ParseWhere as
    // `(e) IS NULL`, and its value is read from the operand, which is compared with e's value in
    // Postgres.
    const bool wrapped = top_type != T::kBool;
    const std::string text = wrapped ? "(" + node.ours + ") IS NULL" : node.ours;
    ++run;

    auto fail = [&](const std::string& kind, const std::string& detail) {
      if (const std::string gap = KnownGap(node.pg, detail); !gap.empty()) {
        if (++known_gaps[gap] <= 5) {
          std::cout << "known gap (" << gap << ") in case " << c << ": " << node.pg << "\n  "
                    << detail << std::endl;
        }
        return;
      }
      ++mismatches;
      ++mismatch_kinds[kind];
      if (mismatches <= max_printed) {
        ADD_FAILURE() << "mismatch (" << kind << ") in case " << c << ", seed " << seed
                      << "\n  expression: " << text << "\n  postgres:   " << node.pg
                      << "\n  row:        " << RowText(row) << "\n  " << detail;
      }
    };

    const PgAnswer pg = Query(node.pg, row);
    if (verbose) std::cout << "case " << c << ": " << node.pg << " -> " << pg.ToString() << "\n";
    if (pg.ok) {
      ++pg_values;
    } else if (!IsParseError(pg)) {
      ++pg_runtime_errors;
    } else {
      ++pg_parse_errors;
    }

    absl::StatusOr<std::unique_ptr<Expr>> parsed = ParseWhere(text, schema_, param_types_);
    if (!parsed.ok()) {
      if (!pg.ok) continue;  // both reject
      // Postgres would reject a non-boolean WHERE too (coalesce(NULL) is text).
      if (!wrapped && pg.oid != pgtype::kBool && pg.oid != 705) continue;
      // Postgres resolved it to another type than the one generated (NULL - coalesce(NULL) is
      // jsonb, date - timestamptz an interval): not a construct of the language.
      if (wrapped && pg.oid != Info(top_type).oid) {
        ++rejected_unsupported;
        continue;
      }
      if (node.supported) {
        fail("rejected",
             "postgres: " + pg.ToString() + "\n  ours:       " + StatusText(parsed.status()));
      } else {
        ++rejected_unsupported;
        if (verbose) {
          std::cout << "case " << c << " rejected, not listed: " << text
                    << "\n  ours: " << StatusText(parsed.status()) << "\n";
        }
      }
      continue;
    }
    if (wrapped && ((*parsed)->kind != Expr::Kind::kOp || (*parsed)->op != Op::kIsNull ||
                    (*parsed)->args.size() != 1)) {
      fail("wrapper", "ParseWhere did not give an IS NULL test for " + text);
      continue;
    }
    const Expr& target = wrapped ? *(*parsed)->args[0] : **parsed;
    CountOps(target, op_counts);
    const absl::StatusOr<Value> ours = Evaluate(target, row.column_values, row.param_values);

    // Bind and then evaluate without parameters: the same result.
    absl::StatusOr<std::unique_ptr<Expr>> bound = Bind(**parsed, row.param_values);
    if (!bound.ok()) {
      fail("bind", "Bind failed: " + StatusText(bound.status()));
    } else {
      const Expr& bound_target = wrapped ? *(*bound)->args[0] : **bound;
      const absl::StatusOr<Value> bound_result = Evaluate(bound_target, row.column_values);
      if (bound_result.ok() != ours.ok() || (ours.ok() && !(*bound_result == *ours))) {
        fail("bind",
             "Evaluate: " + ResultText(ours) + "\n  after Bind: " + ResultText(bound_result));
      }
    }

    if (IsParseError(pg)) {
      fail("accepted", "postgres rejects it: " + pg.ToString() + "\n  ours:       accepted as " +
                           target.type.ToString() + ", evaluates to " + ResultText(ours));
      continue;
    }
    // Where the answers differ, plan-time constant folding in Postgres may be why: ask again
    // with the literals hidden from the planner.
    auto agrees = [&](const PgAnswer& answer) -> bool {
      if (!answer.ok) return ErrorsMatch(answer, ours.status());
      return ours.ok();
    };
    PgAnswer reference = pg;
    if (!agrees(pg)) {
      reference = Query(node.hidden, row);
      if (IsParseError(reference)) {
        // The hidden rendering typed a literal differently from Postgres's resolution of the
        // original (an untyped NULL): the case cannot be decided. Counted and bounded below.
        ++inconclusive;
        if (verbose) {
          std::cout << "case " << c << " inconclusive: " << text
                    << "\n  postgres: " << pg.ToString() << "\n  hidden:   " << reference.ToString()
                    << "\n";
        }
        continue;
      }
      if (!agrees(reference)) {
        fail(pg.ok ? "ours-error" : "ours-value",
             "postgres: " + pg.ToString() + "\n  postgres without constant folding: " +
                 reference.ToString() + "\n  ours:       " + ResultText(ours));
        continue;
      }
      ++folding;
      if (verbose) {
        std::cout << "case " << c << " agrees once constants are hidden: " << text
                  << "\n  postgres: " << pg.ToString() << "\n  hidden:   " << reference.ToString()
                  << "\n  ours:     " << ResultText(ours) << "\n";
      }
    }
    if (!reference.ok) continue;  // both failed
    Value expected = Value::Null();
    if (reference.text) {
      const uint32_t parse_oid = reference.oid == 705 ? pgtype::kText : reference.oid;
      absl::StatusOr<Value> parsed_value = ParseTextValue(parse_oid, false, *reference.text);
      ASSERT_TRUE(parsed_value.ok()) << parsed_value.status() << " for " << node.pg;
      expected = *parsed_value;
      ++non_null;
    }
    const uint32_t our_oid = OidOf(target.type);
    if (target.type.id != TypeId::kUnknown && reference.oid != 705 && our_oid != reference.oid) {
      fail("type", "postgres: " + reference.ToString() + "\n  ours:       type " +
                       target.type.ToString() + ", value " + ResultText(ours));
      continue;
    }
    if (!ValuesMatch(expected, *ours, reference.oid)) {
      fail("value", "postgres: " + reference.ToString() + "\n  ours:       " + ResultText(ours));
      continue;
    }
    if (!wrapped) {
      const absl::StatusOr<bool> matches = Matches(**parsed, row.column_values, row.param_values);
      const bool want = expected.kind() == ValueKind::kBool && expected.bool_value();
      if (!matches.ok() || *matches != want) {
        fail("matches", "Matches gave " +
                            (matches.ok() ? std::string(*matches ? "true" : "false")
                                          : StatusText(matches.status())) +
                            " for the value " + expected.DebugString());
      }
    }
  }

  std::cout << "where differential: " << run << " cases; postgres gave " << pg_values << " values ("
            << non_null << " non-null, compared), " << pg_runtime_errors << " data errors, "
            << pg_parse_errors << " parse/type errors; " << rejected_unsupported
            << " rejected as unsupported; " << folding << " resolved by plan-time folding; "
            << inconclusive << " inconclusive; " << mismatches << " mismatches" << std::endl;
  for (const auto& [kind, count] : mismatch_kinds) {
    std::cout << "  mismatches of kind " << kind << ": " << count << std::endl;
  }
  std::cout << "  operators:";
  for (const auto& [op, count] : op_counts) std::cout << " " << OpName(op) << "=" << count;
  std::cout << std::endl;

  EXPECT_EQ(mismatches, 0);
  // The documented gaps stay rare: more means a new difference hiding behind an old name.
  int gaps = 0;
  for (const auto& [gap, count] : known_gaps) {
    std::cout << "  known gap " << gap << ": " << count << std::endl;
    gaps += count;
  }
  EXPECT_LE(gaps, cases / 1000);
  if (std::getenv("SHAPEBRIDGE_DIFF_CASES") == nullptr) {
    EXPECT_GE(run, kMinCases) << "the issue asks for at least 20,000 pairs";
  }
  EXPECT_GE(non_null * 10, run * 3) << "too few cases evaluated to a non-null value";
  EXPECT_LE(inconclusive * 1000, run) << "too many cases could not be decided";
  for (int op = static_cast<int>(Op::kEq); op <= static_cast<int>(Op::kCast); ++op) {
    EXPECT_GE(op_counts[static_cast<Op>(op)], 50)
        << "operator " << OpName(static_cast<Op>(op)) << " was exercised too rarely";
  }
}

}  // namespace
}  // namespace shapebridge::shapes
