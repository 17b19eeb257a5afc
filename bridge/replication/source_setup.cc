#include "bridge/replication/source_setup.h"

#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace shapebridge {
namespace {

// The publication's tables, schema-qualified.
absl::StatusOr<std::set<std::string>> PublishedTables(PgConnection& sql,
                                                      const std::string& publication) {
  auto rows = sql.ExecParams(
      "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1",
      {publication});
  if (!rows.ok()) return rows.status();
  std::set<std::string> tables;
  for (int i = 0; i < rows->rows(); ++i) tables.emplace(rows->Get(i, 0));
  return tables;
}

absl::Status CheckWalLevel(PgConnection& sql) {
  auto rows = sql.Exec("SHOW wal_level");
  if (!rows.ok()) return rows.status();
  const std::string level(rows->Get(0, 0));
  if (level != "logical") {
    return absl::FailedPreconditionError(absl::StrCat(
        "wal_level is '", level,
        "' but shapebridge needs 'logical': run ALTER SYSTEM SET wal_level = logical (or set it "
        "in postgresql.conf) and restart Postgres"));
  }
  return absl::OkStatus();
}

absl::Status CheckRole(PgConnection& sql) {
  auto rows = sql.Exec(
      "SELECT current_user, rolreplication OR rolsuper FROM pg_roles "
      "WHERE rolname = current_user");
  if (!rows.ok()) return rows.status();
  if (rows->rows() != 1 || rows->Get(0, 1) != "t") {
    const std::string role = rows->rows() == 1 ? std::string(rows->Get(0, 0)) : "?";
    return absl::PermissionDeniedError(
        absl::StrCat("role \"", role, "\" may not use logical replication: run ALTER ROLE ", role,
                     " WITH REPLICATION (as a superuser), or connect as a role that has it"));
  }
  return absl::OkStatus();
}

// A configured table: its canonical schema-qualified name, and that name quoted for SQL text
// (quoted only where Postgres needs it, so messages show SQL a person can paste).
struct Table {
  std::string name;
  std::string quoted;
};

absl::StatusOr<Table> ResolveTable(PgConnection& sql, const std::string& table) {
  auto rows = sql.ExecParams(
      "SELECT n.nspname || '.' || c.relname, c.relkind::text, format('%I.%I', n.nspname, "
      "c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE c.oid = to_regclass($1)",
      {table});
  if (!rows.ok()) return rows.status();
  if (rows->rows() == 0) {
    return absl::NotFoundError(absl::StrCat(
        "table \"", table, "\" named in replication.tables does not exist in the database"));
  }
  if (rows->Get(0, 1) != "r" && rows->Get(0, 1) != "p") {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", table, "\" named in replication.tables is not a table"));
  }
  return Table{.name = std::string(rows->Get(0, 0)), .quoted = std::string(rows->Get(0, 2))};
}

absl::Status EnsurePublication(PgConnection& sql, const ReplicationConfig& config,
                               const std::vector<Table>& tables) {
  auto pub = sql.ExecParams(
      "SELECT pubinsert AND pubupdate AND pubdelete AND pubtruncate, puballtables "
      "FROM pg_publication WHERE pubname = $1",
      {config.publication});
  if (!pub.ok()) return pub.status();
  const std::string quoted_pub = sql.QuoteIdentifier(config.publication);
  std::vector<std::string> quoted;
  for (const auto& t : tables) quoted.push_back(t.quoted);

  if (pub->rows() == 0) {
    if (!config.manage_publication) {
      return absl::NotFoundError(
          absl::StrCat("publication \"", config.publication,
                       "\" does not exist and replication.manage_publication is false: run CREATE "
                       "PUBLICATION ",
                       quoted_pub, " FOR TABLE ", absl::StrJoin(quoted, ", ")));
    }
    if (tables.empty()) {
      return absl::InvalidArgumentError("replication.tables is empty: name at least one table");
    }
    auto created = sql.Exec(absl::StrCat("CREATE PUBLICATION ", quoted_pub, " FOR TABLE ",
                                         absl::StrJoin(quoted, ", ")));
    if (!created.ok()) {
      return absl::Status(created.status().code(),
                          absl::StrCat("cannot create publication \"", config.publication,
                                       "\": ", created.status().message(),
                                       ". Create it as the tables' owner, or grant ownership"));
    }
    return absl::OkStatus();
  }
  if (pub->Get(0, 0) != "t") {
    return absl::FailedPreconditionError(
        absl::StrCat("publication \"", config.publication,
                     "\" does not publish every operation: run ALTER PUBLICATION ", quoted_pub,
                     " SET (publish = 'insert, update, delete, truncate')"));
  }
  auto published = PublishedTables(sql, config.publication);
  if (!published.ok()) return published.status();
  std::vector<std::string> missing;
  for (size_t i = 0; i < tables.size(); ++i) {
    if (!published->contains(tables[i].name)) missing.push_back(quoted[i]);
  }
  if (missing.empty()) return absl::OkStatus();
  if (!config.manage_publication) {
    return absl::FailedPreconditionError(absl::StrCat(
        "publication \"", config.publication, "\" lacks ", absl::StrJoin(missing, ", "),
        " and replication.manage_publication is false: run ALTER PUBLICATION ", quoted_pub,
        " ADD TABLE ", absl::StrJoin(missing, ", ")));
  }
  auto altered = sql.Exec(
      absl::StrCat("ALTER PUBLICATION ", quoted_pub, " ADD TABLE ", absl::StrJoin(missing, ", ")));
  if (!altered.ok()) {
    return absl::Status(
        altered.status().code(),
        absl::StrCat("cannot add ", absl::StrJoin(missing, ", "), " to publication \"",
                     config.publication, "\": ", altered.status().message()));
  }
  return absl::OkStatus();
}

