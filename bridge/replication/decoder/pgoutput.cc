#include "bridge/replication/decoder/pgoutput.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace shapebridge::pgoutput {
namespace {

// Message type bytes (proto.c, LogicalRepMsgType).
constexpr char kBeginType = 'B';
constexpr char kCommitType = 'C';
constexpr char kOriginType = 'O';
constexpr char kRelationType = 'R';
constexpr char kTypeType = 'Y';
constexpr char kInsertType = 'I';
constexpr char kUpdateType = 'U';
constexpr char kDeleteType = 'D';
constexpr char kTruncateType = 'T';
constexpr char kMessageType = 'M';
constexpr char kStreamStartType = 'S';
constexpr char kStreamStopType = 'E';
constexpr char kStreamCommitType = 'c';
constexpr char kStreamAbortType = 'A';

// The tag that precedes the new tuple of an Insert or Update.
constexpr char kNewTupleTag = 'N';

// The smallest encodings, used to bound reserve() by the bytes that remain.
constexpr size_t kMinTupleColumnSize = 1;      // kind byte
constexpr size_t kMinRelationColumnSize = 10;  // flags, empty name, type oid, typmod
constexpr size_t kRelationIdSize = 4;

// Protocol versions this decoder knows; streaming messages need kFirstStreamingVersion.
constexpr int kMinProtocolVersion = 1;
constexpr int kMaxProtocolVersion = 2;
constexpr int kFirstStreamingVersion = 2;

const char* MessageName(uint8_t type) {
  switch (type) {
    case kBeginType:
      return "Begin";
    case kCommitType:
      return "Commit";
    case kOriginType:
      return "Origin";
    case kRelationType:
      return "Relation";
    case kTypeType:
      return "Type";
    case kInsertType:
      return "Insert";
    case kUpdateType:
      return "Update";
    case kDeleteType:
      return "Delete";
    case kTruncateType:
      return "Truncate";
    case kMessageType:
      return "Message";
    case kStreamStartType:
      return "Stream Start";
    case kStreamStopType:
      return "Stream Stop";
    case kStreamCommitType:
      return "Stream Commit";
    case kStreamAbortType:
      return "Stream Abort";
    default:
      return nullptr;
  }
}

// A byte as a person reads it in an error: 'x' when printable, always with its hex value.
std::string DescribeByte(uint8_t byte) {
  if (byte > 0x20 && byte < 0x7f && byte != '\'') {
    return absl::StrFormat("'%c' (0x%02x)", static_cast<char>(byte), byte);
  }
  return absl::StrFormat("0x%02x", byte);
}

// Reads big-endian fields from one message with bounds checks. The first error sticks: later
// reads return zero values and do not overwrite it, so the caller may read a whole message and
// check ok() once, checking earlier only where a value drives a loop or a choice. Offsets in
// errors count from the type byte, which is offset 0.
class Reader {
 public:
  Reader(std::string_view message, std::string_view name)
      : message_(message), pos_(1), name_(name) {}

  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }
  size_t offset() const { return pos_; }
  size_t remaining() const { return ok() ? message_.size() - pos_ : 0; }

  uint8_t UInt8() { return static_cast<uint8_t>(ReadBigEndian(1)); }
  int16_t Int16() { return static_cast<int16_t>(ReadBigEndian(2)); }
  int32_t Int32() { return static_cast<int32_t>(ReadBigEndian(4)); }
  uint32_t UInt32() { return static_cast<uint32_t>(ReadBigEndian(4)); }
  int64_t Int64() { return static_cast<int64_t>(ReadBigEndian(8)); }
  uint64_t UInt64() { return ReadBigEndian(8); }

  Lsn ReadLsn() { return Lsn(UInt64()); }
  Xid ReadXid() { return Xid(UInt32()); }
  RelationId ReadRelationId() { return RelationId(UInt32()); }
  PgTimestamp ReadTimestamp() { return PgTimestamp(Int64()); }

  // A NUL-terminated string; the NUL must lie inside the message.
  std::string CString(std::string_view field) {
    if (!ok()) {
      return {};
    }
    const size_t nul = message_.find('\0', pos_);
    if (nul == std::string_view::npos) {
      Fail(absl::StrFormat("truncated (%s at offset %d has no terminating NUL)", field, pos_));
      return {};
    }
    std::string value(message_.substr(pos_, nul - pos_));
    pos_ = nul + 1;
    return value;
  }

