#include "bridge/server/sync_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bridge/auth/jwt.h"
#include "bridge/log/change_codec.h"
#include "bridge/server/params.h"
#include "bridge/server/snapshotter.h"
#include "bridge/writeback/writer.h"
#include "nlohmann/json.hpp"
#include "shapebridge/sync/v1/sync.grpc.pb.h"
#include "spdlog/spdlog.h"

namespace shapebridge {

namespace {

namespace pb = ::shapebridge::sync::v1;
using Clock = std::chrono::steady_clock;
// How long a resume offset past a Kafka server node's log may wait for the node to reach it.
constexpr auto kResumeAheadWait = std::chrono::seconds(30);

grpc::Status ToGrpc(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

void FillSchema(const std::string& subscription_id, const shapes::ShapeInstance& instance,
                pb::ShapeSchema* out) {
  const shapes::ShapeDefinition& def = instance.definition();
  out->set_subscription_id(subscription_id);
  out->set_shape(def.name);
  out->set_instance_id(instance.id().ToString());
  out->set_table(def.table.QualifiedName());
  for (size_t i = 0; i < def.columns.size(); ++i) {
    const shapes::TableColumn& c = def.table.columns[def.columns[i]];
    pb::ColumnSchema* col = out->add_columns();
    col->set_name(c.name);
    col->set_type_oid(c.type_oid);
    std::optional<shapes::SqlType> t = shapes::SqlTypeFromOid(c.type_oid);
    col->set_type_name(t ? t->ToString() : "other");
    col->set_primary_key(std::find(def.key.begin(), def.key.end(), def.columns[i]) !=
                         def.key.end());
  }
  for (int k : def.key) out->add_primary_key(def.table.columns[k].name);
}

pb::MustRefetch::Reason WireReason(RetireReason r) {
  switch (r) {
    case RetireReason::kTruncated:
      return pb::MustRefetch::TRUNCATED;
    case RetireReason::kOffsetNotFound:
      return pb::MustRefetch::OFFSET_NOT_FOUND;
    case RetireReason::kRetention:
      return pb::MustRefetch::RETIRED;
    case RetireReason::kSchemaChanged:
      return pb::MustRefetch::SCHEMA_CHANGED;
    case RetireReason::kStreamReset:
      return pb::MustRefetch::STREAM_RESET;
    case RetireReason::kNone:
    case RetireReason::kSnapshotFailed:
      break;
  }
  return pb::MustRefetch::REASON_UNSPECIFIED;
}

// The verified token of a call's `authorization` metadata.
absl::StatusOr<auth::VerifiedToken> Authenticate(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
    const auth::JwtVerifier& verifier) {
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return absl::UnauthenticatedError(
        "missing authorization metadata: send \"authorization: Bearer <JWT>\"");
  }
  const std::string header(it->second.data(), it->second.size());
  absl::StatusOr<std::string_view> token = auth::BearerToken(header);
  if (!token.ok()) return token.status();
  return verifier.Verify(*token, std::chrono::system_clock::now());
}

}  // namespace

// The Sync method is served raw (ByteBuffers): changes are stored encoded and sent as they are.
struct SyncServer::Impl final
    : public pb::ShapeSync::WithRawCallbackMethod_Sync<pb::ShapeSync::Service> {
  ServerConfig config;
  DefinitionMap definitions;
  ShapeLog& log;
  SnapshotScheduler& snapshotter;
  const auth::JwtVerifier& verifier;
  ServerStats stats;
  ServerObservers observers;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::atomic<bool> stopping{false};
  std::mutex sessions_mu;
  std::set<Waker*> sessions;  // running session threads, to wake them on shutdown
  std::condition_variable sessions_cv;
  std::mutex health_mu;  // guards shut_down against SetServing
  bool shut_down = false;

  Impl(ServerConfig c, DefinitionMap d, ShapeLog& l, SnapshotScheduler& s,
       const auth::JwtVerifier& v)
      : config(std::move(c)), definitions(std::move(d)), log(l), snapshotter(s), verifier(v) {}

  Writer* writer = nullptr;

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Sync(
      grpc::CallbackServerContext* context) override;
  // Runs on gRPC's synchronous thread pool: the writer blocks on Postgres.
  grpc::Status Push(grpc::ServerContext* context, const pb::PushRequest* request,
                    pb::PushResponse* response) override;
};

namespace {

// One Sync stream. gRPC's callback API does the I/O (a read is always pending; writes are
// started by the session thread, which waits for each to complete); the session's own thread
// runs the loop that serves the subscriptions. The reactor deletes itself when both gRPC is done
// with it (OnDone) and its thread has ended.
class Session final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // Verifies the token; without a valid one the stream ends at once with UNAUTHENTICATED.
  Session(SyncServer::Impl& server, grpc::CallbackServerContext* context);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  ~Session() override = default;
  void Unref();
  void Main();
  grpc::Status Run();

