#pragma once

// The encoding of shape log entries: each entry is kept, journaled and sent as the encoding of
// the sync.v1.Change a client receives (without its offset, which the log knows), so a change is
// encoded once, when it is appended.

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "bridge/log/shape_log.h"
#include "shapes/router.h"

namespace shapebridge {

namespace sync::v1 {
class Value;
}  // namespace sync::v1

// A column value as the sync protocol carries it.
void ValueToProto(const Value& v, sync::v1::Value* out);

// Appends the encoding of `entry` as a sync.v1.Change without its offset field. `columns` is the
// number of the shape's columns: an update carries `unchanged` for the columns it does not set.
// A kMustRefetch entry has no encoding (it is never stored).
void EncodeChange(const shapes::ShapeEntry& entry, size_t columns, std::string* out);

// Appends the encoding of a sync.v1.SyncResponse whose `changes` holds `entries` (with their
// offsets) for the subscription `subscription_id`.
void AppendChangesResponse(const std::string& subscription_id,
                           const std::vector<const StoredEntry*>& entries, std::string* out);

// An instance id as the journal stores it: 16 bytes, big-endian high then low.
std::array<char, 16> InstanceIdBytes(const shapes::InstanceId& id);

// Appends the journal frame of an entry of `instance` (a log.v1.ShapeLogRecord holding an
// EntryRecord); returns the frame's size in bytes.
uint64_t AppendEntryFrame(const shapes::InstanceId& instance, const StoredEntry& entry,
                          std::string* out);

}  // namespace shapebridge
