#pragma once

// Internals of the WHERE language shared by its translation units: the text input and output
// functions of the supported types, casts and comparison. Not part of the shapes interface.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/value.h"
#include "shapes/expr.h"

namespace shapebridge::shapes::internal {

// ASCII whitespace trimmed from both ends (Debian's abseil takes only absl::string_view).
inline std::string_view TrimWs(std::string_view s) {
  auto ws = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

// The Postgres name used in error messages: "integer", "double precision", "timestamp with time
// zone", ... (Postgres's own input-function messages use these).
std::string_view PgTypeName(TypeId id);
// Type OID of the (element) type.
uint32_t TypeOid(TypeId id);

// Postgres's output text of a value of `type` (what ::text gives).
std::string FormatText(const Value& value, const SqlType& type);
// Postgres's input function for `type` over `text`, with Postgres's error messages.
absl::StatusOr<Value> InputText(const SqlType& type, std::string_view text);

// The core::Value kind that holds a non-null value of `type`.
ValueKind ValueKindFor(const SqlType& type);

bool IsNumericFamily(TypeId id);
// The implicit-cast order of the number types: int2 < int4 < int8 < numeric < float4 < float8.
int NumericRank(TypeId id);
bool IsDateTimeFamily(TypeId id);
bool IsIntFamily(TypeId id);

// Whether an explicit cast from `from` to `to` exists.
bool CanCast(const SqlType& from, const SqlType& to);
absl::StatusOr<Value> CastValue(const Value& value, const SqlType& from, const SqlType& to);

// Whether `a op b` type checks for a comparison op; `ordering` asks for < <= > >= too.
bool Comparable(const SqlType& a, const SqlType& b, bool ordering);
// Compares two non-null values of comparable types: -1, 0, 1.
absl::StatusOr<int> CompareValues(const Value& a, const SqlType& ta, const Value& b,
                                  const SqlType& tb);

// Postgres array text ("{1,NULL,\"a b\"}") to its elements (nullopt is NULL); one dimension only.
absl::StatusOr<std::vector<std::optional<std::string>>> SplitArray(std::string_view text);
std::string JoinArray(const std::vector<std::optional<std::string>>& elements);
// The elements of an array value as typed Values.
absl::StatusOr<std::vector<Value>> ArrayElements(const Value& array, TypeId element);

// Arithmetic result type, or nullopt when Postgres has no such operator.
std::optional<SqlType> ArithmeticType(Op op, const SqlType& a, const SqlType& b);

}  // namespace shapebridge::shapes::internal
