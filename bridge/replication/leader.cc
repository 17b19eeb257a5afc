#include "bridge/replication/leader.h"

#include "absl/strings/str_cat.h"
#include "bridge/common/pg.h"

namespace shapebridge {
namespace {
// The advisory lock's first key: shapebridge's replicator locks (the second is the slot's hash).
constexpr char kLockClass[] = "1936744290";
}  // namespace

absl::StatusOr<std::unique_ptr<LeaderLock>> LeaderLock::TryAcquire(const std::string& dsn,
                                                                   const std::string& slot) {
  auto sql = PgConnection::Connect(dsn, PgConnectionKind::kSql, "shapebridge replicator lock");
  if (!sql.ok()) return sql.status();
  auto got = (*sql)->ExecParams(
      absl::StrCat("SELECT pg_try_advisory_lock(", kLockClass, ", hashtext($1))"), {slot});
  if (!got.ok()) return got.status();
  if (got->Get(0, 0) != "t") return std::unique_ptr<LeaderLock>();
  return std::unique_ptr<LeaderLock>(new LeaderLock(*std::move(sql)));
}

LeaderLock::LeaderLock(std::unique_ptr<PgConnection> sql) : sql_(std::move(sql)) {}
LeaderLock::~LeaderLock() = default;

absl::Status LeaderLock::Check() {
  auto r = sql_->Exec("SELECT 1");
  if (!r.ok()) {
    return absl::AbortedError(absl::StrCat(
        "lost the replicator lock (its Postgres session failed: ", r.status().message(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace shapebridge
