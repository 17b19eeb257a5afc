#include "bridge/kafka/client.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace shapebridge::kafka {
namespace {

constexpr int kMetadataTimeoutMs = 10'000;
constexpr int kAdminTimeoutMs = 30'000;

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* self = static_cast<Producer*>(opaque);
  if (self->closing.load()) return;
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (self->delivered) self->delivered->fetch_add(1, std::memory_order_relaxed);
    if (m->_private != nullptr) *static_cast<int64_t*>(m->_private) = m->offset;
    return;
  }
  if (self->delivery_errors) self->delivery_errors->fetch_add(1, std::memory_order_relaxed);
  self->Fail(absl::StrCat("delivery to ", rd_kafka_topic_name(m->rkt), " partition ", m->partition,
                          " failed: ", rd_kafka_err2str(m->err)));
}

void OnError(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  auto* self = static_cast<Producer*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char why[512];
    const rd_kafka_resp_err_t code = rd_kafka_fatal_error(rk, why, sizeof why);
    self->Fail(absl::StrCat("fatal producer error: ", rd_kafka_err2name(code), ": ", why));
    return;
  }
  // Broker connections come and go; the producer retries on its own.
  spdlog::warn("[kafka] {}: {}", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)), reason);
}

}  // namespace

Producer::~Producer() {
  if (rk == nullptr) return;
  // Records not yet delivered are dropped: their owner produces them again or has failed.
  closing.store(true);
  rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_flush(rk, 1000);
  rd_kafka_destroy(rk);
}

void Producer::Fail(std::string what) {
  std::lock_guard lock(mu_);
  if (failure_.empty()) failure_ = std::move(what);
  has_failure_.store(true);
}

std::string Producer::failed() {
  if (!has_failure_.load()) return std::string();
  std::lock_guard lock(mu_);
  return failure_;
}

void LogToSpdlog(const rd_kafka_t*, int level, const char* facility, const char* text) {
  // The gapless guarantee is on by choice: its "experimental" notice is not news.
  if (std::string_view(facility) == "CONFWARN" &&
      std::string_view(text).find("gapless") != std::string_view::npos) {
    return;
  }
  if (level <= 3) {
    spdlog::error("[kafka] {}: {}", facility, text);
  } else if (level <= 4) {
    spdlog::warn("[kafka] {}: {}", facility, text);
  } else {
    spdlog::info("[kafka] {}: {}", facility, text);
  }
}

rd_kafka_resp_err_t Enqueue(rd_kafka_t* rk, const std::string& topic, int32_t partition,
                            std::string_view key, std::string_view value,
                            const std::vector<Header>& headers, void* opaque, std::string* what) {
  rd_kafka_headers_t* list = rd_kafka_headers_new(headers.size());
  for (const Header& h : headers) {
    if (h.value == nullptr) continue;
    rd_kafka_header_add(list, h.name, -1, h.value->data(), static_cast<ssize_t>(h.value->size()));
  }
  rd_kafka_vu_t vus[7];
  vus[0].vtype = RD_KAFKA_VTYPE_TOPIC;
  vus[0].u.cstr = topic.c_str();
  vus[1].vtype = RD_KAFKA_VTYPE_PARTITION;
  vus[1].u.i32 = partition;
  vus[2].vtype = RD_KAFKA_VTYPE_KEY;
  vus[2].u.mem.ptr = key.empty() ? nullptr : const_cast<char*>(key.data());
  vus[2].u.mem.size = key.size();
  vus[3].vtype = RD_KAFKA_VTYPE_VALUE;
  vus[3].u.mem.ptr = const_cast<char*>(value.data());
  vus[3].u.mem.size = value.size();
  vus[4].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  vus[4].u.i = RD_KAFKA_MSG_F_COPY;
  vus[5].vtype = RD_KAFKA_VTYPE_HEADERS;
  vus[5].u.headers = list;
  vus[6].vtype = RD_KAFKA_VTYPE_OPAQUE;
  vus[6].u.ptr = opaque;
  rd_kafka_error_t* error = rd_kafka_produceva(rk, vus, 7);
  if (error == nullptr) return RD_KAFKA_RESP_ERR_NO_ERROR;
  const rd_kafka_resp_err_t code = rd_kafka_error_code(error);
  *what = rd_kafka_error_string(error);
  rd_kafka_error_destroy(error);
  rd_kafka_headers_destroy(list);  // still ours when produce failed
  return code;
}

void WaitForDeliveries(Producer& producer, std::chrono::milliseconds timeout,
                       std::atomic<uint64_t>& waited_micros) {
  const auto start = std::chrono::steady_clock::now();
  while (rd_kafka_outq_len(producer.rk) > 0 && producer.failed().empty()) {
    if (std::chrono::steady_clock::now() - start > timeout) {
      producer.Fail(
          absl::StrCat("no delivery report for ", timeout.count(), " ms (kafka.flush_timeout_ms)"));
      break;
    }
    rd_kafka_flush(producer.rk, 100);
  }
  waited_micros.fetch_add(std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count(),
                          std::memory_order_relaxed);
}

absl::StatusOr<rd_kafka_conf_t*> MakeConf(
    const KafkaConfig& config, const std::vector<std::pair<std::string, std::string>>& settings) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::vector<std::pair<std::string, std::string>> all = {
      {"bootstrap.servers", config.bootstrap_servers},
      {"socket.connection.setup.timeout.ms", "10000"},
      {"reconnect.backoff.max.ms", "2000"},
      {"log_level", "4"},
  };
  all.insert(all.end(), settings.begin(), settings.end());
  for (const auto& [name, value] : config.properties) all.emplace_back(name, value);
  for (const auto& [name, value] : all) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error, sizeof error) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(absl::StrCat("kafka.properties: ", name, ": ", error));
    }
  }
  rd_kafka_conf_set_log_cb(conf, &LogToSpdlog);
  return conf;
}

