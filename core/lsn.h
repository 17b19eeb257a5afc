#pragma once

#include <compare>
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace shapebridge {

// A position in the Postgres write-ahead log. Prints and parses as Postgres does: "16/B374D848"
// (upper and lower 32 bits in hex). Lsn{} is 0/0, the "invalid" position.
class Lsn {
 public:
  constexpr Lsn() = default;
  constexpr explicit Lsn(uint64_t value) : value_(value) {}

  static absl::StatusOr<Lsn> Parse(std::string_view text);

  constexpr uint64_t value() const { return value_; }
  constexpr bool valid() const { return value_ != 0; }
  std::string ToString() const;

  friend constexpr auto operator<=>(Lsn, Lsn) = default;

 private:
  uint64_t value_ = 0;
};

std::ostream& operator<<(std::ostream& os, Lsn lsn);

// A Postgres transaction id (32-bit, as it appears in the replication protocol).
class Xid {
 public:
  constexpr Xid() = default;
  constexpr explicit Xid(uint32_t value) : value_(value) {}
  constexpr uint32_t value() const { return value_; }
  friend constexpr auto operator<=>(Xid, Xid) = default;

 private:
  uint32_t value_ = 0;
};

// The OID of a table as pgoutput names it in Relation and row messages.
class RelationId {
 public:
  constexpr RelationId() = default;
  constexpr explicit RelationId(uint32_t value) : value_(value) {}
  constexpr uint32_t value() const { return value_; }
  friend constexpr auto operator<=>(RelationId, RelationId) = default;

 private:
  uint32_t value_ = 0;
};

// Microseconds since the Postgres epoch (2000-01-01 00:00:00 UTC), the unit of every timestamp in
// the replication protocol.
class PgTimestamp {
 public:
  constexpr PgTimestamp() = default;
  constexpr explicit PgTimestamp(int64_t micros) : micros_(micros) {}
  constexpr int64_t micros() const { return micros_; }
  // Microseconds since the Unix epoch.
  constexpr int64_t unix_micros() const { return micros_ + kPgEpochOffsetMicros; }
  static constexpr PgTimestamp FromUnixMicros(int64_t unix_micros) {
    return PgTimestamp(unix_micros - kPgEpochOffsetMicros);
  }
  std::string ToString() const;  // ISO 8601 in UTC
  friend constexpr auto operator<=>(PgTimestamp, PgTimestamp) = default;

  static constexpr int64_t kPgEpochOffsetMicros = 946'684'800LL * 1'000'000LL;

 private:
  int64_t micros_ = 0;
};

}  // namespace shapebridge

template <>
struct std::hash<shapebridge::RelationId> {
  size_t operator()(shapebridge::RelationId id) const noexcept {
    return std::hash<uint32_t>{}(id.value());
  }
};
