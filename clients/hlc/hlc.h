#pragma once

// A hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014), for the timestamps
// clients put on the fields they write offline and push later (write-back: field-level
// last-write-wins). Self-contained (no gRPC, no service code), so a client embeds it as it is.
//
// The format: one unsigned 64-bit integer, compared as an integer,
//
//   hlc = physical_ms << 16 | logical
//
// physical_ms: milliseconds since the Unix epoch (48 bits, enough until the year 10889), never
// behind the highest wall-clock reading or timestamp the clock has seen; logical: a counter
// (16 bits) that orders events within one millisecond. The text form is
// "2026-11-30T13:45:00.123Z/0001" (UTC, millisecond precision, the counter in hex); the proto
// field carries the integer. Ties between two clients' equal timestamps are broken by the larger
// client id (by the write-back, not by the clock).
//
// Guarantees: every Now() and Observe() result is larger than every earlier result of the same
// clock, and Observe(remote) is larger than `remote`; the physical part stays within the larger of
// the wall clock and the largest observed timestamp (which Observe bounds by max_drift), plus at
// most one millisecond per 65,536 events of one millisecond.
//
// Not thread-safe: guard a shared clock with a mutex.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace shapebridge::hlc {

class Timestamp {
 public:
  static constexpr int kLogicalBits = 16;
  static constexpr uint64_t kMaxLogical = (uint64_t{1} << kLogicalBits) - 1;
  static constexpr uint64_t kMaxPhysical = (uint64_t{1} << (64 - kLogicalBits)) - 1;

  constexpr Timestamp() = default;
  // physical_ms <= kMaxPhysical, logical <= kMaxLogical.
  constexpr Timestamp(uint64_t physical_ms, uint64_t logical)
      : value_(physical_ms << kLogicalBits | logical) {}
  static constexpr Timestamp FromInteger(uint64_t value) {
    Timestamp t;
    t.value_ = value;
    return t;
  }

  constexpr uint64_t integer() const { return value_; }
  constexpr uint64_t physical_ms() const { return value_ >> kLogicalBits; }
  constexpr uint64_t logical() const { return value_ & kMaxLogical; }

  // "2026-11-30T13:45:00.123Z/0001".
  std::string ToString() const;
  // Parses the text form; InvalidArgument says what is wrong.
  static absl::StatusOr<Timestamp> Parse(std::string_view text);

  friend constexpr auto operator<=>(Timestamp, Timestamp) = default;

 private:
  uint64_t value_ = 0;
};

class Clock {
 public:
  // Milliseconds since the Unix epoch.
  using WallClock = std::function<uint64_t()>;

  struct Options {
    // Observe refuses a timestamp more than this far ahead of the wall clock: one far in the
    // future would otherwise drag every later timestamp with it.
    uint64_t max_drift_ms = 60'000;
    // The wall clock; the system clock when empty.
    WallClock wall;
  };

  Clock();
  explicit Clock(Options options);

  // The timestamp of a local event (a field written).
  Timestamp Now();
  // A timestamp received from elsewhere (a change pulled from the server, another client's
  // write): the clock moves past it and returns the timestamp of the receipt. OutOfRange, with
  // the clock unchanged, when `remote` is more than max_drift ahead of the wall clock.
  absl::StatusOr<Timestamp> Observe(Timestamp remote);
  // The newest timestamp this clock gave (Timestamp() before the first).
  Timestamp last() const { return last_; }
  // Restores the newest timestamp a client persisted, so that a restarted client never goes back.
  void Restore(Timestamp last);

 private:
  uint64_t Wall() const;
  // The successor of (physical, logical) when the counter is full: the next millisecond.
  static Timestamp Make(uint64_t physical, uint64_t logical);

  Options options_;
  Timestamp last_;
};

}  // namespace shapebridge::hlc
