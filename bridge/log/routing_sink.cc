#include "bridge/log/routing_sink.h"

#include <span>

#include "absl/strings/str_cat.h"

namespace shapebridge {

RoutingSink::RoutingSink(shapes::Router& router, ShapeLog& log)
    : router_(router), log_(log), written_through_(log.DurableLsn()) {}

absl::Status RoutingSink::OnRelation(const RelationInfo& relation) {
  RoutePending();  // with the description they were decoded with
  relations_[relation.id] = relation;
  {
    std::lock_guard lock(counts_mu_);
    counts_[relation.id].table = relation.QualifiedName();
  }
  return absl::OkStatus();
}

absl::Status RoutingSink::OnBegin(const TransactionBegin& begin) {
  // A transaction that began but never committed (the session ended) is simply dropped.
  entries_.clear();
  pending_.clear();
  skipping_ = begin.commit_lsn < written_through_;
  xid_ = begin.xid;
  commit_unix_micros_ = begin.commit_time.unix_micros();
  if (!skipping_) seq_ = log_.NoteBegin(begin.xid);
  return absl::OkStatus();
}

void RoutingSink::Collect(RetireReason refetch_reason) {
  for (shapes::ShapeEntry& e : scratch_) {
    const RetireReason reason =
        e.kind == shapes::EntryKind::kMustRefetch ? refetch_reason : RetireReason::kNone;
    entries_.push_back({std::move(e), reason});
  }
  scratch_.clear();
}

absl::Status RoutingSink::OnChange(RowChange change) {
  if (skipping_) return absl::OkStatus();
  if (!relations_.contains(change.relation)) {
    return absl::InternalError(
        absl::StrCat("change of relation ", change.relation.value(), " before its description"));
  }
  {
    std::lock_guard lock(counts_mu_);
    ++counts_[change.relation].ops[static_cast<int>(change.op)];
  }
  pending_.push_back(std::move(change));
  if (pending_.size() >= kRouteBatch) RoutePending();
  return absl::OkStatus();
}

void RoutingSink::RoutePending() {
  for (size_t begin = 0; begin < pending_.size();) {
    size_t end = begin + 1;
    while (end < pending_.size() && pending_[end].relation == pending_[begin].relation) ++end;
    router_.Route(relations_.at(pending_[begin].relation),
                  std::span<const RowChange>(pending_).subspan(begin, end - begin), &scratch_);
    Collect(RetireReason::kSchemaChanged);
    begin = end;
  }
  pending_.clear();
}

absl::Status RoutingSink::OnTruncate(const TruncateChange& truncate) {
  if (skipping_) return absl::OkStatus();
  RoutePending();
  for (RelationId id : truncate.relations) {
    auto it = relations_.find(id);
    if (it == relations_.end()) continue;
    router_.RouteTruncate(it->second, &scratch_);
    Collect(RetireReason::kTruncated);
    std::lock_guard lock(counts_mu_);
    ++counts_[id].ops[3];
  }
  return absl::OkStatus();
}

absl::Status RoutingSink::OnCommit(const TransactionCommit& commit) {
  if (skipping_) {
    skipping_ = false;
    return absl::OkStatus();
  }
  RoutePending();
  absl::Status s = log_.AppendTransaction(seq_, commit.xid, commit.commit_lsn, commit.end_lsn,
                                          commit_unix_micros_, entries_);
  entries_.clear();
  written_through_ = std::max(written_through_, commit.end_lsn);
  return s;
}

std::map<std::pair<std::string, std::string>, uint64_t> RoutingSink::ChangeCounts() const {
  static constexpr const char* kOps[] = {"insert", "update", "delete", "truncate"};
  std::map<std::pair<std::string, std::string>, uint64_t> out;
  std::lock_guard lock(counts_mu_);
  for (const auto& [id, counts] : counts_) {
    for (int op = 0; op < 4; ++op) {
      if (counts.ops[op] > 0) out[{counts.table, kOps[op]}] += counts.ops[op];
    }
  }
  return out;
}

absl::Status RoutingSink::OnIdlePosition(Lsn position) {
  if (position <= written_through_) return absl::OkStatus();
  written_through_ = position;
  return log_.AdvanceIdle(position);
}

absl::Status RoutingSink::OnStreamReset(Lsn position, std::string_view reason) {
  entries_.clear();
  pending_.clear();
  skipping_ = false;
  written_through_ = position;
  return log_.ResetAll(position, reason);
}

}  // namespace shapebridge
