// shapebridge: the composition root. Reads the config, builds the components, wires them, and
// runs one command.

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <map>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bridge/app/config.h"
#include "bridge/app/json_log.h"
#include "bridge/app/kafka_replicator.h"
#include "bridge/app/metrics.h"
#include "bridge/app/service.h"
#include "bridge/auth/jwt.h"
#include "bridge/common/pg.h"
#include "bridge/kafka/dev_cluster.h"
#include "bridge/log/embedded_log.h"
#include "bridge/replication/replicator.h"
#include "bridge/writeback/writer.h"
#include "nlohmann/json.hpp"
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

// The replicator role with the Kafka backend (see KafkaReplicator).
int RunReplicateToKafka(const Config& config, const DefinitionMap& definitions,
                        const sigset_t& signals) {
  auto replicator = KafkaReplicator::Create(config, definitions);
  if (!replicator.ok()) return Fail(replicator.status());
  const KafkaReplicator* r = replicator->get();
  auto metrics = Metrics::CreateForReplicator(config.metrics, config.replication, r->replicator(),
                                              [r] { return r->Stats(); });
  if (!metrics.ok()) return Fail(metrics.status());
  if (absl::Status s = (*metrics)->Start(); !s.ok()) return Fail(s);
  if ((*metrics)->port() != 0) {
    std::cout << "shapebridge: metrics on port " << (*metrics)->port() << std::endl;
  }
  absl::Status status = (*replicator)->Run([&signals](std::chrono::milliseconds timeout) {
    return WaitForStopSignal(signals, timeout);
  });
  (*metrics)->Stop();
  if (!status.ok()) return Fail(status);
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
