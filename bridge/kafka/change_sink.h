#pragma once

// The change topic: every change of the replicated tables as one Kafka record, keyed by table and
// primary key (so one row's changes stay in one partition, in commit order), with a JSON value
// documented in README.md ("The change topic"). Each sink sync waits for the delivery report of
// every record produced so far: DurableLsn() never passes a transaction with a record Kafka has
// not acknowledged, so the slot's flush position never does either. A failed delivery (or a fatal
// producer error) fails the sync: the replication session starts over from DurableLsn() with a
// new producer, and records after it are produced again (consumers drop records whose (lsn, index)
// they have). Every checkpoint_interval, after a sync, a checkpoint record goes to every
// partition: its partition holds every change of the transactions that commit before its LSN.

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bridge/kafka/kafka_config.h"
#include "bridge/replication/transaction_sink.h"

namespace shapebridge::kafka {

struct Producer;  // client.h

struct ChangeSinkStats {
  std::atomic<uint64_t> produced{0};   // records handed to the producer
  std::atomic<uint64_t> delivered{0};  // records Kafka acknowledged
  std::atomic<uint64_t> delivery_errors{0};
  std::atomic<uint64_t> producers{0};  // producers created (1 + restarts after errors)
  std::atomic<uint64_t> checkpoints{0};
  std::atomic<uint64_t> flush_micros{0};  // time spent waiting for delivery reports
  std::atomic<uint64_t> durable_lsn{0};
};

class ChangeSink final : public TransactionSink {
 public:
  // `keys`: the primary key columns of each replicated table ("schema.table"); a table without
  // one is keyed by all its columns. Checks (and creates when missing) the change topic: an error
  // when it does not exist and cannot be created.
  static absl::StatusOr<std::unique_ptr<ChangeSink>> Create(
      const KafkaConfig& config, std::map<std::string, std::vector<std::string>> keys);
  ~ChangeSink() override;

  Lsn DurableLsn() const override { return durable_; }
  absl::Status OnRelation(const RelationInfo& relation) override;
  absl::Status OnBegin(const TransactionBegin& begin) override;
  absl::Status OnChange(RowChange change) override;
  absl::Status OnTruncate(const TruncateChange& truncate) override;
  absl::Status OnCommit(const TransactionCommit& commit) override;
  absl::Status OnIdlePosition(Lsn position) override;
  absl::Status OnStreamReset(Lsn position, std::string_view reason) override;
  absl::Status Sync() override;

  int partitions() const { return partitions_; }
  const ChangeSinkStats& stats() const { return *stats_; }

 private:
  struct Table {
    std::string name;
    std::vector<std::string> columns;
    std::vector<size_t> key;
  };
  ChangeSink(KafkaConfig config, std::map<std::string, std::vector<std::string>> keys,
             int partitions);

  // The producer, made anew when the last one failed (after the failure was reported).
  absl::Status Ready();
  absl::Status Produce(int32_t partition, const std::string& key, const std::string& value,
                       const std::string& type, const std::string& lsn, const std::string& index);

  const KafkaConfig config_;
  const std::string topic_;  // the change topic
  const std::map<std::string, std::vector<std::string>> keys_;
  const int partitions_;
  std::unique_ptr<ChangeSinkStats> stats_;
  std::unique_ptr<Producer> producer_;
  bool failure_reported_ = false;     // the producer's failure was returned to the replicator
  std::map<uint32_t, Table> tables_;  // by relation id
  TransactionBegin txn_;
  std::string lsn_text_;  // txn_'s commit LSN as text, the records' lsn
  uint32_t index_ = 0;    // the next change's position in the transaction
  Lsn last_commit_;       // end LSN of the last transaction passed on
  Lsn idle_;
  Lsn durable_;
  Lsn checkpointed_;
  std::chrono::steady_clock::time_point last_checkpoint_{};
};

}  // namespace shapebridge::kafka
