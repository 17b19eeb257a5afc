#pragma once

// Hands the replication stream to several sinks (the Kafka replicator's change topic and its
// routing stage). Durable is what every sink has made durable.

#include <algorithm>
#include <string_view>
#include <utility>
#include <vector>

#include "bridge/replication/transaction_sink.h"

namespace shapebridge {

class TeeSink final : public TransactionSink {
 public:
  // The sinks are borrowed (and must outlive the tee); at least one.
  explicit TeeSink(std::vector<TransactionSink*> sinks) : sinks_(std::move(sinks)) {}

  Lsn DurableLsn() const override {
    Lsn durable = sinks_.front()->DurableLsn();
    for (const TransactionSink* s : sinks_) durable = std::min(durable, s->DurableLsn());
    return durable;
  }
  absl::Status OnRelation(const RelationInfo& relation) override {
    return Each([&](TransactionSink& s) { return s.OnRelation(relation); });
  }
  absl::Status OnBegin(const TransactionBegin& begin) override {
    return Each([&](TransactionSink& s) { return s.OnBegin(begin); });
  }
  absl::Status OnChange(RowChange change) override {
    for (size_t i = 0; i + 1 < sinks_.size(); ++i) {
      if (absl::Status st = sinks_[i]->OnChange(change); !st.ok()) return st;
    }
    return sinks_.back()->OnChange(std::move(change));
  }
  absl::Status OnTruncate(const TruncateChange& truncate) override {
    return Each([&](TransactionSink& s) { return s.OnTruncate(truncate); });
  }
  absl::Status OnCommit(const TransactionCommit& commit) override {
    return Each([&](TransactionSink& s) { return s.OnCommit(commit); });
  }
  absl::Status OnIdlePosition(Lsn position) override {
    return Each([&](TransactionSink& s) { return s.OnIdlePosition(position); });
  }
  absl::Status OnStreamReset(Lsn position, std::string_view reason) override {
    return Each([&](TransactionSink& s) { return s.OnStreamReset(position, reason); });
  }
  absl::Status Sync() override {
    return Each([](TransactionSink& s) { return s.Sync(); });
  }

 private:
  template <typename F>
  absl::Status Each(F f) {
    for (TransactionSink* s : sinks_) {
      if (absl::Status st = f(*s); !st.ok()) return st;
    }
    return absl::OkStatus();
  }

  std::vector<TransactionSink*> sinks_;
};

}  // namespace shapebridge
