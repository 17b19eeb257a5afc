#include "bridge/kafka/change_sink.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace shapebridge::kafka {
namespace {

constexpr int kMetadataTimeoutMs = 10'000;
constexpr int kAdminTimeoutMs = 30'000;

// A column value in the change topic's JSON (README, "The change topic").
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
      if (std::isnan(v.float_value())) return "NaN";
      if (std::isinf(v.float_value())) return v.float_value() > 0 ? "Infinity" : "-Infinity";
      return v.float_value();
    case ValueKind::kJson: {
      nlohmann::json parsed = nlohmann::json::parse(v.string_value(), nullptr, false);
      return parsed.is_discarded() ? nlohmann::json(v.string_value()) : parsed;
    }
    case ValueKind::kBytes:
      return absl::StrCat("\\x", absl::BytesToHexString(v.string_value()));
    case ValueKind::kTimestamp:
    case ValueKind::kTimestampTz:
    case ValueKind::kDate:
      return v.DebugString();
    default:  // numeric, text, uuid, arrays, other types: their text form
      return v.string_value();
  }
}

}  // namespace

struct ChangeSink::Producer {
  rd_kafka_t* rk = nullptr;
  ChangeSinkStats* stats = nullptr;
  std::atomic<bool> closing{false};
  std::mutex mu;
  std::string failure;  // the first failed delivery or fatal error ("" while healthy)
  std::atomic<bool> has_failure{false};  // set with failure: checked per record without the lock

  ~Producer() {
    if (rk == nullptr) return;
    // Records not yet delivered are dropped: the session that follows produces them again.
    closing.store(true);
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(rk, 1000);
    rd_kafka_destroy(rk);
  }

  void Fail(std::string what) {
    std::lock_guard lock(mu);
    if (failure.empty()) failure = std::move(what);
    has_failure.store(true);
  }
  std::string failed() {
    if (!has_failure.load()) return std::string();
    std::lock_guard lock(mu);
    return failure;
  }

  static void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<Producer*>(opaque);
    if (self->closing.load()) return;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      self->stats->delivered.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    self->stats->delivery_errors.fetch_add(1, std::memory_order_relaxed);
    self->Fail(absl::StrCat("delivery to ", rd_kafka_topic_name(m->rkt), " partition ",
                            m->partition, " failed: ", rd_kafka_err2str(m->err)));
  }

  static void OnLog(const rd_kafka_t*, int level, const char* facility, const char* text) {
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

  static void OnError(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
    auto* self = static_cast<Producer*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      char why[512];
      const rd_kafka_resp_err_t code = rd_kafka_fatal_error(rk, why, sizeof why);
      self->Fail(absl::StrCat("fatal producer error: ", rd_kafka_err2name(code), ": ", why));
      return;
    }
    // Broker connections come and go; the producer retries on its own.
    spdlog::warn("[kafka] {}: {}", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)),
                 reason);
  }
};

namespace {

absl::StatusOr<std::unique_ptr<ChangeSink::Producer>> MakeProducer(const KafkaConfig& config,
                                                                   ChangeSinkStats* stats) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // Safe defaults: every record acknowledged by all in-sync replicas, in order, once; a record
  // that cannot be delivered without a gap stops the producer (a fatal error) instead.
  std::vector<std::pair<std::string, std::string>> settings = {
      {"bootstrap.servers", config.bootstrap_servers},
      {"client.id", "shapebridge-replicator"},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"enable.gapless.guarantee", "true"},
      {"linger.ms", "5"},
      {"message.timeout.ms", "0"},
      {"socket.connection.setup.timeout.ms", "10000"},
      {"reconnect.backoff.max.ms", "2000"},
      {"log_level", "4"},
  };
  for (const auto& [name, value] : config.properties) settings.emplace_back(name, value);
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error, sizeof error) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(absl::StrCat("kafka.properties: ", name, ": ", error));
    }
  }
  auto producer = std::make_unique<ChangeSink::Producer>();
  producer->stats = stats;
  rd_kafka_conf_set_opaque(conf, producer.get());
  rd_kafka_conf_set_dr_msg_cb(conf, &ChangeSink::Producer::OnDelivery);
  rd_kafka_conf_set_error_cb(conf, &ChangeSink::Producer::OnError);
  rd_kafka_conf_set_log_cb(conf, &ChangeSink::Producer::OnLog);
  producer->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
  if (producer->rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(absl::StrCat("kafka: cannot create a producer: ", error));
  }
  stats->producers.fetch_add(1, std::memory_order_relaxed);
  return producer;
}

