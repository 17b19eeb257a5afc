#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "bridge/replication/relation_cache.h"
#include "bridge/replication/replication_config.h"
#include "bridge/replication/transaction_sink.h"

namespace shapebridge {

class PgConnection;

// Counters of the replication thread, readable from any thread (tests and metrics read them).
struct ReplicatorStats {
  std::atomic<uint64_t> transactions{0};
  std::atomic<uint64_t> changes{0};
  std::atomic<uint64_t> sessions{0};    // replication sessions started (1 + reconnects)
  std::atomic<uint64_t> heartbeats{0};  // heartbeat messages written
  // Frames or pgoutput messages that did not decode (each ends the session with the error).
  std::atomic<uint64_t> decode_errors{0};
  std::atomic<uint64_t> status_updates{0};
  std::atomic<uint64_t> received_lsn{0};        // newest WAL position seen from the server
  std::atomic<uint64_t> reported_flush_lsn{0};  // newest flush position sent to the server
  std::atomic<int64_t> last_commit_unix_micros{0};
  std::atomic<bool> streaming{false};
};

// Consumes the slot with pgoutput and hands transactions to a TransactionSink.
//
// Lifecycle: Start() spawns the replication thread; Stop() (idempotent, from any thread but the
// replication thread) ends it after a last sync and status update. The sink must outlive the
// Replicator. The thread reconnects with backoff after connection errors and resumes from
// sink.DurableLsn(); it ends by itself on an error that retrying cannot cure (wal_level,
// privileges, a lost slot, a slot busy for longer than slot_busy_timeout, a protocol error), and
// then done() is true and exit_status() says why.
//
// Flush feedback: the flush position sent to Postgres is sink.DurableLsn(), read after a
// successful Sync(), never a position the sink has not made durable.
class Replicator {
 public:
  Replicator(ReplicationConfig config, TransactionSink& sink);
  Replicator(const Replicator&) = delete;
  Replicator& operator=(const Replicator&) = delete;
  ~Replicator();

  void Start();
  void Stop();

  bool done() const { return done_.load(); }
  // Why the thread ended: OK after Stop(), the fatal error otherwise.
  absl::Status exit_status() const;
  const ReplicatorStats& stats() const { return stats_; }

  // The prefix of heartbeat messages in the WAL.
  static constexpr std::string_view kHeartbeatPrefix = "shapebridge.heartbeat";

 private:
  using Clock = std::chrono::steady_clock;

  void Run();
  absl::Status Session();
  absl::Status HandleFrame(std::string_view frame, PgConnection& replication);
  absl::Status HandleMessage(std::string_view payload);
  absl::Status SyncAndReport(PgConnection& replication, bool force_status);
  absl::Status SendStatus(PgConnection& replication, bool reply_requested);
  void MaybeHeartbeat();
  // Waits until the socket is readable, the deadline passes or Stop() is called.
  void WaitReadable(int socket, Clock::time_point deadline);
  void SleepInterruptible(std::chrono::milliseconds duration);

  const ReplicationConfig config_;
  TransactionSink& sink_;
  ReplicatorStats stats_;

  // Replication-thread state.
  RelationCache relations_;
  bool in_transaction_ = false;
  Xid current_xid_;
  bool dirty_ = false;  // passed on to the sink since the last Sync()
  Lsn last_reported_flush_;
  Clock::time_point last_sync_;
  Clock::time_point last_status_;
  Clock::time_point last_heartbeat_;
  std::unique_ptr<PgConnection> heartbeat_connection_;

  std::thread thread_;
  int wake_fd_ = -1;  // eventfd written by Stop()
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  mutable std::mutex mutex_;
  absl::Status exit_status_;  // guarded by mutex_
};

}  // namespace shapebridge
