#pragma once

#include <functional>
#include <string>
#include <vector>

namespace shapebridge::bench {

// One measured number next to its baseline from the same run.
struct Result {
  std::string name;
  double value = 0;
  std::string unit;
  std::string baseline_name;
  double baseline_value = 0;
  // value / baseline_value.
  double ratio() const { return baseline_value == 0 ? 0 : value / baseline_value; }
  // The ratio the project aims for, with its direction ("ratio >= 0.8").
  std::string target;
};

struct Benchmark {
  std::string name;
  std::string description;
  std::function<std::vector<Result>()> run;
};

std::vector<Benchmark> ReplicationBenchmarks();
std::vector<Benchmark> RoutingBenchmarks();
std::vector<Benchmark> SyncBenchmarks();

}  // namespace shapebridge::bench
