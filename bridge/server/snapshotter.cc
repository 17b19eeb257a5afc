#include "bridge/server/snapshotter.h"

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bridge/common/pg.h"
#include "spdlog/spdlog.h"

namespace shapebridge {

namespace {

// A flushed WAL record after a snapshot's LSN: on a quiet database nothing else may come through
// the slot for a long time, and an instance is served only once routing has passed its snapshot's
// LSN. The logical message is not sent by pgoutput; the walsender then reports its position. One
// autocommit statement (no transaction is left open when it fails); the connection that sends it
// commits synchronously (kNudgeSetup), so the record is flushed when it returns.
constexpr char kNudgeSql[] = "SELECT pg_logical_emit_message(true, 'shapebridge.snapshot', '')";
constexpr char kNudgeSetup[] = "SET synchronous_commit = on";
// The same on a connection whose settings are the server's (the snapshot's, as a fallback).
constexpr char kNudgeInTransaction[] =
    "BEGIN; SET LOCAL synchronous_commit = on; "
    "SELECT pg_logical_emit_message(true, 'shapebridge.snapshot', ''); COMMIT";

// The shape's query: its columns, its table and its predicate with every value a parameter.
std::string SnapshotQuery(const shapes::ShapeInstance& instance, PgConnection& sql,
                          std::vector<std::optional<std::string>>* params) {
  const shapes::ShapeDefinition& def = instance.definition();
  std::vector<std::string> columns;
  for (size_t i = 0; i < def.columns.size(); ++i) {
    columns.push_back(sql.QuoteIdentifier(def.ColumnName(i)));
  }
  std::string query =
      absl::StrCat("SELECT ", absl::StrJoin(columns, ", "), " FROM ",
                   sql.QuoteIdentifier(def.table.schema), ".", sql.QuoteIdentifier(def.table.name));
  if (instance.predicate() != nullptr) {
    absl::StrAppend(&query, " WHERE ", shapes::ToSql(*instance.predicate(), params));
  }
  return query;
}

// `nudge` (may be null) is an idle connection for the WAL record that moves routing on; it is
// written while the snapshot runs. Without one, or when it fails (*nudge_failed is then set: the
// caller drops that connection), the snapshot's own connection writes the record after.
absl::Status TakeSnapshot(const SnapshotConfig& config, PgConnection& sql, PgConnection* nudge,
                          bool* nudge_failed, ShapeLog& log, InstanceLog& instance_log,
                          SnapshotterStats& stats) {
  const shapes::ShapeInstance& instance = instance_log.instance();
  const shapes::ShapeDefinition& def = instance.definition();
  Lsn snapshot_lsn;
  for (int attempt = 1;; ++attempt) {
    if (auto s = sql.Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); !s.ok()) {
      return s.status();
    }
    // The transaction's snapshot is taken by its first statement: this one.
    auto r = sql.Exec("SELECT pg_current_snapshot()::text, pg_current_wal_insert_lsn()::text");
    if (!r.ok()) return r.status();
    absl::StatusOr<PgSnapshot> snapshot = PgSnapshot::Parse(r->Get(0, 0));
    if (!snapshot.ok()) return snapshot.status();
    absl::StatusOr<Lsn> lsn = Lsn::Parse(r->Get(0, 1));
    if (!lsn.ok()) return lsn.status();
    absl::Status begun = log.BeginSnapshot(instance_log, *snapshot, *lsn);
    snapshot_lsn = *lsn;
    if (begun.ok()) break;
    (void)sql.Exec("ROLLBACK");
    if (begun.code() != absl::StatusCode::kFailedPrecondition || attempt >= config.max_attempts) {
      return begun;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5 * attempt));
  }

  bool nudging = false;
  if (nudge != nullptr && log.DurableLsn() < snapshot_lsn) {
    nudging = nudge->SendQuery(kNudgeSql).ok();
    *nudge_failed = !nudging;
  }
  // Collects the nudge's result (and leaves its connection idle), whatever happens to the
  // snapshot; true when the record was written.
  auto finish_nudge = [&]() -> bool {
    if (!nudging) return false;
    nudging = false;
    if (absl::Status s = nudge->FinishQuery(); !s.ok()) {
      spdlog::warn("[snapshot] the nudge connection failed: {}", s.ToString());
      *nudge_failed = true;
      return false;
    }
    return true;
  };
  absl::Cleanup finish_on_error = [&] { (void)finish_nudge(); };

