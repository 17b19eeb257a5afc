// The Kafka backend against a real Postgres and librdkafka's mock cluster (the real Kafka
// protocol): every change reaches the change topic, keyed and in order per row, through faults,
// a crash during an outage and a failover of the replicator; the slot's flush position never
// passes a record Kafka has not acknowledged. The end-to-end test runs against a real broker
// instead when SHAPEBRIDGE_TEST_KAFKA names one (bootstrap servers).

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bridge/kafka/change_sink.h"
#include "bridge/kafka/dev_cluster.h"
#include "bridge/replication/replicator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/http.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/test_postgres.h"

namespace shapebridge {
namespace {

using ::shapebridge::testing::ConnectOrDie;
using ::shapebridge::testing::ExecOrDie;
using ::shapebridge::testing::HttpGet;
using ::shapebridge::testing::MetricValue;
using ::shapebridge::testing::QueryValue;
using ::shapebridge::testing::RunCommand;
using ::shapebridge::testing::ShapebridgeBinary;
using ::shapebridge::testing::Subprocess;
using ::shapebridge::testing::TestPostgres;
using ::testing::HasSubstr;

struct Record {
  int partition = 0;
  int64_t offset = 0;
  std::string type;  // header "type"
  Lsn lsn;           // header "lsn"
  int index = 0;     // header "index"
  std::string key;
  nlohmann::json value;
};

// Every record of every partition of `topic`, from the beginning to the current end.
std::vector<Record> ReadTopic(const std::string& bootstrap, const std::string& topic,
                              int partitions) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (auto [k, v] : std::vector<std::pair<const char*, std::string>>{
           {"bootstrap.servers", bootstrap},
           {"group.id", "shapebridge-test-reader"},  // assign() needs one; no group is joined
           {"enable.auto.commit", "false"},
           {"enable.partition.eof", "true"},
           {"log_level", "3"}}) {
    EXPECT_EQ(rd_kafka_conf_set(conf, k, v.c_str(), error, sizeof error), RD_KAFKA_CONF_OK);
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
  EXPECT_NE(rk, nullptr) << error;
  std::vector<Record> records;
  if (rk == nullptr) return records;
  std::set<int> pending;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    int64_t low = 0;
    int64_t high = 0;
    EXPECT_EQ(rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high, 10000),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    if (high > low) pending.insert(p);
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  EXPECT_EQ(rd_kafka_assign(rk, list), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(list);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!pending.empty() && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 200);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      pending.erase(m->partition);
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      Record r;
      r.partition = m->partition;
      r.offset = m->offset;
      r.key.assign(static_cast<const char*>(m->key), m->key_len);
      r.value = nlohmann::json::parse(
          std::string_view(static_cast<const char*>(m->payload), m->len), nullptr, false);
      rd_kafka_headers_t* headers = nullptr;
      if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        auto header = [&](const char* name) {
          const void* value = nullptr;
          size_t size = 0;
          if (rd_kafka_header_get_last(headers, name, &value, &size) !=
              RD_KAFKA_RESP_ERR_NO_ERROR) {
            return std::string();
          }
          return std::string(static_cast<const char*>(value), size);
        };
        r.type = header("type");
        r.lsn = Lsn::Parse(header("lsn")).value_or(Lsn());
        r.index = std::atoi(header("index").c_str());
      }
      records.push_back(std::move(r));
    } else {
      ADD_FAILURE() << "consumer: " << rd_kafka_message_errstr(m);
    }
    rd_kafka_message_destroy(m);
  }
  EXPECT_TRUE(pending.empty()) << "did not reach the end of every partition";
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return records;
}

// The rows of public.items as the change records say, applied in partition order (one row's
// records are in one partition) after dropping records seen before (by lsn and index), as a
// consumer does. Also checks each row's records are in commit order.
std::map<int, std::string> Replay(const std::vector<Record>& records, std::string* problems) {
  std::map<int, std::string> rows;
  std::set<std::pair<uint64_t, int>> seen;
  std::map<int, std::pair<uint64_t, int>> last;  // per row: the last (lsn, index) applied
  for (const Record& r : records) {
    if (r.type == "checkpoint") continue;
    if (!seen.insert({r.lsn.value(), r.index}).second) continue;
    const nlohmann::json& v = r.value;
    const int id = v["key"]["id"].get<int>();
    const std::pair<uint64_t, int> at{r.lsn.value(), r.index};
    if (last.contains(id) && at < last[id]) {
      absl::StrAppend(problems, "row ", id, ": record ", r.lsn.ToString(), "#", r.index,
                      " after a later one\n");
    }
    last[id] = at;
    if (v["op"] == "delete") {
      rows.erase(id);
    } else {
      rows[id] = absl::StrCat(v["new"]["grp"].dump(), ":", v["new"]["val"].get<std::string>());
    }
  }
  return rows;
}

class KafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    db_ = std::string("k_") + info->name();
    for (auto& ch : db_) ch = static_cast<char>(std::tolower(ch));
    dsn_ = TestPostgres::Get().CreateDatabase(db_);
    auto sql = ConnectOrDie(dsn_);
    ExecOrDie(*sql, "CREATE TABLE items (id int PRIMARY KEY, grp int, val text NOT NULL)");
    auto cluster = kafka::DevCluster::Start(3);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    kafka_.bootstrap_servers = cluster_->bootstrap_servers();
    // Unique per run: against a real broker, a rerun must not read an earlier run's records.
    kafka_.topic_prefix = absl::StrCat(db_, "-", getpid(), "-",
                                       std::chrono::steady_clock::now().time_since_epoch().count());
    kafka_.partitions = 4;
    kafka_.checkpoint_interval = std::chrono::milliseconds(100);
    kafka_.flush_timeout = std::chrono::milliseconds(30'000);
    kafka_.properties = {{"socket.connection.setup.timeout.ms", "3000"}};
    ASSERT_TRUE(cluster_->CreateTopic(kafka_.ChangeTopic(), 4, 3).ok());
    config_.dsn = dsn_;
    config_.slot = "sb_" + db_;
    config_.publication = "sb_pub";
    config_.tables = {"public.items"};
    config_.status_interval = std::chrono::milliseconds(100);
    config_.heartbeat_interval = std::chrono::milliseconds(100);
    config_.reconnect_backoff_min = std::chrono::milliseconds(50);
    config_.reconnect_backoff_max = std::chrono::milliseconds(500);
  }

  void TearDown() override {
    replicator_.reset();
    sink_.reset();
    cluster_.reset();
    auto conn = ConnectOrDie(TestPostgres::Get().dsn());
    (void)conn->ExecParams(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
        "WHERE slot_name = $1 AND NOT active",
        {config_.slot});
  }

  void Start() {
    auto sink = kafka::ChangeSink::Create(kafka_, {{"public.items", {"id"}}});
    ASSERT_TRUE(sink.ok()) << sink.status();
    sink_ = *std::move(sink);
    replicator_ = std::make_unique<Replicator>(config_, *sink_);
    replicator_->Start();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!replicator_->stats().streaming.load() && !replicator_->done()) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "replication did not start";
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  Lsn InsertLsn() {
    auto sql = ConnectOrDie(dsn_);
    return *Lsn::Parse(QueryValue(*sql, "SELECT pg_current_wal_insert_lsn()"));
  }
  Lsn ConfirmedFlush() {
    auto sql = ConnectOrDie(dsn_);
    return *Lsn::Parse(
        QueryValue(*sql, absl::StrCat("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE "
                                      "slot_name = '",
                                      config_.slot, "'")));
  }
  // Waits until the sink is durable past everything written so far.
  void WaitForDurable(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    const Lsn target = InsertLsn();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (Lsn(sink_->stats().durable_lsn.load()) < target) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "durable " << Lsn(sink_->stats().durable_lsn.load()) << " < " << target;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::map<int, std::string> TableRows() {
    auto sql = ConnectOrDie(dsn_);
    std::map<int, std::string> rows;
    PgResult r = ExecOrDie(*sql, "SELECT id, grp, val FROM items");
    for (int i = 0; i < r.rows(); ++i) {
      rows[std::atoi(std::string(r.Get(i, 0)).c_str())] = absl::StrCat(
          r.IsNull(i, 1) ? "null" : std::string(r.Get(i, 1)), ":", std::string(r.Get(i, 2)));
    }
    return rows;
  }
  // Random single-row statements on ids [0, 40), each its own transaction. Returns the number of
  // rows they changed.
  int Write(int statements, int seed) {
    int changed = 0;
    auto sql = ConnectOrDie(dsn_);
    std::mt19937 rng(seed);
    for (int i = 0; i < statements; ++i) {
      const int id = static_cast<int>(rng() % 40);
      std::string statement;
      switch (rng() % 3) {
        case 0:
          statement =
              absl::StrCat("INSERT INTO items VALUES (", id, ", ", rng() % 5, ", 'v", seed, "-", i,
                           "') ON CONFLICT (id) DO UPDATE SET val = excluded.val, grp = "
                           "excluded.grp");
          break;
        case 1:
          statement = absl::StrCat("UPDATE items SET val = 'u", seed, "-", i, "' WHERE id = ", id);
          break;
        default:
          statement = absl::StrCat("DELETE FROM items WHERE id = ", id);
      }
      changed += ExecOrDie(*sql, statement + " RETURNING 1").rows();
    }
    return changed;
  }
  void ExpectTopicEqualsTable() {
    const auto records = ReadTopic(kafka_.bootstrap_servers, kafka_.ChangeTopic(), 4);
    std::string problems;
    EXPECT_EQ(Replay(records, &problems), TableRows());
    EXPECT_EQ(problems, "");
  }

  std::string db_;
  std::string dsn_;
  std::unique_ptr<kafka::DevCluster> cluster_;
  kafka::KafkaConfig kafka_;
  ReplicationConfig config_;
  std::unique_ptr<kafka::ChangeSink> sink_;
  std::unique_ptr<Replicator> replicator_;
};

