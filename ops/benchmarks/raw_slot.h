#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "bridge/common/pg.h"
#include "core/lsn.h"

namespace shapebridge::bench {

// The baseline consumer of the benchmarks: reads a pgoutput slot's CopyData frames without
// decoding them, answering keepalives and reporting progress once a second as any consumer must.
class RawSlotReader {
 public:
  // Starts streaming `slot` (pgoutput, proto_version 1) for `publication`. Throws on error.
  RawSlotReader(const std::string& dsn, const std::string& slot, const std::string& publication);

  // Waits for the next Commit message and returns its end LSN; nullopt at the deadline.
  std::optional<Lsn> NextCommit(std::chrono::steady_clock::time_point deadline);

 private:
  std::unique_ptr<PgConnection> conn_;
  Lsn last_end_;
  std::chrono::steady_clock::time_point last_status_;
};

}  // namespace shapebridge::bench
