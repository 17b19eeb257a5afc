// `routing`: 1,000,000 row changes through the shape router with 1, 1,000 and 100,000 registered
// instances of `project_id = $project_id`, and with 100,000 of which 1% cannot be indexed
// (`project_id + 0 = $project_id`, scanned for every change). Every change is an UPDATE of a
// task's title, task ids 0..99,999 over and over, with project_id = task id mod the number of
// instances, so each change affects exactly one instance in every run: the runs differ only in
// how many instances are registered. Changes are routed as the routing stage routes them: decoded
// into reused RowChanges, in runs of RoutingSink::kRouteBatch. Each run is measured twice and the
// faster counts.

#include <chrono>
#include <iostream>
#include <span>
#include <stdexcept>

#include "bridge/log/routing_sink.h"
#include "ops/benchmarks/bench.h"
#include "shapes/definition.h"
#include "shapes/instance.h"
#include "shapes/router.h"

namespace shapebridge::bench {
namespace {

using Clock = std::chrono::steady_clock;
using shapes::ShapeInstance;

constexpr int kChanges = 1'000'000;
constexpr int kDistinctChanges = 100'000;

shapes::TableSchema Tasks() {
  return shapes::TableSchema{.schema = "public",
                             .name = "tasks",
                             .columns = {{"id", pgtype::kInt4},
                                         {"project_id", pgtype::kInt4},
                                         {"title", pgtype::kText},
                                         {"status", pgtype::kText}},
                             .primary_key = {"id"}};
}

std::shared_ptr<const shapes::ShapeDefinition> Define(const std::string& where) {
  auto def = shapes::CompileDefinition(
      shapes::ShapeDefinitionSpec{
          .name = "tasks_by_project",
          .table = "public.tasks",
          .where = where,
          .params = {shapes::ParamSpec{
              .name = "project_id", .type = "int", .source = shapes::ParamSource::kRequest}}},
      Tasks());
  if (!def.ok()) throw std::runtime_error(def.status().ToString());
  return *def;
}

// The changes/s of routing `total_changes` changes with `instances` instances registered, every
// `scan_every`-th of them (0: none) not indexable; the best of `rounds`.
double Run(int instances, int scan_every, int total_changes, int rounds) {
  const auto indexed = Define("project_id = $project_id");
  const auto scanned = Define("project_id + 0 = $project_id");
  shapes::Router router;
  for (int p = 0; p < instances; ++p) {
    const bool scan = scan_every > 0 && p % scan_every == 0;
    auto instance =
        ShapeInstance::Create(scan ? scanned : indexed, {{"project_id", Value::Int(p)}});
    if (!instance.ok()) throw std::runtime_error(instance.status().ToString());
    if (auto s = router.AddInstance(*instance); !s.ok()) throw std::runtime_error(s.ToString());
  }
  RelationInfo relation{
      .id = RelationId(16384), .schema = "public", .name = "tasks", .replica_identity = 'f'};
  for (const auto& c : Tasks().columns) {
    relation.columns.push_back(ColumnInfo{.name = c.name, .type_oid = c.type_oid, .key = true});
  }
  // Changes are decoded into reused RowChanges and routed in runs of RoutingSink::kRouteBatch,
  // as the routing stage hands them to the router.
  const RowChange prototype{
      .op = ChangeOp::kUpdate,
      .relation = relation.id,
      .old_values = {Value::Int(0), Value::Int(0), Value::String(ValueKind::kText, "task"),
                     Value::String(ValueKind::kText, "todo")},
      .new_values = {Value::Int(0), Value::Int(0), Value::String(ValueKind::kText, "task (edited)"),
                     Value::String(ValueKind::kText, "todo")}};
  std::vector<RowChange> run(RoutingSink::kRouteBatch, prototype);
  static_assert(kChanges % RoutingSink::kRouteBatch == 0);
  double best = 1e9;
  for (int round = 0; round < rounds; ++round) {
    std::vector<shapes::ShapeEntry> out;
    uint64_t entries = 0;
    const auto start = Clock::now();
    for (int i = 0; i < total_changes; i += static_cast<int>(run.size())) {
      for (size_t j = 0; j < run.size(); ++j) {
        const int id = (i + static_cast<int>(j)) % kDistinctChanges;
        run[j].old_values[0] = run[j].new_values[0] = Value::Int(id);
        run[j].old_values[1] = run[j].new_values[1] = Value::Int(id % instances);
      }
      out.clear();
      router.Route(relation, std::span<const RowChange>(run), &out);
      entries += out.size();
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (entries != static_cast<uint64_t>(total_changes)) {
      throw std::runtime_error("the router emitted " + std::to_string(entries) +
                               " entries, not one per change");
    }
    best = std::min(best, seconds);
  }
  std::cerr << "    " << instances << " instances" << (scan_every > 0 ? " (1% not indexable)" : "")
            << ": " << best << " s, " << router.stats().candidates.load() << " candidates, "
            << router.stats().scanned.load() << " scanned\n";
  return total_changes / best;
}

std::vector<Result> RunRouting() {
  const double one = Run(1, 0, kChanges, 2);
  const double thousand = Run(1'000, 0, kChanges, 2);
  const double hundred_thousand = Run(100'000, 0, kChanges, 2);
  const double with_scans = Run(100'000, 100, kChanges, 1);
  const std::string baseline = "routing, 1 instance";
  return {
      Result{.name = "routing, 1 instance",
             .value = one,
             .unit = "changes/s",
             .baseline_name = baseline,
             .baseline_value = one},
      Result{.name = "routing, 1,000 instances",
             .value = thousand,
             .unit = "changes/s",
             .baseline_name = baseline,
             .baseline_value = one},
      Result{.name = "routing, 100,000 instances",
             .value = hundred_thousand,
             .unit = "changes/s",
             .baseline_name = baseline,
             .baseline_value = one,
             .target = "ratio >= 0.8"},
      Result{.name = "routing, 100,000, 1% scanned",
             .value = with_scans,
             .unit = "changes/s",
             .baseline_name = baseline,
             .baseline_value = one},
  };
}

}  // namespace

std::vector<Benchmark> RoutingBenchmarks() {
  return {Benchmark{.name = "routing",
                    .description = "1M changes through the shape router with 1, 1,000 and "
                                   "100,000 instances, and 100,000 with 1% not indexable",
                    .run = RunRouting}};
}

}  // namespace shapebridge::bench
