#include "bridge/app/config.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bridge/common/pg.h"
#include "bridge/replication/catalog.h"
#include "yaml-cpp/yaml.h"

namespace shapebridge {
namespace {

class Parser {
 public:
  explicit Parser(std::string file) : file_(std::move(file)) {}

  void Error(const YAML::Node& node, const std::string& key, const std::string& what) {
    const YAML::Mark mark = node.Mark();
    errors_.push_back(
        absl::StrCat(file_, ":", mark.line + 1, ":", mark.column + 1, ": ", key, ": ", what));
  }

  // Checks that `node` is a map whose keys are all in `allowed` (any key when `any_key`), each
  // once.
  bool CheckMap(const YAML::Node& node, const std::string& path,
                const std::set<std::string>& allowed, bool any_key = false) {
    if (!node.IsMap()) {
      Error(node, path, "must be a mapping");
      return false;
    }
    std::set<std::string> seen;
    for (const auto& item : node) {
      const std::string key = item.first.Scalar();
      const std::string full = path.empty() ? key : absl::StrCat(path, ".", key);
      if (!any_key && !allowed.contains(key)) {
        Error(item.first, full,
              absl::StrCat("unknown key (expected one of: ", absl::StrJoin(allowed, ", "), ")"));
      } else if (!seen.insert(key).second) {
        Error(item.first, full, "duplicate key");
      }
    }
    return true;
  }

  template <typename T>
  void Get(const YAML::Node& map, const std::string& path, const std::string& key, T* out) {
    const YAML::Node node = Find(map, key);
    if (!node) return;
    const std::string full = absl::StrCat(path, ".", key);
    try {
      if constexpr (std::is_same_v<T, std::vector<std::string>>) {
        if (!node.IsSequence()) {
          Error(node, full, "must be a list");
          return;
        }
      } else if (!node.IsScalar()) {
        Error(node, full, "must be a single value");
        return;
      }
      *out = node.as<T>();
    } catch (const YAML::Exception&) {
      Error(node, full, absl::StrCat("has the wrong type (expected ", TypeName<T>(), ")"));
    }
  }

  void GetMillis(const YAML::Node& map, const std::string& path, const std::string& key,
                 std::chrono::milliseconds* out, int64_t min) {
    int64_t value = out->count();
    Get(map, path, key, &value);
    if (value < min) {
      Error(Find(map, key), absl::StrCat(path, ".", key), absl::StrCat("must be at least ", min));
      return;
    }
    *out = std::chrono::milliseconds(value);
  }

  YAML::Node Find(const YAML::Node& map, const std::string& key) {
    // The first occurrence; duplicates are reported by CheckMap.
    for (const auto& item : map) {
      if (item.first.Scalar() == key) return item.second;
    }
    return YAML::Node(YAML::NodeType::Undefined);
  }

  const std::vector<std::string>& errors() const { return errors_; }
  const std::string& file() const { return file_; }

 private:
  template <typename T>
  static const char* TypeName() {
    if constexpr (std::is_same_v<T, bool>) return "true or false";
    if constexpr (std::is_integral_v<T>) return "an integer";
    if constexpr (std::is_same_v<T, std::vector<std::string>>) return "a list of strings";
    return "a string";
  }

