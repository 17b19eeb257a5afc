// libFuzzer target for the WHERE language parser. The input is the expression text, parsed
// against a fixed schema and parameters. A rejection must be InvalidArgument. Anything that
// parses must render a Canonical form that parses again to the same Canonical form, must Bind,
// and must evaluate on a fixed row without crashing (errors such as division by zero are fine).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "shapes/expr.h"

namespace {

using shapebridge::Value;
using shapebridge::ValueKind;
namespace shapes = shapebridge::shapes;

[[noreturn]] void Fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "where_fuzzer: %s: %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

const shapes::Schema& FuzzSchema() {
  static const auto* schema = new shapes::Schema{
      {"id", {shapes::TypeId::kInt8}},         {"n", {shapes::TypeId::kInt4}},
      {"small", {shapes::TypeId::kInt2}},      {"price", {shapes::TypeId::kNumeric}},
      {"score", {shapes::TypeId::kFloat8}},    {"title", {shapes::TypeId::kText}},
      {"done", {shapes::TypeId::kBool}},       {"due", {shapes::TypeId::kDate}},
      {"at", {shapes::TypeId::kTimestampTz}},  {"owner", {shapes::TypeId::kUuid}},
      {"tags", {shapes::TypeId::kText, true}}, {"ids", {shapes::TypeId::kInt4, true}},
  };
  return *schema;
}

const shapes::ParamTypes& FuzzParams() {
  static const auto* params = new shapes::ParamTypes{
      {"project", {shapes::TypeId::kInt8}},
      {"name", {shapes::TypeId::kText}},
      {"projects", {shapes::TypeId::kInt8, true}},
  };
  return *params;
}

const shapes::ParamValues& FuzzParamValues() {
  static const auto* values = new shapes::ParamValues{
      {"project", Value::Int(42)},
      {"name", Value::String(ValueKind::kText, "x")},
      {"projects", Value::String(ValueKind::kArray, "{1,42,NULL}")},
  };
  return *values;
}

const std::vector<Value>& FuzzRow() {
  static const auto* row = new std::vector<Value>{
      Value::Int(42),
      Value::Int(-7),
      Value::Int(3),
      Value::String(ValueKind::kNumeric, "12.50"),
      Value::Float(0.25),
      Value::String(ValueKind::kText, "Hello"),
      Value::Bool(false),
      Value::Date(19723),
      Value::TimestampTz(1704067200000000),
      Value::String(ValueKind::kUuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
      Value::String(ValueKind::kArray, "{a,\"b c\",NULL}"),
      Value::Null(),
  };
  return *row;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::unique_ptr<shapes::Expr>> e =
      shapes::ParseWhere(text, FuzzSchema(), FuzzParams());
  if (!e.ok()) {
    if (e.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("parse error is not InvalidArgument", e.status().ToString());
    }
    return 0;
  }
  const std::string canonical = shapes::Canonical(**e);
  absl::StatusOr<std::unique_ptr<shapes::Expr>> again =
      shapes::ParseWhere(canonical, FuzzSchema(), FuzzParams());
  if (!again.ok())
    Fail("canonical form does not parse", canonical + " : " + again.status().ToString());
  if (shapes::Canonical(**again) != canonical) {
    Fail("canonical form is not stable", canonical + " -> " + shapes::Canonical(**again));
  }
  (void)shapes::Conjuncts(**e);
  absl::StatusOr<std::unique_ptr<shapes::Expr>> bound = shapes::Bind(**e, FuzzParamValues());
  if (!bound.ok()) Fail("bind failed", bound.status().ToString());
  (void)shapes::Matches(**e, FuzzRow(), FuzzParamValues());
  (void)shapes::Evaluate(**bound, FuzzRow());
  return 0;
}
