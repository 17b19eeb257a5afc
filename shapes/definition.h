#pragma once

// Shape definitions: the named, server-side rules of the config file, compiled against the table
// as the catalog describes it. Pure: the caller reads the config and the catalog.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "shapes/expr.h"

namespace shapebridge::shapes {

// Where a parameter's value comes from.
enum class ParamSource : uint8_t {
  kClaim,    // the JWT claim `claim` (a scalar, or an array for an array parameter)
  kRequest,  // the subscription request; when `claim` is set, the value must be among its values
};

// One parameter as configured.
struct ParamSpec {
  std::string name;  // without the $
  std::string type;  // a type name as ParseTypeName reads it: "int", "uuid", "int[]", ...
  ParamSource source = ParamSource::kRequest;
  std::string claim;  // kClaim: required; kRequest: optional constraint
};

// A shape definition as configured, before it is checked.
struct ShapeDefinitionSpec {
  std::string name;
  std::string table;                 // "schema.table"
  std::vector<std::string> columns;  // empty: every column of the table
  std::string where;                 // empty: every row
  std::vector<ParamSpec> params;
  bool writable = false;
};

// A table as the catalog describes it (pg_attribute order, which is pgoutput's column order).
struct TableColumn {
  std::string name;
  uint32_t type_oid = 0;
  bool is_array = false;  // an array type that is not built in (a "_..." type)
};
struct TableSchema {
  std::string schema;
  std::string name;
  std::vector<TableColumn> columns;
  // The primary key columns from pg_index (not pgoutput's key flags: with REPLICA IDENTITY FULL
  // pgoutput flags every column).
  std::vector<std::string> primary_key;

  std::string QualifiedName() const { return schema + "." + name; }
};

struct ShapeParam {
  std::string name;
  SqlType type;
  ParamSource source = ParamSource::kRequest;
  std::string claim;
};

// A checked definition. Immutable once compiled; shared (std::shared_ptr) by the definition
// registry and every instance of it.
struct ShapeDefinition {
  std::string name;
  TableSchema table;
  // The shape's columns as indexes into table.columns (and into a row of the table), in the
  // configured order.
  std::vector<int> columns;
  // The primary key as indexes into table.columns, in primary key order.
  std::vector<int> key;
  // The WHERE expression over the table's columns (Expr column indexes are table.columns
  // indexes); null when the shape has no WHERE (every row).
  std::shared_ptr<const Expr> where;
  std::vector<ShapeParam> params;
  ParamTypes param_types;
  bool writable = false;
  // The SHA-256 (hex) of the canonical form of everything above: changes when and only when the
  // definition's meaning changes.
  std::string version;

  // The schema the WHERE is type-checked against: every table column, with the columns whose type
  // the language does not support hidden (so a reference to them is an unknown column).
  Schema TableExprSchema() const;
  // The same with the columns outside the shape hidden too: what a client filter may use.
  Schema ShapeExprSchema() const;
  // The column name of shape column `i` (an index into `columns`).
  const std::string& ColumnName(size_t i) const { return table.columns[columns[i]].name; }
};

// Checks `spec` against `table` and compiles its WHERE. Every error is InvalidArgument and names
// the shape and the key, e.g.
//   shape tasks_by_project: where: unknown column "titel" at position 0
//   shape tasks_by_project: columns: must include the primary key column "id"
absl::StatusOr<std::shared_ptr<const ShapeDefinition>> CompileDefinition(
    const ShapeDefinitionSpec& spec, const TableSchema& table);

}  // namespace shapebridge::shapes
