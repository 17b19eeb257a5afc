#include "clients/hlc/hlc.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace shapebridge::hlc {

std::string Timestamp::ToString() const {
  const absl::Time time = absl::FromUnixMillis(static_cast<int64_t>(physical_ms()));
  char logical_hex[8];
  std::snprintf(logical_hex, sizeof logical_hex, "%04llx",
                static_cast<unsigned long long>(logical()));
  return absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone()), "/",
                      logical_hex);
}

absl::StatusOr<Timestamp> Timestamp::Parse(std::string_view text_view) {
  // (Debian's absl::StrCat takes no std::string_view.)
  const std::string text(text_view);
  const size_t slash = text.rfind('/');
  if (slash == std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hlc \"", text, "\": expected TIME/COUNTER, e.g. 2026-11-30T13:45:00.123Z/0001"));
  }
  absl::Time time;
  std::string error;
  if (!absl::ParseTime("%Y-%m-%dT%H:%M:%E3SZ", text.substr(0, slash), absl::UTCTimeZone(), &time,
                       &error)) {
    return absl::InvalidArgumentError(absl::StrCat("hlc \"", text, "\": time: ", error));
  }
  const int64_t millis = absl::ToUnixMillis(time);
  const std::string counter = text.substr(slash + 1);
  if (counter.size() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("hlc \"", text, "\": the counter must be 4 hex digits"));
  }
  uint64_t logical = 0;
  for (char c : counter) {
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    if (digit < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("hlc \"", text, "\": the counter must be 4 lowercase hex digits"));
    }
    logical = logical * 16 + static_cast<uint64_t>(digit);
  }
  if (millis < 0 || static_cast<uint64_t>(millis) > kMaxPhysical) {
    return absl::InvalidArgumentError(absl::StrCat("hlc \"", text, "\": time out of range"));
  }
  return Timestamp(static_cast<uint64_t>(millis), logical);
}

Clock::Clock() : Clock(Options{}) {}

Clock::Clock(Options options) : options_(std::move(options)) {}

uint64_t Clock::Wall() const {
  if (options_.wall) return std::min(options_.wall(), Timestamp::kMaxPhysical);
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
}

Timestamp Clock::Make(uint64_t physical, uint64_t logical) {
  if (logical > Timestamp::kMaxLogical) return Timestamp(physical + 1, 0);
  return Timestamp(physical, logical);
}

Timestamp Clock::Now() {
  const uint64_t wall = Wall();
  const uint64_t physical = last_.physical_ms();
  if (wall > physical) {
    last_ = Timestamp(wall, 0);
  } else {
    last_ = Make(physical, last_.logical() + 1);
  }
  return last_;
}

absl::StatusOr<Timestamp> Clock::Observe(Timestamp remote) {
  const uint64_t wall = Wall();
  if (remote.physical_ms() > wall + options_.max_drift_ms) {
    return absl::OutOfRangeError(absl::StrCat(
        "hlc ", remote.ToString(), " is ", remote.physical_ms() - wall,
        " ms ahead of this clock, more than the allowed ", options_.max_drift_ms, " ms"));
  }
  const uint64_t local = last_.physical_ms();
  const uint64_t physical = std::max({wall, local, remote.physical_ms()});
  if (physical == local && physical == remote.physical_ms()) {
    last_ = Make(physical, std::max(last_.logical(), remote.logical()) + 1);
  } else if (physical == local) {
    last_ = Make(physical, last_.logical() + 1);
  } else if (physical == remote.physical_ms()) {
    last_ = Make(physical, remote.logical() + 1);
  } else {
    last_ = Timestamp(physical, 0);
  }
  return last_;
}

void Clock::Restore(Timestamp last) { last_ = std::max(last_, last); }

}  // namespace shapebridge::hlc
