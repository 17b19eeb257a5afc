// The Sync service's benchmarks, with the service wired as `serve` wires it and gRPC clients on
// loopback.
//
// `initial-sync`: a 5,000-row shape of a 1,000,000-row, 8-column task table. Time from sending
// the Subscribe to receiving up_to_date, for the first subscriber of an instance (cold: the
// snapshot is taken from Postgres) and the second (warm: served from the shape log), next to a
// `COPY (SELECT ...) TO STDOUT` of the same rows through libpq in the same run.
//
// `fanout`: 1,000 connected clients over 100 instances, 100 single-row updates a second; the
// latency from the moment the writer sends an update's autocommit UPDATE to the moment a client
// receives the change, next to the same latency for a raw pgoutput reader of the same updates.
//
// `push`: 20 clients, each on its own channel and rows, push single-field updates in batches of 1
// and of 50 (one Push call per batch, every mutation applied); throughput and per-call latency,
// next to the same updates issued as plain SQL through libpq in the same run (autocommit
// statements for batches of 1, one transaction per 50).

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "bridge/app/config.h"
#include "bridge/app/service.h"
#include "bridge/auth/jwt.h"
#include "bridge/kafka/dev_cluster.h"
#include "bridge/replication/replicator.h"
#include "clients/cli/sync_client.h"
#include "clients/hlc/hlc.h"
#include "nlohmann/json.hpp"
#include "ops/benchmarks/bench.h"
#include "ops/benchmarks/raw_slot.h"
#include "tests/harness/test_postgres.h"

namespace shapebridge::bench {
namespace {

using Clock = std::chrono::steady_clock;
using shapebridge::testing::ConnectOrDie;
using shapebridge::testing::ExecOrDie;
using shapebridge::testing::QueryValue;
namespace pb = ::shapebridge::sync::v1;

constexpr char kSecret[] = "the HS256 secret of the benchmark service, 32+ bytes";

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[i];
}

// A token of the benchmark service with these claims, valid for an hour.
std::string Token(nlohmann::json claims = {{"sub", "bench"}}) {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  claims["exp"] = now + 3600;
  auto token = auth::SignToken(claims, "HS256", kSecret);
  if (!token.ok()) throw std::runtime_error(token.status().ToString());
  return *token;
}

// The service as `serve` runs it: the shape log is synced to disk (fsync on), as in production.
// `kafka`: the bootstrap servers of a cluster with the topic "<slot>.shapes"; the service is then a
// Kafka server node that runs the replicator role too (kafka.replicate).
std::unique_ptr<Service> StartService(const std::string& dsn, const std::string& slot,
                                      const std::string& shapes_yaml,
                                      const std::string& kafka = "") {
  const auto dir = std::filesystem::temp_directory_path() / ("sb-bench-" + slot);
  std::filesystem::remove_all(dir);
  std::string yaml = absl::StrCat(R"y(postgres:
  dsn: ")y",
                                  dsn, R"y("
replication:
  slot: )y",
                                  slot, R"y(
  publication: )y",
                                  slot, R"y(
  heartbeat_interval_ms: 1000
log:
  dir: )y",
                                  dir.string(), R"y(
server:
  listen: 127.0.0.1:0
  heartbeat_interval_ms: 1000
metrics:
  listen: 127.0.0.1:0
auth:
  jwt:
    keys:
      - algorithm: HS256
        secret: ")y",
                                  kSecret, R"y("
