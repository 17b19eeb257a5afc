#include "bridge/log/change_codec.h"

#include "bridge/log/record_codec.h"
#include "shapebridge/log/v1/shapelog.pb.h"
#include "shapebridge/sync/v1/sync.pb.h"

namespace shapebridge {

namespace {

namespace pb = ::shapebridge::sync::v1;

// Protocol buffers wire format: what AppendChangesResponse writes by hand, so that it can copy
// the encoded changes instead of building messages from them.
constexpr uint32_t kVarint = 0;
constexpr uint32_t kLengthDelimited = 2;

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

void PutTag(int field, uint32_t wire_type, std::string* out) {
  PutVarint((static_cast<uint64_t>(field) << 3) | wire_type, out);
}

size_t TagSize(int field) { return VarintSize(static_cast<uint64_t>(field) << 3); }

// The encoded Offset message; as protobuf does, fields that are zero are left out.
size_t OffsetSize(const LogOffset& o) {
  size_t n = 0;
  if (o.lsn.value() != 0) n += TagSize(pb::Offset::kLsnFieldNumber) + VarintSize(o.lsn.value());
  if (o.index != 0) n += TagSize(pb::Offset::kIndexFieldNumber) + VarintSize(o.index);
  return n;
}

size_t ChangeSize(const StoredEntry& e) {
  const size_t offset = OffsetSize(e.offset);
  return TagSize(pb::Change::kOffsetFieldNumber) + VarintSize(offset) + offset + e.change.size();
}

void PutLengthDelimited(int field, std::string_view bytes, std::string* out) {
  PutTag(field, kLengthDelimited, out);
  PutVarint(bytes.size(), out);
  out->append(bytes);
}

void PutUint(int field, uint64_t v, std::string* out) {
  if (v == 0) return;
  PutTag(field, kVarint, out);
  PutVarint(v, out);
}

size_t LengthDelimitedSize(int field, size_t size) {
  return TagSize(field) + VarintSize(size) + size;
}

size_t UintSize(int field, uint64_t v) { return v == 0 ? 0 : TagSize(field) + VarintSize(v); }

}  // namespace

void ValueToProto(const Value& v, sync::v1::Value* out) {
  namespace pb = ::shapebridge::sync::v1;
  switch (v.kind()) {
    case ValueKind::kNull:
      out->set_null(true);
      return;
    case ValueKind::kUnchanged:
      out->set_unchanged(true);
      return;
    case ValueKind::kBool:
      out->set_bool_value(v.bool_value());
      return;
    case ValueKind::kInt:
      out->set_int_value(v.int_value());
      return;
    case ValueKind::kFloat:
      out->set_float_value(v.float_value());
      return;
    case ValueKind::kNumeric:
      out->set_numeric(v.string_value());
      return;
    case ValueKind::kBytes:
      out->set_bytes_value(v.string_value());
      return;
    case ValueKind::kTimestamp:
      out->set_timestamp_us(v.int_value());
      return;
    case ValueKind::kTimestampTz:
      out->set_timestamptz_us(v.int_value());
      return;
    case ValueKind::kDate:
      out->set_date_days(static_cast<int32_t>(v.int_value()));
      return;
    case ValueKind::kText:
    case ValueKind::kUuid:
    case ValueKind::kJson:
    case ValueKind::kArray:
    case ValueKind::kOther:
      out->set_text(v.string_value());
      return;
  }
}

void EncodeChange(const shapes::ShapeEntry& entry, size_t columns, std::string* out) {
  // Reused, so that encoding does not allocate once its fields have grown.
  thread_local pb::Change change;
  change.Clear();
  switch (entry.kind) {
    case shapes::EntryKind::kInsert:
      change.set_op(pb::Change::INSERT);
      break;
    case shapes::EntryKind::kUpdate:
      change.set_op(pb::Change::UPDATE);
      break;
    case shapes::EntryKind::kDelete:
      change.set_op(pb::Change::DELETE);
      break;
    case shapes::EntryKind::kMustRefetch:
      return;
  }
  for (const Value& k : entry.key) ValueToProto(k, change.add_key());
  if (entry.kind != shapes::EntryKind::kDelete) {
    for (size_t i = 0; i < columns; ++i) change.add_row()->set_unchanged(true);
    for (const shapes::FieldValue& f : entry.fields)
      ValueToProto(f.value, change.mutable_row(f.column));
  }
  change.AppendToString(out);
}

void AppendChangesResponse(const std::string& subscription_id,
                           const std::vector<const StoredEntry*>& entries, std::string* out) {
  size_t changes_size = TagSize(pb::Changes::kSubscriptionIdFieldNumber) +
                        VarintSize(subscription_id.size()) + subscription_id.size();
  for (const StoredEntry* e : entries) {
    const size_t size = ChangeSize(*e);
    changes_size += TagSize(pb::Changes::kChangesFieldNumber) + VarintSize(size) + size;
  }
  out->reserve(out->size() + TagSize(pb::SyncResponse::kChangesFieldNumber) +
               VarintSize(changes_size) + changes_size);
  PutTag(pb::SyncResponse::kChangesFieldNumber, kLengthDelimited, out);
  PutVarint(changes_size, out);
  PutTag(pb::Changes::kSubscriptionIdFieldNumber, kLengthDelimited, out);
  PutVarint(subscription_id.size(), out);
  out->append(subscription_id);
  for (const StoredEntry* e : entries) {
    PutTag(pb::Changes::kChangesFieldNumber, kLengthDelimited, out);
    PutVarint(ChangeSize(*e), out);
    PutTag(pb::Change::kOffsetFieldNumber, kLengthDelimited, out);
    PutVarint(OffsetSize(e->offset), out);
    if (e->offset.lsn.value() != 0) {
      PutTag(pb::Offset::kLsnFieldNumber, kVarint, out);
      PutVarint(e->offset.lsn.value(), out);
    }
    if (e->offset.index != 0) {
      PutTag(pb::Offset::kIndexFieldNumber, kVarint, out);
      PutVarint(e->offset.index, out);
    }
    out->append(e->change);
  }
}

}  // namespace shapebridge

