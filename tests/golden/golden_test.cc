// The golden tier: pgoutput streams captured from a real Postgres 15 by golden_capture
// (captures/<scenario>.bin), decoded with the production decoder and relation cache, rendered one
// line per message and compared with the hand-reviewed expected/<scenario>.txt. Semantic
// assertions below check what each capture must contain independently of the expected files, and
// every decoded message must re-encode to exactly the captured bytes.
//
// SHAPEBRIDGE_GOLDEN_UPDATE=1 rewrites the expected files and the fuzz seeds from the captures
// instead of comparing; review the result by hand (README.md).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bridge/replication/decoder/pgoutput.h"
#include "bridge/replication/relation_cache.h"
#include "core/row.h"
#include "core/value.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shapebridge {
namespace {

namespace pgoutput = ::shapebridge::pgoutput;
using ::testing::Contains;
using ::testing::IsSupersetOf;

struct GoldenScenario {
  const char* name;
  int protocol_version;
};

void PrintTo(const GoldenScenario& scenario, std::ostream* os) { *os << scenario.name; }

// The captures and the protocol version each was made with (golden_capture's scenarios).
constexpr GoldenScenario kScenarios[] = {
    {"proto1_types", 1},
    {"proto1_messages", 1},
    {"proto2_streaming", 2},
    {"proto1_binary", 1},
};

bool UpdateMode() {
  const char* update = std::getenv("SHAPEBRIDGE_GOLDEN_UPDATE");
  return update != nullptr && std::string_view(update) == "1";
}

std::filesystem::path GoldenDir() { return SHAPEBRIDGE_GOLDEN_DIR; }

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  }
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

void WriteFileOrFail(const std::filesystem::path& path, std::string_view contents) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  file.close();
  ASSERT_TRUE(file) << "cannot write " << path;
}

// A capture is a sequence of [u32 big-endian length][pgoutput payload].
absl::StatusOr<std::vector<std::string>> ReadCapture(const std::string& scenario) {
  const std::filesystem::path path = GoldenDir() / "captures" / (scenario + ".bin");
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) {
    return bytes.status();
  }
  std::vector<std::string> payloads;
  size_t pos = 0;
  while (pos < bytes->size()) {
    if (bytes->size() - pos < 4) {
      return absl::DataLossError(absl::StrCat(path.string(), ": truncated length at ", pos));
    }
    uint32_t length = 0;
    for (int i = 0; i < 4; ++i) {
      length = (length << 8) | static_cast<uint8_t>((*bytes)[pos + i]);
    }
    pos += 4;
    if (bytes->size() - pos < length) {
      return absl::DataLossError(absl::StrCat(path.string(), ": truncated payload at ", pos));
    }
    payloads.push_back(bytes->substr(pos, length));
    pos += length;
  }
  return payloads;
}

struct Decoded {
  std::string payload;
  pgoutput::DecodeContext context;  // what it was decoded (and must re-encode) with
  pgoutput::Message message;
};

// Decodes a whole capture as the replicator would: the stream state follows Stream Start and
// Stream Stop.
absl::StatusOr<std::vector<Decoded>> DecodeCapture(const GoldenScenario& scenario) {
  absl::StatusOr<std::vector<std::string>> payloads = ReadCapture(scenario.name);
  if (!payloads.ok()) {
    return payloads.status();
  }
  std::vector<Decoded> decoded;
  pgoutput::DecodeContext context{.protocol_version = scenario.protocol_version};
  for (size_t i = 0; i < payloads->size(); ++i) {
    absl::StatusOr<pgoutput::Message> message = pgoutput::Decode((*payloads)[i], context);
    if (!message.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(scenario.name, " message ", i, ": ",
                                                     std::string(message.status().message())));
    }
    decoded.push_back(Decoded{(*payloads)[i], context, *message});
    if (std::holds_alternative<pgoutput::StreamStart>(*message)) {
      context.in_stream = true;
    } else if (std::holds_alternative<pgoutput::StreamStop>(*message)) {
      context.in_stream = false;
    }
  }
  return decoded;
}

std::vector<Decoded> DecodeOrDie(const GoldenScenario& scenario) {
  absl::StatusOr<std::vector<Decoded>> decoded = DecodeCapture(scenario);
  if (!decoded.ok()) {
    ADD_FAILURE() << decoded.status();
    return {};
  }
  return *std::move(decoded);
}

