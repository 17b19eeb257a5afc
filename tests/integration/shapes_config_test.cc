// Shape definitions checked against a real catalog at startup.

#include "bridge/app/config.h"
#include "bridge/common/pg.h"
#include "bridge/replication/catalog.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/harness/test_postgres.h"

namespace shapebridge {
namespace {

using ::shapebridge::testing::ConnectOrDie;
using ::shapebridge::testing::ExecOrDie;
using ::shapebridge::testing::TestPostgres;
using ::testing::HasSubstr;
using ::testing::Not;

class ShapesConfigTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dsn_ = new std::string(TestPostgres::Get().CreateDatabase("shapes_config"));
    auto conn = ConnectOrDie(*dsn_);
    ExecOrDie(*conn,
              "CREATE TABLE tasks (project_id int, id int, title text, done bool, "
              "tags text[], PRIMARY KEY (project_id, id))");
    ExecOrDie(*conn, "CREATE TABLE notes (body text)");
  }
  static std::string* dsn_;
};
std::string* ShapesConfigTest::dsn_ = nullptr;

TEST_F(ShapesConfigTest, CatalogGivesColumnsInOrderAndThePrimaryKey) {
  auto conn = ConnectOrDie(*dsn_);
  auto schema = LoadTableSchema(*conn, "public.tasks");
  ASSERT_TRUE(schema.ok()) << schema.status();
  ASSERT_EQ(schema->columns.size(), 5u);
  EXPECT_EQ(schema->columns[0].name, "project_id");
  EXPECT_EQ(schema->columns[4].name, "tags");
  EXPECT_TRUE(schema->columns[4].is_array);
  EXPECT_EQ(schema->columns[2].type_oid, 25u);
  EXPECT_EQ(schema->primary_key, (std::vector<std::string>{"project_id", "id"}));

  auto missing = LoadTableSchema(*conn, "public.nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  auto keyless = LoadTableSchema(*conn, "public.notes");
  EXPECT_EQ(keyless.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(keyless.status().message()), HasSubstr("has no primary key"));
}

TEST_F(ShapesConfigTest, EveryShapeErrorNamesFileShapeAndKey) {
  auto config = ParseConfig(R"(postgres:
  dsn: x
log:
  dir: d
shapes:
  - name: good
    table: public.tasks
    where: "project_id = $p AND NOT done"
    params:
      p: {type: int, from: request}
  - name: typo
    table: public.tasks
    where: "titel = 'x'"
  - name: nokey
    table: public.tasks
    columns: [title]
  - name: keyless
    table: public.notes
  - name: gone
    table: public.gone
)",
                            "app.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  auto conn = ConnectOrDie(*dsn_);
  auto compiled = CompileShapes(*config, *conn);
  ASSERT_FALSE(compiled.ok());
  const std::string message(compiled.status().message());
  EXPECT_THAT(message, HasSubstr("app.yaml:11:5: shape typo: where: unknown column \"titel\""));
  EXPECT_THAT(message, HasSubstr("app.yaml:14:5: shape nokey: columns:"));
  EXPECT_THAT(message, HasSubstr("app.yaml:17:5: shape keyless: table: table public.notes has no "
                                 "primary key"));
  EXPECT_THAT(message, HasSubstr("app.yaml:19:5: shape gone: table: table \"public.gone\" does "
                                 "not exist"));
  EXPECT_THAT(message, Not(HasSubstr("shape good")));

  config->shapes.resize(1);
  config->shape_locations.resize(1);
  auto ok = CompileShapes(*config, *conn);
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->size(), 1u);
  EXPECT_EQ((*ok)[0]->name, "good");
  EXPECT_EQ((*ok)[0]->key, (std::vector<int>{0, 1}));
}

}  // namespace
}  // namespace shapebridge