TEST_F(KafkaTest, EveryChangeIsARecordKeyedByRowInCommitOrder) {
  if (const char* broker = std::getenv("SHAPEBRIDGE_TEST_KAFKA"); broker && *broker) {
    kafka_.bootstrap_servers = broker;  // a real broker: the sink creates the topic
  }
  Start();
  const int changed = Write(400, 1);
  auto sql = ConnectOrDie(dsn_);
  ExecOrDie(*sql,
            "BEGIN; INSERT INTO items VALUES (100, 1, 'a'), (101, 1, 'b'); "
            "UPDATE items SET grp = NULL WHERE id = 100; COMMIT");
  WaitForDurable();
  const auto records = ReadTopic(kafka_.bootstrap_servers, kafka_.ChangeTopic(), 4);
  std::string problems;
  EXPECT_EQ(Replay(records, &problems), TableRows());
  EXPECT_EQ(problems, "");
  // Nothing went wrong, so nothing was produced twice: a record per change, and checkpoints.
  int changes = 0;
  std::set<int> checkpointed;
  std::map<std::string, int> partition_of;
  for (const Record& r : records) {
    if (r.type == "checkpoint") {
      checkpointed.insert(r.partition);
      EXPECT_EQ(r.value["op"], "checkpoint");
      continue;
    }
    ++changes;
    // One row, one partition.
    auto [it, added] = partition_of.emplace(r.key, r.partition);
    EXPECT_EQ(it->second, r.partition) << r.key;
    EXPECT_EQ(r.type, r.value["op"]);
    EXPECT_EQ(r.lsn.ToString(), r.value["lsn"]);
    EXPECT_EQ(r.index, r.value["index"]);
  }
  EXPECT_EQ(changes, changed + 3);
  EXPECT_EQ(checkpointed.size(), 4u) << "a checkpoint in every partition";
  // The documented format of one transaction's records.
  std::vector<nlohmann::json> txn;
  for (const Record& r : records) {
    if (r.value.contains("key") && r.value["key"].contains("id") && r.value["key"]["id"] == 100) {
      txn.push_back(r.value);
    }
  }
  ASSERT_EQ(txn.size(), 2u);
  EXPECT_EQ(txn[0]["op"], "insert");
  EXPECT_EQ(txn[0]["table"], "public.items");
  EXPECT_EQ(txn[0]["new"], nlohmann::json({{"id", 100}, {"grp", 1}, {"val", "a"}}));
  EXPECT_FALSE(txn[0].contains("old"));
  EXPECT_EQ(txn[1]["op"], "update");
  EXPECT_EQ(txn[1]["index"], 2);
  EXPECT_EQ(txn[1]["lsn"], txn[0]["lsn"]);
  EXPECT_EQ(txn[1]["old"]["grp"], 1);
  EXPECT_TRUE(txn[1]["new"]["grp"].is_null());
  EXPECT_TRUE(txn[1]["commit_time"].get<std::string>().ends_with("Z"));
  EXPECT_EQ(sink_->stats().delivery_errors.load(), 0u);
}

