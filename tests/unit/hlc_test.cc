// The hybrid logical clock clients stamp their writes with: monotonic under a wall clock that
// stands still or goes back, causality across clocks, the drift bound, the counter's overflow and
// the text form.

#include "clients/hlc/hlc.h"

#include <algorithm>
#include <map>
#include <vector>

#include "gtest/gtest.h"
#include "rapidcheck.h"
#include "rapidcheck/gtest.h"

namespace shapebridge::hlc {
namespace {

constexpr uint64_t kNov30 = 1'796'046'300'123;  // 2026-11-30T13:45:00.123Z

TEST(HlcTest, NowIsStrictlyIncreasingWhenTheWallClockStandsStillOrGoesBack) {
  uint64_t wall = kNov30;
  Clock clock({.wall = [&] { return wall; }});
  const Timestamp a = clock.Now();
  EXPECT_EQ(a, Timestamp(kNov30, 0));
  const Timestamp b = clock.Now();
  EXPECT_EQ(b, Timestamp(kNov30, 1));
  wall -= 5'000;  // the wall clock was set back
  const Timestamp c = clock.Now();
  EXPECT_EQ(c, Timestamp(kNov30, 2));
  wall = kNov30 + 10;
  EXPECT_EQ(clock.Now(), Timestamp(kNov30 + 10, 0));
}

TEST(HlcTest, AFullCounterMovesToTheNextMillisecond) {
  Clock clock({.wall = [] { return kNov30; }});
  Timestamp previous = clock.Now();
  for (int i = 0; i < 70'000; ++i) {
    const Timestamp t = clock.Now();
    ASSERT_LT(previous, t) << i;
    previous = t;
  }
  EXPECT_EQ(previous.physical_ms(), kNov30 + 1);
  EXPECT_EQ(previous.logical(), 70'000u - 65'536u);
}

TEST(HlcTest, ObserveMovesPastTheRemoteTimestamp) {
  uint64_t wall = kNov30;
  Clock clock({.wall = [&] { return wall; }});
  clock.Now();
  // A remote clock 2 s ahead (within the drift bound).
  const Timestamp remote(kNov30 + 2'000, 7);
  auto received = clock.Observe(remote);
  ASSERT_TRUE(received.ok()) << received.status();
  EXPECT_EQ(*received, Timestamp(kNov30 + 2'000, 8));
  // Local events stay after it although the wall clock has not caught up.
  EXPECT_EQ(clock.Now(), Timestamp(kNov30 + 2'000, 9));
  // An older remote timestamp only advances the counter.
  received = clock.Observe(Timestamp(kNov30 - 1'000, 3));
  ASSERT_TRUE(received.ok());
  EXPECT_EQ(*received, Timestamp(kNov30 + 2'000, 10));
  // The wall clock passes everything: the counter starts again.
  wall = kNov30 + 3'000;
  received = clock.Observe(Timestamp(kNov30 + 2'500, 40));
  ASSERT_TRUE(received.ok());
  EXPECT_EQ(*received, Timestamp(kNov30 + 3'000, 0));
}

TEST(HlcTest, ATimestampTooFarAheadIsRefusedAndChangesNothing) {
  Clock clock({.max_drift_ms = 60'000, .wall = [] { return kNov30; }});
  const Timestamp before = clock.Now();
  auto received = clock.Observe(Timestamp(kNov30 + 60'001, 0));
  ASSERT_FALSE(received.ok());
  EXPECT_EQ(received.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(received.status().message().find("60001 ms ahead"), std::string_view::npos)
      << received.status();
  EXPECT_EQ(clock.last(), before);
  EXPECT_TRUE(clock.Observe(Timestamp(kNov30 + 60'000, 0)).ok());
}

TEST(HlcTest, RestoreNeverGoesBack) {
  Clock clock({.wall = [] { return kNov30; }});
  clock.Restore(Timestamp(kNov30 + 500, 3));  // persisted by the previous run
  EXPECT_EQ(clock.Now(), Timestamp(kNov30 + 500, 4));
  clock.Restore(Timestamp(kNov30, 0));
  EXPECT_EQ(clock.Now(), Timestamp(kNov30 + 500, 5));
}

TEST(HlcTest, TextFormRoundTripsAndOrdersAsTheInteger) {
  const Timestamp t(kNov30, 1);
  EXPECT_EQ(t.ToString(), "2026-11-30T13:45:00.123Z/0001");
  auto parsed = Timestamp::Parse("2026-11-30T13:45:00.123Z/0001");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, t);
  EXPECT_EQ(Timestamp::FromInteger(t.integer()), t);
  EXPECT_EQ(t.integer(), kNov30 << 16 | 1);
  EXPECT_LT(Timestamp(kNov30, 0xffff), Timestamp(kNov30 + 1, 0));
  for (const char* bad :
       {"2026-11-30T13:45:00.123Z", "2026-11-30 13:45:00.123Z/0001", "2026-11-30T13:45:00.123Z/01",
        "2026-11-30T13:45:00.123Z/00G1", "2026-11-30T13:45:00.123Z/00A1"}) {
    auto status = Timestamp::Parse(bad).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(status.message().find(bad), std::string_view::npos) << status;
  }
}

// Several clients whose wall clocks are skewed by up to 5 s, each doing local writes, sending
// their timestamps and observing others': every clock is strictly increasing, a receipt is later
// than what was sent (causality), and no timestamp runs ahead of the largest wall-clock reading
// of any client so far.
RC_GTEST_PROP(HlcPropertyTest, MonotonicCausalAndBounded, ()) {
  const int nodes = *rc::gen::inRange(2, 5);
  std::vector<int64_t> skew;
  for (int i = 0; i < nodes; ++i) skew.push_back(*rc::gen::inRange(-5'000, 5'001));
  uint64_t now = kNov30;
  uint64_t max_wall = 0;
  std::vector<Clock> clocks;
  for (int i = 0; i < nodes; ++i) {
    clocks.emplace_back(Clock::Options{.max_drift_ms = 60'000, .wall = [&, i] {
                                         const uint64_t wall = static_cast<uint64_t>(
                                             static_cast<int64_t>(now) + skew[i]);
                                         max_wall = std::max(max_wall, wall);
                                         return wall;
                                       }});
  }
  std::vector<Timestamp> last(nodes);
  std::vector<std::pair<int, Timestamp>> in_flight;  // (to, sent)
  const int steps = *rc::gen::inRange(1, 300);
  for (int step = 0; step < steps; ++step) {
    now += static_cast<uint64_t>(*rc::gen::inRange(0, 3));  // often the same millisecond
    const int node = *rc::gen::inRange(0, nodes);
    Timestamp t;
    const int what = *rc::gen::inRange(0, 3);
    if (what == 2 && !in_flight.empty()) {
      const size_t pick =
          static_cast<size_t>(*rc::gen::inRange(0, static_cast<int>(in_flight.size())));
      const auto [to, sent] = in_flight[pick];
      in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(pick));
      auto received = clocks[to].Observe(sent);
      RC_ASSERT(received.ok());
      RC_ASSERT(*received > sent);
      RC_ASSERT(*received > last[to]);
      last[to] = *received;
      t = *received;
    } else {
      t = clocks[node].Now();
      RC_ASSERT(t > last[node]);
      last[node] = t;
      if (what == 1) in_flight.emplace_back(*rc::gen::inRange(0, nodes), t);
    }
    RC_ASSERT(t.physical_ms() <= max_wall);
  }
}

}  // namespace
}  // namespace shapebridge::hlc