  struct Subscription {
    std::string id;
    std::shared_ptr<InstanceLog> log;
    ReadCursor cursor;
    std::optional<LogOffset> resume_from;
    bool positioned = false;
    // Since when the resume offset is past the (follower's) log, which may still reach it.
    std::optional<Clock::time_point> ahead_since;
    bool up_to_date = false;
    std::string shape;
    Clock::time_point subscribed_at;
  };

  void ReadRequests();
  absl::Status Handle(const pb::SyncRequest& request);
  absl::Status Subscribe(const pb::Subscribe& request);
  void Drop(Subscription& sub);
  bool Send(const pb::SyncResponse& response);
  // Sends an encoded SyncResponse.
  bool SendEncoded(const std::string& response);
  // Writes outgoing_ and waits for the write to complete.
  bool Write(size_t bytes);
  bool SendMustRefetch(const std::string& id, RetireReason reason, const std::string& message);
  // Serves what is available; returns false when the client is gone, and sets *more when there
  // is more to read at once.
  absl::StatusOr<bool> Serve(bool* more);

  SyncServer::Impl& server_;
  grpc::CallbackServerContext* context_;
  auth::VerifiedToken token_;
  Waker waker_;
  std::string batch_;          // see Serve
  grpc::ByteBuffer outgoing_;  // the pending write's buffer
  std::atomic<int> refs_{1};   // OnDone, and the session thread while it runs

  grpc::ByteBuffer incoming_;  // the pending read's buffer
  std::mutex io_mu_;
  std::condition_variable io_cv_;
  std::deque<pb::SyncRequest> requests_;
  bool reader_done_ = false;
  bool malformed_ = false;  // a request that is not a SyncRequest arrived
  bool write_pending_ = false;
  bool write_ok_ = false;
  bool cancelled_ = false;

  std::vector<std::unique_ptr<Subscription>> subs_;
  Lsn last_checkpoint_;
  bool sent_since_checkpoint_ = false;
  std::optional<Clock::time_point> behind_since_;
  Clock::time_point last_send_ = Clock::now();
};

Session::Session(SyncServer::Impl& server, grpc::CallbackServerContext* context)
    : server_(server), context_(context) {
  absl::StatusOr<auth::VerifiedToken> verified =
      Authenticate(context->client_metadata(), server_.verifier);
  absl::Status status = verified.status();
  if (verified.ok()) token_ = *std::move(verified);
  if (!status.ok()) {
    server_.stats.auth_failures.fetch_add(1, std::memory_order_relaxed);
    Finish(ToGrpc(status));
    return;
  }
  {
    std::lock_guard lock(server_.sessions_mu);
    if (server_.stopping.load()) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping"));
      return;
    }
    server_.sessions.insert(&waker_);
  }
  server_.stats.streams.fetch_add(1, std::memory_order_relaxed);
  refs_.fetch_add(1);
  StartRead(&incoming_);
  std::thread([this] { Main(); }).detach();
}

void Session::Unref() {
  if (refs_.fetch_sub(1) == 1) delete this;
}

void Session::OnReadDone(bool ok) {
  pb::SyncRequest request;
  const bool parsed =
      ok && grpc::SerializationTraits<pb::SyncRequest>::Deserialize(&incoming_, &request).ok();
  {
    std::lock_guard lock(io_mu_);
    if (parsed) {
      requests_.push_back(std::move(request));
    } else if (ok) {
      malformed_ = true;
    } else {
      reader_done_ = true;
    }
  }
  waker_.Wake();
  if (parsed) {
    incoming_.Clear();
    StartRead(&incoming_);
  }
}

void Session::OnWriteDone(bool ok) {
  {
    std::lock_guard lock(io_mu_);
    write_pending_ = false;
    write_ok_ = ok;
  }
  io_cv_.notify_all();
}

void Session::OnCancel() {
  {
    std::lock_guard lock(io_mu_);
    cancelled_ = true;
  }
  io_cv_.notify_all();
  waker_.Wake();
}

