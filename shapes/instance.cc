#include "shapes/instance.h"

#include <bit>
#include <ostream>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "shapes/hash.h"

namespace shapebridge::shapes {
namespace {

// An exact, unambiguous rendering of a value for hashing.
std::string ValueKey(const Value& v) {
  std::string out(ValueKindName(v.kind()));
  out.push_back(':');
  switch (v.kind()) {
    case ValueKind::kNull:
    case ValueKind::kUnchanged:
      break;
    case ValueKind::kBool:
      out.push_back(v.bool_value() ? 't' : 'f');
      break;
    case ValueKind::kInt:
    case ValueKind::kTimestamp:
    case ValueKind::kTimestampTz:
    case ValueKind::kDate:
      absl::StrAppend(&out, v.int_value());
      break;
    case ValueKind::kFloat:
      absl::StrAppend(&out, std::bit_cast<uint64_t>(v.float_value()));
      break;
    default:
      out.append(v.string_value());
      break;
  }
  return out;
}

void CollectColumns(const Expr& expr, std::set<int>* out) {
  if (expr.kind == Expr::Kind::kColumn) out->insert(expr.column);
  for (const auto& arg : expr.args) CollectColumns(*arg, out);
}

void AppendConjuncts(const Expr& expr, std::vector<std::unique_ptr<Expr>>* out) {
  for (const Expr* c : Conjuncts(expr)) out->push_back(c->Clone());
}

}  // namespace

absl::StatusOr<InstanceId> InstanceId::Parse(std::string_view hex) {
  if (hex.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("a shape instance id has 32 hex digits, not \"", std::string(hex), "\""));
  }
  uint64_t parts[2] = {0, 0};
  for (size_t i = 0; i < 32; ++i) {
    const char c = hex[i];
    int digit = 0;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "a shape instance id has lower-case hex digits only, not \"", std::string(hex), "\""));
    }
    parts[i / 16] = (parts[i / 16] << 4) | static_cast<uint64_t>(digit);
  }
  return InstanceId(parts[0], parts[1]);
}

std::string InstanceId::ToString() const {
  uint8_t bytes[16];
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<uint8_t>(high_ >> (56 - 8 * i));
    bytes[8 + i] = static_cast<uint8_t>(low_ >> (56 - 8 * i));
  }
  return HexString(bytes, sizeof(bytes));
}

std::ostream& operator<<(std::ostream& os, InstanceId id) { return os << id.ToString(); }

absl::StatusOr<std::shared_ptr<const ShapeInstance>> ShapeInstance::Create(
    std::shared_ptr<const ShapeDefinition> definition, ParamValues values,
    std::string_view filter) {
  const ShapeDefinition& def = *definition;
  auto error = [&](const std::string& key, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("shape ", def.name, ": ", key, ": ", what));
  };
  for (const auto& [name, value] : values) {
    if (!def.param_types.contains(name)) {
      return error(absl::StrCat("params.", name), "the shape has no such parameter");
    }
    if (value.is_unchanged()) return error(absl::StrCat("params.", name), "has no value");
  }
  for (const ShapeParam& p : def.params) {
    if (!values.contains(p.name)) return error(absl::StrCat("params.", p.name), "has no value");
  }

  std::vector<std::unique_ptr<Expr>> conjuncts;
  if (def.where) {
    auto bound = Bind(*def.where, values);
    if (!bound.ok()) return error("params", std::string(bound.status().message()));
    AppendConjuncts(**bound, &conjuncts);
  }
  if (!filter.empty()) {
    auto parsed = ParseWhere(filter, def.ShapeExprSchema(), ParamTypes{});
    if (!parsed.ok()) return error("filter", std::string(parsed.status().message()));
    if ((*parsed)->type != SqlType{.id = TypeId::kBool}) {
      return error("filter",
                   absl::StrCat("must be a boolean expression, not ", (*parsed)->type.ToString()));
    }
    // ParseWhere already rejects hidden columns; this holds even if a name could spell one.
    std::set<int> used;
    CollectColumns(**parsed, &used);
    for (int c : used) {
      if (std::find(def.columns.begin(), def.columns.end(), c) == def.columns.end()) {
        return error("filter", absl::StrCat("column \"", def.table.columns[c].name,
                                            "\" is not a column of the shape"));
      }
    }
    AppendConjuncts(**parsed, &conjuncts);
  }

  auto instance = std::shared_ptr<ShapeInstance>(new ShapeInstance());
  if (conjuncts.size() == 1) {
    instance->predicate_ = std::move(conjuncts[0]);
  } else if (conjuncts.size() > 1) {
    auto and_expr = std::make_unique<Expr>();
    and_expr->kind = Expr::Kind::kOp;
    and_expr->op = Op::kAnd;
    and_expr->type = SqlType{.id = TypeId::kBool};
    and_expr->position = conjuncts[0]->position;
    and_expr->args = std::move(conjuncts);
    instance->predicate_ = std::move(and_expr);
  }
  instance->filter_ = std::string(filter);
  instance->canonical_ = instance->predicate_ ? Canonical(*instance->predicate_) : "";

  std::string canonical;
  AppendHashField(&canonical, "shape-instance-v1");
  AppendHashField(&canonical, def.version);
  AppendHashField(&canonical, instance->canonical_);
  for (const auto& [name, value] : values) {  // a std::map: in name order
    AppendHashField(&canonical, name);
    AppendHashField(&canonical, ValueKey(value));
  }
  AppendHashField(&canonical, "columns");
  for (int c : def.columns) AppendHashField(&canonical, def.table.columns[c].name);
  const auto digest = Sha256(canonical);
  uint64_t parts[2] = {0, 0};
  for (int i = 0; i < 16; ++i) parts[i / 8] = (parts[i / 8] << 8) | digest[i];
  instance->id_ = InstanceId(parts[0], parts[1]);

  instance->definition_ = std::move(definition);
  instance->values_ = std::move(values);
  return std::shared_ptr<const ShapeInstance>(std::move(instance));
}

absl::StatusOr<bool> ShapeInstance::Matches(const std::vector<Value>& row) const {
  if (!predicate_) return true;
  return shapes::Matches(*predicate_, row);
}

}  // namespace shapebridge::shapes
