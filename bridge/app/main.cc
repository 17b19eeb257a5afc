// shapebridge: the composition root. Reads the config, builds the components, wires them, and
// runs one command.

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bridge/app/config.h"
#include "bridge/app/json_log.h"
#include "bridge/app/metrics.h"
#include "bridge/app/service.h"
#include "bridge/auth/jwt.h"
#include "bridge/common/pg.h"
#include "bridge/kafka/change_sink.h"
#include "bridge/kafka/dev_cluster.h"
#include "bridge/kafka/shape_topic.h"
#include "bridge/log/embedded_log.h"
#include "bridge/log/routing_sink.h"
#include "bridge/replication/catalog.h"
#include "bridge/replication/leader.h"
#include "bridge/replication/replicator.h"
#include "bridge/replication/tee_sink.h"
#include "bridge/server/registry.h"
#include "bridge/server/snapshotter.h"
#include "bridge/writeback/writer.h"
#include "nlohmann/json.hpp"
#include "shapes/router.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace shapebridge {
namespace {

int Fail(const absl::Status& status) {
  std::cerr << "shapebridge: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

// Blocks SIGINT and SIGTERM in every thread; the main thread then waits for them.
sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Waits up to `timeout` for a stop signal; true when one arrived.
bool WaitForStopSignal(const sigset_t& set, std::chrono::milliseconds timeout) {
  timespec ts{.tv_sec = static_cast<time_t>(timeout.count() / 1000),
              .tv_nsec = static_cast<long>((timeout.count() % 1000) * 1'000'000)};
  return sigtimedwait(&set, nullptr, &ts) > 0;
}

// The replicator role with the Kafka backend: one process at a time (the holder of the leader
// lock) streams the slot into the change topic and, when shapes are configured, routes it into
// a shape log whose journal is the shape topic; the others wait as standbys.
int RunReplicateToKafka(const Config& config, const DefinitionMap& definitions,
                        const sigset_t& signals) {
  const std::string& slot = config.replication.slot;
  auto sql = PgConnection::Connect(config.replication.dsn, PgConnectionKind::kSql, "shapebridge",
                                   config.replication.connect_timeout);
  if (!sql.ok()) return Fail(sql.status());
  std::vector<TransactionSink*> sinks;
  std::unique_ptr<kafka::ChangeSink> change_sink;
  if (config.kafka.change_topic) {
    // Each table's primary key, which keys its records: the configured tables, and any other
    // table of the publication.
    std::map<std::string, std::vector<std::string>> keys;
    std::set<std::string> tables(config.replication.tables.begin(),
                                 config.replication.tables.end());
    auto published = (*sql)->ExecParams(
        "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1",
        {config.replication.publication});
    if (!published.ok()) return Fail(published.status());
    for (int r = 0; r < published->rows(); ++r) tables.emplace(published->Get(r, 0));
    for (const std::string& table : tables) {
      auto schema = LoadTableSchema(**sql, table);
      if (!schema.ok()) return Fail(schema.status());
      if (!schema->primary_key.empty()) keys[table] = schema->primary_key;
    }
    auto sink = kafka::ChangeSink::Create(config.kafka, std::move(keys));
    if (!sink.ok()) return Fail(sink.status());
    change_sink = *std::move(sink);
    spdlog::info("[kafka] topic {}: {} partitions", config.kafka.ChangeTopic(),
                 change_sink->partitions());
    sinks.push_back(change_sink.get());
  }
  // The shape pipeline: routing into a shape log mirrored to the shape topic, snapshots, and
  // the registry through which server nodes ask for instances.
  std::unique_ptr<kafka::ShapeTopicWriter> shape_writer;
  std::unique_ptr<shapes::Router> router;
  std::unique_ptr<ShapeLog> shape_log;
  std::unique_ptr<RoutingSink> routing;
  std::unique_ptr<Snapshotter> snapshotter;
  std::unique_ptr<InstanceRegistrar> registrar;
  if (!definitions.empty()) {
    if (absl::Status s = registry::CreateSchema(**sql); !s.ok()) return Fail(s);
    auto writer = kafka::ShapeTopicWriter::Create(config.kafka);
    if (!writer.ok()) return Fail(writer.status());
    shape_writer = *std::move(writer);
    spdlog::info("[kafka] topic {}: {} partitions", config.kafka.ShapeTopic(),
                 shape_writer->partitions());
    router = std::make_unique<shapes::Router>();
    ShapeLogConfig log_config = config.shape_log;
    log_config.dir.clear();  // the journal is the shape topic
    auto lookup = [&definitions](const std::string& name) {
      auto it = definitions.find(name);
      return it == definitions.end() ? nullptr : it->second;
    };
    auto opened = ShapeLog::Open(log_config, *router, lookup);
    if (!opened.ok()) return Fail(opened.status());
    shape_log = *std::move(opened);
    kafka::ShapeTopicWriter* w = shape_writer.get();
    shape_log->SetMirror(
        [w](std::string_view frames, Lsn routed) { return w->Publish(frames, routed); });
    routing = std::make_unique<RoutingSink>(*router, *shape_log);
    snapshotter = std::make_unique<Snapshotter>(config.snapshot, *shape_log);
    registrar =
        std::make_unique<InstanceRegistrar>(config.replication.dsn, *shape_log, *snapshotter,
                                            lookup, registry::Lease(config.shape_log.idle_retire));
    sinks.push_back(routing.get());
  }
  if (sinks.empty()) {
    return Fail(absl::InvalidArgumentError(
        "replicate has nothing to publish: kafka.change_topic is false and no shapes are "
        "configured"));
  }
  TeeSink tee(sinks);
  Replicator replicator(config.replication, tee);
  std::atomic<bool> leader{false};
  const kafka::ChangeSinkStats* ks = change_sink ? &change_sink->stats() : nullptr;
  const kafka::ShapeTopicStats* ss = shape_writer ? &shape_writer->stats() : nullptr;
  const ShapeLog* log_ptr = shape_log.get();
  const InstanceRegistrar* reg = registrar.get();
  auto metrics = Metrics::CreateForReplicator(
      config.metrics, config.replication, replicator, [&leader, ks, ss, log_ptr, reg] {
        KafkaReplicatorStats k{.leader = leader.load()};
        if (ks != nullptr) {
          k.produced = ks->produced.load();
          k.delivered = ks->delivered.load();
          k.delivery_errors = ks->delivery_errors.load();
          k.producers = ks->producers.load();
          k.checkpoints = ks->checkpoints.load();
          k.flush_seconds = ks->flush_micros.load() / 1e6;
          k.durable_lsn = ks->durable_lsn.load();
        }
        if (ss != nullptr) {
          k.shapes = true;
          k.epoch = ss->epoch.load();
          k.shape_produced = ss->produced.load();
          k.shape_delivered = ss->delivered.load();
          k.shape_delivery_errors = ss->delivery_errors.load();
          k.shape_durable_lsn = ss->durable_lsn.load();
          k.instances = log_ptr->stats().instances.load();
          k.instances_taken = reg->stats().taken.load();
          k.registry_errors = reg->stats().errors.load();
        }
        return k;
      });
  if (!metrics.ok()) return Fail(metrics.status());
  if (absl::Status s = (*metrics)->Start(); !s.ok()) return Fail(s);
  if ((*metrics)->port() != 0) {
    std::cout << "shapebridge: metrics on port " << (*metrics)->port() << std::endl;
  }
  auto lock = std::make_unique<LeaderLock>(config.replication.dsn, slot);
  for (bool standby = false;;) {
    auto acquired = lock->TryAcquire();
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
    if (WaitForStopSignal(signals, std::chrono::milliseconds(500))) return 0;
  }
  if (shape_writer) {
    // A new epoch: server nodes end the instances of the last leader (whose shape log died with
    // it) and ignore anything it still sends.
    auto epoch = registry::NewEpoch(**sql);
    if (!epoch.ok()) return Fail(epoch.status());
    auto offsets = shape_writer->BeginEpoch(*epoch);
    if (!offsets.ok()) return Fail(offsets.status());
    if (absl::Status s = registry::RecordEpochStart(**sql, *epoch, *offsets); !s.ok()) {
      return Fail(s);
    }
    spdlog::info("[kafka] shape topic {}: epoch {}", config.kafka.ShapeTopic(), *epoch);
    snapshotter->Start();
    registrar->Start();
  }
  sql->reset();
  leader = true;
  spdlog::info("[replication slot={}] leader: streaming to Kafka at {}", slot,
               config.kafka.bootstrap_servers);
  replicator.Start();
  absl::Status lost;
  auto next_check = std::chrono::steady_clock::now();
  while (!replicator.done()) {
    if (WaitForStopSignal(signals, std::chrono::milliseconds(200))) {
      spdlog::info("[replication slot={}] stop requested", slot);
      break;
    }
    if (std::chrono::steady_clock::now() >= next_check) {
      next_check += std::chrono::seconds(1);
      lost = lock->Check();
      if (!lost.ok()) break;
      if (shape_log) {
        lost = shape_log->mirror_status();
        if (!lost.ok()) break;
        if (absl::Status s = shape_log->RetireIdle(std::chrono::steady_clock::now()); !s.ok()) {
          spdlog::warn("[shape_log] retention: {}", std::string(s.message()));
        }
      }
    }
  }
  if (registrar) registrar->Stop();
  if (snapshotter) snapshotter->Stop();
  replicator.Stop();
  if (shape_log && lost.ok()) {
    if (absl::Status s = shape_log->Sync(); !s.ok()) lost = s;
  }
  (*metrics)->Stop();
  if (!lost.ok()) return Fail(lost);
  if (absl::Status s = replicator.exit_status(); !s.ok()) return Fail(s);
  spdlog::info("[kafka] stopped; durable through {}", tee.DurableLsn().ToString());
  return 0;
}

int RunReplicate(const std::string& config_path) {
  const sigset_t signals = BlockStopSignals();
  auto config = LoadConfig(config_path);
  if (!config.ok()) return Fail(config.status());
  DefinitionMap definitions;
  if (!config->shapes.empty()) {
    auto sql = PgConnection::Connect(config->replication.dsn, PgConnectionKind::kSql, "shapebridge",
                                     config->replication.connect_timeout);
    if (!sql.ok()) return Fail(sql.status());
    // The built-in shapes of write-back read its tables.
    if (std::any_of(config->shapes.begin(), config->shapes.end(),
                    [](const auto& spec) { return spec.writable; })) {
      if (absl::Status s = Writer::CreateSchema(**sql); !s.ok()) return Fail(s);
    }
    auto shapes = CompileShapes(*config, **sql);
    if (!shapes.ok()) return Fail(shapes.status());
    spdlog::info("[shapes] {} shape definitions checked against the catalog", shapes->size());
    for (auto& d : *shapes) definitions.emplace(d->name, d);
  }
  if (config->log_backend == "kafka") return RunReplicateToKafka(*config, definitions, signals);
  auto log = EmbeddedLog::Open(config->log);
  if (!log.ok()) return Fail(log.status());
  spdlog::info("[log dir={}] durable through {}", config->log.dir, (*log)->DurableLsn().ToString());
  Replicator replicator(config->replication, **log);
  replicator.Start();
  while (!replicator.done()) {
    if (WaitForStopSignal(signals, std::chrono::milliseconds(200))) {
      spdlog::info("[replication slot={}] stop requested", config->replication.slot);
      break;
    }
  }
  replicator.Stop();
  if (absl::Status s = replicator.exit_status(); !s.ok()) return Fail(s);
  spdlog::info("[log dir={}] stopped; durable through {}", config->log.dir,
               (*log)->DurableLsn().ToString());
  return 0;
}

int RunServe(const std::string& config_path) {
  const sigset_t signals = BlockStopSignals();
  auto config = LoadConfig(config_path);
  if (!config.ok()) return Fail(config.status());
  auto service = Service::Create(*config);
  if (!service.ok()) return Fail(service.status());
  if (absl::Status s = (*service)->Start(); !s.ok()) return Fail(s);
  std::cout << "shapebridge: serving on port " << (*service)->port() << std::endl;
  if ((*service)->metrics_port() != 0) {
    std::cout << "shapebridge: metrics on port " << (*service)->metrics_port() << std::endl;
  }
  while (!(*service)->done()) {
    if (WaitForStopSignal(signals, std::chrono::milliseconds(1000))) {
      spdlog::info("[server] stop requested: draining streams");
      break;
    }
    (*service)->Tick();
  }
  (*service)->Stop();
  if (absl::Status s = (*service)->exit_status(); !s.ok()) return Fail(s);
  spdlog::info("[server] stopped");
  return 0;
}

// Signs a token with the config's first key of `algorithm` (development and tests).
int RunToken(const std::string& config_path, const std::string& claims_text, int ttl_s) {
  auto config = LoadConfig(config_path);
  if (!config.ok()) return Fail(config.status());
  nlohmann::json claims = nlohmann::json::parse(claims_text, nullptr, false);
  if (!claims.is_object()) {
    return Fail(absl::InvalidArgumentError("--claims must be a JSON object"));
  }
  if (!claims.contains("exp")) {
    claims["exp"] = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count() +
                    ttl_s;
  }
  if (!config->jwt.issuer.empty() && !claims.contains("iss")) claims["iss"] = config->jwt.issuer;
  if (!config->jwt.audience.empty() && !claims.contains("aud")) {
    claims["aud"] = config->jwt.audience;
  }
  for (const auth::JwtKey& key : config->jwt.keys) {
    if (key.algorithm != "HS256") continue;
    auto token = auth::SignToken(claims, "HS256", key.secret, key.key_id);
    if (!token.ok()) return Fail(token.status());
    std::cout << *token << "\n";
    return 0;
  }
  return Fail(absl::InvalidArgumentError(
      "token signs with an HS256 key of auth.jwt.keys, and the config has none"));
}

nlohmann::json ValueJson(const Value& v) {
  switch (v.kind()) {
    case ValueKind::kNull:
      return nullptr;
    case ValueKind::kUnchanged:
      return {{"unchanged", true}};
    case ValueKind::kBool:
      return v.bool_value();
    case ValueKind::kInt:
      return v.int_value();
    case ValueKind::kFloat:
      return v.float_value();
    default:
      return v.DebugString();
  }
}

std::string ChangeLine(const EmbeddedLogReader& reader, const RowChange& change, bool json) {
  const RelationInfo* relation = reader.relation(change.relation);
  const std::string table =
      relation ? relation->QualifiedName() : absl::StrCat("relation#", change.relation.value());
  const char* op = change.op == ChangeOp::kInsert   ? "insert"
                   : change.op == ChangeOp::kUpdate ? "update"
                                                    : "delete";
  auto column_name = [&](size_t i) {
    return relation && i < relation->columns.size() ? relation->columns[i].name
                                                    : absl::StrCat("$", i + 1);
  };
  if (json) {
    nlohmann::json j{{"op", op}, {"table", table}};
    auto row = [&](const std::vector<Value>& values) {
      nlohmann::json r = nlohmann::json::object();
      for (size_t i = 0; i < values.size(); ++i) r[column_name(i)] = ValueJson(values[i]);
      return r;
    };
    if (!change.old_values.empty()) j["old"] = row(change.old_values);
    if (!change.new_values.empty()) j["new"] = row(change.new_values);
    return j.dump();
  }
  std::string line = absl::StrCat("  ", op, " ", table);
  const auto& values = change.op == ChangeOp::kDelete ? change.old_values : change.new_values;
  for (size_t i = 0; i < values.size(); ++i) {
    if (change.op == ChangeOp::kDelete && change.old_is_key_only && relation &&
        !relation->columns[i].key) {
      continue;
    }
    absl::StrAppend(&line, " ", column_name(i), "=", values[i].DebugString());
  }
  return line;
}

int RunLogTail(const std::string& dir, const std::string& from_text, bool follow, bool json) {
  const sigset_t signals = BlockStopSignals();
  Lsn from;
  if (!from_text.empty()) {
    auto parsed = Lsn::Parse(from_text);
    if (!parsed.ok()) return Fail(parsed.status());
    from = *parsed;
  }
  auto reader = EmbeddedLogReader::Open(dir, from);
  if (!reader.ok()) return Fail(reader.status());
  while (true) {
    auto entry = (*reader)->Next();
    if (!entry.ok()) return Fail(entry.status());
    if (!entry->has_value()) {
      std::cout.flush();
      if (!follow || WaitForStopSignal(signals, std::chrono::milliseconds(100))) return 0;
      continue;
    }
    if (auto* reset = std::get_if<LoggedReset>(&**entry)) {
      if (json) {
        std::cout << nlohmann::json{{"reset", reset->position.ToString()},
                                    {"reason", reset->reason}}
                         .dump()
                  << "\n";
      } else {
        std::cout << "reset at " << reset->position << ": " << reset->reason << "\n";
      }
      continue;
    }
    const auto& txn = std::get<LoggedTransaction>(**entry);
    if (json) {
      nlohmann::json changes = nlohmann::json::array();
      for (const auto& c : txn.changes) {
        if (auto* row = std::get_if<RowChange>(&c)) {
          changes.push_back(nlohmann::json::parse(ChangeLine(**reader, *row, true)));
        } else {
          nlohmann::json tables = nlohmann::json::array();
          for (RelationId id : std::get<TruncateChange>(c).relations) {
            const RelationInfo* r = (*reader)->relation(id);
            tables.push_back(r ? r->QualifiedName() : absl::StrCat("relation#", id.value()));
          }
          changes.push_back({{"op", "truncate"}, {"tables", tables}});
        }
      }
      std::cout << nlohmann::json{{"xid", txn.begin.xid.value()},
                                  {"commit_lsn", txn.commit.commit_lsn.ToString()},
                                  {"end_lsn", txn.commit.end_lsn.ToString()},
                                  {"commit_time", txn.commit.commit_time.ToString()},
                                  {"changes", changes}}
                       .dump()
                << "\n";
      continue;
    }
    std::cout << "begin xid=" << txn.begin.xid.value() << " commit_lsn=" << txn.commit.commit_lsn
              << " time=" << txn.commit.commit_time.ToString() << "\n";
    for (const auto& c : txn.changes) {
      if (auto* row = std::get_if<RowChange>(&c)) {
        std::cout << ChangeLine(**reader, *row, false) << "\n";
      } else {
        std::cout << "  truncate";
        for (RelationId id : std::get<TruncateChange>(c).relations) {
          const RelationInfo* r = (*reader)->relation(id);
          std::cout << " " << (r ? r->QualifiedName() : absl::StrCat("relation#", id.value()));
        }
        std::cout << "\n";
      }
    }
    std::cout << "commit end_lsn=" << txn.commit.end_lsn << "\n";
  }
}

int RunDevKafka(int brokers, const std::vector<std::string>& topics) {
  const sigset_t signals = BlockStopSignals();
  auto cluster = kafka::DevCluster::Start(brokers);
  if (!cluster.ok()) return Fail(cluster.status());
  for (const std::string& topic : topics) {
    // NAME or NAME:PARTITIONS.
    const size_t colon = topic.rfind(':');
    int partitions = 4;
    if (colon != std::string::npos &&
        (!absl::SimpleAtoi(topic.substr(colon + 1), &partitions) || partitions < 1)) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--topic ", topic, ": expected NAME or NAME:PARTITIONS")));
    }
    const std::string name = topic.substr(0, colon);
    if (absl::Status s = (*cluster)->CreateTopic(name, partitions, std::min(brokers, 3)); !s.ok()) {
      return Fail(s);
    }
  }
  // One line on stdout, for scripts: the bootstrap servers.
  std::cout << "bootstrap.servers=" << (*cluster)->bootstrap_servers() << std::endl;
  spdlog::info("[dev-kafka] {} in-memory brokers (librdkafka's mock cluster) until SIGINT/SIGTERM",
               brokers);
  while (!WaitForStopSignal(signals, std::chrono::milliseconds(1000))) {
  }
  spdlog::info("[dev-kafka] stopping");
  return 0;
}

int RunCheckConfig(const std::string& path) {
  auto config = LoadConfig(path);
  if (!config.ok()) return Fail(config.status());
  const size_t rules = config->writeback.rules.size();
  std::cout << path << ": ok (" << config->shapes.size() << " shapes, " << rules
            << (rules == 1 ? " rule" : " rules") << ")\n";
  return 0;
}

}  // namespace
}  // namespace shapebridge