void Session::OnDone() { Unref(); }

void Session::Main() {
  grpc::Status status = Run();
  for (auto& sub : subs_) Drop(*sub);
  subs_.clear();
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    spdlog::info("[server sub={}] stream ended: {}", token_.subject, status.error_message());
  }
  server_.stats.streams.fetch_sub(1, std::memory_order_relaxed);
  Finish(status);
  {
    std::lock_guard lock(server_.sessions_mu);
    server_.sessions.erase(&waker_);
    server_.sessions_cv.notify_all();
  }
  Unref();
}

bool Session::Send(const pb::SyncResponse& response) {
  bool own_buffer = false;
  outgoing_.Clear();
  if (!grpc::SerializationTraits<pb::SyncResponse>::Serialize(response, &outgoing_, &own_buffer)
           .ok()) {
    return false;
  }
  return Write(outgoing_.Length());
}

bool Session::SendEncoded(const std::string& response) {
  grpc::Slice slice(response);
  outgoing_ = grpc::ByteBuffer(&slice, 1);
  return Write(response.size());
}

bool Session::Write(size_t bytes) {
  {
    std::lock_guard lock(io_mu_);
    if (cancelled_) return false;
    write_pending_ = true;
  }
  StartWrite(&outgoing_);
  std::unique_lock lock(io_mu_);
  if (!io_cv_.wait_for(lock, server_.config.write_timeout, [&] { return !write_pending_; })) {
    server_.stats.slow_client_disconnects.fetch_add(1, std::memory_order_relaxed);
    context_->TryCancel();
    io_cv_.wait(lock, [&] { return !write_pending_; });
    return false;
  }
  if (!write_ok_) return false;
  server_.stats.messages_sent.fetch_add(1, std::memory_order_relaxed);
  server_.stats.bytes_sent.fetch_add(bytes, std::memory_order_relaxed);
  last_send_ = Clock::now();
  return true;
}

bool Session::SendMustRefetch(const std::string& id, RetireReason reason,
                              const std::string& message) {
  pb::SyncResponse r;
  r.mutable_must_refetch()->set_subscription_id(id);
  r.mutable_must_refetch()->set_reason(WireReason(reason));
  r.mutable_must_refetch()->set_message(message);
  server_.stats.must_refetch_sent.fetch_add(1, std::memory_order_relaxed);
  return Send(r);
}

void Session::Drop(Subscription& sub) {
  if (!sub.log) return;
  server_.log.RemoveListener(*sub.log, &waker_);
  server_.log.Release(*sub.log);
  sub.log.reset();
  server_.stats.subscriptions.fetch_sub(1, std::memory_order_relaxed);
}

absl::Status Session::Subscribe(const pb::Subscribe& request) {
  if (request.subscription_id().empty()) {
    return absl::InvalidArgumentError("subscribe: subscription_id is empty");
  }
  for (const auto& s : subs_) {
    if (s->id == request.subscription_id()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "subscribe: subscription_id \"", request.subscription_id(), "\" is already in use"));
    }
  }
  if (subs_.size() >= static_cast<size_t>(server_.config.max_subscriptions)) {
    return absl::ResourceExhaustedError(absl::StrCat("a stream may hold at most ",
                                                     server_.config.max_subscriptions,
                                                     " subscriptions (server.max_subscriptions)"));
  }
  auto def = server_.definitions.find(request.shape());
  if (def == server_.definitions.end()) {
    std::vector<std::string> names;
    for (const auto& [name, d] : server_.definitions) names.push_back(name);
    return absl::InvalidArgumentError(
        absl::StrCat("unknown shape \"", request.shape(),
                     "\"; the server defines: ", absl::StrJoin(names, ", ")));
  }
  std::map<std::string, std::string> params(request.params().begin(), request.params().end());
  absl::StatusOr<shapes::ParamValues> values = BindParams(*def->second, params, token_.claims);
  if (!values.ok()) return values.status();
  auto instance = shapes::ShapeInstance::Create(def->second, *values, request.filter());
  if (!instance.ok()) return instance.status();

  auto sub = std::make_unique<Subscription>();
  sub->id = request.subscription_id();
  sub->shape = request.shape();
  sub->subscribed_at = Clock::now();
  if (request.has_resume_from()) {
    sub->resume_from = LogOffset{Lsn(request.resume_from().lsn()), request.resume_from().index()};
    if (!request.instance_id().empty() && request.instance_id() != (*instance)->id().ToString()) {
      // The client's rows belong to another instance (the definition changed since).
      SendMustRefetch(sub->id, RetireReason::kSchemaChanged,
                      "the shape's definition changed since the client's offset: refetch");
      return absl::OkStatus();
    }
  } else {
    sub->positioned = true;
  }
  absl::StatusOr<ShapeLog::Acquired> acquired = server_.log.Acquire(*instance);
  if (!acquired.ok()) return acquired.status();
  sub->log = acquired->log;
  server_.stats.subscriptions.fetch_add(1, std::memory_order_relaxed);
  server_.log.AddListener(*sub->log, &waker_);
  if (acquired->needs_snapshot) server_.snapshotter.Schedule(sub->log);
  sub->cursor.log = sub->log.get();
  sub->cursor.max = static_cast<size_t>(server_.config.batch_entries);
  pb::SyncResponse schema;
  FillSchema(sub->id, **instance, schema.mutable_schema());
  subs_.push_back(std::move(sub));
  if (!Send(schema)) return absl::CancelledError("the client went away");
  return absl::OkStatus();
}