shapes:
)y",
                                  shapes_yaml);
  if (!kafka.empty()) {
    yaml = absl::StrReplaceAll(
        yaml, {{absl::StrCat("log:\n  dir: ", dir.string(), "\n"),
                absl::StrCat("log:\n  backend: kafka\nkafka:\n  bootstrap_servers: \"", kafka,
                             "\"\n  topic_prefix: ", slot,
                             "\n  change_topic: false\n  replicate: true\n")}});
  }
  auto config = ParseConfig(yaml, "bench.yaml");
  if (!config.ok()) throw std::runtime_error(config.status().ToString());
  auto service = Service::Create(*config);
  if (!service.ok()) throw std::runtime_error(service.status().ToString());
  if (auto s = (*service)->Start(); !s.ok()) throw std::runtime_error(s.ToString());
  auto streaming = [&] {
    const Replicator* r = (*service)->replicator_or_null();
    return r != nullptr && r->stats().streaming.load() && (*service)->ready();
  };
  for (int i = 0; i < 500 && !streaming(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!streaming()) throw std::runtime_error("the service's replication did not start streaming");
  return *std::move(service);
}

// ----- initial-sync ------------------------------------------------------------------------------

constexpr int kTasks = 1'000'000;
constexpr int kProjects = 200;    // 5,000 tasks each
constexpr int kWarmupRounds = 4;  // untimed: the first reads of each page prune it
constexpr int kRounds = 10;

// Copies one project's tasks with COPY TO STDOUT; returns the seconds and counts the rows.
double CopyProject(PGconn* conn, int project, int* rows) {
  const std::string sql = absl::StrCat(
      "COPY (SELECT id, project_id, title, status, assignee, position, created_at, updated_at "
      "FROM public.tasks WHERE project_id = ",
      project, ") TO STDOUT");
  const auto start = Clock::now();
  PGresult* r = PQexec(conn, sql.c_str());
  if (PQresultStatus(r) != PGRES_COPY_OUT) {
    std::string error = PQerrorMessage(conn);
    PQclear(r);
    throw std::runtime_error("COPY: " + error);
  }
  PQclear(r);
  *rows = 0;
  char* buffer = nullptr;
  int n = 0;
  while ((n = PQgetCopyData(conn, &buffer, 0)) > 0) {
    ++*rows;
    PQfreemem(buffer);
  }
  r = PQgetResult(conn);
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  while ((r = PQgetResult(conn)) != nullptr) PQclear(r);
  if (n == -2 || !ok) throw std::runtime_error(std::string("COPY: ") + PQerrorMessage(conn));
  return Seconds(Clock::now() - start);
}

// Subscribes to one project's tasks on a connected stream and waits for up_to_date; returns the
// seconds from sending the Subscribe and counts the rows received.
double SyncProject(client::SyncClient& client, int project, int* rows) {
  const auto start = Clock::now();
  client.Subscribe({.id = "tasks",
                    .shape = "tasks_by_project",
                    .params = {{"project", std::to_string(project)}}});
  *rows = 0;
  // Each message is parsed into an arena, freed at once when the next message comes: the
  // client only counts the rows.
  std::vector<char> block(1 << 20);
  while (true) {
    google::protobuf::ArenaOptions options;
    options.initial_block = block.data();
    options.initial_block_size = block.size();
    google::protobuf::Arena arena(options);
    auto* response = google::protobuf::Arena::CreateMessage<pb::SyncResponse>(&arena);
    if (!client.Next(response)) break;
    if (response->has_changes()) {
      for (const auto& change : response->changes().changes()) {
        if (change.op() == pb::Change::INSERT) ++*rows;
      }
    } else if (response->has_up_to_date()) {
      return Seconds(Clock::now() - start);
    } else if (response->has_must_refetch()) {
      throw std::runtime_error("must_refetch: " + response->must_refetch().message());
    }
  }
  throw std::runtime_error("the stream ended: " + client.Finish().error_message());
}

// A stream whose channel is connected, so the time measured is the subscription's alone.
std::unique_ptr<client::SyncClient> ConnectedClient(int port, const std::string& token) {
  auto client = std::make_unique<client::SyncClient>(absl::StrCat("127.0.0.1:", port), token);
  // Subscribe to a one-row shape and wait for it, which also brings the channel up.
  int rows = 0;
  (void)SyncProject(*client, 0, &rows);
  client->Unsubscribe("tasks");
  return client;
}

