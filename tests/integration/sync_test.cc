// The Sync service end to end: a real Postgres, the service wired as `serve` wires it, and gRPC
// clients on loopback that keep replicas the way a local-first client does (applied in whole
// checkpoints).
//
// The oracle for "the shape's rows at LSN C" is a second logical slot with test_decoding: it
// gives every transaction of the table with the end LSN of its commit record, and a checkpoint C
// covers exactly the transactions whose commit ends at or before C.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bridge/app/config.h"
#include "bridge/app/service.h"
#include "bridge/auth/jwt.h"
#include "bridge/kafka/dev_cluster.h"
#include "bridge/replication/replicator.h"
#include "bridge/writeback/writer.h"
#include "clients/cli/sync_client.h"
#include "clients/hlc/hlc.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "rapidcheck.h"
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
using ::shapebridge::testing::TestPostgres;
using ::testing::HasSubstr;
namespace pb = ::shapebridge::sync::v1;

constexpr char kSecret[] = "an HS256 secret for the sync tests, 32+ bytes";

std::string Token(const nlohmann::json& claims_in, int ttl_s = 3600) {
  nlohmann::json claims = claims_in;
  if (!claims.contains("exp")) {
    claims["exp"] = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count() +
                    ttl_s;
  }
  auto token = auth::SignToken(claims, "HS256", kSecret);
  EXPECT_TRUE(token.ok()) << token.status();
  return token.ok() ? *token : "";
}

std::string MakeTempDir() {
  char tmpl[] = "/tmp/sbsync.XXXXXX";
  return mkdtemp(tmpl);
}

std::string ConfigYaml(const std::string& dsn, const std::string& slot, const std::string& dir,
                       const std::string& extra = "") {
  return absl::StrCat(R"y(postgres:
  dsn: ")y",
                      dsn, R"y("
replication:
  slot: )y",
                      slot, R"y(
  publication: )y",
                      slot, R"y(
  heartbeat_interval_ms: 100
  status_interval_ms: 200
log:
  dir: )y",
                      dir, R"y(
shape_log:
  fsync: false
server:
  listen: 127.0.0.1:0
  heartbeat_interval_ms: 200
metrics:
  listen: 127.0.0.1:0
  slot_poll_interval_ms: 200
auth:
  jwt:
    keys:
      - algorithm: HS256
        secret: ")y",
                      kSecret, R"y("
shapes:
  - name: items_by_grp
    table: public.items
    where: "grp = $g"
    params:
      g: {type: int, from: request}
  - name: tasks_by_project
    table: public.tasks
    columns: [id, project_id, title, owner]
    where: "project_id = $project"
    params:
      project: {type: int, from: request, claim: projects}
  - name: my_tasks
    table: public.tasks
    columns: [id, project_id, title, owner]
    where: "owner = $me"
    params:
      me: {type: text, from: claim, claim: sub}
  - name: tasks_in_projects
    table: public.tasks
    columns: [id, project_id, title]
    where: "project_id = ANY($projects)"
    params:
      projects: {type: "int[]", from: claim, claim: projects}
)y",
                      extra);
}

std::unique_ptr<Service> StartService(const std::string& yaml) {
  auto config = ParseConfig(yaml, "sync_test.yaml");
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return nullptr;
  auto service = Service::Create(*config);
  EXPECT_TRUE(service.ok()) << service.status();
  if (!service.ok()) return nullptr;
  EXPECT_TRUE((*service)->Start().ok());
  for (int i = 0; i < 300 && !(*service)->replicator().stats().streaming.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE((*service)->replicator().stats().streaming.load());
  return *std::move(service);
}

// A client that keeps a replica, checks the stream's invariants as messages arrive and records
// the replica of its watched subscriptions at every checkpoint.
class TestClient {
 public:
  using Rows = std::map<std::string, std::vector<std::string>>;  // key -> column texts
  struct Checkpoint {
    uint64_t lsn;
    std::map<std::string, Rows> rows;  // by subscription id
  };

  TestClient(int port, std::string token) : port_(port), token_(std::move(token)) { Connect(); }
  ~TestClient() { Disconnect(); }

  void Subscribe(client::SubscriptionSpec spec) {
    std::lock_guard lock(mu_);
    specs_[spec.id] = spec;
    client_->Subscribe(spec);
  }

  // Ends the stream (as a client that goes offline) and returns its status.
  grpc::Status Disconnect() {
    if (!client_) return status_;
    if (!ended_.load()) client_->Cancel();
    if (thread_.joinable()) thread_.join();
    status_ = client_->Finish();
    client_.reset();
    return status_;
  }

  // Reconnects and resumes every subscription from its last applied offset.
  void Resume(int port = 0) {
    Disconnect();
    if (port) port_ = port;
    std::lock_guard lock(mu_);
    replica_.StreamEnded();
    Connect();
    for (auto& [id, spec] : specs_) {
      client::SubscriptionSpec s = spec;
      auto it = replica_.shapes().find(id);
      if (it != replica_.shapes().end() && it->second.offset) {
        s.resume_from = *it->second.offset;
        s.instance_id = it->second.schema.instance_id();
        last_offset_[id] = *it->second.offset;
      } else {
        replica_.Drop(id);
        last_offset_.erase(id);
      }
      client_->Subscribe(s);
    }
  }

  // Waits until the stream ended by itself; returns its status.
  grpc::Status WaitForEnd(int timeout_ms = 10000) {
    for (int i = 0; i < timeout_ms / 10 && !ended_.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(ended_.load()) << "the stream did not end";
    return Disconnect();
  }

  bool WaitForCheckpoint(uint64_t lsn, int timeout_ms = 20000) {
    for (int i = 0; i < timeout_ms / 10; ++i) {
      {
        std::lock_guard lock(mu_);
        if (replica_.checkpoint() >= lsn && replica_.pending() == 0) return true;
      }
      if (ended_.load()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  Rows RowsOf(const std::string& id) {
    std::lock_guard lock(mu_);
    auto it = replica_.shapes().find(id);
    return it == replica_.shapes().end() ? Rows{} : ToRows(it->second);
  }
  std::vector<Checkpoint> checkpoints() {
    std::lock_guard lock(mu_);
    return checkpoints_;
  }
  std::vector<std::string> errors() {
    std::lock_guard lock(mu_);
    return errors_;
  }
  std::vector<pb::SyncResponse> messages() {
    std::lock_guard lock(mu_);
    return messages_;
  }
  void KeepMessages() { keep_messages_ = true; }

 private:
  static Rows ToRows(const client::Replica::Shape& shape) {
    Rows rows;
    for (const auto& [key, row] : shape.rows) {
      std::vector<std::string> values;
      for (const auto& v : row.values) values.push_back(client::Replica::ValueText(v));
      rows[key] = values;
    }
    return rows;
  }

  void Connect() {
    client_ = std::make_unique<client::SyncClient>(absl::StrCat("127.0.0.1:", port_), token_);
    ended_ = false;
    thread_ = std::thread([this] { Loop(); });
  }

  void Loop() {
    pb::SyncResponse r;
    while (client_->Next(&r)) {
      std::lock_guard lock(mu_);
      if (keep_messages_) messages_.push_back(r);
      if (r.has_changes()) {
        const std::string& id = r.changes().subscription_id();
        for (const pb::Change& c : r.changes().changes()) {
          auto last = last_offset_.find(id);
          if (last != last_offset_.end() &&
              std::make_pair(c.offset().lsn(), c.offset().index()) <=
                  std::make_pair(last->second.lsn(), last->second.index())) {
            errors_.push_back(absl::StrCat("subscription ", id, ": offset ", c.offset().lsn(), "#",
                                           c.offset().index(), " is not after ", last->second.lsn(),
                                           "#", last->second.index()));
          }
          last_offset_[id] = c.offset();
        }
      }
      if (r.has_must_refetch()) {
        errors_.push_back(absl::StrCat("must_refetch for ", r.must_refetch().subscription_id(),
                                       ": ", r.must_refetch().message()));
        last_offset_.erase(r.must_refetch().subscription_id());
      }
      replica_.Apply(r);
      if (r.has_checkpoint()) {
        // The subscriptions this checkpoint covers (acknowledged on this stream).
        Checkpoint cp{r.checkpoint().lsn(), {}};
        for (const auto& [id, shape] : replica_.shapes()) {
          if (shape.checkpoint == cp.lsn) cp.rows[id] = ToRows(shape);
        }
        checkpoints_.push_back(std::move(cp));
      }
    }
    ended_ = true;
  }

  int port_;
  std::string token_;
  std::unique_ptr<client::SyncClient> client_;
  std::thread thread_;
  std::atomic<bool> ended_{false};
  grpc::Status status_;
  bool keep_messages_ = false;

  std::mutex mu_;
  std::map<std::string, client::SubscriptionSpec> specs_;
  client::Replica replica_;
  std::map<std::string, pb::Offset> last_offset_;
  std::vector<Checkpoint> checkpoints_;
  std::vector<std::string> errors_;
  std::vector<pb::SyncResponse> messages_;
};

// The items table as of any LSN, from the test_decoding slot.
class Oracle {
 public:
  struct Row {
    int grp;
    int val;
  };

  void Fetch(PgConnection& sql) {
    PgResult r = ExecOrDie(sql,
                           "SELECT lsn::text, data FROM pg_logical_slot_get_changes('oracle', "
                           "NULL, NULL, 'include-xids', '0')");
    static const std::regex kRow(
        R"(table public\.items: (INSERT|UPDATE|DELETE): (?:old-key: .*new-tuple: )?id\[integer\]:(-?\d+) grp\[integer\]:(-?\d+|null) val\[integer\]:(-?\d+|null))");
    for (int i = 0; i < r.rows(); ++i) {
      const std::string data(r.Get(i, 1));
      if (data.starts_with("BEGIN")) {
        current_.ops.clear();
      } else if (data.starts_with("COMMIT")) {
        current_.end = Lsn::Parse(r.Get(i, 0)).value();
        txns_.push_back(current_);
        current_.ops.clear();
      } else {
        std::smatch m;
        if (std::regex_search(data, m, kRow)) {
          current_.ops.push_back(
              {m[1].str()[0], std::stoi(m[2].str()), std::stoi(m[3].str()), std::stoi(m[4].str())});
        }
      }
    }
  }

  // The rows of items with grp = g after every transaction that commits before `lsn`.
  TestClient::Rows RowsAt(uint64_t lsn, int g) const {
    std::map<int, Row> table;
    for (const Txn& t : txns_) {
      if (t.end.value() > lsn) break;
      for (const Op& op : t.ops) {
        if (op.kind == 'D') {
          table.erase(op.id);
        } else {
          table[op.id] = {op.grp, op.val};
        }
      }
    }
    TestClient::Rows rows;
    for (const auto& [id, row] : table) {
      if (row.grp != g) continue;
      rows[std::to_string(id)] = {std::to_string(id), std::to_string(row.grp),
                                  std::to_string(row.val)};
    }
    return rows;
  }

 private:
  struct Op {
    char kind;
    int id;
    int grp;
    int val;
  };
  struct Txn {
    Lsn end;
    std::vector<Op> ops;
  };
  std::vector<Txn> txns_;
  Txn current_;
};

TestClient::Rows QueryRows(PgConnection& sql, int g) {
  PgResult r = ExecOrDie(
      sql, absl::StrCat("SELECT id, grp, val FROM items WHERE grp = ", g, " ORDER BY id"));
  TestClient::Rows rows;
  for (int i = 0; i < r.rows(); ++i) {
    rows[std::string(r.Get(i, 0))] = {std::string(r.Get(i, 0)), std::string(r.Get(i, 1)),
                                      std::string(r.Get(i, 2))};
  }
  return rows;
}

std::string RowsText(const TestClient::Rows& rows) {
  std::string out;
  for (const auto& [k, v] : rows) absl::StrAppend(&out, "[", absl::StrJoin(v, ","), "] ");
  return out;
}

class SyncTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dsn_ = new std::string(TestPostgres::Get().CreateDatabase("sync"));
    auto sql = ConnectOrDie(*dsn_);
    ExecOrDie(*sql, "CREATE TABLE items (id int PRIMARY KEY, grp int, val int)");
    ExecOrDie(*sql,
              "CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL, title text, "
              "owner text)");
    ExecOrDie(*sql, "ALTER TABLE items REPLICA IDENTITY FULL");
    ExecOrDie(*sql, "SELECT pg_create_logical_replication_slot('oracle', 'test_decoding')");
    dir_ = new std::string(MakeTempDir());
    service_ = StartService(ConfigYaml(*dsn_, "sync", *dir_)).release();
    ASSERT_NE(service_, nullptr);
    oracle_ = new Oracle();
  }
  static void TearDownTestSuite() {
    delete service_;
    service_ = nullptr;
    std::filesystem::remove_all(*dir_);
  }

  static uint64_t InsertLsn(PgConnection& sql) {
    return Lsn::Parse(QueryValue(sql, "SELECT pg_current_wal_insert_lsn()::text"))->value();
  }

  static std::string* dsn_;
  static std::string* dir_;
  static Service* service_;
  static Oracle* oracle_;
};
std::string* SyncTest::dsn_ = nullptr;
std::string* SyncTest::dir_ = nullptr;
Service* SyncTest::service_ = nullptr;
Oracle* SyncTest::oracle_ = nullptr;

// Writers insert, update (moving rows between groups) and delete while clients subscribe at
// random moments, one of them disconnecting and resuming at random points. At every checkpoint a
// client's replica equals the shape's rows on Postgres at that LSN, for every subscription at
// once; at the end it equals Postgres.
TEST_F(SyncTest, SpliceResumeAndCheckpointsMatchPostgresAtEveryCheckpoint) {
  const char* seed_env = std::getenv("SHAPEBRIDGE_SYNC_SEED");
  const uint32_t seed = seed_env ? static_cast<uint32_t>(std::stoul(seed_env)) : 20261122;
  const int runs = 50;
  auto sql = ConnectOrDie(*dsn_);
  size_t checkpoints_checked = 0;
  for (int run = 0; run < runs; ++run) {
    std::mt19937 rng(seed + run);
    SCOPED_TRACE(absl::StrCat("run ", run, " seed ", seed + run));
    const int g0 = 1000 + run * 10;  // groups g0..g0+2 belong to this run; g0+3 is "elsewhere"
    const int id0 = 100000 * (run + 1);
    // Initial rows.
    std::string values;
    for (int i = 0; i < 30; ++i) {
      absl::StrAppend(&values, i ? "," : "", "(", id0 + i, ",", g0 + static_cast<int>(rng() % 4),
                      ",", rng() % 100, ")");
    }
    ExecOrDie(*sql, "INSERT INTO items VALUES " + values);

    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int w = 0; w < 2; ++w) {
      writers.emplace_back([&, w] {
        std::mt19937 wr(seed * 7 + run * 13 + w);
        auto conn = ConnectOrDie(*dsn_);
        int next_id = id0 + 1000 * (w + 1);
        while (!stop.load()) {
          std::string txn = "BEGIN;";
          const int ops = 1 + static_cast<int>(wr() % 3);
          for (int o = 0; o < ops; ++o) {
            const int target = id0 + static_cast<int>(wr() % 30);  // rows of both writers
            const int g = g0 + static_cast<int>(wr() % 4);
            if (wr() % 30 == 0) {  // every row this writer inserted: routed in several runs
              absl::StrAppend(&txn,
                              "UPDATE items SET val = val + 1 WHERE id >= ", id0 + 1000 * (w + 1),
                              " AND id < ", next_id, ";");
              continue;
            }
            switch (wr() % 5) {
              case 0:
                absl::StrAppend(&txn, "INSERT INTO items VALUES (", next_id++, ",", g, ",",
                                wr() % 100, ");");
                break;
              case 1:
                absl::StrAppend(&txn, "UPDATE items SET grp = ", g, " WHERE id = ", target, ";");
                break;
              case 2:
                absl::StrAppend(&txn, "UPDATE items SET val = val + 1 WHERE id = ", target, ";");
                break;
              case 3:
                absl::StrAppend(&txn, "DELETE FROM items WHERE id = ", target, ";");
                break;
              default:
                absl::StrAppend(&txn, "INSERT INTO items VALUES (", target, ",", g, ",", wr() % 100,
                                ") ON CONFLICT (id) DO UPDATE SET val = 0;");
                break;
            }
          }
          absl::StrAppend(&txn, wr() % 10 == 0 ? "ROLLBACK" : "COMMIT");
          // Deadlocks between the two writers just roll back.
          if (!conn->Exec(txn).ok()) (void)conn->Exec("ROLLBACK");
          std::this_thread::sleep_for(std::chrono::microseconds(wr() % 3000));
        }
      });
    }
    auto sub = [&](const std::string& id, int g) {
      return client::SubscriptionSpec{
          .id = id, .shape = "items_by_grp", .params = {{"g", std::to_string(g)}}};
    };
    const int port = service_->port();
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 150));
    TestClient a(port, Token({{"sub", "a"}}));
    a.Subscribe(sub("x", g0));
    a.Subscribe(sub("y", g0 + 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 150));
    TestClient b(port, Token({{"sub", "b"}}));
    b.Subscribe(sub("x", g0));  // the same instance as a's x: served from the log
    b.Subscribe(sub("z", g0 + 2));
    for (int i = 0; i < 2; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 120));
      b.Resume();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 100));
    stop = true;
    for (auto& t : writers) t.join();
    const uint64_t end = InsertLsn(*sql);
    ASSERT_TRUE(a.WaitForCheckpoint(end))
        << "client a did not reach " << Lsn(end) << ": " << a.Disconnect().error_message();
    ASSERT_TRUE(b.WaitForCheckpoint(end))
        << "client b did not reach " << Lsn(end) << ": " << b.Disconnect().error_message();
    oracle_->Fetch(*sql);

    for (TestClient* c : {&a, &b}) {
      EXPECT_THAT(c->errors(), ::testing::IsEmpty());
      const std::map<std::string, int> groups =
          c == &a ? std::map<std::string, int>{{"x", g0}, {"y", g0 + 1}}
                  : std::map<std::string, int>{{"x", g0}, {"z", g0 + 2}};
      for (const auto& cp : c->checkpoints()) {
        for (const auto& [id, g] : groups) {
          auto it = cp.rows.find(id);
          if (it == cp.rows.end()) continue;  // subscribed after this checkpoint
          const TestClient::Rows expected = oracle_->RowsAt(cp.lsn, g);
          ASSERT_EQ(it->second, expected)
              << "subscription " << id << " at checkpoint " << Lsn(cp.lsn)
              << "\n got: " << RowsText(it->second) << "\nwant: " << RowsText(expected);
          ++checkpoints_checked;
        }
      }
      for (const auto& [id, g] : groups) {
        EXPECT_EQ(c->RowsOf(id), QueryRows(*sql, g)) << "final replica of " << id;
      }
    }
  }
  RecordProperty("checkpoints_checked", static_cast<int>(checkpoints_checked));
  EXPECT_GT(checkpoints_checked, static_cast<size_t>(runs) * 4);
  // Splices happened against concurrent writes: snapshots were taken while writers ran.
  EXPECT_GE(service_->shape_log().stats().snapshot_rows.load(), static_cast<uint64_t>(runs));
}

