#include "bridge/replication/leader.h"

#include "absl/strings/str_cat.h"
#include "bridge/common/pg.h"

namespace shapebridge {
namespace {
// The advisory lock's first key: shapebridge's replicator locks (the second is the slot's hash).
constexpr char kLockClass[] = "1936744290";
}  // namespace

LeaderLock::LeaderLock(std::string dsn, std::string slot)
    : dsn_(std::move(dsn)), slot_(std::move(slot)) {}
LeaderLock::~LeaderLock() = default;

absl::StatusOr<bool> LeaderLock::TryAcquire() {
  if (!sql_) {
    auto sql = PgConnection::Connect(dsn_, PgConnectionKind::kSql, "shapebridge replicator lock");
    if (!sql.ok()) return sql.status();
    sql_ = *std::move(sql);
  }
  auto got = sql_->ExecParams(
      absl::StrCat("SELECT pg_try_advisory_lock(", kLockClass, ", hashtext($1))"), {slot_});
  if (!got.ok()) {
    sql_.reset();  // connect again next time
    return got.status();
  }
  return got->Get(0, 0) == "t";
}

absl::Status LeaderLock::Check() {
  auto r = sql_ ? sql_->Exec("SELECT 1") : absl::StatusOr<PgResult>(absl::UnavailableError("none"));
  if (!r.ok()) {
    return absl::AbortedError(absl::StrCat(
        "lost the replicator lock (its Postgres session failed: ", r.status().message(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace shapebridge
