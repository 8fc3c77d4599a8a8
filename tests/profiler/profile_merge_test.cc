#include "profiler/profile_merge.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "profiler/profile_codec.h"

namespace ecrm {
namespace {

Profile A() {
  Profile p;
  p.id = "0001-0000000000010000";
  p.identities["anonymous_id"] = {"a1"};
  p.identities["user_id"] = {"u1"};
  p.traits["plan"] = {R"("silver")", 100};
  p.traits["name"] = {R"("Ada")", 50};
  p.stats = {3, 2, 0, 1, 0, 0, 10, 100};
  p.session = {"s-a", 10, 100, 3};
  p.session_intervals = {{10, 100, 3}};
  p.interests["shoes"] = {2.0, 90};
  p.recent_products = {{"p1", "", "shoes", 0, false, 90}};
  p.first_touch = {"google", "", "", "", "", "", 10};
  p.counters["views"] = 2;
  p.segments["vip"] = 0;
  p.offers["o1"] = 5;
  return p;
}

Profile B() {
  Profile p;
  p.id = "0002-0000000000020000";
  p.identities["anonymous_id"] = {"a2"};
  p.traits["plan"] = {R"("gold")", 200};
  p.stats = {2, 1, 0, 1, 1, 30.5, 150, 220};
  p.session = {"s-b", 150, 220, 2};
  p.session_intervals = {{150, 220, 2}};
  p.interests["shoes"] = {1.0, 210};
  p.interests["hats"] = {1.0, 220};
  p.recent_products = {{"p2", "", "hats", 0, false, 220}, {"p1", "", "shoes", 0, false, 200}};
  p.first_touch = {"newsletter", "", "", "", "", "", 150};
  p.counters["views"] = 1;
  p.segments["vip"] = 5000;
  p.offers["o1"] = 7;
  return p;
}

TEST(MergeProfiles, CombinesSummaries) {
  ProfileUpdater updater(ProfilerConfig{});
  Profile s = A();
  MergeProfiles(s, B(), updater);
  EXPECT_EQ(s.identities["anonymous_id"], (std::vector<std::string>{"a1", "a2"}));
  EXPECT_EQ(s.traits["plan"].json, R"("gold")");  // the later event time wins
  EXPECT_EQ(s.traits["name"].json, R"("Ada")");
  EXPECT_EQ(s.stats.events, 5);
  EXPECT_EQ(s.stats.orders, 1);
  EXPECT_EQ(s.stats.first_seen, 10);
  EXPECT_EQ(s.stats.last_seen, 220);
  // The two sessions are 50 ms apart: one session of the person, from 10 to 220.
  EXPECT_EQ(s.stats.sessions, 1);
  EXPECT_EQ(s.session.started_at, 10);
  EXPECT_EQ(s.session.last_event_at, 220);
  EXPECT_EQ(s.session.events, 5);
  ASSERT_EQ(s.recent_products.size(), 2u);  // one entry per product, newest first
  EXPECT_EQ(s.recent_products[0].product_id, "p2");
  EXPECT_EQ(s.recent_products[1].viewed_at, 200);
  EXPECT_EQ(s.first_touch.source, "google");
  EXPECT_EQ(s.counters["views"], 3);
  EXPECT_EQ(s.segments["vip"], 0);  // no expiry beats an expiry
  EXPECT_EQ(s.offers["o1"], 7);
  EXPECT_NEAR(s.interests["shoes"].score, updater.DecayedScore({2.0, 90}, 210) + 1.0, 1e-12);
  EXPECT_EQ(s.merged_ids, (std::vector<std::string>{"0002-0000000000020000"}));
}

// Which profile survives changes the id, not the merged content.
TEST(MergeProfiles, TheResultDoesNotDependOnTheSurvivor) {
  ProfileUpdater updater(ProfilerConfig{});
  Profile ab = A(), ba = B();
  MergeProfiles(ab, B(), updater);
  MergeProfiles(ba, A(), updater);
  for (Profile* p : {&ab, &ba}) {
    p->id.clear();
    p->session.id.clear();  // "<profile id>-<n>"
    p->merged_ids.clear();
    for (auto& [type, values] : p->identities) std::sort(values.begin(), values.end());
  }
  std::string ea, eb;
  EncodeProfile(ab, &ea);
  EncodeProfile(ba, &eb);
  EXPECT_EQ(ea, eb);
}

TEST(MergeProfiles, HistoryIsBoundedAndOrderedByTime) {
  Profile p;
  for (int i = 0; i < 70; i++) AddHistory(p, {70 - i, true, "x", "user_id:u", "", ""});
  ASSERT_EQ(p.history.size(), Profile::kMaxHistory);
  EXPECT_TRUE(std::is_sorted(p.history.begin(), p.history.end(),
                             [](const auto& a, const auto& b) { return a.at < b.at; }));
  EXPECT_EQ(p.history.back().at, 70);
}

// A retry of an event applied to either profile is found on the survivor; a merge applied twice
// (re-sent after a crash) lists the loser once.
TEST(MergeProfiles, UnitesTheDedupSetsAndMergedIdsOnce) {
  Profile a = A(), b = B();
  a.recent_messages = {{1, 10}, {3, 30}};
  b.recent_messages = {{2, 20}};
  const ProfileUpdater updater(ProfilerConfig{});
  MergeProfiles(a, b, updater);
  EXPECT_TRUE(a.SawMessage(1) && a.SawMessage(2) && a.SawMessage(3));
  EXPECT_EQ(a.recent_messages[1].received_at, 20);  // in received-at order
  MergeProfiles(a, b, updater);
  EXPECT_EQ(std::count(a.merged_ids.begin(), a.merged_ids.end(), b.id), 1);
  // The bound holds for the united set.
  Profile big = A(), other = B();
  for (uint64_t h = 1; h <= Profile::kMaxRecentMessages; h++) {
    big.recent_messages.push_back({h, static_cast<TimeMs>(h)});
    other.recent_messages.push_back({h + 1000, static_cast<TimeMs>(h) + 1});
  }
  MergeProfiles(big, other, updater);
  EXPECT_EQ(big.recent_messages.size(), Profile::kMaxRecentMessages);
  EXPECT_TRUE(big.SawMessage(1000 + Profile::kMaxRecentMessages));  // the newest are kept
  EXPECT_FALSE(big.SawMessage(1));
}

TEST(ProfileCodec, AliasRecordsAreNotProfiles) {
  const std::string alias = EncodeAlias("0003-00000000000000aa");
  EXPECT_EQ(DecodeAlias(alias), "0003-00000000000000aa");
  EXPECT_FALSE(DecodeProfile(alias).ok());
  std::string profile;
  EncodeProfile(A(), &profile);
  EXPECT_FALSE(DecodeAlias(profile).has_value());
}

}  // namespace
}  // namespace ecrm
