#include "common/murmur2.h"

#include <gtest/gtest.h>

namespace ecrm {
namespace {

// Vectors from Apache Kafka's UtilsTest.testMurmur2 (the Java client's partitioner hash).
TEST(Murmur2, MatchesKafkaJavaClient) {
  EXPECT_EQ(Murmur2("21"), -973932308);
  EXPECT_EQ(Murmur2("foobar"), -790332482);
  EXPECT_EQ(Murmur2("a-little-bit-long-string"), -985981536);
  EXPECT_EQ(Murmur2("a-little-bit-longer-string"), -1486304829);
  EXPECT_EQ(Murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
  EXPECT_EQ(Murmur2("abc"), 479470107);
}

TEST(Murmur2, PartitionIsPositiveAndStable) {
  for (int i = 0; i < 1000; i++) {
    const std::string key = "visitor-" + std::to_string(i);
    const uint32_t p = PartitionForKey(key, 12);
    EXPECT_LT(p, 12u);
    EXPECT_EQ(p, static_cast<uint32_t>(Murmur2(key) & 0x7fffffff) % 12);
  }
}

}  // namespace
}  // namespace ecrm
