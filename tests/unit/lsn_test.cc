#include "core/lsn.h"

#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shapebridge {
namespace {

using ::testing::HasSubstr;

TEST(LsnTest, DefaultIsInvalidZero) {
  EXPECT_EQ(Lsn().value(), 0u);
  EXPECT_FALSE(Lsn().valid());
  EXPECT_TRUE(Lsn(1).valid());
  EXPECT_EQ(Lsn().ToString(), "0/0");
}

TEST(LsnTest, ParsesPostgresForm) {
  const absl::StatusOr<Lsn> lsn = Lsn::Parse("16/B374D848");
  ASSERT_TRUE(lsn.ok()) << lsn.status();
  EXPECT_EQ(lsn->value(), 0x16B374D848u);
  EXPECT_EQ(lsn->ToString(), "16/B374D848");
}

TEST(LsnTest, ParsesLowerCaseAndZeroPaddedHalves) {
  EXPECT_EQ(Lsn::Parse("16/b374d848").value(), Lsn(0x16B374D848));
  EXPECT_EQ(Lsn::Parse("00000016/0000000A").value(), Lsn(0x160000000A));
  EXPECT_EQ(Lsn::Parse("0/0").value(), Lsn(0));
  EXPECT_EQ(Lsn::Parse("0/1").value(), Lsn(1));
  EXPECT_EQ(Lsn::Parse("1/0").value(), Lsn(uint64_t{1} << 32));
  EXPECT_EQ(Lsn::Parse("FFFFFFFF/FFFFFFFF").value(), Lsn(std::numeric_limits<uint64_t>::max()));
}

TEST(LsnTest, PrintsUpperCaseHexWithoutPadding) {
  EXPECT_EQ(Lsn(1).ToString(), "0/1");
  EXPECT_EQ(Lsn(0xA).ToString(), "0/A");
  EXPECT_EQ(Lsn(uint64_t{1} << 32).ToString(), "1/0");
  EXPECT_EQ(Lsn(0x160000000A).ToString(), "16/A");
  EXPECT_EQ(Lsn(0xFFFFFFFF).ToString(), "0/FFFFFFFF");
  EXPECT_EQ(Lsn(std::numeric_limits<uint64_t>::max()).ToString(), "FFFFFFFF/FFFFFFFF");
}

TEST(LsnTest, RoundTrips) {
  const std::vector<uint64_t> values = {0,
                                        1,
                                        0xFFFFFFFF,
                                        uint64_t{1} << 32,
                                        0x16B374D848,
                                        0x0123456789ABCDEF,
                                        0xFEDCBA9876543210,
                                        std::numeric_limits<uint64_t>::max() - 1,
                                        std::numeric_limits<uint64_t>::max()};
  for (const uint64_t v : values) {
    const absl::StatusOr<Lsn> parsed = Lsn::Parse(Lsn(v).ToString());
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->value(), v) << Lsn(v).ToString();
  }
  for (const char* text : {"0/0", "16/B374D848", "FFFFFFFF/0", "0/FFFFFFFF", "ABCDEF01/23456789"}) {
    EXPECT_EQ(Lsn::Parse(text)->ToString(), text);
  }
}

TEST(LsnTest, RejectsMalformedText) {
  for (const char* text :
       {"",      "1",    "/1",   "1/",   "/",    "G/0",  "0/G",  "123456789/0", "0/123456789",
        "1/2/3", " 1/2", "1/2 ", "1 /2", "1/ 2", "-1/0", "0/-1", "+1/0",        "0x1/0",
        "1//2",  "1\\2", "1:2"}) {
    const absl::StatusOr<Lsn> lsn = Lsn::Parse(text);
    ASSERT_FALSE(lsn.ok()) << "\"" << text << "\" parsed as " << lsn->ToString();
    EXPECT_EQ(lsn.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(lsn.status().message()), HasSubstr("invalid LSN")) << text;
  }
}

TEST(LsnTest, OrdersByPosition) {
  EXPECT_LT(Lsn(1), Lsn(2));
  EXPECT_LT(Lsn::Parse("0/FFFFFFFF").value(), Lsn::Parse("1/0").value());
  EXPECT_EQ(Lsn(5), Lsn(5));
  EXPECT_GT(Lsn::Parse("16/B374D848").value(), Lsn::Parse("16/B374D847").value());
}

TEST(LsnTest, StreamsAsText) {
  std::ostringstream os;
  os << Lsn(0x16B374D848);
  EXPECT_EQ(os.str(), "16/B374D848");
}

TEST(PgTimestampTest, EpochsLineUp) {
  EXPECT_EQ(PgTimestamp::kPgEpochOffsetMicros, 946684800000000);
  EXPECT_EQ(PgTimestamp(0).unix_micros(), 946684800000000);
  EXPECT_EQ(PgTimestamp::FromUnixMicros(0).micros(), -946684800000000);
  EXPECT_EQ(PgTimestamp::FromUnixMicros(123456789).unix_micros(), 123456789);
}

TEST(PgTimestampTest, PrintsIso8601Utc) {
  EXPECT_EQ(PgTimestamp(0).ToString(), "2000-01-01T00:00:00.000000Z");
  EXPECT_EQ(PgTimestamp(1).ToString(), "2000-01-01T00:00:00.000001Z");
  EXPECT_EQ(PgTimestamp::FromUnixMicros(0).ToString(), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(PgTimestamp::FromUnixMicros(1704164645000006).ToString(),
            "2024-01-02T03:04:05.000006Z");
  EXPECT_EQ(PgTimestamp::FromUnixMicros(1709210096789000).ToString(),
            "2024-02-29T12:34:56.789000Z");
  EXPECT_EQ(PgTimestamp::FromUnixMicros(253402300799999999).ToString(),
            "9999-12-31T23:59:59.999999Z");
}

TEST(PgTimestampTest, PrintsTimesBeforeTheEpochs) {
  EXPECT_EQ(PgTimestamp(-1).ToString(), "1999-12-31T23:59:59.999999Z");
  EXPECT_EQ(PgTimestamp::FromUnixMicros(-1).ToString(), "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(PgTimestamp::FromUnixMicros(-999999).ToString(), "1969-12-31T23:59:59.000001Z");
  EXPECT_EQ(PgTimestamp::FromUnixMicros(-1000000).ToString(), "1969-12-31T23:59:59.000000Z");
  EXPECT_EQ(PgTimestamp::FromUnixMicros(-1000001).ToString(), "1969-12-31T23:59:58.999999Z");
  EXPECT_EQ(PgTimestamp::FromUnixMicros(-86400000000).ToString(), "1969-12-31T00:00:00.000000Z");
  EXPECT_EQ(PgTimestamp::FromUnixMicros(-2208988799999999).ToString(),
            "1900-01-01T00:00:00.000001Z");
  EXPECT_EQ(PgTimestamp::FromUnixMicros(-2203891200000000).ToString(),
            "1900-03-01T00:00:00.000000Z");
  EXPECT_EQ(PgTimestamp::FromUnixMicros(-62135596800000000).ToString(),
            "0001-01-01T00:00:00.000000Z");
}

TEST(PgTimestampTest, Orders) {
  EXPECT_LT(PgTimestamp(-1), PgTimestamp(0));
  EXPECT_EQ(PgTimestamp::FromUnixMicros(946684800000000), PgTimestamp(0));
}

}  // namespace
}  // namespace shapebridge
