#pragma once

#include <map>
#include <string>
#include <vector>

#include "bridge/log/embedded_log.h"

namespace shapebridge::testing {

struct ReplayedLog {
  std::vector<LoggedTransaction> transactions;
  std::vector<LoggedReset> resets;
  // table → primary key text (first column) → row, as replaying every change gives it.
  std::map<std::string, std::map<std::string, std::vector<Value>>> tables;
  std::map<RelationId, RelationInfo> relations;
};

// Reads the whole log in `dir` and replays it: inserts and updates set rows (an unchanged TOAST
// value keeps the old one), deletes remove them, truncates empty the table. Fails the calling test
// (ADD_FAILURE) on a read error.
ReplayedLog ReplayLog(const std::string& dir);

// Rows of `table` in Postgres, keyed like ReplayedLog::tables, each value as the log would type it.
std::map<std::string, std::vector<Value>> TableRows(const std::string& dsn,
                                                    const std::string& table);

}  // namespace shapebridge::testing