namespace shapebridge {

std::array<char, 16> InstanceIdBytes(const shapes::InstanceId& id) {
  std::array<char, 16> out;
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<char>(id.high() >> (56 - 8 * i));
    out[8 + i] = static_cast<char>(id.low() >> (56 - 8 * i));
  }
  return out;
}

uint64_t AppendEntryFrame(const shapes::InstanceId& instance, const StoredEntry& entry,
                          std::string* out) {
  using log::v1::EntryRecord;
  using log::v1::ShapeLogRecord;
  const std::array<char, 16> id = InstanceIdBytes(instance);
  const size_t entry_size =
      LengthDelimitedSize(EntryRecord::kInstanceIdFieldNumber, id.size()) +
      UintSize(EntryRecord::kLsnFieldNumber, entry.offset.lsn.value()) +
      UintSize(EntryRecord::kIndexFieldNumber, entry.offset.index) +
      LengthDelimitedSize(EntryRecord::kChangeFieldNumber, entry.change.size());
  const size_t start = logrecord::BeginFrame(out);
  PutTag(ShapeLogRecord::kEntryFieldNumber, kLengthDelimited, out);
  PutVarint(entry_size, out);
  PutLengthDelimited(EntryRecord::kInstanceIdFieldNumber, std::string_view(id.data(), id.size()),
                     out);
  PutUint(EntryRecord::kLsnFieldNumber, entry.offset.lsn.value(), out);
  PutUint(EntryRecord::kIndexFieldNumber, entry.offset.index, out);
  PutLengthDelimited(EntryRecord::kChangeFieldNumber, entry.change, out);
  logrecord::EndFrame(start, out);
  return out->size() - start;
}

}  // namespace shapebridge