// Produce errors, a broker down for seconds, leader changes, and a permanent error that stops the
// producer: nothing is lost, and each row's records stay in commit order.
TEST_F(KafkaTest, FaultsLoseNothing) {
  Start();
  std::atomic<bool> done{false};
  int changed = 0;
  std::thread writer([&] {
    changed = Write(300, 2);
    done = true;
  });
  const std::string topic = kafka_.ChangeTopic();
  constexpr int kNotLeader = 6;         // NOT_LEADER_FOR_PARTITION: retried
  constexpr int kRequestTimedOut = 7;   // retried
  constexpr int kMessageTooLarge = 10;  // permanent: the producer stops, the session starts over
  cluster_->FailProduceRequests({kNotLeader, kRequestTimedOut, kNotLeader});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(cluster_->SetLeader(topic, 0, 2).ok());
  ASSERT_TRUE(cluster_->SetLeader(topic, 1, 3).ok());
  ASSERT_TRUE(cluster_->SetBrokerDown(1, true).ok());
  std::this_thread::sleep_for(std::chrono::seconds(3));
  ASSERT_TRUE(cluster_->SetBrokerDown(1, false).ok());
  cluster_->FailProduceRequests({kMessageTooLarge});
  writer.join();
  changed += Write(50, 3);
  WaitForDurable();
  ExpectTopicEqualsTable();
  // Every change is in the topic, none lost in between (some may be there twice).
  std::set<std::pair<uint64_t, int>> changes;
  for (const Record& r : ReadTopic(kafka_.bootstrap_servers, kafka_.ChangeTopic(), 4)) {
    if (r.type != "checkpoint") changes.insert({r.lsn.value(), r.index});
  }
  EXPECT_EQ(changes.size(), static_cast<size_t>(changed));
  EXPECT_GE(sink_->stats().delivery_errors.load(), 1u) << "the permanent error was injected";
  EXPECT_GE(sink_->stats().producers.load(), 2u) << "a new producer after it";
}

// Kafka unreachable: the slot's flush position stays behind the records Kafka has not
// acknowledged. The replicator dies then, with records only in its producer's memory; the next one
// produces them again from the slot.
TEST_F(KafkaTest, TheFlushPositionNeverPassesUnacknowledgedRecords) {
  kafka_.flush_timeout = std::chrono::milliseconds(1500);
  Start();
  Write(50, 4);
  WaitForDurable();
  for (int b = 1; b <= 3; ++b) ASSERT_TRUE(cluster_->SetBrokerDown(b, true).ok());
  // The first write during the outage; `before` precedes its commit record (heartbeats before
  // it may move the flush position up to there, nothing after it may).
  auto sql = ConnectOrDie(dsn_);
  const Lsn before = *Lsn::Parse(QueryValue(
      *sql, "INSERT INTO items VALUES (1000, 0, 'first') RETURNING pg_current_wal_insert_lsn()"));
  Write(100, 5);
  std::this_thread::sleep_for(std::chrono::seconds(3));  // status updates every 100 ms
  EXPECT_LE(ConfirmedFlush(), before);
  EXPECT_LE(Lsn(sink_->stats().durable_lsn.load()), before);
  // The replicator dies with the records undelivered.
  replicator_.reset();
  sink_.reset();
  for (int b = 1; b <= 3; ++b) ASSERT_TRUE(cluster_->SetBrokerDown(b, false).ok());
  Start();
  WaitForDurable();
  ExpectTopicEqualsTable();
  EXPECT_GT(ConfirmedFlush(), before);
}

// kcat, as a consumer outside the process, reads the change topic in the documented format.
TEST_F(KafkaTest, KcatReadsTheChangeTopic) {
  Start();
  auto sql = ConnectOrDie(dsn_);
  ExecOrDie(*sql, "INSERT INTO items VALUES (7, 2, 'seven')");
  ExecOrDie(*sql, "UPDATE items SET val = 'SEVEN' WHERE id = 7");
  ExecOrDie(*sql, "DELETE FROM items WHERE id = 7");
  WaitForDurable();
  const auto out =
      RunCommand(absl::StrCat("kcat -C -b ", kafka_.bootstrap_servers, " -t ", kafka_.ChangeTopic(),
                              " -o beginning -e -q -f '%k|%h|%s\\n' 2>&1"));
  ASSERT_EQ(out.exit_code, 0) << out.text;
  std::vector<nlohmann::json> changes;
  for (absl::string_view line : absl::StrSplit(out.text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits('|', 2));
    ASSERT_EQ(parts.size(), 3u) << line;
    if (parts[1].find("type=checkpoint") != std::string::npos) continue;
    EXPECT_EQ(parts[0], R"({"key":{"id":7},"table":"public.items"})");
    EXPECT_THAT(parts[1], HasSubstr("lsn="));
    changes.push_back(nlohmann::json::parse(parts[2]));
  }
  ASSERT_EQ(changes.size(), 3u) << out.text;
  EXPECT_EQ(changes[0]["op"], "insert");
  EXPECT_EQ(changes[0]["new"]["val"], "seven");
  EXPECT_EQ(changes[1]["op"], "update");
  EXPECT_EQ(changes[1]["old"]["val"], "seven");
  EXPECT_EQ(changes[1]["new"]["val"], "SEVEN");
  EXPECT_EQ(changes[2]["op"], "delete");
  EXPECT_EQ(changes[2]["old"]["val"], "SEVEN");
  EXPECT_EQ(changes[2]["key"]["id"], 7);
}

