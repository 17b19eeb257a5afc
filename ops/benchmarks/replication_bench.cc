// `replication`: 1,000,000 inserted rows drained through the replication core into the embedded
// log, against a raw pgoutput drain of the same rows (a libpq reader that only reads CopyData) in
// the same run. Both read the same WAL from their own slot; each runs twice, alternating, and the
// faster run of each counts. `replication-kafka`: the same, into the Kafka change topic on
// librdkafka's mock cluster (3 brokers, 8 partitions, every record acknowledged by all replicas
// before the flush position moves). `replication-kafka-shapes`: the Kafka replicator with shapes:
// the change topic, and routing into 1,000 live shape instances (one per project, so every row
// is an entry of one) whose logs go to the shape topic, every record acknowledged before the flush
// position moves.

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>
#include <tuple>

#include "bridge/common/pg.h"
#include "bridge/kafka/change_sink.h"
#include "bridge/kafka/dev_cluster.h"
#include "bridge/kafka/shape_topic.h"
#include "bridge/log/embedded_log.h"
#include "bridge/log/routing_sink.h"
#include "bridge/log/shape_log.h"
#include "bridge/replication/replicator.h"
#include "bridge/replication/tee_sink.h"
#include "ops/benchmarks/bench.h"
#include "ops/benchmarks/raw_slot.h"
#include "shapes/router.h"
#include "tests/harness/test_postgres.h"

