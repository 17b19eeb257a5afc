// The router: move-in / move-out, changed columns, unchanged TOAST, the index, the scan list,
// truncate and missing old rows, concurrent registration.

#include "shapes/router.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <span>
#include <thread>

#include "absl/strings/str_cat.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shapes/definition.h"
#include "shapes/instance.h"

namespace shapebridge::shapes {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

// public.tasks (id int4 pk, project_id int4, title text, status text, body text, score float8)
TableSchema Tasks() {
  return TableSchema{.schema = "public",
                     .name = "tasks",
                     .columns = {{"id", pgtype::kInt4},
                                 {"project_id", pgtype::kInt4},
                                 {"title", pgtype::kText},
                                 {"status", pgtype::kText},
                                 {"body", pgtype::kText},
                                 {"score", pgtype::kFloat8}},
                     .primary_key = {"id"}};
}

RelationInfo TasksRelation() {
  RelationInfo r;
  r.id = RelationId(16384);
  r.schema = "public";
  r.name = "tasks";
  r.replica_identity = 'f';
  for (const TableColumn& c : Tasks().columns) {
    r.columns.push_back(ColumnInfo{.name = c.name, .type_oid = c.type_oid, .key = true});
  }
  return r;
}

Value Text(const char* s) { return Value::String(ValueKind::kText, s); }

std::vector<Value> Row(int id, int project, const char* title, const char* status = "open",
                       const char* body = "body", double score = 1.0) {
  return {Value::Int(id), Value::Int(project), Text(title),
          Text(status),   Text(body),          Value::Float(score)};
}

RowChange Insert(std::vector<Value> row) {
  return RowChange{.op = ChangeOp::kInsert, .relation = RelationId(16384), .new_values = row};
}
RowChange Update(std::vector<Value> old_row, std::vector<Value> new_row) {
  return RowChange{.op = ChangeOp::kUpdate,
                   .relation = RelationId(16384),
                   .old_values = old_row,
                   .new_values = new_row};
}
RowChange Delete(std::vector<Value> old_row) {
  return RowChange{.op = ChangeOp::kDelete, .relation = RelationId(16384), .old_values = old_row};
}

// A shape over id, project_id, title, status with `where` and parameters p (int) and s (text).
std::shared_ptr<const ShapeDefinition> Define(const std::string& where,
                                              std::vector<ParamSpec> params = {},
                                              std::vector<std::string> columns = {
                                                  "id", "project_id", "title", "status"}) {
  auto def = CompileDefinition(ShapeDefinitionSpec{.name = "s",
                                                   .table = "public.tasks",
                                                   .columns = columns,
                                                   .where = where,
                                                   .params = params},
                               Tasks());
  EXPECT_TRUE(def.ok()) << def.status();
  return *def;
}

std::shared_ptr<const ShapeInstance> Instance(std::shared_ptr<const ShapeDefinition> def,
                                              ParamValues values = {},
                                              std::string_view filter = "") {
  auto instance = ShapeInstance::Create(std::move(def), std::move(values), filter);
  EXPECT_TRUE(instance.ok()) << instance.status();
  return *instance;
}

std::shared_ptr<const ShapeDefinition> ByProject() {
  return Define("project_id = $p", {ParamSpec{.name = "p", .type = "int"}});
}
std::shared_ptr<const ShapeInstance> Project(int p) {
  return Instance(ByProject(), {{"p", Value::Int(p)}});
}

class RouterTest : public ::testing::Test {
 protected:
  std::shared_ptr<const ShapeInstance> Add(std::shared_ptr<const ShapeInstance> instance) {
    EXPECT_TRUE(router_.AddInstance(instance).ok());
    return instance;
  }
  std::vector<ShapeEntry> Route(const RowChange& change) {
    std::vector<ShapeEntry> out;
    router_.Route(relation_, change, &out);
    return out;
  }