  std::string file_;
  std::vector<std::string> errors_;
};

std::string Location(const std::string& file, const YAML::Node& node) {
  return absl::StrCat(file, ":", node.Mark().line + 1, ":", node.Mark().column + 1);
}

void ParseShapes(Parser& p, const YAML::Node& list, Config* config) {
  if (!list.IsSequence()) {
    p.Error(list, "shapes", "must be a list of shape definitions");
    return;
  }
  std::set<std::string> names;
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node node = list[i];
    shapes::ShapeDefinitionSpec spec;
    std::string path = absl::StrCat("shapes[", i, "]");
    // The name first, so every other error can name the shape.
    if (node.IsMap()) p.Get(node, path, "name", &spec.name);
    if (!spec.name.empty()) path = absl::StrCat("shapes.", spec.name);
    if (!p.CheckMap(node, path, {"name", "table", "columns", "where", "params", "writable"})) {
      continue;
    }
    if (spec.name.empty()) {
      p.Error(node, path + ".name", "is required");
    } else if (spec.name.starts_with("shapebridge_")) {
      p.Error(node, path + ".name", "names starting with shapebridge_ are the built-in shapes'");
    } else if (!names.insert(spec.name).second) {
      p.Error(node, path, "is defined twice");
    }
    p.Get(node, path, "table", &spec.table);
    if (spec.table.find('.') == std::string::npos || spec.table.front() == '.' ||
        spec.table.back() == '.') {
      p.Error(node, path + ".table", "is required, schema-qualified (like public.tasks)");
      spec.table.clear();
    }
    p.Get(node, path, "columns", &spec.columns);
    p.Get(node, path, "where", &spec.where);
    p.Get(node, path, "writable", &spec.writable);
    if (YAML::Node params = p.Find(node, "params"); params) {
      const std::string params_path = path + ".params";
      if (p.CheckMap(params, params_path, {}, /*any_key=*/true)) {
        for (const auto& item : params) {
          shapes::ParamSpec param;
          param.name = item.first.Scalar();
          const std::string param_path = absl::StrCat(params_path, ".", param.name);
          if (!p.CheckMap(item.second, param_path, {"type", "from", "claim"})) continue;
          p.Get(item.second, param_path, "type", &param.type);
          if (param.type.empty()) p.Error(item.second, param_path + ".type", "is required");
          std::string from;
          p.Get(item.second, param_path, "from", &from);
          p.Get(item.second, param_path, "claim", &param.claim);
          if (from == "claim") {
            param.source = shapes::ParamSource::kClaim;
            if (param.claim.empty()) {
              p.Error(item.second, param_path + ".claim",
                      "is required with from: claim (the JWT claim holding the value)");
            }
          } else if (from == "request") {
            param.source = shapes::ParamSource::kRequest;
          } else {
            p.Error(item.second, param_path + ".from",
                    "must be claim (the value comes from a JWT claim) or request (the client "
                    "sends it; with claim: set, it must be among that claim's values)");
          }
          spec.params.push_back(std::move(param));
        }
      }
    }
    config->shapes.push_back(std::move(spec));
    config->shape_locations.push_back(Location(p.file(), node));
  }
}

std::optional<std::string> ReadKeyFile(Parser& p, const YAML::Node& node, const std::string& key,
                                       const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    p.Error(node, key, absl::StrCat("cannot read ", path));
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void ParseAuth(Parser& p, const YAML::Node& auth, Config* config) {
  if (!p.CheckMap(auth, "auth", {"jwt"})) return;
  const YAML::Node jwt = p.Find(auth, "jwt");
  if (!jwt) {
    p.Error(auth, "auth.jwt", "is required: clients authenticate with a JWT");
    return;
  }
  if (!p.CheckMap(jwt, "auth.jwt", {"keys", "issuer", "audience", "leeway_s", "require_exp"})) {
    return;
  }
  auth::JwtConfig& c = config->jwt;
  p.Get(jwt, "auth.jwt", "issuer", &c.issuer);
  p.Get(jwt, "auth.jwt", "audience", &c.audience);
  p.Get(jwt, "auth.jwt", "require_exp", &c.require_exp);
  int64_t leeway = c.leeway.count();
  p.Get(jwt, "auth.jwt", "leeway_s", &leeway);
  c.leeway = std::chrono::seconds(std::max<int64_t>(leeway, 0));
  const YAML::Node keys = p.Find(jwt, "keys");
  if (!keys || !keys.IsSequence() || keys.size() == 0) {
    p.Error(keys ? keys : jwt, "auth.jwt.keys",
            "is required: a list of keys, each {algorithm: HS256, secret_file: FILE} or "
            "{algorithm: RS256, public_key_file: FILE}");
    return;
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string path = absl::StrCat("auth.jwt.keys[", i, "]");
    const YAML::Node k = keys[i];
    if (!p.CheckMap(
            k, path,
            {"algorithm", "secret", "secret_file", "public_key", "public_key_file", "key_id"})) {
      continue;
    }
    auth::JwtKey key;
    p.Get(k, path, "algorithm", &key.algorithm);
    p.Get(k, path, "key_id", &key.key_id);
    p.Get(k, path, "secret", &key.secret);
    p.Get(k, path, "public_key", &key.public_key_pem);
    std::string file;
    p.Get(k, path, "secret_file", &file);
    if (!file.empty()) {
      if (auto text = ReadKeyFile(p, p.Find(k, "secret_file"), path + ".secret_file", file)) {
        // A trailing newline of the file is not part of the secret.
        while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
        key.secret = *text;
      }
    }
    file.clear();
    p.Get(k, path, "public_key_file", &file);
    if (!file.empty()) {
      if (auto text =
              ReadKeyFile(p, p.Find(k, "public_key_file"), path + ".public_key_file", file)) {
        key.public_key_pem = *text;
      }
    }
    c.keys.push_back(std::move(key));
  }
  if (p.errors().empty()) {
    auto verifier = auth::JwtVerifier::Create(c);
    if (!verifier.ok()) p.Error(jwt, "auth.jwt", std::string(verifier.status().message()));
  }
}

void ParseServing(Parser& p, const YAML::Node& root, Config* config) {
  if (YAML::Node s = p.Find(root, "shape_log"); s) {
    ShapeLogConfig& c = config->shape_log;
    if (p.CheckMap(s, "shape_log", {"dir", "fsync", "max_instance_bytes", "idle_retire_s"})) {
      p.Get(s, "shape_log", "dir", &c.dir);
      p.Get(s, "shape_log", "fsync", &c.fsync);
      p.Get(s, "shape_log", "max_instance_bytes", &c.max_instance_bytes);
      int64_t idle = c.idle_retire.count();
      p.Get(s, "shape_log", "idle_retire_s", &idle);
      c.idle_retire = std::chrono::seconds(std::max<int64_t>(idle, 0));
    }
  }
  if (config->shape_log.dir.empty() && !config->log.dir.empty()) {
    config->shape_log.dir = config->log.dir + "/shapes";
  }
  config->snapshot.dsn = config->replication.dsn;
  config->snapshot.connect_timeout = config->replication.connect_timeout;
  if (YAML::Node s = p.Find(root, "snapshot"); s) {
    if (p.CheckMap(s, "snapshot", {"workers", "batch_rows"})) {
      p.Get(s, "snapshot", "workers", &config->snapshot.workers);
      p.Get(s, "snapshot", "batch_rows", &config->snapshot.batch_rows);
      if (config->snapshot.workers < 1) {
        p.Error(p.Find(s, "workers"), "snapshot.workers", "must be at least 1");
      }
      if (config->snapshot.batch_rows < 1) {
        p.Error(p.Find(s, "batch_rows"), "snapshot.batch_rows", "must be at least 1");
      }
    }
  }
  if (YAML::Node s = p.Find(root, "metrics"); s) {
    if (p.CheckMap(s, "metrics", {"listen", "slot_poll_interval_ms"})) {
      p.Get(s, "metrics", "listen", &config->metrics.listen);
      p.GetMillis(s, "metrics", "slot_poll_interval_ms", &config->metrics.slot_poll_interval, 100);
    }
  }
  if (YAML::Node s = p.Find(root, "server"); s) {
    ServerConfig& c = config->server;
    if (p.CheckMap(
            s, "server",
            {"listen", "heartbeat_interval_ms", "max_client_lag_entries", "slow_client_grace_ms",
             "write_timeout_ms", "batch_entries", "max_subscriptions", "drain_timeout_ms"})) {
      p.Get(s, "server", "listen", &c.listen);
      p.GetMillis(s, "server", "heartbeat_interval_ms", &c.heartbeat_interval, 100);
      p.Get(s, "server", "max_client_lag_entries", &c.max_client_lag_entries);
      p.GetMillis(s, "server", "slow_client_grace_ms", &c.slow_client_grace, 0);
      p.GetMillis(s, "server", "write_timeout_ms", &c.write_timeout, 100);
      p.Get(s, "server", "batch_entries", &c.batch_entries);
      p.Get(s, "server", "max_subscriptions", &c.max_subscriptions);
      p.GetMillis(s, "server", "drain_timeout_ms", &c.drain_timeout, 0);
      if (c.batch_entries < 1) {
        p.Error(p.Find(s, "batch_entries"), "server.batch_entries", "must be at least 1");
      }
      if (c.max_subscriptions < 1) {
        p.Error(p.Find(s, "max_subscriptions"), "server.max_subscriptions", "must be at least 1");
      }
    }
  }
  if (YAML::Node a = p.Find(root, "auth"); a) ParseAuth(p, a, config);
}

void GetSeconds(Parser& p, const YAML::Node& map, const std::string& path, const std::string& key,
                std::chrono::seconds* out) {
  int64_t value = out->count();
  p.Get(map, path, key, &value);
  if (value < 1) {
    p.Error(p.Find(map, key), absl::StrCat(path, ".", key), "must be at least 1");
    return;
  }
  *out = std::chrono::seconds(value);
}

void ParseKafka(Parser& p, const YAML::Node& k, Config* config) {
  kafka::KafkaConfig& c = config->kafka;
  if (!p.CheckMap(
          k, "kafka",
          {"bootstrap_servers", "topic_prefix", "partitions", "replication_factor", "properties",
           "checkpoint_interval_ms", "flush_timeout_ms", "change_topic", "replicate"})) {
    return;
  }
  p.Get(k, "kafka", "bootstrap_servers", &c.bootstrap_servers);
  p.Get(k, "kafka", "topic_prefix", &c.topic_prefix);
  p.Get(k, "kafka", "change_topic", &c.change_topic);
  p.Get(k, "kafka", "replicate", &c.replicate);
  if (c.topic_prefix.empty() ||
      c.topic_prefix.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789._-") != std::string::npos) {
    p.Error(p.Find(k, "topic_prefix"), "kafka.topic_prefix",
            "must be letters, digits, '.', '_' and '-'");
  }
  p.Get(k, "kafka", "partitions", &c.partitions);
  if (c.partitions < 1) p.Error(p.Find(k, "partitions"), "kafka.partitions", "must be at least 1");
  p.Get(k, "kafka", "replication_factor", &c.replication_factor);
  if (c.replication_factor == 0 || c.replication_factor < -1) {
    p.Error(p.Find(k, "replication_factor"), "kafka.replication_factor",
            "must be at least 1, or -1 for the broker's default");
  }
  // A SASL password from the environment (a Kubernetes Secret), as libpq reads PGPASSWORD.
  if (const char* password = std::getenv("SHAPEBRIDGE_KAFKA_SASL_PASSWORD");
      password != nullptr && *password != '\0') {
    c.properties["sasl.password"] = password;
  }
  p.GetMillis(k, "kafka", "checkpoint_interval_ms", &c.checkpoint_interval, 10);
  p.GetMillis(k, "kafka", "flush_timeout_ms", &c.flush_timeout, 100);
  if (YAML::Node props = p.Find(k, "properties"); props) {
    if (p.CheckMap(props, "kafka.properties", {}, /*any_key=*/true)) {
      for (const auto& item : props) {
        const std::string name = item.first.Scalar();
        std::string value;
        p.Get(props, "kafka.properties", name, &value);
        // Delivery is what the flush position is built on: it cannot be weakened.
        if ((name == "acks" || name == "request.required.acks") && value != "all" &&
            value != "-1") {
          p.Error(item.second, "kafka.properties." + name,
                  "must be all: a record acknowledged by fewer replicas can be lost after the slot "
                  "has moved past it");
        } else if (name == "enable.gapless.guarantee" && value != "true") {
          p.Error(item.second, "kafka.properties." + name,
                  "must be true: a failed batch must stop the producer rather than leave a gap");
        } else if (name == "enable.idempotence" && value != "true") {
          p.Error(item.second, "kafka.properties." + name,
                  "must be true: without it a retry can duplicate or reorder records");
        }
        c.properties[name] = value;
      }
    }
  }
}

void ParseWriteback(Parser& p, const YAML::Node& w, Config* config) {
  WritebackConfig& c = config->writeback;
  if (!p.CheckMap(w, "writeback",
                  {"subject_claim", "violation_ttl_s", "mutation_retention_s", "sweep_interval_s",
                   "deletes", "rules"})) {
    return;
  }
  std::string deletes = "wins";
  p.Get(w, "writeback", "deletes", &deletes);
  if (deletes == "wins") {
    c.deletes = DeleteRule::kWins;
  } else if (deletes == "newest_wins") {
    c.deletes = DeleteRule::kNewestWins;
  } else {
    p.Error(p.Find(w, "deletes"), "writeback.deletes",
            "must be wins (a delete wins over updates that arrive after it) or newest_wins (a "
            "field written after the delete, by hlc, keeps or restores the row)");
  }
  p.Get(w, "writeback", "subject_claim", &c.subject_claim);
  if (c.subject_claim.empty()) {
    p.Error(p.Find(w, "subject_claim"), "writeback.subject_claim", "must not be empty");
  }
  GetSeconds(p, w, "writeback", "violation_ttl_s", &c.violation_ttl);
  GetSeconds(p, w, "writeback", "mutation_retention_s", &c.mutation_retention);
  GetSeconds(p, w, "writeback", "sweep_interval_s", &c.sweep_interval);
  const YAML::Node list = p.Find(w, "rules");
  if (!list) return;
  if (!list.IsSequence()) {
    p.Error(list, "writeback.rules", "must be a list of rules");
    return;
  }
  std::set<std::string> names;
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node node = list[i];
    RuleSpec rule;
    std::string path = absl::StrCat("writeback.rules[", i, "]");
    if (node.IsMap()) p.Get(node, path, "name", &rule.name);
    if (!rule.name.empty()) path = absl::StrCat("writeback.rules.", rule.name);
    if (!p.CheckMap(node, path, {"name", "table", "check", "description"})) continue;
    if (rule.name.empty()) {
      p.Error(node, path + ".name", "is required");
    } else if (!names.insert(rule.name).second) {
      p.Error(node, path, "is defined twice");
    }
    p.Get(node, path, "table", &rule.table);
    if (rule.table.find('.') == std::string::npos) {
      p.Error(node, path + ".table", "is required, schema-qualified (like public.bookings)");
    }
    p.Get(node, path, "check", &rule.check);
    if (rule.check.empty()) {
      p.Error(node, path + ".check",
              "is required: a query over $column values of the written row that returns the "
              "conflicting rows");
    }
    p.Get(node, path, "description", &rule.description);
    if (rule.description.empty()) rule.description = rule.name;
    rule.location = Location(p.file(), node);
    c.rules.push_back(std::move(rule));
  }
}

}  // namespace

absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& file_name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(file_name, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
  }
  Parser p(file_name);
  Config config;
  if (!root.IsDefined() || root.IsNull()) {
    return absl::InvalidArgumentError(absl::StrCat(file_name, ": the file is empty"));
  }
  if (p.CheckMap(root, "",
                 {"postgres", "replication", "log", "shapes", "shape_log", "snapshot", "server",
                  "metrics", "auth", "writeback", "kafka"})) {
    if (YAML::Node pg = p.Find(root, "postgres"); pg) {
      if (p.CheckMap(pg, "postgres", {"dsn"}))
        p.Get(pg, "postgres", "dsn", &config.replication.dsn);
    }
    if (config.replication.dsn.empty()) {
      p.Error(root, "postgres.dsn", "is required (a libpq connection string or URI)");
    }
    if (YAML::Node r = p.Find(root, "replication"); r) {
      ReplicationConfig& c = config.replication;
      if (p.CheckMap(r, "replication",
                     {"slot", "publication", "tables", "manage_publication",
                      "set_replica_identity_full", "protocol_version", "status_interval_ms",
                      "heartbeat_interval_ms", "sync_interval_ms", "reconnect_backoff_min_ms",
                      "reconnect_backoff_max_ms", "slot_busy_timeout_ms", "connect_timeout_s"})) {
        p.Get(r, "replication", "slot", &c.slot);
        p.Get(r, "replication", "publication", &c.publication);
        p.Get(r, "replication", "tables", &c.tables);
        p.Get(r, "replication", "manage_publication", &c.manage_publication);
        p.Get(r, "replication", "set_replica_identity_full", &c.set_replica_identity_full);
        p.Get(r, "replication", "protocol_version", &c.protocol_version);
        if (c.protocol_version != 1 && c.protocol_version != 2) {
          p.Error(p.Find(r, "protocol_version"), "replication.protocol_version", "must be 1 or 2");
        }
        p.GetMillis(r, "replication", "status_interval_ms", &c.status_interval, 100);
        p.GetMillis(r, "replication", "heartbeat_interval_ms", &c.heartbeat_interval, 0);
        p.GetMillis(r, "replication", "sync_interval_ms", &c.sync_interval, 1);
        p.GetMillis(r, "replication", "reconnect_backoff_min_ms", &c.reconnect_backoff_min, 1);
        p.GetMillis(r, "replication", "reconnect_backoff_max_ms", &c.reconnect_backoff_max, 1);
        p.GetMillis(r, "replication", "slot_busy_timeout_ms", &c.slot_busy_timeout, 0);
        int64_t connect_timeout = c.connect_timeout.count();
        p.Get(r, "replication", "connect_timeout_s", &connect_timeout);
        c.connect_timeout = std::chrono::seconds(std::max<int64_t>(connect_timeout, 1));
      }
    }
    const auto name_ok = [](const std::string& name) {
      return !name.empty() && name.size() <= 63 &&
             name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == std::string::npos;
    };
    if (!name_ok(config.replication.slot)) {
      p.Error(root, "replication.slot", "must be 1 to 63 of a-z, 0-9 and _");
    }
    if (config.replication.publication.empty()) {
      p.Error(root, "replication.publication", "must not be empty");
    }
    if (YAML::Node list = p.Find(root, "shapes"); list) ParseShapes(p, list, &config);
    if (YAML::Node w = p.Find(root, "writeback"); w) ParseWriteback(p, w, &config);
    // Write-back's mutation records and violations, readable through built-in shapes.
    if (std::any_of(config.shapes.begin(), config.shapes.end(),
                    [](const auto& s) { return s.writable; })) {
      for (auto& spec : BuiltinShapes(config.writeback)) {
        config.shapes.push_back(std::move(spec));
        config.shape_locations.push_back(absl::StrCat(file_name, ": built-in shape"));
      }
    } else if (!config.writeback.rules.empty()) {
      p.Error(p.Find(root, "writeback"), "writeback.rules",
              "no shape is writable: rules check writes made through Push");
    }
    // Replicate every table a shape reads, besides those named explicitly.
    for (const auto& shape : config.shapes) {
      auto& tables = config.replication.tables;
      if (!shape.table.empty() &&
          std::find(tables.begin(), tables.end(), shape.table) == tables.end()) {
        tables.push_back(shape.table);
      }
    }
    if (config.replication.tables.empty()) {
      p.Error(root, "replication.tables",
              "name at least one table (schema.table), or define shapes");
    }
    for (const auto& t : config.replication.tables) {
      if (t.find('.') == std::string::npos || t.front() == '.' || t.back() == '.') {
        p.Error(root, "replication.tables",
                absl::StrCat("\"", t, "\" must be schema-qualified, like public.", t));
      }
    }
    if (YAML::Node l = p.Find(root, "log"); l) {
      if (p.CheckMap(l, "log", {"backend", "dir", "segment_bytes", "retention_bytes"})) {
        p.Get(l, "log", "backend", &config.log_backend);
        if (config.log_backend != "embedded" && config.log_backend != "kafka") {
          p.Error(p.Find(l, "backend"), "log.backend",
                  absl::StrCat("\"", config.log_backend,
                               "\" is not a log backend (embedded or kafka)"));
        }
        p.Get(l, "log", "dir", &config.log.dir);
        p.Get(l, "log", "segment_bytes", &config.log.segment_bytes);
        p.Get(l, "log", "retention_bytes", &config.log.retention_bytes);
        if (config.log.segment_bytes < 4096) {
          p.Error(p.Find(l, "segment_bytes"), "log.segment_bytes", "must be at least 4096");
        }
      }
    }
    if (config.log.dir.empty() && config.log_backend != "kafka") {
      p.Error(root, "log.dir", "is required (a directory)");
    }
    if (YAML::Node k = p.Find(root, "kafka"); k) ParseKafka(p, k, &config);
    if (config.log_backend == "kafka" && config.kafka.bootstrap_servers.empty()) {
      p.Error(root, "kafka.bootstrap_servers", "is required with log.backend: kafka");
    }
    ParseServing(p, root, &config);
  }
  if (!p.errors().empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(p.errors(), "\n"));
  }
  return config;
}

absl::StatusOr<Config> LoadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path);
}

absl::StatusOr<std::vector<std::shared_ptr<const shapes::ShapeDefinition>>> CompileShapes(
    const Config& config, PgConnection& sql) {
  std::vector<std::shared_ptr<const shapes::ShapeDefinition>> compiled;
  std::vector<std::string> errors;
  std::map<std::string, absl::StatusOr<shapes::TableSchema>> tables;
  for (size_t i = 0; i < config.shapes.size(); ++i) {
    const auto& spec = config.shapes[i];
    auto table = tables.find(spec.table);
    if (table == tables.end()) {
      table = tables.emplace(spec.table, LoadTableSchema(sql, spec.table)).first;
    }
    if (!table->second.ok()) {
      errors.push_back(absl::StrCat(config.shape_locations[i], ": shape ", spec.name,
                                    ": table: ", table->second.status().message()));
      continue;
    }
    auto definition = shapes::CompileDefinition(spec, *table->second);
    if (!definition.ok()) {
      errors.push_back(
          absl::StrCat(config.shape_locations[i], ": ", definition.status().message()));
      continue;
    }
    compiled.push_back(*std::move(definition));
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  return compiled;
}

}  // namespace shapebridge
