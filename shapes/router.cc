#include "shapes/router.h"

#include <algorithm>
#include <bit>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace shapebridge::shapes {
namespace {

// The value kind of an indexable column: one whose values are equal exactly when the WHERE
// language's `=` says so. Not float or numeric (1.0 = 1, -0 = 0), not bpchar (trailing blanks).
std::optional<ValueKind> IndexableKind(const TableColumn& column) {
  if (column.is_array) return std::nullopt;
  switch (column.type_oid) {
    case pgtype::kInt2:
    case pgtype::kInt4:
    case pgtype::kInt8:
    case pgtype::kOid:
      return ValueKind::kInt;
    case pgtype::kText:
    case pgtype::kVarchar:
    case pgtype::kName:
      return ValueKind::kText;
    case pgtype::kUuid:
      return ValueKind::kUuid;
    case pgtype::kBool:
      return ValueKind::kBool;
    case pgtype::kDate:
      return ValueKind::kDate;
    case pgtype::kTimestamp:
      return ValueKind::kTimestamp;
    case pgtype::kTimestampTz:
      return ValueKind::kTimestampTz;
    default:
      return std::nullopt;
  }
}

bool IsCanonicalUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = s[i];
    if (dash != (c == '-')) return false;
    if (!dash && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Adds the key value of `literal` for a column of `kind`; false when it cannot be one (then the
// conjunct is not indexable). A null literal is never equal to anything: nothing is added.
bool AddKeyValue(const Value& literal, ValueKind kind, std::vector<Value>* out) {
  if (literal.is_null()) return true;
  if (literal.kind() != kind) return false;
  if (kind == ValueKind::kUuid) {
    Value lower = Value::String(ValueKind::kUuid, absl::AsciiStrToLower(literal.string_value()));
    if (!IsCanonicalUuid(lower.string_value())) return false;
    out->push_back(std::move(lower));
    return true;
  }
  out->push_back(literal);
  return true;
}

// Splits the text form of a one-dimensional array ("{1,2,NULL}", "{\"a b\",c}") into its
// elements (nullopt for NULL). nullopt when the text is not such an array.
std::optional<std::vector<std::optional<std::string>>> ArrayElements(const std::string& text) {
  std::vector<std::optional<std::string>> out;
  size_t i = 0;
  auto skip_space = [&] {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n')) ++i;
  };
  skip_space();
  if (i >= text.size() || text[i] != '{') return std::nullopt;
  ++i;
  skip_space();
  if (i < text.size() && text[i] == '}') {
    ++i;
    skip_space();
    if (i != text.size()) return std::nullopt;
    return out;
  }
  while (true) {
    skip_space();
    if (i >= text.size()) return std::nullopt;
    std::string element;
    bool quoted = false;
    if (text[i] == '"') {
      quoted = true;
      ++i;
      while (true) {
        if (i >= text.size()) return std::nullopt;
        if (text[i] == '\\') {
          if (i + 1 >= text.size()) return std::nullopt;
          element.push_back(text[i + 1]);
          i += 2;
        } else if (text[i] == '"') {
          ++i;
          break;
        } else {
          element.push_back(text[i++]);
        }
      }
    } else {
      while (i < text.size() && text[i] != ',' && text[i] != '}') {
        if (text[i] == '{' || text[i] == '"') return std::nullopt;  // nested or malformed
        if (text[i] == '\\') {
          if (i + 1 >= text.size()) return std::nullopt;
          element.push_back(text[i + 1]);
          i += 2;
        } else {
          element.push_back(text[i++]);
        }
      }
      while (!element.empty() && (element.back() == ' ' || element.back() == '\t')) {
        element.pop_back();
      }
      if (element.empty()) return std::nullopt;
    }
    if (!quoted && absl::AsciiStrToUpper(element) == "NULL") {
      out.push_back(std::nullopt);
    } else {
      out.push_back(std::move(element));
    }
    skip_space();
    if (i >= text.size()) return std::nullopt;
    if (text[i] == ',') {
      ++i;
      continue;
    }
    if (text[i] != '}') return std::nullopt;
    ++i;
    skip_space();
    if (i != text.size()) return std::nullopt;
    return out;
  }
}

struct IndexChoice {
  const Expr* conjunct = nullptr;
  int column = -1;
  std::vector<Value> values;  // distinct
};

// The index key of one conjunct, when it is an indexable equality.
std::optional<IndexChoice> IndexableConjunct(const Expr& e, const TableSchema& table) {
  if (e.kind != Expr::Kind::kOp || e.args.empty()) return std::nullopt;
  if (e.op != Op::kEq && e.op != Op::kIn && e.op != Op::kEqAny) return std::nullopt;
  const Expr* column = e.args[0].get();
  size_t first_value = 1;
  if (e.op == Op::kEq && e.args.size() == 2 && column->kind != Expr::Kind::kColumn) {
    column = e.args[1].get();  // literal = column
    first_value = 0;
  }
  if (column->kind != Expr::Kind::kColumn || column->column < 0 ||
      column->column >= static_cast<int>(table.columns.size())) {
    return std::nullopt;
  }
  const TableColumn& info = table.columns[column->column];
  const std::optional<ValueKind> kind = IndexableKind(info);
  if (!kind) return std::nullopt;
  IndexChoice choice{.conjunct = &e, .column = column->column};
  if (e.op == Op::kEq) {
    if (e.args.size() != 2) return std::nullopt;
    const Expr& literal = *e.args[first_value];
    if (literal.kind != Expr::Kind::kLiteral) return std::nullopt;
    if (!AddKeyValue(literal.literal, *kind, &choice.values)) return std::nullopt;
  } else if (e.op == Op::kIn) {
    for (size_t i = 1; i < e.args.size(); ++i) {
      const Expr& literal = *e.args[i];
      if (literal.kind != Expr::Kind::kLiteral) return std::nullopt;
      if (!AddKeyValue(literal.literal, *kind, &choice.values)) return std::nullopt;
    }
  } else {
    if (e.args.size() != 2) return std::nullopt;
    const Expr& literal = *e.args[1];
    if (literal.kind != Expr::Kind::kLiteral) return std::nullopt;
    if (!literal.literal.is_null()) {
      if (literal.literal.kind() != ValueKind::kArray) return std::nullopt;
      auto elements = ArrayElements(literal.literal.string_value());
      if (!elements) return std::nullopt;
      for (const auto& element : *elements) {
        if (!element) continue;
        auto value = ParseTextValue(info.type_oid, false, *element);
        if (!value.ok()) return std::nullopt;
        if (!AddKeyValue(*value, *kind, &choice.values)) return std::nullopt;
      }
    }
  }
  std::vector<Value> distinct;
  for (Value& v : choice.values) {
    if (std::find(distinct.begin(), distinct.end(), v) == distinct.end()) {
      distinct.push_back(std::move(v));
    }
  }
  choice.values = std::move(distinct);
  return choice;
}

// The indexable conjunct with the fewest values, or nullopt (the instance goes to the scan list).
std::optional<IndexChoice> ChooseIndex(const ShapeInstance& instance) {
  if (instance.predicate() == nullptr) return std::nullopt;
  std::optional<IndexChoice> best;
  for (const Expr* conjunct : Conjuncts(*instance.predicate())) {
    std::optional<IndexChoice> choice = IndexableConjunct(*conjunct, instance.definition().table);
    if (choice && (!best || choice->values.size() < best->values.size())) {
      best = std::move(choice);
    }
  }
  return best;
}

// The predicate without the indexed conjunct (which the index lookup decides exactly): null when
// nothing remains.
std::unique_ptr<Expr> Residual(const Expr* predicate, const Expr* indexed) {
  if (predicate == nullptr) return nullptr;
  std::vector<std::unique_ptr<Expr>> rest;
  for (const Expr* conjunct : Conjuncts(*predicate)) {
    if (conjunct != indexed) rest.push_back(conjunct->Clone());
  }
  if (rest.empty()) return nullptr;
  if (rest.size() == 1) return std::move(rest[0]);
  auto and_expr = std::make_unique<Expr>();
  and_expr->kind = Expr::Kind::kOp;
  and_expr->op = Op::kAnd;
  and_expr->type = SqlType{.id = TypeId::kBool};
  and_expr->position = rest[0]->position;
  and_expr->args = std::move(rest);
  return and_expr;
}

void CollectColumns(const Expr& expr, std::vector<int>* out) {
  if (expr.kind == Expr::Kind::kColumn &&
      std::find(out->begin(), out->end(), expr.column) == out->end()) {
    out->push_back(expr.column);
  }
  for (const auto& arg : expr.args) CollectColumns(*arg, out);
}

// A hash map from int64 keys, for the index of integer-like columns: open addressing with linear
// probing in one array, so a lookup usually touches one cache line (std::unordered_map touches
// the bucket array, the node and its successor). Capacity is a power of two, the load at most
// 3/4; erasing shifts the following entries back (no tombstones).
template <typename V>
class FlatIntMap {
 public:
  V* Find(int64_t key) {
    if (size_ == 0) return nullptr;
    for (size_t i = Home(key);; i = (i + 1) & mask_) {
      Entry& e = entries_[i];
      if (!e.used) return nullptr;
      if (e.key == key) return &e.value;
    }
  }
  // The value of `key`, inserted (default) when missing. Valid until the next insertion.
  V& FindOrInsert(int64_t key) {
    if ((size_ + 1) * 4 > entries_.size() * 3) Grow();
    for (size_t i = Home(key);; i = (i + 1) & mask_) {
      Entry& e = entries_[i];
      if (!e.used) {
        e.used = true;
        e.key = key;
        ++size_;
        return e.value;
      }
      if (e.key == key) return e.value;
    }
  }
  void Erase(int64_t key) {
    if (size_ == 0) return;
    size_t i = Home(key);
    while (true) {
      if (!entries_[i].used) return;
      if (entries_[i].key == key) break;
      i = (i + 1) & mask_;
    }
    // Move back every following entry of the run whose home is not in (i, j].
    for (size_t j = (i + 1) & mask_; entries_[j].used; j = (j + 1) & mask_) {
      const size_t home = Home(entries_[j].key);
      const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (stays) continue;
      entries_[i] = std::move(entries_[j]);
      i = j;
    }
    entries_[i] = Entry{};
    --size_;
  }

 private:
  struct alignas(64) Entry {  // one cache line for the index's buckets
    int64_t key = 0;
    bool used = false;
    V value{};
  };
  size_t Home(int64_t key) const {
    return static_cast<size_t>((static_cast<uint64_t>(key) * 0x9e3779b97f4a7c15ULL) >> shift_);
  }
  void Grow() {
    std::vector<Entry> old = std::move(entries_);
    const size_t capacity = std::max<size_t>(16, old.size() * 2);
    entries_ = std::vector<Entry>(capacity);
    mask_ = capacity - 1;
    shift_ = 64 - std::countr_zero(capacity);
    size_ = 0;
    for (Entry& e : old) {
      if (e.used) FindOrInsert(e.key) = std::move(e.value);
    }
  }

  std::vector<Entry> entries_;
  size_t size_ = 0;
  size_t mask_ = 0;
  int shift_ = 63;
};

}  // namespace

std::string_view EntryKindName(EntryKind kind) {
  switch (kind) {
    case EntryKind::kInsert:
      return "insert";
    case EntryKind::kUpdate:
      return "update";
    case EntryKind::kDelete:
      return "delete";
    case EntryKind::kMustRefetch:
      return "must_refetch";
  }
  return "unknown";
}

// The fields Route reads come first, to share a cache line.
struct alignas(64) Router::Slot {
  // Candidate bookkeeping of the current Route (valid when epoch == the router's epoch_): the
  // index of the slot's entry in candidates_.
  uint64_t epoch = 0;
  size_t candidate = 0;
  InstanceId id;
  const ShapeDefinition* definition = nullptr;  // instance->definition()
  // What remains to evaluate once the index matched: the predicate without the indexed conjunct
  // (the whole predicate for the scan list); null when nothing remains.
  std::unique_ptr<Expr> residual;
  std::vector<int> residual_columns;  // the columns `residual` reads

  // Shared with the subscriptions that serve the instance.
  std::shared_ptr<const ShapeInstance> instance;
  Table* table = nullptr;
  int references = 1;
  int index_column = -1;  // -1: in the scan list
  std::vector<Value> index_values;
  // Positions in the table's `all` and (index_column == -1) `scan` lists.
  size_t all_position = 0;
  size_t scan_position = 0;
};

struct Router::Table {
  // The instances keyed by one value; the first inline (most keys have one instance).
  struct Bucket {
    Slot* first = nullptr;
    // Copies of first's fields, so that the common case (one instance per key value, nothing
    // left to evaluate after the key) reads no other memory.
    InstanceId first_id;
    const ShapeDefinition* first_definition = nullptr;
    bool first_decided = false;                // first has one key value and no residual
    std::unique_ptr<std::vector<Slot*>> rest;  // null until a second instance shares the key

    void SetFirst(Slot* slot) {
      first = slot;
      first_id = slot->id;
      first_definition = slot->definition;
      first_decided = slot->residual == nullptr && slot->index_values.size() == 1;
    }
  };
  // The keys of one column, by the value's integer (int, bool, date, timestamps) or string (text,
  // uuid) representation: the column's values all have one kind (or are null).
  struct ColumnIndex {
    int column = 0;
    ValueKind kind = ValueKind::kNull;
    size_t slots = 0;
    FlatIntMap<Bucket> ints;
    std::unordered_map<std::string, Bucket> strings;

    bool by_string() const { return kind == ValueKind::kText || kind == ValueKind::kUuid; }
    Bucket* Find(const Value& v) {
      if (v.kind() != kind) return nullptr;
      if (by_string()) {
        auto it = strings.find(v.string_value());
        return it == strings.end() ? nullptr : &it->second;
      }
      return ints.Find(v.int_value());
    }
    Bucket& Insert(const Value& v) {
      return by_string() ? strings[v.string_value()] : ints.FindOrInsert(v.int_value());
    }
    void Erase(const Value& v) {
      if (by_string()) {
        strings.erase(v.string_value());
      } else {
        ints.Erase(v.int_value());
      }
    }
  };
  std::string name;  // "schema.table"
  // The columns (name, type OID) the definitions were compiled against.
  std::vector<TableColumn> columns;
  std::vector<ColumnIndex> indexes;
  std::vector<Slot*> scan;
  std::vector<Slot*> all;
};

// An instance to evaluate for the current change.
struct Router::Candidate {
  const Slot* slot = nullptr;
  InstanceId id;
  const ShapeDefinition* definition = nullptr;
  bool decided = false;  // no residual: the key hits decide (`slot` is not read)
  bool old_hit = false;  // the old row's value is a key of the instance (always for the scan list)
  bool new_hit = false;
};

Router::Router() = default;
Router::~Router() = default;

absl::Status Router::AddInstance(std::shared_ptr<const ShapeInstance> instance) {
  // The index key and the residual are worked out before taking the lock.
  std::optional<IndexChoice> choice = ChooseIndex(*instance);
  const TableSchema& schema = instance->definition().table;
  std::string table_name = schema.QualifiedName();
  auto slot = std::make_unique<Slot>();
  slot->id = instance->id();
  slot->definition = &instance->definition();
  slot->residual = Residual(instance->predicate(), choice ? choice->conjunct : nullptr);
  if (slot->residual) CollectColumns(*slot->residual, &slot->residual_columns);
  if (choice) {
    slot->index_column = choice->column;
    slot->index_values = std::move(choice->values);
  }
  slot->instance = std::move(instance);

  std::lock_guard lock(mu_);
  auto existing = slots_.find(slot->id);
  if (existing != slots_.end()) {
    ++existing->second->references;
    return absl::OkStatus();
  }
  auto [it, created] = tables_.try_emplace(table_name);
  if (created) {
    it->second = std::make_unique<Table>();
    it->second->name = table_name;
    it->second->columns = schema.columns;
  } else {
    const auto& columns = it->second->columns;
    const bool same = std::equal(columns.begin(), columns.end(), schema.columns.begin(),
                                 schema.columns.end(), [](const auto& a, const auto& b) {
                                   return a.name == b.name && a.type_oid == b.type_oid &&
                                          a.is_array == b.is_array;
                                 });
    if (!same) {
      return absl::FailedPreconditionError(
          absl::StrCat("shape ", slot->definition->name, ": compiled against other columns of ",
                       table_name, " than the shapes already routed; recompile the definitions"));
    }
  }
  Table& table = *it->second;
  slot->table = &table;
  if (slot->index_column >= 0) {
    auto index = std::find_if(table.indexes.begin(), table.indexes.end(),
                              [&](const auto& ix) { return ix.column == slot->index_column; });
    if (index == table.indexes.end()) {
      // Every key value has the column's kind (IndexableConjunct checks it).
      table.indexes.push_back(
          Table::ColumnIndex{.column = slot->index_column,
                             .kind = *IndexableKind(schema.columns[slot->index_column])});
      index = table.indexes.end() - 1;
    }
    ++index->slots;
    for (const Value& v : slot->index_values) {
      Table::Bucket& bucket = index->Insert(v);
      if (bucket.first == nullptr) {
        bucket.SetFirst(slot.get());
      } else {
        if (!bucket.rest) bucket.rest = std::make_unique<std::vector<Slot*>>();
        bucket.rest->push_back(slot.get());
      }
    }
  } else {
    slot->scan_position = table.scan.size();
    table.scan.push_back(slot.get());
    stats_.scan_instances.fetch_add(1, std::memory_order_relaxed);
  }
  slot->all_position = table.all.size();
  table.all.push_back(slot.get());
  slots_.emplace(slot->id, std::move(slot));
  stats_.instances.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

bool Router::RemoveInstance(InstanceId id) {
  std::unique_ptr<Slot> removed;  // destroyed after the lock is released
  {
    std::lock_guard lock(mu_);
    auto it = slots_.find(id);
    if (it == slots_.end()) return false;
    Slot* slot = it->second.get();
    if (--slot->references > 0) return true;
    Table& table = *slot->table;
    auto erase_from = [slot](std::vector<Slot*>& v) {
      auto pos = std::find(v.begin(), v.end(), slot);
      if (pos != v.end()) {
        *pos = v.back();
        v.pop_back();
      }
    };
    if (slot->index_column >= 0) {
      auto index = std::find_if(table.indexes.begin(), table.indexes.end(),
                                [&](const auto& ix) { return ix.column == slot->index_column; });
      for (const Value& v : slot->index_values) {
        Table::Bucket* bucket = index->Find(v);
        if (bucket->first == slot) {
          if (!bucket->rest || bucket->rest->empty()) {
            index->Erase(v);
          } else {
            bucket->SetFirst(bucket->rest->back());
            bucket->rest->pop_back();
          }
        } else {
          erase_from(*bucket->rest);
        }
      }
      if (--index->slots == 0) table.indexes.erase(index);
    } else {
      Slot* moved = table.scan.back();
      table.scan[slot->scan_position] = moved;
      moved->scan_position = slot->scan_position;
      table.scan.pop_back();
      stats_.scan_instances.fetch_sub(1, std::memory_order_relaxed);
    }
    Slot* moved = table.all.back();
    table.all[slot->all_position] = moved;
    moved->all_position = slot->all_position;
    table.all.pop_back();
    if (table.all.empty()) {
      const std::string name = table.name;  // erasing destroys `table`
      tables_.erase(name);
    }
    removed = std::move(it->second);
    slots_.erase(it);
    stats_.instances.fetch_sub(1, std::memory_order_relaxed);
  }
  return true;
}

bool Router::Contains(InstanceId id) const {
  std::lock_guard lock(mu_);
  return slots_.contains(id);
}

bool Router::MatchesOrCount(const Expr& expr, const std::vector<Value>& row) {
  absl::StatusOr<bool> match = Matches(expr, row);
  if (!match.ok()) {
    // Data in a row can make a valid predicate fail (an overflow, say). The row then does not
    // belong to the instance, as a failing WHERE would not return it from Postgres either.
    stats_.predicate_errors.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return *match;
}

void Router::Evaluate(const Candidate& candidate, const std::vector<Value>* old_row,
                      const std::vector<Value>* new_row, std::vector<ShapeEntry>* out) {
  const ShapeDefinition& def = *candidate.definition;
  const bool old_hit = candidate.old_hit && old_row != nullptr;
  const bool new_hit = candidate.new_hit && new_row != nullptr;
  bool old_match = old_hit;
  bool new_match = new_hit;
  const Expr* residual = candidate.decided ? nullptr : candidate.slot->residual.get();
  if (residual != nullptr) {
    if (old_hit) old_match = MatchesOrCount(*residual, *old_row);
    if (new_hit) {
      // The residual's result cannot change when none of the columns it reads did.
      const std::vector<int>& columns = candidate.slot->residual_columns;
      const bool same_inputs = old_hit && std::all_of(columns.begin(), columns.end(), [&](int c) {
                                 return (*old_row)[c] == (*new_row)[c];
                               });
      new_match = same_inputs ? old_match : MatchesOrCount(*residual, *new_row);
    }
  }
  auto key_of = [&](const std::vector<Value>& row) {
    std::vector<Value> key;
    key.reserve(def.key.size());
    for (int k : def.key) key.push_back(row[k]);
    return key;
  };
  auto emit_insert = [&] {
    ShapeEntry& e = out->emplace_back();
    e.instance = candidate.id;
    e.kind = EntryKind::kInsert;
    e.key = key_of(*new_row);
    e.fields.reserve(def.columns.size());
    for (size_t i = 0; i < def.columns.size(); ++i) {
      e.fields.push_back(
          FieldValue{.column = static_cast<int>(i), .value = (*new_row)[def.columns[i]]});
    }
  };
  auto emit_delete = [&] {
    ShapeEntry& e = out->emplace_back();
    e.instance = candidate.id;
    e.kind = EntryKind::kDelete;
    e.key = key_of(*old_row);
  };
  if (new_match && !old_match) {
    emit_insert();
  } else if (old_match && !new_match) {
    emit_delete();
  } else if (old_match && new_match) {
    bool key_changed = false;
    for (int k : def.key) key_changed |= !((*old_row)[k] == (*new_row)[k]);
    if (key_changed) {
      emit_delete();
      emit_insert();
      return;
    }
    size_t changed = 0;
    for (int c : def.columns) changed += (*old_row)[c] == (*new_row)[c] ? 0 : 1;
    if (changed == 0) return;
    ShapeEntry& e = out->emplace_back();
    e.instance = candidate.id;
    e.kind = EntryKind::kUpdate;
    e.key = key_of(*new_row);
    e.fields.reserve(changed);
    for (size_t i = 0; i < def.columns.size(); ++i) {
      const int c = def.columns[i];
      if (!((*old_row)[c] == (*new_row)[c])) {
        e.fields.push_back(FieldValue{.column = static_cast<int>(i), .value = (*new_row)[c]});
      }
    }
  }
}

void Router::RefetchAll(const Table& table, std::vector<ShapeEntry>* out) {
  for (const Slot* slot : table.all) {
    out->push_back(ShapeEntry{.instance = slot->id, .kind = EntryKind::kMustRefetch});
  }
  stats_.entries.fetch_add(table.all.size(), std::memory_order_relaxed);
  stats_.must_refetch.fetch_add(table.all.size(), std::memory_order_relaxed);
}

void Router::Route(const RelationInfo& relation, const RowChange& change,
                   std::vector<ShapeEntry>* out) {
  std::lock_guard lock(mu_);
  table_key_.assign(relation.schema);
  table_key_.push_back('.');
  table_key_.append(relation.name);
  auto it = tables_.find(table_key_);
  if (it == tables_.end()) return;
  Table& table = *it->second;
  stats_.changes.fetch_add(1, std::memory_order_relaxed);

  // The definitions index rows by the catalog's column order; a relation with other columns
  // (the table was altered) cannot be routed until they are recompiled.
  bool same_columns = relation.columns.size() == table.columns.size();
  for (size_t i = 0; same_columns && i < table.columns.size(); ++i) {
    same_columns = relation.columns[i].name == table.columns[i].name &&
                   relation.columns[i].type_oid == table.columns[i].type_oid;
  }
  const size_t width = table.columns.size();
  const bool has_old = change.op != ChangeOp::kInsert;
  const bool has_new = change.op != ChangeOp::kDelete;
  if (!same_columns || (has_new && change.new_values.size() != width) ||
      (has_old && !change.old_values.empty() && change.old_values.size() != width)) {
    stats_.schema_mismatches.fetch_add(1, std::memory_order_relaxed);
    RefetchAll(table, out);
    return;
  }
  // Without the full old row neither move-outs nor the instances that held the row can be
  // found (REPLICA IDENTITY FULL gives it; the bridge sets it on shape tables).
  if (has_old && (change.old_values.empty() || change.old_is_key_only ||
                  std::any_of(change.old_values.begin(), change.old_values.end(),
                              [](const Value& v) { return v.is_unchanged(); }))) {
    stats_.missing_old_rows.fetch_add(1, std::memory_order_relaxed);
    RefetchAll(table, out);
    return;
  }
  const std::vector<Value>* old_row = has_old ? &change.old_values : nullptr;
  const std::vector<Value>* new_row = has_new ? &change.new_values : nullptr;
  // Unchanged TOAST values of the new row are the old row's values.
  if (has_new && std::any_of(change.new_values.begin(), change.new_values.end(),
                             [](const Value& v) { return v.is_unchanged(); })) {
    if (old_row == nullptr) {  // an INSERT cannot have them; the row is unknown
      stats_.missing_old_rows.fetch_add(1, std::memory_order_relaxed);
      RefetchAll(table, out);
      return;
    }
    filled_row_ = change.new_values;
    for (size_t i = 0; i < width; ++i) {
      if (filled_row_[i].is_unchanged()) filled_row_[i] = (*old_row)[i];
    }
    new_row = &filled_row_;
  }

  // Candidates: the instances keyed by a value of the old or of the new row, each once, with
  // which of the two rows hit its key.
  ++epoch_;
  candidates_.clear();
  auto hit = [&](Slot* slot, bool old_side, bool new_side) {
    if (slot->epoch != epoch_) {
      slot->epoch = epoch_;
      slot->candidate = candidates_.size();
      candidates_.push_back(
          Candidate{.slot = slot, .id = slot->id, .definition = slot->definition});
    }
    Candidate& candidate = candidates_[slot->candidate];
    candidate.old_hit |= old_side;
    candidate.new_hit |= new_side;
  };
  auto look_up = [&](Table::ColumnIndex& index, const Value& v, bool old_side, bool new_side) {
    Table::Bucket* bucket = index.Find(v);
    if (bucket == nullptr) return;
    if (bucket->first_decided) {
      // One key value: no other lookup of this change can find it again.
      candidates_.push_back(Candidate{.slot = bucket->first,
                                      .id = bucket->first_id,
                                      .definition = bucket->first_definition,
                                      .decided = true,
                                      .old_hit = old_side,
                                      .new_hit = new_side});
    } else {
      hit(bucket->first, old_side, new_side);
    }
    if (bucket->rest) {
      for (Slot* slot : *bucket->rest) hit(slot, old_side, new_side);
    }
  };
  for (Table::ColumnIndex& index : table.indexes) {
    const int c = index.column;
    if (old_row != nullptr && new_row != nullptr && (*old_row)[c] == (*new_row)[c]) {
      look_up(index, (*old_row)[c], true, true);
    } else {
      if (old_row != nullptr) look_up(index, (*old_row)[c], true, false);
      if (new_row != nullptr) look_up(index, (*new_row)[c], false, true);
    }
  }
  stats_.candidates.fetch_add(candidates_.size(), std::memory_order_relaxed);
  stats_.scanned.fetch_add(table.scan.size(), std::memory_order_relaxed);
  const size_t before = out->size();
  for (const Candidate& candidate : candidates_) Evaluate(candidate, old_row, new_row, out);
  for (const Slot* slot : table.scan) {
    Evaluate(Candidate{.slot = slot,
                       .id = slot->id,
                       .definition = slot->definition,
                       .old_hit = true,
                       .new_hit = true},
             old_row, new_row, out);
  }
  stats_.entries.fetch_add(out->size() - before, std::memory_order_relaxed);
}

void Router::RouteTruncate(const RelationInfo& relation, std::vector<ShapeEntry>* out) {
  std::lock_guard lock(mu_);
  auto it = tables_.find(relation.QualifiedName());
  if (it == tables_.end()) return;
  RefetchAll(*it->second, out);
}

}  // namespace shapebridge::shapes