  Router router_;
  RelationInfo relation_ = TasksRelation();
};

std::vector<FieldValue> Fields(std::vector<Value> values) {
  std::vector<FieldValue> out;
  for (size_t i = 0; i < values.size(); ++i) {
    out.push_back(FieldValue{.column = static_cast<int>(i), .value = values[i]});
  }
  return out;
}

TEST_F(RouterTest, InsertGoesToTheMatchingInstanceWithTheShapesColumns) {
  auto p1 = Add(Project(1));
  Add(Project(2));
  auto out = Route(Insert(Row(10, 1, "a")));
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].instance, p1->id());
  EXPECT_EQ(out[0].kind, EntryKind::kInsert);
  EXPECT_EQ(out[0].key, std::vector<Value>{Value::Int(10)});
  EXPECT_EQ(out[0].fields, Fields({Value::Int(10), Value::Int(1), Text("a"), Text("open")}));
  EXPECT_EQ(router_.stats().changes.load(), 1u);
  EXPECT_EQ(router_.stats().candidates.load(), 1u);
  EXPECT_EQ(router_.stats().scanned.load(), 0u);
  EXPECT_EQ(router_.stats().entries.load(), 1u);
}

TEST_F(RouterTest, UpdateEmitsOnlyChangedShapeColumns) {
  auto p1 = Add(Project(1));
  auto out = Route(Update(Row(10, 1, "a"), Row(10, 1, "b", "done")));
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].kind, EntryKind::kUpdate);
  EXPECT_EQ(out[0].key, std::vector<Value>{Value::Int(10)});
  EXPECT_EQ(out[0].fields, (std::vector<FieldValue>{{2, Text("b")}, {3, Text("done")}}));
}

TEST_F(RouterTest, UpdateOfColumnsOutsideTheShapeGivesNothing) {
  Add(Project(1));
  EXPECT_THAT(Route(Update(Row(10, 1, "a", "open", "x", 1), Row(10, 1, "a", "open", "y", 2))),
              IsEmpty());
  EXPECT_EQ(router_.stats().candidates.load(), 1u);
  EXPECT_EQ(router_.stats().entries.load(), 0u);
}

TEST_F(RouterTest, MoveOutAndMoveInFromTheUnionOfOldAndNewCandidates) {
  auto p1 = Add(Project(1));
  auto p2 = Add(Project(2));
  Add(Project(3));
  auto out = Route(Update(Row(10, 1, "a"), Row(10, 2, "a")));
  ASSERT_THAT(out, SizeIs(2));
  EXPECT_EQ(router_.stats().candidates.load(), 2u);
  const ShapeEntry& out_of_1 = out[0].instance == p1->id() ? out[0] : out[1];
  const ShapeEntry& into_2 = out[0].instance == p2->id() ? out[0] : out[1];
  EXPECT_EQ(out_of_1.instance, p1->id());
  EXPECT_EQ(out_of_1.kind, EntryKind::kDelete);
  EXPECT_EQ(out_of_1.key, std::vector<Value>{Value::Int(10)});
  EXPECT_THAT(out_of_1.fields, IsEmpty());
  EXPECT_EQ(into_2.instance, p2->id());
  EXPECT_EQ(into_2.kind, EntryKind::kInsert);  // move-in: the full row
  EXPECT_EQ(into_2.fields, Fields({Value::Int(10), Value::Int(2), Text("a"), Text("open")}));
}

TEST_F(RouterTest, MoveByAResidualConjunct) {
  auto def = Define("project_id = $p AND status = 'open'", {ParamSpec{.name = "p", .type = "int"}});
  auto open1 = Add(Instance(def, {{"p", Value::Int(1)}}));
  auto out = Route(Update(Row(10, 1, "a", "open"), Row(10, 1, "a", "done")));
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].kind, EntryKind::kDelete);
  out = Route(Update(Row(10, 1, "a", "done"), Row(10, 1, "a", "open")));
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].kind, EntryKind::kInsert);
  EXPECT_THAT(Route(Update(Row(10, 1, "a", "done"), Row(10, 1, "b", "done"))), IsEmpty());
}

TEST_F(RouterTest, DeleteGoesToTheInstancesThatHeldTheRow) {
  auto p1 = Add(Project(1));
  Add(Project(2));
  auto out = Route(Delete(Row(10, 1, "a")));
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].instance, p1->id());
  EXPECT_EQ(out[0].kind, EntryKind::kDelete);
  EXPECT_EQ(out[0].key, std::vector<Value>{Value::Int(10)});
}