TEST_F(SyncTest, AuthorizationMatrixNeverSendsARowOutsideTheClaims) {
  auto sql = ConnectOrDie(*dsn_);
  ExecOrDie(*sql, "TRUNCATE tasks");
  std::string values;
  for (int i = 0; i < 60; ++i) {
    absl::StrAppend(&values, i ? "," : "", "(", i, ",", i % 4, ",'t", i, "','",
                    i % 3 == 0 ? "ada" : "bob", "')");
  }
  ExecOrDie(*sql, "INSERT INTO tasks VALUES " + values);
  struct User {
    std::string sub;
    std::vector<int> projects;
  };
  const std::vector<User> users = {{"ada", {0}}, {"bob", {1, 2}}, {"cy", {}}, {"dee", {3}}};
  const int port = service_->port();
  std::vector<std::unique_ptr<TestClient>> clients;
  for (const User& u : users) {
    auto c = std::make_unique<TestClient>(port, Token({{"sub", u.sub}, {"projects", u.projects}}));
    c->KeepMessages();
    for (int p : u.projects) {
      c->Subscribe({.id = absl::StrCat("p", p),
                    .shape = "tasks_by_project",
                    .params = {{"project", std::to_string(p)}}});
    }
    c->Subscribe({.id = "mine", .shape = "my_tasks"});
    c->Subscribe({.id = "all", .shape = "tasks_in_projects"});
    clients.push_back(std::move(c));
  }
  // Moves in and out of every project, and changes of owner.
  ExecOrDie(*sql, "UPDATE tasks SET project_id = (project_id + 1) % 4 WHERE id % 5 = 0");
  ExecOrDie(*sql, "UPDATE tasks SET owner = 'cy' WHERE id % 7 = 0");
  ExecOrDie(*sql, "INSERT INTO tasks VALUES (100, 3, 'late', 'dee'), (101, 0, 'late', 'ada')");
  ExecOrDie(*sql, "DELETE FROM tasks WHERE id % 11 = 0");
  const uint64_t end = InsertLsn(*sql);
  for (size_t i = 0; i < users.size(); ++i) {
    TestClient& c = *clients[i];
    const User& u = users[i];
    ASSERT_TRUE(c.WaitForCheckpoint(end)) << u.sub;
    EXPECT_THAT(c.errors(), ::testing::IsEmpty());
    size_t rows_seen = 0;
    // Every row the client received: inside its claims.
    for (const pb::SyncResponse& m : c.messages()) {
      if (!m.has_changes()) continue;
      for (const pb::Change& ch : m.changes().changes()) {
        if (ch.op() == pb::Change::DELETE) continue;
        ++rows_seen;
        const std::string& id = m.changes().subscription_id();
        if (id == "mine") {
          // columns: id, project_id, title, owner; updates may not carry the owner
          if (!ch.row(3).has_unchanged()) {
            EXPECT_EQ(ch.row(3).text(), u.sub);
          }
        } else if (!ch.row(1).has_unchanged()) {
          EXPECT_THAT(u.projects, ::testing::Contains(ch.row(1).int_value()))
              << u.sub << " got a row of project " << ch.row(1).int_value();
        }
      }
    }
    if (!u.projects.empty()) {
      EXPECT_GT(rows_seen, 0u) << u.sub;
    }
    // And the replicas are exactly the rows the claims allow.
    for (int p : u.projects) {
      PgResult r =
          ExecOrDie(*sql, absl::StrCat("SELECT count(*) FROM tasks WHERE project_id = ", p));
      EXPECT_EQ(c.RowsOf(absl::StrCat("p", p)).size(), std::stoul(std::string(r.Get(0, 0))));
    }
    PgResult mine =
        ExecOrDie(*sql, absl::StrCat("SELECT count(*) FROM tasks WHERE owner = '", u.sub, "'"));
    EXPECT_EQ(c.RowsOf("mine").size(), std::stoul(std::string(mine.Get(0, 0)))) << u.sub;
  }

  // A subscription outside the claims: PERMISSION_DENIED, and no row.
  TestClient intruder(port, Token({{"sub", "eve"}, {"projects", {1}}}));
  intruder.KeepMessages();
  intruder.Subscribe({.id = "p0", .shape = "tasks_by_project", .params = {{"project", "0"}}});
  grpc::Status status = intruder.WaitForEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("is not among the token's claim \"projects\""));
  for (const auto& m : intruder.messages()) EXPECT_FALSE(m.has_changes());
}

struct BadCase {
  std::string name;
  std::string token;  // "" for none
  client::SubscriptionSpec spec;
  grpc::StatusCode code;
  std::string message;
};

TEST_F(SyncTest, BadInputGivesAStatusAPersonCanActOn) {
  const std::string ok = Token({{"sub", "ada"}, {"projects", {1}}});
  const std::vector<BadCase> cases = {
      {"no token",
       "",
       {.id = "1", .shape = "my_tasks"},
       grpc::StatusCode::UNAUTHENTICATED,
       "missing authorization metadata"},
      {"garbage token",
       "not.a.jwt",
       {.id = "1", .shape = "my_tasks"},
       grpc::StatusCode::UNAUTHENTICATED,
       "malformed token"},
      {"expired token",
       Token({{"sub", "ada"}}, -120),
       {.id = "1", .shape = "my_tasks"},
       grpc::StatusCode::UNAUTHENTICATED,
       "expired"},
      {"wrong key",
       *auth::SignToken({{"sub", "ada"}, {"exp", 4102444800}}, "HS256",
                        "some other secret of thirty-two bytes"),
       {.id = "1", .shape = "my_tasks"},
       grpc::StatusCode::UNAUTHENTICATED,
       "signature"},
      {"unknown shape",
       ok,
       {.id = "1", .shape = "taskz"},
       grpc::StatusCode::INVALID_ARGUMENT,
       "unknown shape \"taskz\""},
      {"missing parameter",
       ok,
       {.id = "1", .shape = "tasks_by_project"},
       grpc::StatusCode::INVALID_ARGUMENT,
       "missing parameter $project (int4)"},
      {"wrong type",
       ok,
       {.id = "1", .shape = "tasks_by_project", .params = {{"project", "one"}}},
       grpc::StatusCode::INVALID_ARGUMENT,
       "parameter $project: invalid input syntax"},
      {"unknown parameter",
       ok,
       {.id = "1", .shape = "tasks_by_project", .params = {{"project", "1"}, {"projekt", "1"}}},
       grpc::StatusCode::INVALID_ARGUMENT,
       "unknown parameter $projekt"},
      {"claim parameter sent",
       ok,
       {.id = "1", .shape = "my_tasks", .params = {{"me", "bob"}}},
       grpc::StatusCode::INVALID_ARGUMENT,
       "comes from the token's claim \"sub\""},
      {"filter on a column outside the shape",
       ok,
       {.id = "1", .shape = "tasks_in_projects", .filter = "owner = 'ada'"},
       grpc::StatusCode::INVALID_ARGUMENT,
       "unknown column \"owner\""},
      {"filter that is not the language",
       ok,
       {.id = "1", .shape = "my_tasks", .filter = "id IN (SELECT 1)"},
       grpc::StatusCode::INVALID_ARGUMENT,
       "subqueries are not supported"},
      {"missing claim",
       Token({{"sub", "ada"}}),
       {.id = "1", .shape = "tasks_in_projects"},
       grpc::StatusCode::PERMISSION_DENIED,
       "the token has no claim \"projects\""},
      {"empty subscription id",
       ok,
       {.id = "", .shape = "my_tasks"},
       grpc::StatusCode::INVALID_ARGUMENT,
       "subscription_id is empty"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.name);
    TestClient client(service_->port(), c.token);
    client.KeepMessages();
    client.Subscribe(c.spec);
    grpc::Status status = client.WaitForEnd();
    EXPECT_EQ(status.error_code(), c.code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
    for (const auto& m : client.messages()) EXPECT_FALSE(m.has_changes());
  }
  // A duplicate subscription id on one stream.
  TestClient client(service_->port(), ok);
  client.Subscribe({.id = "1", .shape = "my_tasks"});
  client.Subscribe({.id = "1", .shape = "my_tasks"});
  grpc::Status status = client.WaitForEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("is already in use"));
}

