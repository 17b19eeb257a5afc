#pragma once

// What the Kafka clients of shapebridge share: a producer with safe defaults that latches its
// first failure, topic metadata and creation, and the librdkafka configuration. librdkafka's
// header stays in the kafka module.

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "bridge/kafka/kafka_config.h"

namespace shapebridge::kafka {

// A librdkafka producer. Its first failed delivery or fatal error is kept (failed()); the owner
// decides what a failure means. A record produced with a message opaque that points at an
// int64_t gets its offset written there when it is delivered.
struct Producer {
  rd_kafka_t* rk = nullptr;
  std::atomic<uint64_t>* delivered = nullptr;
  std::atomic<uint64_t>* delivery_errors = nullptr;
  std::atomic<bool> closing{false};

  ~Producer();
  void Fail(std::string what);
  // The first failure ("" while healthy).
  std::string failed();

 private:
  std::mutex mu_;
  std::string failure_;
  std::atomic<bool> has_failure_{false};
};

// Every record acknowledged by all in-sync replicas, in order, once (idempotence with the gapless
// guarantee: a record that cannot be delivered without a gap is a fatal error instead), and the
// config's properties. The counters (borrowed, may be null) count delivery reports.
absl::StatusOr<std::unique_ptr<Producer>> MakeProducer(const KafkaConfig& config,
                                                       const std::string& client_id,
                                                       std::atomic<uint64_t>* delivered,
                                                       std::atomic<uint64_t>* delivery_errors);

// A consumer's configuration: bootstrap servers, the config's properties and `settings`.
absl::StatusOr<rd_kafka_conf_t*> MakeConf(
    const KafkaConfig& config, const std::vector<std::pair<std::string, std::string>>& settings);

// The topic's partition count; 0 when it does not exist.
absl::StatusOr<int> TopicPartitions(rd_kafka_t* rk, const std::string& topic);

// The topic's partition count, after creating it (config.partitions, config.replication_factor,
// `topic_config`) when it is missing; FailedPrecondition naming the topic (`what`: "the change
// topic") when it is missing and cannot be created.
absl::StatusOr<int> EnsureTopic(
    rd_kafka_t* rk, const KafkaConfig& config, const std::string& topic, const char* what,
    const std::vector<std::pair<std::string, std::string>>& topic_config = {});

// A record header: a name and a value (skipped when the value is null).
struct Header {
  const char* name;
  const std::string* value;
};

// Hands one record (copied) to the producer: RD_KAFKA_RESP_ERR_NO_ERROR when it is queued, else
// the producer's refusal and its message in `what`. `opaque` reaches the delivery report.
rd_kafka_resp_err_t Enqueue(rd_kafka_t* rk, const std::string& topic, int32_t partition,
                            std::string_view key, std::string_view value,
                            const std::vector<Header>& headers, void* opaque, std::string* what);

// Waits until every record produced so far has its delivery report or the producer failed; after
// `timeout` without them the producer fails. Adds the time waited to `waited_micros`.
void WaitForDeliveries(Producer& producer, std::chrono::milliseconds timeout,
                       std::atomic<uint64_t>& waited_micros);

// librdkafka's log lines through spdlog.
void LogToSpdlog(const rd_kafka_t* rk, int level, const char* facility, const char* text);

}  // namespace shapebridge::kafka
