#include "bridge/replication/decoder/walsender_frame.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace shapebridge::walsender {
namespace {

constexpr char kXLogDataType = 'w';
constexpr char kKeepaliveType = 'k';
constexpr char kStandbyStatusType = 'r';

// Type byte + wal_start + wal_end + send_time; the payload follows.
constexpr size_t kXLogDataHeaderSize = 1 + 8 + 8 + 8;
// Type byte + wal_end + send_time + reply_requested.
constexpr size_t kKeepaliveSize = 1 + 8 + 8 + 1;

uint64_t ReadUInt64(std::string_view bytes, size_t offset) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8; ++i) {
    value = (value << 8) | static_cast<uint8_t>(bytes[offset + i]);
  }
  return value;
}

void AppendUInt64(std::string* out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((value >> shift) & 0xff));
  }
}

}  // namespace

absl::StatusOr<ServerFrame> DecodeFrame(std::string_view frame) {
  if (frame.empty()) {
    return absl::InvalidArgumentError("walsender frame: empty");
  }
  switch (frame[0]) {
    case kXLogDataType: {
      if (frame.size() < kXLogDataHeaderSize) {
        return absl::InvalidArgumentError(
            absl::StrFormat("walsender XLogData: truncated (%d bytes, the header alone is %d)",
                            frame.size(), kXLogDataHeaderSize));
      }
      XLogData data;
      data.wal_start = Lsn(ReadUInt64(frame, 1));
      data.wal_end = Lsn(ReadUInt64(frame, 9));
      data.send_time = PgTimestamp(static_cast<int64_t>(ReadUInt64(frame, 17)));
      data.payload = frame.substr(kXLogDataHeaderSize);
      return data;
    }
    case kKeepaliveType: {
      if (frame.size() != kKeepaliveSize) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "walsender Keepalive: %d bytes (must be exactly %d)", frame.size(), kKeepaliveSize));
      }
      const auto reply = static_cast<uint8_t>(frame[kKeepaliveSize - 1]);
      if (reply > 1) {
        return absl::InvalidArgumentError(
            absl::StrFormat("walsender Keepalive: reply_requested is %d (must be 0 or 1)", reply));
      }
      Keepalive keepalive;
      keepalive.wal_end = Lsn(ReadUInt64(frame, 1));
      keepalive.send_time = PgTimestamp(static_cast<int64_t>(ReadUInt64(frame, 9)));
      keepalive.reply_requested = reply == 1;
      return keepalive;
    }
    default: {
      const auto type = static_cast<uint8_t>(frame[0]);
      if (type > 0x20 && type < 0x7f) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "walsender frame: unknown type '%c' (0x%02x)", static_cast<char>(type), type));
      }
      return absl::InvalidArgumentError(
          absl::StrFormat("walsender frame: unknown type 0x%02x", type));
    }
  }
}

std::string EncodeXLogData(Lsn wal_start, Lsn wal_end, PgTimestamp send_time,
                           std::string_view payload) {
  std::string out;
  out.reserve(kXLogDataHeaderSize + payload.size());
  out.push_back(kXLogDataType);
  AppendUInt64(&out, wal_start.value());
  AppendUInt64(&out, wal_end.value());
  AppendUInt64(&out, static_cast<uint64_t>(send_time.micros()));
  out.append(payload);
  return out;
}

std::string EncodeKeepalive(const Keepalive& keepalive) {
  std::string out;
  out.reserve(kKeepaliveSize);
  out.push_back(kKeepaliveType);
  AppendUInt64(&out, keepalive.wal_end.value());
  AppendUInt64(&out, static_cast<uint64_t>(keepalive.send_time.micros()));
  out.push_back(keepalive.reply_requested ? 1 : 0);
  return out;
}

std::string EncodeStandbyStatus(Lsn written, Lsn flushed, Lsn applied, PgTimestamp now,
                                bool reply_requested) {
  std::string out;
  out.reserve(1 + 4 * 8 + 1);
  out.push_back(kStandbyStatusType);
  AppendUInt64(&out, written.value());
  AppendUInt64(&out, flushed.value());
  AppendUInt64(&out, applied.value());
  AppendUInt64(&out, static_cast<uint64_t>(now.micros()));
  out.push_back(reply_requested ? 1 : 0);
  return out;
}

}  // namespace shapebridge::walsender
