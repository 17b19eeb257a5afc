// The replication core against a real Postgres: the embedded log holds exactly the committed
// changes, in commit order, typed; large transactions stream; errors name what to change.

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "bridge/log/embedded_log.h"
#include "bridge/replication/replicator.h"
#include "bridge/replication/source_setup.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/harness/log_replay.h"
#include "tests/harness/test_postgres.h"

namespace shapebridge {
namespace {

using ::shapebridge::testing::ConnectOrDie;
using ::shapebridge::testing::ExecOrDie;
using ::shapebridge::testing::QueryValue;
using ::shapebridge::testing::ReplayLog;
using ::shapebridge::testing::TableRows;
using ::shapebridge::testing::TestPostgres;
using ::testing::HasSubstr;

class ReplicationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    db_ = std::string("r_") + info->name();
    for (auto& ch : db_) ch = static_cast<char>(std::tolower(ch));
    dsn_ = TestPostgres::Get().CreateDatabase(db_);
    dir_ = std::filesystem::temp_directory_path() / ("sb-" + db_ + "-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    config_.dsn = dsn_;
    config_.slot = "sb_" + db_;
    config_.publication = "sb_pub";
    config_.status_interval = std::chrono::milliseconds(200);
    config_.heartbeat_interval = std::chrono::milliseconds(100);
    config_.reconnect_backoff_min = std::chrono::milliseconds(50);
    config_.reconnect_backoff_max = std::chrono::milliseconds(500);
    config_.slot_busy_timeout = std::chrono::milliseconds(2000);
  }

  void TearDown() override {
    replicator_.reset();
    log_.reset();
    std::filesystem::remove_all(dir_);
    auto conn = ConnectOrDie(TestPostgres::Get().dsn());
    (void)conn->ExecParams(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
        "WHERE slot_name = $1 AND NOT active",
        {config_.slot});
  }

