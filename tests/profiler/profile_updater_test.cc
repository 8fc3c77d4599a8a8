#include "profiler/profile_updater.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace ecrm {
namespace {

constexpr TimeMs kMin = 60 * 1000;
constexpr TimeMs kHour = 60 * kMin;
constexpr TimeMs kT0 = 1'790'000'000'000;

Event Track(std::string name, TimeMs ts, std::string category = "", std::string product = "") {
  Event e;
  e.type = EventType::kTrack;
  e.anonymous_id = "a";
  e.event = std::move(name);
  e.timestamp = ts;
  if (!category.empty() || !product.empty()) {
    e.products.push_back({product, "", category, 10, true});
  }
  return e;
}

Event Page(TimeMs ts) {
  Event e;
  e.type = EventType::kPage;
  e.anonymous_id = "a";
  e.timestamp = ts;
  return e;
}

class UpdaterTest : public ::testing::Test {
 protected:
  UpdaterTest() : updater_(ProfilerConfig{}) { p_.id = "0000-0000000000000001"; }
  ProfileUpdater updater_;
  Profile p_;
};

TEST_F(UpdaterTest, CountsEventsPageViewsAndSeenTimes) {
  updater_.Apply(p_, Page(kT0 + 5 * kMin));
  updater_.Apply(p_, Track("Signed Up", kT0));
  updater_.Apply(p_, Page(kT0 + 2 * kMin));
  EXPECT_EQ(p_.stats.events, 3);
  EXPECT_EQ(p_.stats.page_views, 2);
  EXPECT_EQ(p_.stats.first_seen, kT0);
  EXPECT_EQ(p_.stats.last_seen, kT0 + 5 * kMin);
}

TEST_F(UpdaterTest, SessionsSplitAfterThirtyMinutesOfInactivity) {
  updater_.Apply(p_, Page(kT0));
  updater_.Apply(p_, Page(kT0 + 29 * kMin));
  updater_.Apply(p_, Page(kT0 + 58 * kMin));  // 29 min after the previous: same session
  EXPECT_EQ(p_.stats.sessions, 1);
  updater_.Apply(p_, Page(kT0 + 58 * kMin + 30 * kMin + 1));  // just over 30 min: new session
  EXPECT_EQ(p_.stats.sessions, 2);
  EXPECT_EQ(p_.session.events, 1);
  EXPECT_EQ(p_.session.id, p_.id + "-2");
  // A late event inside the gap: in time order no gap is over 30 min any more (58 -> 78 -> 88),
  // so the two sessions are one, as if the events had arrived in order.
  updater_.Apply(p_, Page(kT0 + 58 * kMin + 20 * kMin));
  EXPECT_EQ(p_.stats.sessions, 1);
  EXPECT_EQ(p_.session.events, 5);
  EXPECT_EQ(p_.session.started_at, kT0);
}

TEST_F(UpdaterTest, SessionsDoNotDependOnArrivalOrder) {
  const std::vector<TimeMs> times = {kT0,
                                     kT0 + 10 * kMin,
                                     kT0 + 2 * kHour,
                                     kT0 + 2 * kHour + 5 * kMin,
                                     kT0 + 5 * kHour,
                                     kT0 + 40 * kMin,
                                     kT0 + 70 * kMin};
  Profile in_order;
  in_order.id = p_.id;
  std::vector<TimeMs> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  for (TimeMs t : sorted) updater_.Apply(in_order, Page(t));
  std::vector<TimeMs> shuffled = times;
  std::mt19937 rng(3);
  for (int run = 0; run < 20; run++) {
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    Profile p;
    p.id = p_.id;
    for (TimeMs t : shuffled) updater_.Apply(p, Page(t));
    EXPECT_EQ(p.stats.sessions, in_order.stats.sessions);
    EXPECT_EQ(p.session_intervals, in_order.session_intervals);
    EXPECT_EQ(p.session.id, in_order.session.id);
  }
  EXPECT_EQ(in_order.stats.sessions, 3);  // [0, 70 min], [2 h, 2 h 5 min], [5 h]
}

TEST_F(UpdaterTest, TraitsLastWriteByEventTimeWins) {
  Event newer;
  newer.type = EventType::kIdentify;
  newer.timestamp = kT0 + 10;
  newer.traits = {{"name", R"("New")"}, {"plan", R"("pro")"}};
  Event older = newer;
  older.timestamp = kT0;
  older.traits = {{"name", R"("Old")"}, {"city", R"("Oslo")"}};
  updater_.Apply(p_, newer);
  updater_.Apply(p_, older);
  EXPECT_EQ(p_.traits.at("name").json, R"("New")");
  EXPECT_EQ(p_.traits.at("plan").json, R"("pro")");
  EXPECT_EQ(p_.traits.at("city").json, R"("Oslo")");
}

TEST_F(UpdaterTest, OrdersRevenueAndInterestWeights) {
  Event order = Track("Order Completed", kT0, "bags", "b1");
  order.revenue = 42.5;
  order.has_revenue = true;
  updater_.Apply(p_, order);
  updater_.Apply(p_, Track("Product Viewed", kT0, "shoes", "s1"));
  updater_.Apply(p_, Track("Product Added", kT0, "shoes", "s1"));
  EXPECT_EQ(p_.stats.orders, 1);
  EXPECT_DOUBLE_EQ(p_.stats.revenue, 42.5);
  EXPECT_DOUBLE_EQ(p_.interests.at("bags").score, 5.0);
  EXPECT_DOUBLE_EQ(p_.interests.at("shoes").score, 4.0);
}

TEST_F(UpdaterTest, InterestsHalveOverTheHalfLife) {
  const TimeMs week = 7LL * 24 * 60 * kMin;
  updater_.Apply(p_, Track("Product Viewed", kT0, "shoes", "s1"));
  updater_.Apply(p_, Track("Product Viewed", kT0 + week, "shoes", "s2"));
  EXPECT_NEAR(p_.interests.at("shoes").score, 1.5, 1e-9);
  EXPECT_NEAR(updater_.DecayedScore(p_.interests.at("shoes"), kT0 + 2 * week), 0.75, 1e-9);
}

TEST_F(UpdaterTest, RecentProductsNewestFirstUniqueAndCapped) {
  for (int i = 0; i < 25; i++) {
    updater_.Apply(p_, Track("Product Viewed", kT0 + i, "c", "p" + std::to_string(i)));
  }
  updater_.Apply(p_, Track("Product Viewed", kT0 + 100, "c", "p10"));  // viewed again
  ASSERT_EQ(p_.recent_products.size(), 20u);
  EXPECT_EQ(p_.recent_products[0].product_id, "p10");
  EXPECT_EQ(p_.recent_products[1].product_id, "p24");
  EXPECT_EQ(p_.recent_products[19].product_id, "p5");  // p10 moved up, so nothing else dropped
  int p10 = 0;
  for (const auto& r : p_.recent_products) p10 += r.product_id == "p10";
  EXPECT_EQ(p10, 1);
}

TEST_F(UpdaterTest, FirstAndLastTouch) {
  Event a = Page(kT0 + 10);
  a.touch.source = "google";
  Event b = Page(kT0 + 20);
  b.touch.source = "newsletter";
  Event c = Page(kT0);
  c.touch.referrer = "https://blog.example/";
  updater_.Apply(p_, a);
  updater_.Apply(p_, b);
  updater_.Apply(p_, c);  // the earliest by event time becomes the first touch
  EXPECT_EQ(p_.first_touch.referrer, "https://blog.example/");
  EXPECT_EQ(p_.last_touch.source, "newsletter");
}

}  // namespace
}  // namespace ecrm
