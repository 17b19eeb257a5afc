#pragma once

// RAII wrappers over libpq. The only place that includes libpq-fe.h for the rest of the bridge:
// callers see statuses and strings, never a PGconn or PGresult.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

struct pg_conn;
struct pg_result;

namespace shapebridge {

// The SQLSTATE of a failed statement travels as a payload of the Status under this URL.
inline constexpr char kSqlStatePayload[] = "shapebridge/sqlstate";
// The SQLSTATE carried by `status`, or "" when it has none.
std::string SqlStateOf(const absl::Status& status);

class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(pg_result* result) : result_(result) {}
  PgResult(PgResult&&) noexcept = default;
  PgResult& operator=(PgResult&&) noexcept = default;

  int rows() const;
  int columns() const;
  std::string_view ColumnName(int column) const;
  bool IsNull(int row, int column) const;
  std::string_view Get(int row, int column) const;
  // Get(row, column), or nullopt when the value is NULL.
  std::optional<std::string> GetOptional(int row, int column) const;

 private:
  struct Deleter {
    void operator()(pg_result* r) const;
  };
  std::unique_ptr<pg_result, Deleter> result_;
};

enum class PgConnectionKind {
  kSql,          // an ordinary session
  kReplication,  // replication=database: accepts replication commands and plain SQL
};

// One libpq connection. Not thread-safe: one thread uses it at a time.
class PgConnection {
 public:
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;
  ~PgConnection();

  // `dsn` is a libpq connection string or URI. Every session gets DateStyle=ISO, TimeZone=UTC,
  // bytea_output=hex and extra_float_digits=3, the text formats the value parser expects.
  // Fails with Unavailable (and libpq's message) when the server cannot be reached.
  static absl::StatusOr<std::unique_ptr<PgConnection>> Connect(
      std::string_view dsn, PgConnectionKind kind, std::string_view application_name,
      std::chrono::seconds connect_timeout = std::chrono::seconds(10));

  // Runs one statement. A server error becomes a Status whose code follows its SQLSTATE class
  // (privileges: PermissionDenied, object in use: FailedPrecondition, undefined object: NotFound,
  // connection: Unavailable; others Internal) with the server's message and SQLSTATE attached.
  absl::StatusOr<PgResult> Exec(std::string_view sql);
  absl::StatusOr<PgResult> ExecParams(std::string_view sql,
                                      const std::vector<std::optional<std::string>>& params);
  // ExecParams through a prepared statement, prepared on first use of the text and kept for the
  // connection's life (at most kMaxPrepared texts; later ones run unprepared): Postgres parses
  // and plans a repeated statement once.
  static constexpr size_t kMaxPrepared = 512;
  absl::StatusOr<PgResult> ExecPrepared(const std::string& sql,
                                        const std::vector<std::optional<std::string>>& params);

  // Sends a query (any number of statements) without waiting for it; FinishQuery() waits for its
  // results and returns the first error. One query in flight at a time.
  absl::Status SendQuery(std::string_view sql);
  absl::Status FinishQuery();

  // Runs one query and hands its rows to `on_row` one at a time (libpq's single-row mode), so the
  // result never has to fit in memory. Each PgResult holds exactly one row. An error from
  // `on_row` stops the query (the connection is then reset to idle) and is returned.
  absl::Status StreamRows(std::string_view sql,
                          const std::vector<std::optional<std::string>>& params,
                          const std::function<absl::Status(const PgResult& row)>& on_row);

  // Quotes a name (table, slot, publication) for SQL text.
  // The value of a connection option in use ("keepalives_idle"); "" when unset.
  std::string Option(std::string_view keyword) const;
  std::string QuoteIdentifier(std::string_view name) const;
  std::string QuoteLiteral(std::string_view value) const;

  // The streaming part of CopyBoth, for the replication stream.
  // Starts a replication command that answers with CopyBoth.
  absl::Status StartCopyBoth(std::string_view command);
  // Reads one CopyData message without blocking: a message, nullopt when none is buffered yet
  // (wait for Socket() to be readable, then ConsumeInput), or an error when the stream ended.
  absl::StatusOr<std::optional<std::string>> ReadCopyData();
  absl::Status ConsumeInput();
  absl::Status WriteCopyData(std::string_view data);
  // Sends buffered output; returns true when everything was sent.
  absl::StatusOr<bool> FlushOutput();
  absl::Status EndCopy();
  int Socket() const;
  // Waits up to `timeout` for the server (ConsumeInput when it has something), then returns the
  // payloads of the notifications received (LISTEN) so far.
  absl::StatusOr<std::vector<std::string>> WaitForNotifications(std::chrono::milliseconds timeout);

  int ServerVersion() const;
  std::string ErrorMessage() const;

 private:
  explicit PgConnection(pg_conn* conn);
  absl::Status ResultStatus(pg_result* result, std::string_view sql) const;

  pg_conn* conn_;
  std::unordered_map<std::string, std::string> prepared_;  // statement text -> name
};

}  // namespace shapebridge
