#include "bridge/replication/relation_cache.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace shapebridge {

const RelationInfo& RelationCache::Apply(const pgoutput::Relation& relation) {
  RelationInfo info;
  info.id = relation.id;
  info.schema = relation.nspname;
  info.name = relation.relname;
  info.replica_identity = relation.replica_identity;
  info.columns.reserve(relation.columns.size());
  for (const auto& c : relation.columns) {
    ColumnInfo column;
    column.name = c.name;
    column.type_oid = c.type_oid;
    column.type_modifier = c.type_modifier;
    column.key = (c.flags & 1) != 0;
    auto type = types_.find(c.type_oid);
    column.is_array = pgtype::IsBuiltinArray(c.type_oid) ||
                      (type != types_.end() && type->second.name.starts_with("_"));
    info.columns.push_back(std::move(column));
  }
  auto& slot = relations_[relation.id];
  slot = std::move(info);
  return slot;
}

void RelationCache::Apply(const pgoutput::Type& type) { types_[type.type_oid] = type; }

absl::StatusOr<const RelationInfo*> RelationCache::Find(RelationId id) const {
  auto it = relations_.find(id);
  if (it == relations_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pgoutput sent a change for relation ", id.value(), " before describing it"));
  }
  return &it->second;
}

absl::StatusOr<std::vector<Value>> RelationCache::Typed(const RelationInfo& relation,
                                                        const pgoutput::TupleData& tuple) const {
  if (tuple.size() != relation.columns.size()) {
    return absl::InvalidArgumentError(absl::StrCat("pgoutput sent ", tuple.size(), " columns for ",
                                                   relation.QualifiedName(), ", which has ",
                                                   relation.columns.size()));
  }
  std::vector<Value> values;
  values.reserve(tuple.size());
  for (size_t i = 0; i < tuple.size(); ++i) {
    const ColumnInfo& column = relation.columns[i];
    switch (tuple[i].kind) {
      case pgoutput::TupleColumnKind::kNull:
        values.push_back(Value::Null());
        break;
      case pgoutput::TupleColumnKind::kUnchangedToast:
        values.push_back(Value::Unchanged());
        break;
      case pgoutput::TupleColumnKind::kText: {
        auto value = ParseTextValue(column.type_oid, column.is_array, tuple[i].data);
        if (!value.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(relation.QualifiedName(), ".", column.name,
                                                         ": ", value.status().message()));
        }
        values.push_back(*std::move(value));
        break;
      }
      case pgoutput::TupleColumnKind::kBinary:
        return absl::InvalidArgumentError(
            absl::StrCat(relation.QualifiedName(), ".", column.name,
                         ": binary column values were not requested and are not supported"));
    }
  }
  return values;
}

}  // namespace shapebridge