  // `length` bytes announced by an int32 length field: negative or longer than what remains is
  // an error naming `field`.
  std::string LengthPrefixed(int32_t length, std::string_view field) {
    if (!ok()) {
      return {};
    }
    if (length < 0) {
      Fail(absl::StrFormat("%s has negative length %d", field, length));
      return {};
    }
    if (static_cast<size_t>(length) > remaining()) {
      Fail(absl::StrFormat("%s has length %d but only %d bytes remain at offset %d", field, length,
                           remaining(), pos_));
      return {};
    }
    std::string value(message_.substr(pos_, static_cast<size_t>(length)));
    pos_ += static_cast<size_t>(length);
    return value;
  }

  void ExpectEnd() {
    if (ok() && pos_ != message_.size()) {
      Fail(absl::StrFormat("%d trailing bytes at offset %d", message_.size() - pos_, pos_));
    }
  }

  void Fail(std::string_view what) {
    if (ok()) {
      status_ = absl::InvalidArgumentError(absl::StrFormat("pgoutput %s: %s", name_, what));
    }
  }

 private:
  uint64_t ReadBigEndian(size_t size) {
    if (!ok()) {
      return 0;
    }
    if (remaining() < size) {
      Fail(absl::StrFormat("truncated (need %d bytes at offset %d, have %d)", size, pos_,
                           remaining()));
      return 0;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < size; ++i) {
      value = (value << 8) | static_cast<uint8_t>(message_[pos_ + i]);
    }
    pos_ += size;
    return value;
  }

  std::string_view message_;
  size_t pos_;
  std::string_view name_;
  absl::Status status_;
};

std::optional<Xid> ReadStreamXid(Reader& r, const DecodeContext& context) {
  if (!context.in_stream) {
    return std::nullopt;
  }
  return r.ReadXid();
}

TupleData ReadTuple(Reader& r, std::string_view which) {
  TupleData tuple;
  const int16_t ncols = r.Int16();
  if (!r.ok()) {
    return tuple;
  }
  if (ncols < 0) {
    r.Fail(absl::StrFormat("%s has negative column count %d", which, ncols));
    return tuple;
  }
  tuple.reserve(std::min<size_t>(ncols, r.remaining() / kMinTupleColumnSize));
  for (int i = 0; i < ncols && r.ok(); ++i) {
    const uint8_t kind = r.UInt8();
    if (!r.ok()) {
      break;
    }
    TupleColumn column;
    switch (kind) {
      case static_cast<uint8_t>(TupleColumnKind::kNull):
        column.kind = TupleColumnKind::kNull;
        break;
      case static_cast<uint8_t>(TupleColumnKind::kUnchangedToast):
        column.kind = TupleColumnKind::kUnchangedToast;
        break;
      case static_cast<uint8_t>(TupleColumnKind::kText):
      case static_cast<uint8_t>(TupleColumnKind::kBinary): {
        column.kind = static_cast<TupleColumnKind>(kind);
        const int32_t length = r.Int32();
        column.data = r.LengthPrefixed(length, absl::StrFormat("%s column %d", which, i));
        break;
      }
      default:
        r.Fail(absl::StrFormat("%s column %d has unknown kind %s", which, i, DescribeByte(kind)));
        break;
    }
    tuple.push_back(std::move(column));
  }
  return tuple;
}

void ExpectNewTupleTag(Reader& r, uint8_t tag) {
  if (r.ok() && tag != kNewTupleTag) {
    r.Fail(absl::StrFormat("expected new tuple tag 'N' at offset %d, got %s", r.offset() - 1,
                           DescribeByte(tag)));
  }
}

Begin ReadBegin(Reader& r) {
  Begin m;
  m.final_lsn = r.ReadLsn();
  m.commit_time = r.ReadTimestamp();
  m.xid = r.ReadXid();
  return m;
}

Commit ReadCommit(Reader& r) {
  Commit m;
  m.flags = r.UInt8();
  if (r.ok() && m.flags != 0) {
    r.Fail(absl::StrFormat("unknown flags 0x%02x (must be 0)", m.flags));
  }
  m.commit_lsn = r.ReadLsn();
  m.end_lsn = r.ReadLsn();
  m.commit_time = r.ReadTimestamp();
  return m;
}