const GoldenScenario& Scenario(std::string_view name) {
  for (const GoldenScenario& scenario : kScenarios) {
    if (scenario.name == name) {
      return scenario;
    }
  }
  std::abort();
}

// "  new: id=1, name='x'", or the relation cache's error in place of the values.
std::string TypedLine(const RelationCache& cache, RelationId relation, std::string_view label,
                      const pgoutput::TupleData& tuple) {
  std::string line = absl::StrCat("  ", std::string(label), ":");
  absl::StatusOr<const RelationInfo*> info = cache.Find(relation);
  if (!info.ok()) {
    return absl::StrCat(line, " error: ", std::string(info.status().message()));
  }
  absl::StatusOr<std::vector<Value>> values = cache.Typed(**info, tuple);
  if (!values.ok()) {
    return absl::StrCat(line, " error: ", std::string(values.status().message()));
  }
  for (size_t i = 0; i < values->size(); ++i) {
    absl::StrAppend(&line, i == 0 ? " " : ", ", (*info)->columns[i].name, "=",
                    (*values)[i].DebugString());
  }
  return line;
}

std::string_view OldLabel(pgoutput::OldTupleKind kind) {
  return kind == pgoutput::OldTupleKind::kKey ? "key" : "old";
}

// One line per message (its DebugString); row messages add their typed values on indented lines.
std::vector<std::string> Render(const std::vector<Decoded>& decoded) {
  RelationCache cache;
  std::vector<std::string> lines;
  for (const Decoded& d : decoded) {
    lines.push_back(pgoutput::DebugString(d.message));
    if (const auto* relation = std::get_if<pgoutput::Relation>(&d.message)) {
      cache.Apply(*relation);
    } else if (const auto* type = std::get_if<pgoutput::Type>(&d.message)) {
      cache.Apply(*type);
    } else if (const auto* insert = std::get_if<pgoutput::Insert>(&d.message)) {
      lines.push_back(TypedLine(cache, insert->relation, "new", insert->new_tuple));
    } else if (const auto* update = std::get_if<pgoutput::Update>(&d.message)) {
      if (update->old_kind != pgoutput::OldTupleKind::kNone) {
        lines.push_back(
            TypedLine(cache, update->relation, OldLabel(update->old_kind), update->old_tuple));
      }
      lines.push_back(TypedLine(cache, update->relation, "new", update->new_tuple));
    } else if (const auto* del = std::get_if<pgoutput::Delete>(&d.message)) {
      lines.push_back(TypedLine(cache, del->relation, OldLabel(del->old_kind), del->old_tuple));
    }
  }
  return lines;
}

