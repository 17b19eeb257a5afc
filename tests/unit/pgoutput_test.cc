#include "bridge/replication/decoder/pgoutput.h"

#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shapebridge::pgoutput {

// Lets GoogleTest print messages readably when an expectation fails.
void PrintTo(const Message& message, std::ostream* os) { *os << DebugString(message); }
void PrintTo(const DecodeContext& context, std::ostream* os) {
  *os << "v" << context.protocol_version << (context.in_stream ? " in stream" : "");
}

namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr DecodeContext kV1{.protocol_version = 1, .in_stream = false};
constexpr DecodeContext kV2{.protocol_version = 2, .in_stream = false};
constexpr DecodeContext kV2InStream{.protocol_version = 2, .in_stream = true};

constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();
constexpr uint32_t kMaxU32 = std::numeric_limits<uint32_t>::max();
constexpr int64_t kMaxI64 = std::numeric_limits<int64_t>::max();
constexpr int64_t kMinI64 = std::numeric_limits<int64_t>::min();
constexpr int32_t kMinI32 = std::numeric_limits<int32_t>::min();
constexpr int32_t kMaxI32 = std::numeric_limits<int32_t>::max();

// Builds wire bytes by hand, independently of Encode, so tests can check Encode against it.
class Bytes {
 public:
  Bytes& U8(uint8_t v) {
    s_.push_back(static_cast<char>(v));
    return *this;
  }
  Bytes& Ch(char c) {
    s_.push_back(c);
    return *this;
  }
  Bytes& I16(int16_t v) { return BigEndian(static_cast<uint16_t>(v), 2); }
  Bytes& I32(int32_t v) { return BigEndian(static_cast<uint32_t>(v), 4); }
  Bytes& U32(uint32_t v) { return BigEndian(v, 4); }
  Bytes& I64(int64_t v) { return BigEndian(static_cast<uint64_t>(v), 8); }
  Bytes& U64(uint64_t v) { return BigEndian(v, 8); }
  Bytes& Str(std::string_view v) {
    s_.append(v);
    s_.push_back('\0');
    return *this;
  }
  Bytes& Raw(std::string_view v) {
    s_.append(v);
    return *this;
  }
  const std::string& str() const { return s_; }

 private:
  Bytes& BigEndian(uint64_t v, int size) {
    for (int shift = (size - 1) * 8; shift >= 0; shift -= 8) {
      s_.push_back(static_cast<char>((v >> shift) & 0xff));
    }
    return *this;
  }
  std::string s_;
};

TupleColumn Null() { return {TupleColumnKind::kNull, ""}; }
TupleColumn Toast() { return {TupleColumnKind::kUnchangedToast, ""}; }
TupleColumn Text(std::string v) { return {TupleColumnKind::kText, std::move(v)}; }
TupleColumn Binary(std::string v) { return {TupleColumnKind::kBinary, std::move(v)}; }

TupleData AllKinds() {
  return {Text("1"), Null(), Toast(), Binary(std::string("\x00\xff", 2)), Text(""), Binary("")};
}

std::string ContextName(const DecodeContext& c) {
  return absl::StrCat("v", c.protocol_version, c.in_stream ? "_in_stream" : "_outside_stream");
}

