#include "bridge/replication/replicator.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "bridge/common/pg.h"
#include "bridge/replication/decoder/pgoutput.h"
#include "bridge/replication/decoder/walsender_frame.h"
#include "bridge/replication/source_setup.h"
#include "spdlog/spdlog.h"

namespace shapebridge {
namespace {

constexpr char kSlotBusySqlState[] = "55006";

PgTimestamp NowPg() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return PgTimestamp::FromUnixMicros(
      std::chrono::duration_cast<std::chrono::microseconds>(now).count());
}

// Errors that reconnecting may cure.
bool Retryable(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnknown:
      return true;
    default:
      return false;
  }
}

bool SlotBusy(const absl::Status& status) { return SqlStateOf(status) == kSlotBusySqlState; }

}  // namespace

Replicator::Replicator(ReplicationConfig config, TransactionSink& sink)
    : config_(std::move(config)), sink_(sink) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

Replicator::~Replicator() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void Replicator::Start() {
  if (thread_.joinable() || done_.load()) return;
  thread_ = std::thread([this] { Run(); });
}

void Replicator::Stop() {
  stop_.store(true);
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

absl::Status Replicator::exit_status() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return exit_status_;
}

void Replicator::Run() {
  auto backoff = config_.reconnect_backoff_min;
  // When the slot was first found busy in the current run of busy answers (epoch: not busy).
  Clock::time_point busy_since{};
  absl::Status result;
  while (!stop_.load()) {
    const uint64_t transactions_before = stats_.transactions.load();
    absl::Status status = Session();
    stats_.streaming.store(false);
    if (stop_.load()) break;
    if (SlotBusy(status)) {
      if (busy_since == Clock::time_point{}) busy_since = Clock::now();
      if (Clock::now() - busy_since > config_.slot_busy_timeout) {
        result = absl::FailedPreconditionError(
            absl::StrCat(status.message(),
                         "; gave up after replication.slot_busy_timeout_ms. Stop the "
                         "other consumer of slot \"",
                         config_.slot, "\" or choose another replication.slot"));
        break;
      }
    } else {
      busy_since = Clock::time_point{};
      if (!Retryable(status)) {
        result = status;
        break;
      }
    }
    // A session that got as far as passing transactions on was healthy: start backoff over.
    if (stats_.transactions.load() != transactions_before) backoff = config_.reconnect_backoff_min;
    spdlog::warn("[replication slot={}] {}; reconnecting in {} ms", config_.slot, status.ToString(),
                 backoff.count());
    SleepInterruptible(backoff);
    backoff = std::min(backoff * 2, config_.reconnect_backoff_max);
  }
  if (!result.ok()) {
    spdlog::error("[replication slot={}] stopped: {}", config_.slot, result.ToString());
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    exit_status_ = result;
  }
  done_.store(true);
}

absl::Status Replicator::Session() {
  in_transaction_ = false;
  relations_ = RelationCache();
  auto sql = PgConnection::Connect(config_.dsn, PgConnectionKind::kSql, "shapebridge",
                                   config_.connect_timeout);
  if (!sql.ok()) return sql.status();
  if (absl::Status s = PrepareSource(**sql, config_); !s.ok()) return s;
  auto slot = InspectSlot(**sql, config_);
  if (!slot.ok()) return slot.status();
  if (slot->active_pid) {
    absl::Status busy = absl::FailedPreconditionError(
        absl::StrCat("replication slot \"", config_.slot, "\" is active for PID ",
                     *slot->active_pid, " (another shapebridge, or another consumer)"));
    busy.SetPayload(kSqlStatePayload, absl::Cord(kSlotBusySqlState));
    return busy;
  }

  auto replication = PgConnection::Connect(config_.dsn, PgConnectionKind::kReplication,
                                           "shapebridge", config_.connect_timeout);
  if (!replication.ok()) return replication.status();
  PgConnection& conn = **replication;

  if (!slot->exists) {
    auto consistent = CreateSlot(conn, config_);
    if (!consistent.ok()) return consistent.status();
    spdlog::info("[replication slot={}] created slot at {}", config_.slot, consistent->ToString());
    if (sink_.DurableLsn().valid()) {
      // The log holds changes from an earlier slot: what happened in between is unknown.
      if (absl::Status s = sink_.OnStreamReset(*consistent, "replication slot created anew");
          !s.ok()) {
        return s;
      }
      if (absl::Status s = sink_.Sync(); !s.ok()) return s;
    }
  }

  const Lsn start = sink_.DurableLsn();
  const std::string command = absl::StrCat(
      "START_REPLICATION SLOT ", conn.QuoteIdentifier(config_.slot), " LOGICAL ", start.ToString(),
      " (proto_version '", config_.protocol_version, "', publication_names ",
      conn.QuoteLiteral(conn.QuoteIdentifier(config_.publication)), ", messages 'true')");
  if (absl::Status s = conn.StartCopyBoth(command); !s.ok()) return s;
  stats_.sessions.fetch_add(1);
  stats_.streaming.store(true);
  spdlog::info("[replication slot={}] streaming from {} (protocol {})", config_.slot,
               start.ToString(), config_.protocol_version);

  last_sync_ = last_status_ = Clock::now();
  last_reported_flush_ = Lsn();
  dirty_ = false;
  while (!stop_.load()) {
    auto frame = conn.ReadCopyData();
    if (!frame.ok()) return frame.status();
    const auto now = Clock::now();
    if (frame->has_value()) {
      if (absl::Status s = HandleFrame(**frame, conn); !s.ok()) return s;
      // Busy: bound the time between syncs, but only at transaction boundaries.
      if (dirty_ && !in_transaction_ && now - last_sync_ >= config_.sync_interval) {
        if (absl::Status s = SyncAndReport(conn, false); !s.ok()) return s;
      }
      if (now - last_status_ >= config_.status_interval) {
        if (absl::Status s = SendStatus(conn, false); !s.ok()) return s;
      }
      continue;
    }
    // Nothing buffered: the stream is idle for now, so make what we have durable.
    if (dirty_ && !in_transaction_) {
      if (absl::Status s = SyncAndReport(conn, false); !s.ok()) return s;
    }
    if (now - last_status_ >= config_.status_interval) {
      if (absl::Status s = SendStatus(conn, false); !s.ok()) return s;
    }
    MaybeHeartbeat();
    auto deadline = last_status_ + config_.status_interval;
    if (config_.heartbeat_interval.count() > 0) {
      deadline = std::min(deadline, last_heartbeat_ + config_.heartbeat_interval);
    }
    WaitReadable(conn.Socket(), deadline);
    if (absl::Status s = conn.ConsumeInput(); !s.ok()) return s;
  }
  // Stopping: make everything durable and tell Postgres before leaving.
  if (!in_transaction_) (void)SyncAndReport(conn, true);
  (void)conn.EndCopy();
  return absl::OkStatus();
}

