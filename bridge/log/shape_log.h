#pragma once

// The shape log: the ordered entries of every shape instance, in memory for serving and in a
// journal on disk so they survive a restart. Entries come from two writers: the routing stage
// (live changes, in commit order) and snapshots (an instance's first rows). Sessions read them.

#include <atomic>
#include <chrono>
#include <compare>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "core/lsn.h"
#include "shapes/router.h"

namespace shapebridge {

// A position in one instance's log: strictly increasing within the instance. Live entries have the
// commit LSN of their transaction (or the instance's last LSN, when that is higher) and their
// position among the instance's entries at that LSN; snapshot rows have the snapshot's LSN.
struct LogOffset {
  Lsn lsn;
  uint32_t index = 0;
  friend constexpr auto operator<=>(const LogOffset&, const LogOffset&) = default;
  std::string ToString() const;  // "16/B374D848#3"
};

// An entry of an instance's log: its offset and its change, encoded as the sync.v1.Change a
// client receives, without the offset (see change_codec.h). The bytes belong to the instance's
// log (ByteChunks), which keeps them while it lives.
struct StoredEntry {
  LogOffset offset;
  std::string_view change;
  // When the change's transaction committed on Postgres (µs since the Unix epoch); 0 for snapshot
  // rows and entries recovered from the journal. For the commit-to-client latency metric.
  int64_t commit_unix_micros = 0;
};

// Append-only storage for the encodings of an instance's entries: large chunks that never move,
// so that views into them stay valid, and appending an entry is a copy rather than an allocation.
class ByteChunks {
 public:
  std::string_view Append(std::string_view bytes);

 private:
  static constexpr size_t kChunkBytes = 256 << 10;
  std::vector<std::unique_ptr<char[]>> chunks_;
  size_t used_ = 0;  // of the last chunk
  size_t size_ = 0;  // of the last chunk
};

// Why an instance's log ended. The values are those of sync.v1.MustRefetch.Reason.
enum class RetireReason : uint8_t {
  kNone = 0,
  kTruncated = 1,
  kOffsetNotFound = 2,
  kRetention = 3,
  kSchemaChanged = 4,
  kStreamReset = 5,
  kSnapshotFailed = 100,  // not a refetch: the subscription fails with the snapshot's error
};

// pg_current_snapshot(): which transactions a snapshot sees.
struct PgSnapshot {
  uint64_t xmin = 0;
  uint64_t xmax = 0;
  std::vector<uint64_t> xip;  // in progress at the snapshot, sorted

  // Parses "xmin:xmax:xip1,xip2,...".
  static absl::StatusOr<PgSnapshot> Parse(std::string_view text);
  std::string ToString() const;
  // Whether the snapshot sees the transaction `xid`, a 32-bit xid of a transaction that committed
  // near the snapshot's time (its epoch is taken from xmax).
  bool Visible(Xid xid) const;
};

// Settings of the shape log (the `shape_log` section of the config file).
struct ShapeLogConfig {
  // Directory of the journal; created if missing. Empty: no journal on disk (the Kafka
  // replicator, whose journal is the shape topic, and server nodes, which follow it).
  std::string dir;
  // fdatasync the journal before entries are served and before the flush LSN advances. Only for
  // throwaway test setups: without it a machine crash can lose what clients were told.
  bool fsync = true;
  // Retention by size: an instance whose log grows past this many bytes ends (its clients
  // refetch; the next subscriber takes a fresh snapshot). 0: no limit.
  uint64_t max_instance_bytes = 64ull << 20;
  // Retention by time: an instance without subscribers for this long ends. 0: never.
  std::chrono::seconds idle_retire{3600};
};

struct ShapeLogStats {
  std::atomic<uint64_t> instances{0};
  std::atomic<uint64_t> entries{0};         // in memory, all instances
  std::atomic<uint64_t> bytes{0};           // of entries in memory (journal encoding)
  std::atomic<uint64_t> snapshot_rows{0};   // total
  std::atomic<uint64_t> snapshot_bytes{0};  // total, in the journal's encoding
  std::atomic<uint64_t> retired{0};         // total
  std::atomic<uint64_t> syncs{0};
  std::atomic<uint64_t> snapshot_retries{0};  // snapshots taken again (see BeginSnapshot)
  // A follower's records from the shape topic: applied, and entries dropped as re-delivered.
  std::atomic<uint64_t> remote_records{0};
  std::atomic<uint64_t> remote_duplicates{0};
};

// Wakes one waiting session. Wake() may be called from any thread, any number of times.
class Waker {
 public:
  void Wake();
  // Waits until woken (returns true, and resets) or until `deadline` (false).
  bool WaitUntil(std::chrono::steady_clock::time_point deadline);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool signaled_ = false;
};

class ShapeLog;

// One instance's log. Shared (std::shared_ptr) by the ShapeLog while the instance is live and by
// the sessions reading it; every mutable field is guarded by the ShapeLog's lock.
class InstanceLog : public std::enable_shared_from_this<InstanceLog> {
 public:
  const shapes::ShapeInstance& instance() const { return *instance_; }
  const std::shared_ptr<const shapes::ShapeInstance>& shared_instance() const { return instance_; }

