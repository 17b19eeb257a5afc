#include "bridge/log/embedded_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bridge/log/file_io.h"
#include "bridge/log/record_codec.h"
#include "shapebridge/log/v1/txlog.pb.h"

namespace shapebridge {
namespace {

namespace fs = std::filesystem;
using log::v1::TxLogRecord;

using fileio::ErrnoError;
using fileio::ReadWholeFile;

std::string SegmentName(uint64_t seq) { return absl::StrFormat("%016x.seg", seq); }

// Segment sequence numbers in `dir`, ascending.
absl::StatusOr<std::vector<uint64_t>> ListSegments(const std::string& dir) {
  std::vector<uint64_t> seqs;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != 20 || !name.ends_with(".seg")) continue;
    uint64_t seq = 0;
    if (absl::SimpleHexAtoi(name.substr(0, 16), &seq)) seqs.push_back(seq);
  }
  if (ec) {
    return absl::NotFoundError(absl::StrCat("cannot list log directory ", dir, ": ", ec.message()));
  }
  std::sort(seqs.begin(), seqs.end());
  return seqs;
}

// What a scan of one segment found.
struct SegmentScan {
  uint64_t boundary_offset = 0;  // end of the last record after which no transaction is open
  std::optional<Lsn> boundary_position;  // the position that boundary stands for, if the
                                         // segment holds one
  std::optional<Lsn> header_position;    // the position record at the top of the segment
};

SegmentScan ScanSegment(std::string_view data) {
  SegmentScan scan;
  bool in_txn = false;
  size_t offset = 0;
  bool first = true;
  TxLogRecord record;
  while (offset < data.size()) {
    std::string_view payload;
    size_t frame_bytes = 0;
    if (logrecord::ParseFrame(data.substr(offset), &payload, &frame_bytes) !=
            logrecord::FrameStatus::kOk ||
        !record.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      break;
    }
    offset += frame_bytes;
    std::optional<Lsn> position;
    switch (record.record_case()) {
      case TxLogRecord::kBegin:
        in_txn = true;
        break;
      case TxLogRecord::kCommit:
        in_txn = false;
        position = Lsn(record.commit().end_lsn());
        break;
      case TxLogRecord::kPosition:
        position = Lsn(record.position().lsn());
        break;
      case TxLogRecord::kReset:
        position = Lsn(record.reset().lsn());
        break;
      default:
        break;
    }
    if (first && record.record_case() == TxLogRecord::kPosition) scan.header_position = position;
    first = false;
    if (!in_txn) {
      scan.boundary_offset = offset;
      if (position) scan.boundary_position = position;
    }
  }
  return scan;
}

}  // namespace

struct EmbeddedLog::Impl {
  EmbeddedLogConfig config;
  EmbeddedLogStats* stats = nullptr;
  std::vector<std::pair<uint64_t, uint64_t>> closed;  // (seq, bytes) of closed segments
  uint64_t seq = 0;
  int fd = -1;
  uint64_t file_bytes = 0;  // written to the file (not necessarily synced)
  std::string buffer;       // appended, not yet written to the file
  Lsn written_through;      // boundary position of everything appended
  Lsn idle_position;        // not yet recorded
  bool in_txn = false;
  bool skipping = false;   // the open transaction is a replay of one the log holds
  uint64_t txn_start = 0;  // logical offset (file + buffer) where the open transaction began
  std::unordered_map<RelationId, RelationInfo> relations;  // as last appended
  TxLogRecord record;
  std::string scratch;

  std::string PathOf(uint64_t s) const { return (fs::path(config.dir) / SegmentName(s)).string(); }

