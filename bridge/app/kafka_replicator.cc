#include "bridge/app/kafka_replicator.h"

#include <set>
#include <vector>

#include "bridge/common/pg.h"
#include "bridge/kafka/change_sink.h"
#include "bridge/kafka/shape_topic.h"
#include "bridge/log/routing_sink.h"
#include "bridge/log/shape_log.h"
#include "bridge/replication/catalog.h"
#include "bridge/replication/leader.h"
#include "bridge/replication/replicator.h"
#include "bridge/replication/tee_sink.h"
#include "bridge/server/registry.h"
#include "bridge/server/snapshotter.h"
#include "shapes/router.h"
#include "spdlog/spdlog.h"

namespace shapebridge {

KafkaReplicator::~KafkaReplicator() = default;

absl::StatusOr<std::unique_ptr<KafkaReplicator>> KafkaReplicator::Create(
    const Config& config, const DefinitionMap& definitions) {
  std::unique_ptr<KafkaReplicator> r(new KafkaReplicator());
  r->config_ = config;
  auto sql = PgConnection::Connect(config.replication.dsn, PgConnectionKind::kSql, "shapebridge",
                                   config.replication.connect_timeout);
  if (!sql.ok()) return sql.status();
  std::vector<TransactionSink*> sinks;
  if (config.kafka.change_topic) {
    // Each table's primary key, which keys its records: the configured tables, and any other
    // table of the publication.
    std::map<std::string, std::vector<std::string>> keys;
    std::set<std::string> tables(config.replication.tables.begin(),
                                 config.replication.tables.end());
    auto published = (*sql)->ExecParams(
        "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1",
        {config.replication.publication});
    if (!published.ok()) return published.status();
    for (int row = 0; row < published->rows(); ++row) tables.emplace(published->Get(row, 0));
    for (const std::string& table : tables) {
      auto schema = LoadTableSchema(**sql, table);
      if (!schema.ok()) return schema.status();
      if (!schema->primary_key.empty()) keys[table] = schema->primary_key;
    }
    auto sink = kafka::ChangeSink::Create(config.kafka, std::move(keys));
    if (!sink.ok()) return sink.status();
    r->change_sink_ = *std::move(sink);
    spdlog::info("[kafka] topic {}: {} partitions", config.kafka.ChangeTopic(),
                 r->change_sink_->partitions());
    sinks.push_back(r->change_sink_.get());
  }
  // The shape pipeline: routing into a shape log mirrored to the shape topic, snapshots, and
  // the registry through which server nodes ask for instances.
  if (!definitions.empty()) {
    if (absl::Status s = registry::CreateSchema(**sql); !s.ok()) return s;
    auto writer = kafka::ShapeTopicWriter::Create(config.kafka);
    if (!writer.ok()) return writer.status();
    r->shape_writer_ = *std::move(writer);
    spdlog::info("[kafka] topic {}: {} partitions", config.kafka.ShapeTopic(),
                 r->shape_writer_->partitions());
    r->router_ = std::make_unique<shapes::Router>();
    ShapeLogConfig log_config = config.shape_log;
    log_config.dir.clear();  // the journal is the shape topic
    const ShapeLog::DefinitionLookup lookup = LookupIn(definitions);
    auto opened = ShapeLog::Open(log_config, *r->router_, lookup);
    if (!opened.ok()) return opened.status();
    r->shape_log_ = *std::move(opened);
    kafka::ShapeTopicWriter* w = r->shape_writer_.get();
    r->shape_log_->SetMirror(
        [w](std::string_view frames, Lsn routed) { return w->Publish(frames, routed); });
    r->routing_ = std::make_unique<RoutingSink>(*r->router_, *r->shape_log_);
    r->snapshotter_ = std::make_unique<Snapshotter>(config.snapshot, *r->shape_log_);
    r->registrar_ = std::make_unique<InstanceRegistrar>(
        config.replication.dsn, *r->shape_log_, *r->snapshotter_, lookup,
        registry::Lease(config.shape_log.idle_retire));
    sinks.push_back(r->routing_.get());
  }
  if (sinks.empty()) {
    return absl::InvalidArgumentError(
        "replicate has nothing to publish: kafka.change_topic is false and no shapes are "
        "configured");
  }
  r->tee_ = std::make_unique<TeeSink>(std::move(sinks));
  r->replicator_ = std::make_unique<Replicator>(config.replication, *r->tee_);
  return r;
}

absl::Status KafkaReplicator::Run(const std::function<bool(std::chrono::milliseconds)>& stop) {
  const std::string& slot = config_.replication.slot;
  LeaderLock lock(config_.replication.dsn, slot);
  for (bool standby = false;;) {
    auto acquired = lock.TryAcquire();
    if (!acquired.ok()) {
      // Postgres away for a moment: a standby keeps trying.
      spdlog::warn("[replication slot={}] cannot try the replicator lock: {}", slot,
                   std::string(acquired.status().message()));
    } else if (*acquired) {
      break;
    } else if (!standby) {
      standby = true;
      spdlog::info("[replication slot={}] standby: another replicator holds the slot's lock", slot);
    }
    if (stop(std::chrono::milliseconds(500))) return absl::OkStatus();
  }
  if (shape_writer_) {
    // A new epoch: server nodes end the instances of the last leader (whose shape log died with
    // it) and ignore anything it still sends.
    auto sql = PgConnection::Connect(config_.replication.dsn, PgConnectionKind::kSql, "shapebridge",
                                     config_.replication.connect_timeout);
    if (!sql.ok()) return sql.status();
    auto epoch = registry::NewEpoch(**sql);
    if (!epoch.ok()) return epoch.status();
    auto offsets = shape_writer_->BeginEpoch(*epoch);
    if (!offsets.ok()) return offsets.status();
    if (absl::Status s = registry::RecordEpochStart(**sql, *epoch, *offsets); !s.ok()) return s;
    spdlog::info("[kafka] shape topic {}: epoch {}", config_.kafka.ShapeTopic(), *epoch);
    snapshotter_->Start();
    registrar_->Start();
  }
  leader_ = true;
  spdlog::info("[replication slot={}] leader: streaming to Kafka at {}", slot,
               config_.kafka.bootstrap_servers);
  replicator_->Start();
  absl::Status lost;
  auto next_check = std::chrono::steady_clock::now();
  while (!replicator_->done()) {
    if (stop(std::chrono::milliseconds(200))) {
      spdlog::info("[replication slot={}] stop requested", slot);
      break;
    }
    if (std::chrono::steady_clock::now() < next_check) continue;
    next_check += std::chrono::seconds(1);
    lost = lock.Check();
    if (!lost.ok()) break;
    if (shape_log_) {
      lost = shape_log_->mirror_status();
      if (!lost.ok()) break;
      if (absl::Status s = shape_log_->RetireIdle(std::chrono::steady_clock::now()); !s.ok()) {
        spdlog::warn("[shape_log] retention: {}", std::string(s.message()));
      }
    }
  }
  if (registrar_) registrar_->Stop();
  if (snapshotter_) snapshotter_->Stop();
  replicator_->Stop();
  if (shape_log_ && lost.ok()) lost = shape_log_->Sync();
  leader_ = false;
  if (!lost.ok()) return lost;
  if (absl::Status s = replicator_->exit_status(); !s.ok()) return s;
  spdlog::info("[kafka] stopped; durable through {}", tee_->DurableLsn().ToString());
  return absl::OkStatus();
}

KafkaReplicatorStats KafkaReplicator::Stats() const {
  KafkaReplicatorStats k{.leader = leader_.load()};
  if (change_sink_) {
    const kafka::ChangeSinkStats& ks = change_sink_->stats();
    k.produced = ks.produced.load();
    k.delivered = ks.delivered.load();
    k.delivery_errors = ks.delivery_errors.load();
    k.producers = ks.producers.load();
    k.checkpoints = ks.checkpoints.load();
    k.flush_seconds = ks.flush_micros.load() / 1e6;
    k.durable_lsn = ks.durable_lsn.load();
  }
  if (shape_writer_) {
    const kafka::ShapeTopicStats& ss = shape_writer_->stats();
    k.shapes = true;
    k.epoch = ss.epoch.load();
    k.shape_produced = ss.produced.load();
    k.shape_delivered = ss.delivered.load();
    k.shape_delivery_errors = ss.delivery_errors.load();
    k.shape_durable_lsn = ss.durable_lsn.load();
    k.instances = shape_log_->stats().instances.load();
    k.instances_taken = registrar_->stats().taken.load();
    k.registry_errors = registrar_->stats().errors.load();
  }
  return k;
}

std::map<std::pair<std::string, std::string>, uint64_t> KafkaReplicator::ChangeCounts() const {
  if (!routing_) return {};
  return routing_->ChangeCounts();
}

}  // namespace shapebridge
