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
// RemoveInstance may be called from any thread at any time, also while Route runs; they hold the
// routing lock only for the update of that instance's own index entries: a hash insert or erase
// per key value (a removal also searches the list of each of its values, which is short unless
// many instances share a key value). Nothing in that work grows with the number of instances: a
// column index that fills grows incrementally (each insertion or erasure moves a few entries of
// the old array to the new one), the lists of instances are deques, and the registry of
// instances by id is under a lock of its own, which routing does not take.
//
// Memory: an indexed key value costs 32 bytes (int-like) or 48 bytes (text, uuid) at a load of at
// most 7/8, so 100,000 instances of an integer-keyed shape need a 4 MB index; lookups stay fast
// while the index fits the processor's cache.

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "core/row.h"
#include "shapes/instance.h"

namespace shapebridge::shapes {

namespace router_internal {
struct Bucket;  // an entry of a column index
}  // namespace router_internal

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
  std::atomic<uint64_t> index_moves{0};        // index entries moved to grown arrays
  // The most index entries one AddInstance or RemoveInstance moved (bounded by a small constant
  // per key value of the instance: growing an index never pauses routing for long).
  std::atomic<uint64_t> max_index_moves{0};
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
  // Routes changes of one relation in order: the same entries as routing each in turn, but the
  // index lookups of the next few changes start ahead, which hides most of their memory latency
  // when the index is larger than the cache.
  void Route(const RelationInfo& relation, std::span<const RowChange> changes,
             std::vector<ShapeEntry>* out);
  // A TRUNCATE of `relation`: a kMustRefetch entry for every instance of the table.
  void RouteTruncate(const RelationInfo& relation, std::vector<ShapeEntry>* out);

  const RouterStats& stats() const { return stats_; }

 private:
  struct Slot;
  struct Table;
  struct Candidate;
  struct Garbage;
  struct DefinitionUse {
    const ShapeDefinition* definition = nullptr;
    size_t users = 0;
  };

  // Emits the entries of one instance for the change.
  void Evaluate(const Candidate& candidate, const std::vector<Value>* old_row,
                const std::vector<Value>* new_row, std::vector<ShapeEntry>* out);
  bool MatchesOrCount(const Expr& expr, const std::vector<Value>& row);
  void RefetchAll(const Table& table, std::vector<ShapeEntry>* out);
  // Routing, under mu_.
  Table* FindTable(const RelationInfo& relation);
  void Prefetch(const Table& table, const RowChange& change) const;
  void RouteIn(Table& table, const RelationInfo& relation, const RowChange& change,
               std::vector<ShapeEntry>* out);
  // Index bookkeeping, under mu_.
  uint32_t SoloAux(const Slot& slot) const;
  void SetFirst(router_internal::Bucket& bucket, const Slot& slot) const;
  uint32_t UseDefinition(const ShapeDefinition* definition);
  void DropDefinition(uint32_t number);
  uint32_t NewRest();
  void FreeRest(uint32_t rest);
  void NoteMoves(size_t moved);

  // The instances by id and their reference counts. Lock order: registry_mu_, then mu_.
  mutable std::mutex registry_mu_;
  std::unordered_map<InstanceId, std::unique_ptr<Slot>> slots_;

  // The routing lock: the index and everything below.
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Table>> tables_;  // by "schema.table"
  // Slots by number (an index bucket names its first instance by number), numbers to reuse.
  std::deque<Slot*> numbered_;
  std::deque<uint32_t> free_numbers_;
  // Definitions by number (a bucket of a key that decides alone names its definition).
  std::deque<DefinitionUse> definitions_;
  std::deque<uint32_t> free_definitions_;
  std::unordered_map<const ShapeDefinition*, uint32_t> definition_numbers_;
  // The other instances of the key values that key more than one, by number.
  std::deque<std::vector<Slot*>> rests_;
  std::deque<uint32_t> free_rests_;
  // Routing scratch.
  uint64_t epoch_ = 0;
  std::string table_key_;
  std::vector<Candidate> candidates_;
  std::vector<Value> filled_row_;
  RouterStats stats_;
};

}  // namespace shapebridge::shapes
