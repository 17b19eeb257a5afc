#include "clients/cli/sync_client.h"

#include <cstdio>
#include <sstream>

namespace shapebridge::client {

SyncClient::SyncClient(const std::string& target, const std::string& token,
                       const grpc::ChannelArguments& args)
    : stub_(pb::ShapeSync::NewStub(
          grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args))) {
  if (!token.empty()) context_.AddMetadata("authorization", "Bearer " + token);
  stream_ = stub_->Sync(&context_);
}

grpc::Status Push(const std::string& target, const std::string& token,
                  const pb::PushRequest& request, pb::PushResponse* response) {
  auto stub =
      pb::ShapeSync::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  return stub->Push(&context, request, response);
}

SyncClient::~SyncClient() {
  context_.TryCancel();
  if (stream_) (void)stream_->Finish();
}

bool SyncClient::Subscribe(const SubscriptionSpec& spec) {
  pb::SyncRequest request;
  pb::Subscribe* s = request.mutable_subscribe();
  s->set_subscription_id(spec.id);
  s->set_shape(spec.shape);
  for (const auto& [k, v] : spec.params) (*s->mutable_params())[k] = v;
  s->set_filter(spec.filter);
  if (spec.resume_from) *s->mutable_resume_from() = *spec.resume_from;
  s->set_instance_id(spec.instance_id);
  std::lock_guard lock(write_mu_);
  return stream_->Write(request);
}

bool SyncClient::Unsubscribe(const std::string& id) {
  pb::SyncRequest request;
  request.mutable_unsubscribe()->set_subscription_id(id);
  std::lock_guard lock(write_mu_);
  return stream_->Write(request);
}

bool SyncClient::Next(pb::SyncResponse* response) { return stream_->Read(response); }

grpc::Status SyncClient::Finish() {
  grpc::Status status = stream_->Finish();
  stream_.reset();
  return status;
}

void SyncClient::Cancel() { context_.TryCancel(); }

std::string Replica::ValueText(const pb::Value& v) {
  switch (v.kind_case()) {
    case pb::Value::kNull:
      return "null";
    case pb::Value::kUnchanged:
      return "(unchanged)";
    case pb::Value::kBoolValue:
      return v.bool_value() ? "true" : "false";
    case pb::Value::kIntValue:
      return std::to_string(v.int_value());
    case pb::Value::kFloatValue: {
      std::ostringstream os;
      os.precision(17);
      os << v.float_value();
      return os.str();
    }
    case pb::Value::kText:
      return v.text();
    case pb::Value::kBytesValue: {
      std::string out = "\\x";
      for (unsigned char c : v.bytes_value()) {
        char buf[3];
        std::snprintf(buf, sizeof buf, "%02x", c);
        out += buf;
      }
      return out;
    }
    case pb::Value::kTimestampUs:
      return std::to_string(v.timestamp_us()) + "us";
    case pb::Value::kTimestamptzUs:
      return std::to_string(v.timestamptz_us()) + "us+00";
    case pb::Value::kDateDays:
      return std::to_string(v.date_days()) + "d";
    case pb::Value::kNumeric:
      return v.numeric();
    case pb::Value::KIND_NOT_SET:
      break;
  }
  return "?";
}

std::string Replica::KeyText(const google::protobuf::RepeatedPtrField<pb::Value>& key) {
  std::string out;
  for (int i = 0; i < key.size(); ++i) {
    if (i) out += "|";
    out += ValueText(key.Get(i));
  }
  return out;
}

void Replica::Drop(const std::string& id) {
  shapes_.erase(id);
  std::erase_if(pending_, [&](const auto& p) { return p.first == id; });
}

void Replica::StreamEnded() {
  pending_.clear();
  for (auto& [id, shape] : shapes_) shape.covered = false;
}

std::vector<std::string> Replica::Apply(const pb::SyncResponse& response) {
  std::vector<std::string> refetch;
  switch (response.response_case()) {
    case pb::SyncResponse::kSchema: {
      Shape& shape = shapes_[response.schema().subscription_id()];
      shape.schema = response.schema();
      shape.covered = true;
      break;
    }
    case pb::SyncResponse::kChanges:
      for (const pb::Change& c : response.changes().changes()) {
        pending_.emplace_back(response.changes().subscription_id(), c);
      }
      break;
    case pb::SyncResponse::kUpToDate:
      shapes_[response.up_to_date().subscription_id()].up_to_date = true;
      break;
    case pb::SyncResponse::kCheckpoint:
      for (auto& [id, c] : pending_) {
        auto it = shapes_.find(id);
        if (it == shapes_.end()) continue;
        Shape& shape = it->second;
        const std::string key = KeyText(c.key());
        switch (c.op()) {
          case pb::Change::INSERT:
            shape.rows[key].values.assign(c.row().begin(), c.row().end());
            break;
          case pb::Change::UPDATE: {
            Row& row = shape.rows[key];
            row.values.resize(c.row_size());
            for (int i = 0; i < c.row_size(); ++i) {
              if (!c.row(i).has_unchanged()) row.values[i] = c.row(i);
            }
            break;
          }
          case pb::Change::DELETE:
            shape.rows.erase(key);
            break;
          default:
            break;
        }
        shape.offset = c.offset();
      }
      pending_.clear();
      checkpoint_ = response.checkpoint().lsn();
      for (auto& [id, shape] : shapes_) {
        if (shape.covered) shape.checkpoint = checkpoint_;
      }
      break;
    case pb::SyncResponse::kMustRefetch:
      refetch.push_back(response.must_refetch().subscription_id());
      Drop(response.must_refetch().subscription_id());
      break;
    default:
      break;
  }
  return refetch;
}

}  // namespace shapebridge::client
