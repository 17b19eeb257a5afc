#pragma once

// The shape topic ("<prefix>.shapes"): the shape log's journal as Kafka records, so that server
// nodes anywhere hold the same instance logs as the replicator, with the same offsets.
//
// Each record's value is one shapebridge.log.v1.ShapeLogRecord (proto/shapebridge/log/v1/
// shapelog.proto). Records of an instance (Start, Entry, SnapshotDone, Retired) are keyed by its
// 16-byte id and go to the partition Kafka's default partitioner picks for that key (murmur2), so
// they stay in order. After each sync of the shape log, a Routed record goes to every partition:
// its partition holds every entry of the transactions that commit before its LSN, and entries
// are served only once a Routed record follows them. Headers: `type` (start, entry,
// snapshot_done, retired, routed, epoch), `epoch`, and for entries `lsn` and `index` (the log
// offset).
//
// Epochs: a replicator that becomes leader starts a new epoch (a number from Postgres) with an
// Epoch record in every partition. Readers ignore records of an older epoch after it, so a
// replicator that lost its lock cannot add to the log, and end the older epoch's instances.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "bridge/kafka/kafka_config.h"
#include "core/lsn.h"

namespace shapebridge {
class ShapeLog;
}

namespace shapebridge::kafka {

struct Producer;

struct ShapeTopicStats {
  std::atomic<uint64_t> produced{0};
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> delivery_errors{0};
  std::atomic<uint64_t> flush_micros{0};  // waiting for delivery reports
  std::atomic<uint64_t> epoch{0};         // the writer's epoch
  std::atomic<uint64_t> durable_lsn{0};   // the last Routed position delivered
  // A reader's.
  std::atomic<uint64_t> consumed{0};
  std::atomic<uint64_t> fenced{0};  // records of an older epoch, ignored
  std::atomic<uint64_t> consume_errors{0};
  std::atomic<bool> caught_up{false};  // read up to the end the topic had at the start
};

// The replicator's side: the ShapeLog's mirror (ShapeLog::SetMirror).
class ShapeTopicWriter {
 public:
  // Checks (and creates when missing) the shape topic.
  static absl::StatusOr<std::unique_ptr<ShapeTopicWriter>> Create(const KafkaConfig& config);
  ~ShapeTopicWriter();

  // Starts `epoch`: an Epoch record in every partition, each delivered. Returns their offsets
  // (where readers of this epoch start).
  absl::StatusOr<std::vector<int64_t>> BeginEpoch(uint64_t epoch);
  // Produces the journal records in `frames` (framed ShapeLogRecords), then a Routed record
  // with `routed` in every partition, and waits for every delivery report. Any failure is final
  // (the caller stops): records are not produced twice.
  absl::Status Publish(std::string_view frames, Lsn routed);

  int partitions() const { return partitions_; }
  const ShapeTopicStats& stats() const { return *stats_; }

 private:
  ShapeTopicWriter(KafkaConfig config, int partitions);
  absl::Status Produce(int32_t partition, std::string_view key, std::string_view value,
                       const char* type, const std::string* lsn, const std::string* index,
                       int64_t* offset);
  absl::Status Flush();

  const KafkaConfig config_;
  const std::string topic_;
  const int partitions_;
  std::unique_ptr<ShapeTopicStats> stats_;
  std::unique_ptr<Producer> producer_;
  std::string epoch_text_;
  Lsn routed_;  // the last Routed position produced
};

// A server node's side: follows the shape topic into a follower ShapeLog.
class ShapeTopicReader {
 public:
  // Reads the topic's partition count (an error when the topic does not exist: the replicator
  // creates it).
  static absl::StatusOr<std::unique_ptr<ShapeTopicReader>> Create(const KafkaConfig& config);
  ~ShapeTopicReader();

  int partitions() const { return partitions_; }
  // Follows every partition into `log` (a follower made with partitions()), from `start[p]`
  // (a partition without one: from its beginning), on a thread of its own, which calls
  // `caught_up` (if set) once it has read up to where the topic ended when reading began.
  absl::Status Start(ShapeLog& log, const std::vector<int64_t>& start,
                     std::function<void()> caught_up = nullptr);
  void Stop();
  const ShapeTopicStats& stats() const { return *stats_; }

 private:
  ShapeTopicReader(KafkaConfig config, int partitions);
  void Run();

  const KafkaConfig config_;
  const std::string topic_;
  const int partitions_;
  std::unique_ptr<ShapeTopicStats> stats_;
  struct Consumer;
  std::unique_ptr<Consumer> consumer_;
  ShapeLog* log_ = nullptr;
  std::function<void()> on_caught_up_;
  std::vector<uint64_t> epochs_;       // per partition: the newest epoch seen
  std::vector<int64_t> begin_;         // per partition: where reading began
  std::vector<int64_t> end_at_start_;  // per partition: the end offset when reading began
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace shapebridge::kafka
