#pragma once

#include <chrono>
#include <map>
#include <string>

namespace shapebridge::kafka {

// The `kafka` section of the config (used with `log.backend: kafka`).
struct KafkaConfig {
  std::string bootstrap_servers;  // "host:port,..." (required)
  // Topic names: "<prefix>.changes" for the change topic, "<prefix>.shapes" for the shape topic.
  std::string topic_prefix = "shapebridge";
  // Partitions and replication factor of topics shapebridge creates (-1: the broker's default).
  int partitions = 8;
  int replication_factor = -1;
  // librdkafka properties passed through to every client (security.protocol, sasl.*, ssl.*).
  // Properties that would weaken delivery (acks, enable.idempotence) are refused.
  std::map<std::string, std::string> properties;
  // How often the change topic gets a checkpoint record in every partition (at most).
  std::chrono::milliseconds checkpoint_interval{1000};
  // How long a sync waits for delivery reports before it gives up (the replication session then
  // starts over from the last durable position).
  std::chrono::milliseconds flush_timeout{60'000};

  // Whether `replicate` publishes the change topic (the shape topic is published when shapes are
  // configured).
  bool change_topic = true;
  // `serve` also runs the replicator role (with its leader election), in the same process.
  bool replicate = false;

  std::string ChangeTopic() const { return topic_prefix + ".changes"; }
  std::string ShapeTopic() const { return topic_prefix + ".shapes"; }
};

}  // namespace shapebridge::kafka
