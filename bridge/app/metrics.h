#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace shapebridge {

class Service;
class Replicator;
struct ReplicationConfig;

// What a replicator-only process (`replicate` with the Kafka backend) reports of its producer.
struct KafkaReplicatorStats {
  bool leader = false;
  uint64_t produced = 0;
  uint64_t delivered = 0;
  uint64_t delivery_errors = 0;
  uint64_t producers = 0;
  uint64_t checkpoints = 0;
  double flush_seconds = 0;
  uint64_t durable_lsn = 0;
  // The shape topic (when shapes are configured).
  bool shapes = false;
  uint64_t epoch = 0;
  uint64_t shape_produced = 0;
  uint64_t shape_delivered = 0;
  uint64_t shape_delivery_errors = 0;
  uint64_t shape_durable_lsn = 0;
  uint64_t instances = 0;        // live in the replicator's shape log
  uint64_t instances_taken = 0;  // from the registry
  uint64_t registry_errors = 0;
};

// Settings of the metrics and health endpoint (the `metrics` section of the config file).
struct MetricsConfig {
  // host:port of the HTTP endpoint (/metrics, /healthz, /readyz); "" turns it off.
  std::string listen = "0.0.0.0:7071";
  // How often the replication slot's state is read from pg_replication_slots.
  std::chrono::milliseconds slot_poll_interval{10000};
};

// The Prometheus metrics of a Service and its HTTP endpoint:
//   /metrics  the text exposition format;
//   /healthz  liveness: 200, or 503 once replication has ended by itself (the process should be
//             restarted);
//   /readyz   readiness: 200 while replication streams, 503 (with the reason) otherwise.
// Counters and gauges are read from the components' statistics when scraped; histograms are fed
// by hooks Create() installs in the components, so it must run before the Service starts.
class Metrics {
 public:
  static absl::StatusOr<std::unique_ptr<Metrics>> Create(const MetricsConfig& config,
                                                         Service& service);
  // For a replicator-only process: replication and slot metrics, and the Kafka producer's
  // (read from `kafka` when scraped). /readyz is 200 for a standby, and for a leader while it
  // streams.
  static absl::StatusOr<std::unique_ptr<Metrics>> CreateForReplicator(
      const MetricsConfig& config, const ReplicationConfig& replication,
      const Replicator& replicator, std::function<KafkaReplicatorStats()> kafka);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Starts the HTTP endpoint (unless turned off) and the slot poller. FailedPrecondition when
  // the address cannot be bound.
  absl::Status Start();
  // Stops both. Idempotent.
  void Stop();
  // The bound port (after Start; 0 when turned off).
  int port() const;
  // What /metrics serves.
  std::string Scrape() const;

  struct Impl;

 private:
  explicit Metrics(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shapebridge
