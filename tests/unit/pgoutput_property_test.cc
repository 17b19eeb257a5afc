// RapidCheck properties of the pgoutput codec: every valid message round-trips, every proper
// prefix of its encoding is rejected, and whatever arbitrary bytes decode re-encode to exactly
// those bytes (the wire format has one encoding per message).

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "bridge/replication/decoder/pgoutput.h"
#include "gtest/gtest.h"
#include "rapidcheck.h"
#include "rapidcheck/gtest.h"

namespace shapebridge::pgoutput {
namespace {

constexpr DecodeContext kContexts[] = {
    {.protocol_version = 1, .in_stream = false},
    {.protocol_version = 2, .in_stream = false},
    {.protocol_version = 2, .in_stream = true},
};

rc::Gen<DecodeContext> GenContext() {
  return rc::gen::elementOf(std::vector<DecodeContext>(std::begin(kContexts), std::end(kContexts)));
}

// Strings as cstrings carry them: any byte but NUL.
rc::Gen<std::string> GenName() {
  return rc::gen::map(rc::gen::arbitrary<std::string>(), [](std::string s) {
    s.erase(std::remove(s.begin(), s.end(), '\0'), s.end());
    return s;
  });
}

rc::Gen<std::string> GenBytes() {
  return rc::gen::container<std::string>(rc::gen::arbitrary<char>());
}

rc::Gen<Lsn> GenLsn() {
  return rc::gen::map(rc::gen::arbitrary<uint64_t>(), [](uint64_t v) { return Lsn(v); });
}
rc::Gen<Xid> GenXid() {
  return rc::gen::map(rc::gen::arbitrary<uint32_t>(), [](uint32_t v) { return Xid(v); });
}
rc::Gen<RelationId> GenRelationId() {
  return rc::gen::map(rc::gen::arbitrary<uint32_t>(), [](uint32_t v) { return RelationId(v); });
}
rc::Gen<PgTimestamp> GenTime() {
  return rc::gen::map(rc::gen::arbitrary<int64_t>(), [](int64_t v) { return PgTimestamp(v); });
}

rc::Gen<TupleColumn> GenColumn() {
  return rc::gen::oneOf(rc::gen::just(TupleColumn{TupleColumnKind::kNull, ""}),
                        rc::gen::just(TupleColumn{TupleColumnKind::kUnchangedToast, ""}),
                        rc::gen::map(GenBytes(),
                                     [](std::string s) {
                                       return TupleColumn{TupleColumnKind::kText, s};
                                     }),
                        rc::gen::map(GenBytes(), [](std::string s) {
                          return TupleColumn{TupleColumnKind::kBinary, s};
                        }));
}

rc::Gen<TupleData> GenTuple() { return rc::gen::container<TupleData>(GenColumn()); }

rc::Gen<std::optional<Xid>> GenStreamXid(const DecodeContext& context) {
  if (!context.in_stream) {
    return rc::gen::just(std::optional<Xid>());
  }
  return rc::gen::map(GenXid(), [](Xid x) { return std::optional<Xid>(x); });
}

rc::Gen<RelationColumn> GenRelationColumn() {
  return rc::gen::build<RelationColumn>(
      rc::gen::set(&RelationColumn::flags, rc::gen::element<uint8_t>(0, 1)),
      rc::gen::set(&RelationColumn::name, GenName()),
      rc::gen::set(&RelationColumn::type_oid, rc::gen::arbitrary<uint32_t>()),
      rc::gen::set(&RelationColumn::type_modifier, rc::gen::arbitrary<int32_t>()));
}

template <typename T>
rc::Gen<Message> AsMessage(rc::Gen<T> gen) {
  return rc::gen::map(std::move(gen), [](T m) { return Message(std::move(m)); });
}

// A message that is valid under `context`.
rc::Gen<Message> GenMessage(const DecodeContext& context) {
  std::vector<rc::Gen<Message>> gens = {
      AsMessage(rc::gen::build<Origin>(rc::gen::set(&Origin::commit_lsn, GenLsn()),
                                       rc::gen::set(&Origin::name, GenName()))),
      AsMessage(rc::gen::build<Relation>(
          rc::gen::set(&Relation::xid, GenStreamXid(context)),
          rc::gen::set(&Relation::id, GenRelationId()), rc::gen::set(&Relation::nspname, GenName()),
          rc::gen::set(&Relation::relname, GenName()),
          rc::gen::set(&Relation::replica_identity, rc::gen::element('d', 'n', 'f', 'i')),
          rc::gen::set(&Relation::columns,
                       rc::gen::container<std::vector<RelationColumn>>(GenRelationColumn())))),
      AsMessage(rc::gen::build<Type>(rc::gen::set(&Type::xid, GenStreamXid(context)),
                                     rc::gen::set(&Type::type_oid, rc::gen::arbitrary<uint32_t>()),
                                     rc::gen::set(&Type::nspname, GenName()),
                                     rc::gen::set(&Type::name, GenName()))),
      AsMessage(rc::gen::build<Insert>(rc::gen::set(&Insert::xid, GenStreamXid(context)),
                                       rc::gen::set(&Insert::relation, GenRelationId()),
                                       rc::gen::set(&Insert::new_tuple, GenTuple()))),
      AsMessage(rc::gen::map(
          rc::gen::tuple(
              GenStreamXid(context), GenRelationId(),
              rc::gen::element(OldTupleKind::kNone, OldTupleKind::kKey, OldTupleKind::kOld),
              GenTuple(), GenTuple()),
          [](std::tuple<std::optional<Xid>, RelationId, OldTupleKind, TupleData, TupleData> t) {
            auto& [xid, rel, kind, old_tuple, new_tuple] = t;
            if (kind == OldTupleKind::kNone) {
              old_tuple.clear();
            }
            return Update{xid, rel, kind, old_tuple, new_tuple};
          })),
      AsMessage(rc::gen::build<Delete>(
          rc::gen::set(&Delete::xid, GenStreamXid(context)),
          rc::gen::set(&Delete::relation, GenRelationId()),
          rc::gen::set(&Delete::old_kind, rc::gen::element(OldTupleKind::kKey, OldTupleKind::kOld)),
          rc::gen::set(&Delete::old_tuple, GenTuple()))),
      AsMessage(rc::gen::build<Truncate>(
          rc::gen::set(&Truncate::xid, GenStreamXid(context)),
          rc::gen::set(&Truncate::options, rc::gen::element<uint8_t>(0, 1, 2, 3)),
          rc::gen::set(&Truncate::relations,
                       rc::gen::container<std::vector<RelationId>>(GenRelationId())))),
      AsMessage(rc::gen::build<LogicalMessage>(
          rc::gen::set(&LogicalMessage::xid, GenStreamXid(context)),
          rc::gen::set(&LogicalMessage::flags, rc::gen::element<uint8_t>(0, 1)),
          rc::gen::set(&LogicalMessage::lsn, GenLsn()),
          rc::gen::set(&LogicalMessage::prefix, GenName()),
          rc::gen::set(&LogicalMessage::content, GenBytes()))),
  };
  if (!context.in_stream) {
    gens.push_back(AsMessage(rc::gen::build<Begin>(rc::gen::set(&Begin::final_lsn, GenLsn()),
                                                   rc::gen::set(&Begin::commit_time, GenTime()),
                                                   rc::gen::set(&Begin::xid, GenXid()))));
    gens.push_back(AsMessage(rc::gen::build<Commit>(
        rc::gen::set(&Commit::commit_lsn, GenLsn()), rc::gen::set(&Commit::end_lsn, GenLsn()),
        rc::gen::set(&Commit::commit_time, GenTime()))));
  }
  if (context.protocol_version >= 2 && context.in_stream) {
    gens.push_back(rc::gen::just(Message(StreamStop{})));
  }
  if (context.protocol_version >= 2 && !context.in_stream) {
    gens.push_back(AsMessage(rc::gen::build<StreamStart>(
        rc::gen::set(&StreamStart::xid, GenXid()),
        rc::gen::set(&StreamStart::first_segment, rc::gen::element<uint8_t>(0, 1)))));
    gens.push_back(AsMessage(
        rc::gen::build<StreamCommit>(rc::gen::set(&StreamCommit::xid, GenXid()),
                                     rc::gen::set(&StreamCommit::commit_lsn, GenLsn()),
                                     rc::gen::set(&StreamCommit::end_lsn, GenLsn()),
                                     rc::gen::set(&StreamCommit::commit_time, GenTime()))));
    gens.push_back(AsMessage(rc::gen::build<StreamAbort>(
        rc::gen::set(&StreamAbort::xid, GenXid()), rc::gen::set(&StreamAbort::subxid, GenXid()))));
  }
  return rc::gen::mapcat(rc::gen::inRange<size_t>(0, gens.size()),
                         [gens](size_t i) { return gens[i]; });
}

// Each case draws one message per context, so every context is exercised in every case.
RC_GTEST_PROP(PgoutputPropertyTest, ValidMessagesRoundTrip, ()) {
  for (const DecodeContext& context : kContexts) {
    const Message message = *GenMessage(context);
    const std::string bytes = Encode(message, context);
    const absl::StatusOr<Message> decoded = Decode(bytes, context);
    RC_LOG() << DebugString(message) << " -> "
             << (decoded.ok() ? DebugString(*decoded) : decoded.status().ToString()) << "\n";
    RC_ASSERT(decoded.ok());
    RC_ASSERT(*decoded == message);
    RC_ASSERT(DebugString(*decoded) == DebugString(message));
  }
}

RC_GTEST_PROP(PgoutputPropertyTest, ProperPrefixesAndExtensionsAreRejected, ()) {
  for (const DecodeContext& context : kContexts) {
    const Message message = *GenMessage(context);
    RC_LOG() << DebugString(message) << "\n";
    const std::string bytes = Encode(message, context);
    const size_t cut = *rc::gen::inRange<size_t>(0, bytes.size());
    RC_ASSERT_FALSE(Decode(std::string_view(bytes).substr(0, cut), context).ok());
    const std::string extra = *rc::gen::nonEmpty(GenBytes());
    RC_ASSERT_FALSE(Decode(bytes + extra, context).ok());
  }
}

RC_GTEST_PROP(PgoutputPropertyTest, DecodedBytesReencodeExactly, ()) {
  const DecodeContext context = *GenContext();
  // Start with a real type byte so that most inputs get past the first check.
  const char type =
      *rc::gen::element('B', 'C', 'O', 'R', 'Y', 'I', 'U', 'D', 'T', 'M', 'S', 'E', 'c', 'A');
  const std::string bytes = std::string(1, type) + *GenBytes();
  const absl::StatusOr<Message> decoded = Decode(bytes, context);
  RC_CLASSIFY(decoded.ok());
  if (decoded.ok()) {
    RC_ASSERT(Encode(*decoded, context) == bytes);
  } else {
    RC_ASSERT(decoded.status().code() == absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace shapebridge::pgoutput
