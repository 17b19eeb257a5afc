#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/lsn.h"
#include "core/value.h"

namespace shapebridge {

// The decoded, typed view of the change stream that every stage after replication consumes.

struct ColumnInfo {
  std::string name;
  uint32_t type_oid = 0;
  int32_t type_modifier = -1;
  bool key = false;       // part of the replica identity
  bool is_array = false;  // an array type (built in, or named "_..." by a Type message)
  friend bool operator==(const ColumnInfo&, const ColumnInfo&) = default;
};

struct RelationInfo {
  RelationId id;
  std::string schema;
  std::string name;
  char replica_identity = 'd';  // d(efault), n(othing), f(ull), i(ndex)
  std::vector<ColumnInfo> columns;

  std::string QualifiedName() const { return schema + "." + name; }
  friend bool operator==(const RelationInfo&, const RelationInfo&) = default;
};

enum class ChangeOp : uint8_t { kInsert, kUpdate, kDelete };

struct RowChange {
  ChangeOp op = ChangeOp::kInsert;
  RelationId relation;
  // UPDATE and DELETE: the old row when pgoutput sent one (all columns with REPLICA IDENTITY
  // FULL; only the key columns, the others null, when old_is_key_only). Empty otherwise.
  std::vector<Value> old_values;
  bool old_is_key_only = false;
  // INSERT and UPDATE: the new row, one value per column of the relation.
  std::vector<Value> new_values;
  friend bool operator==(const RowChange&, const RowChange&) = default;
};

struct TruncateChange {
  std::vector<RelationId> relations;
  bool cascade = false;
  bool restart_identity = false;
  friend bool operator==(const TruncateChange&, const TruncateChange&) = default;
};

struct TransactionBegin {
  Xid xid;
  Lsn commit_lsn;  // the LSN of the commit record: the transaction's position in commit order
  PgTimestamp commit_time;
};

struct TransactionCommit {
  Xid xid;
  Lsn commit_lsn;
  Lsn end_lsn;  // the end of the commit record: what a consumer confirms as flushed
  PgTimestamp commit_time;
};

}  // namespace shapebridge
