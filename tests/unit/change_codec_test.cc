// The stored encoding of changes and the Changes responses put together from it by hand: what a
// client parses must be what the protobuf API would have built.

#include "bridge/log/change_codec.h"

#include <limits>

#include "bridge/log/record_codec.h"
#include "gtest/gtest.h"
#include "shapebridge/log/v1/shapelog.pb.h"
#include "shapebridge/sync/v1/sync.pb.h"

namespace shapebridge {
namespace {

namespace pb = ::shapebridge::sync::v1;

shapes::ShapeEntry Insert() {
  shapes::ShapeEntry e{.kind = shapes::EntryKind::kInsert};
  e.key = {Value::Int(7)};
  e.fields = {{0, Value::Int(7)},
              {1, Value::String(ValueKind::kText, "a title")},
              {2, Value::Null()},
              {3, Value::TimestampTz(1'700'000'000'000'000)}};
  return e;
}

TEST(ChangeCodecTest, InsertCarriesEveryColumnInOrder) {
  std::string bytes;
  EncodeChange(Insert(), 4, &bytes);
  pb::Change change;
  ASSERT_TRUE(change.ParseFromString(bytes));
  EXPECT_EQ(change.op(), pb::Change::INSERT);
  EXPECT_FALSE(change.has_offset());
  ASSERT_EQ(change.key_size(), 1);
  EXPECT_EQ(change.key(0).int_value(), 7);
  ASSERT_EQ(change.row_size(), 4);
  EXPECT_EQ(change.row(0).int_value(), 7);
  EXPECT_EQ(change.row(1).text(), "a title");
  EXPECT_TRUE(change.row(2).null());
  EXPECT_EQ(change.row(3).timestamptz_us(), 1'700'000'000'000'000);
}

TEST(ChangeCodecTest, UpdateMarksTheColumnsItDoesNotSetUnchanged) {
  shapes::ShapeEntry e{.kind = shapes::EntryKind::kUpdate};
  e.key = {Value::Int(7)};
  e.fields = {{2, Value::Null()}, {3, Value::Unchanged()}};
  std::string bytes;
  EncodeChange(e, 4, &bytes);
  pb::Change change;
  ASSERT_TRUE(change.ParseFromString(bytes));
  EXPECT_EQ(change.op(), pb::Change::UPDATE);
  ASSERT_EQ(change.row_size(), 4);
  EXPECT_TRUE(change.row(0).unchanged());
  EXPECT_TRUE(change.row(1).unchanged());
  EXPECT_TRUE(change.row(2).null()) << "null is not unchanged";
  EXPECT_TRUE(change.row(3).unchanged());
}

TEST(ChangeCodecTest, DeleteCarriesOnlyTheKey) {
  shapes::ShapeEntry e{.kind = shapes::EntryKind::kDelete};
  e.key = {Value::Int(7)};
  std::string bytes;
  EncodeChange(e, 4, &bytes);
  pb::Change change;
  ASSERT_TRUE(change.ParseFromString(bytes));
  EXPECT_EQ(change.op(), pb::Change::DELETE);
  EXPECT_EQ(change.key_size(), 1);
  EXPECT_EQ(change.row_size(), 0);
}

TEST(ChangeCodecTest, ResponseEqualsTheOneBuiltWithTheProtobufApi) {
  ByteChunks chunks;
  std::vector<StoredEntry> stored;
  // Offsets whose varints take 1 to 10 bytes, and a zero index.
  const std::vector<LogOffset> offsets = {
      {Lsn(0), 0},
      {Lsn(127), 1},
      {Lsn(0x16B374D848), 300},
      {Lsn(std::numeric_limits<uint64_t>::max()), std::numeric_limits<uint32_t>::max()}};
  pb::SyncResponse expected;
  expected.mutable_changes()->set_subscription_id(std::string(200, 's'));  // 2-byte length
  for (const LogOffset& o : offsets) {
    std::string encoded;
    EncodeChange(Insert(), 4, &encoded);
    StoredEntry e{.offset = o, .change = chunks.Append(encoded)};
    stored.push_back(e);
    pb::Change* c = expected.mutable_changes()->add_changes();
    ASSERT_TRUE(c->ParseFromString(encoded));
    c->mutable_offset()->set_lsn(o.lsn.value());
    c->mutable_offset()->set_index(o.index);
  }
  std::vector<const StoredEntry*> pointers;
  for (const StoredEntry& e : stored) pointers.push_back(&e);
  std::string bytes = "prefix";
  AppendChangesResponse(expected.changes().subscription_id(), pointers, &bytes);
  ASSERT_EQ(bytes.substr(0, 6), "prefix") << "appends";
  pb::SyncResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes.substr(6)));
  EXPECT_EQ(parsed.SerializeAsString(), expected.SerializeAsString());
  EXPECT_EQ(bytes.substr(6), expected.SerializeAsString()) << "the canonical encoding";
}

TEST(ByteChunksTest, ViewsStayValidAsChunksAreAdded) {
  ByteChunks chunks;
  std::vector<std::pair<std::string_view, std::string>> kept;
  for (int i = 0; i < 2000; ++i) {
    // Up to a megabyte: some need a chunk of their own.
    const std::string bytes(i % 500 == 0 ? (1 << 20) : 1 + i % 300,
                            static_cast<char>('a' + i % 26));
    kept.emplace_back(chunks.Append(bytes), bytes);
  }
  for (const auto& [view, bytes] : kept) ASSERT_EQ(view, bytes);
}

TEST(ChangeCodecTest, EmptyBatch) {
  std::string bytes;
  AppendChangesResponse("s", {}, &bytes);
  pb::SyncResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  ASSERT_TRUE(parsed.has_changes());
  EXPECT_EQ(parsed.changes().subscription_id(), "s");
  EXPECT_EQ(parsed.changes().changes_size(), 0);
}

TEST(ChangeCodecTest, JournalFrameHoldsTheEntryRecord) {
  const shapes::InstanceId id(0x0102030405060708ULL, 0xF1F2F3F4F5F6F7F8ULL);
  for (const LogOffset& o : {LogOffset{Lsn(0x16B374D848), 3}, LogOffset{Lsn(0), 0}}) {
    std::string encoded;
    EncodeChange(Insert(), 4, &encoded);
    const StoredEntry e{.offset = o, .change = encoded};
    std::string bytes = "x";
    const uint64_t size = AppendEntryFrame(id, e, &bytes);
    ASSERT_EQ(size, bytes.size() - 1);
    std::string_view payload;
    size_t frame_bytes = 0;
    ASSERT_EQ(logrecord::ParseFrame(std::string_view(bytes).substr(1), &payload, &frame_bytes),
              logrecord::FrameStatus::kOk);
    EXPECT_EQ(frame_bytes, size);
    log::v1::ShapeLogRecord expected;
    expected.mutable_entry()->set_instance_id(
        std::string("\x01\x02\x03\x04\x05\x06\x07\x08\xF1\xF2\xF3\xF4\xF5\xF6\xF7\xF8", 16));
    expected.mutable_entry()->set_lsn(o.lsn.value());
    expected.mutable_entry()->set_index(o.index);
    expected.mutable_entry()->set_change(encoded);
    EXPECT_EQ(std::string(payload), expected.SerializeAsString());
  }
}

}  // namespace
}  // namespace shapebridge
