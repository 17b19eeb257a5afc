#pragma once

// The router: turns each row change of the replication stream into log entries of the shape
// instances it affects, without evaluating every instance.
//
// Index: per table, for each instance, ONE of its top-level conjuncts of the form
// `column = literal`, `column IN (literals)` or `column = ANY(array literal)` over a column whose
// equal values are equal bytes (int, text, varchar, name, uuid, bool, date, timestamp,
// timestamptz; not float, numeric or bpchar) is its key: (column, value) -> instances; the one
// with the fewest values is chosen. A change looks up the value of its old and of its new row in
// every indexed column of its table. For such a conjunct, true means exactly that the row's value
// is one of the key values, so a lookup hit decides it, and only the rest of the predicate (the
// residual) is evaluated for the row(s) that hit; a residual that reads no changed column is
// evaluated once for both rows. Instances without an indexable conjunct are on the table's scan
// list: their whole predicate is evaluated for every change of the table, and they are counted.
//
// Threads: Route and RouteTruncate are called by one routing thread. AddInstance and
// RemoveInstance may be called from any thread at any time, also while Route runs: they hold the
// router's lock only for the update of that instance's own index entries: a hash insert or erase
// per key value (a removal also searches the bucket of each of its values, which is short unless
// many instances share a key value). Growing a hash table when it fills is the exception: it
// rehashes the column's index (amortized O(1) per instance, but one pause of O(instances)).

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "core/row.h"
#include "shapes/instance.h"

namespace shapebridge::shapes {

enum class EntryKind : uint8_t {
  kInsert,       // a new row of the instance: an INSERT, or an UPDATE that made it match (move-in)
  kUpdate,       // an UPDATE of a row that matches before and after, changing shape columns
  kDelete,       // a DELETE, or an UPDATE that made the row stop matching (move-out)
  kMustRefetch,  // the instance's rows are unknown (truncate, missing old row): refetch them
};

std::string_view EntryKindName(EntryKind kind);

// One column value of an entry.
struct FieldValue {
  int column = 0;  // an index into the definition's `columns`
  Value value;     // never kUnchanged
  friend bool operator==(const FieldValue&, const FieldValue&) = default;
};

struct ShapeEntry {
  InstanceId instance;
  EntryKind kind = EntryKind::kInsert;
  // The primary key values in the definition's key order (the old key for kDelete); empty for
  // kMustRefetch.
  std::vector<Value> key;
  // kInsert: every shape column in order; kUpdate: the shape columns whose value changed; kDelete
  // and kMustRefetch: none.
  std::vector<FieldValue> fields;
  friend bool operator==(const ShapeEntry&, const ShapeEntry&) = default;
};

// The router's counters (read by the metrics exporter and by tests).
struct RouterStats {
  std::atomic<uint64_t> changes{0};            // row changes of tables with instances
  std::atomic<uint64_t> candidates{0};         // instances found through the index
  std::atomic<uint64_t> scanned{0};            // scan-list instances evaluated
  std::atomic<uint64_t> entries{0};            // entries emitted, must-refetch included
  std::atomic<uint64_t> must_refetch{0};       // must-refetch entries emitted
  std::atomic<uint64_t> predicate_errors{0};   // evaluations that failed (counted as no match)
  std::atomic<uint64_t> missing_old_rows{0};   // UPDATE/DELETE without a full old row
  std::atomic<uint64_t> schema_mismatches{0};  // changes whose columns differ from the definitions'
  std::atomic<uint64_t> instances{0};          // registered instances (gauge)
  std::atomic<uint64_t> scan_instances{0};     // of which without an indexable conjunct (gauge)
};

class Router {
 public:
  Router();
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Registers one reference to `instance`. Instances with the same id share one registration: the
  // second AddInstance only counts a reference. Fails (FailedPrecondition) when the instance's
  // definition was compiled against other columns of its table than the instances already
  // registered for it.
  absl::Status AddInstance(std::shared_ptr<const ShapeInstance> instance);
  // Drops one reference; the instance leaves the index with the last. Returns false when `id` is
  // not registered.
  bool RemoveInstance(InstanceId id);
  bool Contains(InstanceId id) const;

  // Appends the entries of `change` to `out`, grouped by instance (an instance gets at most one
  // entry, or a delete and an insert when the change moves the row's primary key). An UPDATE or
  // DELETE without the full old row (the table is not REPLICA IDENTITY FULL), or a change whose
  // relation no longer has the columns the definitions were compiled against, gives every
  // instance of the table a kMustRefetch entry.
  void Route(const RelationInfo& relation, const RowChange& change, std::vector<ShapeEntry>* out);
  // A TRUNCATE of `relation`: a kMustRefetch entry for every instance of the table.
  void RouteTruncate(const RelationInfo& relation, std::vector<ShapeEntry>* out);

  const RouterStats& stats() const { return stats_; }

 private:
  struct Slot;
  struct Table;
  struct Candidate;

  // Emits the entries of one instance for the change.
  void Evaluate(const Candidate& candidate, const std::vector<Value>* old_row,
                const std::vector<Value>* new_row, std::vector<ShapeEntry>* out);
  bool MatchesOrCount(const Expr& expr, const std::vector<Value>& row);
  void RefetchAll(const Table& table, std::vector<ShapeEntry>* out);

  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Table>> tables_;  // by "schema.table"
  std::unordered_map<InstanceId, std::unique_ptr<Slot>> slots_;
  // Routing scratch, used under mu_.
  uint64_t epoch_ = 0;
  std::string table_key_;
  std::vector<Candidate> candidates_;
  std::vector<Value> filled_row_;
  RouterStats stats_;
};

}  // namespace shapebridge::shapes
