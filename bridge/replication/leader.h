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
  // Tries once; nullptr when another process holds the lock.
  static absl::StatusOr<std::unique_ptr<LeaderLock>> TryAcquire(const std::string& dsn,
                                                                const std::string& slot);
  ~LeaderLock();
  LeaderLock(const LeaderLock&) = delete;
  LeaderLock& operator=(const LeaderLock&) = delete;

  // OK while the lock's session is alive.
  absl::Status Check();

 private:
  explicit LeaderLock(std::unique_ptr<PgConnection> sql);
  std::unique_ptr<PgConnection> sql_;
};

}  // namespace shapebridge
