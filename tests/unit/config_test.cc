#include "bridge/app/config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shapebridge {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kMinimal[] = R"(postgres:
  dsn: "host=db dbname=app"
replication:
  tables: [public.tasks]
log:
  dir: /var/lib/shapebridge
)";

TEST(ConfigTest, MinimalConfigGetsDefaults) {
  auto config = ParseConfig(kMinimal, "c.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->replication.dsn, "host=db dbname=app");
  EXPECT_EQ(config->replication.slot, "shapebridge");
  EXPECT_EQ(config->replication.tables, std::vector<std::string>{"public.tasks"});
  EXPECT_EQ(config->replication.protocol_version, 1);
  EXPECT_EQ(config->replication.heartbeat_interval, std::chrono::milliseconds(10'000));
  EXPECT_EQ(config->log.dir, "/var/lib/shapebridge");
  EXPECT_EQ(config->log.segment_bytes, 64u << 20);
}

TEST(ConfigTest, EveryKeyIsRead) {
  auto config = ParseConfig(R"(postgres:
  dsn: x
replication:
  slot: s1
  publication: p1
  tables: [public.a, app.b]
  manage_publication: false
  set_replica_identity_full: false
  protocol_version: 2
  status_interval_ms: 500
  heartbeat_interval_ms: 0
  sync_interval_ms: 7
  reconnect_backoff_min_ms: 3
  reconnect_backoff_max_ms: 9
  slot_busy_timeout_ms: 11
  connect_timeout_s: 4
log:
  backend: embedded
  dir: d
  segment_bytes: 8192
  retention_bytes: 100000
)",
                            "c.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const auto& r = config->replication;
  EXPECT_EQ(r.slot, "s1");
  EXPECT_EQ(r.publication, "p1");
  EXPECT_EQ(r.tables, (std::vector<std::string>{"public.a", "app.b"}));
  EXPECT_FALSE(r.manage_publication);
  EXPECT_FALSE(r.set_replica_identity_full);
  EXPECT_EQ(r.protocol_version, 2);
  EXPECT_EQ(r.status_interval.count(), 500);
  EXPECT_EQ(r.heartbeat_interval.count(), 0);
  EXPECT_EQ(r.sync_interval.count(), 7);
  EXPECT_EQ(r.reconnect_backoff_min.count(), 3);
  EXPECT_EQ(r.reconnect_backoff_max.count(), 9);
  EXPECT_EQ(r.slot_busy_timeout.count(), 11);
  EXPECT_EQ(r.connect_timeout.count(), 4);
  EXPECT_EQ(config->log.segment_bytes, 8192u);
  EXPECT_EQ(config->log.retention_bytes, 100000u);
}

TEST(ConfigTest, MetricsSection) {
  auto defaults = ParseConfig(kMinimal, "c.yaml");
  ASSERT_TRUE(defaults.ok()) << defaults.status();
  EXPECT_EQ(defaults->metrics.listen, "0.0.0.0:7071");
  EXPECT_EQ(defaults->metrics.slot_poll_interval.count(), 10000);
  auto config = ParseConfig(
      std::string(kMinimal) + "metrics:\n  listen: \"\"\n  slot_poll_interval_ms: 250\n", "c.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->metrics.listen, "");
  EXPECT_EQ(config->metrics.slot_poll_interval.count(), 250);
  auto bad = ParseConfig(std::string(kMinimal) + "metrics:\n  port: 9090\n", "c.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("metrics"));
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("port"));
}

TEST(ConfigTest, UnknownKeyIsNamedWithItsLocation) {
  auto config = ParseConfig(std::string(kMinimal) + "  segmnt_bytes: 5\n", "app.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("app.yaml:7:3: log.segmnt_bytes: unknown key"));
}

TEST(ConfigTest, DuplicateKeyIsAnError) {
  auto config = ParseConfig(std::string(kMinimal) + "  dir: /other\n", "app.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("log.dir: duplicate key"));
}

TEST(ConfigTest, EveryErrorIsReported) {
  auto config = ParseConfig(R"(replication:
  tables: [tasks]
  protocol_version: 4
  status_interval_ms: fast
log:
  backend: kafak
)",
                            "bad.yaml");
  ASSERT_FALSE(config.ok());
  const std::string message(config.status().message());
  EXPECT_THAT(message, HasSubstr("postgres.dsn: is required"));
  EXPECT_THAT(message, HasSubstr("\"tasks\" must be schema-qualified"));
  EXPECT_THAT(message, HasSubstr("replication.protocol_version: must be 1 or 2"));
  EXPECT_THAT(message,
              HasSubstr("bad.yaml:4:23: replication.status_interval_ms: has the wrong type"));
  EXPECT_THAT(message,
              HasSubstr("log.backend: \"kafak\" is not a log backend (embedded or kafka)"));
  EXPECT_THAT(message, HasSubstr("log.dir: is required"));
}

TEST(ConfigTest, SyntaxErrorHasALocation) {
  auto config = ParseConfig("postgres: [\n", "x.yaml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()), HasSubstr("x.yaml:"));
}

TEST(ConfigTest, ShapesAreReadAndTheirTablesReplicated) {
  auto config = ParseConfig(R"(postgres:
  dsn: x
log:
  dir: d
shapes:
  - name: tasks_by_project
    table: public.tasks
    columns: [id, project_id, title]
    where: "project_id = $project_id"
    writable: true
    params:
      project_id: {type: int, from: request, claim: projects}
  - name: my_tasks
    table: public.tasks
    where: "assignee = $user"
    params:
      user:
        type: uuid
        from: claim
        claim: sub
)",
                            "s.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  // The two configured, then write-back's built-in shapes (a shape is writable).
  ASSERT_EQ(config->shapes.size(), 4u);
  EXPECT_EQ(config->shapes[2].name, "shapebridge_mutations");
  EXPECT_EQ(config->shapes[3].name, "shapebridge_violations");
  EXPECT_EQ(config->shapes[3].params.at(0).claim, "sub");
  const auto& a = config->shapes[0];
  EXPECT_EQ(a.name, "tasks_by_project");
  EXPECT_EQ(a.table, "public.tasks");
  EXPECT_EQ(a.columns, (std::vector<std::string>{"id", "project_id", "title"}));
  EXPECT_EQ(a.where, "project_id = $project_id");
  EXPECT_TRUE(a.writable);
  ASSERT_EQ(a.params.size(), 1u);
  EXPECT_EQ(a.params[0].name, "project_id");
  EXPECT_EQ(a.params[0].type, "int");
  EXPECT_EQ(a.params[0].source, shapes::ParamSource::kRequest);
  EXPECT_EQ(a.params[0].claim, "projects");
  const auto& b = config->shapes[1];
  EXPECT_FALSE(b.writable);
  EXPECT_TRUE(b.columns.empty());
  EXPECT_EQ(b.params[0].source, shapes::ParamSource::kClaim);
  EXPECT_EQ(b.params[0].claim, "sub");
  EXPECT_EQ(config->shape_locations[1], "s.yaml:13:5");
  // The shapes' tables are replicated without being named in replication.tables.
  EXPECT_EQ(config->replication.tables,
            (std::vector<std::string>{"public.tasks", "shapebridge.mutations",
                                      "shapebridge.violations"}));
}

TEST(ConfigTest, WritebackSectionIsReadAndChecked) {
  const std::string head = R"(postgres:
  dsn: x
log:
  dir: d
shapes:
  - name: bookings
    table: public.bookings
    writable: true
    params:
      b: {type: int, from: request, claim: buildings}
    where: "building = $b"
)";
  auto config = ParseConfig(head + R"(writeback:
  subject_claim: user_id
  violation_ttl_s: 600
  mutation_retention_s: 86400
  sweep_interval_s: 5
  deletes: newest_wins
  rules:
    - name: double_booking
      table: public.bookings
      check: SELECT id FROM public.bookings WHERE room = $room AND id <> $id
      description: "room {new.room} is taken"
    - name: no_description
      table: public.bookings
      check: SELECT id FROM public.bookings WHERE false
)",
                            "w.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  const WritebackConfig& w = config->writeback;
  EXPECT_EQ(w.subject_claim, "user_id");
  EXPECT_EQ(w.violation_ttl, std::chrono::seconds(600));
  EXPECT_EQ(w.mutation_retention, std::chrono::seconds(86400));
  EXPECT_EQ(w.sweep_interval, std::chrono::seconds(5));
  EXPECT_EQ(w.deletes, DeleteRule::kNewestWins);
  ASSERT_EQ(w.rules.size(), 2u);
  EXPECT_EQ(w.rules[0].name, "double_booking");
  EXPECT_EQ(w.rules[0].table, "public.bookings");
  EXPECT_EQ(w.rules[0].description, "room {new.room} is taken");
  EXPECT_EQ(w.rules[0].location, "w.yaml:19:7");
  EXPECT_EQ(w.rules[1].description, "no_description");
  // The built-in shapes read the subject from the configured claim.
  EXPECT_EQ(config->shapes.back().params.at(0).claim, "user_id");

  // The defaults.
  config = ParseConfig(head, "w.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->writeback.violation_ttl, std::chrono::hours(72));
  EXPECT_EQ(config->writeback.subject_claim, "sub");
  EXPECT_EQ(config->writeback.deletes, DeleteRule::kWins);

  auto bad = ParseConfig(head + R"(  - name: shapebridge_mine
    table: public.x
writeback:
  violation_ttl_s: 0
  deletes: sometimes
  colour: blue
  rules:
    - name: r
      table: bookings
    - name: r
      table: public.bookings
      check: SELECT 1
)",
                         "w.yaml");
  ASSERT_FALSE(bad.ok());
  const std::string message(bad.status().message());
  EXPECT_THAT(message, HasSubstr("shapes.shapebridge_mine.name: names starting with shapebridge_"));
  EXPECT_THAT(message, HasSubstr("writeback.violation_ttl_s: must be at least 1"));
  EXPECT_THAT(message, HasSubstr("writeback.colour: unknown key"));
  EXPECT_THAT(message, HasSubstr("writeback.deletes: must be wins"));
  EXPECT_THAT(message, HasSubstr("writeback.rules.r.table: is required, schema-qualified"));
  EXPECT_THAT(message, HasSubstr("writeback.rules.r.check: is required"));
  EXPECT_THAT(message, HasSubstr("writeback.rules.r: is defined twice"));

  // Rules without a writable shape check nothing.
  bad = ParseConfig(R"(postgres:
  dsn: x
log:
  dir: d
shapes:
  - name: t
    table: public.t
writeback:
  rules:
    - name: r
      table: public.t
      check: SELECT id FROM public.t
)",
                    "w.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("writeback.rules: no shape is writable"));
}

TEST(ConfigTest, ShapeErrorsNameTheShapeAndTheKey) {
  auto config = ParseConfig(R"(postgres:
  dsn: x
log:
  dir: d
shapes:
  - name: a
    table: tasks
    wher: "x = 1"
    params:
      p: {type: int, from: claim}
      q: {type: int, from: header}
  - name: a
    table: public.t
)",
                            "s.yaml");
  ASSERT_FALSE(config.ok());
  const std::string message(config.status().message());
  EXPECT_THAT(message, HasSubstr("s.yaml:8:5: shapes.a.wher: unknown key"));
  EXPECT_THAT(message, HasSubstr("shapes.a.table: is required, schema-qualified"));
  EXPECT_THAT(message, HasSubstr("shapes.a.params.p.claim: is required with from: claim"));
  EXPECT_THAT(message, HasSubstr("shapes.a.params.q.from: must be claim"));
  EXPECT_THAT(message, HasSubstr("s.yaml:12:5: shapes.a: is defined twice"));
  EXPECT_THAT(message, Not(HasSubstr("replication.tables")));
}

TEST(ConfigTest, KafkaSectionIsReadAndChecked) {
  const std::string head = R"(postgres:
  dsn: x
replication:
  tables: [public.t]
log:
  backend: kafka
)";
  auto config = ParseConfig(head + R"(kafka:
  bootstrap_servers: "b1:9092,b2:9092"
  topic_prefix: app.cdc
  partitions: 12
  replication_factor: 3
  checkpoint_interval_ms: 500
  flush_timeout_ms: 20000
  properties:
    security.protocol: SASL_SSL
    sasl.mechanism: PLAIN
)",
                            "k.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->log_backend, "kafka");
  const kafka::KafkaConfig& k = config->kafka;
  EXPECT_EQ(k.bootstrap_servers, "b1:9092,b2:9092");
  EXPECT_EQ(k.ChangeTopic(), "app.cdc.changes");
  EXPECT_EQ(k.partitions, 12);
  EXPECT_EQ(k.replication_factor, 3);
  EXPECT_EQ(k.checkpoint_interval, std::chrono::milliseconds(500));
  EXPECT_EQ(k.flush_timeout, std::chrono::milliseconds(20000));
  EXPECT_EQ(k.properties.at("security.protocol"), "SASL_SSL");
  EXPECT_FALSE(k.properties.contains("sasl.password"));
  // The SASL password may come from the environment (a Secret).
  setenv("SHAPEBRIDGE_KAFKA_SASL_PASSWORD", "s3cret", 1);
  auto with_password = ParseConfig(head + "kafka:\n  bootstrap_servers: b:9092\n", "k.yaml");
  unsetenv("SHAPEBRIDGE_KAFKA_SASL_PASSWORD");
  ASSERT_TRUE(with_password.ok()) << with_password.status();
  EXPECT_EQ(with_password->kafka.properties.at("sasl.password"), "s3cret");
  // log.dir is the embedded log's: not needed here.

  auto bad = ParseConfig(head + R"(kafka:
  topic_prefix: "a b"
  partitions: 0
  properties:
    acks: "1"
    enable.idempotence: "false"
)",
                         "k.yaml");
  ASSERT_FALSE(bad.ok());
  const std::string message(bad.status().message());
  EXPECT_THAT(message, HasSubstr("kafka.bootstrap_servers: is required with log.backend: kafka"));
  EXPECT_THAT(message, HasSubstr("kafka.topic_prefix: must be letters"));
  EXPECT_THAT(message, HasSubstr("kafka.partitions: must be at least 1"));
  EXPECT_THAT(message, HasSubstr("kafka.properties.acks: must be all"));
  EXPECT_THAT(message, HasSubstr("kafka.properties.enable.idempotence: must be true"));
}

}  // namespace
}  // namespace shapebridge
