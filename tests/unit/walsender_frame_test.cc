#include "bridge/replication/decoder/walsender_frame.h"

#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shapebridge::walsender {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();
constexpr int64_t kMaxI64 = std::numeric_limits<int64_t>::max();
constexpr int64_t kMinI64 = std::numeric_limits<int64_t>::min();

std::string BigEndian64(uint64_t v) {
  std::string out;
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
  return out;
}

TEST(WalsenderFrameTest, DecodesXLogDataFieldByField) {
  const std::string frame = "w" + BigEndian64(0x16B3748) + BigEndian64(0x16B3800) +
                            BigEndian64(760'000'000'000'000) + "Bpayload";
  absl::StatusOr<ServerFrame> decoded = DecodeFrame(frame);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const XLogData& data = std::get<XLogData>(*decoded);
  EXPECT_EQ(data.wal_start, Lsn(0x16B3748));
  EXPECT_EQ(data.wal_end, Lsn(0x16B3800));
  EXPECT_EQ(data.send_time, PgTimestamp(760'000'000'000'000));
  EXPECT_EQ(data.payload, "Bpayload");
  // The payload borrows from the frame.
  EXPECT_EQ(data.payload.data(), frame.data() + 25);
  EXPECT_EQ(EncodeXLogData(data.wal_start, data.wal_end, data.send_time, data.payload), frame);
}

TEST(WalsenderFrameTest, XLogDataWithEmptyPayload) {
  const std::string frame = EncodeXLogData(Lsn(1), Lsn(2), PgTimestamp(3), "");
  ASSERT_EQ(frame.size(), 25u);
  absl::StatusOr<ServerFrame> decoded = DecodeFrame(frame);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(std::get<XLogData>(*decoded).payload.empty());
}

TEST(WalsenderFrameTest, XLogDataMaxValuesRoundTrip) {
  const std::string payload(1 << 20, '\xff');
  const std::string frame = EncodeXLogData(Lsn(kMaxU64), Lsn(0), PgTimestamp(kMinI64), payload);
  absl::StatusOr<ServerFrame> decoded = DecodeFrame(frame);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const XLogData& data = std::get<XLogData>(*decoded);
  EXPECT_EQ(data.wal_start, Lsn(kMaxU64));
  EXPECT_EQ(data.wal_end, Lsn(0));
  EXPECT_EQ(data.send_time, PgTimestamp(kMinI64));
  EXPECT_EQ(data.payload, payload);
}

TEST(WalsenderFrameTest, EveryTruncatedXLogDataHeaderIsRejected) {
  const std::string frame = EncodeXLogData(Lsn(1), Lsn(2), PgTimestamp(3), "");
  for (size_t n = 0; n < frame.size(); ++n) {
    absl::StatusOr<ServerFrame> decoded = DecodeFrame(std::string_view(frame).substr(0, n));
    ASSERT_FALSE(decoded.ok()) << n;
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_THAT(std::string(DecodeFrame(frame.substr(0, 10)).status().message()),
              HasSubstr("walsender XLogData: truncated"));
}

TEST(WalsenderFrameTest, DecodesKeepaliveFieldByField) {
  const std::string frame = "k" + BigEndian64(0x2A) + BigEndian64(99) + std::string(1, '\x01');
  ASSERT_EQ(frame.size(), 18u);
  absl::StatusOr<ServerFrame> decoded = DecodeFrame(frame);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const Keepalive& keepalive = std::get<Keepalive>(*decoded);
  EXPECT_EQ(keepalive.wal_end, Lsn(0x2A));
  EXPECT_EQ(keepalive.send_time, PgTimestamp(99));
  EXPECT_TRUE(keepalive.reply_requested);
  EXPECT_EQ(EncodeKeepalive(keepalive), frame);
}

TEST(WalsenderFrameTest, KeepaliveRoundTrip) {
  for (const Keepalive& keepalive : {Keepalive{Lsn(0), PgTimestamp(0), false},
                                     Keepalive{Lsn(kMaxU64), PgTimestamp(kMaxI64), true},
                                     Keepalive{Lsn(5), PgTimestamp(kMinI64), false}}) {
    const std::string frame = EncodeKeepalive(keepalive);
    ASSERT_EQ(frame.size(), 18u);
    absl::StatusOr<ServerFrame> decoded = DecodeFrame(frame);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    const Keepalive& got = std::get<Keepalive>(*decoded);
    EXPECT_EQ(got.wal_end, keepalive.wal_end);
    EXPECT_EQ(got.send_time, keepalive.send_time);
    EXPECT_EQ(got.reply_requested, keepalive.reply_requested);
  }
}

TEST(WalsenderFrameTest, KeepaliveWrongLengthOrReplyByteIsRejected) {
  const std::string frame = EncodeKeepalive({Lsn(1), PgTimestamp(2), false});
  for (size_t n = 0; n < frame.size(); ++n) {
    EXPECT_FALSE(DecodeFrame(std::string_view(frame).substr(0, n)).ok()) << n;
  }
  EXPECT_THAT(std::string(DecodeFrame(frame + "x").status().message()),
              HasSubstr("walsender Keepalive: 19 bytes (must be exactly 18)"));
  std::string bad_reply = frame;
  bad_reply.back() = '\x02';
  EXPECT_THAT(std::string(DecodeFrame(bad_reply).status().message()),
              HasSubstr("reply_requested is 2"));
  bad_reply.back() = '\xff';
  EXPECT_FALSE(DecodeFrame(bad_reply).ok());
}

TEST(WalsenderFrameTest, UnknownTypeIsRejected) {
  EXPECT_THAT(std::string(DecodeFrame("").status().message()), HasSubstr("empty"));
  // 'r' is a client frame: the server never sends it.
  const std::string standby = EncodeStandbyStatus(Lsn(1), Lsn(1), Lsn(1), PgTimestamp(1), false);
  EXPECT_THAT(std::string(DecodeFrame(standby).status().message()), HasSubstr("unknown type 'r'"));
  EXPECT_THAT(std::string(DecodeFrame(std::string(1, '\0')).status().message()),
              HasSubstr("unknown type 0x00"));
  EXPECT_EQ(DecodeFrame("W" + std::string(24, '\0')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(WalsenderFrameTest, StandbyStatusFieldByField) {
  const std::string frame =
      EncodeStandbyStatus(Lsn(0x100), Lsn(0x80), Lsn(0x40), PgTimestamp(760'000'000'000'000), true);
  ASSERT_EQ(frame.size(), 34u);
  EXPECT_EQ(frame[0], 'r');
  EXPECT_EQ(frame.substr(1, 8), BigEndian64(0x100));
  EXPECT_EQ(frame.substr(9, 8), BigEndian64(0x80));
  EXPECT_EQ(frame.substr(17, 8), BigEndian64(0x40));
  EXPECT_EQ(frame.substr(25, 8), BigEndian64(760'000'000'000'000));
  EXPECT_EQ(frame[33], '\x01');
  EXPECT_EQ(EncodeStandbyStatus(Lsn(0), Lsn(0), Lsn(0), PgTimestamp(-1), false),
            "r" + std::string(24, '\0') + std::string(8, '\xff') + std::string(1, '\0'));
}

}  // namespace
}  // namespace shapebridge::walsender