// Messages that are valid under `context`, small enough to test every prefix of.
std::vector<Message> SmallSamples(const DecodeContext& context) {
  const bool in_stream = context.in_stream;
  const std::optional<Xid> xid = in_stream ? std::optional<Xid>(Xid(735)) : std::nullopt;
  const std::optional<Xid> max_xid = in_stream ? std::optional<Xid>(Xid(kMaxU32)) : std::nullopt;
  std::vector<Message> out;
  if (!in_stream) {
    out.push_back(Begin{Lsn(0x16B3748), PgTimestamp(760'000'000'000'000), Xid(735)});
    out.push_back(Begin{Lsn(kMaxU64), PgTimestamp(kMaxI64), Xid(kMaxU32)});
    out.push_back(Begin{Lsn(0), PgTimestamp(kMinI64), Xid(0)});
    out.push_back(Commit{0, Lsn(0x16B3748), Lsn(0x16B3778), PgTimestamp(760'000'000'000'000)});
    out.push_back(Commit{0, Lsn(kMaxU64), Lsn(kMaxU64), PgTimestamp(-1)});
  }
  out.push_back(Origin{Lsn(0x1234), "node_a"});
  out.push_back(Origin{Lsn(kMaxU64), ""});
  out.push_back(Relation{xid,
                         RelationId(16385),
                         "public",
                         "items",
                         'd',
                         {{1, "id", 23, -1}, {0, "name", 25, -1}, {0, "price", 1700, 655366}}});
  out.push_back(Relation{max_xid, RelationId(kMaxU32), "", "", 'n', {}});
  out.push_back(Relation{xid, RelationId(1), "s", "t", 'f', {{0, "", kMaxU32, kMinI32}}});
  out.push_back(Relation{xid, RelationId(2), "s", "t", 'i', {{1, "k", 0, kMaxI32}}});
  out.push_back(Type{xid, 16400, "public", "mood"});
  out.push_back(Type{max_xid, kMaxU32, "", ""});
  out.push_back(Insert{xid, RelationId(16385), AllKinds()});
  out.push_back(Insert{xid, RelationId(16385), {}});
  out.push_back(Update{xid, RelationId(16385), OldTupleKind::kNone, {}, AllKinds()});
  out.push_back(Update{xid, RelationId(16385), OldTupleKind::kKey, {Text("1")}, AllKinds()});
  out.push_back(Update{xid, RelationId(16385), OldTupleKind::kOld, AllKinds(), {}});
  out.push_back(Update{max_xid, RelationId(kMaxU32), OldTupleKind::kOld, {}, {}});
  out.push_back(Delete{xid, RelationId(16385), OldTupleKind::kKey, {Text("1"), Null()}});
  out.push_back(Delete{xid, RelationId(16385), OldTupleKind::kOld, AllKinds()});
  out.push_back(Delete{xid, RelationId(16385), OldTupleKind::kKey, {}});
  out.push_back(Truncate{xid, 0, {RelationId(16385)}});
  out.push_back(Truncate{xid,
                         Truncate::kCascade | Truncate::kRestartIdentity,
                         {RelationId(1), RelationId(kMaxU32), RelationId(0)}});
  out.push_back(Truncate{xid, Truncate::kRestartIdentity, {}});
  out.push_back(LogicalMessage{xid, 1, Lsn(0x99), "shapebridge", "hello"});
  out.push_back(LogicalMessage{xid, 0, Lsn(kMaxU64), "", ""});
  out.push_back(LogicalMessage{xid, 1, Lsn(1), "p", std::string("\x00\x01\xff\n'\\", 6)});
  if (context.protocol_version >= 2) {
    if (in_stream) {
      out.push_back(StreamStop{});
    } else {
      out.push_back(StreamStart{Xid(735), 1});
      out.push_back(StreamStart{Xid(kMaxU32), 0});
      out.push_back(StreamCommit{Xid(735), 0, Lsn(0x16B3748), Lsn(0x16B3778),
                                 PgTimestamp(760'000'000'000'000)});
      out.push_back(
          StreamCommit{Xid(kMaxU32), 0, Lsn(kMaxU64), Lsn(kMaxU64), PgTimestamp(kMaxI64)});
      out.push_back(StreamAbort{Xid(735), Xid(735)});
      out.push_back(StreamAbort{Xid(735), Xid(kMaxU32)});
    }
  }
  return out;
}

// Messages at the limits of the format: too big to test every prefix of.
std::vector<Message> LargeSamples(const DecodeContext& context) {
  const std::optional<Xid> xid = context.in_stream ? std::optional<Xid>(Xid(7)) : std::nullopt;
  std::vector<Message> out;
  TupleData widest(std::numeric_limits<int16_t>::max(), Null());
  widest[0] = Text("first");
  widest.back() = Binary("last");
  out.push_back(Insert{xid, RelationId(1), widest});
  out.push_back(Update{xid, RelationId(1), OldTupleKind::kOld, widest, widest});
  out.push_back(Delete{xid, RelationId(1), OldTupleKind::kOld, widest});
  std::string big(1 << 20, 'x');
  big[0] = '\0';
  out.push_back(Insert{xid, RelationId(1), {Text(big), Binary(big)}});
  out.push_back(LogicalMessage{xid, 1, Lsn(1), std::string(4096, 'p'), big});
  Relation relation{xid, RelationId(1), std::string(1000, 'n'), std::string(1000, 'r'), 'f', {}};
  for (int i = 0; i < std::numeric_limits<int16_t>::max(); ++i) {
    relation.columns.push_back(
        {static_cast<uint8_t>(i % 2), absl::StrCat("c", i), static_cast<uint32_t>(i), i});
  }
  out.push_back(relation);
  Truncate truncate{xid, Truncate::kCascade, {}};
  for (uint32_t i = 0; i < 100'000; ++i) {
    truncate.relations.push_back(RelationId(i));
  }
  out.push_back(truncate);
  return out;
}

class RoundTripTest : public ::testing::TestWithParam<DecodeContext> {};

