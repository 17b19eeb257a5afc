#include "bridge/common/pg.h"

#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace shapebridge {
namespace {

// libpq's view of statement parameters: a C string each, null for SQL NULL.
std::vector<const char*> ParamPointers(const std::vector<std::optional<std::string>>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  return values;
}

absl::StatusCode CodeForSqlState(std::string_view state) {
  if (state == "42501" || state.starts_with("28")) return absl::StatusCode::kPermissionDenied;
  if (state == "55006" || state == "55000") return absl::StatusCode::kFailedPrecondition;
  if (state == "42704" || state == "42P01" || state == "3D000") return absl::StatusCode::kNotFound;
  if (state == "42710" || state == "42P07") return absl::StatusCode::kAlreadyExists;
  if (state.starts_with("08") || state.starts_with("57P")) return absl::StatusCode::kUnavailable;
  if (state.starts_with("53")) return absl::StatusCode::kResourceExhausted;
  if (state.starts_with("22") || state.starts_with("23")) return absl::StatusCode::kInvalidArgument;
  if (state.starts_with("40")) return absl::StatusCode::kAborted;
  return absl::StatusCode::kInternal;
}

std::string TrimmedError(const char* message) {
  std::string text = message ? message : "";
  absl::StripTrailingAsciiWhitespace(&text);
  return text;
}

}  // namespace

std::string SqlStateOf(const absl::Status& status) {
  auto payload = status.GetPayload(kSqlStatePayload);
  return payload ? std::string(*payload) : std::string();
}

void PgResult::Deleter::operator()(pg_result* r) const { PQclear(r); }
int PgResult::rows() const { return PQntuples(result_.get()); }
int PgResult::columns() const { return PQnfields(result_.get()); }
std::string_view PgResult::ColumnName(int column) const { return PQfname(result_.get(), column); }
bool PgResult::IsNull(int row, int column) const {
  return PQgetisnull(result_.get(), row, column) != 0;
}
std::string_view PgResult::Get(int row, int column) const {
  return std::string_view(PQgetvalue(result_.get(), row, column),
                          PQgetlength(result_.get(), row, column));
}
std::optional<std::string> PgResult::GetOptional(int row, int column) const {
  if (IsNull(row, column)) return std::nullopt;
  return std::string(Get(row, column));
}

PgConnection::PgConnection(pg_conn* conn) : conn_(conn) {}
PgConnection::~PgConnection() { PQfinish(conn_); }

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Connect(
    std::string_view dsn, PgConnectionKind kind, std::string_view application_name,
    std::chrono::seconds connect_timeout) {
  const std::string dsn_text(dsn);
  const std::string app(application_name);
  const std::string timeout = std::to_string(connect_timeout.count());
  // Keywords before dbname are defaults the dsn may override; later ones override the dsn.
  // TCP keepalives and a user timeout: a server that vanished (a half-open connection) is noticed
  // within about a minute instead of when the kernel gives up, for every connection alike.
  std::vector<const char*> keys = {"keepalives",       "keepalives_idle",  "keepalives_interval",
                                   "keepalives_count", "tcp_user_timeout", "dbname",
                                   "application_name", "connect_timeout",  "options"};
  std::vector<const char*> values = {
      "1",
      "30",
      "10",
      "3",
      "60000",
      dsn_text.c_str(),
      app.c_str(),
      timeout.c_str(),
      "-c DateStyle=ISO -c TimeZone=UTC -c bytea_output=hex -c extra_float_digits=3 "
      "-c IntervalStyle=postgres"};
  if (kind == PgConnectionKind::kReplication) {
    keys.push_back("replication");
    values.push_back("database");
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  pg_conn* conn = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (conn == nullptr) return absl::ResourceExhaustedError("libpq could not allocate a connection");
  std::unique_ptr<PgConnection> result(new PgConnection(conn));
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = TrimmedError(PQerrorMessage(conn));
    // Authentication and role problems are not cured by retrying.
    const bool auth = message.find("authentication") != std::string::npos ||
                      message.find("no pg_hba.conf entry") != std::string::npos ||
                      message.find("does not exist") != std::string::npos;
    return absl::Status(auth ? absl::StatusCode::kPermissionDenied : absl::StatusCode::kUnavailable,
                        absl::StrCat("cannot connect to Postgres: ", message));
  }
  return result;
}

