#include "bridge/app/service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "bridge/common/pg.h"
#include "bridge/log/routing_sink.h"
#include "bridge/replication/replicator.h"
#include "bridge/writeback/writer.h"
#include "shapes/router.h"
#include "spdlog/spdlog.h"

namespace shapebridge {

absl::StatusOr<std::unique_ptr<Service>> Service::Create(const Config& config) {
  if (config.jwt.keys.empty()) {
    return absl::InvalidArgumentError(
        "serve needs auth.jwt: clients authenticate with a JWT (see README, Configuration)");
  }
  if (config.shapes.empty()) {
    return absl::InvalidArgumentError("serve needs at least one shape in `shapes`");
  }
  if (config.log_backend == "kafka") {
    return absl::UnimplementedError(
        "serve with log.backend: kafka (server nodes that read shape logs from Kafka) is not "
        "available yet: `shapebridge replicate` publishes the change topic to Kafka, and serve "
        "runs with log.backend: embedded");
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
  auto log = ShapeLog::Open(config.shape_log, *s->router_, [&definitions](const std::string& name) {
    auto it = definitions.find(name);
    return it == definitions.end() ? nullptr : it->second;
  });
  if (!log.ok()) return log.status();
  s->log_ = *std::move(log);
  spdlog::info("[shape_log dir={}] {} instances recovered, durable through {}",
               config.shape_log.dir, s->log_->stats().instances.load(),
               s->log_->DurableLsn().ToString());
  s->sink_ = std::make_unique<RoutingSink>(*s->router_, *s->log_);
  s->replicator_ = std::make_unique<Replicator>(config.replication, *s->sink_);
  s->snapshotter_ = std::make_unique<Snapshotter>(config.snapshot, *s->log_);
  s->definitions_ = definitions.size();
  std::vector<std::shared_ptr<const shapes::ShapeDefinition>> all;
  for (const auto& [name, def] : definitions) all.push_back(def);
  auto writer = std::make_unique<Writer>(config.replication.dsn, std::move(all), config.writeback);
  if (writer->enabled()) {
    if (absl::Status st = writer->Prepare(); !st.ok()) return st;
    s->writer_ = std::move(writer);
  }
  s->server_ = std::make_unique<SyncServer>(config.server, std::move(definitions), *s->log_,
                                            *s->snapshotter_, *s->verifier_);
  s->server_->SetWriter(s->writer_.get());
  auto metrics = Metrics::Create(config.metrics, *s);
  if (!metrics.ok()) return metrics.status();
  s->metrics_ = *std::move(metrics);
  return s;
}

Service::~Service() { Stop(); }

absl::Status Service::Start() {
  if (absl::Status st = metrics_->Start(); !st.ok()) return st;
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
  snapshotter_->Stop();
  replicator_->Stop();
  if (absl::Status st = log_->Sync(); !st.ok()) {
    spdlog::error("[shape_log] last sync failed: {}", std::string(st.message()));
  }
}

void Service::Tick() {
  if (writer_) writer_->Sweep(std::chrono::steady_clock::now());
  if (absl::Status st = log_->RetireIdle(std::chrono::steady_clock::now()); !st.ok()) {
    spdlog::warn("[shape_log] retention: {}", std::string(st.message()));
  }
}

int Service::port() const { return server_->port(); }
int Service::metrics_port() const { return metrics_->port(); }

void Service::SetServerObservers(ServerObservers observers) {
  server_->SetObservers(std::move(observers));
}
bool Service::done() const { return replicator_->done(); }
absl::Status Service::exit_status() const { return replicator_->exit_status(); }

}  // namespace shapebridge