TEST_P(RoundTripTest, SmallMessagesRoundTrip) {
  const DecodeContext context = GetParam();
  for (const Message& message : SmallSamples(context)) {
    const std::string bytes = Encode(message, context);
    absl::StatusOr<Message> decoded = Decode(bytes, context);
    ASSERT_TRUE(decoded.ok()) << DebugString(message) << ": " << decoded.status();
    EXPECT_EQ(*decoded, message);
    EXPECT_EQ(Encode(*decoded, context), bytes);
  }
}

TEST_P(RoundTripTest, LargeMessagesRoundTrip) {
  const DecodeContext context = GetParam();
  for (const Message& message : LargeSamples(context)) {
    const std::string bytes = Encode(message, context);
    absl::StatusOr<Message> decoded = Decode(bytes, context);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_TRUE(*decoded == message) << "type index " << message.index();
    // The last byte missing is still caught on the big ones.
    EXPECT_FALSE(Decode(std::string_view(bytes).substr(0, bytes.size() - 1), context).ok());
  }
}

TEST_P(RoundTripTest, EveryProperPrefixIsRejected) {
  const DecodeContext context = GetParam();
  for (const Message& message : SmallSamples(context)) {
    const std::string bytes = Encode(message, context);
    for (size_t n = 0; n < bytes.size(); ++n) {
      absl::StatusOr<Message> decoded = Decode(std::string_view(bytes).substr(0, n), context);
      ASSERT_FALSE(decoded.ok()) << DebugString(message) << " prefix of " << n << " bytes";
      EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(std::string(decoded.status().message()), StartsWith("pgoutput"));
    }
  }
}

TEST_P(RoundTripTest, TrailingBytesAreRejected) {
  const DecodeContext context = GetParam();
  for (const Message& message : SmallSamples(context)) {
    for (std::string_view extra : {std::string_view("\0", 1), std::string_view("xyz")}) {
      const std::string bytes = Encode(message, context) + std::string(extra);
      absl::StatusOr<Message> decoded = Decode(bytes, context);
      ASSERT_FALSE(decoded.ok()) << DebugString(message);
      EXPECT_THAT(std::string(decoded.status().message()), HasSubstr("trailing bytes"))
          << DebugString(message);
    }
  }
}

TEST_P(RoundTripTest, DebugStringIsOneLine) {
  const DecodeContext context = GetParam();
  for (const Message& message : SmallSamples(context)) {
    const std::string text = DebugString(message);
    EXPECT_FALSE(text.empty());
    EXPECT_EQ(text.find('\n'), std::string::npos) << text;
    EXPECT_EQ(DebugString(message), text);
  }
}

INSTANTIATE_TEST_SUITE_P(Contexts, RoundTripTest, ::testing::Values(kV1, kV2, kV2InStream),
                         [](const ::testing::TestParamInfo<DecodeContext>& info) {
                           return ContextName(info.param);
                         });

// Hand-written messages, checked field by field.

TEST(PgoutputDecodeTest, BeginFieldByField) {
  const std::string bytes = Bytes().Ch('B').U64(0x16B3748).I64(760'000'000'123'456).U32(735).str();
  ASSERT_EQ(bytes.size(), 21u);
  absl::StatusOr<Message> decoded = Decode(bytes, kV1);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const Begin& begin = std::get<Begin>(*decoded);
  EXPECT_EQ(begin.final_lsn, Lsn(0x16B3748));
  EXPECT_EQ(begin.commit_time, PgTimestamp(760'000'000'123'456));
  EXPECT_EQ(begin.xid, Xid(735));
  EXPECT_EQ(Encode(*decoded, kV1), bytes);
  EXPECT_EQ(DebugString(*decoded),
            "Begin final_lsn=0/16B3748 commit_time=2024-01-31T07:06:40.123456Z xid=735");
}

TEST(PgoutputDecodeTest, BeginLiteralBytes) {
  // As captured: final_lsn 0/16B3748, commit_time 0 (2000-01-01), xid 0x1234.
  const std::string bytes(
      "B"
      "\x00\x00\x00\x00\x01\x6b\x37\x48"
      "\x00\x00\x00\x00\x00\x00\x00\x00"
      "\x00\x00\x12\x34",
      21);
  absl::StatusOr<Message> decoded = Decode(bytes, kV2);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(std::get<Begin>(*decoded).final_lsn.ToString(), "0/16B3748");
  EXPECT_EQ(std::get<Begin>(*decoded).xid, Xid(0x1234));
  EXPECT_EQ(DebugString(*decoded),
            "Begin final_lsn=0/16B3748 commit_time=2000-01-01T00:00:00.000000Z xid=4660");
}

