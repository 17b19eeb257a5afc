// A follower shape log (a Kafka server node's) fed with a leader's journal records, split over
// partitions by instance as the shape topic splits them, read in any interleaving of the
// partitions and with entries delivered more than once: it serves exactly the leader's entries,
// at the same offsets, and nothing a Routed record of its partition has not confirmed; a resume
// offset it has not reached yet waits instead of being refused.

#include <map>
#include <random>

#include "bridge/log/change_codec.h"
#include "bridge/log/record_codec.h"
#include "bridge/log/routing_sink.h"
#include "bridge/log/shape_log.h"
#include "gtest/gtest.h"
#include "rapidcheck.h"
#include "shapebridge/log/v1/shapelog.pb.h"
#include "shapes/definition.h"
#include "shapes/router.h"

namespace shapebridge {
namespace {

constexpr int kPartitions = 3;
constexpr int kGroups = 4;

shapes::TableSchema Items() {
  return shapes::TableSchema{
      .schema = "public",
      .name = "items",
      .columns = {{"id", pgtype::kInt4}, {"grp", pgtype::kInt4}, {"val", pgtype::kInt4}},
      .primary_key = {"id"}};
}

RelationInfo ItemsRelation() {
  RelationInfo r;
  r.id = RelationId(16384);
  r.schema = "public";
  r.name = "items";
  r.replica_identity = 'f';
  for (const auto& c : Items().columns) {
    r.columns.push_back(ColumnInfo{.name = c.name, .type_oid = c.type_oid, .key = true});
  }
  return r;
}

std::vector<Value> Row(int id, int grp, int val) {
  return {Value::Int(id), Value::Int(grp), Value::Int(val)};
}

// One record of the shape topic, as a partition holds it.
struct TopicRecord {
  std::string payload;
  std::string instance;  // id bytes; empty for Routed
  bool entry = false;
};

// The shape topic's split of the mirrored journal (see ShapeTopicWriter::Publish): instance
// records to their instance's partition, and after each batch a Routed record in every partition.
void Split(std::string_view frames, Lsn routed, std::vector<std::vector<TopicRecord>>& partitions) {
  while (!frames.empty()) {
    std::string_view payload;
    size_t n = 0;
    ASSERT_EQ(logrecord::ParseFrame(frames, &payload, &n), logrecord::FrameStatus::kOk);
    frames.remove_prefix(n);
    log::v1::ShapeLogRecord record;
    ASSERT_TRUE(record.ParseFromArray(payload.data(), static_cast<int>(payload.size())));
    std::string id;
    switch (record.record_case()) {
      case log::v1::ShapeLogRecord::kStart:
        id = record.start().instance_id();
        break;
      case log::v1::ShapeLogRecord::kEntry:
        id = record.entry().instance_id();
        break;
      case log::v1::ShapeLogRecord::kSnapshotDone:
        id = record.snapshot_done().instance_id();
        break;
      case log::v1::ShapeLogRecord::kRetired:
        id = record.retired().instance_id();
        break;
      default:
        continue;
    }
    const int p = static_cast<uint8_t>(id.back()) % kPartitions;
    partitions[p].push_back(
        {std::string(payload), id, record.record_case() == log::v1::ShapeLogRecord::kEntry});
  }
  log::v1::ShapeLogRecord record;
  record.mutable_routed()->set_lsn(routed.value());
  for (auto& p : partitions) p.push_back({record.SerializeAsString(), "", false});
}

std::vector<std::pair<LogOffset, std::string>> Served(const ShapeLog& log,
                                                      const InstanceLog& instance) {
  ReadCursor cursor{.log = &instance, .from = 0, .max = 1'000'000};
  std::vector<ReadCursor*> cursors = {&cursor};
  log.Read(cursors);
  std::vector<std::pair<LogOffset, std::string>> out;
  if (!cursor.servable) return out;
  for (const StoredEntry* e : cursor.entries) out.emplace_back(e->offset, std::string(e->change));
  return out;
}

TEST(ShapeLogFollowerTest, AFollowerServesExactlyTheLeadersEntries) {
  const bool ok = rc::check("follower equals leader", [] {
    auto def = shapes::CompileDefinition(
        shapes::ShapeDefinitionSpec{.name = "by_grp",
                                    .table = "public.items",
                                    .columns = {"id", "grp", "val"},
                                    .where = "grp = $g",
                                    .params = {shapes::ParamSpec{.name = "g", .type = "int"}}},
        Items());
    RC_ASSERT(def.ok());
    std::shared_ptr<const shapes::ShapeDefinition> definition = *def;
    auto lookup = [definition](const std::string& name) {
      return name == definition->name ? definition : nullptr;
    };
    std::vector<std::shared_ptr<const shapes::ShapeInstance>> instances;
    for (int g = 0; g < kGroups; ++g) {
      auto instance = shapes::ShapeInstance::Create(definition, {{"g", Value::Int(g)}});
      RC_ASSERT(instance.ok());
      instances.push_back(*instance);
    }

    // The leader: routing into a memory-only shape log whose journal goes to the "topic".
    shapes::Router router;
    ShapeLogConfig config;
    config.max_instance_bytes = 0;
    config.idle_retire = std::chrono::seconds(0);
    auto leader = ShapeLog::Open(config, router, lookup);
    RC_ASSERT(leader.ok());
    std::vector<std::vector<TopicRecord>> partitions(kPartitions);
    (*leader)->SetMirror([&partitions](std::string_view frames, Lsn routed) {
      Split(frames, routed, partitions);
      return absl::OkStatus();
    });
    RoutingSink sink(router, **leader);
    RC_ASSERT(sink.OnRelation(ItemsRelation()).ok());
    std::map<int, std::pair<int, int>> rows;  // id -> (grp, val)
    std::vector<std::shared_ptr<InstanceLog>> held(kGroups);
    uint64_t lsn = 0x1000;
    uint32_t xid = 700;
    const int steps = *rc::gen::inRange(5, 60);
    for (int step = 0; step < steps; ++step) {
      const int op = *rc::gen::inRange(0, 10);
      if (op < 6) {
        // A transaction of one to three changes.
        const int changes = *rc::gen::inRange(1, 4);
        lsn += 0x100;
        ++xid;
        RC_ASSERT(sink.OnBegin(TransactionBegin{.xid = Xid(xid), .commit_lsn = Lsn(lsn)}).ok());
        for (int c = 0; c < changes; ++c) {
          const int id = *rc::gen::inRange(0, 12);
          const int grp = *rc::gen::inRange(0, kGroups);
          auto it = rows.find(id);
          RowChange change;
          change.relation = RelationId(16384);
          if (it == rows.end()) {
            change.op = ChangeOp::kInsert;
            change.new_values = Row(id, grp, step);
            rows[id] = {grp, step};
          } else if (*rc::gen::inRange(0, 4) == 0) {
            change.op = ChangeOp::kDelete;
            change.old_values = Row(id, it->second.first, it->second.second);
            rows.erase(it);
          } else {
            change.op = ChangeOp::kUpdate;
            change.old_values = Row(id, it->second.first, it->second.second);
            change.new_values = Row(id, grp, step);
            it->second = {grp, step};
          }
          RC_ASSERT(sink.OnChange(std::move(change)).ok());
        }
        RC_ASSERT(
            sink.OnCommit(TransactionCommit{
                              .xid = Xid(xid), .commit_lsn = Lsn(lsn), .end_lsn = Lsn(lsn + 0x10)})
                .ok());
      } else if (op < 8) {
        // A new instance and its snapshot, which sees every transaction so far.
        const int g = *rc::gen::inRange(0, kGroups);
        if (held[g]) continue;
        auto acquired = (*leader)->Acquire(instances[g]);
        RC_ASSERT(acquired.ok());
        held[g] = acquired->log;
        PgSnapshot snapshot{.xmin = xid + 1, .xmax = xid + 1, .xip = {}};
        RC_ASSERT((*leader)->BeginSnapshot(*held[g], snapshot, Lsn(lsn + 0x20)).ok());
        std::vector<shapes::ShapeEntry> snapshot_rows;
        for (const auto& [id, row] : rows) {
          if (row.first != g) continue;
          snapshot_rows.push_back(shapes::ShapeEntry{
              .instance = instances[g]->id(),
              .kind = shapes::EntryKind::kInsert,
              .key = {Value::Int(id)},
              .fields = {
                  {0, Value::Int(id)}, {1, Value::Int(row.first)}, {2, Value::Int(row.second)}}});
        }
        RC_ASSERT((*leader)->AppendSnapshotRows(*held[g], snapshot_rows).ok());
        RC_ASSERT((*leader)->FinishSnapshot(*held[g], snapshot_rows.size()).ok());
      } else {
        RC_ASSERT(sink.Sync().ok());
      }
    }
    lsn += 0x100;
    RC_ASSERT(sink.OnIdlePosition(Lsn(lsn)).ok());
    RC_ASSERT(sink.Sync().ok());

    // The follower: some instances are asked for before their records arrive (placeholders).
    shapes::Router unused;
    auto follower = ShapeLog::CreateFollower(config, unused, lookup, kPartitions);
    std::vector<std::shared_ptr<InstanceLog>> followed(kGroups);
    for (int g = 0; g < kGroups; ++g) {
      if (held[g] && *rc::gen::arbitrary<bool>()) {
        auto acquired = follower->Acquire(instances[g]);
        RC_ASSERT(acquired.ok());
        RC_ASSERT(acquired->needs_snapshot);
        followed[g] = acquired->log;
      }
    }
    // Partitions interleaved at random; an entry sometimes arrives again, alone or with the
    // entries before it.
    std::vector<size_t> next(kPartitions, 0);
    // Per instance: entries delivered, and those a Routed record of their partition followed.
    std::map<std::string, size_t> delivered;
    std::map<std::string, size_t> confirmed;
    std::mt19937 rng(*rc::gen::arbitrary<uint32_t>());
    uint64_t redelivered = 0;
    while (true) {
      std::vector<int> open;
      for (int p = 0; p < kPartitions; ++p) {
        if (next[p] < partitions[p].size()) open.push_back(p);
      }
      if (open.empty()) break;
      const int p = open[rng() % open.size()];
      const TopicRecord& record = partitions[p][next[p]];
      RC_ASSERT(follower->ApplyRemote(p, record.payload).ok());
      if (record.entry) ++delivered[record.instance];
      if (record.instance.empty()) {
        for (auto& [id, count] : delivered) {
          if (static_cast<uint8_t>(id.back()) % kPartitions == p) confirmed[id] = count;
        }
      }
      if (record.entry && rng() % 4 == 0) {
        // Again, from up to three entries back.
        size_t from = next[p];
        for (int k = 0; k < 3 && from > 0 && partitions[p][from - 1].entry; ++k) --from;
        for (size_t i = from; i <= next[p]; ++i) {
          RC_ASSERT(follower->ApplyRemote(p, partitions[p][i].payload).ok());
          ++redelivered;
        }
      }
      ++next[p];
      // Never ahead of the leader: whatever it serves, the leader has at the same offsets.
      for (int g = 0; g < kGroups; ++g) {
        if (!followed[g]) continue;
        const auto served = Served(*follower, *followed[g]);
        const auto expected = Served(**leader, *held[g]);
        RC_ASSERT(served.size() <= expected.size());
        const auto bytes = InstanceIdBytes(instances[g]->id());
        RC_ASSERT(served.size() <= confirmed[std::string(bytes.data(), bytes.size())]);
        // A client resuming here with an offset the leader (or a node ahead) gave it waits
        // rather than refetch; once this node has the offset, it continues right after it.
        if (!served.empty() && !expected.empty()) {
          for (const auto& [offset, change] : {expected.back(), expected[served.size() - 1]}) {
            size_t after = 0;
            const ShapeLog::Position position = follower->Locate(*followed[g], offset, &after);
            if (offset <= served.back().first) {
              RC_ASSERT(position == ShapeLog::Position::kFound);
              RC_ASSERT(served[after - 1].first == offset);
            } else {
              RC_ASSERT(position == ShapeLog::Position::kAhead);
            }
          }
          // An offset from another log (before this one's first entry) is refetched.
          size_t unused_index = 0;
          RC_ASSERT(follower->Locate(*followed[g], LogOffset{Lsn(1), 0}, &unused_index) ==
                    ShapeLog::Position::kNotInLog);
        }
        for (size_t i = 0; i < served.size(); ++i) RC_ASSERT(served[i] == expected[i]);
      }
    }
    RC_ASSERT(follower->stats().remote_duplicates.load() == redelivered);
    for (int g = 0; g < kGroups; ++g) {
      if (!held[g]) continue;
      auto acquired = follower->Acquire(instances[g]);
      RC_ASSERT(acquired.ok());
      RC_ASSERT(!acquired->needs_snapshot);
      if (followed[g]) RC_ASSERT(acquired->log == followed[g]);
      RC_ASSERT(Served(*follower, *acquired->log) == Served(**leader, *held[g]));
    }
    RC_ASSERT(follower->DurableLsn() == (*leader)->DurableLsn());
  });
  EXPECT_TRUE(ok);
}

}  // namespace
}  // namespace shapebridge
