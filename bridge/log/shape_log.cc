#include "bridge/log/shape_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bridge/log/change_codec.h"
#include "bridge/log/file_io.h"
#include "bridge/log/record_codec.h"
#include "shapebridge/log/v1/shapelog.pb.h"

namespace shapebridge {

namespace {

constexpr char kJournalName[] = "shapes.journal";
constexpr size_t kRecentTransactions = 4096;

using fileio::ErrnoError;

std::string IdBytes(const shapes::InstanceId& id) {
  const std::array<char, 16> bytes = InstanceIdBytes(id);
  return std::string(bytes.data(), bytes.size());
}

shapes::InstanceId IdFromBytes(const std::string& bytes) {
  if (bytes.size() != 16) return {};
  uint64_t high = 0;
  uint64_t low = 0;
  for (int i = 0; i < 8; ++i) {
    high = (high << 8) | static_cast<uint8_t>(bytes[i]);
    low = (low << 8) | static_cast<uint8_t>(bytes[8 + i]);
  }
  return shapes::InstanceId(high, low);
}

// An entry read back from the journal, before it has a log to keep its bytes.
struct RecoveredEntry {
  LogOffset offset;
  std::string change;
};

RecoveredEntry DecodeEntry(log::v1::EntryRecord& r) {
  return RecoveredEntry{.offset = LogOffset{Lsn(r.lsn()), r.index()},
                        .change = std::move(*r.mutable_change())};
}

void DescribeInstance(const shapes::ShapeInstance& instance, log::v1::InstanceStart* start) {
  start->set_instance_id(IdBytes(instance.id()));
  start->set_shape(instance.definition().name);
  start->set_definition_version(instance.definition().version);
  for (const auto& [name, value] : instance.values()) {
    logrecord::ToProto(value, &(*start->mutable_params())[name]);
  }
  start->set_filter(instance.filter());
}

// The instance a Start record describes, if its definition is still the same here.
absl::StatusOr<std::shared_ptr<const shapes::ShapeInstance>> InstanceFromStart(
    const log::v1::InstanceStart& start, const ShapeLog::DefinitionLookup& definitions) {
  std::shared_ptr<const shapes::ShapeDefinition> def = definitions(start.shape());
  if (!def) {
    return absl::NotFoundError(absl::StrCat("shape ", start.shape(), " is not configured here"));
  }
  if (def->version != start.definition_version()) {
    return absl::FailedPreconditionError(
        absl::StrCat("shape ", start.shape(), " is defined differently here"));
  }
  shapes::ParamValues params;
  for (const auto& [name, v] : start.params()) {
    absl::StatusOr<Value> value = logrecord::FromProto(v);
    if (!value.ok()) return value.status();
    params.emplace(name, *std::move(value));
  }
  auto instance = shapes::ShapeInstance::Create(def, params, start.filter());
  if (!instance.ok()) return instance.status();
  if ((*instance)->id() != IdFromBytes(start.instance_id())) {
    return absl::FailedPreconditionError("the instance's id differs here");
  }
  return std::shared_ptr<const shapes::ShapeInstance>(*std::move(instance));
}

}  // namespace

std::string_view ByteChunks::Append(std::string_view bytes) {
  if (chunks_.empty() || size_ - used_ < bytes.size()) {
    size_ = std::max(kChunkBytes, bytes.size());
    chunks_.push_back(std::make_unique_for_overwrite<char[]>(size_));
    used_ = 0;
  }
  char* at = chunks_.back().get() + used_;
  std::memcpy(at, bytes.data(), bytes.size());
  used_ += bytes.size();
  return std::string_view(at, bytes.size());
}

std::string LogOffset::ToString() const { return absl::StrCat(lsn.ToString(), "#", index); }

absl::StatusOr<PgSnapshot> PgSnapshot::Parse(std::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(std::string(text), ':');
  PgSnapshot s;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &s.xmin) ||
      !absl::SimpleAtoi(parts[1], &s.xmax)) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed snapshot \"", std::string(text), "\""));
  }
  if (!parts[2].empty()) {
    for (const std::string& x : std::vector<std::string>(absl::StrSplit(parts[2], ','))) {
      uint64_t xid = 0;
      if (!absl::SimpleAtoi(x, &xid)) {
        return absl::InvalidArgumentError(
            absl::StrCat("malformed snapshot \"", std::string(text), "\""));
      }
      s.xip.push_back(xid);
    }
  }
  std::sort(s.xip.begin(), s.xip.end());
  return s;
}

std::string PgSnapshot::ToString() const {
  std::string out = absl::StrCat(xmin, ":", xmax, ":");
  for (size_t i = 0; i < xip.size(); ++i) absl::StrAppend(&out, i ? "," : "", xip[i]);
  return out;
}

bool PgSnapshot::Visible(Xid xid) const {
  // Extend the 32-bit xid with xmax's epoch; an xid numerically above xmax's low half belongs to
  // the previous epoch.
  uint64_t full = (xmax & ~0xffffffffULL) | xid.value();
  if (full > xmax && full >= (1ULL << 32)) full -= 1ULL << 32;
  if (full < xmin) return true;
  if (full >= xmax) return false;
  return !std::binary_search(xip.begin(), xip.end(), full);
}

void Waker::Wake() {
  {
    std::lock_guard lock(mu_);
    signaled_ = true;
  }
  cv_.notify_one();
}