TEST(PgoutputDecodeTest, CommitFieldByField) {
  const std::string bytes = Bytes().Ch('C').U8(0).U64(0x100).U64(0x1FF).I64(42).str();
  absl::StatusOr<Message> decoded = Decode(bytes, kV1);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const Commit& commit = std::get<Commit>(*decoded);
  EXPECT_EQ(commit.flags, 0);
  EXPECT_EQ(commit.commit_lsn, Lsn(0x100));
  EXPECT_EQ(commit.end_lsn, Lsn(0x1FF));
  EXPECT_EQ(commit.commit_time, PgTimestamp(42));
  EXPECT_EQ(Encode(*decoded, kV1), bytes);
}

TEST(PgoutputDecodeTest, InsertFieldByField) {
  const std::string bytes = Bytes()
                                .Ch('I')
                                .U32(16385)
                                .Ch('N')
                                .I16(4)
                                .Ch('t')
                                .I32(1)
                                .Raw("1")
                                .Ch('n')
                                .Ch('u')
                                .Ch('b')
                                .I32(2)
                                .Raw(std::string("\x00\xff", 2))
                                .str();
  absl::StatusOr<Message> decoded = Decode(bytes, kV1);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const Insert& insert = std::get<Insert>(*decoded);
  EXPECT_EQ(insert.xid, std::nullopt);
  EXPECT_EQ(insert.relation, RelationId(16385));
  ASSERT_EQ(insert.new_tuple.size(), 4u);
  EXPECT_EQ(insert.new_tuple[0], Text("1"));
  EXPECT_EQ(insert.new_tuple[1].kind, TupleColumnKind::kNull);
  EXPECT_EQ(insert.new_tuple[2].kind, TupleColumnKind::kUnchangedToast);
  EXPECT_EQ(insert.new_tuple[3], Binary(std::string("\x00\xff", 2)));
  EXPECT_EQ(Encode(*decoded, kV1), bytes);
  EXPECT_EQ(DebugString(*decoded), "Insert xid=- rel=16385 new=(t'1',n,u,b'\\x00ff')");
}

TEST(PgoutputDecodeTest, InsertInStreamCarriesXid) {
  const std::string bytes = Bytes().Ch('I').U32(900).U32(16385).Ch('N').I16(0).str();
  absl::StatusOr<Message> decoded = Decode(bytes, kV2InStream);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(std::get<Insert>(*decoded).xid, Xid(900));
  EXPECT_EQ(std::get<Insert>(*decoded).relation, RelationId(16385));
  EXPECT_TRUE(std::get<Insert>(*decoded).new_tuple.empty());
  EXPECT_EQ(Encode(*decoded, kV2InStream), bytes);
  EXPECT_EQ(DebugString(*decoded), "Insert xid=900 rel=16385 new=()");
  // The same bytes outside a stream read the xid as the relation and then find garbage.
  EXPECT_FALSE(Decode(bytes, kV2).ok());
}

TEST(PgoutputDecodeTest, RelationInStreamFieldByField) {
  const std::string bytes = Bytes()
                                .Ch('R')
                                .U32(900)
                                .U32(16385)
                                .Str("public")
                                .Str("items")
                                .Ch('f')
                                .I16(2)
                                .U8(1)
                                .Str("id")
                                .U32(23)
                                .I32(-1)
                                .U8(0)
                                .Str("price")
                                .U32(1700)
                                .I32(655366)
                                .str();
  absl::StatusOr<Message> decoded = Decode(bytes, kV2InStream);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const Relation& relation = std::get<Relation>(*decoded);
  EXPECT_EQ(relation.xid, Xid(900));
  EXPECT_EQ(relation.id, RelationId(16385));
  EXPECT_EQ(relation.nspname, "public");
  EXPECT_EQ(relation.relname, "items");
  EXPECT_EQ(relation.replica_identity, 'f');
  ASSERT_EQ(relation.columns.size(), 2u);
  EXPECT_EQ(relation.columns[0], (RelationColumn{1, "id", 23, -1}));
  EXPECT_EQ(relation.columns[1], (RelationColumn{0, "price", 1700, 655366}));
  EXPECT_EQ(Encode(*decoded, kV2InStream), bytes);
  EXPECT_EQ(DebugString(*decoded),
            "Relation xid=900 rel=16385 ns='public' name='items' identity=f "
            "cols=('id' type=23 typmod=-1 key, 'price' type=1700 typmod=655366)");
}

