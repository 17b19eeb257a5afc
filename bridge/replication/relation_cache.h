#pragma once

#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "bridge/replication/decoder/pgoutput.h"
#include "core/row.h"
#include "core/value.h"

namespace shapebridge {

// What pgoutput has said about relations and types in this session. Pure; one per replication
// session (pgoutput sends a Relation message before the first change of each table in a session,
// and again after its schema changed).
class RelationCache {
 public:
  // Records a Relation message and returns the typed relation it describes.
  const RelationInfo& Apply(const pgoutput::Relation& relation);
  // Records a Type message (a non-built-in type: arrays of it are named "_name").
  void Apply(const pgoutput::Type& type);

  // The relation, or NotFound when no Relation message named it (a protocol violation).
  absl::StatusOr<const RelationInfo*> Find(RelationId id) const;

  // Types one tuple of `relation`: 'n' → null, 'u' → unchanged, 't' → parsed from text. A column
  // count that differs from the relation's, binary values and malformed text are errors naming
  // the table and column.
  absl::StatusOr<std::vector<Value>> Typed(const RelationInfo& relation,
                                           const pgoutput::TupleData& tuple) const;

 private:
  std::unordered_map<RelationId, RelationInfo> relations_;
  std::unordered_map<uint32_t, pgoutput::Type> types_;
};

}  // namespace shapebridge