int main(int argc, char** argv) {
  // Logs go to stderr; stdout is for what a command prints (log tail).
  spdlog::set_default_logger(spdlog::stderr_color_mt("shapebridge"));
  CLI::App app{"shapebridge: Postgres shapes to local-first clients"};
  app.require_subcommand(1);
  std::string log_format = "text";
  app.add_option("--log-format", log_format,
                 "Log lines on stderr as text, or as JSON objects (one a line)")
      ->check(CLI::IsMember({"text", "json"}));

  std::string config_path;
  auto* replicate = app.add_subcommand(
      "replicate", "Stream the publication's changes from the slot into the embedded log");
  replicate->add_option("--config,-c", config_path, "Config file (YAML)")->required();

  auto* log_cmd = app.add_subcommand("log", "Read the embedded log");
  log_cmd->require_subcommand(1);
  std::string dir;
  std::string from;
  bool follow = false;
  bool json = false;
  auto* tail = log_cmd->add_subcommand("tail", "Print the logged transactions");
  auto* dir_opt = tail->add_option("--dir", dir, "Log directory");
  tail->add_option("--config,-c", config_path, "Config file: read its log.dir")->excludes(dir_opt);
  tail->add_option("--from", from, "Start at this commit LSN (X/X)");
  tail->add_flag("--follow,-f", follow, "Keep printing new transactions until interrupted");
  tail->add_flag("--json", json, "One JSON object per transaction");

  auto* serve = app.add_subcommand(
      "serve", "Replicate, route and serve shapes to gRPC clients (runs until SIGTERM)");
  serve->add_option("--config,-c", config_path, "Config file (YAML)")->required();

  std::string claims = "{}";
  int ttl_s = 3600;
  auto* token = app.add_subcommand(
      "token", "Print a JWT signed with the config's HS256 key (for development and tests)");
  token->add_option("--config,-c", config_path, "Config file (YAML)")->required();
  token->add_option("--claims", claims, "Claims as a JSON object, e.g. '{\"sub\":\"ada\"}'");
  token->add_option("--ttl", ttl_s, "Seconds until it expires (when --claims has no exp)");

  std::string check_path;
  auto* check = app.add_subcommand("check-config", "Validate a config file and print every error");
  check->add_option("file", check_path, "Config file (YAML)")->required();

  int brokers = 3;
  auto* dev_kafka = app.add_subcommand(
      "dev-kafka",
      "Run an in-memory Kafka cluster on loopback for development and tests (librdkafka's mock "
      "cluster; it speaks the Kafka protocol, keeps nothing) and print its bootstrap servers");
  dev_kafka->add_option("--brokers", brokers, "Number of brokers")->check(CLI::Range(1, 16));
  std::vector<std::string> dev_topics;
  dev_kafka->add_option("--topic", dev_topics,
                        "Create a topic: NAME or NAME:PARTITIONS (default 4 partitions); repeat");

  CLI11_PARSE(app, argc, argv);
  if (log_format == "json") {
    spdlog::set_formatter(std::make_unique<shapebridge::JsonLogFormatter>());
  }

  if (*replicate) return shapebridge::RunReplicate(config_path);
  if (*serve) return shapebridge::RunServe(config_path);
  if (*token) return shapebridge::RunToken(config_path, claims, ttl_s);
  if (*check) return shapebridge::RunCheckConfig(check_path);
  if (*dev_kafka) return shapebridge::RunDevKafka(brokers, dev_topics);
  if (*tail) {
    if (dir.empty()) {
      if (config_path.empty()) {
        std::cerr << "shapebridge: log tail needs --dir or --config\n";
        return 2;
      }
      auto config = shapebridge::LoadConfig(config_path);
      if (!config.ok()) return shapebridge::Fail(config.status());
      dir = config->log.dir;
    }
    return shapebridge::RunLogTail(dir, from, follow, json);
  }
  return 2;
}
