#include "profiler/profile_updater.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include "profiler/internal/profile_cache.h"
#include "profiler/profile_merge.h"

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

namespace ecrm {
namespace {

Event Identify(TimeMs ts, std::vector<std::pair<std::string, std::string>> traits) {
  Event e;
  e.type = EventType::kIdentify;
  e.anonymous_id = "a";
  e.timestamp = ts;
  e.traits = std::move(traits);
  return e;
}

std::vector<std::pair<std::string, std::string>> Traits(const std::string& prefix, int n,
                                                        size_t value_bytes = 8) {
  std::vector<std::pair<std::string, std::string>> t;
  for (int i = 0; i < n; i++) {
    t.emplace_back(prefix + std::to_string(i), "\"" + std::string(value_bytes, 'v') + "\"");
  }
  return t;
}

TEST(TraitCaps, NewKeysBeyondTheCountCapAreDroppedAndCountedExistingOnesStillUpdate) {
  ProfilerConfig config;
  config.max_traits = 10;
  const ProfileUpdater updater(config);
  Profile p;
  EXPECT_EQ(updater.Apply(p, Identify(kT0, Traits("k", 8))), 0u);
  EXPECT_EQ(updater.Apply(p, Identify(kT0 + 1, Traits("n", 5))), 3u);  // 2 fit, 3 dropped
  EXPECT_EQ(p.traits.size(), 10u);
  EXPECT_TRUE(p.traits.contains("n1"));
  EXPECT_FALSE(p.traits.contains("n2"));
  // A key already held is updated at the cap.
  EXPECT_EQ(updater.Apply(p, Identify(kT0 + 2, {{"k0", "\"new\""}})), 0u);
  EXPECT_EQ(p.traits["k0"].json, "\"new\"");
}

TEST(TraitCaps, TheByteCapBoundsKeysAndValuesTogether) {
  ProfilerConfig config;
  config.max_trait_bytes = 1000;
  const ProfileUpdater updater(config);
  Profile p;
  // Each trait: key "kN" (2 bytes) + a value of 100 + 2 quotes: 104 bytes; 9 fit in 1,000.
  EXPECT_EQ(updater.Apply(p, Identify(kT0, Traits("k", 12, 100))), 3u);
  EXPECT_EQ(p.traits.size(), 9u);
  EXPECT_LE(ProfileUpdater::TraitBytes(p), 1000u);
  // Growing a held value past the cap is dropped too; the old value stays.
  EXPECT_EQ(updater.Apply(p, Identify(kT0 + 1, {{"k0", "\"" + std::string(200, 'x') + "\""}})), 1u);
  EXPECT_EQ(p.traits["k0"].json.size(), 102u);
  // Another channel's record obeys the same caps.
  Event crm = Identify(kT0 + 2, Traits("crm", 3, 100));
  crm.channel = "crm";
  EXPECT_EQ(updater.Apply(p, crm), 3u);
}

TEST(TraitCaps, AMergeKeepsTheSurvivorsTraitsFirstWithinTheCaps) {
  ProfilerConfig config;
  config.max_traits = 50;
  const ProfileUpdater updater(config);
  Profile a, b;
  a.id = "a";
  b.id = "b";
  EXPECT_EQ(updater.Apply(a, Identify(kT0, Traits("a", 40))), 0u);
  EXPECT_EQ(updater.Apply(b, Identify(kT0, Traits("b", 40))), 0u);
  EXPECT_EQ(MergeProfiles(a, b, updater), 30u);
  EXPECT_EQ(a.traits.size(), 50u);
  EXPECT_TRUE(a.traits.contains("a39"));
}

// The cache is bounded by Profile::MemoryBytes: it must track what the allocator really hands
// out. Measured with glibc's mallinfo2 (the tests do not link jemalloc).
TEST(ProfileMemory, TheEstimateIsWithinAFifthOfTheAllocatedBytes) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "glibc's mallinfo2 does not see AddressSanitizer's allocator";
#endif
  const ProfileUpdater updater(ProfilerConfig{});
  for (const auto& [n, bytes] :
       std::vector<std::pair<int, size_t>>{{10, 8}, {300, 30}, {150, 300}}) {
    Profile model;
    model.id = "0000-0000000000000001";
    model.AddIdentity("anonymous_id", std::string(36, 'a'));
    model.AddIdentity("user_id", "user-1");
    ASSERT_EQ(updater.Apply(model, Identify(kT0, Traits("trait_key_", n, bytes))), 0u);
    for (int i = 0; i < 20; i++) {
      Event view = Track("Product Viewed", kT0 + i, "category-" + std::to_string(i % 7),
                         "product-" + std::to_string(i));
      updater.Apply(model, view);
    }
    constexpr int kCopies = 200;
    std::vector<std::unique_ptr<Profile>> copies;
    copies.reserve(kCopies);
    const size_t before = mallinfo2().uordblks;
    for (int i = 0; i < kCopies; i++) copies.push_back(std::make_unique<Profile>(model));
    const double measured = static_cast<double>(mallinfo2().uordblks - before) / kCopies;
    const double estimated = static_cast<double>(copies[0]->MemoryBytes());
    std::printf("estimate/measured %.2f (%d traits of %zu bytes)\n", estimated / measured, n,
                bytes);
    EXPECT_GT(estimated, measured * 0.8) << n << " traits of " << bytes << " bytes";
    EXPECT_LT(estimated, measured * 1.25) << n << " traits of " << bytes << " bytes";
  }
}

}  // namespace
}  // namespace ecrm