absl::Status Session::Handle(const pb::SyncRequest& request) {
  switch (request.request_case()) {
    case pb::SyncRequest::kSubscribe:
      return Subscribe(request.subscribe());
    case pb::SyncRequest::kUnsubscribe: {
      auto it = std::find_if(subs_.begin(), subs_.end(), [&](const auto& s) {
        return s->id == request.unsubscribe().subscription_id();
      });
      if (it == subs_.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unsubscribe: no subscription \"", request.unsubscribe().subscription_id(), "\""));
      }
      Drop(**it);
      subs_.erase(it);
      return absl::OkStatus();
    }
    case pb::SyncRequest::kAck:
      return absl::OkStatus();
    case pb::SyncRequest::REQUEST_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("empty request: set subscribe, unsubscribe or ack");
}

absl::StatusOr<bool> Session::Serve(bool* more) {
  *more = false;
  if (subs_.empty()) return true;
  std::vector<ReadCursor*> cursors;
  for (auto& s : subs_) cursors.push_back(&s->cursor);
  const Lsn durable = server_.log.Read(cursors);

  // Merge the entries of every subscription by log position, so a transaction's changes of
  // different shapes travel together.
  struct Item {
    const StoredEntry* entry;
    Subscription* sub;
  };
  std::vector<Item> items;
  std::vector<Subscription*> ended;
  uint64_t lag = 0;
  for (auto& s : subs_) {
    ReadCursor& c = s->cursor;
    if (c.retired && c.reason == RetireReason::kSnapshotFailed) {
      return absl::UnavailableError(absl::StrCat("the snapshot of shape ",
                                                 s->log->instance().definition().name,
                                                 " failed: ", c.message, "; subscribe again"));
    }
    if (!s->positioned && c.retired) {
      ended.push_back(s.get());  // its log ended before the resume offset was found in it
      continue;
    }
    if (c.servable && !s->positioned) {
      size_t after = 0;
      const ShapeLog::Position position = server_.log.Locate(*s->log, *s->resume_from, &after);
      if (position == ShapeLog::Position::kAhead) {
        // This node is behind the one that served the offset: wait for it (woken as its log
        // grows), up to kResumeAheadWait.
        if (!s->ahead_since) s->ahead_since = Clock::now();
        if (Clock::now() - *s->ahead_since < kResumeAheadWait) continue;
      }
      if (position != ShapeLog::Position::kFound) {
        ended.push_back(s.get());
        continue;
      }
      c.from = after;
      c.entries.clear();  // read from the start, before the position was known
      s->positioned = true;
      *more = true;  // read again from there
      continue;
    }
    if (!s->positioned) continue;
    for (const StoredEntry* e : c.entries) items.push_back({e, s.get()});
    if (c.end > c.from + c.entries.size()) lag += c.end - c.from - c.entries.size();
  }
  if (lag > server_.config.max_client_lag_entries) {
    const auto now = Clock::now();
    if (!behind_since_) behind_since_ = now;
    if (now - *behind_since_ > server_.config.slow_client_grace) {
      server_.stats.slow_client_disconnects.fetch_add(1, std::memory_order_relaxed);
      return absl::ResourceExhaustedError(absl::StrCat(
          "the client stayed more than ", server_.config.max_client_lag_entries,
          " changes behind (now ", lag,
          ") for longer than server.slow_client_grace_ms: reconnect and resume from your "
          "offsets"));
    }
  } else {
    behind_since_.reset();
  }
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.entry->offset.lsn < b.entry->offset.lsn;
  });
  // A batch is one Changes message of one subscription, put together from the stored encodings.
  std::vector<const StoredEntry*> batch;
  Subscription* batch_sub = nullptr;
  auto flush = [&]() -> bool {
    if (batch_sub == nullptr) return true;
    batch_.clear();
    AppendChangesResponse(batch_sub->id, batch, &batch_);
    if (!SendEncoded(batch_)) return false;
    server_.stats.changes_sent.fetch_add(batch.size(), std::memory_order_relaxed);
    if (server_.observers.commit_to_client) {
      const int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
      for (const StoredEntry* e : batch) {
        if (e->commit_unix_micros > 0) {
          server_.observers.commit_to_client(static_cast<double>(now_us - e->commit_unix_micros) /
                                             1e6);
        }
      }
    }
    batch.clear();
    batch_sub = nullptr;
    sent_since_checkpoint_ = true;
    return true;
  };
  for (const Item& item : items) {
    if (batch_sub != item.sub ||
        batch.size() >= static_cast<size_t>(server_.config.batch_entries)) {
      if (!flush()) return false;
      batch_sub = item.sub;
    }
    batch.push_back(item.entry);
  }
  if (!flush()) return false;

  bool drained = true;
  for (auto& s : subs_) {
    ReadCursor& c = s->cursor;
    if (!s->positioned) {
      drained = drained && std::find(ended.begin(), ended.end(), s.get()) != ended.end();
      continue;
    }
    c.from += c.entries.size();
    c.entries.clear();
    if (!c.servable || c.from < c.end) drained = false;
    if (c.from < c.end) *more = true;
    if (c.retired && c.from >= c.end) ended.push_back(s.get());
  }
  for (Subscription* s : ended) {
    const ReadCursor& c = s->cursor;
    const bool offset_lost = !s->positioned && !c.retired;
    if (!SendMustRefetch(
            s->id, offset_lost ? RetireReason::kOffsetNotFound : c.reason,
            offset_lost ? "the resume offset is not in the instance's log: refetch" : c.message)) {
      return false;
    }
    Drop(*s);
    std::erase_if(subs_, [&](const auto& p) { return p.get() == s; });
  }
  if (!drained || subs_.empty()) return true;
  bool announced = false;
  for (auto& s : subs_) {
    if (s->up_to_date) continue;
    pb::SyncResponse r;
    r.mutable_up_to_date()->set_subscription_id(s->id);
    if (!Send(r)) return false;
    s->up_to_date = true;
    announced = true;
    if (!s->resume_from && server_.observers.initial_sync) {
      server_.observers.initial_sync(
          s->shape, std::chrono::duration<double>(Clock::now() - s->subscribed_at).count());
    }
  }
  const bool heartbeat_due = Clock::now() - last_send_ >= server_.config.heartbeat_interval;
  if (durable > last_checkpoint_ && (sent_since_checkpoint_ || announced || heartbeat_due)) {
    pb::SyncResponse r;
    r.mutable_checkpoint()->set_lsn(durable.value());
    r.mutable_checkpoint()->set_lsn_text(durable.ToString());
    if (!Send(r)) return false;
    server_.stats.checkpoints_sent.fetch_add(1, std::memory_order_relaxed);
    last_checkpoint_ = durable;
    sent_since_checkpoint_ = false;
  }
  return true;
}

