#pragma once

// A Kafka cluster for development and tests, in this process: librdkafka's mock cluster, which
// speaks the real Kafka protocol on loopback ports, so that any Kafka client (kcat, another
// shapebridge process) can use it. Not for production: it keeps everything in memory.

#include <memory>
#include <string>
#include <vector>

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

  // Creates a topic (the mock cluster has no CreateTopics API; a client that asks for an unknown
  // topic gets it made with 4 partitions). An existing topic is left as it is.
  absl::Status CreateTopic(const std::string& topic, int partitions, int replication_factor = 1);

  // Fault injection, for tests.
  // The next `errors.size()` Produce requests fail with these Kafka error codes, in order.
  void FailProduceRequests(const std::vector<int>& errors);
  // A broker (1..brokers) stops answering, or answers again.
  absl::Status SetBrokerDown(int broker, bool down);
  // Moves the leadership of a partition to `broker`.
  absl::Status SetLeader(const std::string& topic, int partition, int broker);

 private:
  struct Handles;
  explicit DevCluster(std::unique_ptr<Handles> handles, std::string bootstrap);

  std::unique_ptr<Handles> handles_;
  std::string bootstrap_;
};

}  // namespace shapebridge::kafka
