#include "bridge/replication/catalog.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace shapebridge {

absl::StatusOr<shapes::TableSchema> LoadTableSchema(PgConnection& sql, const std::string& table) {
  auto columns = sql.ExecParams(
      "SELECT n.nspname, c.relname, a.attname, a.atttypid::int8, "
      "       (t.typcategory = 'A')::text, "
      "       coalesce(a.attnum = ANY(i.indkey), false)::text, "
      "       coalesce(array_position(i.indkey::int2[], a.attnum), 0)::int8 "
      "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
      "JOIN pg_type t ON t.oid = a.atttypid "
      "LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary "
      "WHERE c.oid = to_regclass($1) ORDER BY a.attnum",
      {table});
  if (!columns.ok()) return columns.status();
  if (columns->rows() == 0) {
    return absl::NotFoundError(absl::StrCat("table \"", table, "\" does not exist"));
  }
  shapes::TableSchema schema;
  schema.schema = std::string(columns->Get(0, 0));
  schema.name = std::string(columns->Get(0, 1));
  std::vector<std::pair<int64_t, std::string>> key;
  for (int r = 0; r < columns->rows(); ++r) {
    shapes::TableColumn column;
    column.name = std::string(columns->Get(r, 2));
    column.type_oid = static_cast<uint32_t>(std::stoll(std::string(columns->Get(r, 3))));
    column.is_array = columns->Get(r, 4) == "true";
    if (columns->Get(r, 5) == "true") {
      key.emplace_back(std::stoll(std::string(columns->Get(r, 6))), column.name);
    }
    schema.columns.push_back(std::move(column));
  }
  if (key.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("table ", schema.QualifiedName(),
                     " has no primary key: shapes identify rows by it; add one"));
  }
  std::sort(key.begin(), key.end());
  for (auto& [position, name] : key) schema.primary_key.push_back(std::move(name));
  return schema;
}

}  // namespace shapebridge