absl::StatusOr<std::unique_ptr<Producer>> MakeProducer(const KafkaConfig& config,
                                                       const std::string& client_id,
                                                       std::atomic<uint64_t>* delivered,
                                                       std::atomic<uint64_t>* delivery_errors) {
  // Safe defaults (the config refuses properties that would weaken them).
  auto conf = MakeConf(config, {
                                   {"client.id", client_id},
                                   {"enable.idempotence", "true"},
                                   {"acks", "all"},
                                   {"enable.gapless.guarantee", "true"},
                                   {"linger.ms", "5"},
                                   {"message.timeout.ms", "0"},
                               });
  if (!conf.ok()) return conf.status();
  auto producer = std::make_unique<Producer>();
  producer->delivered = delivered;
  producer->delivery_errors = delivery_errors;
  rd_kafka_conf_set_opaque(*conf, producer.get());
  rd_kafka_conf_set_dr_msg_cb(*conf, &OnDelivery);
  rd_kafka_conf_set_error_cb(*conf, &OnError);
  char error[512];
  producer->rk = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, error, sizeof error);
  if (producer->rk == nullptr) {
    rd_kafka_conf_destroy(*conf);
    return absl::InvalidArgumentError(absl::StrCat("kafka: cannot create a producer: ", error));
  }
  return producer;
}

absl::StatusOr<int> TopicPartitions(rd_kafka_t* rk, const std::string& topic) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const struct rd_kafka_metadata* md = nullptr;
  const rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, kMetadataTimeoutMs);
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(
        absl::StrCat("cannot read the metadata of topic ", topic, ": ", rd_kafka_err2str(err)));
  }
  int count = 0;
  absl::Status status;
  if (md->topic_cnt == 1) {
    const rd_kafka_resp_err_t topic_err = md->topics[0].err;
    if (topic_err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      count = md->topics[0].partition_cnt;
    } else if (topic_err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      status =
          absl::UnavailableError(absl::StrCat("topic ", topic, ": ", rd_kafka_err2str(topic_err)));
    }
  }
  rd_kafka_metadata_destroy(md);
  if (!status.ok()) return status;
  return count;
}

namespace {

absl::Status CreateTopic(rd_kafka_t* rk, const KafkaConfig& config, const std::string& topic,
                         const std::vector<std::pair<std::string, std::string>>& topic_config) {
  char error[512];
  rd_kafka_NewTopic_t* spec = rd_kafka_NewTopic_new(topic.c_str(), config.partitions,
                                                    config.replication_factor, error, sizeof error);
  if (spec == nullptr) return absl::InvalidArgumentError(error);
  for (const auto& [name, value] : topic_config) {
    rd_kafka_NewTopic_set_config(spec, name.c_str(), value.c_str());
  }
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(options, kAdminTimeoutMs, error, sizeof error);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &spec, 1, options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, kAdminTimeoutMs + 5000);
  absl::Status status = absl::DeadlineExceededError("no answer");
  if (event != nullptr) {
    if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      status = absl::UnavailableError(rd_kafka_event_error_string(event));
    } else if (const auto* result = rd_kafka_event_CreateTopics_result(event)) {
      size_t n = 0;
      const rd_kafka_topic_result_t** topics = rd_kafka_CreateTopics_result_topics(result, &n);
      status = absl::OkStatus();
      for (size_t i = 0; i < n; ++i) {
        const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(topics[i]);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
          const char* why = rd_kafka_topic_result_error_string(topics[i]);
          status = absl::PermissionDeniedError(why != nullptr ? why : rd_kafka_err2str(err));
        }
      }
    }
    rd_kafka_event_destroy(event);
  }
  rd_kafka_queue_destroy(queue);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_NewTopic_destroy(spec);
  return status;
}

}  // namespace

absl::StatusOr<int> EnsureTopic(
    rd_kafka_t* rk, const KafkaConfig& config, const std::string& topic, const char* what,
    const std::vector<std::pair<std::string, std::string>>& topic_config) {
  auto partitions = TopicPartitions(rk, topic);
  if (partitions.ok() && *partitions == 0) {
    if (absl::Status s = CreateTopic(rk, config, topic, topic_config); !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          what, " ", topic, " does not exist and cannot be created (", s.message(),
          "): create it with ", config.partitions, " partitions, or let this client create it"));
    }
    spdlog::info("[kafka] created topic {} with {} partitions", topic, config.partitions);
    // A new topic takes a moment to show in the metadata.
    for (int attempt = 0; attempt < 50; ++attempt) {
      partitions = TopicPartitions(rk, topic);
      if (!partitions.ok() || *partitions > 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  if (partitions.ok() && *partitions == 0) {
    return absl::UnavailableError(
        absl::StrCat(what, " ", topic, " was created but has no partitions yet"));
  }
  if (!partitions.ok()) {
    return absl::UnavailableError(
        absl::StrCat("kafka at ", config.bootstrap_servers, ": ", partitions.status().message()));
  }
  if (*partitions != config.partitions) {
    spdlog::warn("[kafka] topic {} has {} partitions (kafka.partitions: {}): using {}", topic,
                 *partitions, config.partitions, *partitions);
  }
  return partitions;
}

}  // namespace shapebridge::kafka