  absl::Status Append() {
    scratch.clear();
    record.SerializeToString(&scratch);
    if (scratch.size() > logrecord::kMaxRecordBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("a row of ", scratch.size(), " bytes exceeds the log's record limit"));
    }
    logrecord::AppendFrame(scratch, &buffer);
    stats->records.fetch_add(1, std::memory_order_relaxed);
    stats->bytes.fetch_add(scratch.size() + logrecord::kFrameHeaderBytes,
                           std::memory_order_relaxed);
    if (buffer.size() >= config.write_buffer_bytes) return WriteBuffer();
    return absl::OkStatus();
  }

  absl::Status WriteBuffer() {
    if (absl::Status s = fileio::WriteAll(fd, buffer, "cannot write log segment", PathOf(seq));
        !s.ok()) {
      // Keep the file consistent with file_bytes: drop a partial write.
      (void)!ftruncate(fd, static_cast<off_t>(file_bytes));
      return s;
    }
    file_bytes += buffer.size();
    buffer.clear();
    return absl::OkStatus();
  }

  // Discards an open transaction (its session ended before the commit).
  absl::Status Rewind() {
    if (txn_start >= file_bytes) {
      buffer.resize(txn_start - file_bytes);
    } else {
      buffer.clear();
      if (ftruncate(fd, static_cast<off_t>(txn_start)) != 0) {
        return ErrnoError("cannot truncate log segment", PathOf(seq));
      }
      file_bytes = txn_start;
    }
    // Relation records of the discarded part are gone too: write them again when next seen.
    relations.clear();
    in_txn = false;
    skipping = false;
    return absl::OkStatus();
  }

  absl::Status OpenSegment(uint64_t s, bool create) {
    const std::string path = PathOf(s);
    const int flags = O_WRONLY | O_APPEND | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0);
    fd = open(path.c_str(), flags, 0644);
    if (fd < 0) return ErrnoError("cannot open log segment", path);
    seq = s;
    if (create) {
      file_bytes = 0;
      fileio::SyncDirectory(config.dir);
    }
    return absl::OkStatus();
  }

  // Starts a new segment: a position header, then every relation, so a reader can start at it.
  absl::Status Roll() {
    closed.emplace_back(seq, file_bytes);
    close(fd);
    fd = -1;
    if (absl::Status s = OpenSegment(seq + 1, /*create=*/true); !s.ok()) return s;
    record.Clear();
    record.mutable_position()->set_lsn(written_through.value());
    if (absl::Status s = Append(); !s.ok()) return s;
    for (const auto& [id, relation] : relations) {
      record.Clear();
      logrecord::ToProto(relation, record.mutable_relation());
      if (absl::Status s = Append(); !s.ok()) return s;
    }
    return ApplyRetention();
  }

  absl::Status ApplyRetention() {
    if (config.retention_bytes == 0) return absl::OkStatus();
    uint64_t total = file_bytes + buffer.size();
    for (const auto& [s, bytes] : closed) total += bytes;
    while (!closed.empty() && total > config.retention_bytes) {
      const std::string path = PathOf(closed.front().first);
      if (unlink(path.c_str()) != 0 && errno != ENOENT) {
        return ErrnoError("cannot delete log segment", path);
      }
      total -= closed.front().second;
      closed.erase(closed.begin());
    }
    return absl::OkStatus();
  }
};

absl::StatusOr<std::unique_ptr<EmbeddedLog>> EmbeddedLog::Open(const EmbeddedLogConfig& config) {
  if (config.dir.empty()) return absl::InvalidArgumentError("log.dir is empty");
  std::error_code ec;
  fs::create_directories(config.dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create log directory ", config.dir, ": ", ec.message()));
  }
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  auto seqs = ListSegments(config.dir);
  if (!seqs.ok()) return seqs.status();
  std::unique_ptr<EmbeddedLog> log(new EmbeddedLog(std::move(impl)));
  Impl& w = *log->impl_;
  w.stats = &log->stats_;

  if (seqs->empty()) {
    if (absl::Status s = w.OpenSegment(1, /*create=*/true); !s.ok()) return s;
    w.record.Clear();
    w.record.mutable_position()->set_lsn(0);
    if (absl::Status s = w.Append(); !s.ok()) return s;
    if (absl::Status s = log->Sync(); !s.ok()) return s;
    return log;
  }

  // Recovery: cut the last segment back to its last boundary, then find the durable position.
  const uint64_t last = seqs->back();
  auto data = ReadWholeFile(w.PathOf(last));
  if (!data.ok()) return data.status();
  const SegmentScan scan = ScanSegment(*data);
  if (scan.boundary_offset < data->size()) {
    if (truncate(w.PathOf(last).c_str(), static_cast<off_t>(scan.boundary_offset)) != 0) {
      return ErrnoError("cannot truncate log segment", w.PathOf(last));
    }
  }
  std::optional<Lsn> position = scan.boundary_position;
  for (auto it = seqs->rbegin() + 1; !position && it != seqs->rend(); ++it) {
    auto earlier = ReadWholeFile(w.PathOf(*it));
    if (!earlier.ok()) return earlier.status();
    position = ScanSegment(*earlier).boundary_position;
  }
  w.written_through = position.value_or(Lsn());
  for (size_t i = 0; i + 1 < seqs->size(); ++i) {
    std::error_code size_ec;
    const auto bytes = fs::file_size(w.PathOf((*seqs)[i]), size_ec);
    w.closed.emplace_back((*seqs)[i], size_ec ? 0 : bytes);
  }
  if (absl::Status s = w.OpenSegment(last, /*create=*/false); !s.ok()) return s;
  w.file_bytes = scan.boundary_offset;
  if (fdatasync(w.fd) != 0) return ErrnoError("cannot sync log segment", w.PathOf(last));
  log->durable_ = w.written_through;
  log->stats_.durable_lsn.store(log->durable_.value());
  return log;
}

