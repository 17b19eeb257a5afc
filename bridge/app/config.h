#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bridge/log/embedded_log.h"
#include "bridge/replication/replication_config.h"

namespace shapebridge {

// The whole configuration file. Each component's part is that component's own config struct.
struct Config {
  ReplicationConfig replication;  // `postgres` and `replication` sections
  std::string log_backend = "embedded";
  EmbeddedLogConfig log;  // `log` section
};

// Parses and validates a YAML config. On failure the status message lists every problem, one a
// line, each as "FILE:LINE:COLUMN: KEY: what is wrong".
absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& file_name);
absl::StatusOr<Config> LoadConfig(const std::string& path);

}  // namespace shapebridge