// `kafka`: through the Kafka backend on the mock cluster (the replicator's snapshot reaches the
// client through the shape topic).
std::vector<Result> InitialSync(bool kafka) {
  const std::string name = kafka ? "syncbench_kafka" : "syncbench";
  std::unique_ptr<kafka::DevCluster> cluster;
  if (kafka) {
    auto started = kafka::DevCluster::Start(3);
    if (!started.ok()) throw std::runtime_error(started.status().ToString());
    cluster = *std::move(started);
    if (absl::Status s = cluster->CreateTopic(name + ".shapes", 8, 3); !s.ok()) {
      throw std::runtime_error(s.ToString());
    }
  }
  const std::string dsn = shapebridge::testing::TestPostgres::Get().CreateDatabase(name);
  auto conn = ConnectOrDie(dsn);
  ExecOrDie(*conn,
            "CREATE TABLE tasks (id bigint PRIMARY KEY, project_id int NOT NULL, "
            "title text NOT NULL, status text NOT NULL, assignee text, position int NOT NULL, "
            "created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)");
  std::cerr << "    inserting " << kTasks << " tasks\n";
  // Tasks of a project are spread over the table, as when many projects are worked on at once.
  ExecOrDie(*conn, absl::StrCat("INSERT INTO tasks SELECT g, g % ", kProjects,
                                " + 1, 'task number ' || g || ' of its project', "
                                "(ARRAY['todo','doing','done'])[g % 3 + 1], 'user' || (g % 50), "
                                "g / ",
                                kProjects,
                                ", '2024-01-01'::timestamptz + g * interval '1 minute', "
                                "'2024-06-01'::timestamptz + g * interval '1 second' "
                                "FROM generate_series(1, ",
                                kTasks, ") g"));
  // A one-row project for warming up connections.
  ExecOrDie(*conn, "INSERT INTO tasks VALUES (0, 0, 'warm-up', 'todo', NULL, 0, now(), now())");
  ExecOrDie(*conn, "CREATE INDEX tasks_project_id ON tasks (project_id)");
  ExecOrDie(*conn, "VACUUM ANALYZE tasks");
  // Into shared buffers (a sequential scan of a large table would only use a small ring).
  ExecOrDie(*conn, "CREATE EXTENSION pg_prewarm");
  ExecOrDie(*conn, "SELECT pg_prewarm('tasks'), pg_prewarm('tasks_project_id')");

  auto service = StartService(dsn, name, R"y(  - name: tasks_by_project
    table: public.tasks
    where: "project_id = $project"
    params:
      project: {type: int, from: request}
)y",
                              cluster ? cluster->bootstrap_servers() : "");
  const std::string token = Token();
  PGconn* copy = PQconnectdb(dsn.c_str());
  if (PQstatus(copy) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(copy));

  std::vector<double> copy_s;
  std::vector<double> cold_s;
  std::vector<double> warm_s;
  for (int round = -kWarmupRounds; round < kRounds; ++round) {
    const int project = round + kWarmupRounds + 1;
    auto first = ConnectedClient(service->port(), token);
    auto second = ConnectedClient(service->port(), token);
    int copy_rows = 0;
    int cold_rows = 0;
    int warm_rows = 0;
    // Alternate which one goes first, so neither benefits from what the other warmed.
    double c = 0;
    double cold = 0;
    if (project % 2 == 0) {
      c = CopyProject(copy, project, &copy_rows);
      cold = SyncProject(*first, project, &cold_rows);
    } else {
      cold = SyncProject(*first, project, &cold_rows);
      c = CopyProject(copy, project, &copy_rows);
    }
    const double warm = SyncProject(*second, project, &warm_rows);
    if (copy_rows != kTasks / kProjects || cold_rows != copy_rows || warm_rows != copy_rows) {
      throw std::runtime_error(
          absl::StrCat("rows: COPY ", copy_rows, ", cold ", cold_rows, ", warm ", warm_rows));
    }
    if (round < 0) continue;
    std::cerr << "    round " << round + 1 << ": COPY " << c * 1e3 << " ms, cold " << cold * 1e3
              << " ms, warm " << warm * 1e3 << " ms\n";
    copy_s.push_back(c);
    cold_s.push_back(cold);
    warm_s.push_back(warm);
  }
  PQfinish(copy);
  service->Stop();
  const double copy_ms = Median(copy_s) * 1e3;
  if (kafka) {
    return {Result{.name = "initial-sync-kafka cold",
                   .value = Median(cold_s) * 1e3,
                   .unit = "ms",
                   .baseline_name = "COPY of the same rows",
                   .baseline_value = copy_ms,
                   .target = ""},
            Result{.name = "initial-sync-kafka warm",
                   .value = Median(warm_s) * 1e3,
                   .unit = "ms",
                   .baseline_name = "COPY of the same rows",
                   .baseline_value = copy_ms,
                   .target = ""}};
  }
  return {Result{.name = "initial-sync cold",
                 .value = Median(cold_s) * 1e3,
                 .unit = "ms",
                 .baseline_name = "COPY of the same rows",
                 .baseline_value = copy_ms,
                 .target = "ratio <= 2.0"},
          Result{.name = "initial-sync warm",
                 .value = Median(warm_s) * 1e3,
                 .unit = "ms",
                 .baseline_name = "COPY of the same rows",
                 .baseline_value = copy_ms,
                 .target = "ratio <= 1.0"}};
}

