#pragma once

// A Kafka cluster for development and tests, in this process: librdkafka's mock cluster, which
// speaks the real Kafka protocol on loopback ports, so that any Kafka client (kcat, another
// shapebridge process) can use it. Not for production: it keeps everything in memory.

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace shapebridge::kafka {

class DevCluster {
 public:
  // Starts `brokers` brokers on 127.0.0.1.
  static absl::StatusOr<std::unique_ptr<DevCluster>> Start(int brokers);
  ~DevCluster();
  DevCluster(const DevCluster&) = delete;
  DevCluster& operator=(const DevCluster&) = delete;

  // The bootstrap.servers string for clients ("127.0.0.1:port,...").
  const std::string& bootstrap_servers() const { return bootstrap_; }

 private:
  struct Handles;
  explicit DevCluster(std::unique_ptr<Handles> handles, std::string bootstrap);

  std::unique_ptr<Handles> handles_;
  std::string bootstrap_;
};

}  // namespace shapebridge::kafka
