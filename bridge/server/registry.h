#pragma once

// The instance registry: how Kafka server nodes ask the replicator for shape instances, through
// Postgres (see README, "Kafka: server nodes").
//
// - shapebridge.instances: one row per instance a server node serves (its description and when a
//   server last used it). A server node inserts the row and NOTIFYs shapebridge_instances; the
//   replicator takes the instance (registers it with its router and takes its snapshot) and
//   publishes its log on the shape topic. Servers renew last_used while the instance has
//   subscribers; the replicator releases an instance whose row is older than the lease and deletes
//   the row.
// - shapebridge.replicator_epochs: one row per leader epoch, with the shape topic offsets of its
//   Epoch records, where a server node that starts reads from.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "bridge/log/shape_log.h"
#include "bridge/server/snapshotter.h"

namespace shapebridge {

class PgConnection;

namespace registry {
// The lease of an instance: shape_log.idle_retire (0, never: a year).
inline std::chrono::seconds Lease(std::chrono::seconds idle_retire) {
  return idle_retire.count() == 0 ? std::chrono::seconds(365 * 86400) : idle_retire;
}
// Creates the registry's tables (idempotent; under an advisory lock).
absl::Status CreateSchema(PgConnection& sql);
// A new leader epoch.
absl::StatusOr<uint64_t> NewEpoch(PgConnection& sql);
absl::Status RecordEpochStart(PgConnection& sql, uint64_t epoch,
                              const std::vector<int64_t>& offsets);
// The start offsets of the newest epoch that recorded them (empty when none did).
absl::StatusOr<std::vector<int64_t>> LatestEpochStart(PgConnection& sql);
}  // namespace registry

struct RegistryStats {
  std::atomic<uint64_t> requests{0};  // server: registrations sent
  std::atomic<uint64_t> renewals{0};  // server: lease renewals sent
  std::atomic<uint64_t> taken{0};     // replicator: instances taken
  std::atomic<uint64_t> released{0};  // replicator: instances released (lease expired)
  std::atomic<uint64_t> errors{0};
};

// A server node's side: the SnapshotScheduler of a follower ShapeLog. Schedule() queues the
// instance's registration; a thread sends it, renews the leases of instances with subscribers
// and asks again for instances still waiting for their Start.
class InstanceRequester final : public SnapshotScheduler {
 public:
  InstanceRequester(std::string dsn, ShapeLog& log, std::chrono::seconds lease);
  ~InstanceRequester() override;
  void Schedule(std::shared_ptr<InstanceLog> log) override;
  void Start();
  void Stop();
  const RegistryStats& stats() const { return stats_; }

 private:
  void Run();
  absl::Status Request(PgConnection& sql, const shapes::ShapeInstance& instance);

  const std::string dsn_;
  ShapeLog& log_;
  const std::chrono::seconds lease_;
  RegistryStats stats_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<const shapes::ShapeInstance>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

// The replicator's side: takes the instances the registry asks for into its ShapeLog and
// schedules their snapshots; releases them when their lease expires.
class InstanceRegistrar {
 public:
  InstanceRegistrar(std::string dsn, ShapeLog& log, SnapshotScheduler& snapshots,
                    ShapeLog::DefinitionLookup definitions, std::chrono::seconds lease);
  ~InstanceRegistrar();
  void Start();
  void Stop();
  const RegistryStats& stats() const { return stats_; }

 private:
  void Run();
  absl::Status Listen(PgConnection& sql);
  absl::Status Scan(PgConnection& sql);
  void Take(const shapes::InstanceId& id, std::string_view description);
  void Release(const shapes::InstanceId& id);

  const std::string dsn_;
  ShapeLog& log_;
  SnapshotScheduler& snapshots_;
  const ShapeLog::DefinitionLookup definitions_;
  const std::chrono::seconds lease_;
  RegistryStats stats_;
  std::map<shapes::InstanceId, std::shared_ptr<InstanceLog>> held_;  // the thread's
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace shapebridge