  void StartReplication() {
    auto log = EmbeddedLog::Open(EmbeddedLogConfig{.dir = dir_.string()});
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
    replicator_ = std::make_unique<Replicator>(config_, *log_);
    replicator_->Start();
    // Changes committed before the slot exists are not replicated: wait for the stream.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!replicator_->stats().streaming.load() && !replicator_->done()) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "replication did not start";
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // Waits until the log is durable past everything written so far.
  void WaitForCatchUp(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    auto conn = ConnectOrDie(dsn_);
    const Lsn target = *Lsn::Parse(QueryValue(*conn, "SELECT pg_current_wal_insert_lsn()"));
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (log_->DurableLsn() < target) {
      ASSERT_FALSE(replicator_->done()) << replicator_->exit_status();
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "log durable at " << log_->DurableLsn() << ", waiting for " << target;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void StopReplication() {
    replicator_->Stop();
    EXPECT_TRUE(replicator_->exit_status().ok()) << replicator_->exit_status();
  }

  std::string db_;
  std::string dsn_;
  std::filesystem::path dir_;
  ReplicationConfig config_;
  std::unique_ptr<EmbeddedLog> log_;
  std::unique_ptr<Replicator> replicator_;
};

TEST_F(ReplicationTest, LogHoldsExactlyTheCommittedChangesInCommitOrder) {
  {
    auto conn = ConnectOrDie(dsn_);
    ExecOrDie(*conn,
              "CREATE TABLE items (id bigint PRIMARY KEY, writer int NOT NULL, seq int NOT NULL, "
              "payload text, n int NOT NULL DEFAULT 0)");
    ExecOrDie(*conn, "CREATE TABLE scratch (id int PRIMARY KEY)");
    ExecOrDie(*conn, "CREATE TABLE unpublished (id int)");
  }
  config_.tables = {"public.items", "public.scratch"};
  StartReplication();

  // Several writers on their own connections, so transactions interleave; some roll back.
  constexpr int kWriters = 4;
  constexpr int kTransactions = 60;
  std::vector<std::vector<int>> committed(kWriters);
  std::vector<std::set<int>> rolled_back(kWriters);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      auto conn = ConnectOrDie(dsn_);
      std::mt19937 rng(w);
      for (int seq = 0; seq < kTransactions; ++seq) {
        ExecOrDie(*conn, "BEGIN");
        const int rows = 1 + static_cast<int>(rng() % 3);
        for (int k = 0; k < rows; ++k) {
          const int64_t id = int64_t{w} * 1'000'000 + seq * 10 + k;
          ExecOrDie(*conn, "INSERT INTO items (id, writer, seq, payload) VALUES (" +
                               std::to_string(id) + "," + std::to_string(w) + "," +
                               std::to_string(seq) + ", 'row " + std::to_string(id) + "')");
        }
        if (seq > 0 && rng() % 2 == 0) {
          // Touch an earlier row of this writer: update or delete.
          const int64_t earlier = int64_t{w} * 1'000'000 + (rng() % seq) * 10;
          ExecOrDie(*conn, rng() % 4 == 0
                               ? "DELETE FROM items WHERE id = " + std::to_string(earlier)
                               : "UPDATE items SET n = n + 1, seq = " + std::to_string(seq) +
                                     " WHERE id = " + std::to_string(earlier));
        }
        ExecOrDie(*conn, "INSERT INTO unpublished VALUES (1)");
        if (rng() % 8 == 0) {
          ExecOrDie(*conn, "ROLLBACK");
          rolled_back[w].insert(seq);
        } else {
          ExecOrDie(*conn, "COMMIT");
          committed[w].push_back(seq);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  {
    auto conn = ConnectOrDie(dsn_);
    ExecOrDie(*conn, "INSERT INTO scratch SELECT generate_series(1, 5)");
    ExecOrDie(*conn, "TRUNCATE scratch");
  }
  WaitForCatchUp();
  StopReplication();

  const auto replayed = ReplayLog(dir_.string());
  // Commit order: strictly increasing commit LSNs.
  for (size_t i = 1; i < replayed.transactions.size(); ++i) {
    EXPECT_LT(replayed.transactions[i - 1].commit.commit_lsn,
              replayed.transactions[i].commit.commit_lsn);
  }
  // Each writer's committed transactions appear once each, whole, in the order it committed them;
  // rolled back ones never.
  std::vector<std::vector<int>> seen(kWriters);
  for (const auto& txn : replayed.transactions) {
    std::set<std::pair<int64_t, int64_t>> tags;  // (writer, seq) of inserted rows
    for (const auto& c : txn.changes) {
      const auto* row = std::get_if<RowChange>(&c);
      if (row == nullptr || row->op != ChangeOp::kInsert) continue;
      if (replayed.relations.at(row->relation).name != "items") continue;
      tags.emplace(row->new_values[1].int_value(), row->new_values[2].int_value());
    }
    if (tags.empty()) continue;
    ASSERT_EQ(tags.size(), 1u) << "a logged transaction mixes rows of two transactions";
    const auto [writer, seq] = *tags.begin();
    EXPECT_FALSE(rolled_back[writer].contains(static_cast<int>(seq)));
    seen[writer].push_back(static_cast<int>(seq));
  }
  for (int w = 0; w < kWriters; ++w) EXPECT_EQ(seen[w], committed[w]) << "writer " << w;
  // The replayed state equals the table.
  EXPECT_EQ(replayed.tables.at("public.items"), TableRows(dsn_, "public.items"));
  EXPECT_TRUE(replayed.tables.at("public.scratch").empty());
  bool saw_truncate = false;
  for (const auto& txn : replayed.transactions) {
    for (const auto& c : txn.changes) {
      if (std::holds_alternative<TruncateChange>(c)) saw_truncate = true;
    }
  }
  EXPECT_TRUE(saw_truncate);
  EXPECT_FALSE(replayed.tables.contains("public.unpublished"));
}

TEST_F(ReplicationTest, LargeTransactionStreamsThroughInBoundedMemory) {
  {
    auto conn = ConnectOrDie(dsn_);
    ExecOrDie(*conn, "CREATE TABLE big (id int PRIMARY KEY, filler text NOT NULL)");
  }
  config_.tables = {"public.big"};
  StartReplication();
  WaitForCatchUp();
  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  {
    auto conn = ConnectOrDie(dsn_);
    // About 60 MB of row data in one transaction.
    ExecOrDie(
        *conn,
        "INSERT INTO big SELECT g, repeat(md5(g::text), 9) FROM generate_series(1, 200000) g");
  }
  WaitForCatchUp(std::chrono::seconds(120));
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  StopReplication();
  // Holding the transaction would cost well over 100 MB; streaming it costs the write buffer.
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 40 * 1024) << "max RSS grew by KiB";

  const auto replayed = ReplayLog(dir_.string());
  ASSERT_EQ(replayed.transactions.size(), 1u);
  const auto& changes = replayed.transactions[0].changes;
  ASSERT_EQ(changes.size(), 200000u);
  for (size_t i = 0; i < changes.size(); ++i) {
    const auto& row = std::get<RowChange>(changes[i]);
    ASSERT_EQ(row.op, ChangeOp::kInsert);
    ASSERT_EQ(row.new_values[0].int_value(), static_cast<int64_t>(i + 1));
  }
}

TEST_F(ReplicationTest, TypedValuesAndUnchangedToast) {
  {
    auto conn = ConnectOrDie(dsn_);
    ExecOrDie(*conn,
              "CREATE TABLE typed (id int PRIMARY KEY, b bool, i2 int2, i8 int8, f4 float4, "
              "f8 float8, num numeric(20,6), t text, vc varchar(10), u uuid, ts timestamp, "
              "tstz timestamptz, d date, j jsonb, by bytea, arr int[], big text)");
    ExecOrDie(*conn, "ALTER TABLE typed ALTER COLUMN big SET STORAGE EXTERNAL");
  }
  config_.tables = {"public.typed"};
  StartReplication();
  {
    auto conn = ConnectOrDie(dsn_);
    ExecOrDie(*conn,
              "INSERT INTO typed VALUES (1, true, -32768, 9223372036854775807, 1.5, "
              "'-Infinity', 12345678901234.123456, 'héllo ''q''', 'short', "
              "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '2024-02-29 23:59:59.123456', "
              "'2024-01-01 10:00:00+05:30', '0044-03-15 BC', '{\"a\": [1, null]}', "
              "'\\x00ff10', '{1,NULL,3}', repeat('x', 100000))");
    ExecOrDie(*conn, "INSERT INTO typed (id) VALUES (2)");
    // big is TOASTed and not changed: pgoutput sends it as 'u'.
    ExecOrDie(*conn, "UPDATE typed SET t = 'changed' WHERE id = 1");
    ExecOrDie(*conn, "DELETE FROM typed WHERE id = 2");
  }
  WaitForCatchUp();
  StopReplication();

  const auto replayed = ReplayLog(dir_.string());
  ASSERT_EQ(replayed.transactions.size(), 4u);
  const auto& insert = std::get<RowChange>(replayed.transactions[0].changes.at(0));
  const std::vector<Value> expected = {
      Value::Int(1),
      Value::Bool(true),
      Value::Int(-32768),
      Value::Int(9223372036854775807LL),
      Value::Float(1.5),
      Value::Float(-std::numeric_limits<double>::infinity()),
      Value::String(ValueKind::kNumeric, "12345678901234.123456"),
      Value::String(ValueKind::kText, "héllo 'q'"),
      Value::String(ValueKind::kText, "short"),
      Value::String(ValueKind::kUuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
      Value::Timestamp(1709251199123456LL),
      Value::TimestampTz(1704083400000000LL),
      Value::Date(-735160),
      Value::String(ValueKind::kJson, "{\"a\": [1, null]}"),
      Value::String(ValueKind::kBytes, std::string("\x00\xff\x10", 3)),
      Value::String(ValueKind::kArray, "{1,NULL,3}"),
      Value::String(ValueKind::kText, std::string(100000, 'x')),
  };
  ASSERT_EQ(insert.new_values.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(insert.new_values[i], expected[i])
        << "column " << i << ": " << insert.new_values[i].DebugString();
  }
  const auto& nulls = std::get<RowChange>(replayed.transactions[1].changes.at(0));
  for (size_t i = 1; i < nulls.new_values.size(); ++i) EXPECT_TRUE(nulls.new_values[i].is_null());

  const auto& update = std::get<RowChange>(replayed.transactions[2].changes.at(0));
  EXPECT_EQ(update.op, ChangeOp::kUpdate);
  EXPECT_TRUE(update.new_values[16].is_unchanged()) << update.new_values[16].DebugString();
  EXPECT_EQ(update.new_values[7], Value::String(ValueKind::kText, "changed"));
  // REPLICA IDENTITY FULL: the old row is whole, TOASTed value included.
  ASSERT_EQ(update.old_values.size(), expected.size());
  EXPECT_FALSE(update.old_is_key_only);
  EXPECT_EQ(update.old_values[16], expected[16]);

  const auto& del = std::get<RowChange>(replayed.transactions[3].changes.at(0));
  EXPECT_EQ(del.op, ChangeOp::kDelete);
  EXPECT_EQ(del.old_values.at(0), Value::Int(2));
  // The replayed row keeps the TOASTed value, not null.
  EXPECT_EQ(replayed.tables.at("public.typed"), TableRows(dsn_, "public.typed"));
}

TEST_F(ReplicationTest, SlotAdvancesWhilePublishedTablesAreIdle) {
  {
    auto conn = ConnectOrDie(dsn_);
    ExecOrDie(*conn, "CREATE TABLE quiet (id int PRIMARY KEY)");
    ExecOrDie(*conn, "CREATE TABLE busy (id int)");
    ExecOrDie(*conn, "INSERT INTO quiet VALUES (1)");
  }
  config_.tables = {"public.quiet"};
  config_.status_interval = std::chrono::milliseconds(10'000);  // only durable advances report
  StartReplication();
  WaitForCatchUp();
  auto conn = ConnectOrDie(dsn_);
  auto confirmed = [&] {
    return *Lsn::Parse(QueryValue(*conn,
                                  "SELECT confirmed_flush_lsn FROM pg_replication_slots "
                                  "WHERE slot_name = '" +
                                      config_.slot + "'"));
  };
  const Lsn start = confirmed();
  // Only the unpublished table is written.
  for (int i = 0; i < 20; ++i) ExecOrDie(*conn, "INSERT INTO busy SELECT generate_series(1, 100)");
  const Lsn written = *Lsn::Parse(QueryValue(*conn, "SELECT pg_current_wal_insert_lsn()"));
  ASSERT_GT(written, start);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (confirmed() < written) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << "slot stuck at " << confirmed() << ", WAL at " << written;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_GT(replicator_->stats().heartbeats.load(), 0u);
  // Never ahead of the log.
  EXPECT_LE(confirmed(), log_->DurableLsn());
  StopReplication();
}

TEST_F(ReplicationTest, ReconnectsAfterTheConnectionDropsWithoutLossOrDuplicates) {
  {
    auto conn = ConnectOrDie(dsn_);
    ExecOrDie(*conn, "CREATE TABLE items (id int PRIMARY KEY, v int)");
  }
  config_.tables = {"public.items"};
  StartReplication();
  std::atomic<bool> writing{true};
  // Each statement's WAL position just before its commit record, to name a lost transaction.
  std::vector<std::pair<std::string, Lsn>> statements;
  std::thread writer([&] {
    auto conn = ConnectOrDie(dsn_);
    auto run = [&](const std::string& sql) {
      const std::string lsn = QueryValue(*conn, sql + " RETURNING pg_current_wal_insert_lsn()");
      statements.emplace_back(sql, *Lsn::Parse(lsn));
    };
    for (int i = 0; i < 400; ++i) {
      run("INSERT INTO items VALUES (" + std::to_string(i) + ", 0)");
      if (i % 3 == 0) run("UPDATE items SET v = v + 1 WHERE id = " + std::to_string(i / 2));
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    writing = false;
  });
  auto admin = ConnectOrDie(dsn_);
  for (int kill = 0; kill < 3; ++kill) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    ExecOrDie(*admin,
              "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
              "WHERE slot_name = '" +
                  config_.slot + "' AND active_pid IS NOT NULL");
  }
  writer.join();
  WaitForCatchUp();
  EXPECT_GE(replicator_->stats().sessions.load(), 2u);
  StopReplication();
  const auto replayed = ReplayLog(dir_.string());
  EXPECT_EQ(replayed.tables.at("public.items"), TableRows(dsn_, "public.items"));
  std::set<uint64_t> commits;
  for (const auto& txn : replayed.transactions) {
    EXPECT_TRUE(commits.insert(txn.commit.commit_lsn.value()).second) << "duplicate transaction";
  }
  EXPECT_EQ(replayed.transactions.size(), 400u + 134u);
  // Every statement's transaction is in the log: a commit between its position and the next's.
  for (size_t i = 0; i < statements.size(); ++i) {
    auto commit = commits.lower_bound(statements[i].second.value());
    const bool found = commit != commits.end() &&
                       (i + 1 == statements.size() || *commit < statements[i + 1].second.value());
    EXPECT_TRUE(found) << "lost: \"" << statements[i].first << "\", its commit after "
                       << statements[i].second << " (the log above shows where each session "
                       << "started and where the walsender was stopped)";
  }
}

// Every connection notices a vanished server within about a minute (TCP keepalives and a user
// timeout), unless the DSN says otherwise.
TEST_F(ReplicationTest, ConnectionsUseKeepalivesTheDsnMayOverride) {
  auto sql = ConnectOrDie(dsn_);
  EXPECT_EQ(sql->Option("keepalives"), "1");
  EXPECT_EQ(sql->Option("keepalives_idle"), "30");
  EXPECT_EQ(sql->Option("tcp_user_timeout"), "60000");
  auto tuned = PgConnection::Connect(dsn_ + " keepalives_idle=5", PgConnectionKind::kReplication,
                                     "shapebridge-test");
  ASSERT_TRUE(tuned.ok()) << tuned.status();
  EXPECT_EQ((*tuned)->Option("keepalives_idle"), "5");
  EXPECT_EQ((*tuned)->Option("keepalives_count"), "3");
}

TEST_F(ReplicationTest, SecondConsumerOfABusySlotFailsNamingThePid) {
  {
    auto conn = ConnectOrDie(dsn_);
    ExecOrDie(*conn, "CREATE TABLE items (id int PRIMARY KEY)");
  }
  config_.tables = {"public.items"};
  StartReplication();
  WaitForCatchUp();
  const auto other_dir = dir_.string() + "-other";
  auto other_log = EmbeddedLog::Open(EmbeddedLogConfig{.dir = other_dir});
  ASSERT_TRUE(other_log.ok());
  auto config = config_;
  config.slot_busy_timeout = std::chrono::milliseconds(300);
  Replicator second(config, **other_log);
  second.Start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!second.done()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(second.exit_status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.exit_status().message()), HasSubstr("is active for PID"));
  EXPECT_FALSE(replicator_->done());
  StopReplication();
  std::filesystem::remove_all(other_dir);
}

TEST_F(ReplicationTest, ErrorsNameWhatToChange) {
  auto conn = ConnectOrDie(dsn_);
  ExecOrDie(*conn, "CREATE TABLE owned (id int PRIMARY KEY)");
  ExecOrDie(*conn,
            "DO $$ BEGIN CREATE ROLE norepl LOGIN; EXCEPTION WHEN duplicate_object THEN "
            "NULL; END $$");
  ExecOrDie(*conn,
            "DO $$ BEGIN CREATE ROLE repl LOGIN REPLICATION; EXCEPTION WHEN "
            "duplicate_object THEN NULL; END $$");
  ExecOrDie(*conn, "GRANT CREATE ON DATABASE " + db_ + " TO repl");

  ReplicationConfig c = config_;
  c.tables = {"public.missing"};
  auto check = [&](const std::string& dsn) {
    auto sql = PgConnection::Connect(dsn, PgConnectionKind::kSql, "test");
    EXPECT_TRUE(sql.ok()) << sql.status();
    return PrepareSource(**sql, c);
  };
  absl::Status s = check(dsn_);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), HasSubstr("public.missing"));

  c.tables = {"public.owned"};
  s = check(dsn_ + " user=norepl");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()), HasSubstr("ALTER ROLE norepl WITH REPLICATION"));

  // repl may replicate but does not own the table: the publication cannot be created for it.
  s = check(dsn_ + " user=repl");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("owned"));
  // With the publication made by the owner, REPLICA IDENTITY FULL is what repl may not set.
  ExecOrDie(*conn, "CREATE PUBLICATION sb_pub FOR TABLE owned");
  s = check(dsn_ + " user=repl");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("cannot set REPLICA IDENTITY FULL on table "
                                                  "public.owned"));
  c.set_replica_identity_full = false;
  s = check(dsn_ + " user=repl");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("ALTER TABLE public.owned REPLICA IDENTITY FULL"));
  // The owner can.
  c.set_replica_identity_full = true;
  EXPECT_TRUE(check(dsn_).ok());
  EXPECT_EQ(QueryValue(*conn, "SELECT relreplident FROM pg_class WHERE relname = 'owned'"), "f");
}

