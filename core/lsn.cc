#include "core/lsn.h"

#include <charconv>
#include <ctime>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace shapebridge {

absl::StatusOr<Lsn> Lsn::Parse(std::string_view text) {
  const size_t slash = text.find('/');
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid LSN \"%s\": expected two hex numbers like 16/B374D848", text));
  };
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size() || slash > 8 ||
      text.size() - slash - 1 > 8) {
    return bad();
  }
  uint32_t hi = 0;
  uint32_t lo = 0;
  const char* begin = text.data();
  const char* mid = begin + slash;
  const char* end = begin + text.size();
  auto r1 = std::from_chars(begin, mid, hi, 16);
  auto r2 = std::from_chars(mid + 1, end, lo, 16);
  if (r1.ec != std::errc() || r1.ptr != mid || r2.ec != std::errc() || r2.ptr != end) {
    return bad();
  }
  return Lsn((uint64_t{hi} << 32) | lo);
}

std::string Lsn::ToString() const {
  return absl::StrFormat("%X/%X", static_cast<uint32_t>(value_ >> 32),
                         static_cast<uint32_t>(value_));
}

std::ostream& operator<<(std::ostream& os, Lsn lsn) { return os << lsn.ToString(); }

std::string PgTimestamp::ToString() const {
  // Near the ends of the range the Unix offset would overflow: print the raw count instead.
  if (micros_ > INT64_MAX - kPgEpochOffsetMicros) {
    return absl::StrFormat("%dus-after-2000", micros_);
  }
  const int64_t unix_us = unix_micros();
  int64_t secs = unix_us / 1'000'000;
  int64_t frac = unix_us % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    secs -= 1;
  }
  const time_t t = static_cast<time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

}  // namespace shapebridge
