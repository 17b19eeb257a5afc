#include "tests/harness/test_postgres.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>

namespace shapebridge::testing {
namespace {

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "test harness: " << message << std::endl;
  std::abort();
}

}  // namespace

TestPostgres& TestPostgres::Get() {
  // One cluster per test process; destroyed (stopped) at exit.
  static TestPostgres instance("");
  return instance;
}

TestPostgres::TestPostgres(const std::string& options) {
  const std::string command = std::string(SHAPEBRIDGE_SOURCE_DIR) +
                              "/ops/testpg start --owner-pid " + std::to_string(getpid()) + " " +
                              options;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) Die("cannot run " + command);
  std::map<std::string, std::string> vars;
  char line[1024];
  while (fgets(line, sizeof(line), pipe) != nullptr) {
    std::string text(line);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    const size_t eq = text.find('=');
    if (eq == std::string::npos) continue;
    std::string value = text.substr(eq + 1);
    if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'') {
      value = value.substr(1, value.size() - 2);
    }
    vars[text.substr(0, eq)] = value;
  }
  if (pclose(pipe) != 0 || !vars.contains("TESTPG_DSN")) Die("ops/testpg start failed");
  dir_ = vars["TESTPG_DIR"];
  dsn_ = vars["TESTPG_DSN"];
  port_ = std::stoi(vars["TESTPG_PORT"]);
}

TestPostgres::~TestPostgres() {
  if (dir_.empty()) return;
  const std::string command =
      std::string(SHAPEBRIDGE_SOURCE_DIR) + "/ops/testpg stop " + dir_ + " >/dev/null 2>&1";
  (void)std::system(command.c_str());
}

std::string TestPostgres::CreateDatabase(const std::string& name) {
  auto conn = ConnectOrDie(dsn_);
  ExecOrDie(*conn, "DROP DATABASE IF EXISTS " + conn->QuoteIdentifier(name) + " WITH (FORCE)");
  ExecOrDie(*conn, "CREATE DATABASE " + conn->QuoteIdentifier(name));
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + name;
}

std::unique_ptr<PgConnection> ConnectOrDie(const std::string& dsn) {
  auto conn = PgConnection::Connect(dsn, PgConnectionKind::kSql, "shapebridge-test");
  if (!conn.ok()) Die(conn.status().ToString());
  return *std::move(conn);
}

PgResult ExecOrDie(PgConnection& conn, const std::string& sql) {
  auto result = conn.Exec(sql);
  if (!result.ok()) Die(result.status().ToString());
  return *std::move(result);
}

std::string QueryValue(PgConnection& conn, const std::string& sql) {
  PgResult result = ExecOrDie(conn, sql);
  if (result.rows() != 1 || result.columns() != 1) Die("expected one value from: " + sql);
  return std::string(result.Get(0, 0));
}

}  // namespace shapebridge::testing
