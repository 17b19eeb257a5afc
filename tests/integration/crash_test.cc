// No loss across crashes: `shapebridge replicate` is killed with SIGKILL at random points while a
// writer commits, and restarted. After every kill the slot's confirmed flush position is at or
// below what the log had made durable; at the end the log holds every committed transaction once,
// in commit order, and replaying it gives the table.

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "bridge/log/embedded_log.h"
#include "gtest/gtest.h"
#include "tests/harness/log_replay.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_postgres.h"

namespace shapebridge {
namespace {

using ::shapebridge::testing::ConnectOrDie;
using ::shapebridge::testing::ExecOrDie;
using ::shapebridge::testing::QueryValue;
using ::shapebridge::testing::ReplayLog;
using ::shapebridge::testing::ShapebridgeBinary;
using ::shapebridge::testing::Subprocess;
using ::shapebridge::testing::TableRows;
using ::shapebridge::testing::TestPostgres;

TEST(CrashTest, KillNineAtRandomPointsLosesNothing) {
  const std::string dsn = TestPostgres::Get().CreateDatabase("crash");
  const auto work =
      std::filesystem::temp_directory_path() / ("sb-crash-" + std::to_string(getpid()));
  std::filesystem::remove_all(work);
  std::filesystem::create_directories(work);
  const std::string log_dir = (work / "log").string();
  const std::string config_path = (work / "config.yaml").string();
  {
    std::ofstream config(config_path);
    config << "postgres:\n  dsn: \"" << dsn << "\"\n"
           << "replication:\n  slot: crash_slot\n  tables: [public.ledger]\n"
           // Frequent status updates and rare syncs while busy: a flush position reported
           // before the log is durable would be caught with transactions still in its buffer.
           << "  status_interval_ms: 100\n  heartbeat_interval_ms: 100\n"
           << "  sync_interval_ms: 250\n  reconnect_backoff_min_ms: 20\n"
           << "log:\n  dir: " << log_dir << "\n  segment_bytes: 65536\n";
  }
  auto admin = ConnectOrDie(dsn);
  ExecOrDie(*admin,
            "CREATE TABLE ledger (id bigint PRIMARY KEY, txn int NOT NULL, v int NOT NULL)");

  // The writer commits numbered transactions of 1 to 40 rows, with some updates and deletes,
  // without pause, so the replication stream stays busy.
  std::atomic<bool> stop_writing{false};
  std::atomic<bool> slot_exists{false};
  std::atomic<int> committed{0};
  std::thread writer([&] {
    // Changes committed before the slot exists are not replicated: start after it.
    while (!slot_exists.load() && !stop_writing.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    auto conn = ConnectOrDie(dsn);
    std::mt19937 rng(7);
    int64_t next_id = 0;
    for (int txn = 0; !stop_writing.load(); ++txn) {
      ExecOrDie(*conn, "BEGIN");
      const int rows = 1 + static_cast<int>(rng() % 40);
      ExecOrDie(*conn, "INSERT INTO ledger SELECT g, " + std::to_string(txn) +
                           ", 0 FROM "
                           "generate_series(" +
                           std::to_string(next_id) + ", " + std::to_string(next_id + rows - 1) +
                           ") g");
      next_id += rows;
      if (rng() % 3 == 0) {
        ExecOrDie(*conn, "UPDATE ledger SET v = v + 1, txn = " + std::to_string(txn) +
                             " WHERE id = " + std::to_string(rng() % next_id));
      }
      if (rng() % 5 == 0) {
        ExecOrDie(*conn, "DELETE FROM ledger WHERE id = " + std::to_string(rng() % next_id));
      }
      ExecOrDie(*conn, "COMMIT");
      committed.store(txn + 1);
    }
  });

  auto slot_confirmed = [&] {
    return *Lsn::Parse(
        QueryValue(*admin,
                   "SELECT coalesce(confirmed_flush_lsn, '0/0') FROM pg_replication_slots "
                   "WHERE slot_name = 'crash_slot'"));
  };
  auto slot_inactive = [&] {
    return QueryValue(*admin,
                      "SELECT count(*) FROM pg_replication_slots WHERE "
                      "slot_name = 'crash_slot' AND active") == "0";
  };

  // Stops the writer also when an assertion ends the test early.
  struct JoinWriter {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~JoinWriter() {
      stop.store(true);
      if (thread.joinable()) thread.join();
    }
  } join_writer{stop_writing, writer};

  std::mt19937 rng(42);
  constexpr int kKills = 12;
  for (int i = 0; i < kKills; ++i) {
    Subprocess process({ShapebridgeBinary(), "replicate", "--config", config_path},
                       (work / "service.log").string());
    if (i == 0) {
      for (int w = 0; w < 1000 && !slot_exists.load() && process.running(); ++w) {
        slot_exists.store(QueryValue(*admin,
                                     "SELECT count(*) FROM pg_replication_slots WHERE "
                                     "slot_name = 'crash_slot'") == "1");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ASSERT_TRUE(slot_exists.load())
          << "the service did not create its slot; see " << work / "service.log";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 1200));
    ASSERT_TRUE(process.running()) << "the service exited early; see " << work / "service.log";
    const int status = process.Kill(SIGKILL);
    ASSERT_TRUE(WIFSIGNALED(status));
    // Wait for the walsender to notice, so the slot's position is final for this round.
    for (int w = 0; w < 500 && !slot_inactive(); ++w) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const Lsn confirmed = slot_confirmed();
    // Recovery, as the next start does it, gives what the log had made durable.
    auto log = EmbeddedLog::Open(EmbeddedLogConfig{.dir = log_dir, .segment_bytes = 65536});
    ASSERT_TRUE(log.ok()) << log.status();
    EXPECT_LE(confirmed, (*log)->DurableLsn())
        << "round " << i << ": Postgres was told " << confirmed << " is flushed, but the log "
        << "is durable only through " << (*log)->DurableLsn();
  }
  stop_writing.store(true);
  writer.join();
  ASSERT_GT(committed.load(), 100) << "the writer made too little progress to test anything";

  // A last run catches up and stops cleanly.
  const Lsn target = *Lsn::Parse(QueryValue(*admin, "SELECT pg_current_wal_insert_lsn()"));
  {
    Subprocess process({ShapebridgeBinary(), "replicate", "--config", config_path},
                       (work / "service.log").string());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (slot_confirmed() < target) {
      ASSERT_TRUE(process.running());
      ASSERT_LT(std::chrono::steady_clock::now(), deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const int status = process.Kill(SIGTERM);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }

  const auto replayed = ReplayLog(log_dir);
  // Every committed transaction exactly once, in the order the writer committed them.
  std::vector<int> order;
  for (const auto& txn : replayed.transactions) {
    std::set<int64_t> numbers;
    for (const auto& c : txn.changes) {
      const auto& row = std::get<RowChange>(c);
      if (row.op == ChangeOp::kInsert) numbers.insert(row.new_values[1].int_value());
    }
    ASSERT_EQ(numbers.size(), 1u);
    order.push_back(static_cast<int>(*numbers.begin()));
  }
  ASSERT_EQ(static_cast<int>(order.size()), committed.load());
  for (int i = 0; i < committed.load(); ++i) ASSERT_EQ(order[i], i) << "gap or duplicate";
  EXPECT_EQ(replayed.tables.at("public.ledger"), TableRows(dsn, "public.ledger"));
  std::filesystem::remove_all(work);
}

}  // namespace
}  // namespace shapebridge