// ----- fanout ------------------------------------------------------------------------------------

constexpr int kClients = 1000;
constexpr int kInstances = 100;
constexpr int kRowsPerInstance = 50;
constexpr int kUpdatesPerSecond = 100;
constexpr int kUpdates = 2000;  // 20 seconds

struct FanoutShared {
  // When the writer sent update n (steady clock, ns), set before it is sent.
  std::vector<std::atomic<int64_t>> sent = std::vector<std::atomic<int64_t>>(kUpdates);
  std::atomic<int> up_to_date{0};
  std::atomic<int> done{0};
  std::mutex mu;
  std::condition_variable cv;
};

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// One client: a Sync stream with one subscription, read by gRPC's callback threads. It records
// the latency of every update it receives, by the update's number in the title ("u<n>").
class FanoutClient : public grpc::ClientBidiReactor<pb::SyncRequest, pb::SyncResponse> {
 public:
  FanoutClient(pb::ShapeSync::Stub& stub, const std::string& token, int project,
               FanoutShared& shared)
      : shared_(shared) {
    context_.AddMetadata("authorization", "Bearer " + token);
    stub.async()->Sync(&context_, this);
    pb::Subscribe* s = request_.mutable_subscribe();
    s->set_subscription_id("fan");
    s->set_shape("fan_by_project");
    (*s->mutable_params())["project"] = std::to_string(project);
    StartWrite(&request_);
    StartRead(&response_);
    StartCall();
  }

  void OnWriteDone(bool) override {}

