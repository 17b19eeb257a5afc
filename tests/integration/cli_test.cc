// The shapebridge binary's commands as a user runs them: exit codes and output.

#include <sys/wait.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "bridge/log/embedded_log.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/subprocess.h"

namespace shapebridge {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using Output = testing::CommandOutput;

Output RunShapebridge(const std::string& args) {
  return testing::RunCommand(testing::ShapebridgeBinary() + " " + args);
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sb-cli-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(CliTest, LogTailPrintsEveryTransactionAsJson) {
  {
    auto log = EmbeddedLog::Open(EmbeddedLogConfig{.dir = (dir_ / "log").string()});
    ASSERT_TRUE(log.ok());
    RelationInfo tasks{.id = RelationId(7),
                       .schema = "public",
                       .name = "tasks",
                       .columns = {{.name = "id", .type_oid = 23, .key = true},
                                   {.name = "title", .type_oid = 25}}};
    for (int i = 1; i <= 3; ++i) {
      const uint64_t lsn = 1000 * i;
      ASSERT_TRUE((*log)->OnBegin({.xid = Xid(i), .commit_lsn = Lsn(lsn)}).ok());
      ASSERT_TRUE((*log)->OnRelation(tasks).ok());
      ASSERT_TRUE((*log)
                      ->OnChange({.op = ChangeOp::kInsert,
                                  .relation = RelationId(7),
                                  .new_values = {Value::Int(i), Value::Null()}})
                      .ok());
      ASSERT_TRUE((*log)->OnCommit({.commit_lsn = Lsn(lsn), .end_lsn = Lsn(lsn + 8)}).ok());
    }
    ASSERT_TRUE((*log)->Sync().ok());
  }
  const Output out = RunShapebridge("log tail --json --dir " + (dir_ / "log").string());
  ASSERT_EQ(out.exit_code, 0) << out.text;
  std::istringstream lines(out.text);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    const auto json = nlohmann::json::parse(line);
    ++count;
    EXPECT_EQ(json["changes"][0]["table"], "public.tasks");
    EXPECT_EQ(json["changes"][0]["new"]["id"], count);
    EXPECT_TRUE(json["changes"][0]["new"]["title"].is_null());
  }
  EXPECT_EQ(count, 3);

  const Output from = RunShapebridge("log tail --from 0/BB8 --dir " + (dir_ / "log").string());
  ASSERT_EQ(from.exit_code, 0) << from.text;
  EXPECT_THAT(from.text, HasSubstr("begin xid=3 commit_lsn=0/BB8"));
  EXPECT_THAT(from.text, Not(HasSubstr("xid=2")));
}

TEST_F(CliTest, CheckConfigPrintsEveryErrorAndFails) {
  const auto path = (dir_ / "bad.yaml").string();
  std::ofstream(path) << "postgres:\n  dsn: x\nreplication:\n  tables: [tasks]\n  slots: a\n";
  const Output out = RunShapebridge("check-config " + path);
  EXPECT_EQ(out.exit_code, 2);
  EXPECT_THAT(out.text, HasSubstr(path + ":5:3: replication.slots: unknown key"));
  EXPECT_THAT(out.text, HasSubstr("\"tasks\" must be schema-qualified"));
  EXPECT_THAT(out.text, HasSubstr("log.dir: is required"));

  const auto good = (dir_ / "good.yaml").string();
  std::ofstream(good) << "postgres:\n  dsn: x\nreplication:\n  tables: [public.tasks]\n"
                      << "log:\n  dir: /tmp/x\n";
  const Output ok = RunShapebridge("check-config " + good);
  EXPECT_EQ(ok.exit_code, 0) << ok.text;
}

TEST_F(CliTest, ReplicateRefusesAnInvalidConfig) {
  const auto path = (dir_ / "c.yaml").string();
  std::ofstream(path) << "postgres:\n  dsn: x\nreplication:\n  tables: [public.tasks]\n"
                      << "  protocol_version: 3\nlog:\n  dir: " << (dir_ / "log").string() << "\n";
  const Output out = RunShapebridge("replicate --config " + path);
  EXPECT_EQ(out.exit_code, 2);
  EXPECT_THAT(out.text, HasSubstr("replication.protocol_version: must be 1 or 2"));
}

// `dev-kafka` runs a cluster that outside Kafka clients use: kcat produces to it and reads back
// what it produced; SIGTERM stops it cleanly.
TEST_F(CliTest, DevKafkaServesKafkaClientsUntilSigterm) {
  const std::string log = (dir_ / "dev-kafka.log").string();
  testing::Subprocess kafka({testing::ShapebridgeBinary(), "dev-kafka", "--brokers", "2"}, log);
  std::string bootstrap;
  for (int i = 0; i < 100 && bootstrap.empty(); ++i) {
    std::ifstream in(log);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("bootstrap.servers=", 0) == 0) bootstrap = line.substr(18);
    }
    if (bootstrap.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(bootstrap.empty()) << "no bootstrap.servers line in " << log;
  EXPECT_EQ(std::count(bootstrap.begin(), bootstrap.end(), ','), 1) << bootstrap;  // 2 brokers
  Output produced =
      testing::RunCommand("printf 'one\\ntwo\\n' | kcat -P -b " + bootstrap + " -t dev -p 0 2>&1");
  ASSERT_EQ(produced.exit_code, 0) << produced.text;
  Output consumed =
      testing::RunCommand("kcat -C -b " + bootstrap + " -t dev -p 0 -o beginning -e -q 2>&1");
  ASSERT_EQ(consumed.exit_code, 0) << consumed.text;
  EXPECT_EQ(consumed.text, "one\ntwo\n");
  const int status = kafka.Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // The usage error for a bad broker count.
  Output bad = RunShapebridge("dev-kafka --brokers 0 2>&1");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.text, HasSubstr("--brokers"));
}

}  // namespace
}  // namespace shapebridge
