#include "shapes/router.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <optional>
#include <string_view>
#include <type_traits>
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

}  // namespace

namespace router_internal {

// An entry of a column index: the instances whose key includes one value. The first is inline
// (most values key one instance), with what routing needs of it when the key alone decides it,
// so that such a lookup reads nothing but this entry. 24 bytes, so that an index of 100,000
// values stays near 4 MB, small enough to stay in cache.
struct Bucket {
  static constexpr uint32_t kMoved = ~uint32_t{0};
  static constexpr uint32_t kSolo = uint32_t{1} << 31;

  InstanceId first_id;  // the first instance's id
  // The first instance's slot number + 1; 0 marks an unused map entry, kMoved an entry already
  // moved to the map's grown array.
  uint32_t first = 0;
  // kSolo | definition number: the first is the only instance with the value, has no other key
  // value and nothing to evaluate after the key. Otherwise the number + 1 of the list of the other
  // instances with the value (0: there are none).
  uint32_t aux = 0;

  bool solo() const { return (aux & kSolo) != 0; }
  uint32_t definition() const { return aux & ~kSolo; }
  uint32_t rest() const { return solo() ? 0 : aux; }
};
static_assert(sizeof(Bucket) == 24);

}  // namespace router_internal

namespace {

using router_internal::Bucket;

uint64_t MixInt(int64_t key) { return static_cast<uint64_t>(key) * 0x9e3779b97f4a7c15ULL; }

// The entries of the two kinds of index: integer-like values (int, bool, date, timestamps) are
// their own key; text and uuid values are keyed by a view of the string the first instance's slot
// holds, with its hash. All-zero bytes are an unused entry.
template <typename Key>
struct MapEntry;
template <>
struct MapEntry<int64_t> {
  int64_t key;
  Bucket value;
  static uint64_t Hash(int64_t key) { return MixInt(key); }
  uint64_t hash() const { return MixInt(key); }
  void Set(int64_t k, uint64_t) { key = k; }
};
template <>
struct MapEntry<std::string_view> {
  uint64_t stored_hash;
  std::string_view key;
  Bucket value;
  static uint64_t Hash(std::string_view key) {
    return MixInt(static_cast<int64_t>(std::hash<std::string_view>{}(key)));
  }
  uint64_t hash() const { return stored_hash; }
  void Set(std::string_view k, uint64_t h) {
    key = k;
    stored_hash = h;
  }
};
static_assert(sizeof(MapEntry<int64_t>) == 32);

// A zero-filled array of entries. Large ones come straight from mmap: zero pages that the kernel
// fills in as they are touched, so allocating one costs the same at any size, and placed on
// transparent huge pages where the kernel allows it (an index is read at random).
template <typename Entry>
class EntryArray {
 public:
  EntryArray() = default;
  explicit EntryArray(size_t capacity) : capacity_(capacity), bytes_(capacity * sizeof(Entry)) {
    static_assert(std::is_trivially_copyable_v<Entry>);
    if (bytes_ >= kMapThreshold) {
      void* memory =
          mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (memory == MAP_FAILED) throw std::bad_alloc();
      madvise(memory, bytes_, MADV_HUGEPAGE);  // advice only
      data_ = static_cast<Entry*>(memory);
      mapped_ = true;
    } else {
      data_ = static_cast<Entry*>(std::aligned_alloc(64, (bytes_ + 63) / 64 * 64));
      if (data_ == nullptr) throw std::bad_alloc();
      std::memset(static_cast<void*>(data_), 0, bytes_);
    }
  }
  EntryArray(EntryArray&& other) noexcept { Swap(other); }
  EntryArray& operator=(EntryArray&& other) noexcept {
    EntryArray moved(std::move(other));
    Swap(moved);
    return *this;
  }
  ~EntryArray() {
    if (data_ == nullptr) return;
    if (mapped_) {
      munmap(data_, bytes_);
    } else {
      std::free(data_);
    }
  }

  Entry& operator[](size_t i) { return data_[i]; }
  const Entry& operator[](size_t i) const { return data_[i]; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return data_ == nullptr; }

