// Shape definitions and instances: compile errors, versions, instance identity, the hash.

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shapes/definition.h"
#include "shapes/hash.h"
#include "shapes/instance.h"

namespace shapebridge::shapes {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TableSchema Tasks() {
  return TableSchema{.schema = "public",
                     .name = "tasks",
                     .columns = {{"id", pgtype::kInt4},
                                 {"project_id", pgtype::kInt4},
                                 {"title", pgtype::kText},
                                 {"status", pgtype::kText},
                                 {"body", pgtype::kText}},
                     .primary_key = {"id"}};
}

ShapeDefinitionSpec ByProject() {
  return ShapeDefinitionSpec{.name = "tasks_by_project",
                             .table = "public.tasks",
                             .columns = {"id", "project_id", "title", "status"},
                             .where = "project_id = $project_id",
                             .params = {ParamSpec{.name = "project_id",
                                                  .type = "int",
                                                  .source = ParamSource::kRequest,
                                                  .claim = "projects"}}};
}

std::string ErrorOf(const ShapeDefinitionSpec& spec, const TableSchema& table = Tasks()) {
  auto def = CompileDefinition(spec, table);
  if (def.ok()) return "ok";
  EXPECT_EQ(def.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(def.status().message());
}

std::string VersionOf(const ShapeDefinitionSpec& spec) {
  auto def = CompileDefinition(spec, Tasks());
  EXPECT_TRUE(def.ok()) << def.status();
  return def.ok() ? (*def)->version : "";
}

TEST(HashTest, Sha256KnownVectors) {
  auto hex = [](std::string_view s) {
    const auto d = Sha256(s);
    return HexString(d.data(), d.size());
  };
  EXPECT_EQ(hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(DefinitionTest, CompilesColumnsKeyAndParams) {
  auto def = CompileDefinition(ByProject(), Tasks());
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ((*def)->columns, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ((*def)->key, (std::vector<int>{0}));
  ASSERT_NE((*def)->where, nullptr);
  EXPECT_EQ((*def)->params.size(), 1u);
  EXPECT_EQ((*def)->param_types.at("project_id"), SqlType{.id = TypeId::kInt4});
  EXPECT_EQ((*def)->version.size(), 64u);
  EXPECT_EQ((*def)->ColumnName(2), "title");
}

TEST(DefinitionTest, ColumnsDefaultToAllAndWhereToEveryRow) {
  auto def =
      CompileDefinition(ShapeDefinitionSpec{.name = "all_tasks", .table = "public.tasks"}, Tasks());
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ((*def)->columns, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ((*def)->where, nullptr);
}

TEST(DefinitionTest, PrimaryKeyComesFromTheCatalogNotFromColumnOrder) {
  TableSchema table = Tasks();
  table.primary_key = {"project_id", "id"};
  auto spec = ByProject();
  auto def = CompileDefinition(spec, table);
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ((*def)->key, (std::vector<int>{1, 0}));
  spec.columns = {"id", "title"};
  EXPECT_EQ(ErrorOf(spec, table),
            "shape tasks_by_project: columns: must include the primary key column "
            "\"project_id\"");
}

TEST(DefinitionTest, ErrorsNameTheShapeAndTheKey) {
  auto spec = ByProject();
  spec.name = "";
  EXPECT_EQ(ErrorOf(spec), "shape (unnamed): name: must not be empty");
  spec = ByProject();
  spec.name = "bad name";
  EXPECT_EQ(ErrorOf(spec), "shape bad name: name: may contain only letters, digits, _ and -");

  spec = ByProject();
  spec.table = "tasks";
  EXPECT_EQ(ErrorOf(spec),
            "shape tasks_by_project: table: must be schema-qualified (schema.table), not "
            "\"tasks\"");
  spec = ByProject();
  TableSchema no_key = Tasks();
  no_key.primary_key.clear();
  EXPECT_THAT(ErrorOf(spec, no_key),
              StartsWith("shape tasks_by_project: table: table public.tasks has no primary key"));

  spec = ByProject();
  spec.columns = {"id", "titel"};
  EXPECT_EQ(ErrorOf(spec),
            "shape tasks_by_project: columns: unknown column \"titel\" in table public.tasks");
  spec.columns = {"id", "title", "title"};
  EXPECT_EQ(ErrorOf(spec), "shape tasks_by_project: columns: duplicate column \"title\"");
  spec.columns = {"title", "status"};
  EXPECT_EQ(ErrorOf(spec),
            "shape tasks_by_project: columns: must include the primary key column \"id\"");

  spec = ByProject();
  spec.params[0].source = ParamSource::kClaim;
  spec.params[0].claim = "";
  EXPECT_EQ(ErrorOf(spec),
            "shape tasks_by_project: params.project_id.claim: is required: the value comes from "
            "a claim, name the claim");
  spec = ByProject();
  spec.params.push_back(spec.params[0]);
  EXPECT_EQ(ErrorOf(spec), "shape tasks_by_project: params.project_id: duplicate parameter");
  spec = ByProject();
  spec.params[0].name = "1x";
  EXPECT_THAT(ErrorOf(spec), StartsWith("shape tasks_by_project: params: \"1x\" is not a "
                                        "parameter name"));
  spec = ByProject();
  spec.params.push_back(ParamSpec{.name = "unused", .type = "int"});
  EXPECT_EQ(ErrorOf(spec),
            "shape tasks_by_project: params.unused: is declared but not used in where");
}

// These go through the WHERE parser (shapes/expr.cc).
TEST(DefinitionTest, WhereAndTypeErrorsComeFromTheParser) {
  auto spec = ByProject();
  spec.params[0].type = "integr";
  EXPECT_EQ(ErrorOf(spec),
            "shape tasks_by_project: params.project_id.type: unknown type \"integr\"");
  spec = ByProject();
  spec.where = "titel = 'x' AND project_id = $project_id";
  EXPECT_EQ(ErrorOf(spec), "shape tasks_by_project: where: unknown column \"titel\" at position 0");
  spec = ByProject();
  spec.where = "project_id = $project";
  EXPECT_THAT(ErrorOf(spec), StartsWith("shape tasks_by_project: where: "));
  EXPECT_THAT(ErrorOf(spec), HasSubstr("project"));
  spec = ByProject();
  spec.where = "project_id + $project_id";
  EXPECT_THAT(ErrorOf(spec), StartsWith("shape tasks_by_project: where: "));
  EXPECT_THAT(ErrorOf(spec), HasSubstr("boolean"));
}

TEST(DefinitionTest, WhereMayUseColumnsOutsideTheShapeButNotUnsupportedTypes) {
  auto spec = ByProject();
  spec.where = "project_id = $project_id AND body <> ''";
  EXPECT_EQ(ErrorOf(spec), "ok");
  TableSchema table = Tasks();
  table.columns.push_back(TableColumn{.name = "geom", .type_oid = 600});  // point
  spec.where = "project_id = $project_id AND geom IS NULL";
  EXPECT_THAT(ErrorOf(spec, table), HasSubstr("\"geom\""));
  EXPECT_THAT(ErrorOf(spec, table), HasSubstr("that shape expressions do not support"));
}

TEST(DefinitionTest, VersionIsStableAndChangesWithTheMeaning) {
  const std::string base = VersionOf(ByProject());
  EXPECT_EQ(VersionOf(ByProject()), base);
  auto spec = ByProject();
  spec.where = "project_id   =   $project_id";
  EXPECT_EQ(VersionOf(spec), base);  // Canonical ignores spacing

  spec = ByProject();
  spec.where = "project_id = $project_id AND status = 'open'";
  EXPECT_NE(VersionOf(spec), base);
  spec = ByProject();
  spec.columns = {"id", "project_id", "title"};
  EXPECT_NE(VersionOf(spec), base);
  spec = ByProject();
  spec.writable = true;
  EXPECT_NE(VersionOf(spec), base);
  spec = ByProject();
  spec.params[0].type = "bigint";
  EXPECT_NE(VersionOf(spec), base);
  spec = ByProject();
  spec.params[0].claim = "other";
  EXPECT_NE(VersionOf(spec), base);
  spec = ByProject();
  spec.params[0].source = ParamSource::kClaim;
  EXPECT_NE(VersionOf(spec), base);
  spec = ByProject();
  spec.name = "renamed";
  EXPECT_NE(VersionOf(spec), base);
}

std::shared_ptr<const ShapeDefinition> Compile(const ShapeDefinitionSpec& spec) {
  auto def = CompileDefinition(spec, Tasks());
  EXPECT_TRUE(def.ok()) << def.status();
  return def.ok() ? *def : nullptr;
}

absl::StatusOr<InstanceId> IdOf(const ShapeDefinitionSpec& spec, ParamValues values,
                                std::string_view filter = "") {
  auto instance = ShapeInstance::Create(Compile(spec), std::move(values), filter);
  if (!instance.ok()) return instance.status();
  return (*instance)->id();
}

TEST(InstanceTest, IdIsPrintableAndParses) {
  auto id = IdOf(ByProject(), {{"project_id", Value::Int(7)}});
  ASSERT_TRUE(id.ok()) << id.status();
  const std::string hex = id->ToString();
  EXPECT_EQ(hex.size(), 32u);
  auto parsed = InstanceId::Parse(hex);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, *id);
  EXPECT_FALSE(InstanceId::Parse("xyz").ok());
  EXPECT_FALSE(InstanceId::Parse(std::string(32, 'G')).ok());
}

TEST(InstanceTest, SameIdForEquivalentInstances) {
  auto a = IdOf(ByProject(), {{"project_id", Value::Int(7)}}, "status = 'open' AND title <> ''");
  auto b =
      IdOf(ByProject(), {{"project_id", Value::Int(7)}}, "title   <> ''   AND   status = 'open'");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*a, *b);
  // Two definitions compiled from the same text are the same.
  EXPECT_EQ(*IdOf(ByProject(), {{"project_id", Value::Int(7)}}),
            *IdOf(ByProject(), {{"project_id", Value::Int(7)}}));
}

TEST(InstanceTest, DifferentIdWhenAnythingRelevantDiffers) {
  const InstanceId base = *IdOf(ByProject(), {{"project_id", Value::Int(7)}});
  EXPECT_NE(*IdOf(ByProject(), {{"project_id", Value::Int(8)}}), base);
  EXPECT_NE(*IdOf(ByProject(), {{"project_id", Value::Int(7)}}, "status = 'open'"), base);
  auto spec = ByProject();
  spec.columns = {"id", "project_id"};
  EXPECT_NE(*IdOf(spec, {{"project_id", Value::Int(7)}}), base);
  spec = ByProject();
  spec.where = "project_id = $project_id AND id > 0";
  EXPECT_NE(*IdOf(spec, {{"project_id", Value::Int(7)}}), base);
  spec = ByProject();
  spec.writable = true;
  EXPECT_NE(*IdOf(spec, {{"project_id", Value::Int(7)}}), base);
}

TEST(DefinitionTest, AWritableShapeNeedsParametersTheTokenBounds) {
  auto spec = ByProject();
  spec.writable = true;
  ASSERT_TRUE(CompileDefinition(spec, Tasks()).ok());  // limited to the claim's values
  spec.params[0].claim.clear();
  auto free = CompileDefinition(spec, Tasks());
  ASSERT_FALSE(free.ok());
  EXPECT_EQ(free.status().message(),
            "shape tasks_by_project: writable: parameter $project_id comes from the request with "
            "no claim to limit it, so the shape would let anyone write any row; take it from a "
            "claim (from: claim) or limit it to a claim's values (claim: ...)");
  spec.writable = false;
  EXPECT_TRUE(CompileDefinition(spec, Tasks()).ok());
}

TEST(InstanceTest, ParameterErrors) {
  auto missing = IdOf(ByProject(), {});
  EXPECT_EQ(missing.status().message(), "shape tasks_by_project: params.project_id: has no value");
  auto extra = IdOf(ByProject(), {{"project_id", Value::Int(1)}, {"other", Value::Int(2)}});
  EXPECT_EQ(extra.status().message(),
            "shape tasks_by_project: params.other: the shape has no such parameter");
  auto wrong = IdOf(ByProject(), {{"project_id", Value::String(ValueKind::kText, "x")}});
  EXPECT_FALSE(wrong.ok());
  EXPECT_THAT(std::string(wrong.status().message()),
              StartsWith("shape tasks_by_project: params: "));
}

TEST(InstanceTest, FilterMayUseOnlyTheShapesColumnsAndNoParameters) {
  // body is a column of the table but not of the shape.
  auto hidden = IdOf(ByProject(), {{"project_id", Value::Int(1)}}, "body = 'x'");
  EXPECT_THAT(std::string(hidden.status().message()),
              StartsWith("shape tasks_by_project: filter: unknown column \"body\""));
  auto param = IdOf(ByProject(), {{"project_id", Value::Int(1)}}, "id = $project_id");
  EXPECT_THAT(std::string(param.status().message()),
              StartsWith("shape tasks_by_project: filter: "));
  auto not_bool = IdOf(ByProject(), {{"project_id", Value::Int(1)}}, "id + 1");
  EXPECT_THAT(std::string(not_bool.status().message()),
              StartsWith("shape tasks_by_project: filter: "));
  EXPECT_THAT(std::string(not_bool.status().message()), HasSubstr("boolean"));
}

TEST(InstanceTest, PredicateIsTheBoundWhereAndTheFilter) {
  auto instance = ShapeInstance::Create(Compile(ByProject()), {{"project_id", Value::Int(3)}},
                                        "status = 'open'");
  ASSERT_TRUE(instance.ok()) << instance.status();
  ASSERT_NE((*instance)->predicate(), nullptr);
  EXPECT_EQ(Conjuncts(*(*instance)->predicate()).size(), 2u);
  auto row = [](int project, const char* status) {
    return std::vector<Value>{
        Value::Int(1), Value::Int(project), Value::String(ValueKind::kText, "t"),
        Value::String(ValueKind::kText, status), Value::String(ValueKind::kText, "b")};
  };
  EXPECT_TRUE(*(*instance)->Matches(row(3, "open")));
  EXPECT_FALSE(*(*instance)->Matches(row(3, "done")));
  EXPECT_FALSE(*(*instance)->Matches(row(4, "open")));
}

}  // namespace
}  // namespace shapebridge::shapes
