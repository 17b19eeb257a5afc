#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bridge/log/shape_log.h"
#include "bridge/replication/transaction_sink.h"
#include "shapes/router.h"

namespace shapebridge {

// The routing stage: the TransactionSink that turns the replication stream into shape log
// entries. Changes go through the router in runs of up to kRouteBatch (see Router::Route of a
// span: the index lookups of a run overlap), always before a relation is redescribed, before a
// truncate and at the commit; the entries of a transaction are held until its commit (memory grows
// with the entries a transaction gives the registered instances, not with the transaction) and then
// appended to the ShapeLog at once. Durability and the flush position are the ShapeLog's. Called
// from the replication thread only (see TransactionSink); the router and the log must outlive it.
class RoutingSink final : public TransactionSink {
 public:
  // The longest run of changes routed at once.
  static constexpr size_t kRouteBatch = 32;

  RoutingSink(shapes::Router& router, ShapeLog& log);

  Lsn DurableLsn() const override { return log_.DurableLsn(); }
  absl::Status OnRelation(const RelationInfo& relation) override;
  absl::Status OnBegin(const TransactionBegin& begin) override;
  absl::Status OnChange(RowChange change) override;
  absl::Status OnTruncate(const TruncateChange& truncate) override;
  absl::Status OnCommit(const TransactionCommit& commit) override;
  absl::Status OnIdlePosition(Lsn position) override;
  absl::Status OnStreamReset(Lsn position, std::string_view reason) override;
  absl::Status Sync() override { return log_.Sync(); }

  // Row changes routed so far, by table ("schema.name") and operation ("insert", "update",
  // "delete", "truncate"). Thread-safe.
  std::map<std::pair<std::string, std::string>, uint64_t> ChangeCounts() const;

 private:
  void Collect(RetireReason refetch_reason);
  // Routes the pending changes, in order.
  void RoutePending();

  shapes::Router& router_;
  ShapeLog& log_;
  std::unordered_map<RelationId, RelationInfo> relations_;
  Lsn written_through_;  // transactions committing below this were routed already
  bool skipping_ = false;
  uint64_t seq_ = 0;
  Xid xid_;
  int64_t commit_unix_micros_ = 0;
  // Changes counted by relation (by id: no string work per change), named when described.
  struct RelationCounts {
    std::string table;
    uint64_t ops[4] = {};  // insert, update, delete, truncate
  };
  mutable std::mutex counts_mu_;
  std::unordered_map<RelationId, RelationCounts> counts_;
  std::vector<RowChange> pending_;  // changes of the open transaction not routed yet
  std::vector<shapes::ShapeEntry> scratch_;
  std::vector<RoutedEntry> entries_;
};

}  // namespace shapebridge
