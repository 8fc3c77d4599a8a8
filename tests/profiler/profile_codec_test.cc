#include "profiler/profile_codec.h"

#include <gtest/gtest.h>

namespace ecrm {
namespace {

Profile Sample() {
  Profile p;
  p.id = "0001-00000000000000aa";
  p.identities["anonymous_id"] = {"a1", "a2"};
  p.identities["user_id"] = {"u1"};
  p.traits["name"] = {R"("Ada")", 5};
  p.traits["age"] = {"36", 6};
  p.stats = {10, 4, 1, 2, 1, 42.5, 1000, 2000};
  p.session = {"0001-00000000000000aa-2", 1500, 2000, 3};
  p.interests["shoes"] = {2.5, 1900};
  p.recent_products.push_back({"p1", "Sneaker", "shoes", 99.5, true, 1900});
  p.recent_products.push_back({"p2", "", "", 0, false, 1800});
  p.first_touch = {"google", "cpc", "spring", "t", "c", "https://g.co/", 1000};
  p.last_touch = {"", "", "", "", "", "https://news.example/", 1500};
  p.device = {"mobile", "ios", "safari", "analytics.js"};
  p.counters["shoe_views"] = 3;
  p.segments = {"shoe-lover"};
  p.scores["buy"] = 0.75;
  return p;
}

void ExpectSame(const Profile& a, const Profile& b) {
  std::string ea, eb;
  EncodeProfile(a, &ea);
  EncodeProfile(b, &eb);
  EXPECT_EQ(ea, eb);
}

TEST(ProfileCodec, RoundTripsEveryField) {
  const Profile p = Sample();
  std::string bytes;
  EncodeProfile(p, &bytes);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), kProfileFormatVersion);
  auto decoded = DecodeProfile(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->id, p.id);
  EXPECT_EQ(decoded->identities, p.identities);
  EXPECT_EQ(decoded->traits.at("name").json, R"("Ada")");
  EXPECT_EQ(decoded->stats.revenue, 42.5);
  EXPECT_EQ(decoded->stats.last_seen, 2000);
  EXPECT_EQ(decoded->session.id, p.session.id);
  EXPECT_EQ(decoded->recent_products.size(), 2u);
  EXPECT_EQ(decoded->recent_products[0].name, "Sneaker");
  EXPECT_FALSE(decoded->recent_products[1].has_price);
  EXPECT_EQ(decoded->first_touch.referrer, "https://g.co/");
  EXPECT_EQ(decoded->device.browser, "safari");
  EXPECT_EQ(decoded->segments, p.segments);
  EXPECT_EQ(decoded->scores.at("buy"), 0.75);
  ExpectSame(*decoded, p);
}

TEST(ProfileCodec, EmptyProfileIsSmall) {
  Profile p;
  p.id = "0001-00000000000000aa";
  std::string bytes;
  EncodeProfile(p, &bytes);
  EXPECT_LT(bytes.size(), 80u);
  ASSERT_TRUE(DecodeProfile(bytes).ok());
}

TEST(ProfileCodec, RejectsEveryTruncationAndBadVersion) {
  std::string bytes;
  EncodeProfile(Sample(), &bytes);
  for (size_t n = 0; n < bytes.size(); n++) {
    EXPECT_FALSE(DecodeProfile(std::string_view(bytes).substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(DecodeProfile(bytes + "x").ok());
  bytes[0] = 9;
  auto bad = DecodeProfile(bytes);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
}

TEST(ProfileCodec, HostileCountsDoNotAllocateWildly) {
  // version, id "", then an identities count of 2^62.
  std::string bytes = {1, 0, '\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xff', 0x3f};
  EXPECT_FALSE(DecodeProfile(bytes).ok());
}

}  // namespace
}  // namespace ecrm