TEST_F(ReplicationTest, InvalidatedSlotIsReportedWithWhatToDo) {
  auto conn = ConnectOrDie(dsn_);
  ExecOrDie(*conn, "CREATE TABLE items (id int PRIMARY KEY, filler text)");
  config_.tables = {"public.items"};
  {
    auto sql = PgConnection::Connect(dsn_, PgConnectionKind::kSql, "test");
    ASSERT_TRUE(PrepareSource(**sql, config_).ok());
  }
  ExecOrDie(*conn, "SELECT pg_create_logical_replication_slot('" + config_.slot + "', 'pgoutput')");
  // Let Postgres drop WAL the inactive slot still needs.
  ExecOrDie(*conn, "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'");
  ExecOrDie(*conn, "SELECT pg_reload_conf()");
  for (int i = 0; i < 4; ++i) {
    ExecOrDie(*conn, "INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(" +
                         std::to_string(i * 20000) + ", " + std::to_string(i * 20000 + 19999) +
                         ") g");
    ExecOrDie(*conn, "SELECT pg_switch_wal()");
    ExecOrDie(*conn, "CHECKPOINT");
  }
  ExecOrDie(*conn, "ALTER SYSTEM RESET max_slot_wal_keep_size");
  ExecOrDie(*conn, "SELECT pg_reload_conf()");
  ASSERT_EQ(QueryValue(*conn, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '" +
                                  config_.slot + "'"),
            "lost");

  StartReplication();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!replicator_->done()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(replicator_->exit_status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(replicator_->exit_status().message()),
              HasSubstr("was invalidated (wal_status lost)"));
  EXPECT_THAT(std::string(replicator_->exit_status().message()),
              HasSubstr("pg_drop_replication_slot('" + config_.slot + "')"));
}

