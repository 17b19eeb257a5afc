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
// versions and the result are recorded with the id. Any database error rolls the whole batch
// back; a batch rolled back to break a deadlock runs again.
//
// "Inside a writable shape the token allows": there is a binding of the shape's parameters that
// the token permits (TokenBindings) under which the shape's WHERE holds for the row.
// CompileDefinition refuses writable shapes with request parameters that no claim limits.
//
// Threads: Push may be called from any number of threads; each call takes a connection of a pool
// of kConnections (waiting when all are busy).

#include <atomic>
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

struct WriterStats {
  std::atomic<uint64_t> batches{0};          // Push calls that committed
  std::atomic<uint64_t> failed_batches{0};   // Push calls rolled back by a database error
  std::atomic<uint64_t> retried_batches{0};  // runs rolled back by a deadlock, run again
  std::atomic<uint64_t> applied{0};
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
  Writer(std::string dsn, std::vector<std::shared_ptr<const shapes::ShapeDefinition>> definitions);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // True when some shape is writable.
  bool enabled() const { return !writable_.empty(); }
  // Creates the schema `shapebridge` and its table of mutation ids when missing. Call once before
  // Push.
  absl::Status Prepare();
  // InvalidArgument for a malformed batch (nothing is looked at in Postgres); FailedPrecondition
  // when no shape is writable; the database's error (nothing written) when the transaction fails.
  absl::StatusOr<sync::v1::PushResponse> Push(const nlohmann::json& claims,
                                              const sync::v1::PushRequest& request);

  const WriterStats& stats() const { return stats_; }

 private:
  struct Table;
  struct Checked;
  class Batch;

  absl::StatusOr<std::unique_ptr<PgConnection>> TakeConnection();
  void ReturnConnection(std::unique_ptr<PgConnection> connection);

  const std::string dsn_;
  std::vector<std::shared_ptr<const shapes::ShapeDefinition>> writable_;
  std::vector<std::unique_ptr<Table>> tables_;  // the tables of writable shapes
  WriterStats stats_;
  std::mutex clock_mu_;
  hlc::Clock clock_;  // refuses field timestamps more than a minute ahead

  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<PgConnection>> idle_;
  int open_ = 0;  // connections taken or idle
};

}  // namespace shapebridge