  void OnReadDone(bool ok) override {
    if (!ok) return;
    const int64_t now = NowNs();
    switch (response_.response_case()) {
      case pb::SyncResponse::kSchema:
        for (int i = 0; i < response_.schema().columns_size(); ++i) {
          if (response_.schema().columns(i).name() == "title") title_ = i;
        }
        break;
      case pb::SyncResponse::kUpToDate:
        shared_.up_to_date.fetch_add(1);
        break;
      case pb::SyncResponse::kChanges:
        for (const auto& change : response_.changes().changes()) {
          if (change.op() != pb::Change::UPDATE || title_ < 0) continue;
          const std::string& title = change.row(title_).text();
          if (title.size() < 2 || title[0] != 'u') continue;
          const int n = std::stoi(title.substr(1));
          latencies_ms_.push_back(static_cast<double>(now - shared_.sent[n].load()) / 1e6);
        }
        break;
      case pb::SyncResponse::kMustRefetch:
        errors_.push_back("must_refetch: " + response_.must_refetch().message());
        break;
      default:
        break;
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    status_ = status;
    shared_.done.fetch_add(1);
    std::lock_guard lock(shared_.mu);
    shared_.cv.notify_all();
  }

  void Cancel() { context_.TryCancel(); }
  const std::vector<double>& latencies_ms() const { return latencies_ms_; }
  const std::vector<std::string>& errors() const { return errors_; }
  const grpc::Status& status() const { return status_; }

 private:
  FanoutShared& shared_;
  grpc::ClientContext context_;
  pb::SyncRequest request_;
  pb::SyncResponse response_;
  int title_ = -1;
  std::vector<double> latencies_ms_;
  std::vector<std::string> errors_;
  grpc::Status status_;
};

std::vector<Result> RunFanout() {
  const std::string dsn = shapebridge::testing::TestPostgres::Get().CreateDatabase("fanbench");
  auto conn = ConnectOrDie(dsn);
  ExecOrDie(*conn,
            "CREATE TABLE fan (id int PRIMARY KEY, project_id int NOT NULL, title text NOT NULL, "
            "status text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())");
  ExecOrDie(*conn, absl::StrCat("INSERT INTO fan (id, project_id, title, status) SELECT g, g % ",
                                kInstances, ", 'task ' || g, 'todo' FROM generate_series(0, ",
                                kInstances * kRowsPerInstance - 1, ") g"));
  auto service = StartService(dsn, "fanbench", R"y(  - name: fan_by_project
    table: public.fan
    where: "project_id = $project"
    params:
      project: {type: int, from: request}
)y");
  const std::string token = Token();
  FanoutShared shared;

  // One connection per client, as separate devices have.
  std::cerr << "    connecting " << kClients << " clients\n";
  std::vector<std::unique_ptr<pb::ShapeSync::Stub>> stubs;
  std::vector<std::unique_ptr<FanoutClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(pb::ShapeSync::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", service->port()), grpc::InsecureChannelCredentials(), args)));
    clients.push_back(std::make_unique<FanoutClient>(*stubs.back(), token, i % kInstances, shared));
  }
  const auto connect_deadline = Clock::now() + std::chrono::seconds(120);
  while (shared.up_to_date.load() < kClients && shared.done.load() == 0) {
    if (Clock::now() > connect_deadline) throw std::runtime_error("clients did not sync");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (shared.done.load() != 0) {
    for (auto& c : clients) {
      if (!c->status().ok()) throw std::runtime_error(c->status().error_message());
    }
  }

  // The baseline: a raw pgoutput reader of the same updates, on its own slot created now.
  ExecOrDie(*conn, "SELECT pg_create_logical_replication_slot('fanraw', 'pgoutput')");
  std::vector<double> raw_ms;
  std::atomic<bool> raw_failed{false};
  std::thread raw([&] {
    try {
      RawSlotReader reader(dsn, "fanraw", "fanbench");
      const auto deadline = Clock::now() + std::chrono::seconds(kUpdates / kUpdatesPerSecond + 30);
      while (static_cast<int>(raw_ms.size()) < kUpdates) {
        if (!reader.NextCommit(deadline)) break;
        const int n = static_cast<int>(raw_ms.size());
        raw_ms.push_back(static_cast<double>(NowNs() - shared.sent[n].load()) / 1e6);
      }
    } catch (const std::exception& e) {
      std::cerr << "    raw reader: " << e.what() << "\n";
      raw_failed = true;
    }
  });

  std::cerr << "    " << kUpdates << " updates at " << kUpdatesPerSecond << "/s\n";
  auto writer = ConnectOrDie(dsn);
  ExecOrDie(*writer, "SET synchronous_commit = on");  // the default of a production database
  std::mt19937 rng(42);
  std::vector<int> per_instance(kInstances, 0);
  const auto start = Clock::now();
  for (int n = 0; n < kUpdates; ++n) {
    std::this_thread::sleep_until(start +
                                  std::chrono::microseconds(n * 1'000'000LL / kUpdatesPerSecond));
    const int id = static_cast<int>(rng() % (kInstances * kRowsPerInstance));
    ++per_instance[id % kInstances];
    shared.sent[n].store(NowNs());
    ExecOrDie(*writer, absl::StrCat("UPDATE fan SET title = 'u", n,
                                    "', updated_at = now() WHERE id = ", id));
  }
  raw.join();
  // Every client must see every update of its instance.
  const auto drain_deadline = Clock::now() + std::chrono::seconds(30);
  std::vector<double> all_ms;
  while (true) {
    size_t missing = 0;
    for (int i = 0; i < kClients; ++i) {
      const size_t got = clients[i]->latencies_ms().size();
      missing += per_instance[i % kInstances] - std::min<size_t>(got, per_instance[i % kInstances]);
    }
    if (missing == 0) break;
    if (Clock::now() > drain_deadline || shared.done.load() != 0) {
      throw std::runtime_error(absl::StrCat(missing, " updates never reached their clients"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (auto& c : clients) c->Cancel();
  {
    std::unique_lock lock(shared.mu);
    shared.cv.wait_for(lock, std::chrono::seconds(30),
                       [&] { return shared.done.load() == kClients; });
  }
  for (auto& c : clients) {
    if (!c->errors().empty()) throw std::runtime_error(c->errors().front());
    all_ms.insert(all_ms.end(), c->latencies_ms().begin(), c->latencies_ms().end());
  }
  clients.clear();
  service->Stop();
  ExecOrDie(*conn, "SELECT pg_drop_replication_slot('fanraw')");
  if (raw_failed || static_cast<int>(raw_ms.size()) != kUpdates) {
    throw std::runtime_error(
        absl::StrCat("the raw reader saw ", raw_ms.size(), " of ", kUpdates, " updates"));
  }
  std::sort(all_ms.begin(), all_ms.end());
  std::sort(raw_ms.begin(), raw_ms.end());
  std::cerr << "    " << all_ms.size() << " deliveries; shapebridge p50 " << Percentile(all_ms, 0.5)
            << " ms, p99 " << Percentile(all_ms, 0.99) << " ms, max " << all_ms.back()
            << " ms; raw pgoutput p50 " << Percentile(raw_ms, 0.5) << " ms, p99 "
            << Percentile(raw_ms, 0.99) << " ms\n";
  return {Result{.name = "fanout p50",
                 .value = Percentile(all_ms, 0.5),
                 .unit = "ms",
                 .baseline_name = "raw pgoutput reader p50",
                 .baseline_value = Percentile(raw_ms, 0.5),
                 .target = "value < 5 ms"},
          Result{.name = "fanout p99",
                 .value = Percentile(all_ms, 0.99),
                 .unit = "ms",
                 .baseline_name = "raw pgoutput reader p99",
                 .baseline_value = Percentile(raw_ms, 0.99),
                 .target = "value < 25 ms"}};
}

// ----- push --------------------------------------------------------------------------------------

constexpr int kPushClients = 20;
constexpr int kMutationsPerClient = 500;
constexpr int kRowsPerClient = 1'000;

struct PushRun {
  double mutations_per_second = 0;
  std::vector<double> call_ms;  // sorted
};

// Runs `call(client, round)` kMutationsPerClient / batch times on each of kPushClients threads at
// once; each call does `batch` mutations.
PushRun RunClients(int batch, const std::function<void(int client, int round)>& call) {
  std::vector<std::vector<double>> ms(kPushClients);
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int c = 0; c < kPushClients; ++c) {
    threads.emplace_back([&, c] {
      for (int round = 0; round < kMutationsPerClient / batch; ++round) {
        const auto t0 = Clock::now();
        call(c, round);
        ms[c].push_back(Seconds(Clock::now() - t0) * 1000);
      }
    });
  }
  for (auto& t : threads) t.join();
  PushRun run;
  run.mutations_per_second =
      static_cast<double>(kPushClients) * kMutationsPerClient / Seconds(Clock::now() - start);
  for (auto& v : ms) run.call_ms.insert(run.call_ms.end(), v.begin(), v.end());
  std::sort(run.call_ms.begin(), run.call_ms.end());
  return run;
}

std::vector<Result> RunPush() {
  const std::string dsn = shapebridge::testing::TestPostgres::Get().CreateDatabase("pushbench");
  auto conn = ConnectOrDie(dsn);
  ExecOrDie(*conn,
            "CREATE TABLE notes (id int PRIMARY KEY, project_id int NOT NULL, title text NOT NULL, "
            "body text NOT NULL)");
  ExecOrDie(*conn, absl::StrCat("INSERT INTO notes SELECT g, g / ", kRowsPerClient,
                                ", 'note ' || g, 'body' FROM generate_series(0, ",
                                kPushClients * kRowsPerClient - 1, ") g"));
  ExecOrDie(*conn, "VACUUM ANALYZE notes");
  auto service = StartService(dsn, "pushbench", R"y(  - name: notes_by_project
    table: public.notes
    where: "project_id = $project"
    writable: true
    params:
      project: {type: int, from: request, claim: projects}
)y");
  const std::string target = absl::StrCat("127.0.0.1:", service->port());
  std::vector<std::string> tokens;
  for (int c = 0; c < kPushClients; ++c) {
    tokens.push_back(Token({{"sub", absl::StrCat("user", c)}, {"projects", {c}}}));
  }
  std::vector<std::unique_ptr<pb::ShapeSync::Stub>> stubs;
  std::vector<std::unique_ptr<hlc::Clock>> clocks;
  for (int c = 0; c < kPushClients; ++c) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(pb::ShapeSync::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args)));
    clocks.push_back(std::make_unique<hlc::Clock>());
  }
  std::vector<std::unique_ptr<PgConnection>> sql;
  for (int c = 0; c < kPushClients; ++c) sql.push_back(ConnectOrDie(dsn));

  // The row a client's mutation `i` of round `round` updates, and its new title.
  auto row = [](int c, int round, int batch, int i) {
    return c * kRowsPerClient + (round * batch + i) % kRowsPerClient;
  };
  std::atomic<int> failures{0};
  std::string failure;
  std::mutex failure_mu;
  auto push = [&](int batch, const std::string& tag) {
    return RunClients(batch, [&, batch, tag](int c, int round) {
      pb::PushRequest request;
      request.set_client_id(absl::StrCat("device", c));
      for (int i = 0; i < batch; ++i) {
        pb::Mutation* m = request.add_mutations();
        m->set_mutation_id(absl::StrCat(tag, "-", round, "-", i));
        m->set_table("public.notes");
        m->set_op(pb::Mutation::UPDATE);
        (*m->mutable_key())["id"].set_int_value(row(c, round, batch, i));
        pb::FieldWrite* f = m->add_fields();
        f->set_column("title");
        f->mutable_value()->set_text(absl::StrCat(tag, " ", round, " ", i));
        f->set_hlc(clocks[c]->Now().integer());
      }
      pb::PushResponse response;
      grpc::ClientContext context;
      context.AddMetadata("authorization", "Bearer " + tokens[c]);
      grpc::Status status = stubs[c]->Push(&context, request, &response);
      bool ok = status.ok() && response.results_size() == batch;
      for (const auto& r : response.results()) {
        ok = ok && r.outcome() == pb::MutationResult::APPLIED && !r.fields(0).superseded();
      }
      if (!ok) {
        ++failures;
        std::lock_guard lock(failure_mu);
        failure = status.ok() ? response.DebugString() : status.error_message();
      }
    });
  };
  auto plain = [&](int batch, const std::string& tag) {
    return RunClients(batch, [&, batch, tag](int c, int round) {
      if (batch > 1) ExecOrDie(*sql[c], "BEGIN");
      for (int i = 0; i < batch; ++i) {
        auto r = sql[c]->ExecParams(
            "UPDATE notes SET title = $1 WHERE id = $2",
            {absl::StrCat(tag, " ", round, " ", i), std::to_string(row(c, round, batch, i))});
        if (!r.ok()) {
          ++failures;
          std::lock_guard lock(failure_mu);
          failure = r.status().ToString();
        }
      }
      if (batch > 1) ExecOrDie(*sql[c], "COMMIT");
    });
  };
  std::vector<Result> results;
  for (int batch : {1, 50}) {
    std::cerr << "    batches of " << batch << "\n";
    plain(batch, absl::StrCat("warm-sql-", batch));
    push(batch, absl::StrCat("warm-push-", batch));
    const PushRun sql_run = plain(batch, absl::StrCat("sql-", batch));
    PushRun push_run = push(batch, absl::StrCat("push-", batch));
    if (failures.load() > 0) {
      throw std::runtime_error(absl::StrCat(failures.load(), " calls failed: ", failure));
    }
    std::vector<double> push_ms = push_run.call_ms;
    std::vector<double> sql_ms = sql_run.call_ms;
    std::cerr << "      push " << push_run.mutations_per_second << " mutations/s, p50 "
              << Percentile(push_ms, 0.5) << " ms, p99 " << Percentile(push_ms, 0.99)
              << " ms; plain SQL " << sql_run.mutations_per_second << " updates/s, p50 "
              << Percentile(sql_ms, 0.5) << " ms, p99 " << Percentile(sql_ms, 0.99) << " ms\n";
    const std::string what = absl::StrCat("push, batches of ", batch);
    const std::string baseline =
        absl::StrCat("plain SQL, ", batch == 1 ? "autocommit" : "txn of 50");
    results.push_back(Result{.name = what,
                             .value = push_run.mutations_per_second,
                             .unit = "mutations/s",
                             .baseline_name = baseline,
                             .baseline_value = sql_run.mutations_per_second});
    results.push_back(Result{.name = what + " p50",
                             .value = Percentile(push_ms, 0.5),
                             .unit = "ms",
                             .baseline_name = baseline + " p50",
                             .baseline_value = Percentile(sql_ms, 0.5)});
    results.push_back(Result{.name = what + " p99",
                             .value = Percentile(push_ms, 0.99),
                             .unit = "ms",
                             .baseline_name = baseline + " p99",
                             .baseline_value = Percentile(sql_ms, 0.99)});
  }
  // Every pushed title is there: the last round of each client wrote its rows last.
  const std::string last =
      QueryValue(*conn, absl::StrCat("SELECT count(*) FROM notes WHERE title LIKE 'push-50 %'"));
  if (std::stoi(last) != kPushClients * kMutationsPerClient) {
    throw std::runtime_error(absl::StrCat("only ", last, " rows hold the last pushed titles"));
  }
  service->Stop();
  return results;
}

}  // namespace

std::vector<Benchmark> SyncBenchmarks() {
  return {Benchmark{.name = "initial-sync",
                    .description = "a 5,000-row shape of a 1M-row table, first and second "
                                   "subscriber, vs COPY of the same rows",
                    .run = [] { return InitialSync(false); }},
          Benchmark{.name = "initial-sync-kafka",
                    .description = "initial-sync through the Kafka backend (mock cluster): the "
                                   "replicator's snapshot reaches the server node through the "
                                   "shape topic",
                    .run = [] { return InitialSync(true); }},
          Benchmark{.name = "fanout",
                    .description = "commit-to-client latency of 100 updates/s to 1,000 clients "
                                   "over 100 instances, vs a raw pgoutput reader",
                    .run = RunFanout},
          Benchmark{.name = "push",
                    .description = "write-back: 20 clients pushing batches of 1 and of 50 "
                                   "updates, vs the same updates as plain SQL",
                    .run = RunPush}};
}

}  // namespace shapebridge::bench
