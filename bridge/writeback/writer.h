#pragma once

// Write-back: the work of the Push RPC. A batch of one client's mutations is applied in one
// Postgres transaction: for each mutation, (1) its (client_id, mutation_id) is claimed in
// shapebridge.mutations, and a mutation pushed before returns its first result without writing;
// (2) the row before is read FOR UPDATE and must be inside a writable shape the caller's token
// allows; (3) an UPDATE writes only the fields whose (hlc, client_id) is newer than the version in
// shapebridge.field_versions (last-write-wins; a trigger versions direct writes), the others are
// superseded; (4) the row is written and the row after must be inside such a shape too, which
// must also hold every written column, otherwise the write is rolled back to a savepoint (nothing
// of the mutation is written) and the mutation is REJECTED with PERMISSION_DENIED; (5) the
// versions and the result are recorded with the id; (6) the table's rules run over the row
// written: a rule that finds conflicting rows records a violation (the write stays), one that
// passes resolves the row's open violation, and open violations that name the row as conflicting
// are checked again. Any database error rolls the whole batch back; a batch rolled back to break
// a deadlock runs again.
//
// The mutation records (shapebridge.mutations) and the violations (shapebridge.violations) are in
// the publication and readable through two built-in shapes (BuiltinShapes): a client sees its own
// mutations, each at the LSN of the transaction that applied it, and the violations of the rows
// its user wrote.
//
// "Inside a writable shape the token allows": there is a binding of the shape's parameters that
// the token permits (TokenBindings) under which the shape's WHERE holds for the row.
// CompileDefinition refuses writable shapes with request parameters that no claim limits.
//
// Threads: Push may be called from any number of threads; each call takes a connection of a pool
// of kConnections (waiting when all are busy).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "clients/hlc/hlc.h"
#include "nlohmann/json_fwd.hpp"
#include "shapes/definition.h"

namespace shapebridge {

class PgConnection;
namespace sync::v1 {
class PushRequest;
class PushResponse;
}  // namespace sync::v1

// A rule of `writeback.rules`: a check over the row a Push writes to `table`.
struct RuleSpec {
  std::string name;   // the violation's type
  std::string table;  // "schema.table", a table of a writable shape
  // A query over the written row: `$column` is that column's value in the row after the write.
  // It returns the rows that conflict with the written row (none: the rule holds); they must
  // include the primary key columns of `table`, which name the conflicting records.
  std::string check;
  // The violation's description: `{column}` is replaced by that column of the conflicting row (one
  // description per conflicting row, joined with "; "), `{new.column}` by the written row's.
  std::string description;
  std::string location;  // "FILE:LINE:COLUMN" of the rule in the config, for errors
};

// What a pushed DELETE does against concurrent field writes.
enum class DeleteRule {
  // The delete removes the row and its field versions: it wins over every update that arrives
  // after it (those are NOT_FOUND).
  kWins,
  // The delete carries an hlc. It is superseded (the row stays) when a field was written with a
  // larger (hlc, client_id); when applied it keeps the row as a tombstone, and a later push with
  // a field newer than the delete restores the row with that field written.
  kNewestWins,
};

// The `writeback` section of the config.
struct WritebackConfig {
  // The JWT claim naming the user: mutation records and violations are readable by it.
  std::string subject_claim = "sub";
  std::chrono::seconds violation_ttl = std::chrono::hours(72);
  // How long a mutation id is remembered (a retry after that is applied again).
  std::chrono::seconds mutation_retention = std::chrono::hours(24 * 7);
  std::chrono::seconds sweep_interval = std::chrono::seconds(60);
  DeleteRule deletes = DeleteRule::kWins;
  std::vector<RuleSpec> rules;
};

// The built-in shapes that write-back adds when some shape is writable:
// "shapebridge_mutations" (a client's mutation records, parameter client_id) and
// "shapebridge_violations" (the violations whose parties include the token's subject).
std::vector<shapes::ShapeDefinitionSpec> BuiltinShapes(const WritebackConfig& config);

struct RuleStats {
  std::string rule;
  uint64_t detected = 0;  // violations recorded
  uint64_t resolved = 0;  // violations resolved by a later write
  int64_t open = -1;      // open violations at the last sweep (-1 before the first)
};

struct WriterStats {
  std::atomic<uint64_t> batches{0};          // Push calls that committed
  std::atomic<uint64_t> failed_batches{0};   // Push calls rolled back by a database error
  std::atomic<uint64_t> retried_batches{0};  // runs rolled back by a deadlock, run again
  std::atomic<uint64_t> applied{0};          // every field written
  std::atomic<uint64_t> superseded{0};       // applied with some field superseded
  std::atomic<uint64_t> expired_violations{0};
  std::atomic<uint64_t> expired_mutations{0};
  std::atomic<uint64_t> sweep_errors{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<uint64_t> duplicates{0};
};

class Writer {
 public:
  static constexpr int kMaxBatch = 1000;
  static constexpr int kConnections = 8;
  // Runs of one batch when Postgres breaks a deadlock (or a serialization failure) by rolling it
  // back.
  static constexpr int kAttempts = 5;

  // `definitions`: every shape of the config; the writable ones authorize writes.
  Writer(std::string dsn, std::vector<std::shared_ptr<const shapes::ShapeDefinition>> definitions,
         WritebackConfig config = {});
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // True when some shape is writable.
  bool enabled() const { return !writable_.empty(); }
  // Creates the schema `shapebridge` and its tables when missing (before the built-in shapes are
  // compiled against the catalog).
  static absl::Status CreateSchema(PgConnection& sql);
  // Installs the field version triggers on the writable tables and checks the rules against the
  // catalog. Call once before Push.
  absl::Status Prepare();
  // Deletes expired violations and forgotten mutation records when the sweep interval has passed
  // since the last sweep, and counts the open violations.
  void Sweep(std::chrono::steady_clock::time_point now);
  // InvalidArgument for a malformed batch (nothing is looked at in Postgres); FailedPrecondition
  // when no shape is writable; the database's error (nothing written) when the transaction fails.
  absl::StatusOr<sync::v1::PushResponse> Push(const nlohmann::json& claims,
                                              const sync::v1::PushRequest& request);

  const WriterStats& stats() const { return stats_; }
  std::vector<RuleStats> rule_stats() const;

 private:
  struct Table;
  struct Rule;
  struct Checked;
  class Batch;

  absl::Status PrepareRules(PgConnection& sql);
  absl::StatusOr<std::unique_ptr<PgConnection>> TakeConnection();
  void ReturnConnection(std::unique_ptr<PgConnection> connection);

  const std::string dsn_;
  const WritebackConfig config_;
  std::vector<std::shared_ptr<const shapes::ShapeDefinition>> writable_;
  std::vector<std::unique_ptr<Table>> tables_;  // the tables of writable shapes
  std::vector<std::unique_ptr<Rule>> rules_;
  WriterStats stats_;
  std::mutex clock_mu_;
  hlc::Clock clock_;  // refuses field timestamps more than a minute ahead

  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<PgConnection>> idle_;
  int open_ = 0;  // connections taken or idle

  std::mutex sweep_mu_;
  std::chrono::steady_clock::time_point last_sweep_{};
};

}  // namespace shapebridge
