#include "bridge/log/embedded_log.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "bridge/log/record_codec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shapebridge {
namespace {

namespace fs = std::filesystem;

class EmbeddedLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sb-log-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    config_.dir = dir_.string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<EmbeddedLog> OpenLog() {
    auto log = EmbeddedLog::Open(config_);
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? *std::move(log) : nullptr;
  }

  static RelationInfo Items() {
    return RelationInfo{.id = RelationId(100),
                        .schema = "public",
                        .name = "items",
                        .replica_identity = 'f',
                        .columns = {{.name = "id", .type_oid = 23, .key = true},
                                    {.name = "title", .type_oid = 25}}};
  }

  // Writes one committed transaction inserting `ids`, commit at `lsn`, ending at lsn + 8.
  static void Commit(EmbeddedLog& log, uint64_t lsn, std::vector<int> ids) {
    ASSERT_TRUE(log.OnBegin({.xid = Xid(static_cast<uint32_t>(lsn)), .commit_lsn = Lsn(lsn)}).ok());
    ASSERT_TRUE(log.OnRelation(Items()).ok());
    for (int id : ids) {
      ASSERT_TRUE(
          log.OnChange({.op = ChangeOp::kInsert,
                        .relation = RelationId(100),
                        .new_values = {Value::Int(id),
                                       Value::String(ValueKind::kText, "t" + std::to_string(id))}})
              .ok());
    }
    ASSERT_TRUE(log.OnCommit({.commit_lsn = Lsn(lsn), .end_lsn = Lsn(lsn + 8)}).ok());
  }

  std::vector<LoggedTransaction> ReadAll(Lsn from = Lsn()) {
    std::vector<LoggedTransaction> out;
    auto reader = EmbeddedLogReader::Open(dir_.string(), from);
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return out;
    while (true) {
      auto entry = (*reader)->Next();
      EXPECT_TRUE(entry.ok()) << entry.status();
      if (!entry.ok() || !entry->has_value()) break;
      if (auto* txn = std::get_if<LoggedTransaction>(&**entry)) out.push_back(*txn);
    }
    return out;
  }

  static std::vector<uint64_t> CommitLsns(const std::vector<LoggedTransaction>& txns) {
    std::vector<uint64_t> out;
    for (const auto& t : txns) out.push_back(t.commit.commit_lsn.value());
    return out;
  }

  fs::path dir_;
  EmbeddedLogConfig config_;
};

TEST_F(EmbeddedLogTest, NothingIsDurableBeforeSync) {
  auto log = OpenLog();
  EXPECT_EQ(log->DurableLsn(), Lsn());
  Commit(*log, 100, {1, 2});
  EXPECT_EQ(log->DurableLsn(), Lsn());
  ASSERT_TRUE(log->Sync().ok());
  EXPECT_EQ(log->DurableLsn(), Lsn(108));
}

TEST_F(EmbeddedLogTest, ReadsBackTransactionsWithTypedValues) {
  auto log = OpenLog();
  Commit(*log, 100, {1, 2});
  Commit(*log, 200, {3});
  ASSERT_TRUE(log->Sync().ok());
  const auto txns = ReadAll();
  ASSERT_EQ(txns.size(), 2u);
  EXPECT_EQ(CommitLsns(txns), (std::vector<uint64_t>{100, 200}));
  const auto& row = std::get<RowChange>(txns[0].changes[1]);
  EXPECT_EQ(row.new_values[0], Value::Int(2));
  EXPECT_EQ(row.new_values[1], Value::String(ValueKind::kText, "t2"));
  EXPECT_EQ(txns[1].commit.end_lsn, Lsn(208));
}

TEST_F(EmbeddedLogTest, ReaderStartsAtAPosition) {
  auto log = OpenLog();
  for (uint64_t lsn = 100; lsn <= 500; lsn += 100) Commit(*log, lsn, {static_cast<int>(lsn)});
  ASSERT_TRUE(log->Sync().ok());
  EXPECT_EQ(CommitLsns(ReadAll(Lsn(300))), (std::vector<uint64_t>{300, 400, 500}));
  EXPECT_EQ(CommitLsns(ReadAll(Lsn(301))), (std::vector<uint64_t>{400, 500}));
}

TEST_F(EmbeddedLogTest, ReplayedTransactionsAreDropped) {
  auto log = OpenLog();
  Commit(*log, 100, {1});
  Commit(*log, 200, {2});
  ASSERT_TRUE(log->Sync().ok());
  // A reconnect sends 200 again (and 100 may come too), then a new one.
  Commit(*log, 100, {1});
  Commit(*log, 200, {2});
  Commit(*log, 300, {3});
  ASSERT_TRUE(log->Sync().ok());
  EXPECT_EQ(CommitLsns(ReadAll()), (std::vector<uint64_t>{100, 200, 300}));
  EXPECT_EQ(log->stats().replayed_transactions_dropped.load(), 2u);
}