TEST(ReplicationSetupTest, WalLevelOtherThanLogicalIsNamed) {
  shapebridge::testing::TestPostgres replica_only("--wal-level replica");
  ReplicationConfig config;
  config.tables = {"public.t"};
  auto sql = PgConnection::Connect(replica_only.dsn(), PgConnectionKind::kSql, "test");
  ASSERT_TRUE(sql.ok()) << sql.status();
  const absl::Status s = PrepareSource(**sql, config);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("wal_level is 'replica'"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("ALTER SYSTEM SET wal_level = logical"));
}

// A sink whose durability lags behind Sync(), as a log with asynchronous acknowledgements does:
// only every fourth Sync() makes anything durable, so received-but-not-durable transactions exist
// for a while.
class LaggingDurabilitySink final : public TransactionSink {
 public:
  explicit LaggingDurabilitySink(TransactionSink& inner) : inner_(inner) {}
  Lsn DurableLsn() const override { return inner_.DurableLsn(); }
  absl::Status OnRelation(const RelationInfo& r) override { return inner_.OnRelation(r); }
  absl::Status OnBegin(const TransactionBegin& b) override { return inner_.OnBegin(b); }
  absl::Status OnChange(RowChange c) override { return inner_.OnChange(std::move(c)); }
  absl::Status OnTruncate(const TruncateChange& t) override { return inner_.OnTruncate(t); }
  absl::Status OnCommit(const TransactionCommit& c) override { return inner_.OnCommit(c); }
  absl::Status OnIdlePosition(Lsn p) override { return inner_.OnIdlePosition(p); }
  absl::Status OnStreamReset(Lsn p, std::string_view r) override {
    return inner_.OnStreamReset(p, r);
  }
  absl::Status Sync() override {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (++syncs_ % 4 != 0) return absl::OkStatus();
    return inner_.Sync();
  }