TEST(PgoutputDecodeTest, UpdateWithKeyFieldByField) {
  const std::string bytes = Bytes()
                                .Ch('U')
                                .U32(7)
                                .Ch('K')
                                .I16(1)
                                .Ch('t')
                                .I32(2)
                                .Raw("42")
                                .Ch('N')
                                .I16(2)
                                .Ch('t')
                                .I32(2)
                                .Raw("43")
                                .Ch('u')
                                .str();
  absl::StatusOr<Message> decoded = Decode(bytes, kV1);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const Update& update = std::get<Update>(*decoded);
  EXPECT_EQ(update.relation, RelationId(7));
  EXPECT_EQ(update.old_kind, OldTupleKind::kKey);
  EXPECT_EQ(update.old_tuple, (TupleData{Text("42")}));
  EXPECT_EQ(update.new_tuple, (TupleData{Text("43"), Toast()}));
  EXPECT_EQ(Encode(*decoded, kV1), bytes);
  EXPECT_EQ(DebugString(*decoded), "Update xid=- rel=7 key=(t'42') new=(t'43',u)");
}

TEST(PgoutputDecodeTest, UpdateWithoutOldTuple) {
  const std::string bytes = Bytes().Ch('U').U32(7).Ch('N').I16(1).Ch('n').str();
  absl::StatusOr<Message> decoded = Decode(bytes, kV1);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(std::get<Update>(*decoded).old_kind, OldTupleKind::kNone);
  EXPECT_TRUE(std::get<Update>(*decoded).old_tuple.empty());
  EXPECT_EQ(Encode(*decoded, kV1), bytes);
  EXPECT_EQ(DebugString(*decoded), "Update xid=- rel=7 new=(n)");
}

TEST(PgoutputDecodeTest, DeleteWithFullOldRow) {
  const std::string bytes = Bytes().Ch('D').U32(7).Ch('O').I16(2).Ch('n').Ch('t').I32(0).str();
  absl::StatusOr<Message> decoded = Decode(bytes, kV1);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const Delete& del = std::get<Delete>(*decoded);
  EXPECT_EQ(del.old_kind, OldTupleKind::kOld);
  EXPECT_EQ(del.old_tuple, (TupleData{Null(), Text("")}));
  EXPECT_EQ(Encode(*decoded, kV1), bytes);
  EXPECT_EQ(DebugString(*decoded), "Delete xid=- rel=7 old=(n,t'')");
}

TEST(PgoutputDecodeTest, TruncateFieldByField) {
  const std::string bytes = Bytes().Ch('T').I32(2).U8(3).U32(16385).U32(16390).str();
  absl::StatusOr<Message> decoded = Decode(bytes, kV1);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const Truncate& truncate = std::get<Truncate>(*decoded);
  EXPECT_EQ(truncate.options, Truncate::kCascade | Truncate::kRestartIdentity);
  EXPECT_EQ(truncate.relations, (std::vector<RelationId>{RelationId(16385), RelationId(16390)}));
  EXPECT_EQ(Encode(*decoded, kV1), bytes);
  EXPECT_EQ(DebugString(*decoded),
            "Truncate xid=- options=cascade|restart_identity rels=(16385,16390)");
}

TEST(PgoutputDecodeTest, LogicalMessageFieldByField) {
  const std::string bytes =
      Bytes().Ch('M').U8(1).U64(0x1000).Str("sb").I32(3).Raw(std::string("a\0b", 3)).str();
  absl::StatusOr<Message> decoded = Decode(bytes, kV1);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const LogicalMessage& m = std::get<LogicalMessage>(*decoded);
  EXPECT_TRUE(m.transactional());
  EXPECT_EQ(m.lsn, Lsn(0x1000));
  EXPECT_EQ(m.prefix, "sb");
  EXPECT_EQ(m.content, std::string("a\0b", 3));
  EXPECT_EQ(Encode(*decoded, kV1), bytes);
  EXPECT_EQ(DebugString(*decoded),
            "Message xid=- flags=1 lsn=0/1000 prefix='sb' content='a\\x00b'");
}

TEST(PgoutputDecodeTest, StreamMessagesFieldByField) {
  absl::StatusOr<Message> start = Decode(Bytes().Ch('S').U32(735).U8(1).str(), kV2);
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_EQ(std::get<StreamStart>(*start), (StreamStart{Xid(735), 1}));
  EXPECT_EQ(DebugString(*start), "StreamStart xid=735 first_segment=1");

  absl::StatusOr<Message> stop = Decode("E", kV2InStream);
  ASSERT_TRUE(stop.ok()) << stop.status();
  EXPECT_TRUE(std::holds_alternative<StreamStop>(*stop));

  const std::string commit_bytes =
      Bytes().Ch('c').U32(735).U8(0).U64(0x200).U64(0x300).I64(0).str();
  absl::StatusOr<Message> commit = Decode(commit_bytes, kV2);
  ASSERT_TRUE(commit.ok()) << commit.status();
  EXPECT_EQ(std::get<StreamCommit>(*commit),
            (StreamCommit{Xid(735), 0, Lsn(0x200), Lsn(0x300), PgTimestamp(0)}));
  EXPECT_EQ(Encode(*commit, kV2), commit_bytes);

  absl::StatusOr<Message> abort = Decode(Bytes().Ch('A').U32(735).U32(736).str(), kV2);
  ASSERT_TRUE(abort.ok()) << abort.status();
  EXPECT_EQ(std::get<StreamAbort>(*abort), (StreamAbort{Xid(735), Xid(736)}));
  EXPECT_EQ(DebugString(*abort), "StreamAbort xid=735 subxid=736");
}

