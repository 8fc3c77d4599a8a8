// Applies one event to one profile: stats, sessions, traits, interests, recent products,
// attribution and device. Pure, deterministic and time-from-the-event (never the wall clock), so
// replaying the same events gives the same profile. Identity changes are not made here: the shard
// owns those. Thread-safe (stateless apart from its const config).
#pragma once

#include "profiler/event.h"
#include "profiler/profile.h"

namespace ecrm {

struct ProfilerConfig {
  TimeMs session_timeout_ms = 30 * 60 * 1000;             // inactivity that ends a session
  TimeMs interest_half_life_ms = 7LL * 24 * 3600 * 1000;  // interest scores halve over this
  size_t max_recent_products = 20;
  size_t max_interests = 50;  // lowest-scoring categories are dropped
  double view_weight = 1.0;   // Product Viewed / Clicked
  double add_weight = 3.0;    // Product Added / Added to Wishlist
  double order_weight = 5.0;  // Order Completed, per product
  // Caps on a profile's traits (docs/errors.md, "A profile at its trait caps"): a value that would
  // take the profile past either is dropped (and counted); values already held stay.
  size_t max_traits = 1000;
  size_t max_trait_bytes = 64 << 10;  // keys and minified JSON values together
  // Consent (docs/privacy.md#consent): the categories of context.consent.categoryPreferences
  // that allow storing behavioural data, and personalizing. Empty: events' consent is not read.
  std::vector<std::string> consent_store;
  std::vector<std::string> consent_personalize;
};

class ProfileUpdater {
 public:
  explicit ProfileUpdater(const ProfilerConfig& config) : config_(config) {}
  // Returns the number of trait values dropped by the caps (0 unless the profile is at a cap).
  size_t Apply(Profile& profile, const Event& event) const;
  // Sets trait `key` unless that would take the profile's traits past the caps; false if dropped.
  // `bytes` is TraitBytes(profile), kept up to date.
  bool PutTrait(Profile& profile, size_t& bytes, const std::string& key, TraitValue value) const;
  static size_t TraitBytes(const Profile& profile);
  // What `event` states about `categories`: 0 nothing (none of them present), 1 all present ones
  // granted, -1 one of them denied.
  static int ConsentOf(const Event& event, const std::vector<std::string>& categories);

  const ProfilerConfig& config() const { return config_; }
  // Coalesces touching sessions, trims to Profile::kMaxSessions, and derives stats.sessions and
  // the current session from the intervals (after an update or a merge).
  void NormalizeSessions(Profile& profile) const;
  // An interest score decayed from its last update to `at`.
  double DecayedScore(const Interest& interest, TimeMs at) const;

 private:
  void UpdateSession(Profile& profile, TimeMs ts) const;
  void AddInterest(Profile& profile, const std::string& category, double weight, TimeMs ts) const;
  void AddRecentProduct(Profile& profile, const ProductRef& product, TimeMs ts) const;

  ProfilerConfig config_;
};

}  // namespace ecrm