TEST_F(EmbeddedLogTest, ReplayAfterRestartIsDropped) {
  {
    auto log = OpenLog();
    Commit(*log, 100, {1});
    ASSERT_TRUE(log->Sync().ok());
  }
  auto log = OpenLog();
  EXPECT_EQ(log->DurableLsn(), Lsn(108));
  Commit(*log, 100, {1});
  Commit(*log, 200, {2});
  ASSERT_TRUE(log->Sync().ok());
  EXPECT_EQ(CommitLsns(ReadAll()), (std::vector<uint64_t>{100, 200}));
}

TEST_F(EmbeddedLogTest, AnAbandonedTransactionIsDiscarded) {
  auto log = OpenLog();
  Commit(*log, 100, {1});
  // A session ends in the middle of transaction 200; the next session sends it whole.
  ASSERT_TRUE(log->OnBegin({.commit_lsn = Lsn(200)}).ok());
  ASSERT_TRUE(log->OnRelation(Items()).ok());
  ASSERT_TRUE(log->OnChange({.op = ChangeOp::kInsert,
                             .relation = RelationId(100),
                             .new_values = {Value::Int(99), Value::Null()}})
                  .ok());
  Commit(*log, 200, {2});
  ASSERT_TRUE(log->Sync().ok());
  const auto txns = ReadAll();
  ASSERT_EQ(txns.size(), 2u);
  ASSERT_EQ(txns[1].changes.size(), 1u);
  EXPECT_EQ(std::get<RowChange>(txns[1].changes[0]).new_values[0], Value::Int(2));
}

TEST_F(EmbeddedLogTest, RecoveryCutsAnUncommittedTailAndATornRecord) {
  {
    auto log = OpenLog();
    Commit(*log, 100, {1});
    ASSERT_TRUE(log->Sync().ok());
    // A transaction without its commit reaches the file, then the process dies.
    ASSERT_TRUE(log->OnBegin({.commit_lsn = Lsn(200)}).ok());
    ASSERT_TRUE(log->OnChange({.op = ChangeOp::kInsert,
                               .relation = RelationId(100),
                               .new_values = {Value::Int(2), Value::Null()}})
                    .ok());
    ASSERT_TRUE(log->Sync().ok());
    EXPECT_EQ(log->DurableLsn(), Lsn(108));
  }
  // And half a record after it.
  const fs::path segment = *fs::directory_iterator(dir_);
  {
    std::ofstream out(segment, std::ios::app | std::ios::binary);
    out.write("\x40\x00\x00\x00\x01\x02", 6);
  }
  const auto size_before = fs::file_size(segment);
  auto log = OpenLog();
  EXPECT_EQ(log->DurableLsn(), Lsn(108));
  EXPECT_LT(fs::file_size(segment), size_before);
  Commit(*log, 200, {2});
  ASSERT_TRUE(log->Sync().ok());
  const auto txns = ReadAll();
  EXPECT_EQ(CommitLsns(txns), (std::vector<uint64_t>{100, 200}));
  EXPECT_EQ(txns[1].changes.size(), 1u);
}

TEST_F(EmbeddedLogTest, ACorruptRecordBeforeTheEndIsReportedToReaders) {
  {
    auto log = OpenLog();
    Commit(*log, 100, {1});
    Commit(*log, 200, {2});
    ASSERT_TRUE(log->Sync().ok());
  }
  const fs::path segment = *fs::directory_iterator(dir_);
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(segment) - 3));
    f.put('\x7f');
  }
  auto reader = EmbeddedLogReader::Open(dir_.string());
  ASSERT_TRUE(reader.ok());
  absl::Status status;
  while (true) {
    auto entry = (*reader)->Next();
    if (!entry.ok()) {
      status = entry.status();
      break;
    }
    if (!entry->has_value()) break;
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
}

TEST_F(EmbeddedLogTest, IdlePositionsBecomeDurableAtSync) {
  auto log = OpenLog();
  Commit(*log, 100, {1});
  ASSERT_TRUE(log->OnIdlePosition(Lsn(500)).ok());
  EXPECT_EQ(log->DurableLsn(), Lsn());
  ASSERT_TRUE(log->Sync().ok());
  EXPECT_EQ(log->DurableLsn(), Lsn(500));
  // And survive a restart.
  log.reset();
  log = OpenLog();
  EXPECT_EQ(log->DurableLsn(), Lsn(500));
  // A transaction replayed from below the idle position is dropped.
  Commit(*log, 100, {1});
  Commit(*log, 600, {6});
  ASSERT_TRUE(log->Sync().ok());
  EXPECT_EQ(CommitLsns(ReadAll()), (std::vector<uint64_t>{100, 600}));
}

