#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "core/lsn.h"
#include "core/row.h"

namespace shapebridge {

// The stage after replication: where decoded transactions go (the embedded log, later the shape
// router). The seam at which "durable" is decided.
//
// Threading: every method is called from the replication thread only, one call at a time.
// Ordering: transactions arrive whole and in commit order: OnBegin, then any number of OnRelation,
// OnChange and OnTruncate, then OnCommit. Rows are handed on as they are decoded, so a large
// transaction never has to fit in memory. OnRelation also arrives between transactions. After a
// reconnect, transactions the sink already holds are sent again: the sink drops every
// transaction whose commit_lsn is below the position it has already recorded.
// Durability: nothing passed in is durable until Sync() returns OK; DurableLsn() then covers it.
// An error from any method ends the replication session; the replicator reconnects and resumes
// from DurableLsn(), so the sink must tolerate a transaction that began but never committed
// (it discards it).
class TransactionSink {
 public:
  TransactionSink() = default;
  TransactionSink(const TransactionSink&) = delete;
  TransactionSink& operator=(const TransactionSink&) = delete;
  virtual ~TransactionSink() = default;

  // The position up to which everything is durable: the end LSN of the newest durable transaction
  // or a newer durable idle position. Replication resumes here; Postgres is told it may discard
  // WAL up to here, and never further. Lsn{} when the sink is empty.
  virtual Lsn DurableLsn() const = 0;

  virtual absl::Status OnRelation(const RelationInfo& relation) = 0;
  virtual absl::Status OnBegin(const TransactionBegin& begin) = 0;
  // The change is the sink's to keep (the replicator moves each decoded change in).
  virtual absl::Status OnChange(RowChange change) = 0;
  virtual absl::Status OnTruncate(const TruncateChange& truncate) = 0;
  virtual absl::Status OnCommit(const TransactionCommit& commit) = 0;

  // Between transactions: every transaction of the publication that commits before `position`
  // has been passed on. Lets the durable position advance while the published tables are idle.
  virtual absl::Status OnIdlePosition(Lsn position) = 0;

  // The slot was created anew, so the stream does not continue what the sink holds: changes
  // between the two may be lost. Consumers of the sink must refetch.
  virtual absl::Status OnStreamReset(Lsn position, std::string_view reason) = 0;

  // Makes everything passed on so far durable. Called at transaction boundaries when the stream
  // is idle and at least every sync interval while it is busy (group commit).
  virtual absl::Status Sync() = 0;
};

}  // namespace shapebridge