// Two `shapebridge replicate` processes: one leads, one waits. kill -9 the leader while rows are
// written: the standby takes over and nothing is lost.
TEST_F(KafkaTest, AStandbyTakesOverWhenTheLeaderIsKilled) {
  const auto dir = std::filesystem::temp_directory_path() / (db_ + "-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const auto config_path = dir / "replicate.yaml";
  std::ofstream(config_path) << absl::StrCat(R"(postgres:
  dsn: ")",
                                             dsn_, R"("
replication:
  slot: )",
                                             config_.slot, R"(
  publication: sb_pub
  tables: [public.items]
  status_interval_ms: 100
  heartbeat_interval_ms: 100
  reconnect_backoff_min_ms: 50
  reconnect_backoff_max_ms: 200
log:
  backend: kafka
kafka:
  bootstrap_servers: ")",
                                             kafka_.bootstrap_servers, R"("
  topic_prefix: )",
                                             kafka_.topic_prefix, R"(
  partitions: 4
  checkpoint_interval_ms: 100
metrics:
  listen: 127.0.0.1:0
  slot_poll_interval_ms: 200
)");
  const std::string log_a = (dir / "a.log").string();
  const std::string log_b = (dir / "b.log").string();
  auto log_has = [](const std::string& path, const std::string& text) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str().find(text) != std::string::npos;
  };
  auto wait_for = [&](const std::function<bool()>& done, int seconds) {
    for (int i = 0; i < seconds * 20 && !done(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return done();
  };
  auto metrics_port = [](const std::string& path) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      if (line.starts_with("shapebridge: metrics on port ")) return std::atoi(line.c_str() + 29);
    }
    return 0;
  };
  auto metric = [](int port, const std::string& series) {
    return MetricValue(HttpGet(port, "/metrics").second, series);
  };
  Subprocess a({ShapebridgeBinary(), "replicate", "--config", config_path.string()}, log_a);
  ASSERT_TRUE(wait_for([&] { return log_has(log_a, "leader: streaming"); }, 30));
  Subprocess b({ShapebridgeBinary(), "replicate", "--config", config_path.string()}, log_b);
  // The whole phrase: the topic prefix, in the log too, holds this test's name ("...Standby...").
  ASSERT_TRUE(wait_for([&] { return log_has(log_b, "standby: another replicator"); }, 30));
  const int port_a = metrics_port(log_a);
  const int port_b = metrics_port(log_b);
  ASSERT_NE(port_a, 0);
  ASSERT_NE(port_b, 0);
  EXPECT_EQ(metric(port_a, "shapebridge_replicator_leader"), 1);
  EXPECT_EQ(metric(port_b, "shapebridge_replicator_leader"), 0);
  EXPECT_EQ(HttpGet(port_b, "/readyz"), std::make_pair(200, std::string("ready (standby)\n")));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int round = 0; !stop.load(); ++round) Write(10, 100 + round);
  });
  std::this_thread::sleep_for(std::chrono::seconds(1));
  a.Kill(SIGKILL);
  ASSERT_TRUE(wait_for([&] { return log_has(log_b, "leader: streaming"); }, 30));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  stop = true;
  writer.join();
  // The standby catches up: the slot's flush position reaches the end of the writes.
  const Lsn end = InsertLsn();
  ASSERT_TRUE(wait_for([&] { return ConfirmedFlush() >= end; }, 60)) << ConfirmedFlush();
  ExpectTopicEqualsTable();
  // The new leader's metrics say so, and move with its work.
  EXPECT_EQ(metric(port_b, "shapebridge_replicator_leader"), 1);
  EXPECT_GT(metric(port_b, "shapebridge_kafka_records_delivered_total"), 0);
  EXPECT_GE(metric(port_b, "shapebridge_kafka_durable_lsn"), static_cast<double>(end.value()));
  EXPECT_EQ(metric(port_b, "shapebridge_kafka_delivery_errors_total"), 0);
  EXPECT_EQ(metric(port_b, "shapebridge_replication_streaming"), 1);
  EXPECT_EQ(HttpGet(port_b, "/readyz").first, 200);
  EXPECT_EQ(b.Kill(SIGTERM), 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace shapebridge