 private:
  TransactionSink& inner_;
  int syncs_ = 0;
};

TEST_F(ReplicationTest, FlushPositionNeverPassesWhatTheLogMadeDurable) {
  {
    auto conn = ConnectOrDie(dsn_);
    ExecOrDie(*conn, "CREATE TABLE items (id int PRIMARY KEY, v text)");
  }
  config_.tables = {"public.items"};
  config_.status_interval = std::chrono::milliseconds(100);
  config_.sync_interval = std::chrono::milliseconds(200);
  auto log = EmbeddedLog::Open(EmbeddedLogConfig{.dir = dir_.string()});
  ASSERT_TRUE(log.ok());
  log_ = *std::move(log);
  LaggingDurabilitySink sink(*log_);
  replicator_ = std::make_unique<Replicator>(config_, sink);
  replicator_->Start();
  while (!replicator_->stats().streaming.load()) {
    ASSERT_FALSE(replicator_->done()) << replicator_->exit_status();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    auto conn = ConnectOrDie(dsn_);
    for (int i = 0; i < 3000 && writing.load(); ++i) {
      ExecOrDie(*conn, "INSERT INTO items VALUES (" + std::to_string(i) + ", 'v')");
    }
    writing = false;
  });
  auto conn = ConnectOrDie(dsn_);
  // A new slot starts confirmed at its creation point, before the log has anything.
  const Lsn created =
      *Lsn::Parse(QueryValue(*conn,
                             "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE "
                             "slot_name = '" +
                                 config_.slot + "'"));
  int checks = 0;
  Lsn highest;
  // Check while the writer runs, and after it until the slot has advanced at least once (a busy
  // machine may not get there before the writer ends).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (writing.load() || (highest <= created && std::chrono::steady_clock::now() < deadline)) {
    // Read the slot first: the log's durable position only grows, so a violation is certain.
    const Lsn confirmed =
        *Lsn::Parse(QueryValue(*conn,
                               "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE "
                               "slot_name = '" +
                                   config_.slot + "'"));
    const Lsn durable = std::max(log_->DurableLsn(), created);
    ASSERT_LE(confirmed, durable) << "Postgres was told " << confirmed
                                  << " is flushed; the log is durable through " << durable;
    highest = std::max(highest, confirmed);
    ++checks;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  writing = false;
  writer.join();
  EXPECT_GT(checks, 50);
  EXPECT_GT(highest, created) << "the slot never advanced: the test observed nothing ("
                              << replicator_->stats().transactions.load() << " transactions, "
                              << replicator_->stats().status_updates.load() << " status updates, "
                              << "reported " << Lsn(replicator_->stats().reported_flush_lsn.load())
                              << ", durable " << log_->DurableLsn() << ")";
  StopReplication();
}

}  // namespace
}  // namespace shapebridge