EmbeddedLog::EmbeddedLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EmbeddedLog::~EmbeddedLog() {
  if (impl_->fd >= 0) {
    // What was not synced was never reported durable; writing it is harmless and helps a reader.
    if (!impl_->in_txn) (void)impl_->WriteBuffer();
    close(impl_->fd);
  }
}

absl::Status EmbeddedLog::OnRelation(const RelationInfo& relation) {
  Impl& w = *impl_;
  auto it = w.relations.find(relation.id);
  if (it != w.relations.end() && it->second == relation) return absl::OkStatus();
  w.relations[relation.id] = relation;
  w.record.Clear();
  logrecord::ToProto(relation, w.record.mutable_relation());
  return w.Append();
}

absl::Status EmbeddedLog::OnBegin(const TransactionBegin& begin) {
  Impl& w = *impl_;
  if (w.in_txn) {
    if (absl::Status s = w.Rewind(); !s.ok()) return s;
  }
  w.in_txn = true;
  // A commit below what the log holds is a replay after a reconnect or restart.
  w.skipping = begin.commit_lsn < w.written_through;
  if (w.skipping) return absl::OkStatus();
  w.txn_start = w.file_bytes + w.buffer.size();
  w.record.Clear();
  auto* b = w.record.mutable_begin();
  b->set_xid(begin.xid.value());
  b->set_commit_lsn(begin.commit_lsn.value());
  b->set_commit_time_us(begin.commit_time.unix_micros());
  return w.Append();
}

absl::Status EmbeddedLog::OnChange(RowChange change) {
  Impl& w = *impl_;
  if (!w.in_txn) return absl::FailedPreconditionError("change outside a transaction");
  if (w.skipping) return absl::OkStatus();
  w.record.Clear();
  logrecord::ToProto(change, w.record.mutable_change());
  return w.Append();
}

absl::Status EmbeddedLog::OnTruncate(const TruncateChange& truncate) {
  Impl& w = *impl_;
  if (!w.in_txn) return absl::FailedPreconditionError("truncate outside a transaction");
  if (w.skipping) return absl::OkStatus();
  w.record.Clear();
  auto* t = w.record.mutable_truncate();
  for (RelationId id : truncate.relations) t->add_relations(id.value());
  t->set_cascade(truncate.cascade);
  t->set_restart_identity(truncate.restart_identity);
  return w.Append();
}

