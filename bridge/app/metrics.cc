#include "bridge/app/metrics.h"

#include <CivetServer.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "bridge/app/service.h"
#include "bridge/common/pg.h"
#include "bridge/kafka/shape_topic.h"
#include "bridge/log/routing_sink.h"
#include "bridge/replication/replicator.h"
#include "bridge/server/registry.h"
#include "bridge/server/snapshotter.h"
#include "bridge/writeback/writer.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "shapes/router.h"
#include "spdlog/spdlog.h"

namespace shapebridge {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Initial sync and commit-to-client latency: 1 ms to 60 s.
const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
// Journal write and sync: 50 µs to 1 s.
const prometheus::Histogram::BucketBoundaries kSyncBuckets = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};

MetricFamily Family(std::string name, std::string help, MetricType type) {
  return MetricFamily{.name = std::move(name), .help = std::move(help), .type = type, .metric = {}};
}

void AddValue(MetricFamily& family, double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (family.type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  family.metric.push_back(std::move(m));
}

MetricFamily Counter(std::string name, std::string help, double value) {
  MetricFamily f = Family(std::move(name), std::move(help), MetricType::Counter);
  AddValue(f, value);
  return f;
}

MetricFamily Gauge(std::string name, std::string help, double value) {
  MetricFamily f = Family(std::move(name), std::move(help), MetricType::Gauge);
  AddValue(f, value);
  return f;
}

int64_t NowUnixMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct Metrics::Impl {
  MetricsConfig config;
  Service* service = nullptr;  // null in a replicator-only process
  const Replicator* replicator = nullptr;
  ReplicationConfig replication;
  std::function<KafkaReplicatorStats()> kafka;  // a replicator-only process's producer
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Histogram>* initial_sync = nullptr;
  prometheus::Histogram* commit_to_client = nullptr;
  prometheus::Histogram* log_sync = nullptr;
  prometheus::Histogram* push = nullptr;

  // The slot, as pg_replication_slots last showed it.
  std::atomic<bool> slot_polled{false};
  std::atomic<bool> slot_present{false};
  std::atomic<bool> slot_active{false};
  std::atomic<uint64_t> server_wal_lsn{0};
  std::atomic<uint64_t> slot_restart_lsn{0};
  std::atomic<uint64_t> slot_confirmed_flush_lsn{0};
  std::atomic<uint64_t> slot_poll_errors{0};

  std::unique_ptr<CivetServer> http;
  std::vector<std::unique_ptr<CivetHandler>> handlers;
  int port = 0;
  std::thread poller;
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool started = false;

  explicit Impl(MetricsConfig c) : config(std::move(c)) {}

  void CollectKafka(std::vector<MetricFamily>& out) const;
  void CollectReplication(std::vector<MetricFamily>& out) const;
  void CollectServerNode(std::vector<MetricFamily>& out) const;

  std::vector<MetricFamily> Collect() const;
  void PollSlot(std::unique_ptr<PgConnection>& sql);
  void PollLoop();
};

void Metrics::Impl::CollectReplication(std::vector<MetricFamily>& out) const {
  const ReplicatorStats& rs = replicator->stats();
  const uint64_t received = rs.received_lsn.load();
  const uint64_t flushed = rs.reported_flush_lsn.load();

  // Replication.
  out.push_back(Gauge("shapebridge_replication_streaming",
                      "1 while the replication stream is attached to the slot",
                      rs.streaming.load() ? 1 : 0));
  out.push_back(Counter("shapebridge_replication_sessions_total",
                        "Replication sessions started (1 + reconnects)", rs.sessions.load()));
  out.push_back(Counter("shapebridge_replication_transactions_total",
                        "Transactions received from the slot", rs.transactions.load()));
  out.push_back(Counter("shapebridge_replication_decode_errors_total",
                        "Replication messages that did not decode (each ends the session)",
                        rs.decode_errors.load()));
  MetricFamily changes = Family("shapebridge_replication_changes_total",
                                "Row changes routed, by table and operation", MetricType::Counter);
  if (service != nullptr) {
    for (const auto& [key, count] : service->ChangeCounts()) {
      AddValue(changes, static_cast<double>(count), {{"table", key.first}, {"op", key.second}});
    }
    out.push_back(std::move(changes));
  }
  // Caught up when everything the server sent is durable: then there is no lag to speak of.
  const int64_t last_commit = rs.last_commit_unix_micros.load();
  const double lag_s = flushed >= received || last_commit == 0
                           ? 0
                           : std::max<double>(0, (NowUnixMicros() - last_commit) / 1e6);
  out.push_back(Gauge("shapebridge_replication_lag_seconds",
                      "Now minus the commit time of the last transaction received, while some of "
                      "what the server sent is not durable yet; 0 when caught up",
                      lag_s));
  const uint64_t server_wal = server_wal_lsn.load();
  const uint64_t confirmed = slot_confirmed_flush_lsn.load();
  double lag_bytes = received > flushed ? static_cast<double>(received - flushed) : 0;
  if (slot_polled.load() && slot_present.load() && server_wal >= confirmed) {
    lag_bytes = static_cast<double>(server_wal - confirmed);
  }
  out.push_back(Gauge("shapebridge_replication_lag_bytes",
                      "The server's WAL position minus the flush position confirmed to the slot",
                      lag_bytes));
  out.push_back(Gauge("shapebridge_replication_flushed_lsn",
                      "The flush position confirmed to the slot, as a byte position",
                      static_cast<double>(flushed)));
  const uint64_t restart = slot_restart_lsn.load();
  out.push_back(Gauge("shapebridge_replication_slot_retained_wal_bytes",
                      "WAL the server keeps for the slot (its WAL position minus restart_lsn)",
                      slot_present.load() && server_wal >= restart
                          ? static_cast<double>(server_wal - restart)
                          : 0));
  out.push_back(Gauge("shapebridge_replication_slot_present",
                      "1 while the slot exists in pg_replication_slots (0: lost or dropped)",
                      !slot_polled.load() || slot_present.load() ? 1 : 0));
  out.push_back(Gauge("shapebridge_replication_slot_active",
                      "1 while pg_replication_slots shows the slot as active",
                      slot_active.load() ? 1 : 0));
  out.push_back(Counter("shapebridge_replication_slot_poll_errors_total",
                        "Failed reads of pg_replication_slots", slot_poll_errors.load()));
}

std::vector<MetricFamily> Metrics::Impl::Collect() const {
  std::vector<MetricFamily> out = registry->Collect();
  if (replicator != nullptr) CollectReplication(out);

  if (service == nullptr) {
    CollectKafka(out);
    return out;
  }
  const Service& service = *this->service;
  if (service.server_node()) CollectServerNode(out);
  if (kafka) CollectKafka(out);  // a server node that also runs the replicator role
  // Routing.
  const shapes::RouterStats& router = service.router().stats();
  out.push_back(Gauge("shapebridge_shape_definitions", "Shape definitions configured",
                      static_cast<double>(service.definitions())));
  out.push_back(Gauge("shapebridge_shape_instances", "Shape instances registered with the router",
                      router.instances.load()));
  out.push_back(Gauge("shapebridge_shape_instances_unindexed",
                      "Instances without an indexable conjunct, evaluated for every change of "
                      "their table",
                      router.scan_instances.load()));
  out.push_back(Counter("shapebridge_router_changes_total",
                        "Row changes of tables that have instances", router.changes.load()));
  out.push_back(Counter("shapebridge_router_candidates_total",
                        "Instances found through the index (divide by changes: candidates per "
                        "change)",
                        router.candidates.load()));
  out.push_back(Counter("shapebridge_router_scanned_total", "Unindexed instances evaluated",
                        router.scanned.load()));
  out.push_back(Counter("shapebridge_router_entries_total", "Shape log entries made by routing",
                        router.entries.load()));
  out.push_back(Counter("shapebridge_router_predicate_errors_total",
                        "Predicate evaluations that failed (counted as no match)",
                        router.predicate_errors.load()));

  // The shape log.
  const ShapeLogStats& log = service.shape_log().stats();
  out.push_back(
      Gauge("shapebridge_shape_log_instances", "Instance logs live", log.instances.load()));
  out.push_back(Gauge("shapebridge_shape_log_entries", "Entries held by live instance logs",
                      log.entries.load()));
  out.push_back(Gauge("shapebridge_shape_log_bytes",
                      "Bytes of the entries held by live instance logs", log.bytes.load()));
  out.push_back(Gauge("shapebridge_shape_log_durable_lsn",
                      "Every transaction that commits before this position is routed and durable",
                      static_cast<double>(service.shape_log().DurableLsn().value())));
  out.push_back(Counter("shapebridge_shape_log_retired_total",
                        "Instance logs ended (retention, truncate, definition change)",
                        log.retired.load()));

  // Snapshots (a server node's are the replicator's).
  if (const Snapshotter* snapshotter = service.snapshotter()) {
    const SnapshotterStats& snap = snapshotter->stats();
    MetricFamily snapshots = Family("shapebridge_snapshots_total",
                                    "Initial snapshots taken, by result", MetricType::Counter);
    AddValue(snapshots, snap.snapshots.load(), {{"result", "ok"}});
    AddValue(snapshots, snap.failures.load(), {{"result", "failed"}});
    out.push_back(std::move(snapshots));
  }
  out.push_back(Counter("shapebridge_snapshot_rows_total", "Rows read by snapshots",
                        log.snapshot_rows.load()));
  out.push_back(Counter("shapebridge_snapshot_bytes_total",
                        "Bytes of snapshot rows, as journaled and sent",
                        log.snapshot_bytes.load()));
  out.push_back(Counter("shapebridge_snapshot_retries_total",
                        "Snapshots taken again because of a routing race",
                        log.snapshot_retries.load()));

  // Serving.
  const ServerStats& server = service.server().stats();
  out.push_back(Gauge("shapebridge_clients", "Open Sync streams", server.streams.load()));
  out.push_back(Gauge("shapebridge_subscriptions", "Subscriptions of open streams",
                      server.subscriptions.load()));
  out.push_back(Counter("shapebridge_sent_changes_total", "Changes sent to clients",
                        server.changes_sent.load()));
  out.push_back(Counter("shapebridge_sent_messages_total", "Messages sent to clients",
                        server.messages_sent.load()));
  out.push_back(Counter("shapebridge_sent_bytes_total", "Bytes of messages sent to clients",
                        server.bytes_sent.load()));
  out.push_back(Counter("shapebridge_checkpoints_sent_total", "Checkpoints sent to clients",
                        server.checkpoints_sent.load()));
  out.push_back(Counter("shapebridge_must_refetch_total", "MustRefetch messages sent",
                        server.must_refetch_sent.load()));
  MetricFamily disconnects = Family("shapebridge_disconnects_total",
                                    "Streams the server ended, by reason", MetricType::Counter);
  AddValue(disconnects, server.slow_client_disconnects.load(), {{"reason", "slow_client"}});
  AddValue(disconnects, server.auth_failures.load(), {{"reason", "auth"}});
  AddValue(disconnects, server.request_errors.load(), {{"reason", "error"}});
  out.push_back(std::move(disconnects));

  if (const Writer* writer = service.writer()) {
    const WriterStats& w = writer->stats();
    MetricFamily mutations = Family("shapebridge_push_mutations_total",
                                    "Pushed mutations, by result", MetricType::Counter);
    AddValue(mutations, w.applied.load(), {{"result", "applied"}});
    AddValue(mutations, w.superseded.load(), {{"result", "superseded"}});
    AddValue(mutations, w.rejected.load(), {{"result", "rejected"}});
    AddValue(mutations, w.duplicates.load(), {{"result", "duplicate"}});
    out.push_back(std::move(mutations));
    MetricFamily batches =
        Family("shapebridge_push_batches_total", "Push calls that reached Postgres, by result",
               MetricType::Counter);
    AddValue(batches, w.batches.load(), {{"result", "committed"}});
    AddValue(batches, w.failed_batches.load(), {{"result", "failed"}});
    AddValue(batches, w.retried_batches.load(), {{"result", "retried"}});
    out.push_back(std::move(batches));
    MetricFamily detected =
        Family("shapebridge_violations_detected_total",
               "Rule violations recorded by pushes, by rule", MetricType::Counter);
    MetricFamily resolved =
        Family("shapebridge_violations_resolved_total",
               "Rule violations resolved by a later push, by rule", MetricType::Counter);
    MetricFamily open = Family("shapebridge_violations_open",
                               "Open (unresolved, unexpired) violations at the last sweep, by rule",
                               MetricType::Gauge);
    for (const RuleStats& rule : writer->rule_stats()) {
      AddValue(detected, rule.detected, {{"rule", rule.rule}});
      AddValue(resolved, rule.resolved, {{"rule", rule.rule}});
      if (rule.open >= 0) AddValue(open, rule.open, {{"rule", rule.rule}});
    }
    out.push_back(std::move(detected));
    out.push_back(std::move(resolved));
    out.push_back(std::move(open));
    out.push_back(Counter("shapebridge_violations_expired_total",
                          "Violations deleted by the sweeper after their expiry",
                          w.expired_violations.load()));
    out.push_back(Counter("shapebridge_mutation_records_expired_total",
                          "Mutation records deleted by the sweeper after the retention",
                          w.expired_mutations.load()));
    out.push_back(Counter("shapebridge_writeback_sweep_errors_total",
                          "Sweeps of violations and mutation records that failed",
                          w.sweep_errors.load()));
  }
  return out;
}

void Metrics::Impl::CollectKafka(std::vector<MetricFamily>& out) const {
  const KafkaReplicatorStats k = kafka();
  out.push_back(Gauge("shapebridge_replicator_leader",
                      "1 while this process holds the replicator lock (0: standby)",
                      k.leader ? 1 : 0));
  out.push_back(Counter("shapebridge_kafka_records_produced_total",
                        "Records handed to the Kafka producer", k.produced));
  out.push_back(Counter("shapebridge_kafka_records_delivered_total", "Records Kafka acknowledged",
                        k.delivered));
  out.push_back(
      Gauge("shapebridge_kafka_records_in_flight", "Records produced and not yet acknowledged",
            k.produced > k.delivered ? static_cast<double>(k.produced - k.delivered) : 0));
  out.push_back(Counter("shapebridge_kafka_delivery_errors_total",
                        "Records Kafka did not acknowledge (each ends the session; they are "
                        "produced again)",
                        k.delivery_errors));
  out.push_back(Counter("shapebridge_kafka_producers_total",
                        "Producers created (1 + restarts after failures)", k.producers));
  out.push_back(Counter("shapebridge_kafka_checkpoints_total",
                        "Checkpoint rounds written to every partition", k.checkpoints));
  out.push_back(Counter("shapebridge_kafka_flush_seconds_total",
                        "Time spent waiting for delivery reports before the durable position "
                        "moves",
                        k.flush_seconds));
  out.push_back(Gauge("shapebridge_kafka_durable_lsn",
                      "Every transaction that commits before this position is acknowledged by "
                      "Kafka",
                      static_cast<double>(k.durable_lsn)));
  if (!k.shapes) return;
  out.push_back(Gauge("shapebridge_replicator_epoch",
                      "The leader epoch this replicator writes the shape topic in (0: standby)",
                      static_cast<double>(k.epoch)));
  out.push_back(Counter("shapebridge_shape_topic_records_produced_total",
                        "Shape topic records handed to the producer", k.shape_produced));
  out.push_back(Counter("shapebridge_shape_topic_records_delivered_total",
                        "Shape topic records Kafka acknowledged", k.shape_delivered));
  out.push_back(Counter("shapebridge_shape_topic_delivery_errors_total",
                        "Shape topic records Kafka did not acknowledge (the replicator stops)",
                        k.shape_delivery_errors));
  out.push_back(Gauge("shapebridge_shape_topic_durable_lsn",
                      "The last Routed position every partition of the shape topic acknowledged",
                      static_cast<double>(k.shape_durable_lsn)));
  out.push_back(Gauge("shapebridge_replicator_instances",
                      "Instance logs live in the replicator's shape log", k.instances));
  out.push_back(Counter("shapebridge_registry_instances_taken_total",
                        "Instances taken from the registry (each gets a snapshot)",
                        k.instances_taken));
  out.push_back(Counter("shapebridge_registry_read_errors_total",
                        "Failed reads of the instance registry (replicator)", k.registry_errors));
}

void Metrics::Impl::CollectServerNode(std::vector<MetricFamily>& out) const {
  if (const kafka::ShapeTopicStats* t = service->shape_topic_stats()) {
    out.push_back(Counter("shapebridge_shape_topic_records_consumed_total",
                          "Shape topic records read", t->consumed.load()));
    out.push_back(Counter("shapebridge_shape_topic_records_fenced_total",
                          "Shape topic records of an older replicator epoch, ignored",
                          t->fenced.load()));
    out.push_back(Counter("shapebridge_shape_topic_consume_errors_total",
                          "Errors reading the shape topic, and records that did not apply",
                          t->consume_errors.load()));
    out.push_back(Gauge("shapebridge_shape_topic_caught_up",
                        "1 once the shape topic was read up to where it ended at the start",
                        t->caught_up.load() ? 1 : 0));
  }
  const ShapeLogStats& log = service->shape_log().stats();
  out.push_back(Counter("shapebridge_shape_topic_duplicates_total",
                        "Re-delivered shape log entries dropped by their offset",
                        log.remote_duplicates.load()));
  if (const RegistryStats* r = service->registry_stats()) {
    out.push_back(Counter("shapebridge_registry_requests_total",
                          "Instances asked of the replicator through the registry",
                          r->requests.load()));
    out.push_back(Counter("shapebridge_registry_write_errors_total",
                          "Failed writes to the instance registry (server node)",
                          r->errors.load()));
  }
}

void Metrics::Impl::PollSlot(std::unique_ptr<PgConnection>& sql) {
  const ReplicationConfig& rc = replication;
  if (!sql) {
    auto connected = PgConnection::Connect(rc.dsn, PgConnectionKind::kSql, "shapebridge metrics",
                                           rc.connect_timeout);
    if (!connected.ok()) {
      slot_poll_errors.fetch_add(1);
      return;
    }
    sql = *std::move(connected);
    // A hung server must not hold up the poller (and with it Stop()) for long.
    if (!sql->Exec("SET statement_timeout = 5000").ok()) {
      slot_poll_errors.fetch_add(1);
      sql.reset();
      return;
    }
  }
  auto r = sql->ExecParams(
      "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
      "ELSE pg_current_wal_lsn() END::text, "
      "(SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1), "
      "(SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1), "
      "(SELECT active FROM pg_replication_slots WHERE slot_name = $1), "
      "EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
      {rc.slot});
  if (!r.ok()) {
    slot_poll_errors.fetch_add(1);
    sql.reset();
    return;
  }
  auto lsn = [&](int column) -> uint64_t {
    if (r->IsNull(0, column)) return 0;
    absl::StatusOr<Lsn> parsed = Lsn::Parse(r->Get(0, column));
    return parsed.ok() ? parsed->value() : 0;
  };
  server_wal_lsn = lsn(0);
  slot_restart_lsn = lsn(1);
  slot_confirmed_flush_lsn = lsn(2);
  slot_active = !r->IsNull(0, 3) && r->Get(0, 3) == "t";
  slot_present = r->Get(0, 4) == "t";
  slot_polled = true;
}

void Metrics::Impl::PollLoop() {
  std::unique_ptr<PgConnection> sql;
  std::unique_lock lock(mu);
  bool attached = false;  // the slot exists once replication has attached to it
  while (!stopping) {
    attached = attached || (replicator != nullptr && replicator->stats().streaming.load());
    if (attached) {
      lock.unlock();
      PollSlot(sql);
      lock.lock();
    }
    cv.wait_for(lock, attached ? config.slot_poll_interval : std::chrono::milliseconds(100),
                [&] { return stopping; });
  }
}

namespace {

void Respond(mg_connection* conn, int code, const char* reason, const std::string& content_type,
             const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n",
            code, reason, content_type.c_str(), body.size());
  mg_write(conn, body.data(), body.size());
}

class Handler final : public CivetHandler {
 public:
  explicit Handler(std::function<void(mg_connection*)> respond) : respond_(std::move(respond)) {}
  bool handleGet(CivetServer*, mg_connection* conn) override {
    respond_(conn);
    return true;
  }

 private:
  std::function<void(mg_connection*)> respond_;
};

}  // namespace