TEST(PgoutputDecodeTest, OriginAndTypeFieldByField) {
  const std::string origin_bytes = Bytes().Ch('O').U64(0x10).Str("pg_1").str();
  absl::StatusOr<Message> origin = Decode(origin_bytes, kV1);
  ASSERT_TRUE(origin.ok()) << origin.status();
  EXPECT_EQ(std::get<Origin>(*origin), (Origin{Lsn(0x10), "pg_1"}));
  EXPECT_EQ(DebugString(*origin), "Origin commit_lsn=0/10 name='pg_1'");

  const std::string type_bytes = Bytes().Ch('Y').U32(16400).Str("").Str("mood").str();
  absl::StatusOr<Message> type = Decode(type_bytes, kV1);
  ASSERT_TRUE(type.ok()) << type.status();
  EXPECT_EQ(std::get<Type>(*type), (Type{std::nullopt, 16400, "", "mood"}));
  EXPECT_EQ(DebugString(*type), "Type xid=- oid=16400 ns='' name='mood'");
}

TEST(PgoutputDecodeTest, OriginIsAllowedInsideAStream) {
  // pgoutput_stream_start sends the origin right after the first Stream Start.
  absl::StatusOr<Message> origin = Decode(Bytes().Ch('O').U64(0).Str("up").str(), kV2InStream);
  ASSERT_TRUE(origin.ok()) << origin.status();
  EXPECT_EQ(std::get<Origin>(*origin).name, "up");
}

// Rejections.

// The error text of decoding `bytes`, or "OK".
std::string DecodeError(const std::string& bytes, const DecodeContext& context) {
  const absl::Status status = Decode(bytes, context).status();
  return status.ok() ? "OK" : std::string(status.message());
}

TEST(PgoutputRejectTest, EmptyAndUnknownType) {
  EXPECT_THAT(DecodeError("", kV1), HasSubstr("empty"));
  for (char type : {'X', 'b', 'P', 'K', 'r', 'p', '\0', '\xff', 'w'}) {
    const absl::Status status = Decode(std::string(1, type) + "1234", kV2).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(status.message()), HasSubstr("unknown message type")) << status;
  }
  EXPECT_THAT(DecodeError("X", kV1), HasSubstr("'X'"));
}

TEST(PgoutputRejectTest, TruncationMessageNamesTypeAndOffset) {
  const std::string bytes = Bytes().Ch('R').U32(1).Str("public").Str("t").Ch('d').I16(1).str();
  EXPECT_EQ(DecodeError(bytes + std::string("\x01id\0\x00\x00", 6), kV1),
            "pgoutput Relation: truncated (need 4 bytes at offset 21, have 2)");
  EXPECT_EQ(DecodeError(Bytes().Ch('B').U64(1).str(), kV1),
            "pgoutput Begin: truncated (need 8 bytes at offset 9, have 0)");
}

TEST(PgoutputRejectTest, UnterminatedString) {
  const std::string bytes = Bytes().Ch('O').U64(1).Raw("abc").str();
  EXPECT_THAT(DecodeError(bytes, kV1), HasSubstr("pgoutput Origin: truncated"));
  EXPECT_THAT(DecodeError(bytes, kV1), HasSubstr("NUL"));
}

TEST(PgoutputRejectTest, UnknownTupleKind) {
  const std::string bytes = Bytes().Ch('I').U32(1).Ch('N').I16(3).Ch('n').Ch('u').Ch('x').str();
  EXPECT_EQ(DecodeError(bytes, kV1),
            "pgoutput Insert: new tuple column 2 has unknown kind 'x' (0x78)");
  const std::string old_bytes = Bytes().Ch('D').U32(1).Ch('K').I16(1).U8(0).str();
  EXPECT_THAT(DecodeError(old_bytes, kV1),
              HasSubstr("pgoutput Delete: old tuple column 0 has unknown kind 0x00"));
}