 private:
  friend class ShapeLog;
  enum class Phase : uint8_t { kSnapshotting, kReady, kRetired };
  struct Pending {
    Xid xid;
    Lsn commit_lsn;
    int64_t commit_unix_micros;
    shapes::ShapeEntry entry;
    RetireReason refetch_reason;
  };

  std::shared_ptr<const shapes::ShapeInstance> instance_;
  Phase phase_ = Phase::kSnapshotting;
  bool was_ready_ = false;
  uint64_t registered_seq_ = 0;  // transactions begun at or before this are not routed to it
  std::optional<PgSnapshot> snapshot_;
  Lsn snapshot_lsn_;
  std::vector<Pending> pending_;  // routed while the snapshot runs
  // A deque: appending never moves an entry, so readers may hold pointers to them.
  std::deque<StoredEntry> entries_;
  // The bytes of entries_; appended by whoever appends entries (the snapshot worker while the
  // snapshot runs, then the routing stage under the lock).
  ByteChunks changes_;
  size_t servable_ = 0;         // entries that are durable
  bool ready_durable_ = false;  // SnapshotDone is durable
  uint64_t bytes_ = 0;
  RetireReason retire_reason_ = RetireReason::kNone;
  std::string retire_message_;
  bool retire_durable_ = false;
  int subscribers_ = 0;
  int partition_ = -1;  // a follower's: the shape topic partition of the instance
  std::chrono::steady_clock::time_point idle_since_;
  bool dirty_ = false;
  std::vector<Waker*> listeners_;
};

// One entry of a routed transaction, with why a kMustRefetch entry was made.
struct RoutedEntry {
  shapes::ShapeEntry entry;
  RetireReason refetch_reason = RetireReason::kNone;
};

// What a session reads from one instance, all under one lock with the others (ShapeLog::Read).
struct ReadCursor {
  const InstanceLog* log = nullptr;
  size_t from = 0;  // index of the next entry to read
  size_t max = 0;   // read at most this many
  // Out: entries of the instance's log, which never move or change once appended (valid while
  // the reader holds the InstanceLog).
  std::vector<const StoredEntry*> entries;
  bool servable = false;  // the snapshot is done, durable and routing has passed its LSN
  size_t end = 0;         // servable entries (from + entries.size() == end: drained)
  bool retired = false;   // and every entry is durable: after `end` comes nothing
  RetireReason reason = RetireReason::kNone;
  std::string message;
};

// The shape log. Thread-safe.
//
// Writers: the routing stage (NoteBegin, AppendTransaction, AdvanceIdle, ResetAll, from the
// replication thread) and snapshot workers (BeginSnapshot, AppendSnapshotRows, FinishSnapshot,
// FailSnapshot). Sync() may be called from any thread. Entries are appended to memory and to the
// journal's write buffer at once, but sessions see an entry (and DurableLsn() covers it) only
// after a Sync() has made it durable.
//
// Splice: an instance is registered with the router before its snapshot is taken. Transactions
// whose routing began before the registration are never applied to it; the others are applied
// unless the snapshot sees them (PgSnapshot::Visible). A transaction that began routing before
// the registration but that the snapshot does not see would be lost: BeginSnapshot detects it and
// asks for a new snapshot.
class ShapeLog {
 public:
  using DefinitionLookup =
      std::function<std::shared_ptr<const shapes::ShapeDefinition>(const std::string& name)>;

