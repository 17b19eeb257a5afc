#pragma once

// The frames of the streaming replication sub-protocol inside CopyBoth (PostgreSQL 15 manual,
// "Streaming Replication Protocol"): XLogData ('w') and Primary keepalive ('k') from the server,
// Standby status update ('r') from the client.

#include <string>
#include <string_view>
#include <variant>

#include "absl/status/statusor.h"
#include "core/lsn.h"

namespace shapebridge::walsender {

struct XLogData {
  Lsn wal_start;
  Lsn wal_end;
  PgTimestamp send_time;
  std::string_view payload;  // borrows from the frame passed to DecodeFrame
};

struct Keepalive {
  Lsn wal_end;
  PgTimestamp send_time;
  bool reply_requested = false;
};

using ServerFrame = std::variant<XLogData, Keepalive>;

// Decodes one CopyData payload from the server. Unknown frame types and wrong lengths are
// InvalidArgument errors.
absl::StatusOr<ServerFrame> DecodeFrame(std::string_view frame);

std::string EncodeXLogData(Lsn wal_start, Lsn wal_end, PgTimestamp send_time,
                           std::string_view payload);
std::string EncodeKeepalive(const Keepalive& keepalive);

// The Standby status update ('r'): written, flushed and applied positions, the client's clock, and
// whether the server should reply at once.
std::string EncodeStandbyStatus(Lsn written, Lsn flushed, Lsn applied, PgTimestamp now,
                                bool reply_requested);

}  // namespace shapebridge::walsender
