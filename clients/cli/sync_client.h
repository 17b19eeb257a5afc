#pragma once

// A reference client of the Sync protocol: the stream (SyncClient) and a replica that applies
// changes in whole checkpoints (Replica). Used by shapebridge-cli, the tests and the benchmarks.

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shapebridge/sync/v1/sync.grpc.pb.h"

namespace shapebridge::client {

namespace pb = ::shapebridge::sync::v1;

struct SubscriptionSpec {
  std::string id;
  std::string shape;
  std::map<std::string, std::string> params;
  std::string filter;
  std::optional<pb::Offset> resume_from;
  std::string instance_id;  // with resume_from
};

// One Sync stream. Not thread-safe, except Cancel(). Write calls (Subscribe, Unsubscribe, Ack)
// may be made while another thread blocks in Next().
class SyncClient {
 public:
  // `target` is host:port; `token` the JWT ("" sends no authorization metadata).
  SyncClient(const std::string& target, const std::string& token,
             const grpc::ChannelArguments& args = {});
  ~SyncClient();

  bool Subscribe(const SubscriptionSpec& spec);
  bool Unsubscribe(const std::string& id);
  // Blocks for the next message; false when the stream ended (then Finish() gives the status).
  bool Next(pb::SyncResponse* response);
  grpc::Status Finish();
  void Cancel();

 private:
  std::unique_ptr<pb::ShapeSync::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::SyncRequest, pb::SyncResponse>> stream_;
  std::mutex write_mu_;
};

// Write-back: pushes one batch of mutations (one unary call on its own channel).
grpc::Status Push(const std::string& target, const std::string& token,
                  const pb::PushRequest& request, pb::PushResponse* response);

// The client's replica of its subscriptions. Changes are held until a checkpoint and then
// applied all at once, so the replica only ever shows states of whole checkpoints.
class Replica {
 public:
  struct Row {
    std::vector<pb::Value> values;  // in schema column order
  };
  struct Shape {
    pb::ShapeSchema schema;
    std::map<std::string, Row> rows;   // by the key's text form
    std::optional<pb::Offset> offset;  // of the last applied change
    bool up_to_date = false;
    // A checkpoint covers the subscriptions the stream has acknowledged (sent their ShapeSchema);
    // one requested on a new stream is not covered until then. The last checkpoint that covered
    // this one: its rows are the shape's rows as of that LSN.
    uint64_t checkpoint = 0;
    bool covered = false;  // acknowledged on the current stream
  };

  // Applies one message. Returns the subscription ids that must refetch (their rows are
  // dropped), so the caller can subscribe again.
  std::vector<std::string> Apply(const pb::SyncResponse& response);

  const std::map<std::string, Shape>& shapes() const { return shapes_; }
  // The last checkpoint applied (0 before the first).
  uint64_t checkpoint() const { return checkpoint_; }
  // Changes received and not applied yet.
  size_t pending() const { return pending_.size(); }
  // Forgets a subscription (after a must_refetch or an unsubscribe).
  void Drop(const std::string& id);
  // Call it when a stream ends: drops the changes not applied yet (the next stream resumes from
  // the offsets of what was applied and sends the rest again), and no subscription is covered by
  // checkpoints until the next stream acknowledges it.
  void StreamEnded();

  static std::string KeyText(const google::protobuf::RepeatedPtrField<pb::Value>& key);
  static std::string ValueText(const pb::Value& v);

 private:
  std::map<std::string, Shape> shapes_;
  std::vector<std::pair<std::string, pb::Change>> pending_;
  uint64_t checkpoint_ = 0;
};

}  // namespace shapebridge::client