Origin ReadOrigin(Reader& r) {
  Origin m;
  m.commit_lsn = r.ReadLsn();
  m.name = r.CString("origin name");
  return m;
}

Relation ReadRelation(Reader& r, const DecodeContext& context) {
  Relation m;
  m.xid = ReadStreamXid(r, context);
  m.id = r.ReadRelationId();
  m.nspname = r.CString("namespace");
  m.relname = r.CString("relation name");
  m.replica_identity = static_cast<char>(r.UInt8());
  if (!r.ok()) {
    return m;
  }
  switch (m.replica_identity) {
    case 'd':
    case 'n':
    case 'f':
    case 'i':
      break;
    default:
      r.Fail(absl::StrFormat("unknown replica identity %s",
                             DescribeByte(static_cast<uint8_t>(m.replica_identity))));
      return m;
  }
  const int16_t ncols = r.Int16();
  if (!r.ok()) {
    return m;
  }
  if (ncols < 0) {
    r.Fail(absl::StrFormat("negative column count %d", ncols));
    return m;
  }
  m.columns.reserve(std::min<size_t>(ncols, r.remaining() / kMinRelationColumnSize));
  for (int i = 0; i < ncols && r.ok(); ++i) {
    RelationColumn column;
    column.flags = r.UInt8();
    if (r.ok() && column.flags > 1) {
      r.Fail(absl::StrFormat("column %d has unknown flags 0x%02x", i, column.flags));
      break;
    }
    column.name = r.CString(absl::StrFormat("column %d name", i));
    column.type_oid = r.UInt32();
    column.type_modifier = r.Int32();
    m.columns.push_back(std::move(column));
  }
  return m;
}

Type ReadType(Reader& r, const DecodeContext& context) {
  Type m;
  m.xid = ReadStreamXid(r, context);
  m.type_oid = r.UInt32();
  m.nspname = r.CString("namespace");
  m.name = r.CString("type name");
  return m;
}

Insert ReadInsert(Reader& r, const DecodeContext& context) {
  Insert m;
  m.xid = ReadStreamXid(r, context);
  m.relation = r.ReadRelationId();
  ExpectNewTupleTag(r, r.UInt8());
  if (r.ok()) {
    m.new_tuple = ReadTuple(r, "new tuple");
  }
  return m;
}

Update ReadUpdate(Reader& r, const DecodeContext& context) {
  Update m;
  m.xid = ReadStreamXid(r, context);
  m.relation = r.ReadRelationId();
  uint8_t tag = r.UInt8();
  if (!r.ok()) {
    return m;
  }
  if (tag == static_cast<uint8_t>(OldTupleKind::kKey) ||
      tag == static_cast<uint8_t>(OldTupleKind::kOld)) {
    m.old_kind = static_cast<OldTupleKind>(tag);
    m.old_tuple = ReadTuple(r, "old tuple");
    tag = r.UInt8();
  } else if (tag != kNewTupleTag) {
    r.Fail(absl::StrFormat("unknown tuple tag %s at offset %d (expected 'K', 'O' or 'N')",
                           DescribeByte(tag), r.offset() - 1));
    return m;
  }
  ExpectNewTupleTag(r, tag);
  if (r.ok()) {
    m.new_tuple = ReadTuple(r, "new tuple");
  }
  return m;
}

Delete ReadDelete(Reader& r, const DecodeContext& context) {
  Delete m;
  m.xid = ReadStreamXid(r, context);
  m.relation = r.ReadRelationId();
  const uint8_t tag = r.UInt8();
  if (!r.ok()) {
    return m;
  }
  if (tag != static_cast<uint8_t>(OldTupleKind::kKey) &&
      tag != static_cast<uint8_t>(OldTupleKind::kOld)) {
    r.Fail(absl::StrFormat("unknown old tuple tag %s at offset %d (expected 'K' or 'O')",
                           DescribeByte(tag), r.offset() - 1));
    return m;
  }
  m.old_kind = static_cast<OldTupleKind>(tag);
  m.old_tuple = ReadTuple(r, "old tuple");
  return m;
}

