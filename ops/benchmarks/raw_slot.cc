#include "ops/benchmarks/raw_slot.h"

#include <poll.h>

#include <stdexcept>

#include "bridge/replication/decoder/walsender_frame.h"

namespace shapebridge::bench {

using Clock = std::chrono::steady_clock;

RawSlotReader::RawSlotReader(const std::string& dsn, const std::string& slot,
                             const std::string& publication) {
  auto conn = PgConnection::Connect(dsn, PgConnectionKind::kReplication, "bench-raw");
  if (!conn.ok()) throw std::runtime_error(conn.status().ToString());
  conn_ = *std::move(conn);
  auto s = conn_->StartCopyBoth("START_REPLICATION SLOT " + slot +
                                " LOGICAL 0/0 (proto_version '1', publication_names '" +
                                publication + "')");
  if (!s.ok()) throw std::runtime_error(s.ToString());
  last_status_ = Clock::now();
}

std::optional<Lsn> RawSlotReader::NextCommit(Clock::time_point deadline) {
  while (true) {
    auto data = conn_->ReadCopyData();
    if (!data.ok()) throw std::runtime_error(data.status().ToString());
    if (!data->has_value()) {
      const auto now = Clock::now();
      if (now >= deadline) return std::nullopt;
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      pollfd fd{.fd = conn_->Socket(), .events = POLLIN, .revents = 0};
      (void)poll(&fd, 1, static_cast<int>(std::min<int64_t>(wait.count() + 1, 1000)));
      if (auto c = conn_->ConsumeInput(); !c.ok()) throw std::runtime_error(c.ToString());
      continue;
    }
    const std::string& frame = **data;
    const bool reply = frame.size() == 18 && frame[0] == 'k' && frame[17] == 1;
    if (reply || Clock::now() - last_status_ > std::chrono::seconds(1)) {
      const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      (void)conn_->WriteCopyData(walsender::EncodeStandbyStatus(
          last_end_, last_end_, last_end_, PgTimestamp::FromUnixMicros(now_us), false));
      (void)conn_->FlushOutput();
      last_status_ = Clock::now();
    }
    // XLogData whose pgoutput message is a Commit: 'w' + 24 bytes of header, then 'C', a flags
    // byte, the commit LSN and the end LSN.
    if (frame.size() > 25 && frame[0] == 'w' && frame[25] == 'C') {
      uint64_t end = 0;
      for (int i = 0; i < 8; ++i) end = (end << 8) | static_cast<uint8_t>(frame[25 + 10 + i]);
      last_end_ = Lsn(end);
      return last_end_;
    }
  }
}

}  // namespace shapebridge::bench