 private:
  static constexpr size_t kMapThreshold = size_t{64} << 10;
  void Swap(EntryArray& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(capacity_, other.capacity_);
    std::swap(bytes_, other.bytes_);
    std::swap(mapped_, other.mapped_);
  }
  Entry* data_ = nullptr;
  size_t capacity_ = 0;
  size_t bytes_ = 0;
  bool mapped_ = false;
};

// A hash map from a value to its Bucket: open addressing with linear probing in one array, so a
// lookup usually reads one cache line. The capacity is a power of two and the load at most 7/8.
// Growing never stops the world: the grown array is allocated (zero pages, O(1)) and the entries
// of the old one move over a few at a time, kMoveStep positions with each insertion or erasure,
// while lookups search both. The old array is done long before the grown one can fill. Erasing
// from the current array shifts the following entries back (no tombstones); erasing from the old
// one marks the entry moved.
template <typename Key>
class BucketMap {
 public:
  using Entry = MapEntry<Key>;
  static constexpr size_t kMoveStep = 8;

  Entry* Find(Key key) {
    const uint64_t hash = Entry::Hash(key);
    if (Entry* e = FindIn(current_, shift_, key, hash)) return e;
    if (!old_.empty()) return FindIn(old_, old_shift_, key, hash);
    return nullptr;
  }
  // The entry of `key`, inserted (its bucket unused: first == 0) when missing; a string key must
  // refer to a string that lives as long as the entry (see Rekey). Valid until the next insertion
  // or erasure.
  Entry& FindOrInsert(Key key) {
    MoveSome();
    const uint64_t hash = Entry::Hash(key);
    if (Entry* e = FindIn(current_, shift_, key, hash)) return *e;
    if (!old_.empty()) {
      if (Entry* e = FindIn(old_, old_shift_, key, hash)) return *e;
    }
    if ((size_ + 1) * 8 > current_.capacity() * 7) Grow();
    ++size_;
    Entry& e = Place(hash);
    e.Set(key, hash);
    return e;
  }
  void Erase(Key key) {
    MoveSome();
    const uint64_t hash = Entry::Hash(key);
    if (Entry* e = FindIn(current_, shift_, key, hash)) {
      EraseFromCurrent(static_cast<size_t>(e - &current_[0]));
      --size_;
    } else if (!old_.empty()) {
      if (Entry* old = FindIn(old_, old_shift_, key, hash)) {
        old->value = Bucket{.first = Bucket::kMoved};
        --size_;
      }
    }
  }
  size_t size() const { return size_; }
  // Starts loading the line where a lookup of `key` begins.
  void Prefetch(Key key) const {
    if (!current_.empty()) __builtin_prefetch(&current_[Home(Entry::Hash(key), shift_)]);
  }
  // Entries moved by the last insertion or erasure (at most kMoveStep).
  size_t last_moved() const { return last_moved_; }
  // The arrays emptied by moves, for the caller to free outside its lock.
  std::vector<EntryArray<Entry>> TakeRetired() { return std::exchange(retired_, {}); }

 private:
  static size_t Home(uint64_t hash, int shift) { return static_cast<size_t>(hash >> shift); }

  static Entry* FindIn(EntryArray<Entry>& array, int shift, Key key, uint64_t hash) {
    if (array.empty()) return nullptr;
    const size_t mask = array.capacity() - 1;
    for (size_t i = Home(hash, shift);; i = (i + 1) & mask) {
      Entry& e = array[i];
      if (e.value.first == 0) return nullptr;
      if (e.value.first != Bucket::kMoved && e.hash() == hash && e.key == key) return &e;
    }
  }
  // An unused entry of the current array for `hash`.
  Entry& Place(uint64_t hash) {
    const size_t mask = current_.capacity() - 1;
    for (size_t i = Home(hash, shift_);; i = (i + 1) & mask) {
      if (current_[i].value.first == 0) return current_[i];
    }
  }
  void EraseFromCurrent(size_t i) {
    const size_t mask = current_.capacity() - 1;
    // Move back every following entry of the run whose home is not in (i, j].
    for (size_t j = (i + 1) & mask; current_[j].value.first != 0; j = (j + 1) & mask) {
      const size_t home = Home(current_[j].hash(), shift_);
      const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (stays) continue;
      current_[i] = current_[j];
      i = j;
    }
    current_[i] = Entry{};
  }
  void Grow() {
    while (!old_.empty()) MoveSome();  // cannot happen: the old array empties first
    const size_t capacity = std::max<size_t>(16, current_.capacity() * 2);
    old_ = std::move(current_);
    old_shift_ = shift_;
    current_ = EntryArray<Entry>(capacity);
    shift_ = 64 - std::countr_zero(capacity);
    next_move_ = 0;
  }
  void MoveSome() {
    last_moved_ = 0;
    if (old_.empty()) return;
    for (size_t n = 0; n < kMoveStep && next_move_ < old_.capacity(); ++n, ++next_move_) {
      Entry& e = old_[next_move_];
      if (e.value.first == 0 || e.value.first == Bucket::kMoved) continue;
      Place(e.hash()) = e;
      e.value.first = Bucket::kMoved;
      ++last_moved_;
    }
    if (next_move_ == old_.capacity()) retired_.push_back(std::move(old_));
  }

