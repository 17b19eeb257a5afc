#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "bridge/common/pg.h"
#include "bridge/replication/replication_config.h"
#include "core/lsn.h"

namespace shapebridge {

// What pg_replication_slots says about our slot.
struct SlotState {
  bool exists = false;
  std::optional<int> active_pid;
  std::string wal_status;  // reserved, extended, unreserved, lost
  Lsn confirmed_flush;
  Lsn restart;
};

// Checks and prepares the source database for replication, over an ordinary SQL connection:
//  - wal_level is logical; the role may replicate;
//  - every configured table exists; the publication exists and publishes every table and every
//    operation (created or extended when config.manage_publication);
//  - every table has REPLICA IDENTITY FULL (set when config.set_replica_identity_full).
// Each failure is a Status whose message names what to change (the table, the setting, the SQL).
absl::Status PrepareSource(PgConnection& sql, const ReplicationConfig& config);

// Reads the slot's state. A slot of another plugin or database is FailedPrecondition; an
// invalidated slot (wal_status lost) is DataLoss with what to do about it.
absl::StatusOr<SlotState> InspectSlot(PgConnection& sql, const ReplicationConfig& config);

// Creates the slot over a replication connection; returns its consistent point.
absl::StatusOr<Lsn> CreateSlot(PgConnection& replication, const ReplicationConfig& config);

}  // namespace shapebridge
