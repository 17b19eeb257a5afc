#include "bridge/kafka/shape_topic.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bridge/kafka/client.h"
#include "bridge/log/record_codec.h"
#include "bridge/log/shape_log.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "shapebridge/log/v1/shapelog.pb.h"
#include "spdlog/spdlog.h"

namespace shapebridge::kafka {
namespace {

using google::protobuf::internal::WireFormatLite;

// ShapeLogRecord's fields (shapelog.proto).
enum RecordField : uint32_t {
  kStart = 1,
  kEntry = 2,
  kSnapshotDone = 3,
  kRouted = 4,
  kRetired = 5,
  kEpoch = 6,
};

// What routing a record needs, read without parsing the whole record (an entry's change may be
// large): which record it is, its instance id, an entry's offset, a Routed or Epoch number.
struct Peeked {
  uint32_t field = 0;
  std::string_view id;
  uint64_t number = 0;  // Entry.lsn, Routed.lsn, Epoch.epoch
  uint32_t index = 0;   // Entry.index
};

bool Peek(std::string_view payload, Peeked* out) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(payload.data()),
                                            static_cast<int>(payload.size()));
  uint32_t tag = in.ReadTag();
  if (tag == 0 ||
      WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
    return false;
  }
  out->field = WireFormatLite::GetTagFieldNumber(tag);
  uint32_t length = 0;
  if (!in.ReadVarint32(&length)) return false;
  const auto limit = in.PushLimit(static_cast<int>(length));
  while ((tag = in.ReadTag()) != 0) {
    const uint32_t field = WireFormatLite::GetTagFieldNumber(tag);
    const auto wire = WireFormatLite::GetTagWireType(tag);
    if (field == 1 && wire == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t n = 0;
      if (!in.ReadVarint32(&n)) return false;
      const int at = in.CurrentPosition();
      if (static_cast<size_t>(at) + n > payload.size()) return false;
      out->id = payload.substr(at, n);
      if (!in.Skip(static_cast<int>(n))) return false;
    } else if ((field == 1 || (out->field == kEntry && field == 2)) &&
               wire == WireFormatLite::WIRETYPE_VARINT) {
      if (!in.ReadVarint64(&out->number)) return false;
    } else if (out->field == kEntry && field == 3 && wire == WireFormatLite::WIRETYPE_VARINT) {
      if (!in.ReadVarint32(&out->index)) return false;
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
  }
  in.PopLimit(limit);
  return true;
}

const char* TypeName(uint32_t field) {
  switch (field) {
    case kStart:
      return "start";
    case kEntry:
      return "entry";
    case kSnapshotDone:
      return "snapshot_done";
    case kRouted:
      return "routed";
    case kRetired:
      return "retired";
    case kEpoch:
      return "epoch";
    default:
      return "unknown";
  }
}

int32_t PartitionOf(std::string_view key, int partitions) {
  return rd_kafka_msg_partitioner_murmur2(nullptr, key.data(), key.size(), partitions, nullptr,
                                          nullptr);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writer

ShapeTopicWriter::ShapeTopicWriter(KafkaConfig config, int partitions)
    : config_(std::move(config)), topic_(config_.ShapeTopic()), partitions_(partitions) {}

ShapeTopicWriter::~ShapeTopicWriter() = default;

absl::StatusOr<std::unique_ptr<ShapeTopicWriter>> ShapeTopicWriter::Create(
    const KafkaConfig& config) {
  auto stats = std::make_unique<ShapeTopicStats>();
  auto producer = MakeProducer(config, "shapebridge-replicator-shapes", &stats->delivered,
                               &stats->delivery_errors);
  if (!producer.ok()) return producer.status();
  // A server node that starts reads the epoch from its beginning: nothing of it may expire.
  auto partitions = EnsureTopic((*producer)->rk, config, config.ShapeTopic(), "the shape topic",
                                {{"retention.ms", "-1"}, {"retention.bytes", "-1"}});
  if (!partitions.ok()) return partitions.status();
  std::unique_ptr<ShapeTopicWriter> writer(new ShapeTopicWriter(config, *partitions));
  writer->stats_ = std::move(stats);
  writer->producer_ = *std::move(producer);
  return writer;
}

absl::Status ShapeTopicWriter::Produce(int32_t partition, std::string_view key,
                                       std::string_view value, const char* type,
                                       const std::string* lsn, const std::string* index,
                                       int64_t* offset) {
  const auto start = std::chrono::steady_clock::now();
  while (true) {
    if (std::string failure = producer_->failed(); !failure.empty()) {
      return absl::UnavailableError(absl::StrCat("kafka: shape topic ", topic_, ": ", failure));
    }
    const std::string type_text = type;
    std::string what;
    const rd_kafka_resp_err_t code =
        Enqueue(producer_->rk, topic_, partition, key, value,
                {{"type", &type_text}, {"epoch", &epoch_text_}, {"lsn", lsn}, {"index", index}},
                offset, &what);
    if (code == RD_KAFKA_RESP_ERR_NO_ERROR) break;
    if (code == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
      producer_->Fail(absl::StrCat("a ", type, " record of ", value.size(),
                                   " bytes is more than the producer may send (", what,
                                   "): raise message.max.bytes in kafka.properties and on the "
                                   "topic"));
      continue;
    }
    if (code != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      producer_->Fail(absl::StrCat("produce failed: ", what));
      continue;
    }
    // The queue drains as deliveries are reported; not for ever while Kafka is away.
    rd_kafka_poll(producer_->rk, 100);
    if (std::chrono::steady_clock::now() - start > config_.flush_timeout) {
      producer_->Fail(absl::StrCat("the producer's queue stayed full for ",
                                   config_.flush_timeout.count(), " ms (kafka.flush_timeout_ms)"));
    }
  }
  stats_->produced.fetch_add(1, std::memory_order_relaxed);
  rd_kafka_poll(producer_->rk, 0);
  return absl::OkStatus();
}

absl::Status ShapeTopicWriter::Flush() {
  WaitForDeliveries(*producer_, config_.flush_timeout, stats_->flush_micros);
  if (std::string failure = producer_->failed(); !failure.empty()) {
    return absl::UnavailableError(absl::StrCat("kafka: shape topic ", topic_, ": ", failure));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> ShapeTopicWriter::BeginEpoch(uint64_t epoch) {
  epoch_text_ = absl::StrCat(epoch);
  log::v1::ShapeLogRecord record;
  record.mutable_epoch()->set_epoch(epoch);
  const std::string value = record.SerializeAsString();
  std::vector<int64_t> offsets(partitions_, -1);
  for (int32_t p = 0; p < partitions_; ++p) {
    if (absl::Status s = Produce(p, "", value, "epoch", nullptr, nullptr, &offsets[p]); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = Flush(); !s.ok()) return s;
  for (int64_t offset : offsets) {
    if (offset < 0) return absl::InternalError("an Epoch record was delivered without an offset");
  }
  stats_->epoch.store(epoch);
  return offsets;
}

absl::Status ShapeTopicWriter::Publish(std::string_view frames, Lsn routed) {
  bool produced = false;
  std::string lsn;
  std::string index;
  while (!frames.empty()) {
    std::string_view payload;
    size_t frame_bytes = 0;
    if (logrecord::ParseFrame(frames, &payload, &frame_bytes) != logrecord::FrameStatus::kOk) {
      return absl::InternalError("the shape log handed over a torn journal frame");
    }
    frames.remove_prefix(frame_bytes);
    Peeked record;
    if (!Peek(payload, &record)) {
      return absl::InternalError("the shape log handed over a record that does not parse");
    }
    // Routed records are replaced by one per partition below.
    if (record.field == kRouted) continue;
    if (record.id.size() != 16) {
      return absl::InternalError(
          absl::StrCat("a ", TypeName(record.field), " record without an instance id"));
    }
    const bool entry = record.field == kEntry;
    if (entry) {
      lsn = Lsn(record.number).ToString();
      index = absl::StrCat(record.index);
    }
    if (absl::Status s =
            Produce(PartitionOf(record.id, partitions_), record.id, payload, TypeName(record.field),
                    entry ? &lsn : nullptr, entry ? &index : nullptr, nullptr);
        !s.ok()) {
      return s;
    }
    produced = true;
  }
  if (produced || routed > routed_) {
    log::v1::ShapeLogRecord record;
    record.mutable_routed()->set_lsn(routed.value());
    const std::string value = record.SerializeAsString();
    lsn = routed.ToString();
    for (int32_t p = 0; p < partitions_; ++p) {
      if (absl::Status s = Produce(p, "", value, "routed", &lsn, nullptr, nullptr); !s.ok()) {
        return s;
      }
    }
    routed_ = std::max(routed_, routed);
  }
  if (absl::Status s = Flush(); !s.ok()) return s;
  stats_->durable_lsn.store(routed_.value(), std::memory_order_relaxed);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Reader

struct ShapeTopicReader::Consumer {
  rd_kafka_t* rk = nullptr;
  ~Consumer() {
    if (rk == nullptr) return;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
};

ShapeTopicReader::ShapeTopicReader(KafkaConfig config, int partitions)
    : config_(std::move(config)), topic_(config_.ShapeTopic()), partitions_(partitions) {}

ShapeTopicReader::~ShapeTopicReader() { Stop(); }

absl::StatusOr<std::unique_ptr<ShapeTopicReader>> ShapeTopicReader::Create(
    const KafkaConfig& config) {
  // Offsets are the reader's own (no commits): the group is only what assign() needs.
  auto conf = MakeConf(
      config,
      {{"client.id", "shapebridge-server"},
       {"group.id", absl::StrCat("shapebridge-server-", getpid(), "-",
                                 std::chrono::steady_clock::now().time_since_epoch().count())},
       {"enable.auto.commit", "false"},
       {"enable.auto.offset.store", "false"},
       {"auto.offset.reset", "earliest"},
       {"fetch.wait.max.ms", "20"},
       {"enable.partition.eof", "false"}});
  if (!conf.ok()) return conf.status();
  char error[512];
  auto consumer = std::make_unique<Consumer>();
  consumer->rk = rd_kafka_new(RD_KAFKA_CONSUMER, *conf, error, sizeof error);
  if (consumer->rk == nullptr) {
    rd_kafka_conf_destroy(*conf);
    return absl::InvalidArgumentError(absl::StrCat("kafka: cannot create a consumer: ", error));
  }
  rd_kafka_poll_set_consumer(consumer->rk);
  auto partitions = EnsureTopic(consumer->rk, config, config.ShapeTopic(), "the shape topic",
                                {{"retention.ms", "-1"}, {"retention.bytes", "-1"}});
  if (!partitions.ok()) return partitions.status();
  std::unique_ptr<ShapeTopicReader> reader(new ShapeTopicReader(config, *partitions));
  reader->stats_ = std::make_unique<ShapeTopicStats>();
  reader->consumer_ = std::move(consumer);
  return reader;
}

absl::Status ShapeTopicReader::Start(ShapeLog& log, const std::vector<int64_t>& start,
                                     std::function<void()> caught_up) {
  log_ = &log;
  on_caught_up_ = std::move(caught_up);
  epochs_.assign(partitions_, 0);
  end_at_start_.assign(partitions_, 0);
  begin_.assign(partitions_, 0);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions_);
  for (int32_t p = 0; p < partitions_; ++p) {
    int64_t low = 0;
    int64_t high = 0;
    const rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(consumer_->rk, topic_.c_str(), p, &low, &high, 10'000);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_topic_partition_list_destroy(list);
      return absl::UnavailableError(absl::StrCat("kafka: the offsets of ", topic_, " partition ", p,
                                                 ": ", rd_kafka_err2str(err)));
    }
    end_at_start_[p] = high;
    const bool known =
        p < static_cast<int32_t>(start.size()) && start[p] >= low && start[p] <= high;
    begin_[p] = known ? start[p] : low;
    rd_kafka_topic_partition_list_add(list, topic_.c_str(), p)->offset = begin_[p];
  }
  const rd_kafka_resp_err_t err = rd_kafka_assign(consumer_->rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(
        absl::StrCat("kafka: cannot read ", topic_, ": ", rd_kafka_err2str(err)));
  }
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void ShapeTopicReader::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ShapeTopicReader::Run() {
  // The next offset to read in each partition, to tell when the initial read is done.
  std::vector<int64_t> next = begin_;
  auto caught_up = [&] {
    for (int32_t p = 0; p < partitions_; ++p) {
      if (next[p] < end_at_start_[p]) return false;
    }
    return true;
  };
  auto reached = [&] {
    spdlog::info("[kafka] read {} up to where it ended at the start", topic_);
    if (on_caught_up_) on_caught_up_();
    stats_->caught_up = true;
  };
  if (caught_up()) reached();
  auto last_warning = std::chrono::steady_clock::time_point();
  while (!stop_.load()) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_->rk, 100);
    if (m == nullptr) continue;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      stats_->consume_errors.fetch_add(1, std::memory_order_relaxed);
      if (std::chrono::steady_clock::now() - last_warning > std::chrono::seconds(10)) {
        last_warning = std::chrono::steady_clock::now();
        spdlog::warn("[kafka] reading {}: {}", topic_, rd_kafka_message_errstr(m));
      }
      rd_kafka_message_destroy(m);
      continue;
    }
    const int32_t p = m->partition;
    uint64_t epoch = 0;
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const void* value = nullptr;
      size_t size = 0;
      if (rd_kafka_header_get_last(headers, "epoch", &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (!absl::SimpleAtoi(absl::string_view(static_cast<const char*>(value), size), &epoch)) {
          epoch = 0;
        }
      }
    }
    const std::string_view payload(static_cast<const char*>(m->payload), m->len);
    Peeked record;
    stats_->consumed.fetch_add(1, std::memory_order_relaxed);
    if (p >= 0 && p < partitions_ && Peek(payload, &record)) {
      if (record.field == kEpoch) epoch = record.number;
      if (epoch < epochs_[p]) {
        stats_->fenced.fetch_add(1, std::memory_order_relaxed);
      } else {
        if (epoch > epochs_[p]) {
          if (epochs_[p] != 0) {
            log_->ResetPartition(p,
                                 absl::StrCat("another replicator took over (epoch ", epoch, ")"));
          }
          epochs_[p] = epoch;
        }
        if (record.field != kEpoch) {
          if (absl::Status s = log_->ApplyRemote(p, payload); !s.ok()) {
            stats_->consume_errors.fetch_add(1, std::memory_order_relaxed);
            spdlog::warn("[kafka] {} partition {} offset {}: {}", topic_, p, m->offset,
                         std::string(s.message()));
          }
        }
      }
    }
    if (p >= 0 && p < partitions_) next[p] = m->offset + 1;
    rd_kafka_message_destroy(m);
    if (!stats_->caught_up.load() && caught_up()) reached();
  }
}

}  // namespace shapebridge::kafka