TEST(PgoutputRejectTest, BadTupleLengths) {
  const Bytes head = Bytes().Ch('I').U32(1).Ch('N').I16(1);
  EXPECT_THAT(DecodeError(Bytes(head).Ch('t').I32(-1).str(), kV1),
              HasSubstr("new tuple column 0 has negative length -1"));
  EXPECT_THAT(DecodeError(Bytes(head).Ch('b').I32(kMinI32).str(), kV1),
              HasSubstr("negative length"));
  EXPECT_THAT(DecodeError(Bytes(head).Ch('t').I32(4).Raw("abc").str(), kV1),
              HasSubstr("has length 4 but only 3 bytes remain"));
  EXPECT_THAT(DecodeError(Bytes(head).Ch('b').I32(kMaxI32).Raw("abc").str(), kV1),
              HasSubstr("has length 2147483647"));
  // A negative column count.
  EXPECT_THAT(DecodeError(Bytes().Ch('I').U32(1).Ch('N').I16(-1).str(), kV1),
              HasSubstr("negative column count -1"));
  // A huge column count with nothing behind it fails without allocating for it.
  EXPECT_THAT(DecodeError(Bytes().Ch('I').U32(1).Ch('N').I16(32767).str(), kV1),
              HasSubstr("truncated"));
}

TEST(PgoutputRejectTest, BadCountsAndLengths) {
  EXPECT_THAT(DecodeError(Bytes().Ch('T').I32(-1).U8(0).str(), kV1),
              HasSubstr("pgoutput Truncate: negative relation count -1"));
  EXPECT_THAT(DecodeError(Bytes().Ch('T').I32(kMaxI32).U8(0).U32(1).str(), kV1),
              HasSubstr("pgoutput Truncate: truncated"));
  EXPECT_THAT(DecodeError(Bytes().Ch('R').U32(1).Str("").Str("").Ch('d').I16(-5).str(), kV1),
              HasSubstr("pgoutput Relation: negative column count -5"));
  EXPECT_THAT(DecodeError(Bytes().Ch('R').U32(1).Str("").Str("").Ch('d').I16(32767).str(), kV1),
              HasSubstr("truncated"));
  const Bytes message_head = Bytes().Ch('M').U8(0).U64(1).Str("p");
  EXPECT_THAT(DecodeError(Bytes(message_head).I32(-2).str(), kV1),
              HasSubstr("pgoutput Message: content has negative length -2"));
  EXPECT_THAT(DecodeError(Bytes(message_head).I32(10).Raw("short").str(), kV1),
              HasSubstr("pgoutput Message: content has length 10 but only 5 bytes remain"));
}

TEST(PgoutputRejectTest, BadFlags) {
  EXPECT_THAT(DecodeError(Bytes().Ch('C').U8(1).U64(0).U64(0).I64(0).str(), kV1),
              HasSubstr("pgoutput Commit: unknown flags 0x01"));
  EXPECT_THAT(DecodeError(Bytes().Ch('c').U32(1).U8(0x80).U64(0).U64(0).I64(0).str(), kV2),
              HasSubstr("pgoutput Stream Commit: unknown flags 0x80"));
  EXPECT_THAT(DecodeError(Bytes().Ch('M').U8(2).U64(0).Str("").I32(0).str(), kV1),
              HasSubstr("pgoutput Message: unknown flags 0x02"));
  EXPECT_THAT(
      DecodeError(
          Bytes().Ch('R').U32(1).Str("").Str("").Ch('d').I16(1).U8(2).Str("a").U32(1).I32(1).str(),
          kV1),
      HasSubstr("pgoutput Relation: column 0 has unknown flags 0x02"));
  EXPECT_THAT(DecodeError(Bytes().Ch('S').U32(1).U8(2).str(), kV2),
              HasSubstr("pgoutput Stream Start: first_segment is 2"));
  for (uint8_t options : {4, 8, 0x80, 0xff}) {
    EXPECT_THAT(DecodeError(Bytes().Ch('T').I32(0).U8(options).str(), kV1),
                HasSubstr("pgoutput Truncate: unknown option bits"));
  }
}

TEST(PgoutputRejectTest, BadReplicaIdentity) {
  for (char identity : {'x', 'D', '\0', 'k'}) {
    const std::string bytes = Bytes().Ch('R').U32(1).Str("s").Str("t").Ch(identity).I16(0).str();
    EXPECT_THAT(DecodeError(bytes, kV1), HasSubstr("pgoutput Relation: unknown replica identity"));
  }
}

TEST(PgoutputRejectTest, BadTupleTags) {
  // Insert must be followed by 'N'.
  EXPECT_THAT(DecodeError(Bytes().Ch('I').U32(1).Ch('K').I16(0).str(), kV1),
              HasSubstr("pgoutput Insert: expected new tuple tag 'N' at offset 5, got 'K'"));
  // Update: unknown first tag.
  EXPECT_THAT(DecodeError(Bytes().Ch('U').U32(1).Ch('X').I16(0).str(), kV1),
              HasSubstr("pgoutput Update: unknown tuple tag 'X'"));
  // Update: old tuple not followed by 'N'.
  EXPECT_THAT(DecodeError(Bytes().Ch('U').U32(1).Ch('O').I16(0).Ch('K').I16(0).str(), kV1),
              HasSubstr("pgoutput Update: expected new tuple tag 'N' at offset 8, got 'K'"));
  // Delete: only 'K' or 'O'.
  for (char tag : {'N', 'k', 'o', 'X'}) {
    EXPECT_THAT(DecodeError(Bytes().Ch('D').U32(1).Ch(tag).I16(0).str(), kV1),
                HasSubstr("pgoutput Delete: unknown old tuple tag"));
  }
}

