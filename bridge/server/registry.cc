#include "bridge/server/registry.h"

#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "bridge/common/pg.h"
#include "spdlog/spdlog.h"

namespace shapebridge {
namespace {

constexpr char kChannel[] = "shapebridge_instances";
// How often a server asks again for an instance whose Start has not come, and how often the
// replicator reads the whole registry (notifications are not delivered while it is away).
constexpr auto kRetryInterval = std::chrono::seconds(5);
constexpr auto kScanInterval = std::chrono::seconds(5);

constexpr char kCreateSchema[] = R"sql(
CREATE SCHEMA IF NOT EXISTS shapebridge;
CREATE TABLE IF NOT EXISTS shapebridge.instances (
  id bytea PRIMARY KEY,
  shape text NOT NULL,
  description bytea NOT NULL,
  last_used timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE shapebridge.instances IS
  'Kafka mode: the shape instances server nodes serve, which the replicator publishes';
CREATE TABLE IF NOT EXISTS shapebridge.replicator_epochs (
  epoch bigserial PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now(),
  offsets bigint[]
);
COMMENT ON TABLE shapebridge.replicator_epochs IS
  'Kafka mode: each replicator leadership, with the shape topic offsets where it begins';
)sql";

std::chrono::seconds Interval(std::chrono::seconds lease) {
  // Renewals well inside the lease, but not more than once a second or less than once a minute.
  return std::clamp(lease / 4, std::chrono::seconds(1), std::chrono::seconds(60));
}

}  // namespace

namespace registry {

absl::Status CreateSchema(PgConnection& sql) {
  // Made once, by whoever may: a role that only uses the tables need not own them.
  auto exists = sql.Exec(
      "SELECT to_regclass('shapebridge.instances') IS NOT NULL AND "
      "to_regclass('shapebridge.replicator_epochs') IS NOT NULL");
  if (exists.ok() && exists->rows() == 1 && exists->Get(0, 0) == "t") return absl::OkStatus();
  auto r = sql.Exec(absl::StrCat("BEGIN; SELECT pg_advisory_xact_lock(1936744290, 0);",
                                 kCreateSchema, "COMMIT;"));
  if (!r.ok()) {
    (void)sql.Exec("ROLLBACK");
    return absl::Status(r.status().code(),
                        absl::StrCat("cannot create the instance registry in schema shapebridge "
                                     "(the role needs CREATE on the database): ",
                                     r.status().message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> NewEpoch(PgConnection& sql) {
  auto r = sql.Exec("INSERT INTO shapebridge.replicator_epochs DEFAULT VALUES RETURNING epoch");
  if (!r.ok()) return r.status();
  uint64_t epoch = 0;
  if (r->rows() != 1 || !absl::SimpleAtoi(std::string(r->Get(0, 0)), &epoch)) {
    return absl::InternalError("no epoch returned");
  }
  return epoch;
}

absl::Status RecordEpochStart(PgConnection& sql, uint64_t epoch,
                              const std::vector<int64_t>& offsets) {
  auto r = sql.ExecParams(
      "UPDATE shapebridge.replicator_epochs SET offsets = $1::bigint[] WHERE epoch = $2",
      {absl::StrCat("{", absl::StrJoin(offsets, ","), "}"), absl::StrCat(epoch)});
  return r.status();
}

absl::StatusOr<std::vector<int64_t>> LatestEpochStart(PgConnection& sql) {
  auto r = sql.Exec(
      "SELECT array_to_string(offsets, ',') FROM shapebridge.replicator_epochs "
      "WHERE offsets IS NOT NULL ORDER BY epoch DESC LIMIT 1");
  if (!r.ok()) return r.status();
  std::vector<int64_t> offsets;
  if (r->rows() == 0) return offsets;
  for (const std::string& part : std::vector<std::string>(
           absl::StrSplit(std::string(r->Get(0, 0)), ',', absl::SkipEmpty()))) {
    int64_t offset = 0;
    if (!absl::SimpleAtoi(part, &offset)) return absl::InternalError("a malformed offset");
    offsets.push_back(offset);
  }
  return offsets;
}

}  // namespace registry

// ---------------------------------------------------------------------------------------------
// Server side

InstanceRequester::InstanceRequester(std::string dsn, ShapeLog& log, std::chrono::seconds lease)
    : dsn_(std::move(dsn)), log_(log), lease_(lease) {}

InstanceRequester::~InstanceRequester() { Stop(); }

void InstanceRequester::Schedule(std::shared_ptr<InstanceLog> log) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(log->shared_instance());
  }
  cv_.notify_one();
}

void InstanceRequester::Start() {
  thread_ = std::thread([this] { Run(); });
}

void InstanceRequester::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

absl::Status InstanceRequester::Request(PgConnection& sql, const shapes::ShapeInstance& instance) {
  const std::string id = instance.id().ToString();
  auto r = sql.ExecPrepared(
      "INSERT INTO shapebridge.instances (id, shape, description) "
      "VALUES (decode($1, 'hex'), $2, decode($3, 'hex')) "
      "ON CONFLICT (id) DO UPDATE SET last_used = now(), description = EXCLUDED.description",
      {id, instance.definition().name, absl::BytesToHexString(ShapeLog::EncodeInstance(instance))});
  if (!r.ok()) return r.status();
  r = sql.ExecPrepared("SELECT pg_notify($1, $2)", {std::string(kChannel), id});
  if (!r.ok()) return r.status();
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

void InstanceRequester::Run() {
  std::unique_ptr<PgConnection> sql;
  auto next_renewal = std::chrono::steady_clock::now() + Interval(lease_);
  auto next_retry = std::chrono::steady_clock::now() + kRetryInterval;
  while (true) {
    std::vector<std::shared_ptr<const shapes::ShapeInstance>> requests;
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, std::min(next_renewal, next_retry),
                     [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      requests.assign(queue_.begin(), queue_.end());
      queue_.clear();
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_retry) {
      next_retry = now + kRetryInterval;
      for (auto& instance : log_.Unstarted()) requests.push_back(instance);
    }
    absl::Status status;
    if (!sql) {
      auto connected = PgConnection::Connect(dsn_, PgConnectionKind::kSql, "shapebridge-registry");
      if (connected.ok()) {
        sql = *std::move(connected);
      } else {
        status = connected.status();
      }
    }
    for (size_t i = 0; sql && status.ok() && i < requests.size(); ++i) {
      status = Request(*sql, *requests[i]);
    }
    if (sql && status.ok() && now >= next_renewal) {
      next_renewal = now + Interval(lease_);
      const auto in_use = log_.InUse();
      std::vector<std::string> ids;
      for (auto& instance : in_use) ids.push_back(instance->id().ToString());
      if (!ids.empty()) {
        auto r = sql->ExecParams(
            "UPDATE shapebridge.instances SET last_used = now() "
            "WHERE id IN (SELECT decode(x, 'hex') FROM unnest($1::text[]) x) "
            "RETURNING encode(id, 'hex')",
            {absl::StrCat("{", absl::StrJoin(ids, ","), "}")});
        status = r.status();
        if (r.ok()) {
          stats_.renewals.fetch_add(1, std::memory_order_relaxed);
          // Rows gone (this node could not reach Postgres for a whole lease): register again.
          std::set<std::string> renewed;
          for (int row = 0; row < r->rows(); ++row) renewed.emplace(r->Get(row, 0));
          for (auto& instance : in_use) {
            if (status.ok() && !renewed.contains(instance->id().ToString())) {
              status = Request(*sql, *instance);
            }
          }
        }
      }
    }
    if (!status.ok()) {
      // Asked again with the next retry (Unstarted) or renewal.
      stats_.errors.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("[registry] {}", std::string(status.message()));
      sql.reset();
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Replicator side

InstanceRegistrar::InstanceRegistrar(std::string dsn, ShapeLog& log, SnapshotScheduler& snapshots,
                                     ShapeLog::DefinitionLookup definitions,
                                     std::chrono::seconds lease)
    : dsn_(std::move(dsn)),
      log_(log),
      snapshots_(snapshots),
      definitions_(std::move(definitions)),
      lease_(lease) {}

InstanceRegistrar::~InstanceRegistrar() { Stop(); }

void InstanceRegistrar::Start() {
  thread_ = std::thread([this] { Run(); });
}

void InstanceRegistrar::Stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

void InstanceRegistrar::Take(const shapes::InstanceId& id, std::string_view description) {
  auto held = held_.find(id);
  if (held != held_.end() && log_.Live(*held->second)) return;
  auto instance = ShapeLog::DecodeInstance(description, definitions_);
  if (!instance.ok()) {
    stats_.errors.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("[registry] instance {}: {}", id.ToString(),
                 std::string(instance.status().message()));
    return;
  }
  if (held != held_.end()) {
    // Its log ended (retention, truncate): a new one starts.
    log_.Release(*held->second);
    held_.erase(held);
  }
  absl::StatusOr<ShapeLog::Acquired> acquired = log_.Acquire(*instance);
  if (!acquired.ok()) {
    stats_.errors.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("[registry] instance {}: {}", id.ToString(),
                 std::string(acquired.status().message()));
    return;
  }
  held_[id] = acquired->log;
  if (acquired->needs_snapshot) snapshots_.Schedule(acquired->log);
  stats_.taken.fetch_add(1, std::memory_order_relaxed);
}

void InstanceRegistrar::Release(const shapes::InstanceId& id) {
  auto held = held_.find(id);
  if (held == held_.end()) return;
  log_.Release(*held->second);
  held_.erase(held);
  stats_.released.fetch_add(1, std::memory_order_relaxed);
}

absl::Status InstanceRegistrar::Scan(PgConnection& sql) {
  auto r = sql.ExecParams(
      "SELECT encode(id, 'hex'), encode(description, 'hex'), "
      "last_used > now() - make_interval(secs => $1) FROM shapebridge.instances",
      {absl::StrCat(lease_.count())});
  if (!r.ok()) return r.status();
  std::set<shapes::InstanceId> listed;
  for (int row = 0; row < r->rows(); ++row) {
    auto id = shapes::InstanceId::Parse(r->Get(row, 0));
    if (!id.ok()) continue;
    listed.insert(*id);
    if (r->Get(row, 2) == "t") {
      Take(*id, absl::HexStringToBytes(std::string(r->Get(row, 1))));
    } else {
      Release(*id);
      auto deleted = sql.ExecParams(
          "DELETE FROM shapebridge.instances WHERE id = decode($1, 'hex') "
          "AND last_used <= now() - make_interval(secs => $2)",
          {std::string(r->Get(row, 0)), absl::StrCat(lease_.count())});
      if (!deleted.ok()) return deleted.status();
    }
  }
  std::vector<shapes::InstanceId> gone;
  for (const auto& [id, log] : held_) {
    if (!listed.contains(id)) gone.push_back(id);
  }
  for (const auto& id : gone) Release(id);
  return absl::OkStatus();
}

void InstanceRegistrar::Run() {
  std::unique_ptr<PgConnection> sql;
  auto next_scan = std::chrono::steady_clock::now();
  while (!stopping_.load()) {
    absl::Status status;
    if (!sql) {
      auto connected = PgConnection::Connect(dsn_, PgConnectionKind::kSql, "shapebridge-registry");
      if (connected.ok()) {
        sql = *std::move(connected);
        auto r = sql->Exec(absl::StrCat("LISTEN ", kChannel));
        status = r.status();
        next_scan = std::chrono::steady_clock::now();  // what was notified while away
      } else {
        status = connected.status();
      }
    }
    if (status.ok() && std::chrono::steady_clock::now() >= next_scan) {
      next_scan = std::chrono::steady_clock::now() + kScanInterval;
      status = Scan(*sql);
    }
    if (status.ok()) {
      auto notified = sql->WaitForNotifications(std::chrono::milliseconds(200));
      status = notified.status();
      for (size_t i = 0; notified.ok() && i < notified->size(); ++i) {
        auto id = shapes::InstanceId::Parse((*notified)[i]);
        if (!id.ok()) continue;
        auto r = sql->ExecPrepared(
            "SELECT encode(description, 'hex') FROM shapebridge.instances "
            "WHERE id = decode($1, 'hex')",
            {(*notified)[i]});
        if (!r.ok()) {
          status = r.status();
          break;
        }
        if (r->rows() == 1) Take(*id, absl::HexStringToBytes(std::string(r->Get(0, 0))));
      }
    }
    if (!status.ok()) {
      stats_.errors.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("[registry] {}", std::string(status.message()));
      sql.reset();
      for (int i = 0; i < 10 && !stopping_.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
  for (auto& [id, log] : held_) log_.Release(*log);
  held_.clear();
}

}  // namespace shapebridge
