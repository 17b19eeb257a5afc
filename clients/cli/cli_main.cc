// shapebridge-cli: subscribes to shapes and prints the initial sync and the live changes.

#include <signal.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "clients/cli/sync_client.h"

namespace {

using shapebridge::client::Replica;
using shapebridge::client::pb::SyncResponse;

std::string RowText(const shapebridge::client::pb::ShapeSchema& schema,
                    const shapebridge::client::pb::Change& change) {
  std::string out;
  for (int i = 0; i < change.row_size() && i < schema.columns_size(); ++i) {
    if (change.row(i).has_unchanged()) continue;
    out += " " + schema.columns(i).name() + "=" + Replica::ValueText(change.row(i));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shapebridge-cli: a command-line client of a shapebridge server"};
  app.require_subcommand(1);
  std::string server = "127.0.0.1:7070";
  std::string token;
  std::string shape;
  std::vector<std::string> params;
  std::string filter;
  bool until_up_to_date = false;
  double seconds = 0;
  auto* sync = app.add_subcommand("sync", "Subscribe to one shape and print what arrives");
  sync->add_option("--server,-s", server, "host:port of the server")->capture_default_str();
  sync->add_option("--token,-t", token, "The JWT (or set SHAPEBRIDGE_TOKEN)")
      ->envname("SHAPEBRIDGE_TOKEN");
  sync->add_option("--shape", shape, "Shape definition name")->required();
  sync->add_option("--param,-p", params, "A request parameter, name=value (repeatable)");
  sync->add_option("--filter", filter, "A filter in the WHERE language over the shape's columns");
  sync->add_flag("--until-up-to-date", until_up_to_date,
                 "Exit after the initial sync instead of following live changes");
  sync->add_option("--seconds", seconds, "Exit after this many seconds (0: run until Ctrl-C)");
  CLI11_PARSE(app, argc, argv);

  shapebridge::client::SubscriptionSpec spec{.id = "1", .shape = shape, .filter = filter};
  for (const std::string& p : params) {
    const size_t eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "shapebridge-cli: --param must be name=value, not \"" << p << "\"\n";
      return 2;
    }
    spec.params[p.substr(0, eq)] = p.substr(eq + 1);
  }
  shapebridge::client::SyncClient client(server, token);
  if (seconds > 0) {
    std::thread([&client, seconds] {
      std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
      client.Cancel();
    }).detach();
  }
  client.Subscribe(spec);
  Replica replica;
  SyncResponse r;
  const auto started = std::chrono::steady_clock::now();
  size_t snapshot_rows = 0;
  bool live = false;
  while (client.Next(&r)) {
    replica.Apply(r);
    switch (r.response_case()) {
      case SyncResponse::kSchema: {
        std::cout << "schema " << r.schema().shape() << " (" << r.schema().table() << ", instance "
                  << r.schema().instance_id() << "):";
        for (const auto& c : r.schema().columns()) {
          std::cout << " " << c.name() << " " << c.type_name() << (c.primary_key() ? "*" : "");
        }
        std::cout << "\n";
        break;
      }
      case SyncResponse::kChanges: {
        const auto& schema = replica.shapes().at(r.changes().subscription_id()).schema;
        for (const auto& c : r.changes().changes()) {
          if (!live) {
            ++snapshot_rows;
            if (snapshot_rows > 20) continue;  // the first rows show what the snapshot holds
          }
          const char* op = c.op() == shapebridge::client::pb::Change::INSERT   ? "insert"
                           : c.op() == shapebridge::client::pb::Change::UPDATE ? "update"
                                                                               : "delete";
          std::cout << (live ? "live " : "snapshot ") << op << " key=" << Replica::KeyText(c.key())
                    << RowText(schema, c) << "\n";
        }
        break;
      }
      case SyncResponse::kUpToDate: {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count();
        if (snapshot_rows > 20) std::cout << "... " << snapshot_rows - 20 << " more rows\n";
        std::cout << "up-to-date: " << snapshot_rows << " rows in " << ms << " ms\n";
        live = true;
        break;
      }
      case SyncResponse::kCheckpoint:
        std::cout << "checkpoint " << r.checkpoint().lsn_text() << " ("
                  << replica.shapes().begin()->second.rows.size() << " rows in the replica)\n";
        if (until_up_to_date && live) {
          client.Cancel();
        }
        break;
      case SyncResponse::kMustRefetch:
        std::cout << "must-refetch: " << r.must_refetch().message() << "\n";
        break;
      default:
        break;
    }
    std::cout.flush();
  }
  grpc::Status status = client.Finish();
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    std::cerr << "shapebridge-cli: " << status.error_message() << " (code "
              << static_cast<int>(status.error_code()) << ")\n";
    return 1;
  }
  return 0;
}