TEST(PgoutputRejectTest, StreamingMessagesNeedProtocolTwo) {
  // Valid v2 bytes for each streaming message, refused under v1.
  for (const Message& message :
       std::vector<Message>{StreamStart{Xid(1), 1}, StreamCommit{Xid(1), 0, Lsn(1), Lsn(2), {}},
                            StreamAbort{Xid(1), Xid(2)}}) {
    const std::string bytes = Encode(message, kV2);
    ASSERT_TRUE(Decode(bytes, kV2).ok());
    EXPECT_THAT(DecodeError(bytes, kV1), HasSubstr("streaming message under protocol version 1"));
  }
  EXPECT_THAT(DecodeError("E", kV1),
              HasSubstr("pgoutput Stream Stop: streaming message under protocol version 1"));
}

TEST(PgoutputRejectTest, StreamPlacement) {
  EXPECT_THAT(DecodeError(Bytes().Ch('S').U32(1).U8(0).str(), kV2InStream),
              HasSubstr("pgoutput Stream Start: inside a stream"));
  EXPECT_THAT(DecodeError("E", kV2), HasSubstr("pgoutput Stream Stop: outside a stream"));
  const std::vector<std::pair<std::string, std::string>> outside_only = {
      {Bytes().Ch('B').U64(1).I64(0).U32(1).str(), "Begin"},
      {Bytes().Ch('C').U8(0).U64(1).U64(2).I64(0).str(), "Commit"},
      {Bytes().Ch('c').U32(1).U8(0).U64(1).U64(2).I64(0).str(), "Stream Commit"},
      {Bytes().Ch('A').U32(1).U32(1).str(), "Stream Abort"},
  };
  for (const auto& [bytes, name] : outside_only) {
    ASSERT_TRUE(Decode(bytes, kV2).ok()) << name;
    EXPECT_THAT(DecodeError(bytes, kV2InStream),
                HasSubstr(absl::StrCat("pgoutput ", name, ": inside a stream")));
  }
}

TEST(PgoutputRejectTest, BadContext) {
  EXPECT_THAT(DecodeError("E", DecodeContext{.protocol_version = 1, .in_stream = true}),
              HasSubstr("in a stream under protocol version 1"));
  EXPECT_THAT(DecodeError("E", DecodeContext{.protocol_version = 0}),
              HasSubstr("unsupported protocol version 0"));
  EXPECT_THAT(DecodeError("E", DecodeContext{.protocol_version = 5}),
              HasSubstr("unsupported protocol version 5"));
}

TEST(PgoutputDebugStringTest, ExtremeTimestampsAreShownRaw) {
  EXPECT_EQ(DebugString(Begin{Lsn(kMaxU64), PgTimestamp(kMaxI64), Xid(kMaxU32)}),
            "Begin final_lsn=FFFFFFFF/FFFFFFFF commit_time=9223372036854775807us xid=4294967295");
  EXPECT_EQ(DebugString(Commit{0, Lsn(0), Lsn(1), PgTimestamp(kMinI64)}),
            "Commit flags=0 commit_lsn=0/0 end_lsn=0/1 commit_time=-9223372036854775808us");
  EXPECT_EQ(DebugString(StreamCommit{Xid(1), 0, Lsn(2), Lsn(3), PgTimestamp(-1)}),
            "StreamCommit xid=1 flags=0 commit_lsn=0/2 end_lsn=0/3 "
            "commit_time=1999-12-31T23:59:59.999999Z");
}

TEST(PgoutputDebugStringTest, EscapesNonPrintables) {
  Insert insert{Xid(5), RelationId(1), {Text(std::string("a'b\\c\n\x00\xc3\xa9", 9))}};
  EXPECT_EQ(DebugString(insert), "Insert xid=5 rel=1 new=(t'a\\'b\\\\c\\x0a\\x00\\xc3\\xa9')");
  EXPECT_EQ(DebugString(Truncate{std::nullopt, 0, {}}), "Truncate xid=- options=0 rels=()");
  EXPECT_EQ(DebugString(StreamStop{}), "StreamStop");
}

}  // namespace
}  // namespace shapebridge::pgoutput