absl::Status Replicator::HandleFrame(std::string_view frame, PgConnection& replication) {
  auto decoded = walsender::DecodeFrame(frame);
  if (!decoded.ok()) {
    stats_.decode_errors.fetch_add(1, std::memory_order_relaxed);
    return decoded.status();
  }
  if (auto* keepalive = std::get_if<walsender::Keepalive>(&*decoded)) {
    stats_.received_lsn.store(std::max(stats_.received_lsn.load(), keepalive->wal_end.value()));
    if (!in_transaction_) {
      // Everything that committed before wal_end has been sent before this keepalive.
      if (absl::Status s = sink_.OnIdlePosition(keepalive->wal_end); !s.ok()) return s;
      dirty_ = true;
    }
    if (keepalive->reply_requested) {
      // Answer at once; sync first when that lets the answer carry a newer position.
      if (dirty_ && !in_transaction_) return SyncAndReport(replication, true);
      return SendStatus(replication, false);
    }
    return absl::OkStatus();
  }
  const auto& data = std::get<walsender::XLogData>(*decoded);
  stats_.received_lsn.store(std::max(stats_.received_lsn.load(), data.wal_end.value()));
  return HandleMessage(data.payload);
}

absl::Status Replicator::HandleMessage(std::string_view payload) {
  pgoutput::DecodeContext context{.protocol_version = config_.protocol_version, .in_stream = false};
  auto message = pgoutput::Decode(payload, context);
  if (!message.ok()) {
    stats_.decode_errors.fetch_add(1, std::memory_order_relaxed);
    return message.status();
  }
  dirty_ = true;
  return std::visit(
      [&](auto& m) -> absl::Status {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, pgoutput::Begin>) {
          in_transaction_ = true;
          current_xid_ = m.xid;
          return sink_.OnBegin(TransactionBegin{
              .xid = m.xid, .commit_lsn = m.final_lsn, .commit_time = m.commit_time});
        } else if constexpr (std::is_same_v<T, pgoutput::Commit>) {
          in_transaction_ = false;
          stats_.transactions.fetch_add(1);
          stats_.last_commit_unix_micros.store(m.commit_time.unix_micros());
          return sink_.OnCommit(TransactionCommit{.xid = current_xid_,
                                                  .commit_lsn = m.commit_lsn,
                                                  .end_lsn = m.end_lsn,
                                                  .commit_time = m.commit_time});
        } else if constexpr (std::is_same_v<T, pgoutput::Relation>) {
          return sink_.OnRelation(relations_.Apply(m));
        } else if constexpr (std::is_same_v<T, pgoutput::Type>) {
          relations_.Apply(m);
          return absl::OkStatus();
        } else if constexpr (std::is_same_v<T, pgoutput::Origin>) {
          return absl::OkStatus();
        } else if constexpr (std::is_same_v<T, pgoutput::Insert> ||
                             std::is_same_v<T, pgoutput::Update> ||
                             std::is_same_v<T, pgoutput::Delete>) {
          auto relation = relations_.Find(m.relation);
          if (!relation.ok()) return relation.status();
          RowChange change;
          change.relation = m.relation;
          if constexpr (std::is_same_v<T, pgoutput::Insert>) {
            change.op = ChangeOp::kInsert;
          } else {
            change.op = std::is_same_v<T, pgoutput::Update> ? ChangeOp::kUpdate : ChangeOp::kDelete;
            if (m.old_kind != pgoutput::OldTupleKind::kNone) {
              auto old_values = relations_.Typed(**relation, m.old_tuple);
              if (!old_values.ok()) return old_values.status();
              change.old_values = *std::move(old_values);
              change.old_is_key_only = m.old_kind == pgoutput::OldTupleKind::kKey;
            }
          }
          if constexpr (!std::is_same_v<T, pgoutput::Delete>) {
            auto new_values = relations_.Typed(**relation, m.new_tuple);
            if (!new_values.ok()) return new_values.status();
            change.new_values = *std::move(new_values);
          }
          stats_.changes.fetch_add(1);
          return sink_.OnChange(std::move(change));
        } else if constexpr (std::is_same_v<T, pgoutput::Truncate>) {
          return sink_.OnTruncate(TruncateChange{
              .relations = m.relations,
              .cascade = (m.options & pgoutput::Truncate::kCascade) != 0,
              .restart_identity = (m.options & pgoutput::Truncate::kRestartIdentity) != 0});
        } else if constexpr (std::is_same_v<T, pgoutput::LogicalMessage>) {
          if (!m.transactional() && !in_transaction_ && m.prefix == kHeartbeatPrefix) {
            // Decoded in WAL order: every earlier commit has been sent already.
            return sink_.OnIdlePosition(m.lsn);
          }
          return absl::OkStatus();
        } else {
          // Stream Start/Stop/Commit/Abort: streaming was not requested.
          return absl::InvalidArgumentError(
              absl::StrCat("pgoutput sent a streaming message although streaming is off: ",
                           pgoutput::DebugString(*message)));
        }
      },
      *message);
}