Metrics::Metrics(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Metrics::~Metrics() { Stop(); }

absl::StatusOr<std::unique_ptr<Metrics>> Metrics::CreateForReplicator(
    const MetricsConfig& config, const ReplicationConfig& replication, const Replicator& replicator,
    std::function<KafkaReplicatorStats()> kafka) {
  auto impl = std::make_unique<Impl>(config);
  impl->replicator = &replicator;
  impl->replication = replication;
  impl->kafka = std::move(kafka);
  return std::unique_ptr<Metrics>(new Metrics(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<Metrics>> Metrics::Create(const MetricsConfig& config,
                                                         Service& service) {
  auto impl = std::make_unique<Impl>(config);
  Impl& m = *impl;
  m.service = &service;
  m.replicator = service.replicator_or_null();
  m.kafka = service.kafka_stats();
  m.replication = service.config().replication;
  m.initial_sync = &prometheus::BuildHistogram()
                        .Name("shapebridge_initial_sync_seconds")
                        .Help("From a Subscribe without an offset to its UpToDate, by shape")
                        .Register(*m.registry);
  m.commit_to_client = &prometheus::BuildHistogram()
                            .Name("shapebridge_commit_to_client_seconds")
                            .Help(
                                "From a transaction's commit on Postgres to its changes going "
                                "out to a client")
                            .Register(*m.registry)
                            .Add({}, kLatencyBuckets);
  m.log_sync = &prometheus::BuildHistogram()
                    .Name("shapebridge_shape_log_sync_seconds")
                    .Help("Writing and syncing the shape log journal (the log's append latency)")
                    .Register(*m.registry)
                    .Add({}, kSyncBuckets);
  m.push = &prometheus::BuildHistogram()
                .Name("shapebridge_push_seconds")
                .Help("Push calls (write-back), from the request to the committed transaction")
                .Register(*m.registry)
                .Add({}, kLatencyBuckets);
  // Every shape's series exists from the start, so dashboards and alerts see zeros, not gaps.
  for (const auto& shape : service.config().shapes)
    m.initial_sync->Add({{"shape", shape.name}}, kLatencyBuckets);
  prometheus::Family<prometheus::Histogram>* initial_sync = m.initial_sync;
  prometheus::Histogram* commit_to_client = m.commit_to_client;
  prometheus::Histogram* push = m.push;
  service.SetServerObservers(ServerObservers{
      .initial_sync =
          [initial_sync](const std::string& shape, double seconds) {
            initial_sync->Add({{"shape", shape}}, kLatencyBuckets).Observe(seconds);
          },
      .commit_to_client =
          [commit_to_client](double seconds) { commit_to_client->Observe(seconds); },
      .push = [push](double seconds) { push->Observe(seconds); },
  });
  prometheus::Histogram* log_sync = m.log_sync;
  service.shape_log().SetSyncObserver([log_sync](double seconds) { log_sync->Observe(seconds); });
  return std::unique_ptr<Metrics>(new Metrics(std::move(impl)));
}

absl::Status Metrics::Start() {
  Impl& m = *impl_;
  if (!m.config.listen.empty()) {
    try {
      m.http = std::make_unique<CivetServer>(
          std::vector<std::string>{"listening_ports", m.config.listen, "num_threads", "2"});
    } catch (const CivetException& e) {
      return absl::FailedPreconditionError(
          absl::StrCat("metrics.listen: cannot serve HTTP on ", m.config.listen, ": ", e.what()));
    }
    const std::vector<int> ports = m.http->getListeningPorts();
    m.port = ports.empty() ? 0 : ports.front();
    Impl* impl = &m;
    m.handlers.push_back(std::make_unique<Handler>([impl](mg_connection* conn) {
      Respond(conn, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
              prometheus::TextSerializer().Serialize(impl->Collect()));
    }));
    m.http->addHandler("/metrics", m.handlers.back().get());
    m.handlers.push_back(std::make_unique<Handler>([impl](mg_connection* conn) {
      if (impl->replicator == nullptr) {
        Respond(conn, 200, "OK", "text/plain", "ok\n");
      } else if (impl->replicator->done()) {
        Respond(
            conn, 503, "Service Unavailable", "text/plain",
            absl::StrCat("replication ended: ", impl->replicator->exit_status().ToString(), "\n"));
      } else {
        Respond(conn, 200, "OK", "text/plain", "ok\n");
      }
    }));
    m.http->addHandler("/healthz", m.handlers.back().get());
    m.handlers.push_back(std::make_unique<Handler>([impl](mg_connection* conn) {
      if (impl->service != nullptr && impl->service->stopping()) {
        Respond(conn, 503, "Service Unavailable", "text/plain", "not ready: stopping\n");
      } else if (impl->service != nullptr && impl->service->server_node()) {
        // Its replicator role, if it runs one, may be a standby: serving is what counts.
        if (impl->service->ready()) {
          Respond(conn, 200, "OK", "text/plain", "ready\n");
        } else {
          Respond(conn, 503, "Service Unavailable", "text/plain",
                  "not ready: reading the shape topic\n");
        }
      } else if (impl->kafka && !impl->kafka().leader) {
        Respond(conn, 200, "OK", "text/plain", "ready (standby)\n");
      } else if (impl->replicator->stats().streaming.load()) {
        Respond(conn, 200, "OK", "text/plain", "ready\n");
      } else {
        Respond(conn, 503, "Service Unavailable", "text/plain",
                "not ready: replication is not attached to the slot\n");
      }
    }));
    m.http->addHandler("/readyz", m.handlers.back().get());
    spdlog::info("[metrics] serving /metrics, /healthz and /readyz on port {}", m.port);
  }
  m.started = true;
  m.poller = std::thread([&m] { m.PollLoop(); });
  return absl::OkStatus();
}

void Metrics::Stop() {
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.mu);
    if (m.stopping) return;
    m.stopping = true;
  }
  m.cv.notify_all();
  if (m.poller.joinable()) m.poller.join();
  if (m.http) m.http->close();
}

int Metrics::port() const { return impl_->port; }

std::string Metrics::Scrape() const {
  return prometheus::TextSerializer().Serialize(impl_->Collect());
}

}  // namespace shapebridge