  EntryArray<Entry> current_;
  int shift_ = 63;
  EntryArray<Entry> old_;  // being moved into current_
  int old_shift_ = 63;
  size_t next_move_ = 0;
  size_t size_ = 0;
  size_t last_moved_ = 0;
  std::vector<EntryArray<Entry>> retired_;
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
  int references = 1;               // guarded by registry_mu_
  uint32_t number = 0;              // the slot's index in numbered_
  uint32_t definition_number = 0;   // the definition's index in definitions_
  int index_column = -1;            // -1: in the scan list
  std::vector<Value> index_values;  // the key values (string keys of the index point here)
  // Positions in the table's `all` and (index_column == -1) `scan` lists.
  size_t all_position = 0;
  size_t scan_position = 0;

  // The key alone decides: one key value and nothing to evaluate after it.
  bool decided() const { return residual == nullptr && index_values.size() == 1; }
};

struct Router::Table {
  // The keys of one column, by the value's integer (int, bool, date, timestamps) or string (text,
  // uuid) representation: the column's values all have one kind (or are null).
  struct ColumnIndex {
    int column = 0;
    ValueKind kind = ValueKind::kNull;
    size_t slots = 0;
    BucketMap<int64_t> ints;
    BucketMap<std::string_view> strings;

    bool by_string() const { return kind == ValueKind::kText || kind == ValueKind::kUuid; }
    Bucket* Find(const Value& v) {
      if (v.kind() != kind) return nullptr;
      if (by_string()) {
        auto* e = strings.Find(v.string_value());
        return e == nullptr ? nullptr : &e->value;
      }
      auto* e = ints.Find(v.int_value());
      return e == nullptr ? nullptr : &e->value;
    }
    // The bucket of `v`, inserted when missing; a string key refers to `v`'s storage.
    Bucket& Insert(const Value& v) {
      return by_string() ? strings.FindOrInsert(v.string_value()).value
                         : ints.FindOrInsert(v.int_value()).value;
    }
    void Erase(const Value& v) {
      if (by_string()) {
        strings.Erase(v.string_value());
      } else {
        ints.Erase(v.int_value());
      }
    }
    // Makes the string key of `v`'s entry refer to `storage` (an equal value).
    void Rekey(const Value& v, const Value& storage) {
      if (by_string()) strings.Find(v.string_value())->key = storage.string_value();
    }
    size_t last_moved() const { return by_string() ? strings.last_moved() : ints.last_moved(); }
    void Prefetch(const Value& v) const {
      if (v.kind() != kind) return;
      if (by_string()) {
        strings.Prefetch(v.string_value());
      } else {
        ints.Prefetch(v.int_value());
      }
    }
  };
  std::string name;  // "schema.table"
  // The columns (name, type OID) the definitions were compiled against.
  std::vector<TableColumn> columns;
  std::vector<ColumnIndex> indexes;
  // Deques: growing them copies nothing.
  std::deque<Slot*> scan;
  std::deque<Slot*> all;
};

// Memory an update of the index released, freed once the locks are.
struct Router::Garbage {
  std::vector<EntryArray<MapEntry<int64_t>>> int_arrays;
  std::vector<EntryArray<MapEntry<std::string_view>>> string_arrays;
  std::vector<Table::ColumnIndex> indexes;
  std::unique_ptr<Table> table;