Truncate ReadTruncate(Reader& r, const DecodeContext& context) {
  Truncate m;
  m.xid = ReadStreamXid(r, context);
  const int32_t nrels = r.Int32();
  m.options = r.UInt8();
  if (!r.ok()) {
    return m;
  }
  if (nrels < 0) {
    r.Fail(absl::StrFormat("negative relation count %d", nrels));
    return m;
  }
  constexpr uint8_t kKnownOptions = Truncate::kCascade | Truncate::kRestartIdentity;
  if ((m.options & ~kKnownOptions) != 0) {
    r.Fail(absl::StrFormat("unknown option bits 0x%02x", m.options & ~kKnownOptions));
    return m;
  }
  m.relations.reserve(std::min<size_t>(nrels, r.remaining() / kRelationIdSize));
  for (int32_t i = 0; i < nrels && r.ok(); ++i) {
    const RelationId id = r.ReadRelationId();
    if (r.ok()) {
      m.relations.push_back(id);
    }
  }
  return m;
}

LogicalMessage ReadLogicalMessage(Reader& r, const DecodeContext& context) {
  LogicalMessage m;
  m.xid = ReadStreamXid(r, context);
  m.flags = r.UInt8();
  if (r.ok() && m.flags > 1) {
    r.Fail(absl::StrFormat("unknown flags 0x%02x (must be 0 or 1)", m.flags));
    return m;
  }
  m.lsn = r.ReadLsn();
  m.prefix = r.CString("prefix");
  const int32_t length = r.Int32();
  m.content = r.LengthPrefixed(length, "content");
  return m;
}

StreamStart ReadStreamStart(Reader& r) {
  StreamStart m;
  m.xid = r.ReadXid();
  m.first_segment = r.UInt8();
  if (r.ok() && m.first_segment > 1) {
    r.Fail(absl::StrFormat("first_segment is %d (must be 0 or 1)", m.first_segment));
  }
  return m;
}

StreamCommit ReadStreamCommit(Reader& r) {
  StreamCommit m;
  m.xid = r.ReadXid();
  m.flags = r.UInt8();
  if (r.ok() && m.flags != 0) {
    r.Fail(absl::StrFormat("unknown flags 0x%02x (must be 0)", m.flags));
  }
  m.commit_lsn = r.ReadLsn();
  m.end_lsn = r.ReadLsn();
  m.commit_time = r.ReadTimestamp();
  return m;
}

StreamAbort ReadStreamAbort(Reader& r) {
  StreamAbort m;
  m.xid = r.ReadXid();
  m.subxid = r.ReadXid();
  return m;
}

Message ReadBody(uint8_t type, Reader& r, const DecodeContext& context) {
  switch (type) {
    case kBeginType:
      return ReadBegin(r);
    case kCommitType:
      return ReadCommit(r);
    case kOriginType:
      return ReadOrigin(r);
    case kRelationType:
      return ReadRelation(r, context);
    case kTypeType:
      return ReadType(r, context);
    case kInsertType:
      return ReadInsert(r, context);
    case kUpdateType:
      return ReadUpdate(r, context);
    case kDeleteType:
      return ReadDelete(r, context);
    case kTruncateType:
      return ReadTruncate(r, context);
    case kMessageType:
      return ReadLogicalMessage(r, context);
    case kStreamStartType:
      return ReadStreamStart(r);
    case kStreamStopType:
      return StreamStop{};
    case kStreamCommitType:
      return ReadStreamCommit(r);
    case kStreamAbortType:
      return ReadStreamAbort(r);
    default:
      r.Fail(absl::StrFormat("unknown message type %s", DescribeByte(type)));
      return StreamStop{};
  }
}

// Checks that a message of this type may appear here. Where a message may appear follows
// pgoutput.c and worker.c: Stream Start/Commit/Abort are sent outside a stream block and Stream
// Stop closes one; Begin and Commit never occur inside one. Origin does: pgoutput_stream_start
// sends it right after the first Stream Start of a transaction that has an origin.
absl::Status CheckPlacement(uint8_t type, const char* name, const DecodeContext& context) {
  const bool streaming_message = type == kStreamStartType || type == kStreamStopType ||
                                 type == kStreamCommitType || type == kStreamAbortType;
  if (streaming_message && context.protocol_version < kFirstStreamingVersion) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "pgoutput %s: streaming message under protocol version %d (streaming needs version %d)",
        name, context.protocol_version, kFirstStreamingVersion));
  }
  switch (type) {
    case kBeginType:
    case kCommitType:
    case kStreamStartType:
    case kStreamCommitType:
    case kStreamAbortType:
      if (context.in_stream) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "pgoutput %s: inside a stream (after Stream Start, before Stream Stop)", name));
      }
      break;
    case kStreamStopType:
      if (!context.in_stream) {
        return absl::InvalidArgumentError(
            absl::StrFormat("pgoutput %s: outside a stream (no Stream Start before it)", name));
      }
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