std::string PgConnection::Option(std::string_view keyword) const {
  PQconninfoOption* options = PQconninfo(conn_);
  std::string value;
  for (PQconninfoOption* o = options; o != nullptr && o->keyword != nullptr; ++o) {
    if (keyword == o->keyword && o->val != nullptr) value = o->val;
  }
  PQconninfoFree(options);
  return value;
}

absl::Status PgConnection::ResultStatus(pg_result* result, std::string_view sql) const {
  const ExecStatusType status = PQresultStatus(result);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_COPY_BOTH ||
      status == PGRES_COPY_OUT || status == PGRES_COPY_IN) {
    return absl::OkStatus();
  }
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string message = TrimmedError(result ? PQresultErrorMessage(result) : PQerrorMessage(conn_));
  if (message.empty()) message = TrimmedError(PQerrorMessage(conn_));
  absl::StatusCode code = absl::StatusCode::kUnavailable;  // no result: the connection broke
  if (state != nullptr) {
    code = CodeForSqlState(state);
  } else if (PQstatus(conn_) == CONNECTION_OK && result != nullptr) {
    code = absl::StatusCode::kInternal;
  }
  const std::string shown(sql.substr(0, 120));
  absl::Status error(code, absl::StrCat(message, " (while running: ", shown,
                                        sql.size() > shown.size() ? "...)" : ")"));
  if (state != nullptr) error.SetPayload(kSqlStatePayload, absl::Cord(state));
  return error;
}

absl::StatusOr<PgResult> PgConnection::Exec(std::string_view sql) {
  const std::string text(sql);
  pg_result* raw = PQexec(conn_, text.c_str());
  if (absl::Status s = ResultStatus(raw, sql); !s.ok()) {
    PQclear(raw);
    return s;
  }
  return PgResult(raw);
}

absl::Status PgConnection::SendQuery(std::string_view sql) {
  const std::string text(sql);
  if (PQsendQuery(conn_, text.c_str()) != 1) return ResultStatus(nullptr, sql);
  return absl::OkStatus();
}

absl::Status PgConnection::FinishQuery() {
  absl::Status first;
  while (pg_result* raw = PQgetResult(conn_)) {
    if (absl::Status s = ResultStatus(raw, "(a sent query)"); !s.ok() && first.ok()) first = s;
    PQclear(raw);
  }
  return first;
}

absl::StatusOr<PgResult> PgConnection::ExecParams(
    std::string_view sql, const std::vector<std::optional<std::string>>& params) {
  const std::string text(sql);
  const std::vector<const char*> values = ParamPointers(params);
  pg_result* raw = PQexecParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr,
                                values.data(), nullptr, nullptr, 0);
  if (absl::Status s = ResultStatus(raw, sql); !s.ok()) {
    PQclear(raw);
    return s;
  }
  return PgResult(raw);
}

absl::StatusOr<PgResult> PgConnection::ExecPrepared(
    const std::string& sql, const std::vector<std::optional<std::string>>& params) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    if (prepared_.size() >= kMaxPrepared) return ExecParams(sql, params);
    const std::string name = absl::StrCat("shapebridge_", prepared_.size());
    pg_result* raw =
        PQprepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(params.size()), nullptr);
    if (absl::Status s = ResultStatus(raw, sql); !s.ok()) {
      PQclear(raw);
      return s;
    }
    PQclear(raw);
    it = prepared_.emplace(sql, name).first;
  }
  const std::vector<const char*> values = ParamPointers(params);
  pg_result* raw = PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()),
                                  values.data(), nullptr, nullptr, 0);
  if (absl::Status s = ResultStatus(raw, sql); !s.ok()) {
    PQclear(raw);
    return s;
  }
  return PgResult(raw);
}

absl::Status PgConnection::StreamRows(
    std::string_view sql, const std::vector<std::optional<std::string>>& params,
    const std::function<absl::Status(const PgResult& row)>& on_row) {
  const std::string text(sql);
  const std::vector<const char*> values = ParamPointers(params);
  if (PQsendQueryParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr,
                        values.data(), nullptr, nullptr, 0) != 1) {
    return absl::UnavailableError(TrimmedError(PQerrorMessage(conn_)));
  }
  PQsetSingleRowMode(conn_);
  absl::Status result;
  while (pg_result* raw = PQgetResult(conn_)) {
    PgResult owned(raw);
    const ExecStatusType status = PQresultStatus(raw);
    if (!result.ok()) continue;  // drain after an error
    if (status == PGRES_SINGLE_TUPLE) {
      if (absl::Status s = on_row(owned); !s.ok()) {
        result = s;
        // Ask the server to stop sending; the remaining results are drained above.
        if (PGcancel* cancel = PQgetCancel(conn_)) {
          char err[256];
          PQcancel(cancel, err, sizeof err);
          PQfreeCancel(cancel);
        }
      }
      continue;
    }
    if (absl::Status s = ResultStatus(raw, sql); !s.ok()) result = s;
  }
  return result;
}

