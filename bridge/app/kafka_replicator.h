#pragma once

// The replicator role with the Kafka backend, as `replicate` runs it (and `serve` with
// kafka.replicate): one process at a time, the holder of the leader lock, streams the slot into
// the change topic and, when shapes are configured, routes it into a shape log whose journal is
// the shape topic (with snapshots and the instance registry); the others wait as standbys.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "bridge/app/config.h"
#include "bridge/app/metrics.h"

namespace shapebridge {

namespace kafka {
class ChangeSink;
class ShapeTopicWriter;
}  // namespace kafka
namespace shapes {
class Router;
}
class InstanceRegistrar;
class LeaderLock;
class Replicator;
class RoutingSink;
class ShapeLog;
class Snapshotter;
class TeeSink;

class KafkaReplicator {
 public:
  // Checks the topics (creating missing ones) and builds the pipeline; `definitions`: the
  // compiled shapes (none: the change topic only).
  static absl::StatusOr<std::unique_ptr<KafkaReplicator>> Create(const Config& config,
                                                                 const DefinitionMap& definitions);
  ~KafkaReplicator();

  // Waits to lead (as a standby), then streams until `stop` says so (it is called with how long
  // it may wait) or an error ends it: losing the lock, a shape topic failure, replication ending.
  absl::Status Run(const std::function<bool(std::chrono::milliseconds)>& stop);

  const Replicator& replicator() const { return *replicator_; }
  bool leader() const { return leader_.load(); }
  // For metrics (thread-safe).
  KafkaReplicatorStats Stats() const;
  // Row changes routed, by table and operation (empty without shapes).
  std::map<std::pair<std::string, std::string>, uint64_t> ChangeCounts() const;

 private:
  KafkaReplicator() = default;

  Config config_;
  std::unique_ptr<kafka::ChangeSink> change_sink_;
  std::unique_ptr<kafka::ShapeTopicWriter> shape_writer_;
  std::unique_ptr<shapes::Router> router_;
  std::unique_ptr<ShapeLog> shape_log_;
  std::unique_ptr<RoutingSink> routing_;
  std::unique_ptr<Snapshotter> snapshotter_;
  std::unique_ptr<InstanceRegistrar> registrar_;
  std::unique_ptr<TeeSink> tee_;
  std::unique_ptr<Replicator> replicator_;
  std::atomic<bool> leader_{false};
};

}  // namespace shapebridge
