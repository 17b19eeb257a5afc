#include "bridge/app/service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "bridge/app/kafka_replicator.h"
#include "bridge/common/pg.h"
#include "bridge/kafka/shape_topic.h"
#include "bridge/log/routing_sink.h"
#include "bridge/replication/replicator.h"
#include "bridge/server/registry.h"
#include "bridge/server/snapshotter.h"
#include "bridge/writeback/writer.h"
#include "shapes/router.h"
#include "spdlog/spdlog.h"

namespace shapebridge {
namespace {

// How long a Kafka server node's subscription waits for the replicator to start its instance.
constexpr auto kPlaceholderTimeout = std::chrono::seconds(120);

}  // namespace

absl::StatusOr<std::unique_ptr<Service>> Service::Create(const Config& config) {
  if (config.jwt.keys.empty()) {
    return absl::InvalidArgumentError(
        "serve needs auth.jwt: clients authenticate with a JWT (see README, Configuration)");
  }
  if (config.shapes.empty()) {
    return absl::InvalidArgumentError("serve needs at least one shape in `shapes`");
  }
  std::unique_ptr<Service> s(new Service());
  s->config_ = config;
  auto sql = PgConnection::Connect(config.replication.dsn, PgConnectionKind::kSql, "shapebridge",
                                   config.replication.connect_timeout);
  if (!sql.ok()) return sql.status();
  // The built-in shapes of write-back read its tables.
  if (std::any_of(config.shapes.begin(), config.shapes.end(),
                  [](const auto& spec) { return spec.writable; })) {
    if (absl::Status st = Writer::CreateSchema(**sql); !st.ok()) return st;
  }
  auto compiled = CompileShapes(config, **sql);
  if (!compiled.ok()) return compiled.status();
  DefinitionMap definitions;
  for (auto& d : *compiled) definitions.emplace(d->name, d);
  spdlog::info("[shapes] {} shape definitions checked against the catalog", definitions.size());

  auto verifier = auth::JwtVerifier::Create(config.jwt);
  if (!verifier.ok()) return verifier.status();
  s->verifier_ = *std::move(verifier);
  s->router_ = std::make_unique<shapes::Router>();
  s->definitions_ = definitions.size();
  SnapshotScheduler* snapshots = nullptr;
  if (config.log_backend == "kafka") {
    if (absl::Status st = s->CreateServerNode(config, **sql, definitions); !st.ok()) return st;
    snapshots = s->requester_.get();
  } else {
    auto log = ShapeLog::Open(config.shape_log, *s->router_, LookupIn(definitions));
    if (!log.ok()) return log.status();
    s->log_ = *std::move(log);
    spdlog::info("[shape_log dir={}] {} instances recovered, durable through {}",
                 config.shape_log.dir, s->log_->stats().instances.load(),
                 s->log_->DurableLsn().ToString());
    s->sink_ = std::make_unique<RoutingSink>(*s->router_, *s->log_);
    s->replicator_ = std::make_unique<Replicator>(config.replication, *s->sink_);
    s->snapshotter_ = std::make_unique<Snapshotter>(config.snapshot, *s->log_);
    snapshots = s->snapshotter_.get();
  }
  std::vector<std::shared_ptr<const shapes::ShapeDefinition>> all;
  for (const auto& [name, def] : definitions) all.push_back(def);
  auto writer = std::make_unique<Writer>(config.replication.dsn, std::move(all), config.writeback);
  if (writer->enabled()) {
    if (absl::Status st = writer->Prepare(); !st.ok()) return st;
    s->writer_ = std::move(writer);
  }
  s->server_ = std::make_unique<SyncServer>(config.server, std::move(definitions), *s->log_,
                                            *snapshots, *s->verifier_);
  s->server_->SetWriter(s->writer_.get());
  auto metrics = Metrics::Create(config.metrics, *s);
  if (!metrics.ok()) return metrics.status();
  s->metrics_ = *std::move(metrics);
  return s;
}

absl::Status Service::CreateServerNode(const Config& config, PgConnection& sql,
                                       const DefinitionMap& definitions) {
  if (absl::Status st = registry::CreateSchema(sql); !st.ok()) return st;
  auto offsets = registry::LatestEpochStart(sql);
  if (!offsets.ok()) return offsets.status();
  reader_start_ = *std::move(offsets);
  auto reader = kafka::ShapeTopicReader::Create(config.kafka);
  if (!reader.ok()) return reader.status();
  reader_ = *std::move(reader);
  log_ = ShapeLog::CreateFollower(config.shape_log, *router_, LookupIn(definitions),
                                  reader_->partitions());
  if (config.kafka.replicate) {
    auto replicator = KafkaReplicator::Create(config, definitions);
    if (!replicator.ok()) return replicator.status();
    kafka_replicator_ = *std::move(replicator);
  }
  requester_ = std::make_unique<InstanceRequester>(config.replication.dsn, *log_,
                                                   registry::Lease(config.shape_log.idle_retire));
  spdlog::info("[kafka] server node: {} partitions of {}", reader_->partitions(),
               config.kafka.ShapeTopic());
  return absl::OkStatus();
}

const kafka::ShapeTopicStats* Service::shape_topic_stats() const {
  return reader_ ? &reader_->stats() : nullptr;
}

const RegistryStats* Service::registry_stats() const {
  return requester_ ? &requester_->stats() : nullptr;
}

bool Service::ready() const { return !reader_ || reader_->stats().caught_up.load(); }

const Replicator* Service::replicator_or_null() const {
  if (kafka_replicator_) return &kafka_replicator_->replicator();
  return replicator_.get();
}

std::map<std::pair<std::string, std::string>, uint64_t> Service::ChangeCounts() const {
  if (kafka_replicator_) return kafka_replicator_->ChangeCounts();
  if (sink_) return sink_->ChangeCounts();
  return {};
}

std::function<KafkaReplicatorStats()> Service::kafka_stats() const {
  if (!kafka_replicator_) return nullptr;
  const KafkaReplicator* r = kafka_replicator_.get();
  return [r] { return r->Stats(); };
}

Service::~Service() { Stop(); }

absl::Status Service::Start() {
  if (absl::Status st = metrics_->Start(); !st.ok()) return st;
  if (reader_) {
    // gRPC health says NOT_SERVING until the node has read the shape topic (as /readyz).
    if (absl::Status st = server_->Start(/*serving=*/false); !st.ok()) return st;
    spdlog::info("[server] serving on port {}", server_->port());
    SyncServer* server = server_.get();
    if (absl::Status st =
            reader_->Start(*log_, reader_start_, [server] { server->SetServing(true); });
        !st.ok()) {
      return st;
    }
    requester_->Start();
    if (kafka_replicator_) {
      kafka_thread_ = std::thread([this] {
        absl::Status status = kafka_replicator_->Run([this](std::chrono::milliseconds timeout) {
          std::unique_lock lock(kafka_mu_);
          return kafka_cv_.wait_for(lock, timeout, [this] { return kafka_stop_; });
        });
        if (!status.ok()) {
          spdlog::error("[kafka] the replicator role ended: {}", std::string(status.message()));
        }
        kafka_status_ = status;
        kafka_done_ = true;
      });
    }
    return absl::OkStatus();
  }
  replicator_->Start();
  snapshotter_->Start();
  if (absl::Status st = server_->Start(); !st.ok()) return st;
  spdlog::info("[server] serving on port {}", server_->port());
  return absl::OkStatus();
}

void Service::Stop() {
  if (stopped_ || !server_) return;
  stopped_ = true;
  stopping_ = true;
  server_->Shutdown();
  metrics_->Stop();
  if (reader_) {
    if (kafka_thread_.joinable()) {
      {
        std::lock_guard lock(kafka_mu_);
        kafka_stop_ = true;
      }
      kafka_cv_.notify_all();
      kafka_thread_.join();
    }
    requester_->Stop();
    reader_->Stop();
    return;
  }
  snapshotter_->Stop();
  replicator_->Stop();
  if (absl::Status st = log_->Sync(); !st.ok()) {
    spdlog::error("[shape_log] last sync failed: {}", std::string(st.message()));
  }
}

void Service::Tick() {
  if (writer_) writer_->Sweep(std::chrono::steady_clock::now());
  if (reader_) log_->ExpirePlaceholders(std::chrono::steady_clock::now(), kPlaceholderTimeout);
  if (absl::Status st = log_->RetireIdle(std::chrono::steady_clock::now()); !st.ok()) {
    spdlog::warn("[shape_log] retention: {}", std::string(st.message()));
  }
}

int Service::port() const { return server_->port(); }
int Service::metrics_port() const { return metrics_->port(); }

void Service::SetServerObservers(ServerObservers observers) {
  server_->SetObservers(std::move(observers));
}
bool Service::done() const {
  if (kafka_replicator_) return kafka_done_.load();
  return replicator_ && replicator_->done();
}
absl::Status Service::exit_status() const {
  if (kafka_replicator_) return kafka_done_.load() ? kafka_status_ : absl::OkStatus();
  return replicator_ ? replicator_->exit_status() : absl::OkStatus();
}

}  // namespace shapebridge
