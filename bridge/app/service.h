#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/statusor.h"
#include "bridge/app/config.h"

namespace shapebridge {

namespace shapes {
class Router;
}
namespace auth {
class JwtVerifier;
}
namespace kafka {
class ShapeTopicReader;
struct ShapeTopicStats;
}  // namespace kafka
class InstanceRequester;
class KafkaReplicator;
class PgConnection;
class Replicator;
class RoutingSink;
class Writer;
struct RegistryStats;

// `shapebridge serve`: replication, routing, the shape log, snapshots and the gRPC server in
// one process, wired from the config. The composition root of the serving path (main and the
// integration tests both use it).
//
// With log.backend: kafka it is a server node instead: its shape log follows the shape topic
// (the replicator routes and takes snapshots), and it asks the replicator for new instances
// through the instance registry (bridge/server/registry.h).
//
// Lifecycle: Create() checks the config against the database and opens the shape log; Start()
// starts serving; Stop() (idempotent) drains the streams, stops replication and makes the log
// durable. done() turns true when replication ended by itself (exit_status() says why).
class Service {
 public:
  static absl::StatusOr<std::unique_ptr<Service>> Create(const Config& config);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  absl::Status Start();
  void Stop();
  // Periodic upkeep (retention of idle instances); call about once a second.
  void Tick();

  int port() const;
  // The port of the metrics endpoint (0 when turned off).
  int metrics_port() const;
  bool done() const;
  // Stop() has begun.
  bool stopping() const { return stopping_.load(); }
  absl::Status exit_status() const;

  const Config& config() const { return config_; }
  ShapeLog& shape_log() { return *log_; }
  const ShapeLog& shape_log() const { return *log_; }
  const SyncServer& server() const { return *server_; }
  // Null when no shape is writable.
  const Writer* writer() const { return writer_.get(); }
  // Not a server node's (null), unless it runs the replicator role.
  const Replicator& replicator() const { return *replicator_; }
  const Replicator* replicator_or_null() const;
  const shapes::Router& router() const { return *router_; }
  const RoutingSink& sink() const { return *sink_; }
  const Snapshotter* snapshotter() const { return snapshotter_.get(); }
  // A server node's (null otherwise).
  const kafka::ShapeTopicStats* shape_topic_stats() const;
  const RegistryStats* registry_stats() const;
  // Ready to serve: a server node has read the shape topic up to where it ended at its start.
  bool ready() const;
  // A Kafka server node (which may run the replicator role too: kafka.replicate).
  bool server_node() const { return reader_ != nullptr; }
  // Row changes routed, by table and operation.
  std::map<std::pair<std::string, std::string>, uint64_t> ChangeCounts() const;
  // The Kafka replicator role's metrics (empty unless this process runs it).
  std::function<KafkaReplicatorStats()> kafka_stats() const;
  size_t definitions() const { return definitions_; }
  const Metrics& metrics() const { return *metrics_; }
  // Before Start().
  void SetServerObservers(ServerObservers observers);

 private:
  Service() = default;
  // The Kafka server node's shape log (a follower of the shape topic) and what feeds it.
  absl::Status CreateServerNode(const Config& config, PgConnection& sql,
                                const DefinitionMap& definitions);

  Config config_;
  std::unique_ptr<shapes::Router> router_;
  std::unique_ptr<ShapeLog> log_;
  std::unique_ptr<RoutingSink> sink_;
  std::unique_ptr<Replicator> replicator_;
  std::unique_ptr<Snapshotter> snapshotter_;
  std::unique_ptr<kafka::ShapeTopicReader> reader_;
  std::unique_ptr<InstanceRequester> requester_;
  // kafka.replicate: the replicator role in this process, on a thread of its own.
  std::unique_ptr<KafkaReplicator> kafka_replicator_;
  std::thread kafka_thread_;
  std::mutex kafka_mu_;
  std::condition_variable kafka_cv_;
  bool kafka_stop_ = false;
  std::atomic<bool> kafka_done_{false};
  absl::Status kafka_status_;  // when kafka_done_
  std::vector<int64_t> reader_start_;
  std::unique_ptr<auth::JwtVerifier> verifier_;
  std::unique_ptr<Writer> writer_;
  std::unique_ptr<SyncServer> server_;
  std::unique_ptr<Metrics> metrics_;
  size_t definitions_ = 0;
  bool stopped_ = false;
  std::atomic<bool> stopping_{false};
};

}  // namespace shapebridge