namespace shapebridge::bench {
namespace {

using Clock = std::chrono::steady_clock;
using shapebridge::testing::ConnectOrDie;
using shapebridge::testing::ExecOrDie;
using shapebridge::testing::QueryValue;

constexpr int kRows = 1'000'000;
constexpr int kRowsPerTransaction = 10'000;

// Reads the slot until `commits` commit messages arrived; returns the seconds it took and the
// end LSN of the last commit.
std::pair<double, Lsn> RawDrain(const std::string& dsn, const std::string& slot, int commits) {
  const auto start = Clock::now();
  RawSlotReader reader(dsn, slot, "bench");
  Lsn last_end;
  for (int seen = 0; seen < commits; ++seen) {
    std::optional<Lsn> end = reader.NextCommit(Clock::now() + std::chrono::minutes(5));
    if (!end) throw std::runtime_error("the raw drain saw no commit for 5 minutes");
    last_end = *end;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return {seconds, last_end};
}

// Drains the slot through the Replicator into `sink` until it is durable through `end`; returns
// the seconds it took.
double DrainInto(TransactionSink& sink, const std::string& dsn, const std::string& slot, Lsn end) {
  ReplicationConfig config;
  config.dsn = dsn;
  config.slot = slot;
  config.publication = "bench";
  config.tables = {"public.bench"};
  config.heartbeat_interval = std::chrono::milliseconds(0);
  const auto start = Clock::now();
  Replicator replicator(config, sink);
  replicator.Start();
  while (sink.DurableLsn() < end) {
    if (replicator.done()) throw std::runtime_error(replicator.exit_status().ToString());
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  replicator.Stop();
  const uint64_t changes = replicator.stats().changes.load();
  if (changes != static_cast<uint64_t>(kRows)) {
    throw std::runtime_error("the bridge passed on " + std::to_string(changes) + " rows, not " +
                             std::to_string(kRows));
  }
  return seconds;
}

// Into a fresh embedded log.
double BridgeDrain(const std::string& dsn, const std::string& slot, Lsn end) {
  const auto dir = std::filesystem::temp_directory_path() / ("sb-bench-" + slot);
  std::filesystem::remove_all(dir);
  auto log = EmbeddedLog::Open(EmbeddedLogConfig{.dir = dir.string()});
  if (!log.ok()) throw std::runtime_error(log.status().ToString());
  const double seconds = DrainInto(**log, dsn, slot, end);
  // The drain counts only if every transaction is in the log.
  const uint64_t transactions = (*log)->stats().transactions.load();
  if (transactions != static_cast<uint64_t>(kRows / kRowsPerTransaction)) {
    throw std::runtime_error("the bridge logged " + std::to_string(transactions) +
                             " transactions, not " + std::to_string(kRows / kRowsPerTransaction));
  }
  std::filesystem::remove_all(dir);
  return seconds;
}

// A fresh mock cluster of 3 brokers with the change and shape topics (8 partitions, RF 3), and
// the config of clients that use it.
std::pair<std::unique_ptr<kafka::DevCluster>, kafka::KafkaConfig> BenchCluster() {
  auto cluster = kafka::DevCluster::Start(3);
  if (!cluster.ok()) throw std::runtime_error(cluster.status().ToString());
  kafka::KafkaConfig config;
  config.bootstrap_servers = (*cluster)->bootstrap_servers();
  config.topic_prefix = "bench";
  config.partitions = 8;
  for (const std::string& topic : {config.ChangeTopic(), config.ShapeTopic()}) {
    if (absl::Status s = (*cluster)->CreateTopic(topic, 8, 3); !s.ok()) {
      throw std::runtime_error(s.ToString());
    }
  }
  return {*std::move(cluster), config};
}

// Into the change topic of a fresh mock cluster.
double KafkaDrain(const std::string& dsn, const std::string& slot, Lsn end) {
  auto [cluster, config] = BenchCluster();
  auto sink = kafka::ChangeSink::Create(config, {{"public.bench", {"id"}}});
  if (!sink.ok()) throw std::runtime_error(sink.status().ToString());
  const double seconds = DrainInto(**sink, dsn, slot, end);
  const auto& stats = (*sink)->stats();
  std::cerr << "    kafka: " << stats.delivered.load() << " records delivered, "
            << stats.flush_micros.load() / 1000 << " ms waiting for delivery reports\n";
  if (stats.delivery_errors.load() != 0 || stats.delivered.load() < static_cast<uint64_t>(kRows)) {
    throw std::runtime_error("the change topic got " + std::to_string(stats.delivered.load()) +
                             " records, not " + std::to_string(kRows));
  }
  return seconds;
}

// Into the change topic and, through routing into 1,000 instances, the shape topic.
double KafkaShapesDrain(const std::string& dsn, const std::string& slot, Lsn end) {
  auto [cluster, config] = BenchCluster();
  auto change_sink = kafka::ChangeSink::Create(config, {{"public.bench", {"id"}}});
  if (!change_sink.ok()) throw std::runtime_error(change_sink.status().ToString());
  auto writer = kafka::ShapeTopicWriter::Create(config);
  if (!writer.ok()) throw std::runtime_error(writer.status().ToString());
  if (auto epoch = (*writer)->BeginEpoch(1); !epoch.ok()) {
    throw std::runtime_error(epoch.status().ToString());
  }
  auto definition = shapes::CompileDefinition(
      shapes::ShapeDefinitionSpec{.name = "by_project",
                                  .table = "public.bench",
                                  .columns = {"id", "project_id", "title", "status"},
                                  .where = "project_id = $p",
                                  .params = {shapes::ParamSpec{.name = "p", .type = "int"}}},
      shapes::TableSchema{.schema = "public",
                          .name = "bench",
                          .columns = {{"id", pgtype::kInt4},
                                      {"project_id", pgtype::kInt4},
                                      {"title", pgtype::kText},
                                      {"status", pgtype::kText},
                                      {"created_at", pgtype::kTimestampTz}},
                          .primary_key = {"id"}});
  if (!definition.ok()) throw std::runtime_error(definition.status().ToString());
  shapes::Router router;
  ShapeLogConfig log_config;
  log_config.max_instance_bytes = 0;
  auto log = ShapeLog::Open(log_config, router, [&](const std::string&) { return *definition; });
  if (!log.ok()) throw std::runtime_error(log.status().ToString());
  kafka::ShapeTopicWriter* w = writer->get();
  (*log)->SetMirror(
      [w](std::string_view frames, Lsn routed) { return w->Publish(frames, routed); });
  // 1,000 ready instances whose snapshots were empty and saw nothing of the table.
  for (int p = 0; p < 1000; ++p) {
    auto instance = shapes::ShapeInstance::Create(*definition, {{"p", Value::Int(p)}});
    if (!instance.ok()) throw std::runtime_error(instance.status().ToString());
    auto acquired = (*log)->Acquire(*instance);
    if (!acquired.ok()) throw std::runtime_error(acquired.status().ToString());
    if (!(*log)->BeginSnapshot(*acquired->log, PgSnapshot{.xmin = 1, .xmax = 1}, Lsn(1)).ok() ||
        !(*log)->FinishSnapshot(*acquired->log, 0).ok()) {
      throw std::runtime_error("cannot make the instances ready");
    }
  }
  RoutingSink routing(router, **log);
  TeeSink tee({change_sink->get(), &routing});
  const double seconds = DrainInto(tee, dsn, slot, end);
  const auto& shape_stats = (*writer)->stats();
  std::cerr << "    kafka: " << (*change_sink)->stats().delivered.load() << " change records and "
            << shape_stats.delivered.load() << " shape topic records delivered; "
            << shape_stats.flush_micros.load() / 1000
            << " ms waiting for the shape topic's delivery reports\n";
  if ((*log)->stats().entries.load() < static_cast<uint64_t>(kRows)) {
    throw std::runtime_error("the instances got " + std::to_string((*log)->stats().entries.load()) +
                             " entries, not " + std::to_string(kRows));
  }
  if (shape_stats.delivery_errors.load() != 0 ||
      shape_stats.delivered.load() < static_cast<uint64_t>(kRows)) {
    throw std::runtime_error("the shape topic got " + std::to_string(shape_stats.delivered.load()) +
                             " records, not " + std::to_string(kRows));
  }
  return seconds;
}

std::vector<Result> Compare(const std::string& name, const std::string& target,
                            double (*drain)(const std::string&, const std::string&, Lsn)) {
  std::string database = name;
  std::replace(database.begin(), database.end(), '-', '_');
  const std::string dsn = shapebridge::testing::TestPostgres::Get().CreateDatabase(database);
  auto conn = ConnectOrDie(dsn);
  ExecOrDie(*conn,
            "CREATE TABLE bench (id int PRIMARY KEY, project_id int NOT NULL, title text NOT NULL, "
            "status text NOT NULL, created_at timestamptz NOT NULL)");
  ExecOrDie(*conn, "ALTER TABLE bench REPLICA IDENTITY FULL");
  ExecOrDie(*conn, "CREATE PUBLICATION bench FOR TABLE bench");
  // Slots are the cluster's: named after the benchmark, so that several run in one go.
  for (const char* slot : {"raw1", "raw2", "bridge1", "bridge2"}) {
    ExecOrDie(*conn, "SELECT pg_create_logical_replication_slot('" + database + "_" + slot +
                         "', 'pgoutput')");
  }
  std::cerr << "    inserting " << kRows << " rows\n";
  for (int first = 1; first <= kRows; first += kRowsPerTransaction) {
    ExecOrDie(*conn,
              "INSERT INTO bench SELECT g, g % 1000, 'task ' || g, 'todo', "
              "'2024-01-01'::timestamptz + g * interval '1 second' FROM generate_series(" +
                  std::to_string(first) + ", " + std::to_string(first + kRowsPerTransaction - 1) +
                  ") g");
  }
  const int commits = kRows / kRowsPerTransaction;
  ExecOrDie(*conn, "CHECKPOINT");

  double raw_best = 1e9;
  double bridge_best = 1e9;
  // Alternate which one goes first, so neither benefits from what the other warmed.
  Lsn end;
  for (int round = 1; round <= 2; ++round) {
    double raw_seconds = 0;
    double bridge_seconds = 0;
    const std::string suffix = std::to_string(round);
    const std::string raw = database + "_raw" + suffix;
    const std::string bridge = database + "_bridge" + suffix;
    if (round % 2 == 1) {
      std::tie(raw_seconds, end) = RawDrain(dsn, raw, commits);
      bridge_seconds = drain(dsn, bridge, end);
    } else {
      bridge_seconds = drain(dsn, bridge, end);
      raw_seconds = RawDrain(dsn, raw, commits).first;
    }
    std::cerr << "    round " << round << ": raw " << raw_seconds << " s, bridge " << bridge_seconds
              << " s\n";
    raw_best = std::min(raw_best, raw_seconds);
    bridge_best = std::min(bridge_best, bridge_seconds);
  }
  return {Result{.name = name,
                 .value = kRows / bridge_best,
                 .unit = "rows/s",
                 .baseline_name = "raw pgoutput drain",
                 .baseline_value = kRows / raw_best,
                 .target = target}};
}

std::vector<Result> RunReplication() { return Compare("replication", "ratio >= 0.8", BridgeDrain); }
std::vector<Result> RunReplicationKafka() {
  return Compare("replication-kafka", "ratio >= 0.6", KafkaDrain);
}
std::vector<Result> RunReplicationKafkaShapes() {
  return Compare("replication-kafka-shapes", "ratio >= 0.6", KafkaShapesDrain);
}

}  // namespace

std::vector<Benchmark> ReplicationBenchmarks() {
  return {Benchmark{.name = "replication",
                    .description = "1M inserted rows through replication into the embedded log "
                                   "vs a raw pgoutput drain",
                    .run = RunReplication},
          Benchmark{.name = "replication-kafka",
                    .description = "1M inserted rows through replication into the Kafka change "
                                   "topic (mock cluster) vs a raw pgoutput drain",
                    .run = RunReplicationKafka},
          Benchmark{.name = "replication-kafka-shapes",
                    .description = "1M inserted rows into the change topic and, routed to 1,000 "
                                   "instances, the shape topic (mock cluster) vs a raw pgoutput "
                                   "drain",
                    .run = RunReplicationKafkaShapes}};
}

}  // namespace shapebridge::bench