// The topic's partition count; 0 when it does not exist.
absl::StatusOr<int> Partitions(rd_kafka_t* rk, const std::string& topic) {
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

absl::Status CreateTopic(rd_kafka_t* rk, const KafkaConfig& config, const std::string& topic) {
  char error[512];
  rd_kafka_NewTopic_t* spec = rd_kafka_NewTopic_new(topic.c_str(), config.partitions,
                                                    config.replication_factor, error, sizeof error);
  if (spec == nullptr) return absl::InvalidArgumentError(error);
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

absl::StatusOr<std::unique_ptr<ChangeSink>> ChangeSink::Create(
    const KafkaConfig& config, std::map<std::string, std::vector<std::string>> keys) {
  auto stats = std::make_unique<ChangeSinkStats>();
  auto producer = MakeProducer(config, stats.get());
  if (!producer.ok()) return producer.status();
  const std::string topic = config.ChangeTopic();
  auto partitions = Partitions((*producer)->rk, topic);
  if (partitions.ok() && *partitions == 0) {
    if (absl::Status s = CreateTopic((*producer)->rk, config, topic); !s.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the change topic ", topic, " does not exist and cannot be created (", s.message(),
          "): create it with ", config.partitions, " partitions, or let this client create it"));
    }
    spdlog::info("[kafka] created topic {} with {} partitions", topic, config.partitions);
    // A new topic takes a moment to show in the metadata.
    for (int attempt = 0; attempt < 50; ++attempt) {
      partitions = Partitions((*producer)->rk, topic);
      if (!partitions.ok() || *partitions > 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  if (partitions.ok() && *partitions == 0) {
    return absl::UnavailableError(
        absl::StrCat("the change topic ", topic, " was created but has no partitions yet"));
  }
  if (!partitions.ok()) {
    return absl::UnavailableError(
        absl::StrCat("kafka at ", config.bootstrap_servers, ": ", partitions.status().message()));
  }
  if (*partitions != config.partitions) {
    spdlog::warn("[kafka] topic {} has {} partitions (kafka.partitions: {}): using {}", topic,
                 *partitions, config.partitions, *partitions);
  }
  std::unique_ptr<ChangeSink> sink(new ChangeSink(config, std::move(keys), *partitions));
  sink->stats_ = std::move(stats);
  sink->producer_ = *std::move(producer);
  return sink;
}

ChangeSink::ChangeSink(KafkaConfig config, std::map<std::string, std::vector<std::string>> keys,
                       int partitions)
    : config_(std::move(config)),
      topic_(config_.ChangeTopic()),
      keys_(std::move(keys)),
      partitions_(partitions) {}

ChangeSink::~ChangeSink() = default;

absl::Status ChangeSink::Ready() {
  if (producer_) {
    const std::string failure = producer_->failed();
    if (failure.empty()) return absl::OkStatus();
    // A failure noticed while serving callbacks is reported first: it ends the session, so
    // nothing after it is taken as passed on.
    if (!failure_reported_) {
      failure_reported_ = true;
      return absl::UnavailableError(absl::StrCat("kafka: ", failure));
    }
    // Reported by the last call (which ended the session): start over with a new producer. What
    // the old one held is gone: only DurableLsn() is known to be in Kafka, and the replicator
    // resumes there.
    producer_.reset();
    last_commit_ = durable_;
    idle_ = durable_;
  }
  auto producer = MakeProducer(config_, stats_.get());
  if (!producer.ok()) return producer.status();
  producer_ = *std::move(producer);
  failure_reported_ = false;
  return absl::OkStatus();
}

absl::Status ChangeSink::Produce(int32_t partition, const std::string& key,
                                 const std::string& value, const std::string& type,
                                 const std::string& lsn, const std::string& index) {
  if (absl::Status s = Ready(); !s.ok()) return s;
  const auto start = std::chrono::steady_clock::now();
  while (true) {
    rd_kafka_headers_t* headers = rd_kafka_headers_new(3);
    rd_kafka_header_add(headers, "lsn", -1, lsn.data(), static_cast<ssize_t>(lsn.size()));
    rd_kafka_header_add(headers, "index", -1, index.data(), static_cast<ssize_t>(index.size()));
    rd_kafka_header_add(headers, "type", -1, type.data(), static_cast<ssize_t>(type.size()));
    rd_kafka_vu_t vus[6];
    vus[0].vtype = RD_KAFKA_VTYPE_TOPIC;
    vus[0].u.cstr = topic_.c_str();
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
    vus[5].u.headers = headers;
    rd_kafka_error_t* error = rd_kafka_produceva(producer_->rk, vus, 6);
    if (error == nullptr) break;
    const rd_kafka_resp_err_t code = rd_kafka_error_code(error);
    const std::string what = rd_kafka_error_string(error);
    rd_kafka_error_destroy(error);
    rd_kafka_headers_destroy(headers);  // still ours when produce failed
    if (code == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
      // It would fail the same way every time: replicating cannot go on past it.
      return absl::FailedPreconditionError(
          absl::StrCat("kafka: a ", type, " record of the transaction at ", lsn, " is ",
                       value.size(), " bytes, more than the producer may send (", what,
                       "): raise message.max.bytes in kafka.properties and on the topic"));
    }
    if (code != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      producer_->Fail(absl::StrCat("produce failed: ", what));
      failure_reported_ = true;
      return absl::UnavailableError(absl::StrCat("kafka: produce failed: ", what));
    }
    // The queue drains as deliveries are reported; not for ever while Kafka is away.
    rd_kafka_poll(producer_->rk, 100);
    if (absl::Status s = Ready(); !s.ok()) return s;
    if (std::chrono::steady_clock::now() - start > config_.flush_timeout) {
      producer_->Fail(absl::StrCat("the producer's queue stayed full for ",
                                   config_.flush_timeout.count(), " ms (kafka.flush_timeout_ms)"));
      failure_reported_ = true;
      return absl::UnavailableError(absl::StrCat("kafka: the producer's queue stayed full for ",
                                                 config_.flush_timeout.count(), " ms"));
    }
  }
  stats_->produced.fetch_add(1, std::memory_order_relaxed);
  rd_kafka_poll(producer_->rk, 0);
  return absl::OkStatus();
}

absl::Status ChangeSink::OnRelation(const RelationInfo& relation) {
  if (absl::Status s = Ready(); !s.ok()) return s;
  Table table;
  table.name = relation.QualifiedName();
  for (const auto& c : relation.columns) table.columns.push_back(c.name);
  // The primary key columns in key order; without a primary key, every column.
  if (auto keys = keys_.find(table.name); keys != keys_.end()) {
    for (const std::string& k : keys->second) {
      auto it = std::find(table.columns.begin(), table.columns.end(), k);
      if (it != table.columns.end()) table.key.push_back(it - table.columns.begin());
    }
  } else {
    for (size_t i = 0; i < table.columns.size(); ++i) table.key.push_back(i);
  }
  tables_[relation.id.value()] = std::move(table);
  return absl::OkStatus();
}

absl::Status ChangeSink::OnBegin(const TransactionBegin& begin) {
  if (absl::Status s = Ready(); !s.ok()) return s;
  txn_ = begin;
  lsn_text_ = begin.commit_lsn.ToString();
  index_ = 0;
  return absl::OkStatus();
}

absl::Status ChangeSink::OnChange(RowChange change) {
  auto table = tables_.find(change.relation.value());
  if (table == tables_.end()) {
    return absl::InternalError(
        absl::StrCat("a change of relation ", change.relation.value(), " before its description"));
  }
  const Table& t = table->second;
  const char* op = change.op == ChangeOp::kInsert   ? "insert"
                   : change.op == ChangeOp::kUpdate ? "update"
                                                    : "delete";
  // An unchanged (TOASTed) column of an UPDATE has its value in the old row (REPLICA IDENTITY
  // FULL).
  for (size_t i = 0; i < change.new_values.size() && i < change.old_values.size(); ++i) {
    if (change.new_values[i].is_unchanged() && !change.old_is_key_only) {
      change.new_values[i] = change.old_values[i];
    }
  }
  auto row = [&](const std::vector<Value>& values) {
    nlohmann::json r = nlohmann::json::object();
    for (size_t i = 0; i < values.size() && i < t.columns.size(); ++i) {
      r[t.columns[i]] = ValueJson(values[i]);
    }
    return r;
  };
  const std::vector<Value>& keyed =
      change.op == ChangeOp::kDelete ? change.old_values : change.new_values;
  nlohmann::json key = nlohmann::json::object();
  for (size_t k : t.key) {
    if (k < keyed.size()) key[t.columns[k]] = ValueJson(keyed[k]);
  }
  nlohmann::json value = {
      {"op", op},        {"table", t.name},         {"lsn", lsn_text_},
      {"index", index_}, {"xid", txn_.xid.value()}, {"commit_time", txn_.commit_time.ToString()},
      {"key", key}};
  if (!change.old_values.empty()) value["old"] = row(change.old_values);
  if (!change.new_values.empty()) value["new"] = row(change.new_values);
  const std::string record_key = nlohmann::json{{"table", t.name}, {"key", key}}.dump();
  const int32_t partition = rd_kafka_msg_partitioner_murmur2(
      nullptr, record_key.data(), record_key.size(), partitions_, nullptr, nullptr);
  absl::Status s =
      Produce(partition, record_key, value.dump(), op, lsn_text_, absl::StrCat(index_));
  ++index_;
  return s;
}

absl::Status ChangeSink::OnTruncate(const TruncateChange& truncate) {
  for (RelationId id : truncate.relations) {
    auto table = tables_.find(id.value());
    if (table == tables_.end()) continue;
    const std::string record_key = nlohmann::json{{"table", table->second.name}}.dump();
    nlohmann::json value = {
        {"op", "truncate"},        {"table", table->second.name},
        {"lsn", lsn_text_},        {"index", index_},
        {"xid", txn_.xid.value()}, {"commit_time", txn_.commit_time.ToString()}};
    const int32_t partition = rd_kafka_msg_partitioner_murmur2(
        nullptr, record_key.data(), record_key.size(), partitions_, nullptr, nullptr);
    absl::Status s =
        Produce(partition, record_key, value.dump(), "truncate", lsn_text_, absl::StrCat(index_));
    ++index_;
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ChangeSink::OnCommit(const TransactionCommit& commit) {
  last_commit_ = std::max(last_commit_, commit.end_lsn);
  return absl::OkStatus();
}

absl::Status ChangeSink::OnIdlePosition(Lsn position) {
  idle_ = std::max(idle_, position);
  return absl::OkStatus();
}

absl::Status ChangeSink::OnStreamReset(Lsn position, std::string_view reason) {
  spdlog::warn(
      "[kafka] the slot was created anew at {} ({}): changes before it may be missing "
      "from {}",
      position.ToString(), std::string(reason), config_.ChangeTopic());
  idle_ = std::max(idle_, position);
  return absl::OkStatus();
}

absl::Status ChangeSink::Sync() {
  if (absl::Status s = Ready(); !s.ok()) return s;
  const auto start = std::chrono::steady_clock::now();
  // Every delivery report of what was produced so far.
  while (rd_kafka_outq_len(producer_->rk) > 0) {
    if (!producer_->failed().empty()) break;
    if (std::chrono::steady_clock::now() - start > config_.flush_timeout) {
      producer_->Fail(absl::StrCat("no delivery report for ", config_.flush_timeout.count(),
                                   " ms (kafka.flush_timeout_ms)"));
      break;
    }
    rd_kafka_flush(producer_->rk, 100);
  }
  stats_->flush_micros.fetch_add(std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now() - start)
                                     .count(),
                                 std::memory_order_relaxed);
  if (absl::Status s = Ready(); !s.ok()) return s;
  durable_ = std::max({durable_, last_commit_, idle_});
  stats_->durable_lsn.store(durable_.value(), std::memory_order_relaxed);
  // A checkpoint in every partition, now and then, once it says something new.
  const auto now = std::chrono::steady_clock::now();
  if (durable_ > checkpointed_ && now - last_checkpoint_ >= config_.checkpoint_interval) {
    const std::string value =
        nlohmann::json{{"op", "checkpoint"}, {"lsn", durable_.ToString()}}.dump();
    const std::string lsn = durable_.ToString();
    // Index -1: a checkpoint is not a change (a change may have the same LSN, at index 0).
    for (int32_t p = 0; p < partitions_; ++p) {
      if (absl::Status s = Produce(p, "", value, "checkpoint", lsn, "-1"); !s.ok()) return s;
    }
    checkpointed_ = durable_;
    last_checkpoint_ = now;
    stats_->checkpoints.fetch_add(1, std::memory_order_relaxed);
  }
  return absl::OkStatus();
}

}  // namespace shapebridge::kafka