  void Collect(Table::ColumnIndex& index) {
    for (auto& a : index.ints.TakeRetired()) int_arrays.push_back(std::move(a));
    for (auto& a : index.strings.TakeRetired()) string_arrays.push_back(std::move(a));
  }
};

// An instance to evaluate for the current change.
struct Router::Candidate {
  const Slot* slot = nullptr;  // null when `decided`
  InstanceId id;
  const ShapeDefinition* definition = nullptr;
  bool decided = false;  // no residual: the key hits decide (`slot` is not read)
  bool old_hit = false;  // the old row's value is a key of the instance (always for the scan list)
  bool new_hit = false;
};

Router::Router() = default;
Router::~Router() = default;

uint32_t Router::SoloAux(const Slot& slot) const {
  return slot.decided() ? Bucket::kSolo | slot.definition_number : 0;
}

void Router::SetFirst(router_internal::Bucket& bucket, const Slot& slot) const {
  bucket.first_id = slot.id;
  bucket.first = slot.number + 1;
}

absl::Status Router::AddInstance(std::shared_ptr<const ShapeInstance> instance) {
  // The index key and the residual are worked out before taking a lock.
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

  Garbage garbage;  // freed after the locks are released
  std::lock_guard registry(registry_mu_);
  auto existing = slots_.find(slot->id);
  if (existing != slots_.end()) {
    ++existing->second->references;
    return absl::OkStatus();
  }
  {
    std::lock_guard lock(mu_);
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
    if (free_numbers_.empty()) {
      slot->number = static_cast<uint32_t>(numbered_.size());
      numbered_.push_back(slot.get());
    } else {
      slot->number = free_numbers_.back();
      free_numbers_.pop_back();
      numbered_[slot->number] = slot.get();
    }
    slot->definition_number = UseDefinition(slot->definition);
    size_t moved = 0;
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
        Bucket& bucket = index->Insert(v);
        moved += index->last_moved();
        if (bucket.first == 0) {
          SetFirst(bucket, *slot);
          bucket.aux = SoloAux(*slot);
        } else {
          if (bucket.rest() == 0) bucket.aux = NewRest();
          rests_[bucket.rest() - 1].push_back(slot.get());
        }
      }
      garbage.Collect(*index);
    } else {
      slot->scan_position = table.scan.size();
      table.scan.push_back(slot.get());
      stats_.scan_instances.fetch_add(1, std::memory_order_relaxed);
    }
    slot->all_position = table.all.size();
    table.all.push_back(slot.get());
    NoteMoves(moved);
    stats_.instances.fetch_add(1, std::memory_order_relaxed);
  }
  slots_.emplace(slot->id, std::move(slot));
  return absl::OkStatus();
}

bool Router::RemoveInstance(InstanceId id) {
  Garbage garbage;                // freed after the locks are released
  std::unique_ptr<Slot> removed;  // likewise
  std::lock_guard registry(registry_mu_);
  auto it = slots_.find(id);
  if (it == slots_.end()) return false;
  Slot* slot = it->second.get();
  if (--slot->references > 0) return true;
  {
    std::lock_guard lock(mu_);
    Table& table = *slot->table;
    size_t moved = 0;
    if (slot->index_column >= 0) {
      auto index = std::find_if(table.indexes.begin(), table.indexes.end(),
                                [&](const auto& ix) { return ix.column == slot->index_column; });
      for (const Value& v : slot->index_values) {
        Bucket& bucket = *index->Find(v);
        if (bucket.first == slot->number + 1) {
          if (bucket.rest() == 0) {
            index->Erase(v);
            moved += index->last_moved();
            continue;
          }
          std::vector<Slot*>& rest = rests_[bucket.rest() - 1];
          Slot* next = rest.back();
          rest.pop_back();
          SetFirst(bucket, *next);
          if (rest.empty()) {
            FreeRest(bucket.rest());
            bucket.aux = SoloAux(*next);
          }
          // The key now refers to the new first instance's copy of the value.
          index->Rekey(v, *std::find(next->index_values.begin(), next->index_values.end(), v));
        } else {
          std::vector<Slot*>& rest = rests_[bucket.rest() - 1];
          auto pos = std::find(rest.begin(), rest.end(), slot);
          *pos = rest.back();
          rest.pop_back();
          if (rest.empty()) {
            FreeRest(bucket.rest());
            bucket.aux = SoloAux(*numbered_[bucket.first - 1]);
          }
        }
      }
      garbage.Collect(*index);
      if (--index->slots == 0) {
        garbage.indexes.push_back(std::move(*index));
        table.indexes.erase(index);
      }
    } else {
      Slot* moved_slot = table.scan.back();
      table.scan[slot->scan_position] = moved_slot;
      moved_slot->scan_position = slot->scan_position;
      table.scan.pop_back();
      stats_.scan_instances.fetch_sub(1, std::memory_order_relaxed);
    }
    Slot* moved_slot = table.all.back();
    table.all[slot->all_position] = moved_slot;
    moved_slot->all_position = slot->all_position;
    table.all.pop_back();
    if (table.all.empty()) {
      auto entry = tables_.find(table.name);
      garbage.table = std::move(entry->second);
      tables_.erase(entry);
    }
    numbered_[slot->number] = nullptr;
    free_numbers_.push_back(slot->number);
    DropDefinition(slot->definition_number);
    NoteMoves(moved);
    stats_.instances.fetch_sub(1, std::memory_order_relaxed);
  }
  removed = std::move(it->second);
  slots_.erase(it);
  return true;
}

