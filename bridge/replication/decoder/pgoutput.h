#pragma once

// The pgoutput logical replication message format, protocol versions 1 and 2, as documented in
// "Logical Replication Message Formats" of the PostgreSQL 15 manual and implemented by
// src/backend/replication/logical/proto.c. Pure: bytes in, a message or an error out.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "core/lsn.h"

namespace shapebridge::pgoutput {

enum class TupleColumnKind : char {
  kNull = 'n',
  kUnchangedToast = 'u',
  kText = 't',
  kBinary = 'b',
};

struct TupleColumn {
  TupleColumnKind kind = TupleColumnKind::kNull;
  std::string data;  // kText and kBinary only
  friend bool operator==(const TupleColumn&, const TupleColumn&) = default;
};
using TupleData = std::vector<TupleColumn>;

// Which old row an Update or Delete carries: none, the replica identity key ('K') or the whole
// old row ('O', REPLICA IDENTITY FULL).
enum class OldTupleKind : char { kNone = 0, kKey = 'K', kOld = 'O' };

// Messages that may appear inside a streamed transaction (protocol 2) carry the xid of the
// (sub)transaction they belong to: `xid` is set exactly when the message was inside a stream.

struct Begin {
  Lsn final_lsn;  // the commit LSN of the transaction
  PgTimestamp commit_time;
  Xid xid;
  friend bool operator==(const Begin&, const Begin&) = default;
};

struct Commit {
  uint8_t flags = 0;  // always 0
  Lsn commit_lsn;
  Lsn end_lsn;
  PgTimestamp commit_time;
  friend bool operator==(const Commit&, const Commit&) = default;
};

struct Origin {
  Lsn commit_lsn;
  std::string name;
  friend bool operator==(const Origin&, const Origin&) = default;
};

struct RelationColumn {
  uint8_t flags = 0;  // 1: part of the key
  std::string name;
  uint32_t type_oid = 0;
  int32_t type_modifier = -1;
  friend bool operator==(const RelationColumn&, const RelationColumn&) = default;
};

struct Relation {
  std::optional<Xid> xid;
  RelationId id;
  std::string nspname;
  std::string relname;
  char replica_identity = 'd';  // 'd', 'n', 'f' or 'i'
  std::vector<RelationColumn> columns;
  friend bool operator==(const Relation&, const Relation&) = default;
};

struct Type {
  std::optional<Xid> xid;
  uint32_t type_oid = 0;
  std::string nspname;
  std::string name;
  friend bool operator==(const Type&, const Type&) = default;
};

struct Insert {
  std::optional<Xid> xid;
  RelationId relation;
  TupleData new_tuple;
  friend bool operator==(const Insert&, const Insert&) = default;
};

struct Update {
  std::optional<Xid> xid;
  RelationId relation;
  OldTupleKind old_kind = OldTupleKind::kNone;
  TupleData old_tuple;  // empty when old_kind is kNone
  TupleData new_tuple;
  friend bool operator==(const Update&, const Update&) = default;
};

struct Delete {
  std::optional<Xid> xid;
  RelationId relation;
  OldTupleKind old_kind = OldTupleKind::kKey;  // kKey or kOld
  TupleData old_tuple;
  friend bool operator==(const Delete&, const Delete&) = default;
};

struct Truncate {
  static constexpr uint8_t kCascade = 1;
  static constexpr uint8_t kRestartIdentity = 2;
  std::optional<Xid> xid;
  uint8_t options = 0;
  std::vector<RelationId> relations;
  friend bool operator==(const Truncate&, const Truncate&) = default;
};

// A message written with pg_logical_emit_message (sent when the "messages" option is on).
struct LogicalMessage {
  std::optional<Xid> xid;
  uint8_t flags = 0;  // 1: transactional
  Lsn lsn;
  std::string prefix;
  std::string content;
  bool transactional() const { return (flags & 1) != 0; }
  friend bool operator==(const LogicalMessage&, const LogicalMessage&) = default;
};

struct StreamStart {
  Xid xid;
  uint8_t first_segment = 0;  // 1 on the first block of this transaction
  friend bool operator==(const StreamStart&, const StreamStart&) = default;
};

struct StreamStop {
  friend bool operator==(const StreamStop&, const StreamStop&) = default;
};

struct StreamCommit {
  Xid xid;
  uint8_t flags = 0;  // always 0
  Lsn commit_lsn;
  Lsn end_lsn;
  PgTimestamp commit_time;
  friend bool operator==(const StreamCommit&, const StreamCommit&) = default;
};

struct StreamAbort {
  Xid xid;
  Xid subxid;  // equal to xid when the whole transaction aborted
  friend bool operator==(const StreamAbort&, const StreamAbort&) = default;
};

using Message =
    std::variant<Begin, Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate,
                 LogicalMessage, StreamStart, StreamStop, StreamCommit, StreamAbort>;

// What the decoder must know besides the bytes: the negotiated protocol version, and whether the
// message lies between a Stream Start and a Stream Stop (then data messages carry an xid).
struct DecodeContext {
  int protocol_version = 1;
  bool in_stream = false;
};

// Decodes one pgoutput message (the payload of one XLogData frame). Every length is checked
// against the bytes that remain; unknown message types, flags, tuple column kinds, replica
// identities and old-tuple tags are errors, as are streaming messages under protocol 1, a Stream
// Start inside a stream, a Stream Stop outside one, and trailing bytes. Errors are
// InvalidArgument with a message naming the message type and what was wrong.
absl::StatusOr<Message> Decode(std::string_view bytes, const DecodeContext& context);

// Encodes a message as Postgres would send it. Used by tests: Decode(Encode(m)) == m. The xid of
// data messages is written when context.in_stream (and must then be set).
std::string Encode(const Message& message, const DecodeContext& context);

// A stable one-line rendering, used by golden tests and `shapebridge log tail --raw`.
std::string DebugString(const Message& message);

}  // namespace shapebridge::pgoutput
