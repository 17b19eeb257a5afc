#include "bridge/kafka/change_sink.h"

#include "bridge/kafka/client.h"

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

absl::StatusOr<std::unique_ptr<ChangeSink>> ChangeSink::Create(
    const KafkaConfig& config, std::map<std::string, std::vector<std::string>> keys) {
  auto stats = std::make_unique<ChangeSinkStats>();
  auto producer =
      MakeProducer(config, "shapebridge-replicator", &stats->delivered, &stats->delivery_errors);
  if (!producer.ok()) return producer.status();
  stats->producers.fetch_add(1, std::memory_order_relaxed);
  auto partitions = EnsureTopic((*producer)->rk, config, config.ChangeTopic(), "the change topic");
  if (!partitions.ok()) return partitions.status();
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
  auto producer =
      MakeProducer(config_, "shapebridge-replicator", &stats_->delivered, &stats_->delivery_errors);
  if (!producer.ok()) return producer.status();
  stats_->producers.fetch_add(1, std::memory_order_relaxed);
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
    std::string what;
    const rd_kafka_resp_err_t code =
        Enqueue(producer_->rk, topic_, partition, key, value,
                {{"lsn", &lsn}, {"index", &index}, {"type", &type}}, nullptr, &what);
    if (code == RD_KAFKA_RESP_ERR_NO_ERROR) break;
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
  // Every delivery report of what was produced so far.
  WaitForDeliveries(*producer_, config_.flush_timeout, stats_->flush_micros);
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