absl::Status Replicator::SyncAndReport(PgConnection& replication, bool force_status) {
  if (absl::Status s = sink_.Sync(); !s.ok()) return s;
  dirty_ = false;
  last_sync_ = Clock::now();
  if (force_status || sink_.DurableLsn() != last_reported_flush_) {
    return SendStatus(replication, false);
  }
  return absl::OkStatus();
}

absl::Status Replicator::SendStatus(PgConnection& replication, bool reply_requested) {
  const Lsn flushed = sink_.DurableLsn();
  const Lsn written(std::max(stats_.received_lsn.load(), flushed.value()));
  if (absl::Status s = replication.WriteCopyData(
          walsender::EncodeStandbyStatus(written, flushed, flushed, NowPg(), reply_requested));
      !s.ok()) {
    return s;
  }
  auto flushed_all = replication.FlushOutput();
  if (!flushed_all.ok()) return flushed_all.status();
  last_reported_flush_ = flushed;
  last_status_ = Clock::now();
  stats_.reported_flush_lsn.store(flushed.value());
  stats_.status_updates.fetch_add(1);
  return absl::OkStatus();
}

void Replicator::MaybeHeartbeat() {
  if (config_.heartbeat_interval.count() <= 0) return;
  const auto now = Clock::now();
  if (now - last_heartbeat_ < config_.heartbeat_interval) return;
  last_heartbeat_ = now;
  if (!heartbeat_connection_) {
    auto conn = PgConnection::Connect(config_.dsn, PgConnectionKind::kSql, "shapebridge-heartbeat",
                                      config_.connect_timeout);
    if (!conn.ok()) {
      spdlog::warn("[replication slot={}] heartbeat: {}", config_.slot, conn.status().ToString());
      return;
    }
    heartbeat_connection_ = *std::move(conn);
  }
  auto result = heartbeat_connection_->ExecParams("SELECT pg_logical_emit_message(false, $1, '')",
                                                  {std::string(kHeartbeatPrefix)});
  if (!result.ok()) {
    spdlog::warn("[replication slot={}] heartbeat: {}", config_.slot, result.status().ToString());
    heartbeat_connection_.reset();
    return;
  }
  stats_.heartbeats.fetch_add(1);
}

void Replicator::WaitReadable(int socket, Clock::time_point deadline) {
  const auto now = Clock::now();
  const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
  const int timeout_ms = static_cast<int>(std::clamp<int64_t>(wait.count() + 1, 1, 1000));
  pollfd fds[2] = {{.fd = socket, .events = POLLIN, .revents = 0},
                   {.fd = wake_fd_, .events = POLLIN, .revents = 0}};
  (void)poll(fds, 2, timeout_ms);
}

void Replicator::SleepInterruptible(std::chrono::milliseconds duration) {
  pollfd fd{.fd = wake_fd_, .events = POLLIN, .revents = 0};
  (void)poll(&fd, 1, static_cast<int>(duration.count()));
}

}  // namespace shapebridge
