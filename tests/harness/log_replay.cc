#include "tests/harness/log_replay.h"

#include "gtest/gtest.h"
#include "tests/harness/test_postgres.h"

namespace shapebridge::testing {

ReplayedLog ReplayLog(const std::string& dir) {
  ReplayedLog out;
  auto reader = EmbeddedLogReader::Open(dir);
  if (!reader.ok()) {
    ADD_FAILURE() << reader.status();
    return out;
  }
  while (true) {
    auto entry = (*reader)->Next();
    if (!entry.ok()) {
      ADD_FAILURE() << entry.status();
      return out;
    }
    if (!entry->has_value()) break;
    if (auto* reset = std::get_if<LoggedReset>(&**entry)) {
      out.resets.push_back(*reset);
      continue;
    }
    auto& txn = std::get<LoggedTransaction>(**entry);
    for (const auto& c : txn.changes) {
      if (auto* t = std::get_if<TruncateChange>(&c)) {
        for (RelationId id : t->relations) {
          const RelationInfo* r = (*reader)->relation(id);
          if (r != nullptr) out.tables[r->QualifiedName()].clear();
        }
        continue;
      }
      const auto& change = std::get<RowChange>(c);
      const RelationInfo* r = (*reader)->relation(change.relation);
      if (r == nullptr) {
        ADD_FAILURE() << "change for undescribed relation " << change.relation.value();
        continue;
      }
      out.relations[r->id] = *r;
      auto& rows = out.tables[r->QualifiedName()];
      if (change.op == ChangeOp::kDelete) {
        rows.erase(change.old_values.at(0).DebugString());
        continue;
      }
      if (change.op == ChangeOp::kUpdate && !change.old_values.empty()) {
        rows.erase(change.old_values.at(0).DebugString());
      }
      std::vector<Value> row = change.new_values;
      for (size_t i = 0; i < row.size(); ++i) {
        if (row[i].is_unchanged()) {
          EXPECT_FALSE(change.old_values.empty()) << "unchanged TOAST value without an old row";
          if (i < change.old_values.size()) row[i] = change.old_values[i];
        }
      }
      rows[row.at(0).DebugString()] = std::move(row);
    }
    out.transactions.push_back(std::move(txn));
  }
  return out;
}

std::map<std::string, std::vector<Value>> TableRows(const std::string& dsn,
                                                    const std::string& table) {
  auto conn = ConnectOrDie(dsn);
  // Column types, to type the text values the same way the replication path does.
  PgResult types =
      ExecOrDie(*conn, "SELECT atttypid FROM pg_attribute WHERE attrelid = '" + table +
                           "'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum");
  PgResult rows = ExecOrDie(*conn, "SELECT * FROM " + table);
  std::map<std::string, std::vector<Value>> out;
  for (int r = 0; r < rows.rows(); ++r) {
    std::vector<Value> row;
    for (int c = 0; c < rows.columns(); ++c) {
      if (rows.IsNull(r, c)) {
        row.push_back(Value::Null());
        continue;
      }
      const uint32_t oid = static_cast<uint32_t>(std::stoul(std::string(types.Get(c, 0))));
      auto value = ParseTextValue(oid, false, rows.Get(r, c));
      EXPECT_TRUE(value.ok()) << value.status();
      row.push_back(value.ok() ? *value : Value::Null());
    }
    out[row.at(0).DebugString()] = std::move(row);
  }
  return out;
}

}  // namespace shapebridge::testing