namespace ecrm {
namespace {

TEST(ProfileCacheBytes, EvictsTheLeastRecentlyUsedBeyondTheByteBoundAndTracksReweighs) {
  const ProfileUpdater updater(ProfilerConfig{});
  auto make = [&](const std::string& id, int traits) {
    Profile p;
    p.id = id;
    updater.Apply(p, Identify(kT0, Traits("k", traits, 100)));
    return p;
  };
  const size_t one = make("x", 20).MemoryBytes();
  ProfileCache cache(1000, 3 * one + one / 2);  // room for three
  for (const char* id : {"a", "b", "c", "d"}) cache.Insert(make(id, 20));
  ASSERT_NE(cache.Find("a"), nullptr);  // a is now the most recently used
  cache.Trim();
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.Find("b"), nullptr);  // the least recently used went
  EXPECT_LE(cache.bytes(), 3 * one + one / 2);
  // A profile that grows in place is reweighed, and the bound then drops others.
  Profile* c = cache.Find("c");
  ASSERT_NE(c, nullptr);
  updater.Apply(*c, Identify(kT0 + 1, Traits("more", 40, 100)));
  cache.Reweigh("c");
  cache.Trim();
  EXPECT_NE(cache.Find("c"), nullptr);
  EXPECT_LE(cache.bytes(), 3 * one + one / 2);
  EXPECT_LT(cache.size(), 3u);
  cache.EraseIf([](const std::string&) { return true; });
  EXPECT_EQ(cache.bytes(), 0u);
}

// Consent (docs/privacy.md#consent): the mapped categories of context.consent.categoryPreferences
// grant or withdraw storing behaviour and personalizing; the latest statement by event time wins.
TEST(Consent, AWithdrawalDropsTheBehaviourAndTheLatestStatementWins) {
  ProfilerConfig config;
  config.consent_store = {"Analytics"};
  config.consent_personalize = {"Advertising", "Personalization"};
  const ProfileUpdater updater(config);
  Profile p;
  p.id = "0000-0000000000000001";
  auto with = [](Event e, std::vector<std::pair<std::string, bool>> consent) {
    e.consent = std::move(consent);
    return e;
  };
  updater.Apply(p, Track("Product Viewed", kT0, "Shoes", "sku-1"));
  Event identify;
  identify.type = EventType::kIdentify;
  identify.timestamp = kT0 + kMin;
  identify.traits = {{"name", R"("Ada")"}};
  updater.Apply(p, with(identify, {{"Analytics", true}, {"Advertising", true}}));
  ASSERT_EQ(p.stats.events, 2);
  ASSERT_FALSE(p.interests.empty());
  EXPECT_EQ(p.consent.store, 1);
  EXPECT_EQ(p.consent.personalize, 1);

  // Withdrawn: behaviour goes, identity and traits stay, later events add no behaviour.
  updater.Apply(p, with(Page(kT0 + 2 * kMin), {{"Analytics", false}, {"Marketing", true}}));
  EXPECT_EQ(p.consent.store, -1);
  EXPECT_EQ(p.consent.personalize, 1);  // neither personalization category was stated
  EXPECT_EQ(p.stats.events, 0);
  EXPECT_TRUE(p.interests.empty());
  EXPECT_TRUE(p.recent_products.empty());
  EXPECT_TRUE(p.session_intervals.empty());
  EXPECT_EQ(p.traits.at("name").json, R"("Ada")");
  updater.Apply(p, Track("Product Viewed", kT0 + 3 * kMin, "Hats", "sku-2"));
  EXPECT_EQ(p.stats.events, 0);
  EXPECT_TRUE(p.interests.empty());
  EXPECT_EQ(p.stats.last_seen, kT0 + 3 * kMin);  // kept for retention

  // A late event's older statement does not undo the withdrawal; a newer grant does.
  updater.Apply(p, with(Page(kT0 + kMin / 2), {{"Analytics", true}}));
  EXPECT_EQ(p.consent.store, -1);
  EXPECT_EQ(p.stats.events, 0);
  updater.Apply(p, with(Page(kT0 + 4 * kMin), {{"Analytics", true}, {"Personalization", false}}));
  EXPECT_EQ(p.consent.store, 1);
  EXPECT_EQ(p.consent.personalize, -1);  // one denied category of the two denies it
  EXPECT_EQ(p.stats.events, 1);
  EXPECT_EQ(p.stats.page_views, 1);
}

TEST(Consent, AMergeKeepsTheLaterStatementAndDropsBehaviourIfWithdrawn) {
  ProfilerConfig config;
  config.consent_store = {"Analytics"};
  const ProfileUpdater updater(config);
  Profile survivor, absorbed;
  survivor.id = "0000-0000000000000001";
  absorbed.id = "0000-0000000000000002";
  updater.Apply(survivor, Track("Product Viewed", kT0, "Shoes", "sku-1"));
  Event withdraw = Page(kT0 + kMin);
  withdraw.consent = {{"Analytics", false}};
  updater.Apply(absorbed, withdraw);
  MergeProfiles(survivor, absorbed, updater);
  EXPECT_EQ(survivor.consent.store, -1);
  EXPECT_EQ(survivor.consent.store_at, kT0 + kMin);
  EXPECT_EQ(survivor.stats.events, 0);
  EXPECT_TRUE(survivor.interests.empty());
}

TEST(Consent, EventsWithoutAMappedCategoryChangeNothing) {
  const ProfileUpdater updater(ProfilerConfig{});  // no mapping: consent is not read
  Profile p;
  Event e = Page(kT0);
  e.consent = {{"Analytics", false}};
  updater.Apply(p, e);
  EXPECT_EQ(p.consent, ConsentState{});
  EXPECT_EQ(p.stats.events, 1);
}

}  // namespace
}  // namespace ecrm