  std::vector<std::optional<std::string>> params;
  const std::string query = SnapshotQuery(instance, sql, &params);
  // Where each key column is in the select list.
  std::vector<size_t> key_positions;
  for (int k : def.key) {
    for (size_t i = 0; i < def.columns.size(); ++i) {
      if (def.columns[i] == k) key_positions.push_back(i);
    }
  }
  // The batch's entries are reused from batch to batch, so their vectors keep their capacity.
  std::vector<shapes::ShapeEntry> batch(static_cast<size_t>(config.batch_rows));
  size_t filled = 0;
  uint64_t rows = 0;
  absl::Status streamed = sql.StreamRows(query, params, [&](const PgResult& row) -> absl::Status {
    shapes::ShapeEntry& entry = batch[filled];
    entry.instance = instance.id();
    entry.kind = shapes::EntryKind::kInsert;
    entry.fields.resize(def.columns.size());
    for (size_t i = 0; i < def.columns.size(); ++i) {
      const shapes::TableColumn& column = def.table.columns[def.columns[i]];
      shapes::FieldValue& field = entry.fields[i];
      field.column = static_cast<int>(i);
      if (row.IsNull(0, static_cast<int>(i))) {
        field.value = Value();
        continue;
      }
      absl::StatusOr<Value> parsed =
          ParseTextValue(column.type_oid, column.is_array, row.Get(0, static_cast<int>(i)));
      if (!parsed.ok()) return parsed.status();
      field.value = *std::move(parsed);
    }
    entry.key.resize(key_positions.size());
    for (size_t k = 0; k < key_positions.size(); ++k) {
      entry.key[k] = entry.fields[key_positions[k]].value;
    }
    ++rows;
    if (++filled == batch.size()) {
      if (absl::Status s = log.AppendSnapshotRows(instance_log, {batch.data(), filled}); !s.ok()) {
        return s;
      }
      filled = 0;
    }
    return absl::OkStatus();
  });
  if (!streamed.ok()) {
    (void)sql.Exec("ROLLBACK");
    return streamed;
  }
  if (filled > 0) {
    if (absl::Status s = log.AppendSnapshotRows(instance_log, {batch.data(), filled}); !s.ok()) {
      return s;
    }
  }
  if (auto s = sql.Exec("COMMIT"); !s.ok()) return s.status();
  stats.rows.fetch_add(rows, std::memory_order_relaxed);
  if (absl::Status s = log.FinishSnapshot(instance_log, rows); !s.ok()) return s;
  const bool nudged = finish_nudge();
  if (!nudged && log.DurableLsn() < snapshot_lsn) {
    if (auto s = sql.Exec(kNudgeInTransaction); !s.ok()) {
      (void)sql.Exec("ROLLBACK");
      spdlog::warn("[snapshot] cannot write a WAL record to move replication on: {}",
                   s.status().ToString());
    }
  }
  return absl::OkStatus();
}

}  // namespace

Snapshotter::Snapshotter(SnapshotConfig config, ShapeLog& log)
    : config_(std::move(config)), log_(log) {}

Snapshotter::~Snapshotter() { Stop(); }

void Snapshotter::Start() {
  for (int i = 0; i < config_.workers; ++i) threads_.emplace_back([this] { Work(); });
}

void Snapshotter::Stop() {
  std::deque<std::shared_ptr<InstanceLog>> left;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
    left.swap(queue_);
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  for (auto& l : left) log_.FailSnapshot(*l, absl::UnavailableError("the server is stopping"));
}

void Snapshotter::Schedule(std::shared_ptr<InstanceLog> log) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      queue_.push_back(std::move(log));
      log = nullptr;
    }
  }
  if (log) {
    log_.FailSnapshot(*log, absl::UnavailableError("the server is stopping"));
    return;
  }
  cv_.notify_one();
}

void Snapshotter::Work() {
  std::unique_ptr<PgConnection> sql;
  std::unique_ptr<PgConnection> nudge;
  while (true) {
    std::shared_ptr<InstanceLog> next;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      next = std::move(queue_.front());
      queue_.pop_front();
    }
    const auto started = std::chrono::steady_clock::now();
    absl::Status status;
    if (!sql) {
      auto connected = PgConnection::Connect(config_.dsn, PgConnectionKind::kSql,
                                             "shapebridge snapshot", config_.connect_timeout);
      if (connected.ok()) {
        sql = *std::move(connected);
      } else {
        status = connected.status();
      }
    }
    if (sql && !nudge) {
      auto connected = PgConnection::Connect(config_.dsn, PgConnectionKind::kSql,
                                             "shapebridge snapshot nudge", config_.connect_timeout);
      if (connected.ok() && (*connected)->Exec(kNudgeSetup).ok()) nudge = *std::move(connected);
    }
    bool nudge_failed = false;
    if (sql) {
      status = TakeSnapshot(config_, *sql, nudge.get(), &nudge_failed, log_, *next, stats_);
    }
    if (nudge_failed) nudge.reset();  // connected again for the next snapshot
    const std::string shape = next->instance().definition().name;
    const std::string id = next->instance().id().ToString();
    if (status.ok()) {
      stats_.snapshots.fetch_add(1, std::memory_order_relaxed);
      spdlog::info("[snapshot shape={} instance={}] done in {} ms", shape, id,
                   std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - started)
                       .count());
    } else {
      stats_.failures.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("[snapshot shape={} instance={}] failed: {}", shape, id,
                   std::string(status.message()));
      log_.FailSnapshot(*next, status);
      sql.reset();  // the connection may be mid-transaction or broken
      nudge.reset();
    }
  }
}

}  // namespace shapebridge
