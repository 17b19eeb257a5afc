#pragma once

// The WHERE language of shapes: an expression tree parsed from text, type-checked against the
// shape's columns and parameters, and evaluated with Postgres semantics over core::Value rows.
// Client text never reaches SQL: it becomes this tree or an error.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/value.h"

namespace shapebridge::shapes {

enum class TypeId : uint8_t {
  kUnknown,  // the type of an untyped NULL literal until context gives it one
  kBool,
  kInt2,
  kInt4,
  kInt8,
  kFloat4,
  kFloat8,
  kNumeric,
  kText,  // text, varchar, bpchar, name: compared in the C collation (bytewise)
  kUuid,
  kTimestamp,
  kTimestampTz,
  kDate,
  kJsonb,
  kBytea,
};

struct SqlType {
  TypeId id = TypeId::kUnknown;
  bool array = false;            // a one-dimensional array of `id`
  std::string ToString() const;  // "int4", "text[]", ...
  friend bool operator==(const SqlType&, const SqlType&) = default;
};

// The type of a Postgres column by its type OID (arrays of the supported types included), or
// nullopt for a type the language does not support.
std::optional<SqlType> SqlTypeFromOid(uint32_t oid);
// A type name as written in a cast or a parameter declaration: int, integer, int4, bigint, text,
// varchar, numeric, timestamptz, "timestamp with time zone", date, uuid, jsonb, bytea, bool,
// boolean, float8, "double precision", real, ... with an optional [] suffix.
std::optional<SqlType> ParseTypeName(std::string_view name);

struct Column {
  std::string name;
  SqlType type;  // kUnknown: a type the language does not support; referring to it is an error
};
// The shape's columns; an expression refers to a column by its index here, which is also the
// index of its value in a row.
using Schema = std::vector<Column>;
using ParamTypes = std::map<std::string, SqlType>;
using ParamValues = std::map<std::string, Value>;

// clang-format off
enum class Op : uint8_t {
  // Comparison; args[0], args[1].
  kEq, kNe, kLt, kLe, kGt, kGe,
  // Boolean; kAnd and kOr have two or more args, kNot one.
  kAnd, kOr, kNot,
  // Arithmetic; kNeg has one arg.
  kNeg, kAdd, kSub, kMul, kDiv, kMod,
  // Text.
  kConcat,                                 // ||
  kLike, kNotLike, kILike, kNotILike,      // args[0] LIKE args[1]
  kLower, kUpper,
  // Tests; one arg.
  kIsNull, kIsNotNull, kIsTrue, kIsNotTrue, kIsFalse, kIsNotFalse,
  // args[0] [NOT] BETWEEN args[1] AND args[2].
  kBetween, kNotBetween,
  // args[0] [NOT] IN (args[1], ..., args[n]).
  kIn, kNotIn,
  // args[0] = ANY(args[1]) where args[1] is an array.
  kEqAny,
  // Arrays; args[0] op args[1].
  kContains,     // @>
  kContainedBy,  // <@
  kOverlaps,     // &&
  kCoalesce,     // one or more args
  kCast,         // args[0]::cast_to
};
// clang-format on

std::string_view OpName(Op op);

struct Expr {
  enum class Kind : uint8_t { kLiteral, kColumn, kParam, kOp };
  Kind kind = Kind::kLiteral;
  Op op = Op::kEq;   // kOp only
  SqlType type;      // the result type, set by the type checker
  int position = 0;  // byte offset of the construct in the source text (for errors)
  Value literal;     // kLiteral: a value of `type` (core::Value kinds as ParseTextValue gives)
  int column = -1;   // kColumn: index into the Schema
  std::string name;  // kColumn: column name; kParam: parameter name without the $
  SqlType cast_to;   // kCast
  std::vector<std::unique_ptr<Expr>> args;

  std::unique_ptr<Expr> Clone() const;
};

// Parses and type-checks `text` against the columns and parameter types. Errors are
// InvalidArgument and name the construct and its position, e.g.
//   unknown column "titel" at position 0
//   subqueries are not supported (position 12)
//   function now() is not supported (position 3): shapes may use only lower, upper, coalesce
//   operator does not exist: int4 = text (position 11)
// Unsupported: subqueries, functions other than lower/upper/coalesce, volatile functions, columns
// not in the schema, parameters not declared, type mismatches Postgres would reject.
absl::StatusOr<std::unique_ptr<Expr>> ParseWhere(std::string_view text, const Schema& schema,
                                                 const ParamTypes& params);

// A copy of `expr` with every parameter replaced by its value as a literal. A missing value or one
// of the wrong kind is InvalidArgument naming the parameter.
absl::StatusOr<std::unique_ptr<Expr>> Bind(const Expr& expr, const ParamValues& values);

// Evaluates with Postgres semantics: three-valued logic (NULL is Value::Null()), integer overflow
// and division by zero are errors (OutOfRange / InvalidArgument with Postgres's message text, e.g.
// "integer out of range", "division by zero"), numeric is exact, text compares bytewise (C
// collation), timestamptz in UTC. `row` holds one value per schema column; a kUnchanged value is
// an error (callers fill it from the old row first). Parameters are looked up in `params`.
absl::StatusOr<Value> Evaluate(const Expr& expr, const std::vector<Value>& row,
                               const ParamValues& params = {});

// True when the expression is true for the row; false when it is false or NULL.
absl::StatusOr<bool> Matches(const Expr& expr, const std::vector<Value>& row,
                             const ParamValues& params = {});

// A normalized rendering: the same for expressions that differ only in spacing, letter case of
// keywords, redundant parentheses or the order of AND conjuncts. Used to hash instance identity.
std::string Canonical(const Expr& expr);

// Renders a bound expression (no parameters left) as Postgres SQL in which every non-null literal
// is a query parameter: the text says $1, $2, ... with a cast to the literal's type, and `params`
// receives their values in Postgres's text form. No value ever becomes SQL text. Parameter
// numbers start at params->size() + 1, so a caller may number its own parameters first.
std::string ToSql(const Expr& expr, std::vector<std::optional<std::string>>* params);

// Parses a value of `type` from Postgres's text form ("42", "2026-01-01", "{1,2,3}"), as the
// type's input function would. Errors are InvalidArgument with Postgres's message.
absl::StatusOr<Value> ParseTypedText(const SqlType& type, std::string_view text);

// The elements of an array value of `array_type` (NULL elements as Value::Null()), and the array
// value of typed elements: the conversions between a kArray Value and its elements.
absl::StatusOr<std::vector<Value>> ArrayElements(const Value& array, const SqlType& array_type);
Value MakeArray(const std::vector<Value>& elements, const SqlType& element_type);

// The top-level AND conjuncts of `expr` (the expression itself when it is not an AND).
std::vector<const Expr*> Conjuncts(const Expr& expr);

}  // namespace shapebridge::shapes
