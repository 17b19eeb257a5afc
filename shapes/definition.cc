#include "shapes/definition.h"

#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "shapes/hash.h"

namespace shapebridge::shapes {
namespace {

// A column the expression may not refer to gets a name no identifier can spell.
std::string Hidden(const std::string& name) { return absl::StrCat("\x01hidden:", name); }

bool IsIdentifier(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

void CollectParams(const Expr& expr, std::set<std::string>* out) {
  if (expr.kind == Expr::Kind::kParam) out->insert(expr.name);
  for (const auto& arg : expr.args) CollectParams(*arg, out);
}

std::string_view SourceName(ParamSource source) {
  return source == ParamSource::kClaim ? "claim" : "request";
}

}  // namespace

Schema ShapeDefinition::TableExprSchema() const {
  Schema schema;
  schema.reserve(table.columns.size());
  for (const TableColumn& c : table.columns) {
    const std::optional<SqlType> type = SqlTypeFromOid(c.type_oid);
    schema.push_back(Column{.name = type ? c.name : Hidden(c.name),
                            .type = type.value_or(SqlType{.id = TypeId::kUnknown})});
  }
  return schema;
}

Schema ShapeDefinition::ShapeExprSchema() const {
  Schema schema = TableExprSchema();
  std::vector<bool> in_shape(schema.size(), false);
  for (int c : columns) in_shape[c] = true;
  for (size_t i = 0; i < schema.size(); ++i) {
    if (!in_shape[i] && schema[i].name.rfind("\x01", 0) != 0) {
      schema[i].name = Hidden(schema[i].name);
    }
  }
  return schema;
}

absl::StatusOr<std::shared_ptr<const ShapeDefinition>> CompileDefinition(
    const ShapeDefinitionSpec& spec, const TableSchema& table) {
  const std::string shape = absl::StrCat("shape ", spec.name.empty() ? "(unnamed)" : spec.name);
  auto error = [&](const std::string& key, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(shape, ": ", key, ": ", what));
  };
  if (spec.name.empty()) return error("name", "must not be empty");
  for (char c : spec.name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return error("name", "may contain only letters, digits, _ and -");
  }

  auto def = std::make_shared<ShapeDefinition>();
  def->name = spec.name;
  def->table = table;
  def->writable = spec.writable;
  if (spec.writable) {
    // Authorization of a write asks whether the caller's token allows a binding under which the
    // row is in the shape: a parameter the token does not bound would allow every row.
    for (const ParamSpec& p : spec.params) {
      if (p.source == ParamSource::kRequest && p.claim.empty()) {
        return error("writable",
                     absl::StrCat("parameter $", p.name,
                                  " comes from the request with no claim to limit it, so the "
                                  "shape would let anyone write any row; take it from a claim "
                                  "(from: claim) or limit it to a claim's values (claim: ...)"));
      }
    }
  }

  // The table.
  const size_t dot = spec.table.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == spec.table.size()) {
    return error("table",
                 absl::StrCat("must be schema-qualified (schema.table), not \"", spec.table, "\""));
  }
  if (spec.table != table.QualifiedName()) {
    return error("table", absl::StrCat("table ", spec.table, " was checked against the catalog of ",
                                       table.QualifiedName()));
  }
  auto find_column = [&](const std::string& name) -> int {
    for (size_t i = 0; i < table.columns.size(); ++i) {
      if (table.columns[i].name == name) return static_cast<int>(i);
    }
    return -1;
  };
  if (table.primary_key.empty()) {
    return error("table", absl::StrCat("table ", spec.table,
                                       " has no primary key (shapes need one to identify rows)"));
  }
  for (const std::string& k : table.primary_key) {
    const int index = find_column(k);
    if (index < 0) {
      return error("table",
                   absl::StrCat("primary key column \"", k, "\" is not a column of ", spec.table));
    }
    def->key.push_back(index);
  }

