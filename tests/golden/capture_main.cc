// golden_capture: records the pgoutput streams of the golden scenarios from a real Postgres 15.
//
//   golden_capture [--out DIR] [SCENARIO...]
//
// For each scenario (all by default) it creates a fresh database in the throwaway cluster of the
// test harness, runs the setup SQL, creates the publication and a pgoutput slot, runs the
// scenario's SQL (from two sessions where the order of commits matters), ends with a
// non-transactional message 'golden.end', then reads the slot with START_REPLICATION until that
// message arrives. The pgoutput payloads of the XLogData frames (without the 'w' header) are
// written to DIR/<scenario>.bin, each as a big-endian u32 length followed by the payload.
//
// The captures are checked in; tests/golden/README.md says when and how to make them again.

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "bridge/common/pg.h"
#include "bridge/replication/decoder/pgoutput.h"
#include "bridge/replication/decoder/walsender_frame.h"
#include "core/lsn.h"
#include "tests/harness/test_postgres.h"

namespace shapebridge::golden {
namespace {

using ::shapebridge::testing::ConnectOrDie;
using ::shapebridge::testing::ExecOrDie;
using ::shapebridge::testing::QueryValue;
using ::shapebridge::testing::TestPostgres;

constexpr char kEndPrefix[] = "golden.end";
constexpr auto kCaptureTimeout = std::chrono::seconds(60);

// One statement of a scenario and the session (0 or 1) that runs it. Two sessions let a
// scenario interleave transactions: pgoutput sends them in commit order.
struct Step {
  int session = 0;
  std::string sql;
};

struct Scenario {
  std::string name;
  int protocol_version = 1;
  // START_REPLICATION options besides proto_version and publication_names.
  std::string extra_options;
  // Run before the slot exists, so nothing here is decoded.
  std::vector<std::string> setup;
  std::string publication_tables;
  // Per-database settings, which the walsender of this database also reads.
  std::vector<std::string> database_settings;
  std::vector<Step> steps;
};

// A large transaction's rows: narrow, so the capture stays small while the reorder buffer
// (which counts about 150 bytes of bookkeeping per change) passes 64kB every few hundred rows.
std::string InsertSeries(const std::string& table, int from, int to) {
  return absl::StrCat("INSERT INTO ", table, " SELECT g, g % 7 FROM generate_series(", from, ", ",
                      to, ") g");
}

std::vector<Scenario> Scenarios() {
  std::vector<Scenario> scenarios;

  // Every column type the value parser knows, values at the edges, NULLs, a Type message for a
  // user-defined enum (and its array), REPLICA IDENTITY FULL and an unchanged TOASTed column.
  scenarios.push_back(Scenario{
      .name = "proto1_types",
      .protocol_version = 1,
      .extra_options = "messages 'true'",
      .setup =
          {
              "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
              "CREATE TABLE typed (id int4 PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, "
              "f4 float4, f8 float8, n numeric(20,5), t text, vc varchar(16), u uuid, "
              "ts timestamp, tstz timestamptz, d date, j jsonb, by bytea, ia int4[], ta text[], "
              "m mood, ma mood[], big text)",
              "ALTER TABLE typed ALTER COLUMN big SET STORAGE EXTERNAL",
              "ALTER TABLE typed REPLICA IDENTITY FULL",
          },
      .publication_tables = "typed",
      .steps =
          {
              {0,
               "INSERT INTO typed VALUES (1, true, 32767, 2147483647, 9223372036854775807, 1.5, "
               "3.141592653589793, 12345.67890, 'plain text', 'varchar', "
               "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29 13:14:15.123456', "
               "'2024-02-29 13:14:15.5+02', '2024-02-29', '{\"k\": [1, 2.5, null, \"s\"]}', "
               "'\\x00ff10', '{1,2,3}', '{\"a b\",c,NULL}', 'happy', '{sad,ok}', "
               "repeat('0123456789', 300))"},
              {0,
               "INSERT INTO typed VALUES (2, false, -32768, -2147483648, -9223372036854775808, "
               "'NaN', 'Infinity', 'NaN', E'quote '' backslash \\\\ tab \\t unicode \u00e9', "
               "'', '00000000-0000-0000-0000-000000000000', 'infinity', '-infinity', "
               "'-infinity', '[]', '\\x', '{}', '{NULL,\"\"}', 'sad', '{}', 'short')"},
              {0,
               "INSERT INTO typed VALUES (3, NULL, NULL, NULL, NULL, '-Infinity', '-Infinity', "
               "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
               "NULL)"},
              // The TOASTed column is untouched: the new tuple carries 'u' for it.
              {0, "UPDATE typed SET i4 = i4 - 1, t = 'updated' WHERE id = 1"},
              {0, "UPDATE typed SET f4 = 0.25, n = -0.00001 WHERE id = 3"},
              {0, "DELETE FROM typed WHERE id = 2"},
          },
  });

  // Every message type of protocol 1 except Type: key and keyless updates, TRUNCATE options,
  // logical messages, an origin, and two sessions committing out of start order.
  scenarios.push_back(Scenario{
      .name = "proto1_messages",
      .protocol_version = 1,
      .extra_options = "messages 'true'",
      .setup =
          {
              "CREATE TABLE parent (id serial PRIMARY KEY, name text NOT NULL)",
              "CREATE TABLE child (id serial PRIMARY KEY, parent_id int REFERENCES parent(id), "
              "note text)",
              "SELECT pg_replication_origin_create('golden_origin')",
          },
      .publication_tables = "parent, child",
      .steps =
          {
              {0, "INSERT INTO parent (name) VALUES ('one'), ('two'), ('three')"},
              {0, "INSERT INTO child (parent_id, note) VALUES (1, 'first'), (2, NULL)"},
              // Update of the key: the old key goes along as 'K'.
              {0, "UPDATE parent SET id = 10 WHERE id = 3"},
              // Update of a non-key column: no old tuple at all.
              {0, "UPDATE parent SET name = 'TWO' WHERE id = 2"},
              {0, "DELETE FROM child WHERE id = 2"},
              // Session 1 starts first but commits second.
              {1, "BEGIN"},
              {1, "INSERT INTO parent (name) VALUES ('late')"},
              {0, "BEGIN"},
              {0, "INSERT INTO parent (name) VALUES ('early')"},
              {0, "SELECT pg_logical_emit_message(true, 'golden.txn', 'inside a transaction')"},
              {0, "COMMIT"},
              {1, "COMMIT"},
              {0, "SELECT pg_logical_emit_message(false, 'golden.now', E'not transactional\\n')"},
              // A transaction replayed from elsewhere: pgoutput adds an Origin message.
              {0, "SELECT pg_replication_origin_session_setup('golden_origin')"},
              {0, "BEGIN"},
              {0,
               "SELECT pg_replication_origin_xact_setup('0/ABCDEF', "
               "'2024-01-02 03:04:05+00')"},
              {0, "INSERT INTO child (parent_id, note) VALUES (1, 'from origin')"},
              {0, "COMMIT"},
              {0, "SELECT pg_replication_origin_session_reset()"},
              {0, "TRUNCATE parent, child RESTART IDENTITY CASCADE"},
              {0, "INSERT INTO parent (name) VALUES ('after truncate')"},
          },
  });

  // Protocol 2 with streaming: a committed, an aborted and a partly rolled back transaction, each
  // larger than logical_decoding_work_mem, with a small transaction committing in between.
  scenarios.push_back(Scenario{
      .name = "proto2_streaming",
      .protocol_version = 2,
      .extra_options = "streaming 'on', messages 'true'",
      .setup =
          {
              "CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL)",
              "CREATE TABLE small (id int PRIMARY KEY, note text)",
          },
      .publication_tables = "big, small",
      .database_settings = {"logical_decoding_work_mem = '64kB'"},
      .steps =
          {
              {0, "INSERT INTO small VALUES (1, 'before')"},
              // Streamed and committed, with a small transaction committing while it is open.
              {0, "BEGIN"},
              {0, InsertSeries("big", 1, 500)},
              {1, "INSERT INTO small VALUES (2, 'while streaming')"},
              {0, InsertSeries("big", 501, 800)},
              {0, "SELECT pg_logical_emit_message(true, 'golden.txn', 'in a streamed txn')"},
              {0, "UPDATE big SET v = -1 WHERE id = 1"},
              {0, "DELETE FROM big WHERE id = 2"},
              {0, "COMMIT"},
              // Streamed and rolled back: Stream Abort with subxid == xid.
              {0, "BEGIN"},
              {0, InsertSeries("big", 1001, 1600)},
              {0, "ROLLBACK"},
              // A rolled back subtransaction inside a committed one: Stream Abort with the
              // subtransaction's xid, then Stream Commit.
              {0, "BEGIN"},
              {0, InsertSeries("big", 2001, 2400)},
              {0, "SAVEPOINT sp"},
              {0, InsertSeries("big", 2401, 2800)},
              {0, "ROLLBACK TO SAVEPOINT sp"},
              {0, InsertSeries("big", 2801, 2805)},
              {0, "COMMIT"},
              {0, "INSERT INTO small VALUES (3, 'after')"},
          },
  });

  // binary 'true': tuple columns arrive as 'b' in each type's send format.
  scenarios.push_back(Scenario{
      .name = "proto1_binary",
      .protocol_version = 1,
      .extra_options = "binary 'true', messages 'true'",
      .setup =
          {
              "CREATE TABLE bin (id int4 PRIMARY KEY, b bool, i8 int8, f8 float8, n numeric, "
              "t text, by bytea, tstz timestamptz, u uuid, ia int4[])",
          },
      .publication_tables = "bin",
      .steps =
          {
              {0,
               "INSERT INTO bin VALUES (1, true, -2, 0.5, 1234.5600, 'text', '\\x0001', "
               "'2024-01-02 03:04:05.678901+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', "
               "'{1,NULL,3}')"},
              {0, "INSERT INTO bin (id) VALUES (2)"},
              {0, "UPDATE bin SET t = 'changed' WHERE id = 1"},
              {0, "DELETE FROM bin WHERE id = 2"},
          },
  });
  return scenarios;
}

[[noreturn]] void Die(std::string_view message) {
  std::cerr << "golden_capture: " << message << std::endl;
  std::exit(1);
}

void AppendU32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

PgTimestamp Now() {
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  return PgTimestamp::FromUnixMicros(micros);
}

// Reads the slot until the end marker; returns the pgoutput payloads in arrival order.
std::vector<std::string> ReadSlot(PgConnection& replication, const Scenario& scenario) {
  std::vector<std::string> payloads;
  pgoutput::DecodeContext context{.protocol_version = scenario.protocol_version};
  Lsn received;
  const auto deadline = std::chrono::steady_clock::now() + kCaptureTimeout;
  while (true) {
    absl::StatusOr<std::optional<std::string>> data = replication.ReadCopyData();
    if (!data.ok()) {
      Die(absl::StrCat(scenario.name, ": ", data.status().ToString()));
    }
    if (!data->has_value()) {
      if (std::chrono::steady_clock::now() > deadline) {
        Die(absl::StrCat(scenario.name, ": no end marker after ", kCaptureTimeout.count(), "s (",
                         payloads.size(), " messages so far)"));
      }
      pollfd fd{.fd = replication.Socket(), .events = POLLIN, .revents = 0};
      (void)poll(&fd, 1, 200);
      if (absl::Status s = replication.ConsumeInput(); !s.ok()) {
        Die(s.ToString());
      }
      continue;
    }
    absl::StatusOr<walsender::ServerFrame> frame = walsender::DecodeFrame(**data);
    if (!frame.ok()) {
      Die(absl::StrCat(scenario.name, ": ", frame.status().ToString()));
    }
    if (const auto* keepalive = std::get_if<walsender::Keepalive>(&*frame)) {
      if (keepalive->reply_requested) {
        // Report nothing as flushed: the slot stays where it is, which does not matter here.
        if (absl::Status s = replication.WriteCopyData(
                walsender::EncodeStandbyStatus(received, Lsn(), Lsn(), Now(), false));
            !s.ok()) {
          Die(s.ToString());
        }
        (void)replication.FlushOutput();
      }
      continue;
    }
    const auto& xlog = std::get<walsender::XLogData>(*frame);
    received = std::max(received, xlog.wal_end);
    std::string payload(xlog.payload);
    // Track stream blocks from the type byte alone, so that a payload the decoder rejects is
    // still recorded (and then fails the golden test, which is the point).
    const bool starts_stream = !payload.empty() && payload[0] == 'S';
    const bool stops_stream = !payload.empty() && payload[0] == 'E';
    absl::StatusOr<pgoutput::Message> decoded = pgoutput::Decode(payload, context);
    payloads.push_back(std::move(payload));
    if (starts_stream) {
      context.in_stream = true;
    } else if (stops_stream) {
      context.in_stream = false;
    }
    if (!decoded.ok()) {
      std::cerr << "golden_capture: " << scenario.name << ": message " << payloads.size()
                << " does not decode: " << decoded.status() << std::endl;
      continue;
    }
    if (const auto* message = std::get_if<pgoutput::LogicalMessage>(&*decoded)) {
      if (message->prefix == kEndPrefix && !message->transactional()) {
        return payloads;
      }
    }
  }
}

void Capture(const Scenario& scenario, const std::string& out_dir) {
  const std::string database = "golden_" + scenario.name;
  const std::string slot = "golden_" + scenario.name;
  const std::string dsn = TestPostgres::Get().CreateDatabase(database);
  std::unique_ptr<PgConnection> sessions[2] = {ConnectOrDie(dsn), ConnectOrDie(dsn)};
  PgConnection& conn = *sessions[0];
  for (const std::string& sql : scenario.setup) {
    ExecOrDie(conn, sql);
  }
  for (const std::string& setting : scenario.database_settings) {
    ExecOrDie(conn,
              absl::StrCat("ALTER DATABASE ", conn.QuoteIdentifier(database), " SET ", setting));
  }
  ExecOrDie(conn, "CREATE PUBLICATION p FOR TABLE " + scenario.publication_tables);
  ExecOrDie(conn, "SELECT pg_create_logical_replication_slot(" + conn.QuoteLiteral(slot) +
                      ", 'pgoutput')");
  for (const Step& step : scenario.steps) {
    ExecOrDie(*sessions[step.session], step.sql);
  }
  ExecOrDie(conn, absl::StrCat("SELECT pg_logical_emit_message(false, '", kEndPrefix, "', '')"));

  absl::StatusOr<std::unique_ptr<PgConnection>> replication =
      PgConnection::Connect(dsn, PgConnectionKind::kReplication, "golden_capture");
  if (!replication.ok()) {
    Die(replication.status().ToString());
  }
  const std::string work_mem = QueryValue(**replication, "SHOW logical_decoding_work_mem");
  const std::string command = absl::StrCat(
      "START_REPLICATION SLOT ", conn.QuoteIdentifier(slot), " LOGICAL 0/0 (proto_version '",
      scenario.protocol_version, "', publication_names 'p'",
      scenario.extra_options.empty() ? "" : ", ", scenario.extra_options, ")");
  if (absl::Status s = (*replication)->StartCopyBoth(command); !s.ok()) {
    Die(s.ToString());
  }
  const std::vector<std::string> payloads = ReadSlot(**replication, scenario);
  replication->reset();

  std::string out;
  std::map<char, int> counts;
  for (const std::string& payload : payloads) {
    AppendU32(&out, static_cast<uint32_t>(payload.size()));
    out.append(payload);
    ++counts[payload.empty() ? '?' : payload[0]];
  }
  const std::string path = out_dir + "/" + scenario.name + ".bin";
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(out.data(), static_cast<std::streamsize>(out.size()));
  file.close();
  if (!file) {
    Die("cannot write " + path);
  }
  std::cout << path << ": " << payloads.size() << " messages, " << out.size()
            << " bytes (logical_decoding_work_mem " << work_mem << "):";
  for (const auto& [type, count] : counts) {
    std::cout << " " << type << "=" << count;
  }
  std::cout << std::endl;
}

}  // namespace
}  // namespace shapebridge::golden

int main(int argc, char** argv) {
  namespace golden = shapebridge::golden;
  std::string out_dir = SHAPEBRIDGE_GOLDEN_CAPTURE_DIR;
  std::vector<std::string> wanted;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--out" && i + 1 < argc) {
      out_dir = argv[++i];
    } else if (arg.starts_with("-")) {
      golden::Die("usage: golden_capture [--out DIR] [SCENARIO...]");
    } else {
      wanted.push_back(arg);
    }
  }
  const std::vector<golden::Scenario> scenarios = golden::Scenarios();
  for (const std::string& name : wanted) {
    bool known = false;
    for (const golden::Scenario& scenario : scenarios) {
      known = known || scenario.name == name;
    }
    if (!known) {
      golden::Die("unknown scenario " + name);
    }
  }
  for (const golden::Scenario& scenario : scenarios) {
    bool run = wanted.empty();
    for (const std::string& name : wanted) {
      run = run || name == scenario.name;
    }
    if (run) {
      golden::Capture(scenario, out_dir);
    }
  }
  return 0;
}
