#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bridge/common/pg.h"

namespace shapebridge::testing {

// The throwaway PostgreSQL 15 of this test process, started by ops/testpg on first use and
// stopped and removed when the process exits (a watchdog removes it also after a crash).
class TestPostgres {
 public:
  static TestPostgres& Get();

  // DSN of the `postgres` database.
  const std::string& dsn() const { return dsn_; }
  int port() const { return port_; }

  // Creates a fresh database and returns its DSN: one per test keeps tests independent.
  std::string CreateDatabase(const std::string& name);

  // Another cluster, for tests that need other settings; `options` go to ops/testpg start
  // (e.g. "--wal-level replica"). Stopped and removed when destroyed.
  explicit TestPostgres(const std::string& options);
  TestPostgres(const TestPostgres&) = delete;
  TestPostgres& operator=(const TestPostgres&) = delete;
  ~TestPostgres();

 private:
  std::string dir_;
  std::string dsn_;
  int port_ = 0;
};

// Connects or aborts the test.
std::unique_ptr<PgConnection> ConnectOrDie(const std::string& dsn);
// Runs SQL or aborts the test with the server's message.
PgResult ExecOrDie(PgConnection& conn, const std::string& sql);
// The single value of a one-row, one-column query.
std::string QueryValue(PgConnection& conn, const std::string& sql);

}  // namespace shapebridge::testing