std::vector<std::string> SplitLines(std::string_view text) {
  std::vector<std::string> lines;
  while (!text.empty()) {
    const size_t newline = text.find('\n');
    if (newline == std::string_view::npos) {
      lines.emplace_back(text);
      break;
    }
    lines.emplace_back(text.substr(0, newline));
    text.remove_prefix(newline + 1);
  }
  return lines;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) {
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

// A unified-style hunk around the first difference: the common prefix and suffix are trimmed and
// at most kMaxLines lines of each side are shown.
std::string FirstDifference(const std::string& name, const std::vector<std::string>& expected,
                            const std::vector<std::string>& actual) {
  constexpr size_t kContext = 3;
  constexpr size_t kMaxLines = 12;
  size_t first = 0;
  while (first < expected.size() && first < actual.size() && expected[first] == actual[first]) {
    ++first;
  }
  size_t expected_end = expected.size();
  size_t actual_end = actual.size();
  while (expected_end > first && actual_end > first &&
         expected[expected_end - 1] == actual[actual_end - 1]) {
    --expected_end;
    --actual_end;
  }
  const size_t from = first > kContext ? first - kContext : 0;
  std::string out =
      absl::StrFormat("--- expected/%s.txt\n+++ decoded captures/%s.bin\n", name, name);
  absl::StrAppendFormat(&out, "@@ -%d,%d +%d,%d @@\n", from + 1, expected_end - from, from + 1,
                        actual_end - from);
  for (size_t i = from; i < first; ++i) {
    absl::StrAppend(&out, " ", expected[i], "\n");
  }
  auto side = [&out](const std::vector<std::string>& lines, size_t begin, size_t end,
                     std::string_view mark) {
    for (size_t i = begin; i < end && i < begin + kMaxLines; ++i) {
      absl::StrAppend(&out, std::string(mark), lines[i], "\n");
    }
    if (end - begin > kMaxLines) {
      absl::StrAppendFormat(&out, "%s... %d more lines\n", std::string(mark),
                            end - begin - kMaxLines);
    }
  };
  side(expected, first, expected_end, "-");
  side(actual, first, actual_end, "+");
  return out;
}

class GoldenTest : public ::testing::TestWithParam<GoldenScenario> {};

TEST_P(GoldenTest, DecodesToTheExpectedRendering) {
  const GoldenScenario& scenario = GetParam();
  absl::StatusOr<std::vector<Decoded>> decoded = DecodeCapture(scenario);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const std::vector<std::string> actual = Render(*decoded);
  const std::filesystem::path path =
      GoldenDir() / "expected" / (std::string(scenario.name) + ".txt");
  if (UpdateMode()) {
    WriteFileOrFail(path, JoinLines(actual));
    std::cout << "wrote " << path.string() << ": review it by hand\n";
  }
  absl::StatusOr<std::string> expected_text = ReadFile(path);
  ASSERT_TRUE(expected_text.ok()) << expected_text.status()
                                  << " (SHAPEBRIDGE_GOLDEN_UPDATE=1 writes it)";
  const std::vector<std::string> expected = SplitLines(*expected_text);
  EXPECT_TRUE(expected == actual)
      << "the decoded capture differs from the expected rendering; if the change is intended, "
         "rerun with SHAPEBRIDGE_GOLDEN_UPDATE=1 and review the new file by hand\n"
      << FirstDifference(scenario.name, expected, actual);
}

TEST_P(GoldenTest, EveryMessageReencodesToTheCapturedBytes) {
  const std::vector<Decoded> decoded = DecodeOrDie(GetParam());
  ASSERT_FALSE(decoded.empty());
  for (size_t i = 0; i < decoded.size(); ++i) {
    EXPECT_EQ(pgoutput::Encode(decoded[i].message, decoded[i].context), decoded[i].payload)
        << "message " << i << ": " << pgoutput::DebugString(decoded[i].message);
  }
}

// What golden_capture guarantees of every capture: it ends with the non-transactional end
// marker, transactions are balanced and stream blocks never nest.
TEST_P(GoldenTest, StreamIsWellFormed) {
  const std::vector<Decoded> decoded = DecodeOrDie(GetParam());
  ASSERT_FALSE(decoded.empty());
  const auto* end = std::get_if<pgoutput::LogicalMessage>(&decoded.back().message);
  ASSERT_NE(end, nullptr) << pgoutput::DebugString(decoded.back().message);
  EXPECT_EQ(end->prefix, "golden.end");
  EXPECT_FALSE(end->transactional());
  bool in_transaction = false;
  for (const Decoded& d : decoded) {
    SCOPED_TRACE(pgoutput::DebugString(d.message));
    if (std::holds_alternative<pgoutput::Begin>(d.message)) {
      EXPECT_FALSE(in_transaction);
      in_transaction = true;
    } else if (std::holds_alternative<pgoutput::Commit>(d.message)) {
      EXPECT_TRUE(in_transaction);
      in_transaction = false;
    } else if (std::holds_alternative<pgoutput::StreamStart>(d.message) ||
               std::holds_alternative<pgoutput::StreamCommit>(d.message) ||
               std::holds_alternative<pgoutput::StreamAbort>(d.message)) {
      EXPECT_FALSE(in_transaction);
    }
  }
  EXPECT_FALSE(in_transaction);
  EXPECT_FALSE(decoded.back().context.in_stream);
}

INSTANTIATE_TEST_SUITE_P(Captures, GoldenTest, ::testing::ValuesIn(kScenarios),
                         [](const ::testing::TestParamInfo<GoldenScenario>& info) {
                           return std::string(info.param.name);
                         });

template <typename T>
std::vector<const T*> All(const std::vector<Decoded>& decoded) {
  std::vector<const T*> out;
  for (const Decoded& d : decoded) {
    if (const auto* m = std::get_if<T>(&d.message)) {
      out.push_back(m);
    }
  }
  return out;
}

TEST(GoldenSemanticsTest, Proto1MessagesHasEveryMessageType) {
  const std::vector<Decoded> decoded = DecodeOrDie(Scenario("proto1_messages"));
  EXPECT_FALSE(All<pgoutput::Begin>(decoded).empty());
  EXPECT_FALSE(All<pgoutput::Commit>(decoded).empty());
  EXPECT_FALSE(All<pgoutput::Relation>(decoded).empty());
  EXPECT_FALSE(All<pgoutput::Insert>(decoded).empty());

  const auto origins = All<pgoutput::Origin>(decoded);
  ASSERT_EQ(origins.size(), 1u);
  EXPECT_EQ(origins[0]->name, "golden_origin");
  EXPECT_EQ(origins[0]->commit_lsn, Lsn(0xABCDEF));  // from pg_replication_origin_xact_setup

  bool key_update = false;
  bool keyless_update = false;
  for (const pgoutput::Update* update : All<pgoutput::Update>(decoded)) {
    key_update |= update->old_kind == pgoutput::OldTupleKind::kKey && !update->old_tuple.empty();
    keyless_update |= update->old_kind == pgoutput::OldTupleKind::kNone;
  }
  EXPECT_TRUE(key_update) << "no Update with a 'K' old tuple";
  EXPECT_TRUE(keyless_update) << "no Update without an old tuple";

  const auto deletes = All<pgoutput::Delete>(decoded);
  ASSERT_FALSE(deletes.empty());
  EXPECT_EQ(deletes[0]->old_kind, pgoutput::OldTupleKind::kKey);

  const auto truncates = All<pgoutput::Truncate>(decoded);
  ASSERT_EQ(truncates.size(), 1u);
  EXPECT_EQ(truncates[0]->options,
            pgoutput::Truncate::kCascade | pgoutput::Truncate::kRestartIdentity);
  EXPECT_EQ(truncates[0]->relations.size(), 2u);

  std::set<std::string> transactional;
  std::set<std::string> not_transactional;
  for (const pgoutput::LogicalMessage* m : All<pgoutput::LogicalMessage>(decoded)) {
    (m->transactional() ? transactional : not_transactional).insert(m->prefix);
  }
  EXPECT_THAT(transactional, Contains("golden.txn"));
  EXPECT_THAT(not_transactional, IsSupersetOf({"golden.now", "golden.end"}));
}

TEST(GoldenSemanticsTest, Proto1MessagesPlacesOriginAndMessagesAsPostgresDoes) {
  const std::vector<Decoded> decoded = DecodeOrDie(Scenario("proto1_messages"));
  bool in_transaction = false;
  for (size_t i = 0; i < decoded.size(); ++i) {
    const pgoutput::Message& m = decoded[i].message;
    SCOPED_TRACE(absl::StrCat("message ", i, ": ", pgoutput::DebugString(m)));
    if (std::holds_alternative<pgoutput::Begin>(m)) {
      in_transaction = true;
    } else if (std::holds_alternative<pgoutput::Commit>(m)) {
      in_transaction = false;
    } else if (std::holds_alternative<pgoutput::Origin>(m)) {
      // Right after the Begin of its transaction.
      ASSERT_GT(i, 0u);
      EXPECT_TRUE(std::holds_alternative<pgoutput::Begin>(decoded[i - 1].message));
    } else if (const auto* message = std::get_if<pgoutput::LogicalMessage>(&m)) {
      EXPECT_EQ(message->transactional(), in_transaction);
    }
  }
}

TEST(GoldenSemanticsTest, Proto1TypesHasEveryTypeNullsAndUnchangedToast) {
  const std::vector<Decoded> decoded = DecodeOrDie(Scenario("proto1_types"));
  RelationCache cache;
  std::map<std::string, uint32_t> type_oids;  // user-defined types by name
  const RelationInfo* typed = nullptr;
  bool saw_null = false;
  bool saw_unchanged_toast = false;
  for (const Decoded& d : decoded) {
    SCOPED_TRACE(pgoutput::DebugString(d.message));
    if (const auto* type = std::get_if<pgoutput::Type>(&d.message)) {
      cache.Apply(*type);
      type_oids[type->name] = type->type_oid;
    } else if (const auto* relation = std::get_if<pgoutput::Relation>(&d.message)) {
      typed = &cache.Apply(*relation);
      EXPECT_EQ(relation->replica_identity, 'f');
    } else if (const auto* insert = std::get_if<pgoutput::Insert>(&d.message)) {
      for (const pgoutput::TupleColumn& column : insert->new_tuple) {
        saw_null |= column.kind == pgoutput::TupleColumnKind::kNull;
      }
    } else if (const auto* update = std::get_if<pgoutput::Update>(&d.message)) {
      ASSERT_NE(typed, nullptr);
      EXPECT_EQ(update->old_kind, pgoutput::OldTupleKind::kOld);
      absl::StatusOr<std::vector<Value>> values = cache.Typed(*typed, update->new_tuple);
      ASSERT_TRUE(values.ok()) << values.status();
      for (size_t i = 0; i < update->new_tuple.size(); ++i) {
        if (update->new_tuple[i].kind != pgoutput::TupleColumnKind::kUnchangedToast) {
          continue;
        }
        saw_unchanged_toast = true;
        EXPECT_EQ(typed->columns[i].name, "big");
        EXPECT_TRUE((*values)[i].is_unchanged());
        EXPECT_FALSE((*values)[i].is_null());
        // REPLICA IDENTITY FULL logs the old row with its TOASTed values inlined.
        ASSERT_EQ(update->old_tuple[i].kind, pgoutput::TupleColumnKind::kText);
        EXPECT_EQ(update->old_tuple[i].data.size(), 3000u);
      }
    }
  }
  ASSERT_NE(typed, nullptr);
  EXPECT_TRUE(saw_null);
  EXPECT_TRUE(saw_unchanged_toast);
  ASSERT_TRUE(type_oids.contains("mood"));
  ASSERT_TRUE(type_oids.contains("_mood"));
  std::vector<uint32_t> column_oids;
  for (const ColumnInfo& column : typed->columns) {
    column_oids.push_back(column.type_oid);
  }
  constexpr uint32_t kInt4Array = 1007;
  constexpr uint32_t kTextArray = 1009;
  EXPECT_THAT(column_oids,
              IsSupersetOf({pgtype::kBool, pgtype::kInt2, pgtype::kInt4, pgtype::kInt8,
                            pgtype::kFloat4, pgtype::kFloat8, pgtype::kNumeric, pgtype::kText,
                            pgtype::kVarchar, pgtype::kUuid, pgtype::kTimestamp,
                            pgtype::kTimestampTz, pgtype::kDate, pgtype::kJsonb, pgtype::kBytea,
                            kInt4Array, kTextArray, type_oids["mood"], type_oids["_mood"]}));
  // The array of the enum is an array because its Type message names it "_mood".
  for (const ColumnInfo& column : typed->columns) {
    if (column.name == "ma") {
      EXPECT_TRUE(column.is_array);
    }
  }
}

TEST(GoldenSemanticsTest, Proto1TypesTypesSpecialFloats) {
  const std::vector<Decoded> decoded = DecodeOrDie(Scenario("proto1_types"));
  RelationCache cache;
  const RelationInfo* typed = nullptr;
  std::map<int64_t, std::vector<Value>> inserted;  // by id
  for (const Decoded& d : decoded) {
    if (const auto* type = std::get_if<pgoutput::Type>(&d.message)) {
      cache.Apply(*type);
    } else if (const auto* relation = std::get_if<pgoutput::Relation>(&d.message)) {
      typed = &cache.Apply(*relation);
    } else if (const auto* insert = std::get_if<pgoutput::Insert>(&d.message)) {
      ASSERT_NE(typed, nullptr);
      absl::StatusOr<std::vector<Value>> values = cache.Typed(*typed, insert->new_tuple);
      ASSERT_TRUE(values.ok()) << values.status();
      inserted[(*values)[0].int_value()] = *values;
    }
  }
  ASSERT_TRUE(inserted.contains(2));
  ASSERT_TRUE(inserted.contains(3));
  // Columns: id b i2 i4 i8 f4 f8 n ...
  EXPECT_TRUE(std::isnan(inserted[2][5].float_value()));
  EXPECT_EQ(inserted[2][6].float_value(), INFINITY);
  EXPECT_EQ(inserted[2][7].DebugString(), Value::String(ValueKind::kNumeric, "NaN").DebugString());
  EXPECT_EQ(inserted[2][4].DebugString(), Value::Int(INT64_MIN).DebugString());
  EXPECT_EQ(inserted[3][6].float_value(), -INFINITY);
  EXPECT_TRUE(inserted[3][1].is_null());
}

TEST(GoldenSemanticsTest, Proto2StreamingHasStreamBlocksCommitsAndAborts) {
  const std::vector<Decoded> decoded = DecodeOrDie(Scenario("proto2_streaming"));
  std::set<int> first_segments;
  size_t starts = 0;
  size_t stops = 0;
  std::set<uint32_t> streamed_commits;
  const pgoutput::StreamAbort* whole_abort = nullptr;
  const pgoutput::StreamAbort* sub_abort = nullptr;
  // The xids carried by data messages inside stream blocks, by the top-level xid of the block.
  std::map<uint32_t, std::set<uint32_t>> data_xids;
  uint32_t block_xid = 0;  // of the current block; valid when the context is in a stream
  size_t plain_transactions = 0;
  for (const Decoded& d : decoded) {
    const pgoutput::Message& m = d.message;
    SCOPED_TRACE(pgoutput::DebugString(m));
    if (const auto* start = std::get_if<pgoutput::StreamStart>(&m)) {
      ++starts;
      first_segments.insert(start->first_segment);
      block_xid = start->xid.value();
    } else if (std::holds_alternative<pgoutput::StreamStop>(m)) {
      ++stops;
    } else if (const auto* commit = std::get_if<pgoutput::StreamCommit>(&m)) {
      streamed_commits.insert(commit->xid.value());
    } else if (const auto* abort = std::get_if<pgoutput::StreamAbort>(&m)) {
      (abort->subxid == abort->xid ? whole_abort : sub_abort) = abort;
    } else if (std::holds_alternative<pgoutput::Begin>(m)) {
      ++plain_transactions;
    } else if (const auto* insert = std::get_if<pgoutput::Insert>(&m)) {
      EXPECT_EQ(insert->xid.has_value(), d.context.in_stream);
      if (d.context.in_stream && insert->xid.has_value()) {
        data_xids[block_xid].insert(insert->xid->value());
      }
    } else if (const auto* update = std::get_if<pgoutput::Update>(&m)) {
      EXPECT_EQ(update->xid.has_value(), d.context.in_stream);
    } else if (const auto* del = std::get_if<pgoutput::Delete>(&m)) {
      EXPECT_EQ(del->xid.has_value(), d.context.in_stream);
    } else if (const auto* relation = std::get_if<pgoutput::Relation>(&m)) {
      EXPECT_EQ(relation->xid.has_value(), d.context.in_stream);
    }
  }
  EXPECT_EQ(first_segments, (std::set<int>{0, 1}));
  EXPECT_GE(starts, 3u);
  EXPECT_EQ(starts, stops);
  EXPECT_EQ(streamed_commits.size(), 2u);
  EXPECT_GE(plain_transactions, 3u) << "the small transactions come as Begin ... Commit";

  ASSERT_NE(whole_abort, nullptr) << "no Stream Abort of a whole transaction";
  EXPECT_FALSE(streamed_commits.contains(whole_abort->xid.value()));
  EXPECT_TRUE(data_xids.contains(whole_abort->xid.value()));

  ASSERT_NE(sub_abort, nullptr) << "no Stream Abort of a subtransaction";
  EXPECT_TRUE(streamed_commits.contains(sub_abort->xid.value()));
  // The rolled back subtransaction's rows were streamed under its own xid, inside blocks of the
  // top-level transaction.
  EXPECT_THAT(data_xids[sub_abort->xid.value()],
              IsSupersetOf({sub_abort->xid.value(), sub_abort->subxid.value()}));
}

TEST(GoldenSemanticsTest, Proto1BinaryHasBinaryColumns) {
  const std::vector<Decoded> decoded = DecodeOrDie(Scenario("proto1_binary"));
  size_t binary = 0;
  for (const pgoutput::Insert* insert : All<pgoutput::Insert>(decoded)) {
    for (const pgoutput::TupleColumn& column : insert->new_tuple) {
      EXPECT_NE(column.kind, pgoutput::TupleColumnKind::kText);
      binary += column.kind == pgoutput::TupleColumnKind::kBinary ? 1 : 0;
    }
  }
  EXPECT_GE(binary, 10u);
}

// The fuzz seeds (tests/fuzz/seeds) are single captured messages: the first byte picks the
// fuzzer's decode context (0: protocol 1, 1: protocol 2, 2: protocol 2 inside a stream), the rest
// is the payload. The update mode writes them from the captures; every seed must decode and
// round-trip under its context.
constexpr pgoutput::DecodeContext kFuzzContexts[] = {
    {.protocol_version = 1, .in_stream = false},
    {.protocol_version = 2, .in_stream = false},
    {.protocol_version = 2, .in_stream = true},
};
constexpr size_t kMaxSeedSize = 4096;

bool HasBinaryColumn(const pgoutput::Message& message) {
  auto binary = [](const pgoutput::TupleData& tuple) {
    return std::any_of(tuple.begin(), tuple.end(), [](const pgoutput::TupleColumn& column) {
      return column.kind == pgoutput::TupleColumnKind::kBinary;
    });
  };
  if (const auto* insert = std::get_if<pgoutput::Insert>(&message)) {
    return binary(insert->new_tuple);
  }
  if (const auto* update = std::get_if<pgoutput::Update>(&message)) {
    return binary(update->old_tuple) || binary(update->new_tuple);
  }
  if (const auto* del = std::get_if<pgoutput::Delete>(&message)) {
    return binary(del->old_tuple);
  }
  return false;
}

// One seed per message type, decode context and tuple format (text or binary): the first such
// message in capture order.
void WriteFuzzSeeds(const std::filesystem::path& dir) {
  for (const std::filesystem::directory_entry& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().filename().string().starts_with("golden_")) {
      std::filesystem::remove(entry.path());
    }
  }
  std::set<std::tuple<char, char, bool>> seen;
  for (const GoldenScenario& scenario : kScenarios) {
    for (const Decoded& d : DecodeOrDie(scenario)) {
      const char selector = d.context.protocol_version == 1 ? 0 : (d.context.in_stream ? 2 : 1);
      const bool binary = HasBinaryColumn(d.message);
      if (d.payload.size() + 1 > kMaxSeedSize ||
          !seen.insert({d.payload[0], selector, binary}).second) {
        continue;
      }
      const std::string name =
          absl::StrFormat("golden_%s_%02x%s%s", scenario.name, static_cast<uint8_t>(d.payload[0]),
                          d.context.in_stream ? "_in_stream" : "", binary ? "_binary" : "");
      WriteFileOrFail(dir / name, std::string(1, selector) + d.payload);
    }
  }
}