absl::Status EnsureReplicaIdentityFull(PgConnection& sql, const ReplicationConfig& config,
                                       const Table& table) {
  auto rows = sql.ExecParams("SELECT relreplident::text FROM pg_class WHERE oid = $1::regclass",
                             {table.quoted});
  if (!rows.ok()) return rows.status();
  if (rows->Get(0, 0) == "f") return absl::OkStatus();
  const std::string alter = absl::StrCat("ALTER TABLE ", table.quoted, " REPLICA IDENTITY FULL");
  if (!config.set_replica_identity_full) {
    return absl::FailedPreconditionError(absl::StrCat(
        "table ", table.name,
        " lacks REPLICA IDENTITY FULL, which shapebridge needs to see the old row of updates "
        "and deletes, and replication.set_replica_identity_full is false: run ",
        alter));
  }
  auto altered = sql.Exec(alter);
  if (!altered.ok()) {
    return absl::Status(altered.status().code(),
                        absl::StrCat("cannot set REPLICA IDENTITY FULL on table ", table.name, ": ",
                                     altered.status().message(), ". Run ", alter,
                                     " as the table's owner, or connect as the owner"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status PrepareSource(PgConnection& sql, const ReplicationConfig& config) {
  if (absl::Status s = CheckWalLevel(sql); !s.ok()) return s;
  if (absl::Status s = CheckRole(sql); !s.ok()) return s;
  std::vector<Table> tables;
  for (const auto& t : config.tables) {
    auto resolved = ResolveTable(sql, t);
    if (!resolved.ok()) return resolved.status();
    tables.push_back(*resolved);
  }
  if (absl::Status s = EnsurePublication(sql, config, tables); !s.ok()) return s;
  for (const auto& t : tables) {
    if (absl::Status s = EnsureReplicaIdentityFull(sql, config, t); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<SlotState> InspectSlot(PgConnection& sql, const ReplicationConfig& config) {
  auto rows = sql.ExecParams(
      "SELECT s.plugin, s.slot_type, s.database = current_database(), s.active_pid, "
      "s.wal_status, s.confirmed_flush_lsn, s.restart_lsn, s.database "
      "FROM pg_replication_slots s WHERE s.slot_name = $1",
      {config.slot});
  if (!rows.ok()) return rows.status();
  SlotState state;
  if (rows->rows() == 0) return state;
  state.exists = true;
  if (rows->Get(0, 1) != "logical" || rows->Get(0, 0) != "pgoutput") {
    return absl::FailedPreconditionError(absl::StrCat(
        "replication slot \"", config.slot, "\" exists but is not a pgoutput logical slot (",
        std::string(rows->Get(0, 1)), ", ", std::string(rows->Get(0, 0)),
        "): choose another replication.slot or drop it"));
  }
  if (rows->Get(0, 2) != "t") {
    return absl::FailedPreconditionError(
        absl::StrCat("replication slot \"", config.slot, "\" belongs to database \"",
                     std::string(rows->Get(0, 7)),
                     "\", not the one in the DSN: choose another replication.slot"));
  }
  if (!rows->IsNull(0, 3)) state.active_pid = std::stoi(std::string(rows->Get(0, 3)));
  state.wal_status = rows->GetOptional(0, 4).value_or("");
  if (auto lsn = rows->GetOptional(0, 5)) {
    auto parsed = Lsn::Parse(*lsn);
    if (parsed.ok()) state.confirmed_flush = *parsed;
  }
  if (auto lsn = rows->GetOptional(0, 6)) {
    auto parsed = Lsn::Parse(*lsn);
    if (parsed.ok()) state.restart = *parsed;
  }
  if (state.wal_status == "lost") {
    return absl::DataLossError(absl::StrCat(
        "replication slot \"", config.slot,
        "\" was invalidated (wal_status lost): Postgres removed WAL the slot still needed "
        "(max_slot_wal_keep_size), so changes were lost. Drop it with SELECT "
        "pg_drop_replication_slot('",
        config.slot, "') and restart shapebridge; clients will be told to refetch"));
  }
  return state;
}

absl::StatusOr<Lsn> CreateSlot(PgConnection& replication, const ReplicationConfig& config) {
  auto rows = replication.Exec(absl::StrCat("CREATE_REPLICATION_SLOT ",
                                            replication.QuoteIdentifier(config.slot),
                                            " LOGICAL pgoutput NOEXPORT_SNAPSHOT"));
  if (!rows.ok()) {
    return absl::Status(rows.status().code(),
                        absl::StrCat("cannot create replication slot \"", config.slot,
                                     "\": ", rows.status().message()));
  }
  return Lsn::Parse(rows->Get(0, 1));
}

}  // namespace shapebridge
