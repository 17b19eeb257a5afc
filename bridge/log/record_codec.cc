#include "bridge/log/record_codec.h"

#include <zlib.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace shapebridge::logrecord {
namespace {

void PutU32(uint32_t v, std::string* out) {
  char b[4] = {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
               static_cast<char>(v >> 24)};
  out->append(b, 4);
}

uint32_t GetU32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} | (uint32_t{u[1]} << 8) | (uint32_t{u[2]} << 16) | (uint32_t{u[3]} << 24);
}

uint32_t Crc(std::string_view payload) {
  return static_cast<uint32_t>(crc32(crc32(0, nullptr, 0),
                                     reinterpret_cast<const Bytef*>(payload.data()),
                                     static_cast<uInt>(payload.size())));
}

}  // namespace

void ToProto(const Value& value, log::v1::Value* out) {
  switch (value.kind()) {
    case ValueKind::kNull:
      out->set_null(true);
      break;
    case ValueKind::kUnchanged:
      out->set_unchanged(true);
      break;
    case ValueKind::kBool:
      out->set_bool_value(value.bool_value());
      break;
    case ValueKind::kInt:
      out->set_int_value(value.int_value());
      break;
    case ValueKind::kFloat:
      out->set_float_value(value.float_value());
      break;
    case ValueKind::kNumeric:
      out->set_numeric(value.string_value());
      break;
    case ValueKind::kText:
      out->set_text(value.string_value());
      break;
    case ValueKind::kUuid:
      out->set_uuid(value.string_value());
      break;
    case ValueKind::kTimestamp:
      out->set_timestamp_us(value.int_value());
      break;
    case ValueKind::kTimestampTz:
      out->set_timestamptz_us(value.int_value());
      break;
    case ValueKind::kDate:
      out->set_date_days(value.int_value());
      break;
    case ValueKind::kJson:
      out->set_json(value.string_value());
      break;
    case ValueKind::kBytes:
      out->set_bytes_value(value.string_value());
      break;
    case ValueKind::kArray:
      out->set_array_text(value.string_value());
      break;
    case ValueKind::kOther:
      out->set_other_text(value.string_value());
      break;
  }
}

absl::StatusOr<Value> FromProto(const log::v1::Value& value) {
  using V = log::v1::Value;
  switch (value.kind_case()) {
    case V::kNull:
      return Value::Null();
    case V::kUnchanged:
      return Value::Unchanged();
    case V::kBoolValue:
      return Value::Bool(value.bool_value());
    case V::kIntValue:
      return Value::Int(value.int_value());
    case V::kFloatValue:
      return Value::Float(value.float_value());
    case V::kNumeric:
      return Value::String(ValueKind::kNumeric, value.numeric());
    case V::kText:
      return Value::String(ValueKind::kText, value.text());
    case V::kUuid:
      return Value::String(ValueKind::kUuid, value.uuid());
    case V::kTimestampUs:
      return Value::Timestamp(value.timestamp_us());
    case V::kTimestamptzUs:
      return Value::TimestampTz(value.timestamptz_us());
    case V::kDateDays:
      return Value::Date(value.date_days());
    case V::kJson:
      return Value::String(ValueKind::kJson, value.json());
    case V::kBytesValue:
      return Value::String(ValueKind::kBytes, value.bytes_value());
    case V::kArrayText:
      return Value::String(ValueKind::kArray, value.array_text());
    case V::kOtherText:
      return Value::String(ValueKind::kOther, value.other_text());
    case V::KIND_NOT_SET:
      break;
  }
  return absl::DataLossError("log record holds a value of no known kind");
}

void ToProto(const RelationInfo& relation, log::v1::Relation* out) {
  out->set_id(relation.id.value());
  out->set_schema(relation.schema);
  out->set_name(relation.name);
  out->set_replica_identity(std::string(1, relation.replica_identity));
  for (const auto& c : relation.columns) {
    auto* column = out->add_columns();
    column->set_name(c.name);
    column->set_type_oid(c.type_oid);
    column->set_type_modifier(c.type_modifier);
    column->set_key(c.key);
    column->set_is_array(c.is_array);
  }
}