std::string PgConnection::QuoteIdentifier(std::string_view name) const {
  char* quoted = PQescapeIdentifier(conn_, name.data(), name.size());
  std::string result = quoted ? quoted : "";
  PQfreemem(quoted);
  return result;
}

std::string PgConnection::QuoteLiteral(std::string_view value) const {
  char* quoted = PQescapeLiteral(conn_, value.data(), value.size());
  std::string result = quoted ? quoted : "";
  PQfreemem(quoted);
  return result;
}

absl::Status PgConnection::StartCopyBoth(std::string_view command) {
  const std::string text(command);
  pg_result* raw = PQexec(conn_, text.c_str());
  absl::Status s = ResultStatus(raw, command);
  const bool copy_both = PQresultStatus(raw) == PGRES_COPY_BOTH;
  PQclear(raw);
  if (!s.ok()) return s;
  if (!copy_both) {
    return absl::InternalError(
        absl::StrCat("expected CopyBoth in answer to ", std::string(command)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> PgConnection::ReadCopyData() {
  char* buffer = nullptr;
  const int n = PQgetCopyData(conn_, &buffer, /*async=*/1);
  if (n > 0) {
    std::string data(buffer, static_cast<size_t>(n));
    PQfreemem(buffer);
    return std::optional<std::string>(std::move(data));
  }
  if (n == 0) return std::optional<std::string>();
  if (n == -1) {
    // The server ended the copy: collect its final result for the reason.
    pg_result* raw = PQgetResult(conn_);
    absl::Status s = ResultStatus(raw, "START_REPLICATION");
    PQclear(raw);
    while ((raw = PQgetResult(conn_)) != nullptr) PQclear(raw);
    if (s.ok()) return absl::UnavailableError("the server ended the replication stream");
    return s;
  }
  return absl::UnavailableError(
      absl::StrCat("replication stream broken: ", TrimmedError(PQerrorMessage(conn_))));
}

absl::Status PgConnection::ConsumeInput() {
  if (PQconsumeInput(conn_) == 0) {
    return absl::UnavailableError(
        absl::StrCat("replication connection lost: ", TrimmedError(PQerrorMessage(conn_))));
  }
  return absl::OkStatus();
}

absl::Status PgConnection::WriteCopyData(std::string_view data) {
  if (PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) != 1) {
    return absl::UnavailableError(
        absl::StrCat("cannot send to Postgres: ", TrimmedError(PQerrorMessage(conn_))));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> PgConnection::FlushOutput() {
  const int r = PQflush(conn_);
  if (r < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot send to Postgres: ", TrimmedError(PQerrorMessage(conn_))));
  }
  return r == 0;
}

absl::Status PgConnection::EndCopy() {
  if (PQputCopyEnd(conn_, nullptr) != 1) {
    return absl::UnavailableError(TrimmedError(PQerrorMessage(conn_)));
  }
  (void)PQflush(conn_);
  return absl::OkStatus();
}

int PgConnection::Socket() const { return PQsocket(conn_); }

absl::StatusOr<std::vector<std::string>> PgConnection::WaitForNotifications(
    std::chrono::milliseconds timeout) {
  pollfd fd{.fd = PQsocket(conn_), .events = POLLIN, .revents = 0};
  if (fd.fd < 0) return absl::UnavailableError("the connection is closed");
  if (poll(&fd, 1, static_cast<int>(timeout.count())) < 0 && errno != EINTR) {
    return absl::InternalError(absl::StrCat("poll: ", std::strerror(errno)));
  }
  if (PQconsumeInput(conn_) == 0) {
    return absl::UnavailableError(
        absl::StrCat("connection lost: ", TrimmedError(PQerrorMessage(conn_))));
  }
  std::vector<std::string> payloads;
  while (PGnotify* n = PQnotifies(conn_)) {
    payloads.emplace_back(n->extra != nullptr ? n->extra : "");
    PQfreemem(n);
  }
  return payloads;
}
int PgConnection::ServerVersion() const { return PQserverVersion(conn_); }
std::string PgConnection::ErrorMessage() const { return TrimmedError(PQerrorMessage(conn_)); }

}  // namespace shapebridge
