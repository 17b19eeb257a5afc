#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bridge/app/metrics.h"
#include "bridge/auth/jwt.h"
#include "bridge/kafka/kafka_config.h"
#include "bridge/log/embedded_log.h"
#include "bridge/log/shape_log.h"
#include "bridge/replication/replication_config.h"
#include "bridge/server/snapshotter.h"
#include "bridge/server/sync_server.h"
#include "bridge/writeback/writer.h"
#include "shapes/definition.h"

namespace shapebridge {

// The whole configuration file. Each component's part is that component's own config struct.
struct Config {
  ReplicationConfig replication;         // `postgres` and `replication` sections
  std::string log_backend = "embedded";  // embedded or kafka
  EmbeddedLogConfig log;                 // `log` section
  kafka::KafkaConfig kafka;              // `kafka` section (log.backend: kafka)
  // `shapes` section: the definitions as configured, checked against the catalog at startup.
  std::vector<shapes::ShapeDefinitionSpec> shapes;
  // Where each shape is defined ("FILE:LINE:COLUMN"), parallel to `shapes`, for error messages.
  std::vector<std::string> shape_locations;
  ShapeLogConfig shape_log;   // `shape_log` section; dir defaults to log.dir + "/shapes"
  SnapshotConfig snapshot;    // `snapshot` section; dsn is postgres.dsn
  ServerConfig server;        // `server` section
  MetricsConfig metrics;      // `metrics` section
  auth::JwtConfig jwt;        // `auth.jwt` section (key files are read while parsing)
  WritebackConfig writeback;  // `writeback` section
};

// Parses and validates a YAML config. On failure the status message lists every problem, one a
// line, each as "FILE:LINE:COLUMN: KEY: what is wrong".
absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& file_name);
absl::StatusOr<Config> LoadConfig(const std::string& path);

class PgConnection;

// Checks every shape of `config` against the tables in the source database and compiles it.
// Errors list every problem, one a line, as "FILE:LINE:COLUMN: shape NAME: KEY: what is wrong".
absl::StatusOr<std::vector<std::shared_ptr<const shapes::ShapeDefinition>>> CompileShapes(
    const Config& config, PgConnection& sql);

}  // namespace shapebridge
