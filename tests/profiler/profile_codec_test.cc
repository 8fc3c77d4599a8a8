#include "profiler/profile_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

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
  p.segments = {{"shoe-lover", 0}, {"sale-hunter", 5000}};
  p.scores["buy"] = 0.75;
  p.offers["free-shipping"] = 10;
  p.windowed_counters["views_7d"] = {604800000, {{0, 2}, {25200000, 1.5}}};
  p.rules_fired["welcome"] = "0001-00000000000000aa-2";
  p.session_intervals = {{900, 1000, 2}, {1500, 2000, 3}};
  p.sessions_dropped = 0;
  p.merged_ids = {"0002-00000000000000bb"};
  p.history.push_back({1800, true, "0002-00000000000000bb", "user_id:u", "m1", ""});
  p.traits["plan"] = {R"("gold")", 1700, "crm"};
  p.recent_messages = {{0xfedcba9876543210ULL, 1'790'000'000'000}, {7, 1'790'000'000'500}};
  p.consent = {.store = -1, .personalize = 1, .store_at = 1900, .personalize_at = 1700};
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
  EXPECT_EQ(decoded->offers, p.offers);
  EXPECT_EQ(decoded->windowed_counters.at("views_7d").buckets,
            p.windowed_counters.at("views_7d").buckets);
  EXPECT_EQ(decoded->rules_fired, p.rules_fired);
  EXPECT_EQ(decoded->session_intervals, p.session_intervals);
  EXPECT_EQ(decoded->merged_ids, p.merged_ids);
  ASSERT_EQ(decoded->history.size(), 1u);
  EXPECT_EQ(decoded->history[0].identifier, "user_id:u");
  EXPECT_EQ(decoded->traits.at("plan").source, "crm");
  EXPECT_EQ(decoded->recent_messages, p.recent_messages);
  EXPECT_EQ(decoded->consent, p.consent);
  ExpectSame(*decoded, p);
}

// Dedup state (docs/identity.md#dedup): the window and the bound on the hashes a profile keeps.
TEST(RecentMessages, KeepAtMostTheBoundWithinTheWindow) {
  Profile p;
  constexpr TimeMs kWindow = 24LL * 3600 * 1000;
  constexpr TimeMs kT = 1'790'000'000'000;
  p.RememberMessage(1, kT, kWindow);
  p.RememberMessage(2, kT + 10, kWindow);
  EXPECT_TRUE(p.SawMessage(1));
  EXPECT_FALSE(p.SawMessage(3));
  p.RememberMessage(3, kT + kWindow + 20, kWindow);  // 1 and 2 fall out of the window
  EXPECT_FALSE(p.SawMessage(1));
  EXPECT_FALSE(p.SawMessage(2));
  EXPECT_TRUE(p.SawMessage(3));
  for (uint64_t h = 100; h < 100 + Profile::kMaxRecentMessages; h++) {
    p.RememberMessage(h, kT + kWindow + 30, kWindow);
  }
  EXPECT_EQ(p.recent_messages.size(), Profile::kMaxRecentMessages);
  EXPECT_FALSE(p.SawMessage(3));  // the oldest beyond the bound
  EXPECT_TRUE(p.SawMessage(100));
  // A late arrival is kept in received-at order.
  p.RememberMessage(9, kT + kWindow + 25, kWindow);
  EXPECT_TRUE(
      std::is_sorted(p.recent_messages.begin(), p.recent_messages.end(),
                     [](const auto& a, const auto& b) { return a.received_at < b.received_at; }));
}

// A value written by the first format (version 1: segments as a plain list, no rule state).
TEST(ProfileCodec, ReadsVersionOneValues) {
  std::string v1;
  v1.push_back(1);
  v1 += std::string(
      "\x03"
      "abc",
      4);                      // id
  v1 += std::string(2, '\0');  // identities, traits
  v1 += std::string(8, '\0');  // stats: events..orders (5 signed), revenue is a double
  v1.resize(v1.size() - 3);
  v1 += std::string(8, '\0');   // revenue (fixed 8 bytes)
  v1 += std::string(2, '\0');   // first_seen, last_seen
  v1 += std::string(4, '\0');   // session id, started_at, last_event_at, events
  v1 += std::string(2, '\0');   // interests, recent products
  v1 += std::string(14, '\0');  // two touches: 6 strings + time each
  v1 += std::string(4, '\0');   // device
  v1 += std::string(1, '\0');   // counters
  v1 += std::string(
      "\x01\x04"
      "shoe",
      6);                      // segments: ["shoe"]
  v1 += std::string(1, '\0');  // scores
  auto decoded = DecodeProfile(v1);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->id, "abc");
  ASSERT_EQ(decoded->segments.size(), 1u);
  EXPECT_EQ(decoded->segments.at("shoe"), 0);
  EXPECT_TRUE(decoded->offers.empty());
}

TEST(WindowedCounter, CountsOnlyWithinTheWindow) {
  WindowedCounter c;
  c.window_ms = 24 * 3600 * 1000;  // one day, 1 h buckets
  const TimeMs day = c.window_ms, hour = day / 24;
  c.Add(0, 1);
  c.Add(hour * 5, 2);
  EXPECT_EQ(c.Sum(hour * 6), 3);
  EXPECT_EQ(c.Sum(day + hour / 2), 3);  // the window still overlaps the first bucket [0, 1h)
  EXPECT_EQ(c.Sum(day + hour), 2);      // ... and now it does not
  c.Add(day * 2, 1);                    // drops everything older than a day before it
  EXPECT_EQ(c.buckets.size(), 1u);
  EXPECT_EQ(c.Sum(day * 2), 1);
  c.Add(day * 2 - hour * 3, 4);  // a late event inside the window lands in its own bucket
  EXPECT_EQ(c.Sum(day * 2), 5);
  EXPECT_EQ(c.buckets.front().first, day * 2 - hour * 3);
}

TEST(ProfileCodec, EmptyProfileIsSmall) {
  Profile p;
  p.id = "0001-00000000000000aa";
  std::string bytes;
  EncodeProfile(p, &bytes);
  EXPECT_LT(bytes.size(), 80u);
  EXPECT_EQ(bytes[0], 6) << "without a consent state, the version every instance reads";
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

// Found by tests/fuzz/profile_codec_fuzz.cc: a corrupt delta of the recent messages' times
// overflowed int64 (undefined behaviour) instead of failing the value.
TEST(ProfileCodec, RecentMessageTimesThatOverflowAreCorrupt) {
  Profile p;
  p.id = "0001-00000000000000aa";
  const TimeMs low = std::numeric_limits<TimeMs>::min() + 5;
  p.recent_messages = {{1, low}, {2, low}};  // deltas: low, then 0 (the value's last byte)
  std::string bytes;
  EncodeProfile(p, &bytes);
  ASSERT_TRUE(DecodeProfile(bytes).ok());
  ASSERT_EQ(bytes.back(), 0);
  bytes.back() = 19;  // zigzag(-10): low - 10 is below int64's range
  auto bad = DecodeProfile(bytes);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace ecrm
