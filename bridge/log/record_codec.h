#pragma once

// Conversions between the core row types and the log record format, and the on-disk framing.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/row.h"
#include "shapebridge/log/v1/txlog.pb.h"

namespace shapebridge::logrecord {

void ToProto(const Value& value, log::v1::Value* out);
absl::StatusOr<Value> FromProto(const log::v1::Value& value);

void ToProto(const RelationInfo& relation, log::v1::Relation* out);
RelationInfo FromProto(const log::v1::Relation& relation);

void ToProto(const RowChange& change, log::v1::Change* out);
absl::StatusOr<RowChange> FromProto(const log::v1::Change& change);

// Frame: [u32 length LE][u32 crc32 LE][payload]. 8 bytes of header.
inline constexpr size_t kFrameHeaderBytes = 8;
// Records larger than this are refused when written and treated as corruption when read.
inline constexpr uint32_t kMaxRecordBytes = 256u << 20;

void AppendFrame(std::string_view payload, std::string* out);
// A frame whose payload is written in place: BeginFrame appends the header's room and returns
// where the frame starts; EndFrame fills in the header for what was appended since.
size_t BeginFrame(std::string* out);
void EndFrame(size_t frame_start, std::string* out);

// Parses the frame at the start of `bytes`. kIncomplete: fewer bytes than the frame needs (the
// tail is still being written, or was torn by a crash); kCorrupt: bad length or checksum.
enum class FrameStatus { kOk, kIncomplete, kCorrupt };
FrameStatus ParseFrame(std::string_view bytes, std::string_view* payload, size_t* frame_bytes);

}  // namespace shapebridge::logrecord