absl::Status EmbeddedLog::OnCommit(const TransactionCommit& commit) {
  Impl& w = *impl_;
  if (!w.in_txn) return absl::FailedPreconditionError("commit outside a transaction");
  w.in_txn = false;
  if (w.skipping) {
    w.skipping = false;
    stats_.replayed_transactions_dropped.fetch_add(1, std::memory_order_relaxed);
    return absl::OkStatus();
  }
  w.record.Clear();
  auto* c = w.record.mutable_commit();
  c->set_xid(commit.xid.value());
  c->set_commit_lsn(commit.commit_lsn.value());
  c->set_end_lsn(commit.end_lsn.value());
  c->set_commit_time_us(commit.commit_time.unix_micros());
  if (absl::Status s = w.Append(); !s.ok()) return s;
  w.written_through = std::max(w.written_through, commit.end_lsn);
  stats_.transactions.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::Status EmbeddedLog::OnIdlePosition(Lsn position) {
  Impl& w = *impl_;
  if (w.in_txn) {
    if (absl::Status s = w.Rewind(); !s.ok()) return s;
  }
  w.idle_position = std::max(w.idle_position, position);
  return absl::OkStatus();
}

absl::Status EmbeddedLog::OnStreamReset(Lsn position, std::string_view reason) {
  Impl& w = *impl_;
  if (w.in_txn) {
    if (absl::Status s = w.Rewind(); !s.ok()) return s;
  }
  w.record.Clear();
  w.record.mutable_reset()->set_lsn(position.value());
  w.record.mutable_reset()->set_reason(std::string(reason));
  if (absl::Status s = w.Append(); !s.ok()) return s;
  w.written_through = position;
  w.idle_position = Lsn();
  return absl::OkStatus();
}

absl::Status EmbeddedLog::Sync() {
  Impl& w = *impl_;
  if (!w.in_txn && w.idle_position > w.written_through) {
    w.record.Clear();
    w.record.mutable_position()->set_lsn(w.idle_position.value());
    if (absl::Status s = w.Append(); !s.ok()) return s;
    w.written_through = w.idle_position;
  }
  if (absl::Status s = w.WriteBuffer(); !s.ok()) return s;
  if (fdatasync(w.fd) != 0) return ErrnoError("cannot sync log segment", w.PathOf(w.seq));
  stats_.syncs.fetch_add(1, std::memory_order_relaxed);
  if (!w.in_txn) {
    durable_ = w.written_through;
    stats_.durable_lsn.store(durable_.value());
    if (w.file_bytes >= w.config.segment_bytes) return w.Roll();
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Reader

EmbeddedLogReader::EmbeddedLogReader(std::string dir, Lsn from)
    : dir_(std::move(dir)), from_(from), position_(Lsn()) {}

EmbeddedLogReader::~EmbeddedLogReader() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<std::unique_ptr<EmbeddedLogReader>> EmbeddedLogReader::Open(const std::string& dir,
                                                                           Lsn from) {
  auto seqs = ListSegments(dir);
  if (!seqs.ok()) return seqs.status();
  if (seqs->empty()) {
    return absl::NotFoundError(absl::StrCat("no log segments in ", dir));
  }
  std::unique_ptr<EmbeddedLogReader> reader(new EmbeddedLogReader(dir, from));
  // Start at the newest segment whose header position is at or below `from`.
  uint64_t start = seqs->front();
  if (from.valid()) {
    for (uint64_t seq : *seqs) {
      auto data = ReadWholeFile((fs::path(dir) / SegmentName(seq)).string());
      if (!data.ok()) return data.status();
      const auto header =
          ScanSegment(data->substr(0, std::min<size_t>(data->size(), 4096))).header_position;
      if (header && *header <= from) start = seq;
    }
  }
  reader->segment_seq_ = start - 1;
  bool opened = false;
  if (absl::Status s = reader->OpenNextSegment(&opened); !s.ok()) return s;
  return reader;
}

absl::Status EmbeddedLogReader::OpenNextSegment(bool* opened) {
  *opened = false;
  const std::string path = (fs::path(dir_) / SegmentName(segment_seq_ + 1)).string();
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) return ErrnoError("cannot open", path);
    auto seqs = ListSegments(dir_);
    if (seqs.ok() && !seqs->empty() && seqs->front() > segment_seq_ + 1) {
      return absl::OutOfRangeError(absl::StrCat(
          "log segment ", SegmentName(segment_seq_ + 1),
          " was deleted by retention before it was read; start again from the oldest"));
    }
    return absl::OkStatus();
  }
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
  segment_path_ = path;
  ++segment_seq_;
  offset_ = 0;
  pending_.reset();
  *opened = true;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<LogEntry>> EmbeddedLogReader::Next() {
  TxLogRecord record;
  std::string header(logrecord::kFrameHeaderBytes, '\0');
  std::string frame;
  while (true) {
    struct stat st {};
    if (fstat(fd_, &st) != 0) return ErrnoError("cannot stat", segment_path_);
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (size < offset_) {
      return absl::DataLossError(absl::StrCat(
          segment_path_, " shrank under the reader (the writer recovered from a crash): reopen"));
    }
    bool have_frame = false;
    std::string_view payload;
    if (size - offset_ >= logrecord::kFrameHeaderBytes) {
      if (pread(fd_, header.data(), header.size(), static_cast<off_t>(offset_)) !=
          static_cast<ssize_t>(header.size())) {
        return ErrnoError("cannot read", segment_path_);
      }
      const auto* u = reinterpret_cast<const unsigned char*>(header.data());
      const uint64_t length =
          uint64_t{u[0]} | (uint64_t{u[1]} << 8) | (uint64_t{u[2]} << 16) | (uint64_t{u[3]} << 24);
      if (length <= logrecord::kMaxRecordBytes &&
          size - offset_ >= logrecord::kFrameHeaderBytes + length) {
        frame.resize(logrecord::kFrameHeaderBytes + length);
        if (pread(fd_, frame.data(), frame.size(), static_cast<off_t>(offset_)) !=
            static_cast<ssize_t>(frame.size())) {
          return ErrnoError("cannot read", segment_path_);
        }
        size_t frame_bytes = 0;
        const auto status = logrecord::ParseFrame(frame, &payload, &frame_bytes);
        if (status == logrecord::FrameStatus::kCorrupt) {
          return absl::DataLossError(
              absl::StrCat("corrupt record in ", segment_path_, " at offset ", offset_));
        }
        have_frame = status == logrecord::FrameStatus::kOk;
      }
    }
    if (!have_frame) {
      // End of what this segment holds so far: move on if the writer has started the next one.
      bool opened = false;
      if (absl::Status s = OpenNextSegment(&opened); !s.ok()) return s;
      if (!opened) return std::optional<LogEntry>();
      continue;
    }
    offset_ += frame.size();
    if (!record.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      return absl::DataLossError(
          absl::StrCat("undecodable record in ", segment_path_, " before offset ", offset_));
    }
    switch (record.record_case()) {
      case TxLogRecord::kRelation: {
        RelationInfo info = logrecord::FromProto(record.relation());
        relations_[info.id] = std::move(info);
        break;
      }
      case TxLogRecord::kBegin: {
        LoggedTransaction txn;
        txn.begin = TransactionBegin{
            .xid = Xid(record.begin().xid()),
            .commit_lsn = Lsn(record.begin().commit_lsn()),
            .commit_time = PgTimestamp::FromUnixMicros(record.begin().commit_time_us())};
        pending_ = std::move(txn);
        break;
      }
      case TxLogRecord::kChange: {
        if (!pending_) return absl::DataLossError("change record outside a transaction");
        auto change = logrecord::FromProto(record.change());
        if (!change.ok()) return change.status();
        if (pending_->begin.commit_lsn >= from_) pending_->changes.push_back(*std::move(change));
        break;
      }
      case TxLogRecord::kTruncate: {
        if (!pending_) return absl::DataLossError("truncate record outside a transaction");
        TruncateChange t;
        for (uint32_t id : record.truncate().relations()) t.relations.emplace_back(id);
        t.cascade = record.truncate().cascade();
        t.restart_identity = record.truncate().restart_identity();
        pending_->changes.push_back(std::move(t));
        break;
      }
      case TxLogRecord::kCommit: {
        if (!pending_) return absl::DataLossError("commit record outside a transaction");
        LoggedTransaction txn = *std::move(pending_);
        pending_.reset();
        txn.commit = TransactionCommit{
            .xid = Xid(record.commit().xid()),
            .commit_lsn = Lsn(record.commit().commit_lsn()),
            .end_lsn = Lsn(record.commit().end_lsn()),
            .commit_time = PgTimestamp::FromUnixMicros(record.commit().commit_time_us())};
        position_ = std::max(position_, txn.commit.end_lsn);
        if (txn.begin.commit_lsn >= from_) return std::optional<LogEntry>(std::move(txn));
        break;
      }
      case TxLogRecord::kPosition:
        position_ = std::max(position_, Lsn(record.position().lsn()));
        break;
      case TxLogRecord::kReset: {
        const Lsn lsn(record.reset().lsn());
        position_ = std::max(position_, lsn);
        if (lsn >= from_) {
          return std::optional<LogEntry>(
              LoggedReset{.position = lsn, .reason = record.reset().reason()});
        }
        break;
      }
      case TxLogRecord::RECORD_NOT_SET:
        return absl::DataLossError(absl::StrCat("empty record in ", segment_path_));
    }
  }
}

const RelationInfo* EmbeddedLogReader::relation(RelationId id) const {
  auto it = relations_.find(id);
  return it == relations_.end() ? nullptr : &it->second;
}

}  // namespace shapebridge