bool Waker::WaitUntil(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline, [&] { return signaled_; });
  const bool woken = signaled_;
  signaled_ = false;
  return woken;
}

// The journal file: append-only framed ShapeLogRecords.
struct ShapeLog::Journal {
  std::string path;
  int fd = -1;
  std::string buffer;   // appended, not yet written
  std::string writing;  // being written by Sync(); swapped with buffer so both keep their capacity
  std::string scratch;

  ~Journal() {
    if (fd >= 0) close(fd);
  }
  void Append(const log::v1::ShapeLogRecord& record, uint64_t* bytes = nullptr) {
    scratch.clear();
    record.SerializeToString(&scratch);
    logrecord::AppendFrame(scratch, &buffer);
    if (bytes) *bytes = scratch.size() + logrecord::kFrameHeaderBytes;
  }
  absl::Status Write(const std::string& data) {
    if (fd < 0) return absl::OkStatus();  // no journal file
    return fileio::WriteAll(fd, data, "cannot write shape log journal", path);
  }
};

ShapeLog::ShapeLog(ShapeLogConfig config, shapes::Router& router)
    : config_(std::move(config)), router_(router), recent_(kRecentTransactions) {}

ShapeLog::~ShapeLog() = default;

absl::StatusOr<std::unique_ptr<ShapeLog>> ShapeLog::Open(const ShapeLogConfig& config,
                                                         shapes::Router& router,
                                                         const DefinitionLookup& definitions) {
  if (config.dir.empty()) {
    std::unique_ptr<ShapeLog> log(new ShapeLog(config, router));
    log->journal_ = std::make_unique<Journal>();
    return log;
  }
  std::error_code ec;
  std::filesystem::create_directories(config.dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create shape log directory ", config.dir, ": ", ec.message()));
  }
  std::unique_ptr<ShapeLog> log(new ShapeLog(config, router));
  const std::string path = config.dir + "/" + kJournalName;

  // Recovery: read the journal up to its first torn or corrupt record.
  struct Recovered {
    log::v1::InstanceStart start;
    std::vector<RecoveredEntry> entries;
    bool done = false;
  };
  std::map<shapes::InstanceId, Recovered> recovered;
  // Entries since the last Routed record, with their instance.
  std::vector<std::pair<shapes::InstanceId, RecoveredEntry>> live;
  Lsn routed;
  {
    std::string data;
    if (std::filesystem::exists(path)) {
      absl::StatusOr<std::string> read = fileio::ReadWholeFile(path);
      if (!read.ok()) return read.status();
      data = *std::move(read);
    }
    std::string_view rest = data;
    while (!rest.empty()) {
      std::string_view payload;
      size_t frame_bytes = 0;
      if (logrecord::ParseFrame(rest, &payload, &frame_bytes) != logrecord::FrameStatus::kOk) {
        break;
      }
      rest.remove_prefix(frame_bytes);
      log::v1::ShapeLogRecord record;
      if (!record.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) break;
      switch (record.record_case()) {
        case log::v1::ShapeLogRecord::kStart: {
          const shapes::InstanceId id = IdFromBytes(record.start().instance_id());
          recovered[id] = Recovered{.start = record.start()};
          break;
        }
        case log::v1::ShapeLogRecord::kEntry: {
          const shapes::InstanceId id = IdFromBytes(record.entry().instance_id());
          auto it = recovered.find(id);
          if (it == recovered.end()) break;
          if (record.entry().change().empty()) {
            // An entry of an earlier journal format: the instance is not recovered (its clients
            // refetch), rather than served with changes that carry nothing.
            recovered.erase(it);
            break;
          }
          if (it->second.done) {
            live.push_back({id, DecodeEntry(*record.mutable_entry())});
          } else {
            it->second.entries.push_back(DecodeEntry(*record.mutable_entry()));
          }
          break;
        }
        case log::v1::ShapeLogRecord::kSnapshotDone: {
          auto it = recovered.find(IdFromBytes(record.snapshot_done().instance_id()));
          if (it != recovered.end()) it->second.done = true;
          break;
        }
        case log::v1::ShapeLogRecord::kRouted:
          for (auto& [id, e] : live) {
            auto it = recovered.find(id);
            if (it != recovered.end()) it->second.entries.push_back(std::move(e));
          }
          live.clear();
          routed = std::max(routed, Lsn(record.routed().lsn()));
          break;
        case log::v1::ShapeLogRecord::kRetired:
          recovered.erase(IdFromBytes(record.retired().instance_id()));
          break;
        case log::v1::ShapeLogRecord::kEpoch:  // the shape topic's only
        case log::v1::ShapeLogRecord::RECORD_NOT_SET:
          break;
      }
    }
  }

  // Rebuild the live instances and write a compact journal with exactly them.
  log->journal_ = std::make_unique<Journal>();
  Journal& j = *log->journal_;
  j.path = path;
  const std::string tmp = path + ".tmp";
  j.fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (j.fd < 0) return ErrnoError("cannot create shape log journal", tmp);
  const auto now = std::chrono::steady_clock::now();
  for (auto& [id, r] : recovered) {
    if (!r.done) continue;
    auto instance = InstanceFromStart(r.start, definitions);
    if (!instance.ok()) continue;
    absl::StatusOr<PgSnapshot> snapshot = PgSnapshot::Parse(r.start.pg_snapshot());
    if (!snapshot.ok()) continue;
    if (!router.AddInstance(*instance).ok()) continue;
    auto il = std::make_shared<InstanceLog>();
    il->instance_ = *instance;
    il->phase_ = InstanceLog::Phase::kReady;
    il->was_ready_ = true;
    il->snapshot_lsn_ = Lsn(r.start.snapshot_lsn());
    il->snapshot_ = *std::move(snapshot);
    il->ready_durable_ = true;
    il->idle_since_ = now;
    log::v1::ShapeLogRecord record;
    *record.mutable_start() = r.start;
    j.Append(record);
    for (const RecoveredEntry& e : r.entries) {
      const StoredEntry stored{.offset = e.offset, .change = il->changes_.Append(e.change)};
      il->bytes_ += AppendEntryFrame(id, stored, &j.buffer);
      il->entries_.push_back(stored);
    }
    log::v1::ShapeLogRecord done;
    done.mutable_snapshot_done()->set_instance_id(IdBytes(id));
    j.Append(done);
    il->servable_ = il->entries_.size();
    log->stats_.entries += il->entries_.size();
    log->stats_.bytes += il->bytes_;
    if (routed < il->snapshot_lsn_) log->awaiting_.push_back(il);
    log->instances_.emplace(id, std::move(il));
  }
  log::v1::ShapeLogRecord routed_record;
  routed_record.mutable_routed()->set_lsn(routed.value());
  j.Append(routed_record);
  if (absl::Status s = j.Write(j.buffer); !s.ok()) return s;
  j.buffer.clear();
  if (fsync(j.fd) != 0) return ErrnoError("cannot sync shape log journal", tmp);
  if (rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("cannot rename", tmp);
  fileio::SyncDirectory(config.dir);
  log->routed_ = routed;
  log->durable_routed_ = routed;
  log->stats_.instances = log->instances_.size();
  return log;
}

Lsn ShapeLog::DurableLsn() const {
  std::lock_guard lock(mu_);
  return durable_routed_;
}

uint64_t ShapeLog::NoteBegin(Xid xid) {
  std::lock_guard lock(mu_);
  ++seq_;
  recent_[recent_next_] = {seq_, xid};
  recent_next_ = (recent_next_ + 1) % recent_.size();
  return seq_;
}

void ShapeLog::MarkDirtyLocked(InstanceLog& log) {
  if (log.dirty_) return;
  if (follower_) {
    // Served once a Routed record of its partition follows.
    if (log.partition_ < 0 || log.partition_ >= static_cast<int>(partition_dirty_.size())) return;
    log.dirty_ = true;
    partition_dirty_[log.partition_].push_back(log.shared_from_this());
    return;
  }
  log.dirty_ = true;
  dirty_.push_back(log.shared_from_this());
}

void ShapeLog::AppendEntryLocked(InstanceLog& log, LogOffset offset, int64_t commit_unix_micros,
                                 const shapes::ShapeEntry& entry) {
  thread_local std::string encoded;
  encoded.clear();
  EncodeChange(entry, log.instance_->definition().columns.size(), &encoded);
  const StoredEntry stored{.offset = offset,
                           .change = log.changes_.Append(encoded),
                           .commit_unix_micros = commit_unix_micros};
  const uint64_t bytes = AppendEntryFrame(log.instance_->id(), stored, &journal_->buffer);
  log.bytes_ += bytes;
  log.entries_.push_back(std::move(stored));
  stats_.entries.fetch_add(1, std::memory_order_relaxed);
  stats_.bytes.fetch_add(bytes, std::memory_order_relaxed);
  MarkDirtyLocked(log);
}

void ShapeLog::AppendLiveLocked(InstanceLog& log, Lsn commit_lsn, int64_t commit_unix_micros,
                                const shapes::ShapeEntry& entry, RetireReason refetch_reason) {
  if (entry.kind == shapes::EntryKind::kMustRefetch) {
    RetireLocked(
        log, refetch_reason == RetireReason::kNone ? RetireReason::kSchemaChanged : refetch_reason,
        refetch_reason == RetireReason::kTruncated
            ? "the table was truncated"
            : "the table's rows can no longer be followed (its columns or replica "
              "identity changed)");
    return;
  }
  LogOffset offset{commit_lsn, 0};
  if (!log.entries_.empty() && log.entries_.back().offset.lsn >= commit_lsn) {
    offset = {log.entries_.back().offset.lsn, log.entries_.back().offset.index + 1};
  }
  AppendEntryLocked(log, offset, commit_unix_micros, entry);
  if (config_.max_instance_bytes > 0 && log.bytes_ > config_.max_instance_bytes) {
    RetireLocked(log, RetireReason::kRetention,
                 absl::StrCat("the instance's log passed shape_log.max_instance_bytes (",
                              config_.max_instance_bytes, ")"));
  }
}

void ShapeLog::RetireLocked(InstanceLog& log, RetireReason reason, std::string message) {
  if (log.phase_ == InstanceLog::Phase::kRetired) return;
  const shapes::InstanceId id = log.instance_->id();
  MarkDirtyLocked(log);
  log.phase_ = InstanceLog::Phase::kRetired;
  log.retire_reason_ = reason;
  log.retire_message_ = std::move(message);
  log.pending_.clear();
  if (!follower_) {
    log::v1::ShapeLogRecord record;
    record.mutable_retired()->set_instance_id(IdBytes(id));
    record.mutable_retired()->set_reason(static_cast<uint32_t>(reason));
    record.mutable_retired()->set_message(log.retire_message_);
    journal_->Append(record);
    router_.RemoveInstance(id);
  }
  // A follower's placeholder (or an instance started again) may no longer be the one listed.
  if (auto it = instances_.find(id); it != instances_.end() && it->second.get() == &log) {
    instances_.erase(it);
  }
  stats_.instances = instances_.size();
  stats_.retired.fetch_add(1, std::memory_order_relaxed);
  stats_.entries.fetch_sub(log.entries_.size(), std::memory_order_relaxed);
  stats_.bytes.fetch_sub(log.bytes_, std::memory_order_relaxed);
}

absl::Status ShapeLog::AppendTransaction(uint64_t seq, Xid xid, Lsn commit_lsn, Lsn end_lsn,
                                         int64_t commit_unix_micros,
                                         std::vector<RoutedEntry>& entries) {
  std::lock_guard lock(mu_);
  for (RoutedEntry& routed : entries) {
    auto it = instances_.find(routed.entry.instance);
    if (it == instances_.end()) continue;
    InstanceLog& log = *it->second;
    // Its routing began before the instance was registered: the snapshot covers it (or
    // BeginSnapshot found that it does not, and a new snapshot is taken).
    if (seq <= log.registered_seq_) continue;
    if (log.phase_ == InstanceLog::Phase::kSnapshotting) {
      if (log.snapshot_ && commit_lsn < log.snapshot_lsn_ && log.snapshot_->Visible(xid)) continue;
      log.pending_.push_back(
          {xid, commit_lsn, commit_unix_micros, std::move(routed.entry), routed.refetch_reason});
      continue;
    }
    if (log.phase_ != InstanceLog::Phase::kReady) continue;
    if (commit_lsn < log.snapshot_lsn_ && log.snapshot_ && log.snapshot_->Visible(xid)) continue;
    AppendLiveLocked(log, commit_lsn, commit_unix_micros, routed.entry, routed.refetch_reason);
  }
  log::v1::ShapeLogRecord record;
  record.mutable_routed()->set_lsn(end_lsn.value());
  journal_->Append(record);
  routed_ = std::max(routed_, end_lsn);
  return absl::OkStatus();
}

absl::Status ShapeLog::AdvanceIdle(Lsn position) {
  std::lock_guard lock(mu_);
  if (position <= routed_) return absl::OkStatus();
  log::v1::ShapeLogRecord record;
  record.mutable_routed()->set_lsn(position.value());
  journal_->Append(record);
  routed_ = position;
  return absl::OkStatus();
}

absl::Status ShapeLog::ResetAll(Lsn position, std::string_view reason) {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<InstanceLog>> all;
  for (auto& [id, log] : instances_) all.push_back(log);
  for (auto& log : all) {
    RetireLocked(*log, RetireReason::kStreamReset,
                 absl::StrCat("the replication stream restarted: ", std::string(reason)));
  }
  log::v1::ShapeLogRecord record;
  record.mutable_routed()->set_lsn(position.value());
  journal_->Append(record);
  routed_ = std::max(routed_, position);
  return absl::OkStatus();
}

bool ShapeLog::ServableLocked(const InstanceLog& log) const {
  return log.ready_durable_ && durable_routed_ >= log.snapshot_lsn_;
}

absl::Status ShapeLog::Sync() {
  if (follower_) return absl::OkStatus();
  std::lock_guard sync_lock(sync_mu_);
  if (absl::Status failed = mirror_status(); !failed.ok()) return failed;
  Lsn routed;
  struct Captured {
    std::shared_ptr<InstanceLog> log;
    size_t entries;
    bool ready;
    bool retired;
  };
  std::vector<Captured> captured;
  {
    std::lock_guard lock(mu_);
    journal_->writing.clear();
    journal_->writing.swap(journal_->buffer);
    routed = routed_;
    for (auto& log : dirty_) {
      captured.push_back({log, log->entries_.size(), log->was_ready_,
                          log->phase_ == InstanceLog::Phase::kRetired});
      log->dirty_ = false;
    }
    dirty_.clear();
  }
  // Only this Sync() (under sync_mu_) uses `writing` now.
  const std::string& data = journal_->writing;
  if (!data.empty()) {
    const auto started = std::chrono::steady_clock::now();
    if (absl::Status s = journal_->Write(data); !s.ok()) return s;
    if (config_.fsync && journal_->fd >= 0 && fdatasync(journal_->fd) != 0) {
      return ErrnoError("cannot sync shape log journal", journal_->path);
    }
    if (mirror_) {
      if (absl::Status s = mirror_(data, routed); !s.ok()) {
        std::lock_guard lock(mirror_mu_);
        mirror_failed_ = s;
        return s;
      }
    }
    if (sync_observer_) {
      sync_observer_(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
  }
  // A large snapshot should not pin its buffer for good.
  if (journal_->writing.capacity() > (8u << 20)) std::string().swap(journal_->writing);
  stats_.syncs.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  const Lsn before = durable_routed_;
  durable_routed_ = std::max(durable_routed_, routed);
  std::vector<InstanceLog*> wake;
  for (Captured& c : captured) {
    InstanceLog& log = *c.log;
    log.servable_ = std::max(log.servable_, c.entries);
    if (c.ready && !log.ready_durable_) {
      log.ready_durable_ = true;
      if (durable_routed_ < log.snapshot_lsn_) awaiting_.push_back(c.log);
    }
    if (c.retired) log.retire_durable_ = true;
    wake.push_back(&log);
  }
  if (durable_routed_ > before) CollectAwaitingLocked(wake);
  for (InstanceLog* log : wake) {
    for (Waker* w : log->listeners_) w->Wake();
  }
  return absl::OkStatus();
}

void ShapeLog::CollectAwaitingLocked(std::vector<InstanceLog*>& wake) {
  for (size_t i = 0; i < awaiting_.size();) {
    if (durable_routed_ >= awaiting_[i]->snapshot_lsn_) {
      wake.push_back(awaiting_[i].get());
      awaiting_[i] = std::move(awaiting_.back());
      awaiting_.pop_back();
    } else {
      ++i;
    }
  }
}

absl::StatusOr<ShapeLog::Acquired> ShapeLog::Acquire(
    std::shared_ptr<const shapes::ShapeInstance> instance) {
  std::lock_guard lock(mu_);
  auto it = instances_.find(instance->id());
  if (it != instances_.end()) {
    ++it->second->subscribers_;
    return Acquired{it->second, false};
  }
  auto log = std::make_shared<InstanceLog>();
  log->instance_ = instance;
  log->subscribers_ = 1;
  if (follower_) {
    // A placeholder: the replicator's Start record fills it in.
    log->idle_since_ = std::chrono::steady_clock::now();  // when it was asked for
    instances_.emplace(instance->id(), log);
    stats_.instances = instances_.size();
    return Acquired{log, true};
  }
  // Every transaction whose routing begins after this sees the instance in the router: both
  // happen under mu_, which NoteBegin takes too.
  log->registered_seq_ = seq_;
  if (absl::Status s = router_.AddInstance(instance); !s.ok()) return s;
  instances_.emplace(instance->id(), log);
  stats_.instances = instances_.size();
  return Acquired{log, true};
}

void ShapeLog::Release(InstanceLog& log) {
  std::lock_guard lock(mu_);
  if (--log.subscribers_ == 0) log.idle_since_ = std::chrono::steady_clock::now();
}

void ShapeLog::AddListener(InstanceLog& log, Waker* waker) {
  std::lock_guard lock(mu_);
  log.listeners_.push_back(waker);
}

void ShapeLog::RemoveListener(InstanceLog& log, Waker* waker) {
  std::lock_guard lock(mu_);
  std::erase(log.listeners_, waker);
}

absl::Status ShapeLog::BeginSnapshot(InstanceLog& log, const PgSnapshot& snapshot,
                                     Lsn snapshot_lsn) {
  std::lock_guard lock(mu_);
  if (log.phase_ != InstanceLog::Phase::kSnapshotting) {
    return absl::FailedPreconditionError("the instance is not waiting for a snapshot");
  }
  for (const auto& [seq, xid] : recent_) {
    if (seq != 0 && seq <= log.registered_seq_ && !snapshot.Visible(xid)) {
      stats_.snapshot_retries.fetch_add(1, std::memory_order_relaxed);
      return absl::FailedPreconditionError(
          absl::StrCat("transaction ", xid.value(),
                       " was routed before the instance was registered but the snapshot does "
                       "not see it yet"));
    }
  }
  log.snapshot_ = snapshot;
  log.snapshot_lsn_ = snapshot_lsn;
  std::erase_if(log.pending_, [&](const InstanceLog::Pending& p) {
    return p.commit_lsn < snapshot_lsn && snapshot.Visible(p.xid);
  });
  log::v1::ShapeLogRecord record;
  log::v1::InstanceStart* start = record.mutable_start();
  DescribeInstance(*log.instance_, start);
  start->set_snapshot_lsn(snapshot_lsn.value());
  start->set_pg_snapshot(snapshot.ToString());
  journal_->Append(record);
  return absl::OkStatus();
}

absl::Status ShapeLog::AppendSnapshotRows(InstanceLog& log,
                                          std::span<const shapes::ShapeEntry> rows) {
  Lsn lsn;
  size_t first = 0;
  {
    std::lock_guard lock(mu_);
    if (log.phase_ != InstanceLog::Phase::kSnapshotting || !log.snapshot_) {
      return absl::FailedPreconditionError("the instance's snapshot has not begun");
    }
    lsn = log.snapshot_lsn_;
    first = log.entries_.size();
  }
  // Encoded and stored without the lock: while the snapshot runs, nothing else appends to the
  // instance (entries routed meanwhile wait in pending_), and no one reads it.
  std::vector<StoredEntry> stored;
  stored.reserve(rows.size());
  std::vector<uint64_t> sizes;
  sizes.reserve(rows.size());
  thread_local std::string frames;  // keeps its capacity from batch to batch
  frames.clear();
  const size_t columns = log.instance_->definition().columns.size();
  thread_local std::string encoded;
  for (size_t i = 0; i < rows.size(); ++i) {
    encoded.clear();
    EncodeChange(rows[i], columns, &encoded);
    stored.push_back({.offset = LogOffset{lsn, static_cast<uint32_t>(first + i)},
                      .change = log.changes_.Append(encoded)});
    sizes.push_back(AppendEntryFrame(log.instance_->id(), stored.back(), &frames));
  }
  std::lock_guard lock(mu_);
  if (log.phase_ != InstanceLog::Phase::kSnapshotting || log.entries_.size() != first) {
    return absl::AbortedError("the instance ended while its snapshot ran");
  }
  journal_->buffer.append(frames);
  uint64_t bytes = 0;
  for (size_t i = 0; i < stored.size(); ++i) {
    log.entries_.push_back(std::move(stored[i]));
    bytes += sizes[i];
  }
  log.bytes_ += bytes;
  stats_.entries.fetch_add(stored.size(), std::memory_order_relaxed);
  stats_.bytes.fetch_add(bytes, std::memory_order_relaxed);
  stats_.snapshot_rows.fetch_add(stored.size(), std::memory_order_relaxed);
  stats_.snapshot_bytes.fetch_add(bytes, std::memory_order_relaxed);
  MarkDirtyLocked(log);
  return absl::OkStatus();
}

absl::Status ShapeLog::FinishSnapshot(InstanceLog& log, uint64_t rows) {
  {
    std::lock_guard lock(mu_);
    if (log.phase_ != InstanceLog::Phase::kSnapshotting || !log.snapshot_) {
      return absl::FailedPreconditionError("the instance's snapshot has not begun");
    }
    log.phase_ = InstanceLog::Phase::kReady;
    std::vector<InstanceLog::Pending> pending;
    pending.swap(log.pending_);
    for (InstanceLog::Pending& p : pending) {
      if (p.commit_lsn < log.snapshot_lsn_ && log.snapshot_->Visible(p.xid)) continue;
      // Entries of transactions below the snapshot's LSN get offsets after its rows.
      AppendLiveLocked(log, std::max(p.commit_lsn, log.snapshot_lsn_), p.commit_unix_micros,
                       p.entry, p.refetch_reason);
      if (log.phase_ == InstanceLog::Phase::kRetired) break;
    }
    if (log.phase_ == InstanceLog::Phase::kReady) {
      log.was_ready_ = true;
      log::v1::ShapeLogRecord record;
      record.mutable_snapshot_done()->set_instance_id(IdBytes(log.instance_->id()));
      record.mutable_snapshot_done()->set_rows(rows);
      journal_->Append(record);
    }
    MarkDirtyLocked(log);
  }
  return Sync();
}

void ShapeLog::FailSnapshot(InstanceLog& log, const absl::Status& error) {
  {
    std::lock_guard lock(mu_);
    if (log.phase_ == InstanceLog::Phase::kRetired) return;
    // Nothing of it is served, so nothing has to be durable: end it at once.
    RetireLocked(log, RetireReason::kSnapshotFailed, std::string(error.message()));
    log.retire_durable_ = true;
    for (Waker* w : log.listeners_) w->Wake();
  }
}

Lsn ShapeLog::Read(std::vector<ReadCursor*>& cursors) const {
  std::lock_guard lock(mu_);
  for (ReadCursor* c : cursors) {
    const InstanceLog& log = *c->log;
    c->entries.clear();
    c->retired = false;
    c->servable = false;
    if (log.retire_reason_ == RetireReason::kSnapshotFailed) {
      c->retired = true;
      c->reason = log.retire_reason_;
      c->message = log.retire_message_;
      continue;
    }
    c->servable = ServableLocked(log);
    c->end = c->servable ? log.servable_ : 0;
    const size_t to = std::min(c->end, c->from + c->max);
    for (size_t i = c->from; i < to; ++i) c->entries.push_back(&log.entries_[i]);
    if (log.phase_ == InstanceLog::Phase::kRetired && log.retire_durable_ &&
        (!log.was_ready_ || log.servable_ == log.entries_.size())) {
      c->retired = true;
      c->reason = log.retire_reason_;
      c->message = log.retire_message_;
    }
  }
  return durable_routed_;
}

ShapeLog::Position ShapeLog::Locate(const InstanceLog& log, LogOffset offset, size_t* after) const {
  std::lock_guard lock(mu_);
  const auto begin = log.entries_.begin();
  const auto end = begin + static_cast<ptrdiff_t>(log.servable_);
  // A follower's log that goes on may not have reached an offset another node served yet.
  const bool may_come = follower_ && log.phase_ != InstanceLog::Phase::kRetired;
  if (begin == end) return may_come ? Position::kAhead : Position::kNotInLog;
  if (offset < begin->offset) return Position::kNotInLog;
  if (std::prev(end)->offset < offset) return may_come ? Position::kAhead : Position::kNotInLog;
  auto it = std::upper_bound(begin, end, offset,
                             [](const LogOffset& o, const StoredEntry& e) { return o < e.offset; });
  // The client's offset must be one of the entries: anything else comes from another log.
  if (it == begin || std::prev(it)->offset != offset) return Position::kNotInLog;
  *after = static_cast<size_t>(it - begin);
  return Position::kFound;
}

absl::Status ShapeLog::RetireIdle(std::chrono::steady_clock::time_point now) {
  if (config_.idle_retire.count() == 0 || follower_) return absl::OkStatus();
  {
    std::lock_guard lock(mu_);
    std::vector<std::shared_ptr<InstanceLog>> idle;
    for (auto& [id, log] : instances_) {
      if (log->subscribers_ == 0 && log->phase_ == InstanceLog::Phase::kReady &&
          now - log->idle_since_ > config_.idle_retire) {
        idle.push_back(log);
      }
    }
    if (idle.empty()) return absl::OkStatus();
    for (auto& log : idle) {
      RetireLocked(*log, RetireReason::kRetention,
                   "the instance had no subscribers for longer than shape_log.idle_retire");
    }
  }
  return Sync();
}

std::string ShapeLog::EncodeInstance(const shapes::ShapeInstance& instance) {
  log::v1::InstanceStart start;
  DescribeInstance(instance, &start);
  return start.SerializeAsString();
}

absl::StatusOr<std::shared_ptr<const shapes::ShapeInstance>> ShapeLog::DecodeInstance(
    std::string_view bytes, const DefinitionLookup& definitions) {
  log::v1::InstanceStart start;
  if (!start.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError("an instance description that does not parse");
  }
  return InstanceFromStart(start, definitions);
}

bool ShapeLog::Live(const InstanceLog& log) const {
  std::lock_guard lock(mu_);
  return log.phase_ != InstanceLog::Phase::kRetired;
}

std::unique_ptr<ShapeLog> ShapeLog::CreateFollower(const ShapeLogConfig& config,
                                                   shapes::Router& router,
                                                   DefinitionLookup definitions, int partitions) {
  std::unique_ptr<ShapeLog> log(new ShapeLog(config, router));
  log->follower_ = true;
  log->definitions_ = std::move(definitions);
  log->partition_routed_.resize(partitions);
  log->partition_dirty_.resize(partitions);
  return log;
}

absl::Status ShapeLog::ApplyRemote(int partition, std::string_view payload) {
  if (!follower_ || partition < 0 || partition >= static_cast<int>(partition_routed_.size())) {
    return absl::InvalidArgumentError(absl::StrCat("no partition ", partition, " here"));
  }
  log::v1::ShapeLogRecord record;
  if (!record.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return absl::InvalidArgumentError("a shape topic record that does not parse");
  }
  stats_.remote_records.fetch_add(1, std::memory_order_relaxed);
  std::vector<InstanceLog*> wake;
  std::lock_guard lock(mu_);
  auto find = [&](const std::string& id) -> InstanceLog* {
    auto it = instances_.find(IdFromBytes(id));
    return it == instances_.end() ? nullptr : it->second.get();
  };
  switch (record.record_case()) {
    case log::v1::ShapeLogRecord::kStart: {
      const log::v1::InstanceStart& start = record.start();
      const shapes::InstanceId id = IdFromBytes(start.instance_id());
      auto it = instances_.find(id);
      std::shared_ptr<InstanceLog> log;
      absl::StatusOr<std::shared_ptr<const shapes::ShapeInstance>> instance =
          InstanceFromStart(start, definitions_);
      absl::StatusOr<PgSnapshot> snapshot = PgSnapshot::Parse(start.pg_snapshot());
      if (it != instances_.end() && it->second->snapshot_ &&
          it->second->snapshot_lsn_ == Lsn(start.snapshot_lsn())) {
        break;  // delivered again
      }
      if (it != instances_.end() && it->second->phase_ == InstanceLog::Phase::kSnapshotting &&
          !it->second->snapshot_) {
        log = it->second;  // the placeholder its subscribers wait on
      } else if (it != instances_.end()) {
        EndRemoteLocked(*it->second, RetireReason::kStreamReset, "the instance was started again");
      }
      if (!instance.ok() || !snapshot.ok()) {
        // This server's configuration differs from the replicator's: it cannot serve it.
        if (log) {
          log->partition_ = partition;
          RetireLocked(
              *log, RetireReason::kSnapshotFailed,
              absl::StrCat("this server cannot follow the instance: ",
                           (!instance.ok() ? instance.status() : snapshot.status()).message()));
          log->retire_durable_ = true;
          wake.push_back(log.get());
        }
        break;
      }
      if (!log) {
        log = std::make_shared<InstanceLog>();
        log->instance_ = *instance;
        log->idle_since_ = std::chrono::steady_clock::now();
        instances_.emplace(id, log);
        stats_.instances = instances_.size();
      }
      log->partition_ = partition;
      log->snapshot_ = *std::move(snapshot);
      log->snapshot_lsn_ = Lsn(start.snapshot_lsn());
      break;
    }
    case log::v1::ShapeLogRecord::kEntry: {
      InstanceLog* log = find(record.entry().instance_id());
      if (log == nullptr || !log->snapshot_ || log->phase_ == InstanceLog::Phase::kRetired) break;
      const LogOffset offset{Lsn(record.entry().lsn()), record.entry().index()};
      if (!log->entries_.empty() && offset <= log->entries_.back().offset) {
        stats_.remote_duplicates.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      const StoredEntry stored{.offset = offset,
                               .change = log->changes_.Append(record.entry().change())};
      const uint64_t bytes = record.entry().ByteSizeLong();
      log->bytes_ += bytes;
      log->entries_.push_back(stored);
      stats_.entries.fetch_add(1, std::memory_order_relaxed);
      stats_.bytes.fetch_add(bytes, std::memory_order_relaxed);
      if (log->phase_ == InstanceLog::Phase::kSnapshotting) {
        stats_.snapshot_rows.fetch_add(1, std::memory_order_relaxed);
        stats_.snapshot_bytes.fetch_add(bytes, std::memory_order_relaxed);
      }
      MarkDirtyLocked(*log);
      break;
    }
    case log::v1::ShapeLogRecord::kSnapshotDone: {
      InstanceLog* log = find(record.snapshot_done().instance_id());
      if (log == nullptr || !log->snapshot_ || log->phase_ != InstanceLog::Phase::kSnapshotting) {
        break;
      }
      log->phase_ = InstanceLog::Phase::kReady;
      log->was_ready_ = true;
      MarkDirtyLocked(*log);
      break;
    }
    case log::v1::ShapeLogRecord::kRetired: {
      InstanceLog* log = find(record.retired().instance_id());
      if (log == nullptr) break;
      log->partition_ = partition;
      const auto reason = static_cast<RetireReason>(record.retired().reason());
      RetireLocked(*log, reason, record.retired().message());
      if (reason == RetireReason::kSnapshotFailed) {
        log->retire_durable_ = true;
        wake.push_back(log);
      }
      break;
    }
    case log::v1::ShapeLogRecord::kRouted: {
      partition_routed_[partition] =
          std::max(partition_routed_[partition], Lsn(record.routed().lsn()));
      for (std::shared_ptr<InstanceLog>& log : partition_dirty_[partition]) {
        log->dirty_ = false;
        log->servable_ = log->entries_.size();
        if (log->was_ready_ && !log->ready_durable_) {
          log->ready_durable_ = true;
          awaiting_.push_back(log);
        }
        if (log->phase_ == InstanceLog::Phase::kRetired) log->retire_durable_ = true;
        wake.push_back(log.get());
      }
      // The logs stay alive (held by sessions) until the wake-up below.
      std::vector<std::shared_ptr<InstanceLog>> woken;
      woken.swap(partition_dirty_[partition]);
      durable_routed_ = *std::min_element(partition_routed_.begin(), partition_routed_.end());
      CollectAwaitingLocked(wake);
      for (InstanceLog* log : wake) {
        for (Waker* w : log->listeners_) w->Wake();
      }
      return absl::OkStatus();
    }
    case log::v1::ShapeLogRecord::kEpoch:
    case log::v1::ShapeLogRecord::RECORD_NOT_SET:
      break;
  }
  for (InstanceLog* log : wake) {
    for (Waker* w : log->listeners_) w->Wake();
  }
  return absl::OkStatus();
}

void ShapeLog::EndRemoteLocked(InstanceLog& log, RetireReason reason, std::string message) {
  // Entries no Routed record confirmed never happened: the replicator that sent them did not
  // finish its sync.
  while (log.entries_.size() > log.servable_) {
    stats_.entries.fetch_sub(1, std::memory_order_relaxed);
    log.entries_.pop_back();
  }
  RetireLocked(log, reason, std::move(message));
  log.retire_durable_ = true;
  for (Waker* w : log.listeners_) w->Wake();
}

void ShapeLog::ResetPartition(int partition, std::string_view reason) {
  std::lock_guard lock(mu_);
  if (!follower_ || partition < 0 || partition >= static_cast<int>(partition_routed_.size())) {
    return;
  }
  std::vector<std::shared_ptr<InstanceLog>> ended;
  for (auto& [id, log] : instances_) {
    // Placeholders wait on: the new replicator gets their registrations.
    if (log->partition_ == partition && log->snapshot_) ended.push_back(log);
  }
  for (auto& log : ended) EndRemoteLocked(*log, RetireReason::kStreamReset, std::string(reason));
  for (auto& log : partition_dirty_[partition]) {
    log->dirty_ = false;
    if (log->phase_ == InstanceLog::Phase::kRetired && !log->retire_durable_) {
      // A Retired record no Routed record confirmed: it ends now, without what was not
      // confirmed (its entries left the counts when it retired).
      while (log->entries_.size() > log->servable_) log->entries_.pop_back();
      log->retire_durable_ = true;
      for (Waker* w : log->listeners_) w->Wake();
    }
  }
  partition_dirty_[partition].clear();
  std::erase_if(awaiting_, [&](const auto& log) { return log->partition_ == partition; });
}

void ShapeLog::ExpirePlaceholders(std::chrono::steady_clock::time_point now,
                                  std::chrono::seconds timeout) {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<InstanceLog>> expired;
  for (auto it = instances_.begin(); it != instances_.end();) {
    InstanceLog& log = *it->second;
    if (log.snapshot_ || log.phase_ != InstanceLog::Phase::kSnapshotting) {
      ++it;
    } else if (log.subscribers_ == 0) {
      it = instances_.erase(it);  // nobody waits for it any more
      stats_.instances = instances_.size();
    } else {
      if (now - log.idle_since_ > timeout) expired.push_back(it->second);
      ++it;
    }
  }
  for (auto& log : expired) {
    RetireLocked(*log, RetireReason::kSnapshotFailed,
                 absl::StrCat("the replicator did not start the instance within ", timeout.count(),
                              " s: is `shapebridge replicate` running, with the same shapes?"));
    log->retire_durable_ = true;
    for (Waker* w : log->listeners_) w->Wake();
  }
}

std::vector<std::shared_ptr<const shapes::ShapeInstance>> ShapeLog::InUse() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<const shapes::ShapeInstance>> out;
  for (const auto& [id, log] : instances_) {
    if (log->subscribers_ > 0) out.push_back(log->instance_);
  }
  return out;
}

std::vector<std::shared_ptr<const shapes::ShapeInstance>> ShapeLog::Unstarted() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<const shapes::ShapeInstance>> out;
  for (const auto& [id, log] : instances_) {
    if (!log->snapshot_ && log->phase_ == InstanceLog::Phase::kSnapshotting &&
        log->subscribers_ > 0) {
      out.push_back(log->instance_);
    }
  }
  return out;
}

}  // namespace shapebridge