TEST_F(RouterTest, PrimaryKeyChangeIsADeleteAndAnInsert) {
  auto p1 = Add(Project(1));
  auto out = Route(Update(Row(10, 1, "a"), Row(11, 1, "a")));
  ASSERT_THAT(out, SizeIs(2));
  EXPECT_EQ(out[0].kind, EntryKind::kDelete);
  EXPECT_EQ(out[0].key, std::vector<Value>{Value::Int(10)});
  EXPECT_EQ(out[1].kind, EntryKind::kInsert);
  EXPECT_EQ(out[1].key, std::vector<Value>{Value::Int(11)});
}

TEST_F(RouterTest, UnchangedToastIsFilledFromTheOldRowAndNeverEmitted) {
  // The shape includes body; its WHERE reads body too.
  auto def = Define("project_id = $p AND body <> ''", {ParamSpec{.name = "p", .type = "int"}},
                    {"id", "project_id", "title", "body"});
  auto p1 = Add(Instance(def, {{"p", Value::Int(1)}}));
  auto p2 = Add(Instance(def, {{"p", Value::Int(2)}}));
  std::vector<Value> new_row = Row(10, 1, "b", "open", "");
  new_row[4] = Value::Unchanged();

  // Update inside the instance: body is not a changed column.
  auto out = Route(Update(Row(10, 1, "a", "open", "big"), new_row));
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].kind, EntryKind::kUpdate);
  EXPECT_EQ(out[0].fields, (std::vector<FieldValue>{{2, Text("b")}}));

  // Move-in: the insert carries the old row's body, and the WHERE saw it.
  new_row[1] = Value::Int(2);
  out = Route(Update(Row(10, 1, "b", "open", "big"), new_row));
  ASSERT_THAT(out, SizeIs(2));
  for (const ShapeEntry& e : out) {
    for (const FieldValue& f : e.fields) EXPECT_FALSE(f.value.is_unchanged());
    if (e.instance == p2->id()) {
      EXPECT_EQ(e.kind, EntryKind::kInsert);
      EXPECT_EQ(e.fields, Fields({Value::Int(10), Value::Int(2), Text("b"), Text("big")}));
    } else {
      EXPECT_EQ(e.instance, p1->id());
      EXPECT_EQ(e.kind, EntryKind::kDelete);
    }
  }
}

TEST_F(RouterTest, MissingOldRowGivesMustRefetch) {
  auto p1 = Add(Project(1));
  auto p2 = Add(Project(2));
  RowChange change = Update(Row(10, 1, "a"), Row(10, 1, "b"));
  change.old_values.clear();
  auto out = Route(change);
  ASSERT_THAT(out, SizeIs(2));
  for (const ShapeEntry& e : out) EXPECT_EQ(e.kind, EntryKind::kMustRefetch);
  change = Delete(Row(10, 1, "a"));
  change.old_is_key_only = true;
  EXPECT_THAT(Route(change), SizeIs(2));
  EXPECT_EQ(router_.stats().missing_old_rows.load(), 2u);
  EXPECT_EQ(router_.stats().must_refetch.load(), 4u);
}

TEST_F(RouterTest, ChangedTableColumnsGiveMustRefetch) {
  Add(Project(1));
  relation_.columns.push_back(ColumnInfo{.name = "added", .type_oid = pgtype::kInt4});
  std::vector<Value> row = Row(10, 1, "a");
  row.push_back(Value::Int(0));
  auto out = Route(Insert(row));
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].kind, EntryKind::kMustRefetch);
  EXPECT_EQ(router_.stats().schema_mismatches.load(), 1u);
}

TEST_F(RouterTest, TruncateRefetchesEveryInstanceOfTheTableOnly) {
  auto p1 = Add(Project(1));
  auto p2 = Add(Project(2));
  auto all = Add(Instance(Define("")));
  std::vector<ShapeEntry> out;
  router_.RouteTruncate(relation_, &out);
  std::vector<InstanceId> ids;
  for (const ShapeEntry& e : out) {
    EXPECT_EQ(e.kind, EntryKind::kMustRefetch);
    ids.push_back(e.instance);
  }
  EXPECT_THAT(ids, UnorderedElementsAre(p1->id(), p2->id(), all->id()));
  RelationInfo other = relation_;
  other.name = "other";
  out.clear();
  router_.RouteTruncate(other, &out);
  EXPECT_THAT(out, IsEmpty());
}