grpc::Status Session::Run() {
  while (true) {
    {
      std::lock_guard lock(io_mu_);
      if (cancelled_) return grpc::Status::CANCELLED;
    }
    if (server_.stopping.load()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the server is stopping: reconnect and resume from your offsets");
    }
    if (token_.expires_at && std::chrono::system_clock::now() >= *token_.expires_at) {
      server_.stats.auth_failures.fetch_add(1, std::memory_order_relaxed);
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "the token expired: reconnect with a new token and resume");
    }
    std::deque<pb::SyncRequest> requests;
    bool malformed = false;
    {
      std::lock_guard lock(io_mu_);
      requests.swap(requests_);
      malformed = malformed_;
    }
    for (const pb::SyncRequest& r : requests) {
      if (absl::Status s = Handle(r); !s.ok()) {
        server_.stats.request_errors.fetch_add(1, std::memory_order_relaxed);
        return ToGrpc(s);
      }
    }
    if (malformed) {
      server_.stats.request_errors.fetch_add(1, std::memory_order_relaxed);
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "a request is not a shapebridge.sync.v1.SyncRequest");
    }
    bool more = false;
    absl::StatusOr<bool> alive = Serve(&more);
    if (!alive.ok()) return ToGrpc(alive.status());
    if (!*alive) return grpc::Status::CANCELLED;
    if (more) continue;
    auto deadline = last_send_ + server_.config.heartbeat_interval;
    deadline = std::min(deadline, Clock::now() + std::chrono::seconds(1));
    if (!waker_.WaitUntil(deadline) &&
        Clock::now() - last_send_ >= server_.config.heartbeat_interval) {
      pb::SyncResponse r;
      r.mutable_heartbeat()->set_server_time_us(
          std::chrono::duration_cast<std::chrono::microseconds>(
              std::chrono::system_clock::now().time_since_epoch())
              .count());
      // Serve() sends the newest checkpoint first when one is due.
      bool ignored = false;
      absl::StatusOr<bool> again = Serve(&ignored);
      if (!again.ok()) return ToGrpc(again.status());
      if (!*again || !Send(r)) return grpc::Status::CANCELLED;
    }
  }
}

}  // namespace

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* SyncServer::Impl::Sync(
    grpc::CallbackServerContext* context) {
  return new Session(*this, context);
}