TEST(GoldenFuzzSeedsTest, SeedsAreCapturedMessagesThatRoundTrip) {
  const std::filesystem::path dir = SHAPEBRIDGE_FUZZ_SEED_DIR;
  if (UpdateMode()) {
    WriteFuzzSeeds(dir);
  }
  size_t seeds = 0;
  for (const std::filesystem::directory_entry& entry : std::filesystem::directory_iterator(dir)) {
    SCOPED_TRACE(entry.path().string());
    absl::StatusOr<std::string> bytes = ReadFile(entry.path());
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    ASSERT_FALSE(bytes->empty());
    EXPECT_LE(bytes->size(), kMaxSeedSize);
    const pgoutput::DecodeContext& context =
        kFuzzContexts[static_cast<uint8_t>((*bytes)[0]) % std::size(kFuzzContexts)];
    const std::string_view payload = std::string_view(*bytes).substr(1);
    absl::StatusOr<pgoutput::Message> message = pgoutput::Decode(payload, context);
    ASSERT_TRUE(message.ok()) << message.status();
    EXPECT_EQ(pgoutput::Encode(*message, context), payload);
    ++seeds;
  }
  EXPECT_GE(seeds, 10u);
  EXPECT_LE(seeds, 30u);
}

}  // namespace
}  // namespace shapebridge