bool Router::Contains(InstanceId id) const {
  std::lock_guard lock(registry_mu_);
  return slots_.contains(id);
}

uint32_t Router::UseDefinition(const ShapeDefinition* definition) {
  auto [it, created] = definition_numbers_.try_emplace(definition, 0);
  if (created) {
    if (free_definitions_.empty()) {
      it->second = static_cast<uint32_t>(definitions_.size());
      definitions_.push_back(DefinitionUse{});
    } else {
      it->second = free_definitions_.back();
      free_definitions_.pop_back();
    }
    definitions_[it->second] = DefinitionUse{.definition = definition, .users = 0};
  }
  ++definitions_[it->second].users;
  return it->second;
}

void Router::DropDefinition(uint32_t number) {
  DefinitionUse& use = definitions_[number];
  if (--use.users > 0) return;
  definition_numbers_.erase(use.definition);
  use = DefinitionUse{};
  free_definitions_.push_back(number);
}

uint32_t Router::NewRest() {
  if (free_rests_.empty()) {
    rests_.emplace_back();
    return static_cast<uint32_t>(rests_.size());
  }
  const uint32_t number = free_rests_.back();
  free_rests_.pop_back();
  return number + 1;
}

void Router::FreeRest(uint32_t rest) {
  std::vector<Slot*>().swap(rests_[rest - 1]);
  free_rests_.push_back(rest - 1);
}

void Router::NoteMoves(size_t moved) {
  stats_.index_moves.fetch_add(moved, std::memory_order_relaxed);
  if (moved > stats_.max_index_moves.load(std::memory_order_relaxed)) {
    stats_.max_index_moves.store(moved, std::memory_order_relaxed);
  }
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

Router::Table* Router::FindTable(const RelationInfo& relation) {
  table_key_.assign(relation.schema);
  table_key_.push_back('.');
  table_key_.append(relation.name);
  auto it = tables_.find(table_key_);
  return it == tables_.end() ? nullptr : it->second.get();
}

void Router::Route(const RelationInfo& relation, const RowChange& change,
                   std::vector<ShapeEntry>* out) {
  std::lock_guard lock(mu_);
  if (Table* table = FindTable(relation)) RouteIn(*table, relation, change, out);
}

void Router::Route(const RelationInfo& relation, std::span<const RowChange> changes,
                   std::vector<ShapeEntry>* out) {
  // An index larger than the cache costs a miss per lookup; starting the lookups of the next
  // changes while this one is routed overlaps those latencies.
  constexpr size_t kAhead = 8;
  std::lock_guard lock(mu_);
  Table* table = FindTable(relation);
  if (table == nullptr) return;
  const size_t first = std::min(kAhead, changes.size());
  for (size_t i = 0; i < first; ++i) Prefetch(*table, changes[i]);
  for (size_t i = 0; i < changes.size(); ++i) {
    if (i + kAhead < changes.size()) Prefetch(*table, changes[i + kAhead]);
    RouteIn(*table, relation, changes[i], out);
  }
}

void Router::Prefetch(const Table& table, const RowChange& change) const {
  for (const Table::ColumnIndex& index : table.indexes) {
    const size_t c = static_cast<size_t>(index.column);
    for (const std::vector<Value>* row : {&change.old_values, &change.new_values}) {
      if (c < row->size()) index.Prefetch((*row)[c]);
    }
  }
}

void Router::RouteIn(Table& table, const RelationInfo& relation, const RowChange& change,
                     std::vector<ShapeEntry>* out) {
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
    const Bucket* bucket = index.Find(v);
    if (bucket == nullptr) return;
    if (bucket->solo()) {
      // One key value: no other lookup of this change can find it again.
      candidates_.push_back(Candidate{.id = bucket->first_id,
                                      .definition = definitions_[bucket->definition()].definition,
                                      .decided = true,
                                      .old_hit = old_side,
                                      .new_hit = new_side});
      return;
    }
    hit(numbered_[bucket->first - 1], old_side, new_side);
    if (bucket->rest() != 0) {
      for (Slot* slot : rests_[bucket->rest() - 1]) hit(slot, old_side, new_side);
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
  if (const Table* table = FindTable(relation)) RefetchAll(*table, out);
}

}  // namespace shapebridge::shapes