TEST_F(EmbeddedLogTest, RollsSegmentsAndReadsAcrossThem) {
  config_.segment_bytes = 4096;
  auto log = OpenLog();
  for (uint64_t i = 1; i <= 200; ++i) {
    Commit(*log, i * 100, {static_cast<int>(i)});
    ASSERT_TRUE(log->Sync().ok());
  }
  EXPECT_GT(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 3);
  const auto txns = ReadAll();
  ASSERT_EQ(txns.size(), 200u);
  // Relations are repeated at the top of each segment: a reader starting late has them.
  auto reader = EmbeddedLogReader::Open(dir_.string(), Lsn(15000));
  ASSERT_TRUE(reader.ok());
  auto entry = (*reader)->Next();
  ASSERT_TRUE(entry.ok() && entry->has_value());
  EXPECT_EQ(std::get<LoggedTransaction>(**entry).commit.commit_lsn, Lsn(15000));
  ASSERT_NE((*reader)->relation(RelationId(100)), nullptr);
  EXPECT_EQ((*reader)->relation(RelationId(100))->name, "items");
  // Recovery finds the durable position in the newest segment.
  log.reset();
  log = OpenLog();
  EXPECT_EQ(log->DurableLsn(), Lsn(20008));
}

TEST_F(EmbeddedLogTest, RetentionDeletesOldestSegments) {
  config_.segment_bytes = 4096;
  config_.retention_bytes = 16384;
  auto log = OpenLog();
  for (uint64_t i = 1; i <= 300; ++i) {
    Commit(*log, i * 100, {static_cast<int>(i)});
    ASSERT_TRUE(log->Sync().ok());
  }
  uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir_)) total += fs::file_size(e.path());
  EXPECT_LE(total, config_.retention_bytes + config_.segment_bytes * 2);
  const auto txns = ReadAll();
  ASSERT_FALSE(txns.empty());
  EXPECT_GT(txns.front().commit.commit_lsn, Lsn(100));
  EXPECT_EQ(txns.back().commit.commit_lsn, Lsn(30000));
}

TEST_F(EmbeddedLogTest, FollowingReaderSeesNewTransactions) {
  auto log = OpenLog();
  Commit(*log, 100, {1});
  ASSERT_TRUE(log->Sync().ok());
  auto reader = EmbeddedLogReader::Open(dir_.string());
  ASSERT_TRUE(reader.ok());
  auto first = (*reader)->Next();
  ASSERT_TRUE(first.ok() && first->has_value());
  auto none = (*reader)->Next();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  Commit(*log, 200, {2});
  ASSERT_TRUE(log->Sync().ok());
  auto second = (*reader)->Next();
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_EQ(std::get<LoggedTransaction>(**second).commit.commit_lsn, Lsn(200));
}

TEST_F(EmbeddedLogTest, StreamResetIsRecordedAndRead) {
  auto log = OpenLog();
  Commit(*log, 100, {1});
  ASSERT_TRUE(log->OnStreamReset(Lsn(5000), "replication slot created anew").ok());
  ASSERT_TRUE(log->Sync().ok());
  EXPECT_EQ(log->DurableLsn(), Lsn(5000));
  auto reader = EmbeddedLogReader::Open(dir_.string());
  ASSERT_TRUE(reader.ok());
  (void)(*reader)->Next();
  auto reset = (*reader)->Next();
  ASSERT_TRUE(reset.ok() && reset->has_value());
  EXPECT_EQ(std::get<LoggedReset>(**reset).position, Lsn(5000));
}

TEST(RecordCodecTest, FramesRoundTripAndDetectDamage) {
  std::string bytes;
  logrecord::AppendFrame("hello", &bytes);
  std::string_view payload;
  size_t frame_bytes = 0;
  ASSERT_EQ(logrecord::ParseFrame(bytes, &payload, &frame_bytes), logrecord::FrameStatus::kOk);
  EXPECT_EQ(payload, "hello");
  EXPECT_EQ(frame_bytes, bytes.size());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_EQ(logrecord::ParseFrame(std::string_view(bytes).substr(0, n), &payload, &frame_bytes),
              logrecord::FrameStatus::kIncomplete);
  }
  std::string damaged = bytes;
  damaged.back() ^= 1;
  EXPECT_EQ(logrecord::ParseFrame(damaged, &payload, &frame_bytes),
            logrecord::FrameStatus::kCorrupt);
  std::string huge = bytes;
  huge[3] = '\x7f';
  EXPECT_EQ(logrecord::ParseFrame(huge, &payload, &frame_bytes), logrecord::FrameStatus::kCorrupt);
}

TEST(RecordCodecTest, EveryValueKindRoundTrips) {
  const std::vector<Value> values = {
      Value::Null(),
      Value::Unchanged(),
      Value::Bool(true),
      Value::Int(-5),
      Value::Float(2.5),
      Value::String(ValueKind::kNumeric, "1.50"),
      Value::String(ValueKind::kText, "x"),
      Value::String(ValueKind::kUuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
      Value::Timestamp(-1),
      Value::TimestampTz(Value::kTimestampInfinity),
      Value::Date(-3),
      Value::String(ValueKind::kJson, "{}"),
      Value::String(ValueKind::kBytes, std::string("\0", 1)),
      Value::String(ValueKind::kArray, "{1}"),
      Value::String(ValueKind::kOther, "(1,2)")};
  for (const auto& v : values) {
    log::v1::Value proto;
    logrecord::ToProto(v, &proto);
    auto back = logrecord::FromProto(proto);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, v) << v.DebugString();
  }
}

}  // namespace
}  // namespace shapebridge