grpc::Status SyncServer::Impl::Push(grpc::ServerContext* context, const pb::PushRequest* request,
                                    pb::PushResponse* response) {
  absl::StatusOr<auth::VerifiedToken> token = Authenticate(context->client_metadata(), verifier);
  if (!token.ok()) {
    stats.auth_failures.fetch_add(1, std::memory_order_relaxed);
    return ToGrpc(token.status());
  }
  if (stopping.load()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping: push again");
  }
  if (writer == nullptr) {
    return ToGrpc(absl::FailedPreconditionError(
        "write-back is off: no shape is writable (set `writable: true` on a shape)"));
  }
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<pb::PushResponse> result = writer->Push(token->claims, *request);
  if (observers.push &&
      (result.ok() || result.status().code() != absl::StatusCode::kInvalidArgument)) {
    observers.push(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  if (!result.ok()) {
    if (result.status().code() != absl::StatusCode::kInvalidArgument) {
      spdlog::warn("[push client={}] {}", request->client_id(),
                   std::string(result.status().message()));
    }
    return ToGrpc(result.status());
  }
  *response = *std::move(result);
  return grpc::Status::OK;
}

SyncServer::SyncServer(ServerConfig config, DefinitionMap definitions, ShapeLog& log,
                       SnapshotScheduler& snapshotter, const auth::JwtVerifier& verifier)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(definitions), log, snapshotter,
                                   verifier)) {}

SyncServer::~SyncServer() { Shutdown(); }

absl::Status SyncServer::Start(bool serving) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(impl_->config.listen, grpc::InsecureServerCredentials(), &impl_->port);
  builder.RegisterService(impl_.get());
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->port == 0) {
    impl_->server.reset();
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen on ", impl_->config.listen, " (server.listen)"));
  }
  impl_->server->GetHealthCheckService()->SetServingStatus(serving);
  return absl::OkStatus();
}

void SyncServer::SetServing(bool serving) {
  std::lock_guard lock(impl_->health_mu);
  if (!impl_->server || impl_->shut_down) return;
  impl_->server->GetHealthCheckService()->SetServingStatus(serving);
}

void SyncServer::SetWriter(Writer* writer) { impl_->writer = writer; }

void SyncServer::SetObservers(ServerObservers observers) {
  impl_->observers = std::move(observers);
}

int SyncServer::port() const { return impl_->port; }

void SyncServer::Shutdown() {
  {
    std::lock_guard lock(impl_->health_mu);
    if (!impl_->server || impl_->shut_down) return;
    impl_->shut_down = true;
    impl_->server->GetHealthCheckService()->SetServingStatus(false);
  }
  impl_->stopping = true;
  {
    std::unique_lock lock(impl_->sessions_mu);
    for (Waker* w : impl_->sessions) w->Wake();
    impl_->sessions_cv.wait_for(lock, impl_->config.drain_timeout,
                                [&] { return impl_->sessions.empty(); });
  }
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  impl_->server->Wait();
}

const ServerStats& SyncServer::stats() const { return impl_->stats; }

}  // namespace shapebridge