  // The columns.
  if (spec.columns.empty()) {
    for (size_t i = 0; i < table.columns.size(); ++i) def->columns.push_back(static_cast<int>(i));
  } else {
    std::set<std::string> seen;
    for (const std::string& name : spec.columns) {
      const int index = find_column(name);
      if (index < 0) {
        return error("columns",
                     absl::StrCat("unknown column \"", name, "\" in table ", spec.table));
      }
      if (!seen.insert(name).second) {
        return error("columns", absl::StrCat("duplicate column \"", name, "\""));
      }
      def->columns.push_back(index);
    }
    for (const std::string& k : table.primary_key) {
      if (!seen.contains(k)) {
        return error("columns", absl::StrCat("must include the primary key column \"", k, "\""));
      }
    }
  }

  // The parameters.
  for (const ParamSpec& p : spec.params) {
    const std::string key = absl::StrCat("params.", p.name);
    if (!IsIdentifier(p.name)) {
      return error("params", absl::StrCat("\"", p.name,
                                          "\" is not a parameter name (letters, digits and _, "
                                          "not starting with a digit)"));
    }
    if (def->param_types.contains(p.name)) return error(key, "duplicate parameter");
    const std::optional<SqlType> type = ParseTypeName(p.type);
    if (!type) {
      return error(absl::StrCat(key, ".type"), absl::StrCat("unknown type \"", p.type, "\""));
    }
    if (p.source == ParamSource::kClaim && p.claim.empty()) {
      return error(absl::StrCat(key, ".claim"),
                   "is required: the value comes from a claim, name the claim");
    }
    def->param_types[p.name] = *type;
    def->params.push_back(
        ShapeParam{.name = p.name, .type = *type, .source = p.source, .claim = p.claim});
  }

  // The WHERE.
  if (!spec.where.empty()) {
    auto where = ParseWhere(spec.where, def->TableExprSchema(), def->param_types);
    if (!where.ok()) {
      std::string message(where.status().message());
      for (const TableColumn& c : table.columns) {
        if (!SqlTypeFromOid(c.type_oid) &&
            message.find(absl::StrCat("\"", c.name, "\"")) != std::string::npos) {
          absl::StrAppend(&message, " (column \"", c.name, "\" has a type, oid ", c.type_oid,
                          ", that shape expressions do not support)");
        }
      }
      return error("where", message);
    }
    if ((*where)->type != SqlType{.id = TypeId::kBool}) {
      return error("where",
                   absl::StrCat("must be a boolean expression, not ", (*where)->type.ToString()));
    }
    def->where = std::shared_ptr<const Expr>(std::move(*where));
  }
  std::set<std::string> used;
  if (def->where) CollectParams(*def->where, &used);
  for (const ShapeParam& p : def->params) {
    if (!used.contains(p.name)) {
      return error(absl::StrCat("params.", p.name), "is declared but not used in where");
    }
  }

  // The version: every field above in a fixed, unambiguous encoding.
  std::string canonical;
  AppendHashField(&canonical, "shape-definition-v1");
  AppendHashField(&canonical, def->name);
  AppendHashField(&canonical, spec.table);
  for (const TableColumn& c : table.columns) {
    AppendHashField(&canonical, c.name);
    AppendHashField(&canonical, std::to_string(c.type_oid));
  }
  AppendHashField(&canonical, "key");
  for (int k : def->key) AppendHashField(&canonical, std::to_string(k));
  AppendHashField(&canonical, "columns");
  for (int c : def->columns) AppendHashField(&canonical, std::to_string(c));
  AppendHashField(&canonical, "where");
  AppendHashField(&canonical, def->where ? Canonical(*def->where) : "");
  AppendHashField(&canonical, "params");
  for (const auto& [name, type] : def->param_types) {
    for (const ShapeParam& p : def->params) {
      if (p.name != name) continue;
      AppendHashField(&canonical, p.name);
      AppendHashField(&canonical, p.type.ToString());
      AppendHashField(&canonical, SourceName(p.source));
      AppendHashField(&canonical, p.claim);
    }
  }
  AppendHashField(&canonical, def->writable ? "writable" : "read-only");
  const auto digest = Sha256(canonical);
  def->version = HexString(digest.data(), digest.size());
  return std::shared_ptr<const ShapeDefinition>(std::move(def));
}

}  // namespace shapebridge::shapes