RelationInfo FromProto(const log::v1::Relation& relation) {
  RelationInfo info;
  info.id = RelationId(relation.id());
  info.schema = relation.schema();
  info.name = relation.name();
  info.replica_identity =
      relation.replica_identity().empty() ? 'd' : relation.replica_identity()[0];
  for (const auto& c : relation.columns()) {
    info.columns.push_back(ColumnInfo{.name = c.name(),
                                      .type_oid = c.type_oid(),
                                      .type_modifier = c.type_modifier(),
                                      .key = c.key(),
                                      .is_array = c.is_array()});
  }
  return info;
}

void ToProto(const RowChange& change, log::v1::Change* out) {
  switch (change.op) {
    case ChangeOp::kInsert:
      out->set_op(log::v1::Change::INSERT);
      break;
    case ChangeOp::kUpdate:
      out->set_op(log::v1::Change::UPDATE);
      break;
    case ChangeOp::kDelete:
      out->set_op(log::v1::Change::DELETE);
      break;
  }
  out->set_relation(change.relation.value());
  out->set_old_is_key_only(change.old_is_key_only);
  for (const auto& v : change.old_values) ToProto(v, out->add_old_values());
  for (const auto& v : change.new_values) ToProto(v, out->add_new_values());
}

absl::StatusOr<RowChange> FromProto(const log::v1::Change& change) {
  RowChange out;
  switch (change.op()) {
    case log::v1::Change::INSERT:
      out.op = ChangeOp::kInsert;
      break;
    case log::v1::Change::UPDATE:
      out.op = ChangeOp::kUpdate;
      break;
    case log::v1::Change::DELETE:
      out.op = ChangeOp::kDelete;
      break;
    default:
      return absl::DataLossError(absl::StrCat("log record has unknown change op ", change.op()));
  }
  out.relation = RelationId(change.relation());
  out.old_is_key_only = change.old_is_key_only();
  for (const auto& v : change.old_values()) {
    auto value = FromProto(v);
    if (!value.ok()) return value.status();
    out.old_values.push_back(*std::move(value));
  }
  for (const auto& v : change.new_values()) {
    auto value = FromProto(v);
    if (!value.ok()) return value.status();
    out.new_values.push_back(*std::move(value));
  }
  return out;
}

void AppendFrame(std::string_view payload, std::string* out) {
  PutU32(static_cast<uint32_t>(payload.size()), out);
  PutU32(Crc(payload), out);
  out->append(payload);
}

size_t BeginFrame(std::string* out) {
  const size_t start = out->size();
  out->append(kFrameHeaderBytes, '\0');
  return start;
}

void EndFrame(size_t frame_start, std::string* out) {
  const std::string_view payload = std::string_view(*out).substr(frame_start + kFrameHeaderBytes);
  std::string header;
  PutU32(static_cast<uint32_t>(payload.size()), &header);
  PutU32(Crc(payload), &header);
  out->replace(frame_start, kFrameHeaderBytes, header);
}

FrameStatus ParseFrame(std::string_view bytes, std::string_view* payload, size_t* frame_bytes) {
  if (bytes.size() < kFrameHeaderBytes) return FrameStatus::kIncomplete;
  const uint32_t length = GetU32(bytes.data());
  if (length > kMaxRecordBytes) return FrameStatus::kCorrupt;
  if (bytes.size() - kFrameHeaderBytes < length) return FrameStatus::kIncomplete;
  const std::string_view body = bytes.substr(kFrameHeaderBytes, length);
  if (Crc(body) != GetU32(bytes.data() + 4)) return FrameStatus::kCorrupt;
  *payload = body;
  *frame_bytes = kFrameHeaderBytes + length;
  return FrameStatus::kOk;
}

}  // namespace shapebridge::logrecord
