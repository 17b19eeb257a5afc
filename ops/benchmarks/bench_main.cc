// shapebridge-bench: runs the named benchmarks (all by default), prints a table and writes
// the results as JSON. Driven by ops/bench.

#include <filesystem>
#include <fstream>
#include <iostream>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "ops/benchmarks/bench.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  using shapebridge::bench::Benchmark;
  using shapebridge::bench::Result;
  CLI::App app{"shapebridge benchmarks"};
  std::string out = "build/bench/results.json";
  std::vector<std::string> names;
  bool list = false;
  app.add_option("--out", out, "Where to write the results (JSON)");
  app.add_flag("--list", list, "List the benchmarks");
  app.add_option("names", names, "Benchmarks to run (default: all)");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);  // the service's progress lines would drown the results

  std::vector<Benchmark> all = shapebridge::bench::ReplicationBenchmarks();
  for (auto& b : shapebridge::bench::RoutingBenchmarks()) all.push_back(std::move(b));
  for (auto& b : shapebridge::bench::SyncBenchmarks()) all.push_back(std::move(b));
  if (list) {
    for (const auto& b : all) std::cout << b.name << "\t" << b.description << "\n";
    return 0;
  }
  std::vector<const Benchmark*> chosen;
  for (const auto& name : names) {
    auto it = std::find_if(all.begin(), all.end(), [&](const auto& b) { return b.name == name; });
    if (it == all.end()) {
      std::cerr << "unknown benchmark \"" << name << "\"; --list shows them\n";
      return 2;
    }
    chosen.push_back(&*it);
  }
  if (chosen.empty()) {
    for (const auto& b : all) chosen.push_back(&b);
  }
  std::vector<Result> results;
  for (const Benchmark* b : chosen) {
    std::cerr << "==> benchmark " << b->name << ": " << b->description << "\n";
    for (auto& r : b->run()) results.push_back(std::move(r));
  }
  nlohmann::json json = nlohmann::json::array();
  std::cout << absl::StrFormat("%-28s %14s %-8s %-28s %14s %7s  %s\n", "name", "value", "unit",
                               "baseline", "baseline", "ratio", "target");
  for (const auto& r : results) {
    std::cout << absl::StrFormat("%-28s %14.1f %-8s %-28s %14.1f %7.3f  %s\n", r.name, r.value,
                                 r.unit, r.baseline_name, r.baseline_value, r.ratio(), r.target);
    json.push_back({{"name", r.name},
                    {"value", r.value},
                    {"unit", r.unit},
                    {"baseline_name", r.baseline_name},
                    {"baseline_value", r.baseline_value},
                    {"ratio", r.ratio()},
                    {"target", r.target}});
  }
  std::filesystem::create_directories(std::filesystem::path(out).parent_path());
  std::ofstream(out) << json.dump(2) << "\n";
  std::cerr << "==> results written to " << out << "\n";
  return 0;
}
