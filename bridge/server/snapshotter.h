#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bridge/log/shape_log.h"

namespace shapebridge {

// Settings of initial snapshots (the `snapshot` section of the config file).
struct SnapshotConfig {
  std::string dsn;        // the source database (postgres.dsn)
  int workers = 4;        // snapshots that run at once, each on its own connection
  int batch_rows = 1000;  // rows appended to the shape log at a time
  int max_attempts = 20;  // snapshots retried after a routing race (see ShapeLog)
  std::chrono::seconds connect_timeout{10};
};

struct SnapshotterStats {
  std::atomic<uint64_t> snapshots{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> rows{0};
};

// Whoever takes the first snapshot of a new instance: the Snapshotter, or on a Kafka server node
// the replicator, asked through the instance registry.
class SnapshotScheduler {
 public:
  virtual ~SnapshotScheduler() = default;
  // Queues the instance's snapshot; its result reaches readers through the ShapeLog.
  virtual void Schedule(std::shared_ptr<InstanceLog> log) = 0;
};

// Takes the first snapshot of new shape instances: in a REPEATABLE READ READ ONLY transaction it
// records pg_current_snapshot() and the WAL insert position, then streams the shape's query (its
// predicate with every value bound as a parameter) into the shape log in batches, so memory does
// not grow with the shape's size.
//
// Lifecycle: Start() spawns the workers; Stop() (idempotent) ends them after their current
// snapshot; instances still queued then fail with Unavailable. The ShapeLog must outlive it.
class Snapshotter final : public SnapshotScheduler {
 public:
  Snapshotter(SnapshotConfig config, ShapeLog& log);
  ~Snapshotter() override;
  Snapshotter(const Snapshotter&) = delete;
  Snapshotter& operator=(const Snapshotter&) = delete;

  void Start();
  void Stop();
  void Schedule(std::shared_ptr<InstanceLog> log) override;

  const SnapshotterStats& stats() const { return stats_; }

 private:
  void Work();

  const SnapshotConfig config_;
  ShapeLog& log_;
  SnapshotterStats stats_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<InstanceLog>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace shapebridge