// A second service with small limits: a client too far behind is disconnected with a clear
// status, and an instance whose log passes its size limit makes its clients refetch.
// The metrics endpoint: values move with the work (one subscribe, one initial-sync observation),
// and the health endpoints answer.
TEST_F(SyncTest, MetricsMoveWithTheWork) {
  const int port = service_->metrics_port();
  ASSERT_GT(port, 0);
  auto sql = ConnectOrDie(*dsn_);
  auto scrape = [&] {
    auto [code, body] = HttpGet(port, "/metrics");
    EXPECT_EQ(code, 200) << body;
    return body;
  };
  const std::string initial_sync =
      R"(shapebridge_initial_sync_seconds_count{shape="tasks_by_project"})";
  const std::string inserts =
      R"(shapebridge_replication_changes_total{table="public.tasks",op="insert"})";
  const std::string before = scrape();
  EXPECT_THAT(before, HasSubstr("# TYPE shapebridge_initial_sync_seconds histogram"));
  // Every shape's series is there before its first subscriber.
  EXPECT_THAT(before, HasSubstr(R"(shapebridge_initial_sync_seconds_count{shape="my_tasks"} )"));
  EXPECT_THAT(before, HasSubstr("# TYPE shapebridge_replication_lag_seconds gauge"));

  ExecOrDie(*sql,
            "INSERT INTO tasks VALUES (424201, 4242, 'a', 'm'), (424202, 4242, 'b', 'm'), "
            "(424203, 4242, 'c', 'm')");
  const std::string token = Token({{"sub", "m"}, {"projects", {4242}}});
  TestClient first(service_->port(), token);
  first.Subscribe({.id = "t", .shape = "tasks_by_project", .params = {{"project", "4242"}}});
  ASSERT_TRUE(first.WaitForCheckpoint(InsertLsn(*sql)));
  const std::string after_one = scrape();
  EXPECT_EQ(MetricValue(after_one, initial_sync), MetricValue(before, initial_sync) + 1);
  EXPECT_GE(MetricValue(after_one, "shapebridge_snapshot_rows_total"),
            MetricValue(before, "shapebridge_snapshot_rows_total") + 3);
  EXPECT_GE(MetricValue(after_one, "shapebridge_clients"), 1);
  EXPECT_GE(MetricValue(after_one, "shapebridge_subscriptions"), 1);
  EXPECT_GE(MetricValue(after_one, inserts), MetricValue(before, inserts) + 3);
  EXPECT_GT(MetricValue(after_one, "shapebridge_shape_instances"), 0);

  // A second subscriber of the same instance is an initial sync too (served from the log).
  TestClient second(service_->port(), token);
  second.Subscribe({.id = "t", .shape = "tasks_by_project", .params = {{"project", "4242"}}});
  ASSERT_TRUE(second.WaitForCheckpoint(InsertLsn(*sql)));
  const std::string after_two = scrape();
  EXPECT_EQ(MetricValue(after_two, initial_sync), MetricValue(before, initial_sync) + 2);
  EXPECT_EQ(MetricValue(after_two, "shapebridge_snapshots_total{result=\"ok\"}"),
            MetricValue(after_one, "shapebridge_snapshots_total{result=\"ok\"}"));

  // A live change reaches both clients: commit-to-client observations.
  ExecOrDie(*sql, "INSERT INTO tasks VALUES (424204, 4242, 'd', 'm')");
  const uint64_t lsn = InsertLsn(*sql);
  ASSERT_TRUE(first.WaitForCheckpoint(lsn));
  ASSERT_TRUE(second.WaitForCheckpoint(lsn));
  const std::string after_live = scrape();
  EXPECT_GE(MetricValue(after_live, "shapebridge_commit_to_client_seconds_count"),
            MetricValue(after_two, "shapebridge_commit_to_client_seconds_count") + 2);
  EXPECT_GT(MetricValue(after_live, "shapebridge_shape_log_sync_seconds_count"),
            MetricValue(before, "shapebridge_shape_log_sync_seconds_count"));
  EXPECT_GT(MetricValue(after_live, "shapebridge_shape_log_durable_lsn"), 0);
  // Exported, and 0 on a healthy stream (a message that does not decode stops replication).
  EXPECT_THAT(after_live, HasSubstr("\nshapebridge_replication_decode_errors_total 0\n"));

  // The slot as pg_replication_slots shows it (polled every 200 ms here).
  for (int i = 0; i < 100 && MetricValue(scrape(), "shapebridge_replication_slot_active") != 1;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const std::string slot = scrape();
  EXPECT_EQ(MetricValue(slot, "shapebridge_replication_slot_active"), 1);
  EXPECT_EQ(MetricValue(slot, "shapebridge_replication_slot_present"), 1);

  EXPECT_EQ(HttpGet(port, "/healthz").first, 200);
  EXPECT_EQ(HttpGet(port, "/readyz"), std::make_pair(200, std::string("ready\n")));
  EXPECT_EQ(HttpGet(port, "/nothing-here").first, 404);
}

// The standard services next to ShapeSync: health says SERVING, and reflection lists the Sync
// service and describes it (its method is served raw, but its descriptor is the proto's).
TEST_F(SyncTest, HealthAndReflection) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", service_->port()),
                                     grpc::InsecureChannelCredentials());
  {
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    const grpc::Status status = health->Check(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
  // Reflection (v1alpha) spoken by hand: its generated code lives inside gRPC's reflection
  // library, without headers. ServerReflectionRequest: list_services = 7, file_containing_symbol
  // = 4. ServerReflectionResponse: file_descriptor_response = 4 {file_descriptor_proto = 1},
  // list_services_response = 6 {service = 1 {name = 1}}.
  grpc::ClientContext context;
  grpc::internal::RpcMethod method("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                   grpc::internal::RpcMethod::BIDI_STREAMING, channel);
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel.get(), method, &context));
  auto write = [&](const std::string& bytes) {
    grpc::Slice slice(bytes);
    grpc::ByteBuffer buffer(&slice, 1);
    return stream->Write(buffer);
  };
  auto read = [&](std::string* bytes) {
    grpc::ByteBuffer buffer;
    if (!stream->Read(&buffer)) return false;
    std::vector<grpc::Slice> slices;
    if (!buffer.Dump(&slices).ok()) return false;
    for (const grpc::Slice& s : slices) {
      bytes->append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    return true;
  };
  // The length-delimited values of field `number` of the message in `bytes`.
  auto fields = [](const std::string& bytes, int number) {
    google::protobuf::UnknownFieldSet set;
    EXPECT_TRUE(set.ParseFromString(bytes));
    std::vector<std::string> out;
    for (int i = 0; i < set.field_count(); ++i) {
      const google::protobuf::UnknownField& f = set.field(i);
      if (f.number() == number &&
          f.type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
        out.push_back(f.length_delimited());
      }
    }
    return out;
  };
  const std::string symbol = "shapebridge.sync.v1.ShapeSync";
  ASSERT_TRUE(write(std::string("\x3a\x00", 2)));
  ASSERT_TRUE(write(std::string("\x22") + static_cast<char>(symbol.size()) + symbol));
  stream->WritesDone();
  std::string listed;
  ASSERT_TRUE(read(&listed));
  std::vector<std::string> names;
  for (const auto& list : fields(listed, 6)) {
    for (const auto& service : fields(list, 1)) {
      for (const auto& name : fields(service, 1)) names.push_back(name);
    }
  }
  EXPECT_THAT(names, ::testing::Contains(symbol));
  EXPECT_THAT(names, ::testing::Contains("grpc.health.v1.Health"));
  std::string described;
  ASSERT_TRUE(read(&described));
  std::vector<std::string> files;
  for (const auto& response : fields(described, 4)) {
    for (const auto& file : fields(response, 1)) files.push_back(file);
  }
  ASSERT_FALSE(files.empty()) << "no file descriptor for " << symbol;
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(file.ParseFromString(files.front()));
  EXPECT_EQ(file.name(), "shapebridge/sync/v1/sync.proto");
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(SyncTest, SlowClientsAndRetention) {
  auto sql = ConnectOrDie(*dsn_);
  const std::string dir = MakeTempDir();
  // The limits go in the shape_log and server sections of the same config.
  std::string yaml = ConfigYaml(*dsn_, "limits", dir);
  yaml = std::regex_replace(yaml, std::regex("shape_log:\n  fsync: false"),
                            "shape_log:\n  fsync: false\n  max_instance_bytes: 100000");
  yaml = std::regex_replace(yaml, std::regex("heartbeat_interval_ms: 200"),
                            "heartbeat_interval_ms: 200\n  max_client_lag_entries: 300\n  "
                            "slow_client_grace_ms: 300\n  batch_entries: 50");
  auto service = StartService(yaml);
  ASSERT_NE(service, nullptr);
  const int port = service->port();

  // Retention: a busy instance passes max_instance_bytes; its client must refetch, and a resume
  // from an offset of the retired log is refused with must_refetch too.
  TestClient c(port, Token({{"sub", "ada"}}));
  c.KeepMessages();
  c.Subscribe({.id = "r", .shape = "items_by_grp", .params = {{"g", "-7"}}});
  ASSERT_TRUE(c.WaitForCheckpoint(InsertLsn(*sql)));
  for (int i = 0; i < 20; ++i) {
    ExecOrDie(*sql, absl::StrCat("INSERT INTO items SELECT ", -1000 * (i + 1),
                                 " - g, -7, g FROM generate_series(1, 100) g"));
  }
  bool refetched = false;
  for (int i = 0; i < 1000 && !refetched; ++i) {
    for (const auto& m : c.messages()) {
      if (m.has_must_refetch() && m.must_refetch().reason() == pb::MustRefetch::RETIRED) {
        refetched = true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(refetched) << "no must_refetch(RETIRED) after the instance's log passed its limit";
  EXPECT_GE(service->shape_log().stats().retired.load(), 1u);

  // A client that reads slower than changes arrive stays behind the bound and is disconnected
  // with a status that says what to do. It reads, so it receives the status.
  // A small receive window, so the server's writes wait for the client's reads as they would
  // for a slow client over a slow network.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8192);
  client::SyncClient slow(absl::StrCat("127.0.0.1:", port), Token({{"sub", "slow"}}), args);
  slow.Subscribe({.id = "s", .shape = "items_by_grp", .params = {{"g", "-8"}}});
  pb::SyncResponse r;
  while (slow.Next(&r) && !r.has_up_to_date()) {
  }
  for (int i = 0; i < 10; ++i) {
    ExecOrDie(*sql, absl::StrCat("INSERT INTO items SELECT ", -100000 - 100 * i,
                                 " - g, -8, g FROM generate_series(1, 100) g"));
  }
  size_t read = 0;
  std::atomic<bool> finished{false};
  std::thread deadline([&] {
    // Only needed when the server fails to cut the client off.
    for (int i = 0; i < 200 && !finished.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!finished.load()) slow.Cancel();
  });
  while (slow.Next(&r)) {
    ++read;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  finished = true;
  deadline.join();
  grpc::Status status = slow.Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("reconnect and resume from your offsets"));
  EXPECT_GE(service->server().stats().slow_client_disconnects.load(), 1u);
  EXPECT_GT(read, 0u);
  ExecOrDie(*sql, "DELETE FROM items WHERE grp IN (-7, -8)");
  service.reset();
  std::filesystem::remove_all(dir);
}

// kill -9 of the serve process during writes; a restart on the same shape log; clients resume:
// their replicas equal Postgres and no change is applied twice (offsets strictly increase).
TEST(SyncRestartTest, KillDashNineDuringWritesThenResume) {
  const std::string dsn = TestPostgres::Get().CreateDatabase("sync_restart");
  auto sql = ConnectOrDie(dsn);
  ExecOrDie(*sql, "CREATE TABLE items (id int PRIMARY KEY, grp int, val int)");
  ExecOrDie(*sql,
            "CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL, title text, "
            "owner text)");
  ExecOrDie(*sql, "INSERT INTO items SELECT g, g % 3, 0 FROM generate_series(1, 300) g");
  const std::string dir = MakeTempDir();
  const std::string config_path = dir + "/shapebridge.yaml";
  {
    std::string yaml = ConfigYaml(dsn, "restart", dir + "/log");
    yaml = std::regex_replace(yaml, std::regex("fsync: false"), "fsync: true");
    std::ofstream(config_path) << yaml;
  }
  const std::string out = dir + "/serve.out";
  auto start = [&]() {
    const auto before = std::filesystem::exists(out) ? std::filesystem::file_size(out) : 0;
    auto p = std::make_unique<testing::Subprocess>(
        std::vector<std::string>{testing::ShapebridgeBinary(), "serve", "--config", config_path},
        out);
    static const std::regex kPort("serving on port (\\d+)");
    for (int i = 0; i < 500; ++i) {
      std::ifstream in(out);
      std::string text((std::istreambuf_iterator<char>(in)), {});
      std::smatch m;
      const std::string tail = text.substr(std::min<size_t>(before, text.size()));
      if (std::regex_search(tail, m, kPort)) return std::make_pair(std::move(p), std::stoi(m[1]));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "serve did not start";
    return std::make_pair(std::move(p), 0);
  };
  auto [proc, port] = start();
  ASSERT_GT(port, 0);
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int g = 0; g < 3; ++g) {
    auto c = std::make_unique<TestClient>(port, Token({{"sub", "ada"}}));
    c->Subscribe({.id = "g", .shape = "items_by_grp", .params = {{"g", std::to_string(g)}}});
    clients.push_back(std::move(c));
  }
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    auto conn = ConnectOrDie(dsn);
    std::mt19937 rng(7);
    while (!stop.load()) {
      const int id = 1 + static_cast<int>(rng() % 300);
      (void)conn->Exec(
          absl::StrCat("UPDATE items SET val = val + 1, grp = ", rng() % 3, " WHERE id = ", id));
    }
  });
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    proc->Kill(SIGKILL);
    proc.reset();
    auto [next, next_port] = start();
    ASSERT_GT(next_port, 0);
    proc = std::move(next);
    for (auto& c : clients) c->Resume(next_port);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  writer.join();
  const uint64_t end =
      Lsn::Parse(QueryValue(*sql, "SELECT pg_current_wal_insert_lsn()::text"))->value();
  for (int g = 0; g < 3; ++g) {
    TestClient& c = *clients[g];
    ASSERT_TRUE(c.WaitForCheckpoint(end)) << "group " << g;
    EXPECT_THAT(c.errors(), ::testing::IsEmpty());
    EXPECT_EQ(c.RowsOf("g"), QueryRows(*sql, g)) << "group " << g;
  }
  // SIGTERM drains the streams (clients see UNAVAILABLE) and exits cleanly.
  const int status = proc->Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  for (auto& c : clients) {
    EXPECT_EQ(c->WaitForEnd().error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  std::filesystem::remove_all(dir);
}

// Kafka mode: a `shapebridge replicate` process (routing, snapshots, the shape topic) and two
// server nodes (in this process) over librdkafka's mock cluster, which speaks the real Kafka
// protocol. Clients on either node converge to Postgres while rows move between groups, and a
// client resumes on the other node from the offsets it has, without a gap, a duplicate or a
// refetch. Then the replicator is killed and another takes over: the clients refetch (the new
// leader's instance logs start anew) and converge again.
class KafkaServerNodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A database and a slot of its own: ctest runs the tests of this suite side by side.
    name_ = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (auto& ch : name_) ch = static_cast<char>(std::tolower(ch));
    name_ = "kn_" + name_.substr(0, 40);
    dsn_ = TestPostgres::Get().CreateDatabase(name_);
    auto sql = ConnectOrDie(dsn_);
    ExecOrDie(*sql, "CREATE TABLE items (id int PRIMARY KEY, grp int, val int)");
    ExecOrDie(*sql,
              "CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL, title text, "
              "owner text)");
    ExecOrDie(*sql, "ALTER TABLE items REPLICA IDENTITY FULL");
    ExecOrDie(*sql, "INSERT INTO items SELECT g, g % 3, 0 FROM generate_series(1, 300) g");
    const std::string prefix = absl::StrCat(
        "sbk-", getpid(), "-", std::chrono::steady_clock::now().time_since_epoch().count());
    if (const char* broker = std::getenv("SHAPEBRIDGE_TEST_KAFKA"); broker && *broker) {
      bootstrap_ = broker;  // a real broker: the replicator creates the topic
    } else {
      auto cluster = kafka::DevCluster::Start(3);
      ASSERT_TRUE(cluster.ok()) << cluster.status();
      cluster_ = *std::move(cluster);
      bootstrap_ = cluster_->bootstrap_servers();
      // The mock cluster has no CreateTopics API.
      shape_topic_ = prefix + ".shapes";
      ASSERT_TRUE(cluster_->CreateTopic(shape_topic_, 4, 3).ok());
    }
    dir_ = MakeTempDir();
    yaml_ = std::regex_replace(
        ConfigYaml(dsn_, name_, dir_ + "/unused"), std::regex("log:\n  dir: [^\n]*\n"),
        // The shape topic only: what the slot's flush position waits for is its records.
        absl::StrCat("log:\n  backend: kafka\nkafka:\n  bootstrap_servers: \"", bootstrap_,
                     "\"\n  topic_prefix: ", prefix,
                     "\n  partitions: 4\n  change_topic: false\n  flush_timeout_ms: 120000\n"));
    config_path_ = dir_ + "/shapebridge.yaml";
    std::ofstream(config_path_) << yaml_;
  }
  void TearDown() override {
    nodes_.clear();
    replicators_.clear();
    cluster_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Starts a replicator process and waits until it leads.
  void StartReplicator() {
    const std::string log = absl::StrCat(dir_, "/replicate", replicators_.size(), ".log");
    replicators_.push_back(std::make_unique<testing::Subprocess>(
        std::vector<std::string>{testing::ShapebridgeBinary(), "replicate", "--config",
                                 config_path_},
        log));
    for (int i = 0; i < 600; ++i) {
      std::ifstream in(log);
      std::string text((std::istreambuf_iterator<char>(in)), {});
      if (text.find("leader: streaming") != std::string::npos) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "the replicator did not become leader";
  }
  // Starts a server node and waits until it has read the shape topic.
  Service& StartNode() {
    auto config = ParseConfig(yaml_, "kafka_nodes.yaml");
    EXPECT_TRUE(config.ok()) << config.status();
    auto service = Service::Create(*config);
    EXPECT_TRUE(service.ok()) << service.status();
    EXPECT_TRUE((*service)->Start().ok());
    for (int i = 0; i < 500 && !(*service)->ready(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE((*service)->ready());
    nodes_.push_back(*std::move(service));
    return *nodes_.back();
  }
  uint64_t InsertLsn() {
    auto sql = ConnectOrDie(dsn_);
    return Lsn::Parse(QueryValue(*sql, "SELECT pg_current_wal_insert_lsn()::text"))->value();
  }
  // Updates that move rows between groups, inserts and deletes, until `stop`.
  void Write(const std::atomic<bool>& stop, int seed) {
    auto conn = ConnectOrDie(dsn_);
    std::mt19937 rng(seed);
    while (!stop.load()) {
      const int id = 1 + static_cast<int>(rng() % 320);
      switch (rng() % 4) {
        case 0:
          (void)conn->Exec(absl::StrCat("INSERT INTO items VALUES (", id, ", ", rng() % 3,
                                        ", 0) ON CONFLICT (id) DO NOTHING"));
          break;
        case 1:
          (void)conn->Exec(absl::StrCat("DELETE FROM items WHERE id = ", id));
          break;
        default:
          (void)conn->Exec(absl::StrCat("UPDATE items SET val = val + 1, grp = ", rng() % 3,
                                        " WHERE id = ", id));
      }
    }
  }
  void ExpectConverged(std::vector<std::unique_ptr<TestClient>>& clients) {
    const uint64_t end = InsertLsn();
    auto sql = ConnectOrDie(dsn_);
    for (size_t i = 0; i < clients.size(); ++i) {
      const int g = static_cast<int>(i % 3);
      ASSERT_TRUE(clients[i]->WaitForCheckpoint(end, 60'000)) << "client " << i;
      EXPECT_EQ(RowsText(clients[i]->RowsOf("g")), RowsText(QueryRows(*sql, g))) << "client " << i;
    }
  }

  std::string name_;  // of the database and the slot
  std::string dsn_;
  std::string dir_;
  std::string yaml_;
  std::string config_path_;
  std::unique_ptr<kafka::DevCluster> cluster_;  // null against a real broker
  std::string bootstrap_;
  std::string shape_topic_;
  std::vector<std::unique_ptr<testing::Subprocess>> replicators_;
  std::vector<std::unique_ptr<Service>> nodes_;
};

TEST_F(KafkaServerNodesTest, ClientsOnEitherNodeConvergeAndResumeOnTheOther) {
  StartReplicator();
  Service& a = StartNode();
  Service& b = StartNode();
  // Two clients per group, one on each node.
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int i = 0; i < 6; ++i) {
    auto c = std::make_unique<TestClient>(i < 3 ? a.port() : b.port(), Token({{"sub", "ada"}}));
    c->Subscribe({.id = "g", .shape = "items_by_grp", .params = {{"g", std::to_string(i % 3)}}});
    clients.push_back(std::move(c));
  }
  std::atomic<bool> stop{false};
  std::thread writer([&] { Write(stop, 11); });
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  // Offline for a moment, then back on the other node with the offsets it has.
  clients[0]->Resume(b.port());
  clients[4]->Resume(a.port());
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  clients[1]->Disconnect();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  clients[1]->Resume(b.port());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  stop = true;
  writer.join();
  ExpectConverged(clients);
  for (auto& c : clients) EXPECT_THAT(c->errors(), ::testing::IsEmpty());
  // Both nodes asked the replicator for the same three instances and serve them from the topic.
  const auto registered =
      QueryValue(*ConnectOrDie(dsn_), "SELECT count(*) FROM shapebridge.instances");
  EXPECT_EQ(registered, "3");
  for (Service* node : {&a, &b}) {
    const std::string scrape = HttpGet(node->metrics_port(), "/metrics").second;
    EXPECT_GT(MetricValue(scrape, "shapebridge_shape_topic_records_consumed_total"), 0);
    EXPECT_EQ(MetricValue(scrape, "shapebridge_shape_topic_consume_errors_total"), 0);
    EXPECT_EQ(MetricValue(scrape, "shapebridge_shape_topic_caught_up"), 1);
    EXPECT_GE(MetricValue(scrape, "shapebridge_initial_sync_seconds_count{shape=\"items_by_grp\"}"),
              3);
    EXPECT_EQ(HttpGet(node->metrics_port(), "/readyz").first, 200);
    // gRPC health agrees (NOT_SERVING until the node had read the shape topic).
    auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", node->port()), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, {}, &response).ok());
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }

  if (cluster_) {
    // Faults, through the mock cluster: retriable produce errors, partition leaders moving, a
    // broker down for 3 s, then every broker down. The replicator rides them out (librdkafka
    // retries), and the slot's flush position waits for the records Kafka has not acknowledged.
    stop = false;
    std::thread faulty_writer([&] { Write(stop, 13); });
    constexpr int kNotLeader = 6;        // NOT_LEADER_FOR_PARTITION
    constexpr int kRequestTimedOut = 7;  // REQUEST_TIMED_OUT
    cluster_->FailProduceRequests({kNotLeader, kRequestTimedOut, kNotLeader, kRequestTimedOut});
    ASSERT_TRUE(cluster_->SetLeader(shape_topic_, 0, 2).ok());
    ASSERT_TRUE(cluster_->SetLeader(shape_topic_, 1, 3).ok());
    ASSERT_TRUE(cluster_->SetBrokerDown(1, true).ok());
    std::this_thread::sleep_for(std::chrono::seconds(3));
    ASSERT_TRUE(cluster_->SetBrokerDown(1, false).ok());
    stop = true;
    faulty_writer.join();
    for (int broker = 1; broker <= 3; ++broker) {
      ASSERT_TRUE(cluster_->SetBrokerDown(broker, true).ok());
    }
    auto sql = ConnectOrDie(dsn_);
    const uint64_t before = InsertLsn();
    ExecOrDie(*sql, "UPDATE items SET val = val + 1 WHERE id IN (1, 2, 3)");
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    const uint64_t flushed =
        Lsn::Parse(QueryValue(*sql,
                              "SELECT confirmed_flush_lsn FROM pg_replication_slots "
                              "WHERE slot_name = '" +
                                  name_ + "'"))
            ->value();
    EXPECT_LE(flushed, before) << "the slot confirmed a transaction Kafka has not acknowledged";
    for (int broker = 1; broker <= 3; ++broker) {
      ASSERT_TRUE(cluster_->SetBrokerDown(broker, false).ok());
    }
    ExpectConverged(clients);
    for (auto& c : clients) EXPECT_THAT(c->errors(), ::testing::IsEmpty());
    EXPECT_TRUE(replicators_.back()->running()) << "the replicator rode the faults out";
  } else {
    std::cerr << "against a real broker: the fault injection of the mock cluster is not run\n";
  }

  // Failover: the replicator dies during writes and another takes over. Its shape log starts
  // anew: the clients are told to refetch, do so, and converge.
  stop = false;
  std::thread writer2([&] { Write(stop, 12); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  replicators_.back()->Kill(SIGKILL);
  StartReplicator();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  stop = true;
  writer2.join();
  for (auto& c : clients) {
    // One refetch each, the failover's; the rest of the stream stayed ordered.
    ASSERT_EQ(c->errors().size(), 1u);
    EXPECT_THAT(c->errors()[0], HasSubstr("must_refetch for g: another replicator took over"));
    c->Resume();
  }
  ExpectConverged(clients);
  const std::string scrape = HttpGet(a.metrics_port(), "/metrics").second;
  EXPECT_EQ(MetricValue(scrape, "shapebridge_shape_topic_consume_errors_total"), 0);
  EXPECT_EQ(replicators_.back()->Kill(SIGTERM), 0);
}

// kafka.replicate: one `serve` process runs both roles (the replicator and a server node).
TEST_F(KafkaServerNodesTest, OneServeProcessCanRunBothRoles) {
  std::ofstream(config_path_) << std::regex_replace(yaml_, std::regex("  change_topic: false\n"),
                                                    "  change_topic: false\n  replicate: true\n");
  const std::string out = dir_ + "/serve.out";
  testing::Subprocess serve({testing::ShapebridgeBinary(), "serve", "--config", config_path_}, out);
  int port = 0;
  bool leads = false;
  for (int i = 0; i < 600 && (port == 0 || !leads); ++i) {
    std::ifstream in(out);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    std::smatch m;
    static const std::regex kPort("serving on port (\\d+)");
    if (std::regex_search(text, m, kPort)) port = std::stoi(m[1]);
    leads = text.find("leader: streaming") != std::string::npos;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(port, 0);
  ASSERT_TRUE(leads);
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int g = 0; g < 3; ++g) {
    clients.push_back(std::make_unique<TestClient>(port, Token({{"sub", "ada"}})));
    clients.back()->Subscribe(
        {.id = "g", .shape = "items_by_grp", .params = {{"g", std::to_string(g)}}});
  }
  std::atomic<bool> stop{false};
  std::thread writer([&] { Write(stop, 21); });
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  stop = true;
  writer.join();
  ExpectConverged(clients);
  for (auto& c : clients) EXPECT_THAT(c->errors(), ::testing::IsEmpty());
  const int status = serve.Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// Write-back through Push, against a service whose config adds a writable shape: tasks of the
// projects in the token's `projects` claim, without the `secret` column.
// The writable shape of public.tasks the write-back tests push through (a shapes list item).
const std::string kTasksWritable = R"y(  - name: tasks_writable
    table: public.tasks
    columns: [id, project_id, title, owner]
    where: "project_id = $project"
    writable: true
    params:
      project: {type: int, from: request, claim: projects}
)y";

class WritebackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dsn_ = new std::string(TestPostgres::Get().CreateDatabase("writeback"));
    auto sql = ConnectOrDie(*dsn_);
    ExecOrDie(*sql, "CREATE TABLE items (id int PRIMARY KEY, grp int, val int)");
    ExecOrDie(*sql,
              "CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL, title text, "
              "owner text, secret text)");
    ExecOrDie(*sql,
              "CREATE TABLE bookings (id int PRIMARY KEY, building int NOT NULL, room text NOT "
              "NULL, starts_at timestamptz NOT NULL, ends_at timestamptz NOT NULL, title text)");
    dir_ = new std::string(MakeTempDir());
    service_ = StartService(ConfigYaml(*dsn_, "writeback", *dir_,
                                       kTasksWritable + R"y(  - name: bookings_writable
    table: public.bookings
    where: "building = $building"
    writable: true
    params:
      building: {type: int, from: request, claim: buildings}
writeback:
  sweep_interval_s: 1
  rules:
    - name: double_booking
      table: public.bookings
      check: >
        SELECT id, title FROM public.bookings
        WHERE room = $room AND id <> $id AND starts_at < $ends_at AND $starts_at < ends_at
      description: "room {new.room} is also booked for {title} (booking {id})"
)y"))
                   .release();
    ASSERT_NE(service_, nullptr);
    ASSERT_NE(service_->writer(), nullptr);
  }
  static void TearDownTestSuite() {
    delete service_;
    service_ = nullptr;
    std::filesystem::remove_all(*dir_);
  }

  static pb::Value Int(int64_t v) {
    pb::Value out;
    out.set_int_value(v);
    return out;
  }
  static pb::Value Text(const std::string& v) {
    pb::Value out;
    out.set_text(v);
    return out;
  }
  // A mutation of public.tasks with key id and the fields given.
  static pb::Mutation Task(const std::string& id, pb::Mutation::Op op, int task,
                           std::vector<std::pair<std::string, pb::Value>> fields = {}) {
    pb::Mutation m;
    m.set_mutation_id(id);
    m.set_table("public.tasks");
    m.set_op(op);
    (*m.mutable_key())["id"] = Int(task);
    for (auto& [column, value] : fields) {
      pb::FieldWrite* f = m.add_fields();
      f->set_column(column);
      *f->mutable_value() = value;
      f->set_hlc(Clock().Now().integer());
    }
    return m;
  }
  // The clients' clock (one for all: their writes are ordered as the test makes them).
  static hlc::Clock& Clock() {
    static hlc::Clock* clock = new hlc::Clock();
    return *clock;
  }
  // A mutation of public.bookings in building 1: room, from and to in hours after a fixed day.
  static pb::Mutation Booking(const std::string& id, pb::Mutation::Op op, int booking,
                              const std::string& room, double from, double to,
                              const std::string& title = "") {
    constexpr int64_t kDay = 1'830'000'000'000'000;  // 2027-12-28, in microseconds
    auto at = [](double hours) {
      pb::Value v;
      v.set_timestamptz_us(kDay + static_cast<int64_t>(hours * 3'600'000'000));
      return v;
    };
    std::vector<std::pair<std::string, pb::Value>> fields = {{"starts_at", at(from)},
                                                             {"ends_at", at(to)}};
    if (op == pb::Mutation::INSERT) {
      fields.emplace_back("building", Int(1));
      fields.emplace_back("room", Text(room));
      fields.emplace_back("title", Text(title));
    }
    pb::Mutation m = Task(id, op, booking, fields);
    m.set_table("public.bookings");
    return m;
  }
  // Waits until `done` holds (polling); false after 20 s.
  static bool WaitFor(const std::function<bool()>& done) {
    for (int i = 0; i < 2000; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  static pb::Mutation Stamped(pb::Mutation m, hlc::Timestamp at) {
    for (auto& f : *m.mutable_fields()) f.set_hlc(at.integer());
    return m;
  }
  static grpc::Status Push(const std::string& token, const std::string& client,
                           const std::vector<pb::Mutation>& mutations, pb::PushResponse* out) {
    pb::PushRequest request;
    request.set_client_id(client);
    for (const auto& m : mutations) *request.add_mutations() = m;
    return client::Push(absl::StrCat("127.0.0.1:", service_->port()), token, request, out);
  }
  // "id:project_id:title:owner:secret" rows of the tasks in [from, to), by id.
  static std::string Rows(int from, int to) {
    auto sql = ConnectOrDie(*dsn_);
    return QueryValue(*sql, absl::StrCat("SELECT coalesce(string_agg(concat_ws(':', id, "
                                         "project_id, title, owner, secret), ' ' ORDER BY id), '') "
                                         "FROM tasks WHERE id >= ",
                                         from, " AND id < ", to));
  }

  static std::string* dsn_;
  static std::string* dir_;
  static Service* service_;
};
std::string* WritebackTest::dsn_ = nullptr;
std::string* WritebackTest::dir_ = nullptr;
Service* WritebackTest::service_ = nullptr;

std::string Outcomes(const pb::PushResponse& response) {
  std::vector<std::string> out;
  for (const auto& r : response.results()) {
    out.push_back(
        absl::StrCat(r.mutation_id(), "=",
                     r.outcome() == pb::MutationResult::APPLIED
                         ? "applied"
                         : absl::StatusCodeToString(static_cast<absl::StatusCode>(r.code())),
                     r.duplicate() ? "(dup)" : ""));
  }
  return absl::StrJoin(out, " ");
}

// The authorization matrix, the per-op outcomes, and retries of a whole batch.
TEST_F(WritebackTest, PushAuthorizesEachMutationAndRetriesChangeNothing) {
  auto sql = ConnectOrDie(*dsn_);
  ExecOrDie(*sql, "INSERT INTO tasks VALUES (5, 3, 'theirs', 'bob', 's')");  // project 3
  const std::string ada = Token({{"sub", "ada"}, {"projects", {1, 2}}});
  using M = pb::Mutation;
  const std::vector<pb::Mutation> batch = {
      Task("m1", M::INSERT, 1, {{"project_id", Int(1)}, {"title", Text("a")}}),
      Task("m2", M::INSERT, 2, {{"project_id", Int(3)}, {"title", Text("x")}}),  // not ada's
      Task("m3", M::UPDATE, 1, {{"project_id", Int(3)}}),  // moves it out of her scope
      Task("m4", M::UPDATE, 1, {{"secret", Text("x")}}),   // a column outside the shape
      Task("m5", M::UPDATE, 1, {{"title", Text("b")}, {"owner", Text("ada")}}),
      Task("m6", M::UPDATE, 99, {{"title", Text("x")}}),   // no such row
      Task("m7", M::INSERT, 1, {{"project_id", Int(1)}}),  // exists
      Task("m8", M::UPSERT, 4, {{"project_id", Int(2)}, {"title", Text("c")}}),
      Task("m9", M::UPSERT, 4, {{"title", Text("d")}}),
      Task("m10", M::UPDATE, 5, {{"title", Text("x")}}),  // the row before is not hers
      Task("m11", M::DELETE, 5),
      Task("m12", M::INSERT, 6, {{"project_id", Int(2)}}),
      Task("m13", M::DELETE, 6),
  };
  pb::PushResponse first;
  grpc::Status status = Push(ada, "phone-1", batch, &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Outcomes(first),
            "m1=applied m2=PERMISSION_DENIED m3=PERMISSION_DENIED m4=PERMISSION_DENIED "
            "m5=applied m6=NOT_FOUND m7=ALREADY_EXISTS m8=applied m9=applied "
            "m10=PERMISSION_DENIED m11=PERMISSION_DENIED m12=applied m13=applied");
  EXPECT_THAT(first.results(2).message(), HasSubstr("would leave the writable shapes"));
  EXPECT_THAT(first.results(9).message(), HasSubstr("is not in a writable shape your token"));
  EXPECT_EQ(Rows(1, 10), "1:1:b:ada 4:2:d 5:3:theirs:bob:s");

  // The same batch again, also after the rows changed: the first results, nothing written.
  ExecOrDie(*sql, "UPDATE tasks SET title = 'direct' WHERE id = 1");
  pb::PushResponse again;
  status = Push(ada, "phone-1", batch, &again);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::string expected = Outcomes(first);
  expected = std::regex_replace(expected, std::regex("( |$)"), "(dup)$1");
  EXPECT_EQ(Outcomes(again), expected);
  for (int i = 0; i < first.results_size(); ++i) {
    EXPECT_EQ(again.results(i).message(), first.results(i).message()) << i;
  }
  EXPECT_EQ(Rows(1, 10), "1:1:direct:ada 4:2:d 5:3:theirs:bob:s");
  // Mutation ids are per client: another client's m1 is a new mutation.
  pb::PushResponse other;
  status = Push(ada, "phone-2", {Task("m1", M::UPDATE, 1, {{"title", Text("e")}})}, &other);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Outcomes(other), "m1=applied");
  EXPECT_EQ(Rows(1, 2), "1:1:e:ada");
  EXPECT_GE(service_->writer()->stats().duplicates.load(), 13u);
}

// Concurrent pushes of one batch: it is applied once; every caller gets its result.
TEST_F(WritebackTest, ConcurrentRetriesApplyOnce) {
  const std::string ada = Token({{"sub", "ada"}, {"projects", {1}}});
  auto sql = ConnectOrDie(*dsn_);
  ExecOrDie(*sql, "INSERT INTO tasks VALUES (20, 1, '', 'ada')");
  // Each application appends to the title (a trigger), so applying twice would show.
  ExecOrDie(*sql, R"sql(CREATE FUNCTION append_title() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.title := OLD.title || NEW.title; RETURN NEW; END $$)sql");
  ExecOrDie(*sql,
            "CREATE TRIGGER append_title BEFORE UPDATE ON tasks FOR EACH ROW WHEN (NEW.id = 20) "
            "EXECUTE FUNCTION append_title()");
  auto scrape = [] { return HttpGet(service_->metrics_port(), "/metrics").second; };
  const std::string applied = R"(shapebridge_push_mutations_total{result="applied"})";
  const std::string duplicate = R"(shapebridge_push_mutations_total{result="duplicate"})";
  const std::string pushes = "shapebridge_push_seconds_count";
  const std::string before = scrape();
  const std::vector<pb::Mutation> batch = {
      Task("c1", pb::Mutation::UPDATE, 20, {{"title", Text("x")}}),
      Task("c2", pb::Mutation::INSERT, 21, {{"project_id", Int(1)}})};
  std::vector<std::thread> pushers;
  std::atomic<int> firsts{0};
  std::atomic<int> oks{0};
  for (int i = 0; i < 8; ++i) {
    pushers.emplace_back([&] {
      pb::PushResponse response;
      grpc::Status status = Push(ada, "laptop", batch, &response);
      if (!status.ok()) return;
      ++oks;
      if (Outcomes(response) == "c1=applied c2=applied") ++firsts;
      if (Outcomes(response) == "c1=applied(dup) c2=applied(dup)") return;
    });
  }
  for (auto& t : pushers) t.join();
  EXPECT_EQ(oks.load(), 8);
  EXPECT_EQ(firsts.load(), 1);
  EXPECT_EQ(Rows(20, 22), "20:1:x:ada 21:1");
  EXPECT_EQ(QueryValue(*sql,
                       "SELECT count(*) FROM shapebridge.mutations WHERE client_id = "
                       "'laptop'"),
            "2");
  // The metrics count each mutation once as applied and the retries as duplicates.
  const std::string after = scrape();
  EXPECT_EQ(MetricValue(after, applied), MetricValue(before, applied) + 2);
  EXPECT_EQ(MetricValue(after, duplicate), MetricValue(before, duplicate) + 14);
  EXPECT_EQ(MetricValue(after, pushes), MetricValue(before, pushes) + 8);
}

// Field-level last-write-wins: edits of different fields both survive in either order; of one
// field, the larger (hlc, client_id) wins in either order and the loser learns the winner; a write
// made directly in Postgres after an offline edit is not overwritten by it; a delete wins over an
// earlier concurrent update.
TEST_F(WritebackTest, LastWriteWinsPerField) {
  const std::string token = Token({{"sub", "ada"}, {"projects", {1}}});
  using M = pb::Mutation;
  auto push = [&](const std::string& client, const pb::Mutation& m) {
    pb::PushResponse response;
    grpc::Status status = Push(token, client, {m}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.results_size() == 1 ? response.results(0) : pb::MutationResult();
  };
  for (int id = 40; id < 46; ++id) {
    ASSERT_EQ(
        push("setup", Task(absl::StrCat("i", id), M::INSERT, id,
                           {{"project_id", Int(1)}, {"title", Text("t0")}, {"owner", Text("o0")}}))
            .outcome(),
        pb::MutationResult::APPLIED);
  }
  // Different fields, offline on two clients, pushed in either order.
  for (int id : {40, 41}) {
    const pb::Mutation a = Task(absl::StrCat("a", id), M::UPDATE, id, {{"title", Text("A")}});
    const pb::Mutation b = Task(absl::StrCat("b", id), M::UPDATE, id, {{"owner", Text("B")}});
    if (id == 40) {
      EXPECT_FALSE(push("client-b", b).fields(0).superseded());
      EXPECT_FALSE(push("client-a", a).fields(0).superseded());
    } else {
      EXPECT_FALSE(push("client-a", a).fields(0).superseded());
      EXPECT_FALSE(push("client-b", b).fields(0).superseded());
    }
  }
  EXPECT_EQ(Rows(40, 42), "40:1:A:B 41:1:A:B");
  // One field: b's edit is later; pushed first or last, it wins.
  for (int id : {42, 43}) {
    const hlc::Timestamp earlier = Clock().Now();
    const hlc::Timestamp later = Clock().Now();
    const pb::Mutation a =
        Stamped(Task(absl::StrCat("a", id), M::UPDATE, id, {{"title", Text("A")}}), earlier);
    const pb::Mutation b =
        Stamped(Task(absl::StrCat("b", id), M::UPDATE, id, {{"title", Text("B")}}), later);
    pb::MutationResult lost;
    if (id == 42) {
      EXPECT_FALSE(push("client-b", b).fields(0).superseded());
      lost = push("client-a", a);
    } else {
      EXPECT_FALSE(push("client-a", a).fields(0).superseded());
      EXPECT_FALSE(push("client-b", b).fields(0).superseded());
      continue;
    }
    EXPECT_EQ(lost.outcome(), pb::MutationResult::APPLIED);
    ASSERT_EQ(lost.fields_size(), 1);
    EXPECT_TRUE(lost.fields(0).superseded());
    EXPECT_EQ(lost.fields(0).winner().text(), "B");
    EXPECT_EQ(lost.fields(0).winner_hlc(), later.integer());
    EXPECT_EQ(lost.fields(0).winner_client_id(), "client-b");
  }
  EXPECT_EQ(Rows(42, 44), "42:1:B:o0 43:1:B:o0");
  // Equal timestamps: the larger client id wins.
  const hlc::Timestamp same = Clock().Now();
  push("client-z", Stamped(Task("z44", M::UPDATE, 44, {{"title", Text("Z")}}), same));
  EXPECT_TRUE(push("client-y", Stamped(Task("y44", M::UPDATE, 44, {{"title", Text("Y")}}), same))
                  .fields(0)
                  .superseded());
  // A direct write after an offline edit: the edit is superseded when it arrives.
  const pb::Mutation offline = Task("c45", M::UPDATE, 45, {{"title", Text("offline")}});
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto sql = ConnectOrDie(*dsn_);
  ExecOrDie(*sql, "UPDATE tasks SET title = 'direct' WHERE id = 45");
  const pb::MutationResult late = push("client-c", offline);
  ASSERT_EQ(late.fields_size(), 1);
  EXPECT_TRUE(late.fields(0).superseded());
  EXPECT_EQ(late.fields(0).winner().text(), "direct");
  EXPECT_EQ(late.fields(0).winner_client_id(), "");
  EXPECT_EQ(Rows(44, 46), "44:1:Z:o0 45:1:direct:o0");
  // A newer edit after the direct write wins again.
  EXPECT_FALSE(push("client-c", Task("d45", M::UPDATE, 45, {{"title", Text("newer")}}))
                   .fields(0)
                   .superseded());
  EXPECT_EQ(Rows(45, 46), "45:1:newer:o0");
  // Delete wins over an earlier concurrent update: the row is gone when the update arrives.
  const pb::Mutation update = Task("u40", M::UPDATE, 40, {{"title", Text("too late")}});
  EXPECT_EQ(push("client-a", Task("del40", M::DELETE, 40)).outcome(), pb::MutationResult::APPLIED);
  const pb::MutationResult gone = push("client-b", update);
  EXPECT_EQ(gone.outcome(), pb::MutationResult::REJECTED);
  EXPECT_EQ(gone.code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_EQ(Rows(40, 41), "");
  // Timestamps the server cannot take.
  pb::PushResponse response;
  const hlc::Timestamp future(Clock().Now().physical_ms() + 3'600'000, 0);
  grpc::Status status =
      Push(token, "client-a", {Stamped(Task("f", M::UPDATE, 41, {{"title", Text("x")}}), future)},
           &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("ms ahead of this clock"));
  status = Push(token, "client-a",
                {Stamped(Task("h", M::UPDATE, 41, {{"title", Text("x")}}), hlc::Timestamp())},
                &response);
  EXPECT_THAT(status.error_message(), HasSubstr("hlc missing"));
}

// Convergence: clients with skewed clocks edit fields offline and push at random moments (the last
// outboxes all at once, concurrently) while other writers update the same fields directly in
// Postgres. At the end every field holds the write with the largest (hlc, client_id), direct
// writes counting with the version their trigger gave them.
TEST_F(WritebackTest, EveryFieldConvergesToItsLastWriter) {
  const std::string token = Token({{"sub", "ada"}, {"projects", {7}}});
  auto sql = ConnectOrDie(*dsn_);
  // The pushing clients' replicas, through one stream each for the whole property (compared with
  // Postgres at the end).
  constexpr int kClients = 3;
  std::vector<std::unique_ptr<TestClient>> replicas;
  for (int k = 0; k < kClients; ++k) {
    replicas.push_back(std::make_unique<TestClient>(service_->port(), token));
    replicas.back()->Subscribe(
        {.id = "tasks", .shape = "tasks_writable", .params = {{"project", "7"}}});
  }
  int case_number = 0;
  const bool ok = rc::check([&] {
    const int base = 100'000 + 100 * case_number++;
    const int rows = *rc::gen::inRange(1, 4);
    ExecOrDie(*sql, absl::StrCat("INSERT INTO tasks SELECT g, 7, 't', 'o' FROM generate_series(",
                                 base, ", ", base + rows - 1, ") g"));
    struct Write {
      std::string value;
      uint64_t hlc = 0;
      std::string client;
    };
    auto version = [&](int row, const std::string& column) {
      return std::stoull(QueryValue(
          *sql, absl::StrCat("SELECT hlc FROM shapebridge.field_versions WHERE table_name = "
                             "'public.tasks' AND row_key = '[",
                             row, "]' AND column_name = '", column, "'")));
    };
    const std::vector<std::string> columns = {"title", "owner"};
    std::map<std::pair<int, std::string>, Write> last;  // the oracle
    for (int r = base; r < base + rows; ++r) {
      for (const auto& c : columns)
        last[{r, c}] = Write{c == "title" ? "t" : "o", version(r, c), ""};
    }
    auto note = [&](int row, const std::string& column, Write w) {
      Write& current = last[{row, column}];
      if (std::tie(w.hlc, w.client) > std::tie(current.hlc, current.client)) current = w;
    };
    std::vector<std::unique_ptr<hlc::Clock>> clocks;
    for (int k = 0; k < kClients; ++k) {
      const int64_t skew = *rc::gen::inRange(-3'000, 3'001);
      clocks.push_back(std::make_unique<hlc::Clock>(hlc::Clock::Options{.wall = [skew] {
        return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count() +
                                     skew);
      }}));
    }
    std::vector<std::vector<pb::Mutation>> outbox(kClients);
    auto push = [&](int k) {
      if (outbox[k].empty()) return;
      pb::PushResponse response;
      grpc::Status status = Push(token, absl::StrCat("c", k), outbox[k], &response);
      RC_ASSERT(status.ok());
      for (const auto& r : response.results()) {
        RC_ASSERT(r.outcome() == pb::MutationResult::APPLIED);
      }
      outbox[k].clear();
    };
    const int steps = *rc::gen::inRange(1, 30);
    for (int step = 0; step < steps; ++step) {
      const int what = *rc::gen::inRange(0, 10);
      const int k = *rc::gen::inRange(0, kClients);
      const int row = base + *rc::gen::inRange(0, rows);
      const std::string& column = columns[*rc::gen::inRange(0, 2)];
      const std::string value = absl::StrCat("v", case_number, "-", step);
      if (what < 6) {  // an offline edit
        const hlc::Timestamp at = clocks[k]->Now();
        outbox[k].push_back(Stamped(Task(absl::StrCat("m", base, "-", step), pb::Mutation::UPDATE,
                                         row, {{column, Text(value)}}),
                                    at));
        note(row, column, Write{value, at.integer(), absl::StrCat("c", k)});
      } else if (what < 8) {
        push(k);
      } else {  // a direct write
        ExecOrDie(*sql,
                  absl::StrCat("UPDATE tasks SET ", column, " = '", value, "' WHERE id = ", row));
        note(row, column, Write{value, version(row, column), ""});
      }
    }
    // The last outboxes at once. (RC_ASSERT throws: only on this thread.)
    std::vector<grpc::Status> statuses(kClients);
    std::vector<pb::PushResponse> responses(kClients);
    std::vector<std::thread> pushers;
    for (int k = 0; k < kClients; ++k) {
      pushers.emplace_back(
          [&, k] { statuses[k] = Push(token, absl::StrCat("c", k), outbox[k], &responses[k]); });
    }
    for (auto& t : pushers) t.join();
    for (int k = 0; k < kClients; ++k) {
      if (!statuses[k].ok()) RC_LOG() << "push of c" << k << ": " << statuses[k].error_message();
      RC_ASSERT(statuses[k].ok());
      for (const auto& r : responses[k].results()) {
        RC_ASSERT(r.outcome() == pb::MutationResult::APPLIED);
      }
    }
    for (const auto& [field, write] : last) {
      const std::string got = QueryValue(
          *sql, absl::StrCat("SELECT ", field.second, " FROM tasks WHERE id = ", field.first));
      if (got != write.value) {
        RC_LOG() << field.first << "." << field.second << " = " << got << ", want " << write.value
                 << " (hlc " << write.hlc << ", client \"" << write.client << "\")";
      }
      RC_ASSERT(got == write.value);
    }
  });
  EXPECT_TRUE(ok);
  // Every replica equals Postgres once it has the checkpoint after the last write.
  const uint64_t end =
      Lsn::Parse(QueryValue(*sql, "SELECT pg_current_wal_insert_lsn()::text"))->value();
  const std::string want = QueryValue(
      *sql, absl::StrCat("SELECT string_agg(concat_ws(':', id, project_id, title, owner), ' ' "
                         "ORDER BY id) FROM tasks WHERE project_id = 7"));
  for (auto& replica : replicas) {
    ASSERT_TRUE(replica->WaitForCheckpoint(end));
    std::vector<std::string> rows;
    for (const auto& [key, row] : replica->RowsOf("tasks")) rows.push_back(absl::StrJoin(row, ":"));
    std::sort(rows.begin(), rows.end(), [](const std::string& a, const std::string& b) {
      return std::stoi(a) < std::stoi(b);
    });
    EXPECT_EQ(absl::StrJoin(rows, " "), want);
    EXPECT_TRUE(replica->errors().empty()) << absl::StrJoin(replica->errors(), "\n");
  }
}

// Malformed batches fail as a whole with INVALID_ARGUMENT and a message that names the mutation
// and what is wrong; a violated constraint rolls the whole batch back; Push needs a token.
TEST_F(WritebackTest, BadBatchesAreRefusedWhole) {
  const std::string ada = Token({{"sub", "ada"}, {"projects", {1}}});
  using M = pb::Mutation;
  const pb::Mutation good = Task("ok", M::INSERT, 30, {{"project_id", Int(1)}});
  auto bad = [&](pb::Mutation m, const std::string& message) {
    pb::PushResponse response;
    grpc::Status status = Push(ada, "tablet", {good, m}, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << message;
    EXPECT_EQ(status.error_message(), message);
  };
  pb::Mutation m = Task("b1", M::INSERT, 31, {{"project_id", Int(1)}});
  m.set_table("public.items");
  bad(m,
      "mutations[1] (b1): table \"public.items\" has no writable shape (writable tables: "
      "public.bookings, public.tasks)");
  bad(Task("b2", M::UPDATE, 31, {{"titel", Text("x")}}),
      "mutations[1] (b2): fields: public.tasks has no column \"titel\"");
  bad(Task("b3", M::UPDATE, 31, {{"project_id", Text("one")}}),
      "mutations[1] (b3): fields: column project_id: expected int_value for its type (OID 23)");
  m = Task("b4", M::UPDATE, 31, {{"title", Text("x")}});
  m.mutable_key()->clear();
  bad(m, "mutations[1] (b4): key: missing primary key column id");
  bad(Task("b5", M::DELETE, 31, {{"title", Text("x")}}),
      "mutations[1] (b5): a DELETE has no fields");
  bad(Task("ok", M::DELETE, 31), "mutations[1] (ok): mutation_id appears twice in the batch");
  bad(Task("b6", M::UPDATE, 31, {{"id", Int(2)}}),
      "mutations[1] (b6): fields: id is a primary key column: give it in key");
  bad(Task("b7", M::OP_UNSPECIFIED, 31, {{"title", Text("x")}}),
      "mutations[1] (b7): op must be INSERT, UPDATE, DELETE or UPSERT");
  std::vector<pb::Mutation> many(Writer::kMaxBatch + 1, good);
  for (size_t i = 0; i < many.size(); ++i) many[i].set_mutation_id(absl::StrCat("n", i));
  pb::PushResponse response;
  grpc::Status status = Push(ada, "tablet", many, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "mutations: 1001 in one batch, at most 1000");
  status = Push(ada, "", {good}, &response);
  EXPECT_EQ(status.error_message(), "client_id: must be 1 to 200 bytes");
  status = Push("", "tablet", {good}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // A NOT NULL violation: the batch is rolled back, the good mutation included.
  status =
      Push(ada, "tablet", {good, Task("b8", M::UPSERT, 32, {{"title", Text("x")}})}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("mutation b8: "));
  EXPECT_THAT(status.error_message(), HasSubstr("project_id"));
  EXPECT_THAT(status.error_message(), HasSubstr("nothing of the batch was written"));
  EXPECT_EQ(Rows(30, 40), "");
  // Nothing was recorded either: the good mutation applies when pushed again.
  status = Push(ada, "tablet", {good}, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Outcomes(response), "ok=applied");
  EXPECT_EQ(Rows(30, 40), "30:1");
}

// Read-your-writes: the writer's Sync stream carries each mutation record at the LSN of the
// transaction that applied it, in the same checkpoint as the rows it wrote; only its user sees it.
TEST_F(WritebackTest, TheSyncStreamSaysWhenEachMutationWasApplied) {
  using M = pb::Mutation;
  const std::string ada = Token({{"sub", "ada"}, {"projects", {1}}});
  const std::string eve = Token({{"sub", "eve"}, {"projects", {1}}});
  TestClient client(service_->port(), ada);
  client.KeepMessages();
  client.Subscribe({.id = "tasks", .shape = "tasks_writable", .params = {{"project", "1"}}});
  client.Subscribe(
      {.id = "mine", .shape = "shapebridge_mutations", .params = {{"client_id", "tablet-7"}}});
  TestClient other(service_->port(), eve);
  other.Subscribe(
      {.id = "mine", .shape = "shapebridge_mutations", .params = {{"client_id", "tablet-7"}}});
  // Both subscriptions up to date before the push (else its rows may come as snapshot rows).
  ASSERT_TRUE(WaitFor([&] {
    std::set<std::string> up;
    for (const auto& r : client.messages()) {
      if (r.has_up_to_date()) up.insert(r.up_to_date().subscription_id());
    }
    return up.size() == 2;
  }));

  pb::PushResponse response;
  grpc::Status status =
      Push(ada, "tablet-7",
           {Task("rw1", M::INSERT, 40, {{"project_id", Int(1)}, {"title", Text("first")}}),
            Task("rw2", M::UPDATE, 40, {{"title", Text("second")}})},
           &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(Outcomes(response), "rw1=applied rw2=applied");
  ASSERT_TRUE(WaitFor([&] { return client.RowsOf("mine").size() == 2; }))
      << client.RowsOf("mine").size();

  // Every change of the push, rows and mutation records, has the commit LSN of its transaction,
  // and a checkpoint at or after it follows them.
  uint64_t lsn = 0;
  size_t last_change = 0;
  std::optional<size_t> checkpoint_after;
  std::map<std::string, pb::MutationResult> results;
  const auto messages = client.messages();
  for (size_t i = 0; i < messages.size(); ++i) {
    const pb::SyncResponse& r = messages[i];
    if (r.has_checkpoint() && lsn != 0 && r.checkpoint().lsn() >= lsn && !checkpoint_after) {
      checkpoint_after = i;
    }
    if (!r.has_changes()) continue;
    for (const pb::Change& c : r.changes().changes()) {
      // The push's changes (the snapshot may hold rows of other tests).
      if (c.op() == pb::Change::DELETE ||
          (r.changes().subscription_id() == "tasks" && c.key(0).int_value() != 40)) {
        continue;
      }
      if (lsn == 0) lsn = c.offset().lsn();
      EXPECT_EQ(c.offset().lsn(), lsn)
          << r.changes().subscription_id() << " " << c.ShortDebugString();
      EXPECT_FALSE(checkpoint_after.has_value()) << "a change after the checkpoint";
      last_change = i;
      if (r.changes().subscription_id() == "mine") {
        ASSERT_EQ(c.key_size(), 2);
        EXPECT_EQ(c.key(0).text(), "tablet-7");
        if (c.row(2).has_bytes_value() && !c.row(2).bytes_value().empty()) {
          ASSERT_TRUE(results[c.key(1).text()].ParseFromString(c.row(2).bytes_value()));
        }
      }
    }
  }
  ASSERT_NE(lsn, 0u);
  ASSERT_TRUE(checkpoint_after.has_value());
  EXPECT_GT(*checkpoint_after, last_change);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results["rw1"].SerializeAsString(), response.results(0).SerializeAsString());
  EXPECT_EQ(results["rw2"].SerializeAsString(), response.results(1).SerializeAsString());
  EXPECT_EQ(client.RowsOf("tasks").at("40")[2], "second");

  // Another user with the same client id sees none of them, and cannot read them by pushing.
  ASSERT_TRUE(other.WaitForCheckpoint(lsn));
  EXPECT_TRUE(other.RowsOf("mine").empty());
  status = Push(eve, "tablet-7", {Task("rw1", M::UPDATE, 40, {{"title", Text("x")}})}, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Outcomes(response), "rw1=PERMISSION_DENIED");
  EXPECT_EQ(response.results(0).fields_size(), 0);
  EXPECT_TRUE(client.errors().empty()) << absl::StrJoin(client.errors(), "\n");
}

// The double booking: both writes are applied, one violation is recorded, both users receive it,
// a reschedule resolves it (of either booking), and expiry removes it.
TEST_F(WritebackTest, DoubleBookingsAreFlaggedSyncedResolvedAndExpired) {
  using M = pb::Mutation;
  const std::string ada = Token({{"sub", "ada"}, {"buildings", {1}}});
  const std::string bob = Token({{"sub", "bob"}, {"buildings", {1}}});
  const std::string cyd = Token({{"sub", "cyd"}, {"buildings", {1}}});
  TestClient a(service_->port(), ada);
  TestClient b(service_->port(), bob);
  TestClient c(service_->port(), cyd);
  for (TestClient* client : {&a, &b, &c}) {
    client->Subscribe({.id = "v", .shape = "shapebridge_violations"});
  }
  const RuleStats before = service_->writer()->rule_stats().at(0);
  const uint64_t expired_before = service_->writer()->stats().expired_violations.load();
  auto sql = ConnectOrDie(*dsn_);
  auto violations = [&] {
    return QueryValue(*sql,
                      "SELECT coalesce(string_agg(concat_ws(' | ', rule, table_name, record_id, "
                      "conflicting_ids::text, parties::text, description, "
                      "extract(epoch FROM expires_at - detected_at)::int, resolved_at IS NULL), "
                      "E'\\n' ORDER BY id), '') "
                      "FROM shapebridge.violations");
  };
  // "resolved_at" of the violation of `record` in a client's replica ("" when it has none).
  auto seen = [](TestClient& client, const std::string& record) {
    for (const auto& [key, row] : client.RowsOf("v")) {
      if (row[3] == record) return row[8] == "null" ? std::string("open") : "resolved";
    }
    return std::string();
  };

  // Booked offline, pushed later: both applied.
  pb::PushResponse response;
  ASSERT_TRUE(
      Push(ada, "ada-phone", {Booking("a1", M::INSERT, 1, "blue", 10, 11, "standup")}, &response)
          .ok());
  EXPECT_EQ(Outcomes(response), "a1=applied");
  ASSERT_TRUE(Push(bob, "bob-laptop",
                   {Booking("b1", M::INSERT, 2, "blue", 10.5, 11.5, "interview"),
                    Booking("b2", M::INSERT, 3, "green", 10.5, 11.5, "lunch")},
                   &response)
                  .ok());
  EXPECT_EQ(Outcomes(response), "b1=applied b2=applied");
  EXPECT_EQ(QueryValue(*sql, "SELECT count(*) FROM bookings"), "3");
  EXPECT_EQ(violations(),
            "double_booking | public.bookings | [2] | {[1]} | {ada,bob} | room blue is also "
            "booked for standup (booking 1) | 259200 | t");
  // Both users receive it; a third does not.
  ASSERT_TRUE(WaitFor([&] { return seen(a, "[2]") == "open" && seen(b, "[2]") == "open"; }));
  ASSERT_TRUE(c.WaitForCheckpoint(
      Lsn::Parse(QueryValue(*sql, "SELECT pg_current_wal_insert_lsn()::text"))->value()));
  EXPECT_TRUE(c.RowsOf("v").empty());

  // Bob reschedules: resolved, for both.
  ASSERT_TRUE(Push(bob, "bob-laptop", {Booking("b3", M::UPDATE, 2, "", 12, 13)}, &response).ok());
  EXPECT_EQ(Outcomes(response), "b3=applied");
  ASSERT_TRUE(
      WaitFor([&] { return seen(a, "[2]") == "resolved" && seen(b, "[2]") == "resolved"; }));

  // Ada books over Bob's new time; then Bob moves his booking away: a write to the conflicting
  // row resolves the violation of the other.
  ASSERT_TRUE(
      Push(ada, "ada-phone", {Booking("a2", M::INSERT, 4, "blue", 12.5, 13.5, "retro")}, &response)
          .ok());
  ASSERT_TRUE(WaitFor([&] { return seen(a, "[4]") == "open" && seen(b, "[4]") == "open"; }));
  EXPECT_THAT(violations(), HasSubstr("[4] | {[2]} | {ada,bob} | room blue is also booked for "
                                      "interview (booking 2) | 259200 | t"));
  ASSERT_TRUE(Push(bob, "bob-laptop", {Booking("b4", M::UPDATE, 2, "", 15, 16)}, &response).ok());
  ASSERT_TRUE(
      WaitFor([&] { return seen(a, "[4]") == "resolved" && seen(b, "[4]") == "resolved"; }));
  // A write that conflicts with nothing records nothing.
  ASSERT_TRUE(Push(bob, "bob-laptop", {Booking("b5", M::UPDATE, 3, "", 17, 18)}, &response).ok());
  EXPECT_EQ(QueryValue(*sql, "SELECT count(*) FROM shapebridge.violations"), "2");
  const RuleStats after = service_->writer()->rule_stats().at(0);
  EXPECT_EQ(after.rule, "double_booking");
  EXPECT_EQ(after.detected - before.detected, 2u);
  EXPECT_EQ(after.resolved - before.resolved, 2u);

  // Expiry: the sweeper deletes violations past expires_at, and the clients see them go.
  ExecOrDie(*sql, "UPDATE shapebridge.violations SET expires_at = now() - interval '1 second'");
  ASSERT_TRUE(WaitFor([&] {
    service_->Tick();
    return QueryValue(*sql, "SELECT count(*) FROM shapebridge.violations") == "0";
  }));
  EXPECT_EQ(service_->writer()->stats().expired_violations.load() - expired_before, 2u);
  ASSERT_TRUE(WaitFor([&] { return a.RowsOf("v").empty() && b.RowsOf("v").empty(); }));
  for (TestClient* client : {&a, &b, &c}) {
    EXPECT_TRUE(client->errors().empty()) << absl::StrJoin(client->errors(), "\n");
  }
}

// Bookings of one slot pushed at the same moment by two users: each pair gives exactly one
// violation (the checks of a table's rules take turns, so the second sees the first).
TEST_F(WritebackTest, ConcurrentDoubleBookingsAreEachFlaggedOnce) {
  using M = pb::Mutation;
  const std::string ada = Token({{"sub", "ada"}, {"buildings", {1}}});
  const std::string bob = Token({{"sub", "bob"}, {"buildings", {1}}});
  constexpr int kRounds = 12;
  for (int round = 0; round < kRounds; ++round) {
    const std::string room = absl::StrCat("room-", round);
    pb::PushResponse ra;
    pb::PushResponse rb;
    std::thread other([&] {
      EXPECT_TRUE(Push(bob, "bob-laptop",
                       {Booking(absl::StrCat("c", round, "b"), M::INSERT, 1000 + 2 * round + 1,
                                room, 9, 10)},
                       &rb)
                      .ok());
    });
    EXPECT_TRUE(
        Push(ada, "ada-phone",
             {Booking(absl::StrCat("c", round, "a"), M::INSERT, 1000 + 2 * round, room, 9.5, 10.5)},
             &ra)
            .ok());
    other.join();
    EXPECT_EQ(Outcomes(ra) + " " + Outcomes(rb),
              absl::StrCat("c", round, "a=applied c", round, "b=applied"));
  }
  auto sql = ConnectOrDie(*dsn_);
  EXPECT_EQ(QueryValue(*sql,
                       "SELECT count(*) FILTER (WHERE n = 1) || '/' || count(*) FROM (SELECT "
                       "b.room, (SELECT count(*) FROM shapebridge.violations v WHERE v.record_id "
                       "IN ('[' || b.id || ']') AND v.resolved_at IS NULL) AS n FROM bookings b "
                       "WHERE b.id >= 1000) AS per_booking"),
            "12/24");
  EXPECT_EQ(QueryValue(*sql,
                       "SELECT count(*) FROM shapebridge.violations WHERE record_id IN (SELECT "
                       "'[' || id || ']' FROM bookings WHERE id >= 1000)"),
            absl::StrCat(kRounds));
}

// writeback.deletes: newest_wins: a delete and an update of one row converge to the same state in
// either push order, decided by their hlc.
class NewestWinsTest : public WritebackTest {
 protected:
  static void SetUpTestSuite() {
    dsn_ = new std::string(TestPostgres::Get().CreateDatabase("newestwins"));
    auto sql = ConnectOrDie(*dsn_);
    ExecOrDie(*sql, "CREATE TABLE items (id int PRIMARY KEY, grp int, val int)");
    // A generated column: a restored row gets it computed again.
    ExecOrDie(*sql,
              "CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL, title text, "
              "owner text, secret text, title_length int GENERATED ALWAYS AS (length(title)) "
              "STORED)");
    dir_ = new std::string(MakeTempDir());
    service_ = StartService(ConfigYaml(*dsn_, "newestwins", *dir_, kTasksWritable + R"y(writeback:
  deletes: newest_wins
)y"))
                   .release();
    ASSERT_NE(service_, nullptr);
  }
  static pb::Mutation Delete(const std::string& id, int task, hlc::Timestamp at) {
    pb::Mutation m = Task(id, pb::Mutation::DELETE, task);
    m.set_hlc(at.integer());
    return m;
  }
};

TEST_F(NewestWinsTest, ADeleteAndAnUpdateConvergeInEitherOrder) {
  using M = pb::Mutation;
  const std::string ada = Token({{"sub", "ada"}, {"projects", {1}}});
  const std::string bob = Token({{"sub", "bob"}, {"projects", {1}}});
  auto sql = ConnectOrDie(*dsn_);
  for (int id : {1, 2, 3, 4}) {
    ExecOrDie(*sql, absl::StrCat("INSERT INTO tasks VALUES (", id, ", 1, 'start', 'ada', 's')"));
  }
  const hlc::Timestamp t1 = Clock().Now();  // Bob deletes offline ...
  const hlc::Timestamp t2 = Clock().Now();  // ... then Ada edits offline.
  pb::PushResponse response;
  auto push = [&](const std::string& token, const std::string& client, pb::Mutation m) {
    grpc::Status status = Push(token, client, {std::move(m)}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.results_size() == 1 ? response.results(0) : pb::MutationResult();
  };

  // The newer edit arrives first: the older delete is superseded; the row stays.
  EXPECT_TRUE(push(ada, "ada", Stamped(Task("u1", M::UPDATE, 1, {{"title", Text("edited")}}), t2))
                  .fields(0)
                  .superseded() == false);
  pb::MutationResult d = push(bob, "bob", Delete("d1", 1, t1));
  EXPECT_EQ(d.outcome(), pb::MutationResult::APPLIED);
  EXPECT_TRUE(d.superseded());
  // The older delete arrives first: the newer edit brings the row back, with the edit.
  d = push(bob, "bob", Delete("d2", 2, t1));
  EXPECT_FALSE(d.superseded());
  EXPECT_EQ(Rows(2, 3), "");
  pb::MutationResult u =
      push(ada, "ada", Stamped(Task("u2", M::UPDATE, 2, {{"title", Text("edited")}}), t2));
  EXPECT_EQ(u.outcome(), pb::MutationResult::APPLIED);
  EXPECT_FALSE(u.fields(0).superseded());
  EXPECT_EQ(Rows(1, 3), "1:1:edited:ada:s 2:1:edited:ada:s");

  // The delete is newer than the edit: the row is gone in either order, and the edit is told it
  // was superseded by the delete.
  const hlc::Timestamp t3 = Clock().Now();  // Ada edits offline ...
  const hlc::Timestamp t4 = Clock().Now();  // ... then Bob deletes offline.
  push(ada, "ada", Stamped(Task("u3", M::UPDATE, 3, {{"title", Text("edited")}}), t3));
  d = push(bob, "bob", Delete("d3", 3, t4));
  EXPECT_FALSE(d.superseded());
  push(bob, "bob", Delete("d4", 4, t4));
  u = push(ada, "ada", Stamped(Task("u4", M::UPDATE, 4, {{"title", Text("edited")}}), t3));
  EXPECT_EQ(u.outcome(), pb::MutationResult::APPLIED);
  ASSERT_EQ(u.fields_size(), 1);
  EXPECT_TRUE(u.fields(0).superseded());
  EXPECT_TRUE(u.fields(0).winner().null());
  EXPECT_EQ(u.fields(0).winner_hlc(), t4.integer());
  EXPECT_EQ(u.fields(0).winner_client_id(), "bob");
  EXPECT_EQ(Rows(3, 5), "");
  // A later edit restores it: the values before the delete, with the older edit (it was newer
  // than the title it would have replaced, so it is kept as if it had come before the delete),
  // and the new edit.
  u = push(ada, "ada", Stamped(Task("u5", M::UPSERT, 4, {{"owner", Text("cyd")}}), Clock().Now()));
  EXPECT_FALSE(u.fields(0).superseded());
  EXPECT_EQ(Rows(4, 5), "4:1:edited:cyd:s");

  // A row made again directly is not the deleted one: a later edit of it, once it is deleted
  // directly too, finds nothing to restore.
  ExecOrDie(*sql, "INSERT INTO tasks VALUES (5, 1, 'start', 'ada', 's')");
  push(bob, "bob", Delete("d5", 5, Clock().Now()));
  ExecOrDie(*sql, "INSERT INTO tasks VALUES (5, 1, 'again', 'eve', 's')");
  ExecOrDie(*sql, "DELETE FROM tasks WHERE id = 5");
  u = push(ada, "ada", Stamped(Task("u6", M::UPDATE, 5, {{"title", Text("x")}}), Clock().Now()));
  EXPECT_EQ(u.outcome(), pb::MutationResult::REJECTED);
  EXPECT_EQ(u.code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_EQ(Rows(5, 6), "");

  // An edit older than the delete, pushed after it, is kept for a restore: the end is the same as
  // when it came first. Row 10 sees edit(t5), delete(t6), edit(t7); row 11 delete, edit, edit.
  for (int id : {10, 11}) {
    ExecOrDie(*sql, absl::StrCat("INSERT INTO tasks VALUES (", id, ", 1, 'start', 'ada', 's')"));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(2));  // after the inserts' versions
  const hlc::Timestamp t5 = Clock().Now();
  const hlc::Timestamp t6 = Clock().Now();
  const hlc::Timestamp t7 = Clock().Now();
  auto old_edit = [&](int id) {
    return Stamped(Task(absl::StrCat("e5-", id), M::UPDATE, id, {{"title", Text("five")}}), t5);
  };
  auto new_edit = [&](int id) {
    return Stamped(Task(absl::StrCat("e7-", id), M::UPDATE, id, {{"owner", Text("seven")}}), t7);
  };
  push(ada, "ada", old_edit(10));
  push(bob, "bob", Delete("d10", 10, t6));
  push(ada, "ada", new_edit(10));
  push(bob, "bob", Delete("d11", 11, t6));
  u = push(ada, "ada", old_edit(11));
  EXPECT_TRUE(u.fields(0).superseded());
  push(ada, "ada", new_edit(11));
  EXPECT_EQ(Rows(10, 12), "10:1:five:seven:s 11:1:five:seven:s");
  EXPECT_EQ(QueryValue(*sql, "SELECT title_length FROM tasks WHERE id = 11"), "4");

  // Two deletes of one row: the later one counts, whichever came first.
  ExecOrDie(*sql, "INSERT INTO tasks VALUES (12, 1, 'start', 'ada', 's')");
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const hlc::Timestamp t8 = Clock().Now();
  const hlc::Timestamp t9 = Clock().Now();
  const hlc::Timestamp t10 = Clock().Now();
  push(bob, "bob", Delete("d12a", 12, t8));
  d = push(ada, "ada", Delete("d12b", 12, t10));
  EXPECT_EQ(d.outcome(), pb::MutationResult::APPLIED);
  u = push(ada, "ada", Stamped(Task("e12", M::UPDATE, 12, {{"title", Text("x")}}), t9));
  EXPECT_TRUE(u.fields(0).superseded());
  EXPECT_EQ(u.fields(0).winner_hlc(), t10.integer());
  EXPECT_EQ(Rows(12, 13), "");

  // A delete must carry its hlc here.
  grpc::Status status = Push(bob, "bob", {Task("d6", M::DELETE, 1)}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("mutations[0] (d6): hlc missing"));
}

// Rules are checked against the catalog when the service starts; every problem is listed.
TEST(WritebackRulesTest, BadRulesStopTheServiceWithTheirLocation) {
  const std::string dsn = TestPostgres::Get().CreateDatabase("badrules");
  {
    auto sql = ConnectOrDie(dsn);
    ExecOrDie(*sql, "CREATE TABLE items (id int PRIMARY KEY, grp int, val int)");
    ExecOrDie(*sql,
              "CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL, title text, "
              "owner text, secret text)");
  }
  const std::string dir = MakeTempDir();
  auto config = ParseConfig(ConfigYaml(dsn, "badrules", dir, R"y(  - name: tasks_writable
    table: public.tasks
    where: "project_id = $project"
    writable: true
    params:
      project: {type: int, from: request, claim: projects}
writeback:
  rules:
    - name: unknown_column
      table: public.tasks
      check: SELECT id FROM public.tasks WHERE title = $titel
    - name: no_key
      table: public.tasks
      check: SELECT title FROM public.tasks WHERE title = $title AND id <> $id
    - name: bad_placeholder
      table: public.tasks
      check: SELECT id FROM public.tasks WHERE title = $title AND id <> $id
      description: "{owner} and {new.nope}"
    - name: not_writable
      table: public.items
      check: SELECT id FROM public.items WHERE grp = $grp
    - name: bad_sql
      table: public.tasks
      check: SELECT id FROM public.taks WHERE title = $title
    - name: positional
      table: public.tasks
      check: SELECT id FROM public.tasks WHERE title = $1
)y"),
                            "rules.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  auto service = Service::Create(*config);
  ASSERT_FALSE(service.ok());
  const std::string message(service.status().message());
  EXPECT_THAT(message, HasSubstr("rules.yaml:"));
  EXPECT_THAT(message, HasSubstr("writeback.rules.unknown_column: check: $titel is not a column"));
  EXPECT_THAT(message, HasSubstr("writeback.rules.no_key: check: must return the primary key "
                                 "column id of the conflicting rows"));
  EXPECT_THAT(message, HasSubstr("writeback.rules.bad_placeholder: description: {owner} is "
                                 "neither a column the check returns"));
  EXPECT_THAT(message, HasSubstr("writeback.rules.bad_placeholder: description: {new.nope}"));
  EXPECT_THAT(message,
              HasSubstr("writeback.rules.not_writable: table: public.items has no writable shape"));
  EXPECT_THAT(message, HasSubstr("writeback.rules.bad_sql: check: "));
  EXPECT_THAT(message, HasSubstr("public.taks"));
  EXPECT_THAT(message,
              HasSubstr("writeback.rules.positional: check: parameters are $column names"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace shapebridge