// Encoding. A message that cannot be represented on the wire is a bug in the caller (tests are
// the only users), so it aborts rather than emitting bytes that would not round-trip.
[[noreturn]] void EncodeInvariantFailed(std::string_view what) {
  std::fprintf(stderr, "pgoutput::Encode: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

class Writer {
 public:
  void UInt8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void Int16(int16_t v) { BigEndian(static_cast<uint16_t>(v), 2); }
  void Int32(int32_t v) { BigEndian(static_cast<uint32_t>(v), 4); }
  void UInt32(uint32_t v) { BigEndian(v, 4); }
  void Int64(int64_t v) { BigEndian(static_cast<uint64_t>(v), 8); }
  void UInt64(uint64_t v) { BigEndian(v, 8); }
  void WriteLsn(Lsn lsn) { UInt64(lsn.value()); }
  void WriteXid(Xid xid) { UInt32(xid.value()); }
  void WriteRelationId(RelationId id) { UInt32(id.value()); }
  void WriteTimestamp(PgTimestamp t) { Int64(t.micros()); }
  void CString(std::string_view s) {
    out_.append(s);
    out_.push_back('\0');
  }
  void Bytes(std::string_view s) { out_.append(s); }
  std::string Take() { return std::move(out_); }

 private:
  void BigEndian(uint64_t v, int size) {
    for (int shift = (size - 1) * 8; shift >= 0; shift -= 8) {
      out_.push_back(static_cast<char>((v >> shift) & 0xff));
    }
  }

  std::string out_;
};

void WriteStreamXid(Writer& w, const std::optional<Xid>& xid, const DecodeContext& context) {
  if (!context.in_stream) {
    return;
  }
  if (!xid.has_value()) {
    EncodeInvariantFailed("a data message inside a stream needs an xid");
  }
  w.WriteXid(*xid);
}

int16_t CheckedCount16(size_t n, std::string_view what) {
  if (n > static_cast<size_t>(std::numeric_limits<int16_t>::max())) {
    EncodeInvariantFailed(absl::StrFormat("%d %s do not fit an int16 count", n, what));
  }
  return static_cast<int16_t>(n);
}

int32_t CheckedLength32(size_t n, std::string_view what) {
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    EncodeInvariantFailed(absl::StrFormat("%s of %d bytes does not fit an int32 length", what, n));
  }
  return static_cast<int32_t>(n);
}

void WriteTuple(Writer& w, const TupleData& tuple) {
  w.Int16(CheckedCount16(tuple.size(), "tuple columns"));
  for (const TupleColumn& column : tuple) {
    w.UInt8(static_cast<uint8_t>(column.kind));
    if (column.kind == TupleColumnKind::kText || column.kind == TupleColumnKind::kBinary) {
      w.Int32(CheckedLength32(column.data.size(), "tuple column"));
      w.Bytes(column.data);
    }
  }
}

struct EncodeVisitor {
  Writer& w;
  const DecodeContext& context;

  void operator()(const Begin& m) {
    w.UInt8(kBeginType);
    w.WriteLsn(m.final_lsn);
    w.WriteTimestamp(m.commit_time);
    w.WriteXid(m.xid);
  }
  void operator()(const Commit& m) {
    w.UInt8(kCommitType);
    w.UInt8(m.flags);
    w.WriteLsn(m.commit_lsn);
    w.WriteLsn(m.end_lsn);
    w.WriteTimestamp(m.commit_time);
  }
  void operator()(const Origin& m) {
    w.UInt8(kOriginType);
    w.WriteLsn(m.commit_lsn);
    w.CString(m.name);
  }
  void operator()(const Relation& m) {
    w.UInt8(kRelationType);
    WriteStreamXid(w, m.xid, context);
    w.WriteRelationId(m.id);
    w.CString(m.nspname);
    w.CString(m.relname);
    w.UInt8(static_cast<uint8_t>(m.replica_identity));
    w.Int16(CheckedCount16(m.columns.size(), "relation columns"));
    for (const RelationColumn& column : m.columns) {
      w.UInt8(column.flags);
      w.CString(column.name);
      w.UInt32(column.type_oid);
      w.Int32(column.type_modifier);
    }
  }
  void operator()(const Type& m) {
    w.UInt8(kTypeType);
    WriteStreamXid(w, m.xid, context);
    w.UInt32(m.type_oid);
    w.CString(m.nspname);
    w.CString(m.name);
  }
  void operator()(const Insert& m) {
    w.UInt8(kInsertType);
    WriteStreamXid(w, m.xid, context);
    w.WriteRelationId(m.relation);
    w.UInt8(kNewTupleTag);
    WriteTuple(w, m.new_tuple);
  }
  void operator()(const Update& m) {
    w.UInt8(kUpdateType);
    WriteStreamXid(w, m.xid, context);
    w.WriteRelationId(m.relation);
    if (m.old_kind != OldTupleKind::kNone) {
      w.UInt8(static_cast<uint8_t>(m.old_kind));
      WriteTuple(w, m.old_tuple);
    }
    w.UInt8(kNewTupleTag);
    WriteTuple(w, m.new_tuple);
  }
  void operator()(const Delete& m) {
    if (m.old_kind == OldTupleKind::kNone) {
      EncodeInvariantFailed("a Delete needs an old tuple kind ('K' or 'O')");
    }
    w.UInt8(kDeleteType);
    WriteStreamXid(w, m.xid, context);
    w.WriteRelationId(m.relation);
    w.UInt8(static_cast<uint8_t>(m.old_kind));
    WriteTuple(w, m.old_tuple);
  }
  void operator()(const Truncate& m) {
    w.UInt8(kTruncateType);
    WriteStreamXid(w, m.xid, context);
    w.Int32(CheckedLength32(m.relations.size(), "relation list"));
    w.UInt8(m.options);
    for (RelationId id : m.relations) {
      w.WriteRelationId(id);
    }
  }
  void operator()(const LogicalMessage& m) {
    w.UInt8(kMessageType);
    WriteStreamXid(w, m.xid, context);
    w.UInt8(m.flags);
    w.WriteLsn(m.lsn);
    w.CString(m.prefix);
    w.Int32(CheckedLength32(m.content.size(), "message content"));
    w.Bytes(m.content);
  }
  void operator()(const StreamStart& m) {
    w.UInt8(kStreamStartType);
    w.WriteXid(m.xid);
    w.UInt8(m.first_segment);
  }
  void operator()(const StreamStop&) { w.UInt8(kStreamStopType); }
  void operator()(const StreamCommit& m) {
    w.UInt8(kStreamCommitType);
    w.WriteXid(m.xid);
    w.UInt8(m.flags);
    w.WriteLsn(m.commit_lsn);
    w.WriteLsn(m.end_lsn);
    w.WriteTimestamp(m.commit_time);
  }
  void operator()(const StreamAbort& m) {
    w.UInt8(kStreamAbortType);
    w.WriteXid(m.xid);
    w.WriteXid(m.subxid);
  }
};

// Debug rendering.

// Single-quoted, with \' and \\ escaped and every byte outside printable ASCII as \xNN, so the
// output is one line of ASCII whatever the data.
void AppendQuoted(std::string* out, std::string_view s) {
  out->push_back('\'');
  for (const char ch : s) {
    const auto byte = static_cast<uint8_t>(ch);
    if (ch == '\'' || ch == '\\') {
      out->push_back('\\');
      out->push_back(ch);
    } else if (byte >= 0x20 && byte < 0x7f) {
      out->push_back(ch);
    } else {
      absl::StrAppendFormat(out, "\\x%02x", byte);
    }
  }
  out->push_back('\'');
}

std::string Quoted(std::string_view s) {
  std::string out;
  AppendQuoted(&out, s);
  return out;
}

// Binary values as Postgres prints bytea: '\x' followed by the bytes in hex.
void AppendHex(std::string* out, std::string_view s) {
  out->append("'\\x");
  for (const char ch : s) {
    absl::StrAppendFormat(out, "%02x", static_cast<uint8_t>(ch));
  }
  out->push_back('\'');
}

std::string TupleString(const TupleData& tuple) {
  std::string out = "(";
  for (size_t i = 0; i < tuple.size(); ++i) {
    if (i > 0) {
      out.push_back(',');
    }
    const TupleColumn& column = tuple[i];
    switch (column.kind) {
      case TupleColumnKind::kNull:
        out.push_back('n');
        break;
      case TupleColumnKind::kUnchangedToast:
        out.push_back('u');
        break;
      case TupleColumnKind::kText:
        out.push_back('t');
        AppendQuoted(&out, column.data);
        break;
      case TupleColumnKind::kBinary:
        out.push_back('b');
        AppendHex(&out, column.data);
        break;
      default:
        // Only a hand-built message can get here; show it rather than hide it.
        absl::StrAppendFormat(&out, "?%02x", static_cast<uint8_t>(column.kind));
        break;
    }
  }
  out.push_back(')');
  return out;
}

std::string XidString(const std::optional<Xid>& xid) {
  return xid.has_value() ? absl::StrCat(xid->value()) : "-";
}

// Timestamps inside years 1..9999 print as ISO 8601; others (Postgres' +-infinity, garbage in a
// hand-built message) print as raw microseconds, which PgTimestamp::ToString cannot format.
std::string TimeString(PgTimestamp t) {
  constexpr int64_t kMinMicros = (-62'135'596'800LL - 946'684'800LL) * 1'000'000LL;
  constexpr int64_t kMaxMicros = (253'402'300'800LL - 946'684'800LL) * 1'000'000LL - 1;
  if (t.micros() < kMinMicros || t.micros() > kMaxMicros) {
    return absl::StrCat(t.micros(), "us");
  }
  return t.ToString();
}

std::string OptionsString(uint8_t options) {
  if (options == 0) {
    return "0";
  }
  std::string out;
  auto add = [&out](std::string_view name) {
    if (!out.empty()) {
      out.push_back('|');
    }
    out.append(name);
  };
  if ((options & Truncate::kCascade) != 0) {
    add("cascade");
  }
  if ((options & Truncate::kRestartIdentity) != 0) {
    add("restart_identity");
  }
  const uint8_t unknown = options & ~(Truncate::kCascade | Truncate::kRestartIdentity);
  if (unknown != 0) {
    add(absl::StrFormat("0x%02x", unknown));
  }
  return out;
}

struct DebugVisitor {
  std::string operator()(const Begin& m) const {
    return absl::StrFormat("Begin final_lsn=%s commit_time=%s xid=%d", m.final_lsn.ToString(),
                           TimeString(m.commit_time), m.xid.value());
  }
  std::string operator()(const Commit& m) const {
    return absl::StrFormat("Commit flags=%d commit_lsn=%s end_lsn=%s commit_time=%s", m.flags,
                           m.commit_lsn.ToString(), m.end_lsn.ToString(),
                           TimeString(m.commit_time));
  }
  std::string operator()(const Origin& m) const {
    return absl::StrFormat("Origin commit_lsn=%s name=%s", m.commit_lsn.ToString(), Quoted(m.name));
  }
  std::string operator()(const Relation& m) const {
    std::string out = absl::StrFormat(
        "Relation xid=%s rel=%d ns=%s name=%s identity=%s cols=(", XidString(m.xid), m.id.value(),
        Quoted(m.nspname), Quoted(m.relname), DescribeReplicaIdentity(m.replica_identity));
    for (size_t i = 0; i < m.columns.size(); ++i) {
      const RelationColumn& column = m.columns[i];
      if (i > 0) {
        out.append(", ");
      }
      AppendQuoted(&out, column.name);
      absl::StrAppendFormat(&out, " type=%d typmod=%d", column.type_oid, column.type_modifier);
      if (column.flags == 1) {
        out.append(" key");
      } else if (column.flags != 0) {
        absl::StrAppendFormat(&out, " flags=0x%02x", column.flags);
      }
    }
    out.push_back(')');
    return out;
  }
  std::string operator()(const Type& m) const {
    return absl::StrFormat("Type xid=%s oid=%d ns=%s name=%s", XidString(m.xid), m.type_oid,
                           Quoted(m.nspname), Quoted(m.name));
  }
  std::string operator()(const Insert& m) const {
    return absl::StrFormat("Insert xid=%s rel=%d new=%s", XidString(m.xid), m.relation.value(),
                           TupleString(m.new_tuple));
  }
  std::string operator()(const Update& m) const {
    return absl::StrFormat("Update xid=%s rel=%d%s new=%s", XidString(m.xid), m.relation.value(),
                           OldTupleString(m.old_kind, m.old_tuple), TupleString(m.new_tuple));
  }
  std::string operator()(const Delete& m) const {
    return absl::StrFormat("Delete xid=%s rel=%d%s", XidString(m.xid), m.relation.value(),
                           OldTupleString(m.old_kind, m.old_tuple));
  }
  std::string operator()(const Truncate& m) const {
    std::string rels;
    for (size_t i = 0; i < m.relations.size(); ++i) {
      absl::StrAppend(&rels, i > 0 ? "," : "", m.relations[i].value());
    }
    return absl::StrFormat("Truncate xid=%s options=%s rels=(%s)", XidString(m.xid),
                           OptionsString(m.options), rels);
  }
  std::string operator()(const LogicalMessage& m) const {
    return absl::StrFormat("Message xid=%s flags=%d lsn=%s prefix=%s content=%s", XidString(m.xid),
                           m.flags, m.lsn.ToString(), Quoted(m.prefix), Quoted(m.content));
  }
  std::string operator()(const StreamStart& m) const {
    return absl::StrFormat("StreamStart xid=%d first_segment=%d", m.xid.value(), m.first_segment);
  }
  std::string operator()(const StreamStop&) const { return "StreamStop"; }
  std::string operator()(const StreamCommit& m) const {
    return absl::StrFormat("StreamCommit xid=%d flags=%d commit_lsn=%s end_lsn=%s commit_time=%s",
                           m.xid.value(), m.flags, m.commit_lsn.ToString(), m.end_lsn.ToString(),
                           TimeString(m.commit_time));
  }
  std::string operator()(const StreamAbort& m) const {
    return absl::StrFormat("StreamAbort xid=%d subxid=%d", m.xid.value(), m.subxid.value());
  }

 private:
  static std::string DescribeReplicaIdentity(char identity) {
    const auto byte = static_cast<uint8_t>(identity);
    if (byte > 0x20 && byte < 0x7f) {
      return std::string(1, identity);
    }
    return absl::StrFormat("0x%02x", byte);
  }

  static std::string OldTupleString(OldTupleKind kind, const TupleData& tuple) {
    switch (kind) {
      case OldTupleKind::kNone:
        return "";
      case OldTupleKind::kKey:
        return absl::StrCat(" key=", TupleString(tuple));
      case OldTupleKind::kOld:
        return absl::StrCat(" old=", TupleString(tuple));
    }
    return absl::StrFormat(" old?%02x=%s", static_cast<uint8_t>(kind), TupleString(tuple));
  }
};

}  // namespace

absl::StatusOr<Message> Decode(std::string_view bytes, const DecodeContext& context) {
  if (context.protocol_version < kMinProtocolVersion ||
      context.protocol_version > kMaxProtocolVersion) {
    return absl::InvalidArgumentError(
        absl::StrFormat("pgoutput: unsupported protocol version %d (supported: %d to %d)",
                        context.protocol_version, kMinProtocolVersion, kMaxProtocolVersion));
  }
  if (context.in_stream && context.protocol_version < kFirstStreamingVersion) {
    return absl::InvalidArgumentError(
        absl::StrFormat("pgoutput: in a stream under protocol version %d (streaming needs %d)",
                        context.protocol_version, kFirstStreamingVersion));
  }
  if (bytes.empty()) {
    return absl::InvalidArgumentError("pgoutput: empty message");
  }
  const auto type = static_cast<uint8_t>(bytes[0]);
  const char* name = MessageName(type);
  if (name == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("pgoutput: unknown message type %s", DescribeByte(type)));
  }
  if (absl::Status placement = CheckPlacement(type, name, context); !placement.ok()) {
    return placement;
  }
  Reader reader(bytes, name);
  Message message = ReadBody(type, reader, context);
  reader.ExpectEnd();
  if (!reader.ok()) {
    return reader.status();
  }
  return message;
}

std::string Encode(const Message& message, const DecodeContext& context) {
  Writer writer;
  std::visit(EncodeVisitor{writer, context}, message);
  return writer.Take();
}

std::string DebugString(const Message& message) { return std::visit(DebugVisitor{}, message); }

}  // namespace shapebridge::pgoutput
