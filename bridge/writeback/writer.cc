#include "bridge/writeback/writer.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "bridge/common/pg.h"
#include "bridge/log/change_codec.h"
#include "bridge/server/params.h"
#include "nlohmann/json.hpp"
#include "shapebridge/sync/v1/sync.pb.h"
#include "shapes/instance.h"
#include "spdlog/spdlog.h"

namespace shapebridge {
namespace {

namespace pb = ::shapebridge::sync::v1;

constexpr char kCreateSchema[] = R"sql(
CREATE SCHEMA IF NOT EXISTS shapebridge;
CREATE TABLE IF NOT EXISTS shapebridge.mutations (
  client_id text NOT NULL,
  mutation_id text NOT NULL,
  result bytea NOT NULL DEFAULT ''::bytea,
  pushed_at timestamptz NOT NULL DEFAULT now(),
  subject text NOT NULL DEFAULT '',
  PRIMARY KEY (client_id, mutation_id)
);
ALTER TABLE shapebridge.mutations ADD COLUMN IF NOT EXISTS subject text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS mutations_pushed_at ON shapebridge.mutations (pushed_at);
COMMENT ON TABLE shapebridge.mutations IS
  'Write-back: the result (a sync.v1.MutationResult) of every mutation pushed, by client and id';
CREATE TABLE IF NOT EXISTS shapebridge.field_versions (
  table_name text NOT NULL,
  row_key text NOT NULL,
  column_name text NOT NULL,
  hlc bigint NOT NULL,
  client_id text NOT NULL,
  subject text NOT NULL DEFAULT '',
  PRIMARY KEY (table_name, row_key, column_name)
);
ALTER TABLE shapebridge.field_versions ADD COLUMN IF NOT EXISTS subject text NOT NULL DEFAULT '';
COMMENT ON TABLE shapebridge.field_versions IS
  'Write-back: the newest write of each field of writable tables, for last-write-wins';
CREATE TABLE IF NOT EXISTS shapebridge.tombstones (
  table_name text NOT NULL,
  row_key text NOT NULL,
  hlc bigint NOT NULL,
  client_id text NOT NULL,
  row_data jsonb NOT NULL,
  versions jsonb NOT NULL,
  deleted_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (table_name, row_key)
);
COMMENT ON TABLE shapebridge.tombstones IS
  'Write-back with deletes: newest_wins: rows deleted by a push, with their field versions';
CREATE TABLE IF NOT EXISTS shapebridge.violations (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  rule text NOT NULL,
  table_name text NOT NULL,
  record_id text NOT NULL,
  description text NOT NULL,
  conflicting_ids text[] NOT NULL,
  parties text[] NOT NULL,
  detected_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  resolved_at timestamptz
);
COMMENT ON TABLE shapebridge.violations IS
  'Write-back: rules broken by accepted writes; parties are the users whose writes are involved';
CREATE UNIQUE INDEX IF NOT EXISTS violations_open
  ON shapebridge.violations (rule, table_name, record_id) WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS violations_conflicting
  ON shapebridge.violations USING gin (conflicting_ids) WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS violations_expires_at ON shapebridge.violations (expires_at);
CREATE OR REPLACE FUNCTION shapebridge.row_key(row_json jsonb, key_columns text[])
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_agg(row_json -> k ORDER BY o)::text
  FROM unnest(key_columns) WITH ORDINALITY AS a(k, o)
$$;
-- Writes made directly in Postgres (not through Push) version the fields they change with the
-- time of the write, as a hybrid logical clock value, and always after the stored version.
CREATE OR REPLACE FUNCTION shapebridge.version_direct_write() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  tbl text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
  stamp bigint := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint << 16;
BEGIN
  IF current_setting('shapebridge.writer', true) = 'on' THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    -- A row made again directly is not the pushed-deleted one: it must never come back.
    DELETE FROM shapebridge.tombstones
    WHERE table_name = tbl AND row_key = shapebridge.row_key(to_jsonb(NEW), TG_ARGV);
  ELSE
    IF TG_OP = 'DELETE' OR shapebridge.row_key(to_jsonb(OLD), TG_ARGV) <>
                           shapebridge.row_key(to_jsonb(NEW), TG_ARGV) THEN
      DELETE FROM shapebridge.field_versions
      WHERE table_name = tbl AND row_key = shapebridge.row_key(to_jsonb(OLD), TG_ARGV);
    END IF;
    IF TG_OP = 'DELETE' THEN
      RETURN NULL;
    END IF;
  END IF;
  INSERT INTO shapebridge.field_versions AS v
    (table_name, row_key, column_name, hlc, client_id, subject)
  SELECT tbl, shapebridge.row_key(to_jsonb(NEW), TG_ARGV), n.key, stamp, '', ''
  FROM jsonb_each(to_jsonb(NEW)) AS n
  WHERE TG_OP = 'INSERT' OR n.value IS DISTINCT FROM to_jsonb(OLD) -> n.key
  ON CONFLICT (table_name, row_key, column_name)
  DO UPDATE SET hlc = greatest(excluded.hlc, v.hlc + 1), client_id = '', subject = '';
  RETURN NULL;
END
$$;
)sql";

constexpr size_t kMaxIdBytes = 200;
constexpr size_t kMaxBindings = 4096;

// bytea's text input.
std::string Hex(const std::string& bytes) { return "\\x" + absl::BytesToHexString(bytes); }

std::string FormatMicros(int64_t micros, const char* format) {
  if (micros == Value::kTimestampInfinity) return "infinity";
  if (micros == Value::kTimestampMinusInfinity) return "-infinity";
  return absl::FormatTime(format, absl::FromUnixMicros(micros), absl::UTCTimeZone());
}

// The Postgres text input for a value sent for column `column` (nullopt: NULL), or an error
// naming the column and what to send instead.
absl::StatusOr<std::optional<std::string>> TextOf(const pb::Value& v,
                                                  const shapes::TableColumn& column) {
  auto wrong = [&](const char* expected) {
    return absl::InvalidArgumentError(absl::StrCat("column ", column.name, ": expected ", expected,
                                                   " for its type (OID ", column.type_oid, ")"));
  };
  if (v.kind_case() == pb::Value::KIND_NOT_SET) {
    return absl::InvalidArgumentError(absl::StrCat("column ", column.name, ": no value"));
  }
  if (v.kind_case() == pb::Value::kNull) return std::optional<std::string>();
  if (v.kind_case() == pb::Value::kUnchanged) {
    return absl::InvalidArgumentError(
        absl::StrCat("column ", column.name, ": `unchanged` is not a value to write"));
  }
  const bool array = column.is_array || pgtype::IsBuiltinArray(column.type_oid);
  switch (array ? 0 : column.type_oid) {
    case pgtype::kBool:
      if (v.kind_case() != pb::Value::kBoolValue) return wrong("bool_value");
      return std::optional<std::string>(v.bool_value() ? "true" : "false");
    case pgtype::kInt2:
    case pgtype::kInt4:
    case pgtype::kInt8:
    case pgtype::kOid:
      if (v.kind_case() != pb::Value::kIntValue) return wrong("int_value");
      return std::optional<std::string>(std::to_string(v.int_value()));
    case pgtype::kFloat4:
    case pgtype::kFloat8:
      if (v.kind_case() == pb::Value::kIntValue) {
        return std::optional<std::string>(std::to_string(v.int_value()));
      }
      if (v.kind_case() != pb::Value::kFloatValue) return wrong("float_value");
      if (std::isnan(v.float_value())) return std::optional<std::string>("NaN");
      if (std::isinf(v.float_value())) {
        return std::optional<std::string>(v.float_value() > 0 ? "Infinity" : "-Infinity");
      } else {
        char buffer[32];
        std::snprintf(buffer, sizeof buffer, "%.17g", v.float_value());
        return std::optional<std::string>(buffer);
      }
    case pgtype::kNumeric:
      if (v.kind_case() == pb::Value::kIntValue) {
        return std::optional<std::string>(std::to_string(v.int_value()));
      }
      if (v.kind_case() != pb::Value::kNumeric) return wrong("numeric (text) or int_value");
      return std::optional<std::string>(v.numeric());
    case pgtype::kBytea:
      if (v.kind_case() != pb::Value::kBytesValue) return wrong("bytes_value");
      return std::optional<std::string>(Hex(v.bytes_value()));
    case pgtype::kTimestamp:
      if (v.kind_case() != pb::Value::kTimestampUs) return wrong("timestamp_us");
      return std::optional<std::string>(FormatMicros(v.timestamp_us(), "%Y-%m-%d %H:%M:%E6S"));
    case pgtype::kTimestampTz:
      if (v.kind_case() != pb::Value::kTimestamptzUs) return wrong("timestamptz_us");
      return std::optional<std::string>(FormatMicros(v.timestamptz_us(), "%Y-%m-%d %H:%M:%E6S+00"));
    case pgtype::kDate:
      if (v.kind_case() != pb::Value::kDateDays) return wrong("date_days");
      if (v.date_days() == Value::kDateInfinity) return std::optional<std::string>("infinity");
      if (v.date_days() == Value::kDateMinusInfinity) {
        return std::optional<std::string>("-infinity");
      }
      return std::optional<std::string>(
          FormatMicros(int64_t{v.date_days()} * 86'400'000'000, "%Y-%m-%d"));
    default:  // text, varchar, uuid, json, arrays and every other type: their text form
      if (v.kind_case() != pb::Value::kText) return wrong("text");
      return std::optional<std::string>(v.text());
  }
}

// A rule's check with its `$column` parameters numbered: "$1::type", with the columns in order.
struct NumberedCheck {
  std::string sql;
  std::vector<std::string> columns;
};

bool IdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Replaces each `$name` outside literals, quoted identifiers, comments and dollar quotes with a
// numbered parameter cast to the column's type (`types`: column name → SQL type).
absl::StatusOr<NumberedCheck> NumberParameters(const std::string& check,
                                               const std::map<std::string, std::string>& types) {
  NumberedCheck out;
  size_t i = 0;
  auto copy_until = [&](size_t end) {
    out.sql.append(check, i, end - i);
    i = end;
  };
  while (i < check.size()) {
    const char c = check[i];
    if (c == '\'' || c == '"') {
      size_t end = i + 1;
      while (end < check.size() && check[end] != c) ++end;
      copy_until(std::min(end + 1, check.size()));  // a doubled quote reads as two literals
    } else if (c == '-' && check.compare(i, 2, "--") == 0) {
      const size_t end = check.find('\n', i);
      copy_until(end == std::string::npos ? check.size() : end);
    } else if (c == '/' && check.compare(i, 2, "/*") == 0) {
      const size_t end = check.find("*/", i + 2);
      copy_until(end == std::string::npos ? check.size() : end + 2);
    } else if (c == '$') {
      size_t end = i + 1;
      while (end < check.size() && IdentChar(check[end])) ++end;
      const std::string name = check.substr(i + 1, end - i - 1);
      if (end < check.size() && check[end] == '$' && (name.empty() || IdentStart(name[0]))) {
        // A dollar-quoted string: $tag$ ... $tag$.
        const std::string tag = check.substr(i, end - i + 1);
        const size_t close = check.find(tag, end + 1);
        copy_until(close == std::string::npos ? check.size() : close + tag.size());
      } else if (name.empty() || !IdentStart(name[0])) {
        return absl::InvalidArgumentError(absl::StrCat(
            "check: parameters are $column names of the written row, not \"$", name, "\""));
      } else {
        auto type = types.find(name);
        if (type == types.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat("check: $", name, " is not a column of the table"));
        }
        auto at = std::find(out.columns.begin(), out.columns.end(), name);
        if (at == out.columns.end()) at = out.columns.insert(at, name);
        absl::StrAppend(&out.sql, "($", at - out.columns.begin() + 1, "::", type->second, ")");
        i = end;
      }
    } else {
      out.sql.push_back(c);
      ++i;
    }
  }
  return out;
}

// The `{name}` placeholders of a description template.
std::vector<std::string> Placeholders(const std::string& text) {
  std::vector<std::string> names;
  for (size_t open = text.find('{'); open != std::string::npos; open = text.find('{', open + 1)) {
    const size_t close = text.find('}', open);
    if (close == std::string::npos) break;
    names.push_back(text.substr(open + 1, close - open - 1));
  }
  return names;
}

// A JSON value as text: strings without quotes, null as "null".
std::string JsonText(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

// A rule of writeback.rules, checked against the catalog.
struct Writer::Rule {
  RuleSpec spec;
  // SELECT <record id>, <row as JSON> FROM (<check>) AS c.
  std::string sql;
  std::vector<int> params;  // the table column of each parameter of `sql`
  std::atomic<uint64_t> detected{0};
  std::atomic<uint64_t> resolved{0};
  std::atomic<int64_t> open{-1};
};

// A table of writable shapes, with its SQL fragments.
struct Writer::Table {
  std::string name;  // "schema.table"
  shapes::TableSchema schema;
  std::vector<std::shared_ptr<const shapes::ShapeDefinition>> definitions;
  std::vector<int> key;  // primary key columns (indexes into schema.columns)
  std::string quoted;    // "schema"."table" (set by Prepare, as the two below)
  std::string columns;   // every column, quoted, in catalog order
  std::vector<std::string> quoted_columns;
  std::string key_array;  // ARRAY['id', ...]: the key columns, for shapebridge.row_key
  std::string key_where;  // "id" = $1 AND ...
  std::string key_row;    // the row_key of the key $1, ... (SELECT)
  std::string restore;    // INSERT of a tombstone's row ($1: its JSON)
  std::map<std::string, std::string> column_types;  // name -> SQL type
  std::vector<Rule*> rules;

  int ColumnIndex(const std::string& column) const {
    for (size_t i = 0; i < schema.columns.size(); ++i) {
      if (schema.columns[i].name == column) return static_cast<int>(i);
    }
    return -1;
  }
};

// One mutation, checked.
struct Writer::Checked {
  const pb::Mutation* mutation = nullptr;
  const Table* table = nullptr;
  std::vector<std::optional<std::string>> key;  // in the table's key order
  std::vector<int> columns;                     // written columns
  std::vector<std::optional<std::string>> values;
};

// The work of one Push on one connection.
class Writer::Batch {
 public:
  Batch(Writer& writer, PgConnection& sql, const nlohmann::json& claims,
        const pb::PushRequest& request)
      : writer_(writer), sql_(sql), claims_(claims), request_(request) {
    auto it = claims.find(writer.config_.subject_claim);
    if (it != claims.end() && !it->is_null()) subject_ = JsonText(*it);
  }

  absl::StatusOr<pb::PushResponse> Run(const std::vector<Checked>& mutations) {
    // The direct-write trigger leaves the versions of this transaction's writes to Apply.
    if (auto r = sql_.Exec("BEGIN; SET LOCAL shapebridge.writer = 'on'"); !r.ok()) {
      (void)sql_.Exec("ROLLBACK");
      return r.status();
    }
    // The rules' locks of every table the batch writes, first and in one order: taken later,
    // between row locks, they would deadlock with other batches.
    std::set<std::string> ruled;
    for (const Checked& m : mutations) {
      if (!m.table->rules.empty()) ruled.insert(m.table->name);
    }
    for (const std::string& name : ruled) {
      auto r = sql_.ExecPrepared("SELECT pg_advisory_xact_lock(hashtext($1))",
                                 {absl::StrCat("shapebridge.rules:", name)});
      if (!r.ok()) {
        (void)sql_.Exec("ROLLBACK");
        return r.status();
      }
    }
    pb::PushResponse response;
    for (const Checked& m : mutations) {
      absl::Status s = Apply(m, response.add_results());
      if (!s.ok()) {
        (void)sql_.Exec("ROLLBACK");
        // An integrity constraint (not null, foreign key, check, unique) the data violates: the
        // client can change the batch.
        const absl::StatusCode code =
            SqlStateOf(s).starts_with("23") ? absl::StatusCode::kFailedPrecondition : s.code();
        absl::Status out(code, absl::StrCat("mutation ", m.mutation->mutation_id(), ": ",
                                            s.message(), "; nothing of the batch was written"));
        s.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
          out.SetPayload(url, payload);
        });
        return out;
      }
    }
    if (auto r = sql_.Exec("COMMIT"); !r.ok()) return r.status();
    for (const auto& [rule, counts] : rule_counts_) {
      rule->detected.fetch_add(counts.first, std::memory_order_relaxed);
      rule->resolved.fetch_add(counts.second, std::memory_order_relaxed);
    }
    return response;
  }

 private:
  // The instances of `def` that the token allows (cached per definition).
  const std::vector<std::shared_ptr<const shapes::ShapeInstance>>& Allowed(
      const std::shared_ptr<const shapes::ShapeDefinition>& def) {
    auto [it, created] = allowed_.try_emplace(def.get());
    if (!created) return it->second;
    for (shapes::ParamValues& values : TokenBindings(*def, claims_, kMaxBindings)) {
      auto instance = shapes::ShapeInstance::Create(def, std::move(values));
      if (instance.ok()) it->second.push_back(*std::move(instance));
    }
    return it->second;
  }

  // Whether a writable shape the token allows holds `row` and every column of `columns`.
  bool Permits(const Table& table, const std::vector<Value>& row, const std::vector<int>& columns) {
    for (const auto& def : table.definitions) {
      const bool has_columns = std::all_of(columns.begin(), columns.end(), [&](int c) {
        return std::find(def->columns.begin(), def->columns.end(), c) != def->columns.end();
      });
      if (!has_columns) continue;
      for (const auto& instance : Allowed(def)) {
        auto match = instance->Matches(row);
        if (match.ok() && *match) return true;
      }
    }
    return false;
  }

  absl::StatusOr<std::vector<Value>> ParseRow(const Table& table, const PgResult& result) {
    std::vector<Value> row;
    row.reserve(table.schema.columns.size());
    for (size_t i = 0; i < table.schema.columns.size(); ++i) {
      const int c = static_cast<int>(i);
      if (result.IsNull(0, c)) {
        row.push_back(Value::Null());
        continue;
      }
      auto v = ParseTextValue(table.schema.columns[i].type_oid, table.schema.columns[i].is_array,
                              result.Get(0, c));
      if (!v.ok()) return v.status();
      row.push_back(*std::move(v));
    }
    return row;
  }

  // Records the result with its id; `with` is an optional data-modifying statement to run in the
  // same round trip (a CTE), whose parameters `params` come first.
  absl::Status Record(const pb::MutationResult& result, const std::string& with = "",
                      std::vector<std::optional<std::string>> params = {}) {
    const size_t n = params.size();
    params.push_back(request_.client_id());
    params.push_back(result.mutation_id());
    params.push_back(Hex(result.SerializeAsString()));
    auto r = sql_.ExecPrepared(
        absl::StrCat(with.empty() ? "" : absl::StrCat("WITH done AS (", with, ") "),
                     "UPDATE shapebridge.mutations SET result = $", n + 3, " WHERE client_id = $",
                     n + 1, " AND mutation_id = $", n + 2),
        params);
    return r.status();
  }

  absl::Status Reject(pb::MutationResult* result, absl::StatusCode code, std::string message) {
    result->set_outcome(pb::MutationResult::REJECTED);
    result->set_code(static_cast<int>(code));
    result->set_message(std::move(message));
    writer_.stats_.rejected.fetch_add(1, std::memory_order_relaxed);
    return Record(*result);
  }

  // Whether the token may write `columns` of the deleted row as the tombstone `tomb` keeps it;
  // when not, `result` is rejected (and recorded).
  absl::Status TombstonePermits(const Table& table, const PgResult& tomb,
                                const std::vector<int>& columns, pb::MutationResult* result) {
    auto was = sql_.ExecPrepared(
        absl::StrCat("SELECT ", table.columns, " FROM jsonb_populate_record(NULL::", table.quoted,
                     ", $1::jsonb) AS t"),
        {std::string(tomb.Get(0, 2))});
    if (!was.ok()) return was.status();
    auto row = ParseRow(table, *was);
    if (!row.ok()) return row.status();
    if (Permits(table, *row, columns)) return absl::OkStatus();
    return Reject(result, absl::StatusCode::kPermissionDenied,
                  absl::StrCat("the row of ", table.name,
                               " is not in a writable shape your token allows, with the columns "
                               "written"));
  }

  absl::Status Apply(const Checked& m, pb::MutationResult* result) {
    const pb::Mutation& mutation = *m.mutation;
    const Table& table = *m.table;
    result->set_mutation_id(mutation.mutation_id());
    // (1) Claim the id; a mutation pushed before returns its first result.
    auto claimed = sql_.ExecPrepared(
        "INSERT INTO shapebridge.mutations (client_id, mutation_id, subject) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING RETURNING 1",
        {request_.client_id(), mutation.mutation_id(), subject_});
    if (!claimed.ok()) return claimed.status();
    if (claimed->rows() == 0) {
      auto first = sql_.ExecPrepared(
          "SELECT encode(result, 'base64'), subject FROM shapebridge.mutations "
          "WHERE client_id = $1 AND mutation_id = $2",
          {request_.client_id(), mutation.mutation_id()});
      if (!first.ok()) return first.status();
      if (first->Get(0, 1) != subject_) {
        // Its result (with the values of superseded fields) is the other user's to read.
        result->set_outcome(pb::MutationResult::REJECTED);
        result->set_code(static_cast<int>(absl::StatusCode::kPermissionDenied));
        result->set_message("this client's mutation id was pushed by another user");
        writer_.stats_.rejected.fetch_add(1, std::memory_order_relaxed);
        return absl::OkStatus();
      }
      std::string bytes;
      if (!absl::Base64Unescape(std::string(first->Get(0, 0)), &bytes) ||
          !result->ParseFromString(bytes)) {
        return absl::DataLossError("the stored result of this mutation id is unreadable");
      }
      result->set_duplicate(true);
      writer_.stats_.duplicates.fetch_add(1, std::memory_order_relaxed);
      return absl::OkStatus();
    }
    // (2) The row before.
    const std::string& key_sql = table.key_where;
    // The row and its key in the version table. (The versions are read by a statement of their
    // own, after the row is locked: a statement that waited for the lock reads other tables as
    // they were when it started, so it could miss the versions the lock holder committed.)
    auto before = sql_.ExecPrepared(
        absl::StrCat("SELECT ", table.columns, ", shapebridge.row_key(to_jsonb(t), ",
                     table.key_array, ") FROM ", table.quoted, " AS t WHERE ", key_sql,
                     " FOR UPDATE"),
        m.key);
    if (!before.ok()) return before.status();
    std::optional<std::vector<Value>> old_row;
    std::string row_key;
    if (before->rows() > 0) {
      auto row = ParseRow(table, *before);
      if (!row.ok()) return row.status();
      old_row = *std::move(row);
      row_key = std::string(before->Get(0, static_cast<int>(table.schema.columns.size())));
    }
    const bool newest_wins = writer_.config_.deletes == DeleteRule::kNewestWins;
    bool savepoint = false;  // taken before the write, or before a deleted row is restored
    if (newest_wins && !old_row && mutation.op() != pb::Mutation::INSERT) {
      // A row deleted by a push comes back when a field of this mutation is newer than the
      // delete; otherwise the delete supersedes every field.
      auto key = sql_.ExecPrepared(table.key_row, m.key);
      if (!key.ok()) return key.status();
      row_key = std::string(key->Get(0, 0));
      auto tomb = sql_.ExecPrepared(
          "SELECT hlc::text, client_id, row_data::text, versions::text FROM "
          "shapebridge.tombstones WHERE table_name = $1 AND row_key = $2 FOR UPDATE",
          {table.name, row_key});
      if (!tomb.ok()) return tomb.status();
      if (tomb->rows() == 0) {
        // Another push may have restored the row while this one waited for the tombstone's
        // lock: read the row again (a new statement sees what that push committed).
        auto again = sql_.ExecPrepared(
            absl::StrCat("SELECT ", table.columns, ", shapebridge.row_key(to_jsonb(t), ",
                         table.key_array, ") FROM ", table.quoted, " AS t WHERE ", key_sql,
                         " FOR UPDATE"),
            m.key);
        if (!again.ok()) return again.status();
        if (again->rows() > 0) {
          auto row = ParseRow(table, *again);
          if (!row.ok()) return row.status();
          old_row = *std::move(row);
        }
      } else if (absl::Status allowed = TombstonePermits(table, *tomb, m.columns, result);
                 !allowed.ok() || result->outcome() == pb::MutationResult::REJECTED) {
        return allowed;
      } else if (mutation.op() == pb::Mutation::DELETE) {
        // Deleted already: the delete with the larger (hlc, client_id) is the row's.
        auto raised = sql_.ExecPrepared(
            "UPDATE shapebridge.tombstones SET hlc = $3::bigint, client_id = $4 WHERE "
            "table_name = $1 AND row_key = $2 AND (hlc, client_id) < ($3::bigint, $4)",
            {table.name, row_key, std::to_string(mutation.hlc()), request_.client_id()});
        if (!raised.ok()) return raised.status();
        result->set_outcome(pb::MutationResult::APPLIED);
        writer_.stats_.applied.fetch_add(1, std::memory_order_relaxed);
        return Record(*result);
      } else {
        const uint64_t deleted_hlc = std::stoull(std::string(tomb->Get(0, 0)));
        const std::string deleted_by(tomb->Get(0, 1));
        const bool newer = std::any_of(
            mutation.fields().begin(), mutation.fields().end(), [&](const pb::FieldWrite& f) {
              return std::forward_as_tuple(f.hlc(), request_.client_id()) >
                     std::tie(deleted_hlc, deleted_by);
            });
        if (!newer) {
          // The row stays deleted. Fields newer than their version in the tombstone are kept
          // there, so that a later restore has them whatever order the pushes came in.
          const nlohmann::json versions = nlohmann::json::parse(tomb->Get(0, 3), nullptr, false);
          nlohmann::json row_patch = nlohmann::json::object();
          nlohmann::json version_patch = nlohmann::json::object();
          for (size_t i = 0; i < m.columns.size(); ++i) {
            const std::string& column = table.schema.columns[m.columns[i]].name;
            const uint64_t hlc = mutation.fields(static_cast<int>(i)).hlc();
            bool beats = true;
            if (versions.is_object() && versions.contains(column)) {
              const nlohmann::json& v = versions[column];
              beats =
                  std::forward_as_tuple(hlc, request_.client_id()) >
                  std::make_tuple(std::stoull(v[0].get<std::string>()), v[1].get<std::string>());
            }
            if (!beats) continue;
            row_patch[column] = m.values[i] ? nlohmann::json(*m.values[i]) : nlohmann::json();
            version_patch[column] = {std::to_string(hlc), request_.client_id(), subject_};
          }
          if (!row_patch.empty()) {
            auto kept = sql_.ExecPrepared(
                "UPDATE shapebridge.tombstones SET row_data = row_data || $3::jsonb, versions = "
                "versions || $4::jsonb WHERE table_name = $1 AND row_key = $2",
                {table.name, row_key, row_patch.dump(), version_patch.dump()});
            if (!kept.ok()) return kept.status();
          }
          result->set_outcome(pb::MutationResult::APPLIED);
          for (size_t i = 0; i < m.columns.size(); ++i) {
            pb::FieldResult* f = Field(result, mutation, i);
            f->set_superseded(true);
            f->mutable_winner()->set_null(true);
            f->set_winner_hlc(deleted_hlc);
            f->set_winner_client_id(deleted_by);
          }
          writer_.stats_.superseded.fetch_add(1, std::memory_order_relaxed);
          return Record(*result);
        }
        if (auto r = sql_.Exec("SAVEPOINT shapebridge_mutation"); !r.ok()) return r.status();
        savepoint = true;
        auto restored = sql_.ExecPrepared(table.restore, {std::string(tomb->Get(0, 2))});
        if (!restored.ok()) return restored.status();
        auto row = ParseRow(table, *restored);
        if (!row.ok()) return row.status();
        old_row = *std::move(row);
        auto versions = sql_.ExecPrepared(
            "WITH gone AS (DELETE FROM shapebridge.tombstones WHERE table_name = $1 AND "
            "row_key = $2) INSERT INTO shapebridge.field_versions "
            "(table_name, row_key, column_name, hlc, client_id, subject) SELECT $1, $2, key, "
            "(value ->> 0)::bigint, value ->> 1, value ->> 2 FROM jsonb_each($3::jsonb)",
            {table.name, row_key, std::string(tomb->Get(0, 3))});
        if (!versions.ok()) return versions.status();
      }
    }
    pb::Mutation::Op op = mutation.op();
    if (op == pb::Mutation::UPSERT) op = old_row ? pb::Mutation::UPDATE : pb::Mutation::INSERT;
    if (op == pb::Mutation::INSERT && old_row) {
      return Reject(result, absl::StatusCode::kAlreadyExists,
                    absl::StrCat("a row of ", table.name, " with this key exists"));
    }
    if (op != pb::Mutation::INSERT && !old_row) {
      return Reject(result, absl::StatusCode::kNotFound,
                    absl::StrCat("no row of ", table.name, " has this key"));
    }
    if (old_row && !Permits(table, *old_row, m.columns)) {
      if (savepoint) {
        if (auto r = sql_.Exec("ROLLBACK TO SAVEPOINT shapebridge_mutation"); !r.ok()) {
          return r.status();
        }
      }
      return Reject(result, absl::StatusCode::kPermissionDenied,
                    absl::StrCat("the row of ", table.name,
                                 " is not in a writable shape your token allows, with the "
                                 "columns written"));
    }
    // (3) Last-write-wins per field: an UPDATE writes the fields whose (hlc, client_id) is newer
    // than the stored version; the others are superseded by the stored value.
    std::vector<bool> wins(m.columns.size(), true);
    if (op == pb::Mutation::UPDATE || (op == pb::Mutation::DELETE && newest_wins)) {
      auto versions = sql_.ExecPrepared(
          "SELECT coalesce(jsonb_agg(jsonb_build_array(column_name, hlc::text, client_id)), "
          "'[]')::text FROM shapebridge.field_versions WHERE table_name = $1 AND row_key = $2",
          {table.name, row_key});
      if (!versions.ok()) return versions.status();
      const nlohmann::json stored = nlohmann::json::parse(versions->Get(0, 0));
      for (const nlohmann::json& version : stored) {
        const std::string column = version[0].get<std::string>();
        const uint64_t hlc = std::stoull(version[1].get<std::string>());
        const std::string client = version[2].get<std::string>();
        if (op == pb::Mutation::DELETE &&
            std::tie(hlc, client) > std::forward_as_tuple(mutation.hlc(), request_.client_id())) {
          // A field written after the delete: the row stays.
          result->set_outcome(pb::MutationResult::APPLIED);
          result->set_superseded(true);
          writer_.stats_.superseded.fetch_add(1, std::memory_order_relaxed);
          return Record(*result);
        }
        for (size_t i = 0; i < m.columns.size(); ++i) {
          if (table.schema.columns[m.columns[i]].name != column) continue;
          const uint64_t mine = mutation.fields(static_cast<int>(i)).hlc();
          if (std::tie(mine, request_.client_id()) > std::tie(hlc, client)) continue;
          wins[i] = false;
          pb::FieldResult* f = Field(result, mutation, i);
          f->set_superseded(true);
          ValueToProto((*old_row)[m.columns[i]], f->mutable_winner());
          f->set_winner_hlc(hlc);
          f->set_winner_client_id(client);
        }
      }
    }
    // The write, undone when the row after is not allowed.
    std::vector<std::optional<std::string>> params = m.key;
    std::string sql;
    if (op == pb::Mutation::DELETE) {
      sql = absl::StrCat("DELETE FROM ", table.quoted, " AS t WHERE ", key_sql,
                         " RETURNING to_jsonb(t)::text");
    } else if (op == pb::Mutation::UPDATE) {
      std::vector<std::string> sets;
      for (size_t i = 0; i < m.columns.size(); ++i) {
        if (!wins[i]) continue;
        sets.push_back(absl::StrCat(table.quoted_columns[m.columns[i]], " = $", params.size() + 1));
        params.push_back(m.values[i]);
      }
      // With every field superseded the row is read as it is (and still checked).
      sql = sets.empty()
                ? absl::StrCat("SELECT ", table.columns, " FROM ", table.quoted, " WHERE ", key_sql)
                : absl::StrCat("UPDATE ", table.quoted, " SET ", absl::StrJoin(sets, ", "),
                               " WHERE ", key_sql, " RETURNING ", table.columns);
    } else {
      std::vector<std::string> names;
      std::vector<std::string> placeholders;
      for (size_t k = 0; k < table.key.size(); ++k) {
        names.push_back(table.quoted_columns[table.key[k]]);
        placeholders.push_back(absl::StrCat("$", k + 1));
      }
      for (size_t i = 0; i < m.columns.size(); ++i) {
        names.push_back(table.quoted_columns[m.columns[i]]);
        placeholders.push_back(absl::StrCat("$", params.size() + 1));
        params.push_back(m.values[i]);
      }
      sql =
          absl::StrCat("INSERT INTO ", table.quoted, " AS t (", absl::StrJoin(names, ", "),
                       ") VALUES (", absl::StrJoin(placeholders, ", "), ") RETURNING ",
                       table.columns, ", shapebridge.row_key(to_jsonb(t), ", table.key_array, ")");
    }
    if (!savepoint) {
      if (auto r = sql_.Exec("SAVEPOINT shapebridge_mutation"); !r.ok()) return r.status();
    }
    auto written = sql_.ExecPrepared(sql, params);
    if (!written.ok()) return written.status();
    if (op != pb::Mutation::DELETE) {
      auto new_row = ParseRow(table, *written);
      if (!new_row.ok()) return new_row.status();
      if (!Permits(table, *new_row, m.columns)) {
        if (auto r = sql_.Exec("ROLLBACK TO SAVEPOINT shapebridge_mutation"); !r.ok()) {
          return r.status();
        }
        result->clear_fields();
        return Reject(result, absl::StatusCode::kPermissionDenied,
                      absl::StrCat("the row of ", table.name,
                                   " would leave the writable shapes your token allows"));
      }
      if (op == pb::Mutation::INSERT) {
        row_key = std::string(written->Get(0, static_cast<int>(table.schema.columns.size())));
      }
    }
    if (auto r = sql_.Exec("RELEASE SAVEPOINT shapebridge_mutation"); !r.ok()) return r.status();
    // (4) The versions of the fields written, and the result.
    result->set_outcome(pb::MutationResult::APPLIED);
    std::optional<std::vector<std::optional<std::string>>> new_texts;
    absl::Status recorded;
    if (op == pb::Mutation::DELETE && newest_wins) {
      // The row and its versions are kept, so a newer write of a field can bring the row back.
      writer_.stats_.applied.fetch_add(1, std::memory_order_relaxed);
      auto tomb = sql_.ExecPrepared(
          "WITH v AS (DELETE FROM shapebridge.field_versions WHERE table_name = $1 AND "
          "row_key = $2 RETURNING column_name, hlc, client_id, subject) "
          "INSERT INTO shapebridge.tombstones (table_name, row_key, hlc, client_id, row_data, "
          "versions) SELECT $1, $2, $3::bigint, $4, $5::jsonb, coalesce(jsonb_object_agg("
          "column_name, jsonb_build_array(hlc::text, client_id, subject)), '{}') FROM v "
          "ON CONFLICT (table_name, row_key) DO UPDATE SET hlc = excluded.hlc, client_id = "
          "excluded.client_id, row_data = excluded.row_data, versions = excluded.versions, "
          "deleted_at = now()",
          {table.name, row_key, std::to_string(mutation.hlc()), request_.client_id(),
           std::string(written->Get(0, 0))});
      recorded = tomb.ok() ? Record(*result) : tomb.status();
    } else if (op == pb::Mutation::DELETE) {
      writer_.stats_.applied.fetch_add(1, std::memory_order_relaxed);
      recorded = Record(
          *result, "DELETE FROM shapebridge.field_versions WHERE table_name = $1 AND row_key = $2",
          {table.name, row_key});
    } else {
      if (newest_wins && mutation.op() == pb::Mutation::INSERT) {
        // A new row under a key a push deleted: the deleted one must not come back.
        auto gone = sql_.ExecPrepared(
            "DELETE FROM shapebridge.tombstones WHERE table_name = $1 AND row_key = $2",
            {table.name, row_key});
        if (!gone.ok()) return gone.status();
      }
      new_texts.emplace();
      for (size_t c = 0; c < table.schema.columns.size(); ++c) {
        new_texts->push_back(written->GetOptional(0, static_cast<int>(c)));
      }
      std::vector<std::string> rows;
      std::vector<std::optional<std::string>> versions = {table.name, row_key, request_.client_id(),
                                                          subject_};
      for (size_t i = 0; i < m.columns.size(); ++i) {
        Field(result, mutation, i);  // every field has its result, applied or superseded
        if (!wins[i]) continue;
        rows.push_back(absl::StrCat("($1, $2, $", versions.size() + 1, ", $", versions.size() + 2,
                                    "::bigint, $3, $4)"));
        versions.push_back(table.schema.columns[m.columns[i]].name);
        versions.push_back(std::to_string(mutation.fields(static_cast<int>(i)).hlc()));
      }
      (rows.size() == m.columns.size() ? writer_.stats_.applied : writer_.stats_.superseded)
          .fetch_add(1, std::memory_order_relaxed);
      recorded =
          rows.empty()
              ? Record(*result)
              : Record(*result,
                       absl::StrCat("INSERT INTO shapebridge.field_versions "
                                    "(table_name, row_key, column_name, hlc, client_id, subject) "
                                    "VALUES ",
                                    absl::StrJoin(rows, ", "),
                                    " ON CONFLICT (table_name, row_key, column_name) DO UPDATE "
                                    "SET hlc = excluded.hlc, client_id = excluded.client_id, "
                                    "subject = excluded.subject"),
                       std::move(versions));
    }
    if (!recorded.ok()) return recorded;
    // (5) The table's rules.
    return CheckRules(table, row_key, new_texts);
  }

  // Runs the rules of `table` over the row `record_id` as written (`row`: its columns' text, or
  // nullopt when it was deleted), then checks again the open violations that name the row among
  // their conflicting records.
  absl::Status CheckRules(const Table& table, const std::string& record_id,
                          const std::optional<std::vector<std::optional<std::string>>>& row) {
    if (table.rules.empty()) return absl::OkStatus();
    // Two writes checked at once would each miss the other's row (each reads before the other
    // commits): the checks of one table's rules take turns, each after the last one committed,
    // under the lock Run took.
    for (Rule* rule : table.rules) {
      absl::Status s = row ? Evaluate(table, *rule, record_id, *row, subject_)
                           : Resolve(table, *rule, record_id);
      if (!s.ok()) return s;
    }
    auto named = sql_.ExecPrepared(
        "SELECT rule, record_id FROM shapebridge.violations WHERE table_name = $1 AND "
        "resolved_at IS NULL AND conflicting_ids @> ARRAY[$2]::text[] AND record_id <> $2 "
        "ORDER BY id",
        {table.name, record_id});
    if (!named.ok()) return named.status();
    for (int v = 0; v < named->rows(); ++v) {
      const std::string name(named->Get(v, 0));
      const std::string other(named->Get(v, 1));
      auto rule = std::find_if(table.rules.begin(), table.rules.end(),
                               [&](const Rule* r) { return r->spec.name == name; });
      if (rule == table.rules.end()) continue;  // a rule no longer configured
      // The record's row as it is now.
      std::vector<std::optional<std::string>> key;
      const nlohmann::json values = nlohmann::json::parse(other, nullptr, false);
      if (!values.is_array() || values.size() != table.key.size()) continue;
      for (const auto& v : values) key.push_back(JsonText(v));
      auto current = sql_.ExecPrepared(absl::StrCat("SELECT ", table.columns, " FROM ",
                                                    table.quoted, " WHERE ", table.key_where),
                                       key);
      if (!current.ok()) return current.status();
      absl::Status s;
      if (current->rows() == 0) {
        s = Resolve(table, **rule, other);
      } else {
        std::vector<std::optional<std::string>> texts;
        for (size_t c = 0; c < table.schema.columns.size(); ++c) {
          texts.push_back(current->GetOptional(0, static_cast<int>(c)));
        }
        s = Evaluate(table, **rule, other, texts, "");
      }
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // Runs `rule` for the row `record_id` (its columns' text `row`, written by `subject`): records
  // or updates its violation when rows conflict, resolves it otherwise.
  absl::Status Evaluate(const Table& table, Rule& rule, const std::string& record_id,
                        const std::vector<std::optional<std::string>>& row,
                        const std::string& subject) {
    std::vector<std::optional<std::string>> params;
    for (int c : rule.params) params.push_back(row[c]);
    auto conflicts = sql_.ExecPrepared(rule.sql, params);
    if (!conflicts.ok()) {
      return absl::Status(conflicts.status().code(), absl::StrCat("rule ", rule.spec.name, ": ",
                                                                  conflicts.status().message()));
    }
    if (conflicts->rows() == 0) return Resolve(table, rule, record_id);
    std::vector<std::string> ids;
    std::vector<std::string> descriptions;
    for (int r = 0; r < conflicts->rows(); ++r) {
      ids.push_back(std::string(conflicts->Get(r, 0)));
      const nlohmann::json other = nlohmann::json::parse(conflicts->Get(r, 1), nullptr, false);
      std::string text;
      const std::string& pattern = rule.spec.description;
      for (size_t i = 0; i < pattern.size();) {
        const size_t open = pattern.find('{', i);
        const size_t close = open == std::string::npos ? open : pattern.find('}', open);
        if (close == std::string::npos) {
          text.append(pattern, i);
          break;
        }
        text.append(pattern, i, open - i);
        const std::string name = pattern.substr(open + 1, close - open - 1);
        if (name.starts_with("new.")) {
          const int c = table.ColumnIndex(name.substr(4));
          text += c < 0 ? "" : row[c].value_or("null");
        } else if (other.is_object() && other.contains(name)) {
          text += JsonText(other[name]);
        }
        i = close + 1;
      }
      descriptions.push_back(std::move(text));
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    std::vector<std::string> quoted;
    for (const std::string& id : ids) {
      quoted.push_back(
          absl::StrCat("\"", absl::StrReplaceAll(id, {{"\\", "\\\\"}, {"\"", "\\\""}}), "\""));
    }
    // The parties: the writer and the users whose pushes wrote the conflicting rows.
    auto recorded = sql_.ExecPrepared(
        "INSERT INTO shapebridge.violations AS v "
        "(rule, table_name, record_id, description, conflicting_ids, parties, expires_at) "
        "SELECT $1, $2, $3, $4, $5::text[], ARRAY(SELECT DISTINCT s FROM (SELECT $6::text AS s "
        "UNION SELECT subject FROM shapebridge.field_versions WHERE table_name = $2 AND "
        "row_key = ANY($5::text[] || $3::text)) AS p WHERE s <> '' ORDER BY s), "
        "now() + make_interval(secs => $7::bigint) "
        "ON CONFLICT (rule, table_name, record_id) WHERE resolved_at IS NULL DO UPDATE SET "
        "description = excluded.description, conflicting_ids = excluded.conflicting_ids, "
        "parties = ARRAY(SELECT DISTINCT s FROM unnest(v.parties || excluded.parties) AS s "
        "ORDER BY s) "
        "WHERE (v.description, v.conflicting_ids) IS DISTINCT FROM "
        "(excluded.description, excluded.conflicting_ids) OR NOT v.parties @> excluded.parties "
        "RETURNING v.xmax = 0",
        {rule.spec.name, table.name, record_id, absl::StrJoin(descriptions, "; "),
         absl::StrCat("{", absl::StrJoin(quoted, ","), "}"), subject,
         std::to_string(writer_.config_.violation_ttl.count())});
    if (!recorded.ok()) return recorded.status();
    if (recorded->rows() > 0 && recorded->Get(0, 0) == "t") ++rule_counts_[&rule].first;
    return absl::OkStatus();
  }

  absl::Status Resolve(const Table& table, Rule& rule, const std::string& record_id) {
    auto resolved = sql_.ExecPrepared(
        "UPDATE shapebridge.violations SET resolved_at = now() WHERE rule = $1 AND "
        "table_name = $2 AND record_id = $3 AND resolved_at IS NULL RETURNING 1",
        {rule.spec.name, table.name, record_id});
    if (!resolved.ok()) return resolved.status();
    rule_counts_[&rule].second += resolved->rows();
    return absl::OkStatus();
  }

  // The result of field `i` of `mutation` (added in field order when missing).
  static pb::FieldResult* Field(pb::MutationResult* result, const pb::Mutation& mutation,
                                size_t i) {
    while (static_cast<size_t>(result->fields_size()) <= i) {
      const int next = result->fields_size();
      result->add_fields()->set_column(mutation.fields(next).column());
    }
    return result->mutable_fields(static_cast<int>(i));
  }

  Writer& writer_;
  PgConnection& sql_;
  const nlohmann::json& claims_;
  const pb::PushRequest& request_;
  std::string subject_;  // the token's subject claim ("" without one)
  // Violations detected and resolved by this batch, counted when it commits.
  std::map<Rule*, std::pair<uint64_t, uint64_t>> rule_counts_;
  std::map<const shapes::ShapeDefinition*,
           std::vector<std::shared_ptr<const shapes::ShapeInstance>>>
      allowed_;
};

std::vector<shapes::ShapeDefinitionSpec> BuiltinShapes(const WritebackConfig& config) {
  using shapes::ParamSource;
  using shapes::ParamSpec;
  const ParamSpec subject{.name = "subject",
                          .type = "text",
                          .source = ParamSource::kClaim,
                          .claim = config.subject_claim};
  return {
      {.name = "shapebridge_mutations",
       .table = "shapebridge.mutations",
       .columns = {"client_id", "mutation_id", "result", "pushed_at"},
       .where = "client_id = $client_id AND subject = $subject",
       .params = {ParamSpec{.name = "client_id", .type = "text"}, subject}},
      {.name = "shapebridge_violations",
       .table = "shapebridge.violations",
       .columns = {"id", "rule", "table_name", "record_id", "description", "conflicting_ids",
                   "detected_at", "expires_at", "resolved_at"},
       .where = "$subject = ANY(parties)",
       .params = {subject}},
  };
}

Writer::Writer(std::string dsn,
               std::vector<std::shared_ptr<const shapes::ShapeDefinition>> definitions,
               WritebackConfig config)
    : dsn_(std::move(dsn)), config_(std::move(config)) {
  for (auto& def : definitions) {
    if (!def->writable) continue;
    writable_.push_back(def);
    const std::string name = def->table.QualifiedName();
    auto it = std::find_if(tables_.begin(), tables_.end(),
                           [&](const auto& t) { return t->name == name; });
    if (it == tables_.end()) {
      auto table = std::make_unique<Table>();
      table->name = name;
      table->schema = def->table;
      table->key = def->key;
      tables_.push_back(std::move(table));
      it = tables_.end() - 1;
    }
    (*it)->definitions.push_back(def);
  }
  for (const RuleSpec& spec : config_.rules) {
    auto rule = std::make_unique<Rule>();
    rule->spec = spec;
    rules_.push_back(std::move(rule));
  }
}

Writer::~Writer() = default;

absl::Status Writer::CreateSchema(PgConnection& sql) {
  // Processes that start together take turns (concurrent CREATE OR REPLACE can fail).
  auto r = sql.Exec(absl::StrCat("BEGIN; SELECT pg_advisory_xact_lock(1936744290, 0);",
                                 kCreateSchema, "COMMIT;"));
  if (!r.ok()) (void)sql.Exec("ROLLBACK");
  if (!r.ok()) {
    return absl::Status(
        r.status().code(),
        absl::StrCat("write-back: cannot create the schema shapebridge (the role needs CREATE on "
                     "the database): ",
                     r.status().message()));
  }
  return absl::OkStatus();
}

absl::Status Writer::PrepareRules(PgConnection& sql) {
  std::vector<std::string> errors;
  for (auto& rule : rules_) {
    const RuleSpec& spec = rule->spec;
    auto error = [&](const std::string& what) {
      errors.push_back(absl::StrCat(spec.location, ": writeback.rules.", spec.name, ": ", what));
    };
    auto table = std::find_if(tables_.begin(), tables_.end(),
                              [&](const auto& t) { return t->name == spec.table; });
    if (table == tables_.end()) {
      error(absl::StrCat("table: ", spec.table, " has no writable shape"));
      continue;
    }
    Table& t = **table;
    auto numbered = NumberParameters(spec.check, t.column_types);
    if (!numbered.ok()) {
      error(std::string(numbered.status().message()));
      continue;
    }
    // The columns the check returns, from running it once over nulls.
    auto described =
        sql.ExecParams(absl::StrCat("SELECT * FROM (", numbered->sql, "\n) AS c LIMIT 0"),
                       std::vector<std::optional<std::string>>(numbered->columns.size()));
    if (!described.ok()) {
      error(absl::StrCat("check: ", described.status().message()));
      continue;
    }
    std::set<std::string> returned;
    for (int c = 0; c < described->columns(); ++c) returned.emplace(described->ColumnName(c));
    for (int k : t.key) {
      if (!returned.contains(t.schema.columns[k].name)) {
        error(absl::StrCat("check: must return the primary key column ", t.schema.columns[k].name,
                           " of the conflicting rows"));
      }
    }
    for (const std::string& name : Placeholders(spec.description)) {
      const bool known =
          name.starts_with("new.") ? t.ColumnIndex(name.substr(4)) >= 0 : returned.contains(name);
      if (!known) {
        error(absl::StrCat("description: {", name,
                           "} is neither a column the check returns nor new.<column of ", t.name,
                           ">"));
      }
    }
    rule->sql = absl::StrCat("SELECT shapebridge.row_key(to_jsonb(c), ", t.key_array,
                             "), to_jsonb(c)::text FROM (", numbered->sql, "\n) AS c");
    for (const std::string& column : numbered->columns) {
      rule->params.push_back(t.ColumnIndex(column));
    }
    t.rules.push_back(rule.get());
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  return absl::OkStatus();
}

absl::Status Writer::Prepare() {
  auto sql = TakeConnection();
  if (!sql.ok()) return sql.status();
  for (auto& table : tables_) {
    table->quoted = absl::StrCat((*sql)->QuoteIdentifier(table->schema.schema), ".",
                                 (*sql)->QuoteIdentifier(table->schema.name));
    for (const auto& c : table->schema.columns) {
      table->quoted_columns.push_back((*sql)->QuoteIdentifier(c.name));
    }
    table->columns = absl::StrJoin(table->quoted_columns, ", ");
    std::vector<std::string> keys;
    for (int k : table->key) keys.push_back((*sql)->QuoteLiteral(table->schema.columns[k].name));
    table->key_array = absl::StrCat("ARRAY[", absl::StrJoin(keys, ", "), "]::text[]");
    std::vector<std::string> where;
    for (size_t k = 0; k < table->key.size(); ++k) {
      where.push_back(absl::StrCat(table->quoted_columns[table->key[k]], " = $", k + 1));
    }
    table->key_where = absl::StrJoin(where, " AND ");
    auto types = (*sql)->ExecParams(
        "SELECT attname, format_type(atttypid, atttypmod), attgenerated <> '', "
        "attidentity = 'a' FROM pg_attribute "
        "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        {table->quoted});
    if (!types.ok()) {
      ReturnConnection(*std::move(sql));
      return types.status();
    }
    std::vector<std::string> restorable;
    bool identity_always = false;
    for (int r = 0; r < types->rows(); ++r) {
      table->column_types.emplace(types->Get(r, 0), types->Get(r, 1));
      if (types->Get(r, 2) == "t") continue;  // generated: Postgres computes it again
      restorable.push_back((*sql)->QuoteIdentifier(types->Get(r, 0)));
      identity_always = identity_always || types->Get(r, 3) == "t";
    }
    // A deleted row put back as it was (deletes: newest_wins): its identity values included.
    const std::string list = absl::StrJoin(restorable, ", ");
    table->restore = absl::StrCat("INSERT INTO ", table->quoted, " AS t (", list, ")",
                                  identity_always ? " OVERRIDING SYSTEM VALUE" : "", " SELECT ",
                                  list, " FROM jsonb_populate_record(NULL::", table->quoted,
                                  ", $1::jsonb) RETURNING ", table->columns);
    std::vector<std::string> typed;
    for (size_t k = 0; k < table->key.size(); ++k) {
      const std::string& name = table->schema.columns[table->key[k]].name;
      typed.push_back(absl::StrCat("$", k + 1, "::", table->column_types[name], " AS ",
                                   table->quoted_columns[table->key[k]]));
    }
    table->key_row = absl::StrCat("SELECT shapebridge.row_key(to_jsonb(r), ", table->key_array,
                                  ") FROM (SELECT ", absl::StrJoin(typed, ", "), ") AS r");
  }
  absl::StatusOr<PgResult> r = PgResult();
  for (auto& table : tables_) {
    if (!r.ok()) break;
    std::vector<std::string> keys;
    for (int k : table->key) keys.push_back((*sql)->QuoteLiteral(table->schema.columns[k].name));
    r = (*sql)->Exec(absl::StrCat(
        "CREATE OR REPLACE TRIGGER shapebridge_field_versions AFTER INSERT OR UPDATE OR DELETE ON ",
        table->quoted, " FOR EACH ROW EXECUTE FUNCTION shapebridge.version_direct_write(",
        absl::StrJoin(keys, ", "), ")"));
  }
  if (!r.ok()) {
    ReturnConnection(*std::move(sql));
    return absl::Status(
        r.status().code(),
        absl::StrCat("write-back: cannot create the field version triggers of the writable tables "
                     "(the role needs ownership of the tables): ",
                     r.status().message()));
  }
  absl::Status rules = PrepareRules(**sql);
  ReturnConnection(*std::move(sql));
  return rules;
}

void Writer::Sweep(std::chrono::steady_clock::time_point now) {
  {
    std::lock_guard lock(sweep_mu_);
    if (last_sweep_ != std::chrono::steady_clock::time_point{} &&
        now - last_sweep_ < config_.sweep_interval) {
      return;
    }
    last_sweep_ = now;
  }
  auto sql = TakeConnection();
  if (!sql.ok()) {
    stats_.sweep_errors.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  auto expired = (*sql)->ExecPrepared(
      "WITH v AS (DELETE FROM shapebridge.violations WHERE expires_at <= now() RETURNING 1) "
      "SELECT count(*) FROM v",
      {});
  auto forgotten = (*sql)->ExecPrepared(
      "WITH m AS (DELETE FROM shapebridge.mutations WHERE "
      "pushed_at < now() - make_interval(secs => $1::bigint) RETURNING 1) SELECT count(*) FROM m",
      {std::to_string(config_.mutation_retention.count())});
  auto open = (*sql)->ExecPrepared(
      "SELECT rule, count(*) FROM shapebridge.violations WHERE resolved_at IS NULL GROUP BY rule",
      {});
  // Tombstones (deletes: newest_wins) are kept as long as mutation ids.
  auto tombs = (*sql)->ExecPrepared(
      "DELETE FROM shapebridge.tombstones WHERE deleted_at < now() - make_interval(secs => "
      "$1::bigint)",
      {std::to_string(config_.mutation_retention.count())});
  if (!tombs.ok()) open = tombs.status();
  if (!expired.ok() || !forgotten.ok() || !open.ok()) {
    stats_.sweep_errors.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("[writeback] sweep failed: {}", std::string((!expired.ok()     ? expired.status()
                                                              : !forgotten.ok() ? forgotten.status()
                                                                                : open.status())
                                                                 .message()));
    ReturnConnection(nullptr);
    return;
  }
  stats_.expired_violations.fetch_add(std::stoull(std::string(expired->Get(0, 0))),
                                      std::memory_order_relaxed);
  stats_.expired_mutations.fetch_add(std::stoull(std::string(forgotten->Get(0, 0))),
                                     std::memory_order_relaxed);
  for (auto& rule : rules_) {
    int64_t count = 0;
    for (int r = 0; r < open->rows(); ++r) {
      if (open->Get(r, 0) == rule->spec.name) count = std::stoll(std::string(open->Get(r, 1)));
    }
    rule->open.store(count, std::memory_order_relaxed);
  }
  ReturnConnection(*std::move(sql));
}

std::vector<RuleStats> Writer::rule_stats() const {
  std::vector<RuleStats> out;
  for (const auto& rule : rules_) {
    out.push_back({.rule = rule->spec.name,
                   .detected = rule->detected.load(std::memory_order_relaxed),
                   .resolved = rule->resolved.load(std::memory_order_relaxed),
                   .open = rule->open.load(std::memory_order_relaxed)});
  }
  return out;
}

absl::StatusOr<std::unique_ptr<PgConnection>> Writer::TakeConnection() {
  {
    std::unique_lock lock(pool_mu_);
    pool_cv_.wait(lock, [&] { return !idle_.empty() || open_ < kConnections; });
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    ++open_;
  }
  auto c = PgConnection::Connect(dsn_, PgConnectionKind::kSql, "shapebridge-writeback");
  if (!c.ok()) {
    std::lock_guard lock(pool_mu_);
    --open_;
    pool_cv_.notify_one();
  }
  return c;
}

void Writer::ReturnConnection(std::unique_ptr<PgConnection> connection) {
  std::lock_guard lock(pool_mu_);
  if (connection) {
    idle_.push_back(std::move(connection));
  } else {
    --open_;
  }
  pool_cv_.notify_one();
}

absl::StatusOr<pb::PushResponse> Writer::Push(const nlohmann::json& claims,
                                              const pb::PushRequest& request) {
  if (!enabled()) {
    return absl::FailedPreconditionError(
        "write-back is off: no shape is writable (set `writable: true` on a shape)");
  }
  auto invalid = [](const std::string& what) { return absl::InvalidArgumentError(what); };
  if (request.client_id().empty() || request.client_id().size() > kMaxIdBytes) {
    return invalid("client_id: must be 1 to 200 bytes");
  }
  if (request.mutations_size() > kMaxBatch) {
    return invalid(absl::StrCat("mutations: ", request.mutations_size(), " in one batch, at most ",
                                kMaxBatch));
  }
  std::vector<Checked> checked;
  std::set<std::string> ids;
  for (int i = 0; i < request.mutations_size(); ++i) {
    const pb::Mutation& m = request.mutations(i);
    const std::string where = absl::StrCat("mutations[", i, "] (", m.mutation_id(), ")");
    if (m.mutation_id().empty() || m.mutation_id().size() > kMaxIdBytes) {
      return invalid(absl::StrCat("mutations[", i, "]: mutation_id must be 1 to 200 bytes"));
    }
    if (!ids.insert(m.mutation_id()).second) {
      return invalid(absl::StrCat(where, ": mutation_id appears twice in the batch"));
    }
    auto table = std::find_if(tables_.begin(), tables_.end(),
                              [&](const auto& t) { return t->name == m.table(); });
    if (table == tables_.end()) {
      std::vector<std::string> names;
      for (const auto& t : tables_) names.push_back(t->name);
      return invalid(absl::StrCat(
          where, ": table \"", m.table(),
          "\" has no writable shape (writable tables: ", absl::StrJoin(names, ", "), ")"));
    }
    const Table& t = **table;
    if (m.op() == pb::Mutation::OP_UNSPECIFIED || !pb::Mutation::Op_IsValid(m.op())) {
      return invalid(absl::StrCat(where, ": op must be INSERT, UPDATE, DELETE or UPSERT"));
    }
    Checked c{.mutation = &m, .table = &t};
    for (int k : t.key) {
      const std::string& name = t.schema.columns[k].name;
      auto it = m.key().find(name);
      if (it == m.key().end()) {
        return invalid(absl::StrCat(where, ": key: missing primary key column ", name));
      }
      auto text = TextOf(it->second, t.schema.columns[k]);
      if (!text.ok()) return invalid(absl::StrCat(where, ": key: ", text.status().message()));
      if (!text->has_value()) {
        return invalid(absl::StrCat(where, ": key: column ", name, " must not be null"));
      }
      c.key.push_back(*std::move(text));
    }
    for (const auto& [name, value] : m.key()) {
      const int column = t.ColumnIndex(name);
      if (column < 0 || std::find(t.key.begin(), t.key.end(), column) == t.key.end()) {
        return invalid(
            absl::StrCat(where, ": key: ", name, " is not a primary key column of ", t.name));
      }
    }
    if (m.op() == pb::Mutation::DELETE && m.fields_size() > 0) {
      return invalid(absl::StrCat(where, ": a DELETE has no fields"));
    }
    if (m.op() == pb::Mutation::DELETE && config_.deletes == DeleteRule::kNewestWins) {
      if (m.hlc() == 0) {
        return invalid(absl::StrCat(where,
                                    ": hlc missing (with deletes: newest_wins a DELETE carries the "
                                    "client's hybrid logical clock when it deleted the row)"));
      }
      std::lock_guard lock(clock_mu_);
      auto observed = clock_.Observe(hlc::Timestamp::FromInteger(m.hlc()));
      if (!observed.ok()) {
        return invalid(absl::StrCat(where, ": hlc: ", observed.status().message()));
      }
    }
    if (m.op() != pb::Mutation::DELETE && m.fields_size() == 0) {
      return invalid(absl::StrCat(where, ": fields: at least one"));
    }
    for (const pb::FieldWrite& f : m.fields()) {
      const int column = t.ColumnIndex(f.column());
      if (column < 0) {
        return invalid(
            absl::StrCat(where, ": fields: ", t.name, " has no column \"", f.column(), "\""));
      }
      if (std::find(t.key.begin(), t.key.end(), column) != t.key.end()) {
        return invalid(absl::StrCat(where, ": fields: ", f.column(),
                                    " is a primary key column: give it in key"));
      }
      if (std::find(c.columns.begin(), c.columns.end(), column) != c.columns.end()) {
        return invalid(absl::StrCat(where, ": fields: ", f.column(), " is written twice"));
      }
      auto text = TextOf(f.value(), t.schema.columns[column]);
      if (!text.ok()) return invalid(absl::StrCat(where, ": fields: ", text.status().message()));
      if (f.hlc() == 0) {
        return invalid(absl::StrCat(where, ": fields: ", f.column(),
                                    ": hlc missing (the client's hybrid logical clock when it "
                                    "wrote the field)"));
      }
      {
        // A timestamp far ahead of this server's clock would win against every later write.
        std::lock_guard lock(clock_mu_);
        auto observed = clock_.Observe(hlc::Timestamp::FromInteger(f.hlc()));
        if (!observed.ok()) {
          return invalid(
              absl::StrCat(where, ": fields: ", f.column(), ": ", observed.status().message()));
        }
      }
      c.columns.push_back(column);
      c.values.push_back(*std::move(text));
    }
    checked.push_back(std::move(c));
  }

  for (int attempt = 1;; ++attempt) {
    auto sql = TakeConnection();
    if (!sql.ok()) return sql.status();
    Batch batch(*this, **sql, claims, request);
    auto response = batch.Run(checked);
    if (response.ok()) {
      stats_.batches.fetch_add(1, std::memory_order_relaxed);
      ReturnConnection(*std::move(sql));
      return response;
    }
    // Two batches that lock the same rows in different orders: Postgres picked this one to
    // roll back. It is run again (the other has committed or will); so is a serialization
    // failure. The connection is fine.
    const std::string state = SqlStateOf(response.status());
    if ((state == "40P01" || state == "40001") && attempt < kAttempts) {
      stats_.retried_batches.fetch_add(1, std::memory_order_relaxed);
      ReturnConnection(*std::move(sql));
      continue;
    }
    stats_.failed_batches.fetch_add(1, std::memory_order_relaxed);
    // A connection that failed otherwise may be broken: drop it.
    ReturnConnection(nullptr);
    return response;
  }
}

}  // namespace shapebridge
