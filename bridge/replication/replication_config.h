#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace shapebridge {

// Settings of the replication core. Parsed from the `postgres` and `replication` sections of the
// config file (bridge/app/config.cc); defaults are the values below.
struct ReplicationConfig {
  // libpq connection string or URI of the source database.
  std::string dsn;
  // Logical replication slot (pgoutput) that shapebridge owns.
  std::string slot = "shapebridge";
  // Publication that names the replicated tables.
  std::string publication = "shapebridge";
  // Schema-qualified tables to replicate ("public.tasks").
  std::vector<std::string> tables;
  // Create the publication, and add missing tables to it. When false it must exist already.
  bool manage_publication = true;
  // Set REPLICA IDENTITY FULL on replicated tables that lack it (needed to see the old row of
  // updates and deletes). When false, a table without it is an error.
  bool set_replica_identity_full = true;
  // pgoutput protocol version: 1 or 2 (2 without streaming: see README limits).
  int protocol_version = 1;
  // How often a standby status update is sent when nothing else triggers one.
  std::chrono::milliseconds status_interval{10'000};
  // How often pg_logical_emit_message writes a heartbeat so an idle slot advances (0: never).
  std::chrono::milliseconds heartbeat_interval{10'000};
  // Longest time between two sink syncs while the stream is busy (group commit bound).
  std::chrono::milliseconds sync_interval{50};
  // Backoff between reconnect attempts: starts at min, doubles up to max.
  std::chrono::milliseconds reconnect_backoff_min{100};
  std::chrono::milliseconds reconnect_backoff_max{10'000};
  // How long to keep retrying while the slot is active in another process before giving up.
  std::chrono::milliseconds slot_busy_timeout{60'000};
  std::chrono::seconds connect_timeout{10};
};

}  // namespace shapebridge
