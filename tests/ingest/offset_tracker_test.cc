#include "ingest/offset_tracker.h"

#include <gtest/gtest.h>

namespace ecrm {
namespace {

TEST(OffsetTracker, WatermarkMovesOnlyOverADonePrefix) {
  OffsetTracker t;
  for (int64_t o : {10, 11, 12, 15}) t.Begin(0, o);
  EXPECT_EQ(t.TotalInFlight(), 4u);
  EXPECT_EQ(t.Complete(0, 12), std::nullopt);  // 10 and 11 still pending
  EXPECT_EQ(t.Complete(0, 10), 11);
  EXPECT_EQ(t.Complete(0, 11), 15);  // 12 was done already; 15 (a gap) is next
  EXPECT_EQ(t.Complete(0, 15), 16);
  EXPECT_EQ(t.TotalInFlight(), 0u);
  EXPECT_EQ(t.Complete(0, 15), std::nullopt);  // twice: ignored
}

TEST(OffsetTracker, RedeliveryStartsOver) {
  OffsetTracker t;
  t.Begin(0, 5);
  t.Begin(0, 6);
  t.Begin(0, 5);  // seeked back
  EXPECT_EQ(t.InFlight(0), 1u);
  EXPECT_EQ(t.Complete(0, 6), std::nullopt);
  EXPECT_EQ(t.Complete(0, 5), 6);
}

TEST(OffsetTracker, PartitionsAreIndependentAndResettable) {
  OffsetTracker t;
  t.Begin(0, 1);
  t.Begin(1, 100);
  EXPECT_EQ(t.Complete(1, 100), 101);
  EXPECT_EQ(t.InFlight(0), 1u);
  t.Reset(0);
  EXPECT_EQ(t.InFlight(0), 0u);
  EXPECT_EQ(t.Complete(0, 1), std::nullopt);  // revoked: late completions are dropped
  EXPECT_EQ(t.TotalInFlight(), 0u);
}

}  // namespace
}  // namespace ecrm