TEST_F(RouterTest, OtherTablesAreIgnored) {
  Add(Project(1));
  relation_.name = "projects";
  EXPECT_THAT(Route(Insert(Row(10, 1, "a"))), IsEmpty());
  EXPECT_EQ(router_.stats().changes.load(), 0u);
}

TEST_F(RouterTest, NonIndexableInstancesAreScannedAndCounted) {
  auto plus = Add(Instance(Define("project_id + 0 = $p", {ParamSpec{.name = "p", .type = "int"}}),
                           {{"p", Value::Int(1)}}));
  auto range = Add(Instance(Define("id > 5 OR project_id = 1")));
  auto float_eq = Add(Instance(Define("score = 1.5")));  // float equality is not indexed
  auto indexed = Add(Project(1));
  EXPECT_EQ(router_.stats().scan_instances.load(), 3u);
  EXPECT_EQ(router_.stats().instances.load(), 4u);
  auto out = Route(Insert(Row(10, 1, "a", "open", "b", 1.5)));
  std::vector<InstanceId> ids;
  for (const ShapeEntry& e : out) ids.push_back(e.instance);
  EXPECT_THAT(ids, UnorderedElementsAre(plus->id(), range->id(), float_eq->id(), indexed->id()));
  EXPECT_EQ(router_.stats().scanned.load(), 3u);
  EXPECT_EQ(router_.stats().candidates.load(), 1u);
  out = Route(Insert(Row(1, 2, "a", "open", "b", 2.5)));
  EXPECT_THAT(out, IsEmpty());
  EXPECT_EQ(router_.stats().scanned.load(), 6u);
  EXPECT_EQ(router_.stats().candidates.load(), 1u);
}

TEST_F(RouterTest, InListsAndTextEqualityAreIndexed) {
  auto in = Add(Instance(Define("project_id IN (1, 2, NULL) AND title <> ''")));
  auto text = Add(Instance(Define("status = $s", {ParamSpec{.name = "s", .type = "text"}}),
                           {{"s", Text("done")}}));
  EXPECT_EQ(router_.stats().scan_instances.load(), 0u);
  auto out = Route(Insert(Row(10, 2, "a", "open")));
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].instance, in->id());
  out = Route(Insert(Row(11, 3, "a", "done")));
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].instance, text->id());
  EXPECT_EQ(router_.stats().scanned.load(), 0u);
  // An update from project 1 to 2 finds the IN instance through both values, once.
  out = Route(Update(Row(10, 1, "a"), Row(10, 2, "b")));
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].kind, EntryKind::kUpdate);
}

// Needs `= ANY(array parameter)` in shapes/expr.cc.
TEST_F(RouterTest, AnyOfAnArrayParameterIsIndexed) {
  auto def = Define("project_id = ANY($ps)", {ParamSpec{.name = "ps", .type = "int[]"}});
  auto any = Add(Instance(def, {{"ps", Value::String(ValueKind::kArray, "{1,3,NULL}")}}));
  EXPECT_EQ(router_.stats().scan_instances.load(), 0u);
  EXPECT_THAT(Route(Insert(Row(10, 3, "a"))), SizeIs(1));
  EXPECT_THAT(Route(Insert(Row(11, 2, "a"))), IsEmpty());
  EXPECT_EQ(router_.stats().candidates.load(), 1u);
}

TEST_F(RouterTest, PredicateErrorsDoNotMatchAndAreCounted) {
  // int4 overflow for project_id >= 3.
  auto overflow = Add(Instance(Define("project_id * 1000000000 > 0 AND id = 10")));
  EXPECT_THAT(Route(Insert(Row(10, 1, "a"))), SizeIs(1));
  EXPECT_EQ(router_.stats().predicate_errors.load(), 0u);
  EXPECT_THAT(Route(Insert(Row(10, 5, "a"))), IsEmpty());
  EXPECT_EQ(router_.stats().predicate_errors.load(), 1u);
  // A move into an erroring state is a move-out.
  auto out = Route(Update(Row(10, 1, "a"), Row(10, 5, "a")));
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].kind, EntryKind::kDelete);
}

