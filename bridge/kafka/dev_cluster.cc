#include "bridge/kafka/dev_cluster.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "absl/strings/str_cat.h"

namespace shapebridge::kafka {

struct DevCluster::Handles {
  rd_kafka_t* client = nullptr;  // the mock cluster lives in this handle's threads
  rd_kafka_mock_cluster_t* cluster = nullptr;

  ~Handles() {
    if (cluster != nullptr) rd_kafka_mock_cluster_destroy(cluster);
    if (client != nullptr) rd_kafka_destroy(client);
  }
};

absl::StatusOr<std::unique_ptr<DevCluster>> DevCluster::Start(int brokers) {
  if (brokers < 1 || brokers > 16) {
    return absl::InvalidArgumentError(absl::StrCat("brokers: ", brokers, ", expected 1 to 16"));
  }
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The handle only hosts the cluster: it is not a client of it (no bootstrap servers), and its
  // notice saying so is noise (log_level 4: warnings and worse).
  if (rd_kafka_conf_set(conf, "client.id", "shapebridge-dev-kafka", error, sizeof error) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(conf, "log_level", "4", error, sizeof error) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return absl::InternalError(error);
  }
  auto handles = std::make_unique<Handles>();
  handles->client = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (handles->client == nullptr) {
    rd_kafka_conf_destroy(conf);  // rd_kafka_new takes it only on success
    return absl::InternalError(absl::StrCat("librdkafka: ", error));
  }
  handles->cluster = rd_kafka_mock_cluster_new(handles->client, brokers);
  if (handles->cluster == nullptr) {
    return absl::InternalError("librdkafka could not start its mock cluster");
  }
  std::string bootstrap = rd_kafka_mock_cluster_bootstraps(handles->cluster);
  return std::unique_ptr<DevCluster>(new DevCluster(std::move(handles), std::move(bootstrap)));
}

DevCluster::DevCluster(std::unique_ptr<Handles> handles, std::string bootstrap)
    : handles_(std::move(handles)), bootstrap_(std::move(bootstrap)) {}

DevCluster::~DevCluster() = default;

absl::Status DevCluster::CreateTopic(const std::string& topic, int partitions,
                                     int replication_factor) {
  const rd_kafka_resp_err_t err =
      rd_kafka_mock_topic_create(handles_->cluster, topic.c_str(), partitions, replication_factor);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    return absl::InvalidArgumentError(absl::StrCat("topic ", topic, ": ", rd_kafka_err2str(err)));
  }
  return absl::OkStatus();
}

void DevCluster::FailProduceRequests(const std::vector<int>& errors) {
  constexpr int16_t kProduce = 0;  // the Kafka protocol's ApiKey of Produce
  std::vector<rd_kafka_resp_err_t> codes;
  for (int e : errors) codes.push_back(static_cast<rd_kafka_resp_err_t>(e));
  rd_kafka_mock_push_request_errors_array(handles_->cluster, kProduce, codes.size(), codes.data());
}

absl::Status DevCluster::SetBrokerDown(int broker, bool down) {
  const rd_kafka_resp_err_t err = down ? rd_kafka_mock_broker_set_down(handles_->cluster, broker)
                                       : rd_kafka_mock_broker_set_up(handles_->cluster, broker);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return absl::InvalidArgumentError(rd_kafka_err2str(err));
  return absl::OkStatus();
}

absl::Status DevCluster::SetLeader(const std::string& topic, int partition, int broker) {
  const rd_kafka_resp_err_t err =
      rd_kafka_mock_partition_set_leader(handles_->cluster, topic.c_str(), partition, broker);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return absl::InvalidArgumentError(rd_kafka_err2str(err));
  return absl::OkStatus();
}

}  // namespace shapebridge::kafka
