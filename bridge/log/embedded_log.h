#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "bridge/replication/transaction_sink.h"
#include "core/row.h"

namespace shapebridge {

// Settings of the embedded log (the `log` section of the config file).
struct EmbeddedLogConfig {
  // Directory of the segment files; created if missing.
  std::string dir;
  // A segment is closed and a new one started, at a transaction boundary, past this size.
  uint64_t segment_bytes = 64ull << 20;
  // Oldest closed segments are deleted while the log is larger than this (0: keep everything).
  uint64_t retention_bytes = 0;
  // Userspace write buffer; it is written to the file when full and on Sync().
  uint64_t write_buffer_bytes = 1ull << 20;
};

struct EmbeddedLogStats {
  std::atomic<uint64_t> records{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> syncs{0};
  std::atomic<uint64_t> transactions{0};
  std::atomic<uint64_t> replayed_transactions_dropped{0};
  std::atomic<uint64_t> durable_lsn{0};
};

// A durable, append-only log of the transaction stream on local disk: segment files of
// CRC-checked records (proto/shapebridge/log/v1/txlog.proto).
//
// The writer is the TransactionSink of the replication core, used from the replication thread
// only. Open() recovers after a crash: a torn record and a transaction without its commit at the
// end are cut off, so the log ends at a boundary and DurableLsn() is where replication resumes.
// Transactions that commit below what the log holds (replayed after a restart) are dropped.
class EmbeddedLog final : public TransactionSink {
 public:
  static absl::StatusOr<std::unique_ptr<EmbeddedLog>> Open(const EmbeddedLogConfig& config);
  ~EmbeddedLog() override;

  Lsn DurableLsn() const override { return durable_; }
  absl::Status OnRelation(const RelationInfo& relation) override;
  absl::Status OnBegin(const TransactionBegin& begin) override;
  absl::Status OnChange(RowChange change) override;
  absl::Status OnTruncate(const TruncateChange& truncate) override;
  absl::Status OnCommit(const TransactionCommit& commit) override;
  absl::Status OnIdlePosition(Lsn position) override;
  absl::Status OnStreamReset(Lsn position, std::string_view reason) override;
  absl::Status Sync() override;

  const EmbeddedLogStats& stats() const { return stats_; }

 private:
  struct Impl;
  explicit EmbeddedLog(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
  Lsn durable_;
  EmbeddedLogStats stats_;
};

// One committed transaction as read back from the log.
struct LoggedTransaction {
  TransactionBegin begin;
  std::vector<std::variant<RowChange, TruncateChange>> changes;
  TransactionCommit commit;
};

// The stream restarted (the slot was created anew): earlier state is not continued.
struct LoggedReset {
  Lsn position;
  std::string reason;
};

using LogEntry = std::variant<LoggedTransaction, LoggedReset>;

// Reads a log directory from a position, also while another process appends to it. Yields only
// whole transactions (a large one is held in memory while it is read).
class EmbeddedLogReader {
 public:
  // Entries whose transaction commits at or after `from` (Lsn{}: from the start).
  static absl::StatusOr<std::unique_ptr<EmbeddedLogReader>> Open(const std::string& dir,
                                                                 Lsn from = Lsn());
  ~EmbeddedLogReader();

  // The next entry, or nullopt at the end of what is written so far (call again later to
  // follow the log). OutOfRange when retention deleted the segment the reader was in.
  absl::StatusOr<std::optional<LogEntry>> Next();

  // The relation as the log described it at the reader's position.
  const RelationInfo* relation(RelationId id) const;
  // The position up to which the reader has seen everything.
  Lsn position() const { return position_; }

 private:
  EmbeddedLogReader(std::string dir, Lsn from);
  absl::Status OpenNextSegment(bool* opened);

  std::string dir_;
  Lsn from_;
  Lsn position_;
  std::unordered_map<RelationId, RelationInfo> relations_;
  std::string segment_path_;
  uint64_t segment_seq_ = 0;
  int fd_ = -1;
  uint64_t offset_ = 0;  // of the next record in the current segment
  std::optional<LoggedTransaction> pending_;
};

}  // namespace shapebridge
