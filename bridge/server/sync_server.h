#pragma once

// The gRPC server: the ShapeSync service (proto/shapebridge/sync/v1/sync.proto), the standard
// health service and server reflection. gRPC headers stay in the .cc files.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "bridge/log/shape_log.h"
#include "shapes/definition.h"

namespace shapebridge {

namespace auth {
class JwtVerifier;
}
class SnapshotScheduler;
class Writer;

// Settings of the gRPC server (the `server` section of the config file).
struct ServerConfig {
  // host:port to listen on; port 0 picks a free port (tests).
  std::string listen = "0.0.0.0:7070";
  // A heartbeat (and the newest checkpoint) is sent after this long without other messages.
  std::chrono::milliseconds heartbeat_interval{10'000};
  // A client that stays more than max_client_lag_entries behind the log (entries of its
  // subscriptions not sent yet) for longer than slow_client_grace is disconnected with
  // RESOURCE_EXHAUSTED; it resumes from its offsets. The grace lets a client that reads at full
  // speed catch up after a large transaction or a long time offline.
  uint64_t max_client_lag_entries = 100'000;
  std::chrono::milliseconds slow_client_grace{30'000};
  // A client that reads nothing for this long while a message waits for it is cut off (its
  // stream is cancelled: a client that does not read cannot receive a status either).
  std::chrono::milliseconds write_timeout{30'000};
  // Changes per message, and entries read per subscription at a time.
  int batch_entries = 500;
  // Subscriptions one stream may hold.
  int max_subscriptions = 100;
  // How long SIGTERM waits for streams to end before cancelling them.
  std::chrono::milliseconds drain_timeout{5'000};
};

struct ServerStats {
  std::atomic<uint64_t> streams{0};        // open Sync streams (gauge)
  std::atomic<uint64_t> subscriptions{0};  // (gauge)
  std::atomic<uint64_t> changes_sent{0};
  std::atomic<uint64_t> messages_sent{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> checkpoints_sent{0};
  std::atomic<uint64_t> must_refetch_sent{0};
  std::atomic<uint64_t> auth_failures{0};
  std::atomic<uint64_t> slow_client_disconnects{0};
  std::atomic<uint64_t> request_errors{0};
};

using DefinitionMap = std::map<std::string, std::shared_ptr<const shapes::ShapeDefinition>>;

// A ShapeLog::DefinitionLookup over a copy of `definitions`.
inline ShapeLog::DefinitionLookup LookupIn(DefinitionMap definitions) {
  return [definitions = std::move(definitions)](const std::string& name) {
    auto it = definitions.find(name);
    return it == definitions.end() ? nullptr : it->second;
  };
}

// Observations of the serving path, for metrics; either may be empty.
struct ServerObservers {
  // A subscription without a resume offset became up to date: seconds since its Subscribe.
  std::function<void(const std::string& shape, double seconds)> initial_sync;
  // A change of a committed transaction went out to a client: seconds since the commit (by the
  // clocks of Postgres and of this host).
  std::function<void(double seconds)> commit_to_client;
  // A Push call that reached the writer ended (committed or not): seconds it took.
  std::function<void(double seconds)> push;
};

class SyncServer {
 public:
  // Everything borrowed must outlive the server.
  SyncServer(ServerConfig config, DefinitionMap definitions, ShapeLog& log,
             SnapshotScheduler& snapshotter, const auth::JwtVerifier& verifier);
  ~SyncServer();
  SyncServer(const SyncServer&) = delete;
  SyncServer& operator=(const SyncServer&) = delete;

  // Call before Start().
  void SetObservers(ServerObservers observers);
  // Serves the Push RPC with `writer` (borrowed); without one Push fails with
  // FAILED_PRECONDITION. Call before Start().
  void SetWriter(Writer* writer);
  // Binds and starts serving (gRPC health SERVING unless `serving` is false). FailedPrecondition
  // when the address cannot be bound.
  absl::Status Start(bool serving = true);
  // Sets what gRPC health says (after Start; a Kafka server node is SERVING once it has read the
  // shape topic). Thread-safe; ignored once Shutdown() began.
  void SetServing(bool serving);
  // The bound port (after Start).
  int port() const;
  // Sets health to NOT_SERVING, ends every stream with UNAVAILABLE ("the server is stopping:
  // resume from your offsets"), waits for them up to drain_timeout, then stops. Idempotent.
  void Shutdown();

  const ServerStats& stats() const;

  struct Impl;  // the service and its sessions (sync_server.cc)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace shapebridge
