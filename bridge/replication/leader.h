#pragma once

// The replicator role is held by one process at a time: the one that holds a Postgres session
// advisory lock named after the slot. Standbys try it every so often; when the leader dies its
// session ends, the lock is released, and a standby takes over (the slot itself also admits one
// consumer only, so two leaders could not both stream). A leader that loses its session (and
// with it the lock) must stop replicating.

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace shapebridge {

class PgConnection;

class LeaderLock {
 public:
  LeaderLock(std::string dsn, std::string slot);
  ~LeaderLock();
  LeaderLock(const LeaderLock&) = delete;
  LeaderLock& operator=(const LeaderLock&) = delete;

  // Tries once, on the lock's own session (connected, or connected again, as needed): true when
  // this process holds the lock now.
  absl::StatusOr<bool> TryAcquire();
  // OK while the session that holds the lock is alive.
  absl::Status Check();

 private:
  const std::string dsn_;
  const std::string slot_;
  std::unique_ptr<PgConnection> sql_;
};

}  // namespace shapebridge