TEST_F(RouterTest, InstancesAreSharedAndReferenceCounted) {
  auto a = Add(Project(1));
  auto b = Add(Project(1));  // same id
  EXPECT_EQ(a->id(), b->id());
  EXPECT_EQ(router_.stats().instances.load(), 1u);
  EXPECT_THAT(Route(Insert(Row(10, 1, "a"))), SizeIs(1));
  EXPECT_TRUE(router_.RemoveInstance(a->id()));
  EXPECT_TRUE(router_.Contains(a->id()));
  EXPECT_THAT(Route(Insert(Row(10, 1, "a"))), SizeIs(1));
  EXPECT_TRUE(router_.RemoveInstance(a->id()));
  EXPECT_FALSE(router_.Contains(a->id()));
  EXPECT_THAT(Route(Insert(Row(10, 1, "a"))), IsEmpty());
  EXPECT_FALSE(router_.RemoveInstance(a->id()));
  EXPECT_EQ(router_.stats().instances.load(), 0u);
}

TEST_F(RouterTest, ManyInstancesCostOnlyTheAffectedOnes) {
  std::vector<std::shared_ptr<const ShapeInstance>> instances;
  for (int p = 0; p < 10'000; ++p) instances.push_back(Add(Project(p)));
  auto out = Route(Update(Row(1, 4711, "a"), Row(1, 4712, "a")));
  ASSERT_THAT(out, SizeIs(2));
  EXPECT_EQ(router_.stats().candidates.load(), 2u);
  EXPECT_EQ(router_.stats().scanned.load(), 0u);
  for (int i = 0; i < 1000; ++i) {
    out = Route(Update(Row(i, i, "a"), Row(i, i, "b")));
    ASSERT_THAT(out, SizeIs(1));
    EXPECT_EQ(out[0].instance, instances[i]->id());
  }
  EXPECT_EQ(router_.stats().candidates.load(), 1002u);
  for (int p = 0; p < 10'000; p += 2) EXPECT_TRUE(router_.RemoveInstance(instances[p]->id()));
  // Every remaining instance is still found, and only those (the index shifted entries back).
  for (int p = 0; p < 10'000; ++p) {
    out = Route(Insert(Row(1, p, "a")));
    ASSERT_THAT(out, SizeIs(p % 2)) << p;
    if (p % 2 == 1) {
      EXPECT_EQ(out[0].instance, instances[p]->id());
    }
  }
  for (int p = 1; p < 10'000; p += 2) EXPECT_TRUE(router_.RemoveInstance(instances[p]->id()));
  EXPECT_THAT(Route(Insert(Row(1, 4711, "a"))), IsEmpty());
  EXPECT_EQ(router_.stats().instances.load(), 0u);
}

TEST_F(RouterTest, AddAndRemoveWhileRoutingOnAnotherThread) {
  auto steady = Add(Project(1));
  std::vector<std::shared_ptr<const ShapeInstance>> churn;
  for (int p = 2; p < 202; ++p) churn.push_back(Project(p));
  churn.push_back(Instance(Define("project_id + 0 = 1")));  // on the scan list
  std::atomic<bool> stop{false};
  std::thread registrar([&] {
    while (!stop.load()) {
      for (const auto& i : churn) ASSERT_TRUE(router_.AddInstance(i).ok());
      for (const auto& i : churn) ASSERT_TRUE(router_.RemoveInstance(i->id()));
    }
  });
  int steady_entries = 0;
  for (int i = 0; i < 20'000; ++i) {
    for (const ShapeEntry& e : Route(Update(Row(i, 1, "a"), Row(i, 1 + i % 3, "b")))) {
      if (e.instance == steady->id()) ++steady_entries;
    }
  }
  stop = true;
  registrar.join();
  // Every change reaches the steady instance: an update or a move-out.
  EXPECT_EQ(steady_entries, 20'000);
  EXPECT_EQ(router_.stats().instances.load(), 1u);
  EXPECT_EQ(router_.stats().scan_instances.load(), 0u);
}

// Routing a run of changes at once (the lookups of the next changes started ahead) gives what
// routing them one by one gives.
TEST_F(RouterTest, RoutingARunEqualsRoutingEachChange) {
  for (int p = 0; p < 5'000; ++p) Add(Project(p));
  Add(Instance(Define("project_id + 0 = 7")));  // scanned
  Add(Instance(Define("project_id IN (1, 2, 3) AND title <> 'x'")));
  std::mt19937 random(7);
  auto pick = [&](int n) { return static_cast<int>(random() % static_cast<unsigned>(n)); };
  std::vector<RowChange> changes;
  for (int i = 0; i < 1'000; ++i) {
    const auto before = Row(pick(100), pick(6'000), pick(2) == 0 ? "x" : "a");
    const auto after = Row(pick(100), pick(6'000), pick(2) == 0 ? "x" : "b");
    switch (pick(3)) {
      case 0:
        changes.push_back(Insert(after));
        break;
      case 1:
        changes.push_back(Update(before, after));
        break;
      default:
        changes.push_back(Delete(before));
        break;
    }
  }
  std::vector<ShapeEntry> one_by_one;
  for (const RowChange& change : changes) router_.Route(relation_, change, &one_by_one);
  std::vector<ShapeEntry> in_runs;
  for (size_t i = 0; i < changes.size(); i += 32) {
    const size_t n = std::min<size_t>(32, changes.size() - i);
    router_.Route(relation_, std::span<const RowChange>(changes).subspan(i, n), &in_runs);
  }
  EXPECT_GT(one_by_one.size(), 500u);
  EXPECT_EQ(in_runs, one_by_one);
}

// Thousands of instances registered and removed at random (int and text keys, keys shared by
// several instances, residuals), routing checked against evaluating every registered instance:
// the index stays exact while its arrays grow, and no registration moves more than a few index
// entries (growing never rehashes a whole index under the routing lock).
TEST_F(RouterTest, IndexGrowsIncrementallyAndStaysExact) {
  const auto by_project = ByProject();
  const auto by_status = Define("status = $s", {ParamSpec{.name = "s", .type = "text"}});
  const auto with_residual =
      Define("project_id = $p AND title <> $s",
             {ParamSpec{.name = "p", .type = "int"}, ParamSpec{.name = "s", .type = "text"}});
  std::mt19937 random(42);
  auto pick = [&](int n) { return static_cast<int>(random() % static_cast<unsigned>(n)); };
  auto make = [&]() -> std::shared_ptr<const ShapeInstance> {
    switch (pick(3)) {
      case 0:
        return Instance(by_project, {{"p", Value::Int(pick(30'000))}});
      case 1:
        return Instance(by_status, {{"s", Text(absl::StrCat("s", pick(5'000)).c_str())}});
      default:
        return Instance(with_residual, {{"p", Value::Int(pick(2'000))},
                                        {"s", Text(absl::StrCat("t", pick(3)).c_str())}});
    }
  };
  std::map<InstanceId, std::shared_ptr<const ShapeInstance>> registered;
  int checks = 0;
  for (int step = 0; step < 60'000; ++step) {
    if (registered.empty() || pick(10) < 7) {
      auto instance = make();
      if (registered.contains(instance->id())) continue;
      ASSERT_TRUE(router_.AddInstance(instance).ok());
      registered.emplace(instance->id(), instance);
    } else {
      auto it = registered.begin();
      std::advance(it, pick(static_cast<int>(std::min<size_t>(registered.size(), 64))));
      ASSERT_TRUE(router_.RemoveInstance(it->first));
      registered.erase(it);
    }
    if (step % 100 != 0) continue;
    const std::string status = absl::StrCat("s", pick(5'000));
    const std::string title = absl::StrCat("t", pick(3));
    const std::vector<Value> row = Row(1, pick(2'000), title.c_str(), status.c_str());
    std::vector<InstanceId> expected;
    for (const auto& [id, instance] : registered) {
      auto match = instance->Matches(row);
      ASSERT_TRUE(match.ok());
      if (*match) expected.push_back(id);
    }
    std::vector<InstanceId> routed;
    for (const ShapeEntry& e : Route(Insert(row))) routed.push_back(e.instance);
    std::sort(routed.begin(), routed.end());
    ASSERT_EQ(routed, expected) << "step " << step;
    ++checks;
  }
  EXPECT_GT(registered.size(), 10'000u);
  EXPECT_EQ(router_.stats().instances.load(), registered.size());
  EXPECT_GT(checks, 400);
  EXPECT_GT(router_.stats().index_moves.load(), 10'000u);  // the indexes grew several times
  // Each registration has one key value; one insertion or erasure moves at most 8 entries.
  EXPECT_LE(router_.stats().max_index_moves.load(), 8u);
  EXPECT_GT(router_.stats().max_index_moves.load(), 0u);
}

}  // namespace
}  // namespace shapebridge::shapes

namespace shapebridge::shapes {
namespace {

// The index decides an equality conjunct by comparing values; for every indexable column type the
// router's decision must equal the evaluator's.
TEST(RouterIndexTest, IndexedEqualityAgreesWithTheEvaluatorForEveryIndexableType) {
  const TableSchema table{.schema = "public",
                          .name = "typed",
                          .columns = {{"id", pgtype::kInt8},
                                      {"u", pgtype::kUuid},
                                      {"b", pgtype::kBool},
                                      {"d", pgtype::kDate},
                                      {"ts", pgtype::kTimestamp},
                                      {"tz", pgtype::kTimestampTz},
                                      {"v", pgtype::kVarchar},
                                      {"s", pgtype::kInt2}},
                          .primary_key = {"id"}};
  RelationInfo relation{.id = RelationId(7), .schema = "public", .name = "typed"};
  for (const TableColumn& c : table.columns) {
    relation.columns.push_back(ColumnInfo{.name = c.name, .type_oid = c.type_oid});
  }
  const std::vector<std::string> wheres = {
      "u = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
      "u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
      "u IN ('b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')",
      "b = true",
      "b = false",
      "d = '2024-02-29'",
      "d = DATE '2024-03-01'",
      "ts = '2024-02-29 12:00:00'",
      "tz = '2024-02-29 12:00:00+00'",
      "tz = '2024-02-29 13:00:00+01'",
      "v = 'abc'",
      "v IN ('abc', 'ab ')",
      "s = 3",
      "s IN (3, 70000)",
      "id = 5000000000",
  };
  Router router;
  std::vector<std::shared_ptr<const ShapeInstance>> instances;
  for (size_t i = 0; i < wheres.size(); ++i) {
    auto def = CompileDefinition(
        ShapeDefinitionSpec{
            .name = "w" + std::to_string(i), .table = "public.typed", .where = wheres[i]},
        table);
    if (!def.ok()) {
      // A construct the parser does not take is not an indexing question.
      ADD_FAILURE() << wheres[i] << ": " << def.status();
      continue;
    }
    auto instance = ShapeInstance::Create(*def, {});
    ASSERT_TRUE(instance.ok()) << instance.status();
    ASSERT_TRUE(router.AddInstance(*instance).ok());
    instances.push_back(*instance);
  }
  const int64_t day = 19782;                                       // 2024-02-29
  const int64_t noon = day * 86'400'000'000LL + 43'200'000'000LL;  // 2024-02-29 12:00 UTC
  const std::vector<std::vector<Value>> rows = {
      {Value::Int(1), Value::String(ValueKind::kUuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
       Value::Bool(true), Value::Date(day), Value::Timestamp(noon), Value::TimestampTz(noon),
       Value::String(ValueKind::kText, "abc"), Value::Int(3)},
      {Value::Int(5'000'000'000LL),
       Value::String(ValueKind::kUuid, "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), Value::Bool(false),
       Value::Date(day + 1), Value::Timestamp(noon + 1), Value::TimestampTz(noon - 1),
       Value::String(ValueKind::kText, "ab "), Value::Int(4)},
      {Value::Int(2), Value::Null(), Value::Null(), Value::Null(), Value::Null(), Value::Null(),
       Value::Null(), Value::Null()},
  };
  EXPECT_EQ(router.stats().scan_instances.load(), 0u);
  for (const auto& row : rows) {
    std::vector<ShapeEntry> out;
    router.Route(relation, RowChange{.op = ChangeOp::kInsert, .new_values = row}, &out);
    for (const auto& instance : instances) {
      auto match = instance->Matches(row);
      ASSERT_TRUE(match.ok()) << match.status();
      const bool routed = std::any_of(out.begin(), out.end(), [&](const ShapeEntry& e) {
        return e.instance == instance->id();
      });
      EXPECT_EQ(routed, *match) << Canonical(*instance->predicate()) << " on "
                                << row[0].DebugString();
    }
  }
}

}  // namespace
}  // namespace shapebridge::shapes