  // Opens the journal in config.dir and recovers every instance whose snapshot completed, with the
  // entries of every transaction routed before the last durable Routed record. Instances whose
  // definition is gone or changed (its version) are dropped. Recovered instances are registered
  // with `router`, which must outlive the ShapeLog. The journal is rewritten without dead records.
  static absl::StatusOr<std::unique_ptr<ShapeLog>> Open(const ShapeLogConfig& config,
                                                        shapes::Router& router,
                                                        const DefinitionLookup& definitions);
  ~ShapeLog();
  ShapeLog(const ShapeLog&) = delete;
  ShapeLog& operator=(const ShapeLog&) = delete;

  // Every transaction that commits before this has been routed and is durable.
  Lsn DurableLsn() const;

  // Routing. NoteBegin is called when a transaction starts to be routed and returns its sequence
  // number, which AppendTransaction takes back with the entries of the whole transaction.
  uint64_t NoteBegin(Xid xid);
  absl::Status AppendTransaction(uint64_t seq, Xid xid, Lsn commit_lsn, Lsn end_lsn,
                                 int64_t commit_unix_micros, std::vector<RoutedEntry>& entries);
  // Nothing commits before `position` that was not routed.
  absl::Status AdvanceIdle(Lsn position);
  // The replication stream restarted: every instance ends (kStreamReset).
  absl::Status ResetAll(Lsn position, std::string_view reason);
  // Makes everything appended so far durable, then lets sessions see it.
  absl::Status Sync();

  // Subscriptions. Acquire returns the live instance with this id, or registers a new one (with
  // the router too) whose snapshot the caller must then take; either way it counts a subscriber.
  struct Acquired {
    std::shared_ptr<InstanceLog> log;
    bool needs_snapshot = false;
  };
  absl::StatusOr<Acquired> Acquire(std::shared_ptr<const shapes::ShapeInstance> instance);
  void Release(InstanceLog& log);
  void AddListener(InstanceLog& log, Waker* waker);
  void RemoveListener(InstanceLog& log, Waker* waker);

  // Snapshots. BeginSnapshot records what the snapshot sees; FailedPrecondition means a
  // transaction routed before the registration is not visible in it: take a new snapshot.
  absl::Status BeginSnapshot(InstanceLog& log, const PgSnapshot& snapshot, Lsn snapshot_lsn);
  // Rows of the snapshot (kInsert entries), in batches.
  absl::Status AppendSnapshotRows(InstanceLog& log, std::span<const shapes::ShapeEntry> rows);
  // The snapshot is complete: appends the entries routed meanwhile that it does not see, and
  // makes it all durable.
  absl::Status FinishSnapshot(InstanceLog& log, uint64_t rows);
  // The snapshot failed: the instance ends; its sessions see `error`.
  void FailSnapshot(InstanceLog& log, const absl::Status& error);

  // Reads every cursor under one lock, and returns the durable position they are consistent
  // with: when every cursor is servable and drained, the reader has everything that commits
  // before the returned position.
  Lsn Read(std::vector<ReadCursor*>& cursors) const;
  // Where a resume offset is in a servable instance's log: one of its entries (`*after`: the
  // index of the next), past its last servable entry while the log goes on (a follower that has
  // not caught up with the node the offset came from: wait), or not in it (refetch).
  enum class Position { kFound, kAhead, kNotInLog };
  Position Locate(const InstanceLog& log, LogOffset offset, size_t* after) const;

  // Ends instances without subscribers for longer than idle_retire (not a follower's: the
  // replicator decides).
  absl::Status RetireIdle(std::chrono::steady_clock::time_point now);
  // Whether the instance's log goes on (it has not ended).
  bool Live(const InstanceLog& log) const;

  // The journal's copy elsewhere (the Kafka shape topic). Sync() hands it the framed records
  // appended since the last Sync() and the position routing has reached, after writing them to
  // disk (if there is a journal file) and before they count as durable. An error fails that
  // Sync() and every later one: what the mirror did not take is not sent again. Set before use.
  using Mirror = std::function<absl::Status(std::string_view frames, Lsn routed)>;
  void SetMirror(Mirror mirror) { mirror_ = std::move(mirror); }
  // OK, or the mirror's failure (after which the log takes no more).
  absl::Status mirror_status() const {
    std::lock_guard lock(mirror_mu_);
    return mirror_failed_;
  }

  // A follower: a shape log whose records come from another process's journal (the shape
  // topic, split over `partitions` partitions by instance) rather than from routing and
  // snapshots. Acquire() of an instance it does not have returns a placeholder with
  // needs_snapshot: the caller asks the replicator for the instance, whose Start record then
  // fills it in.
  static std::unique_ptr<ShapeLog> CreateFollower(const ShapeLogConfig& config,
                                                  shapes::Router& router,
                                                  DefinitionLookup definitions, int partitions);
  // One ShapeLogRecord (serialized) of `partition`, in the partition's order. An entry at or
  // below the instance's last offset is dropped (re-delivered). A partition's entries are served
  // once a Routed record follows them there. InvalidArgument for a record that does not parse.
  absl::Status ApplyRemote(int partition, std::string_view record);
  // A new replicator epoch in `partition`: its instances end (STREAM_RESET) and its position
  // starts over.
  void ResetPartition(int partition, std::string_view reason);
  // A follower's placeholders: those nobody waits for any more are dropped; those older than
  // `timeout` end (their subscriptions fail with a message saying so).
  void ExpirePlaceholders(std::chrono::steady_clock::time_point now, std::chrono::seconds timeout);
  // A follower's instances that have subscribers, and those of them still waiting for their
  // Start.
  std::vector<std::shared_ptr<const shapes::ShapeInstance>> InUse() const;
  std::vector<std::shared_ptr<const shapes::ShapeInstance>> Unstarted() const;
  bool follower() const { return follower_; }

  // An instance as the instance registry stores it (a serialized InstanceStart without its
  // snapshot), and back: NotFound or FailedPrecondition when this process defines its shape
  // differently.
  static std::string EncodeInstance(const shapes::ShapeInstance& instance);
  static absl::StatusOr<std::shared_ptr<const shapes::ShapeInstance>> DecodeInstance(
      std::string_view bytes, const DefinitionLookup& definitions);

  const ShapeLogStats& stats() const { return stats_; }
  // Called with the seconds each journal write and sync took (set before the log is used).
  void SetSyncObserver(std::function<void(double seconds)> observer) {
    sync_observer_ = std::move(observer);
  }

 private:
  struct Journal;
  ShapeLog(ShapeLogConfig config, shapes::Router& router);

  void AppendEntryLocked(InstanceLog& log, LogOffset offset, int64_t commit_unix_micros,
                         const shapes::ShapeEntry& entry);
  void AppendLiveLocked(InstanceLog& log, Lsn commit_lsn, int64_t commit_unix_micros,
                        const shapes::ShapeEntry& entry, RetireReason refetch_reason);
  void RetireLocked(InstanceLog& log, RetireReason reason, std::string message);
  void MarkDirtyLocked(InstanceLog& log);
  bool ServableLocked(const InstanceLog& log) const;
  // A follower's instance ends at once, without what its partition has not confirmed.
  void EndRemoteLocked(InstanceLog& log, RetireReason reason, std::string message);
  // Wakes the awaiting instances that durable_routed_ now covers (into `wake`).
  void CollectAwaitingLocked(std::vector<InstanceLog*>& wake);

  const ShapeLogConfig config_;
  shapes::Router& router_;
  ShapeLogStats stats_;
  std::function<void(double seconds)> sync_observer_;
  Mirror mirror_;
  mutable std::mutex mirror_mu_;
  absl::Status mirror_failed_;  // latched (see SetMirror); written under sync_mu_ too
  // A follower's state (CreateFollower).
  bool follower_ = false;
  DefinitionLookup definitions_;
  std::vector<Lsn> partition_routed_;
  std::vector<std::vector<std::shared_ptr<InstanceLog>>> partition_dirty_;

  std::mutex sync_mu_;  // one Sync() at a time; taken before mu_
  mutable std::mutex mu_;
  std::unique_ptr<Journal> journal_;
  std::unordered_map<shapes::InstanceId, std::shared_ptr<InstanceLog>> instances_;
  std::vector<std::shared_ptr<InstanceLog>> dirty_;
  // Instances whose snapshot is durable but routing has not passed its LSN yet.
  std::vector<std::shared_ptr<InstanceLog>> awaiting_;
  uint64_t seq_ = 0;
  // The last transactions whose routing began: (seq, xid), for BeginSnapshot's check.
  std::vector<std::pair<uint64_t, Xid>> recent_;
  size_t recent_next_ = 0;
  Lsn routed_;          // appended
  Lsn durable_routed_;  // durable
};

}  // namespace shapebridge
