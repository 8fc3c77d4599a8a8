#include "profiler/profile_merge.h"

#include <algorithm>
#include <iterator>

namespace ecrm {
namespace {

TimeMs MinNonZero(TimeMs a, TimeMs b) {
  if (a == 0) return b;
  if (b == 0) return a;
  return std::min(a, b);
}

// Later `at` wins; ties go to the lexicographically larger JSON (any fixed rule makes the merge
// independent of which side is the survivor).
bool Newer(const TraitValue& a, const TraitValue& b) {
  return a.updated_at != b.updated_at ? a.updated_at > b.updated_at : a.json > b.json;
}

bool EarlierTouch(const Touch& a, const Touch& b) {
  if (a.empty()) return false;
  if (b.empty()) return true;
  return a.at != b.at ? a.at < b.at : a.source + a.referrer < b.source + b.referrer;
}

}  // namespace

void AddHistory(Profile& profile, MergeRecord record) {
  auto& h = profile.history;
  h.push_back(std::move(record));
  std::stable_sort(h.begin(), h.end(),
                   [](const MergeRecord& a, const MergeRecord& b) { return a.at < b.at; });
  if (h.size() > Profile::kMaxHistory) h.erase(h.begin(), h.end() - Profile::kMaxHistory);
}

size_t MergeProfiles(Profile& s, const Profile& a, const ProfileUpdater& updater) {
  for (const auto& [type, values] : a.identities) {
    for (const auto& v : values) s.AddIdentity(type, v);
  }
  size_t dropped = 0;
  size_t bytes = ProfileUpdater::TraitBytes(s);
  for (const auto& [key, value] : a.traits) {
    auto it = s.traits.find(key);
    if ((it == s.traits.end() || Newer(value, it->second)) &&
        !updater.PutTrait(s, bytes, key, value)) {
      dropped++;
    }
  }
  auto& st = s.stats;
  const auto& at = a.stats;
  const bool absorbed_is_later = at.last_seen > st.last_seen;
  st.events += at.events;
  st.page_views += at.page_views;
  st.screen_views += at.screen_views;
  st.orders += at.orders;
  st.revenue += at.revenue;
  st.first_seen = MinNonZero(st.first_seen, at.first_seen);
  st.last_seen = std::max(st.last_seen, at.last_seen);
  // Sessions: both sets of intervals, joined where they touch (two devices browsing at the same
  // time are one session of the person); the current session is the latest.
  s.session_intervals.insert(s.session_intervals.end(), a.session_intervals.begin(),
                             a.session_intervals.end());
  s.sessions_dropped += a.sessions_dropped;
  updater.NormalizeSessions(s);
  for (const auto& [category, interest] : a.interests) {
    auto it = s.interests.find(category);
    if (it == s.interests.end()) {
      s.interests[category] = interest;
      continue;
    }
    const TimeMs t = std::max(it->second.updated_at, interest.updated_at);
    it->second.score = updater.DecayedScore(it->second, t) + updater.DecayedScore(interest, t);
    it->second.updated_at = t;
  }
  // Recent products: both lists, newest first, one entry per product, bounded.
  const size_t limit = updater.config().max_recent_products;
  std::vector<RecentProduct> products = s.recent_products;
  products.insert(products.end(), a.recent_products.begin(), a.recent_products.end());
  std::stable_sort(products.begin(), products.end(), [](const auto& x, const auto& y) {
    return x.viewed_at != y.viewed_at ? x.viewed_at > y.viewed_at : x.product_id < y.product_id;
  });
  std::vector<RecentProduct> unique;
  for (auto& p : products) {
    const bool seen = std::any_of(unique.begin(), unique.end(),
                                  [&](const auto& u) { return u.product_id == p.product_id; });
    if (!seen && unique.size() < limit) unique.push_back(std::move(p));
  }
  s.recent_products = std::move(unique);
  if (EarlierTouch(a.first_touch, s.first_touch)) s.first_touch = a.first_touch;
  if (!a.last_touch.empty() && (s.last_touch.empty() || a.last_touch.at > s.last_touch.at)) {
    s.last_touch = a.last_touch;
  }
  if (absorbed_is_later && !a.device.type.empty()) s.device = a.device;
  for (const auto& [k, v] : a.counters) s.counters[k] += v;
  for (const auto& [k, c] : a.windowed_counters) {
    auto it = s.windowed_counters.find(k);
    if (it == s.windowed_counters.end()) {
      s.windowed_counters[k] = c;
      continue;
    }
    if (it->second.window_ms != c.window_ms) continue;  // a changed window: keep the survivor's
    for (const auto& [start, value] : c.buckets) it->second.Add(start, value);
  }
  for (const auto& [name, expires_at] : a.segments) {
    auto it = s.segments.find(name);
    if (it == s.segments.end()) {
      s.segments[name] = expires_at;
    } else if (it->second != 0) {
      it->second = expires_at == 0 ? 0 : std::max(it->second, expires_at);
    }
  }
  // Scores are recomputed by the rules on the next event; until then the survivor's stand.
  for (const auto& [k, v] : a.scores) s.scores.emplace(k, v);
  for (const auto& [id, priority] : a.offers) {
    auto [it, inserted] = s.offers.emplace(id, priority);
    if (!inserted) it->second = std::max(it->second, priority);
  }
  for (const auto& [rule, session] : a.rules_fired) s.rules_fired.emplace(rule, session);
  // Dedup sets unite (by received-at, within the same bound), so a retry of an event applied to
  // either profile is found on the survivor.
  std::vector<Profile::SeenMessage> seen;
  std::merge(s.recent_messages.begin(), s.recent_messages.end(), a.recent_messages.begin(),
             a.recent_messages.end(), std::back_inserter(seen),
             [](const auto& x, const auto& y) { return x.received_at < y.received_at; });
  if (seen.size() > Profile::kMaxRecentMessages) {
    seen.erase(seen.begin(), seen.end() - static_cast<long>(Profile::kMaxRecentMessages));
  }
  s.recent_messages = std::move(seen);
  if (std::find(s.merged_ids.begin(), s.merged_ids.end(), a.id) == s.merged_ids.end()) {
    s.merged_ids.push_back(a.id);
  }
  for (const auto& id : a.merged_ids) {
    if (std::find(s.merged_ids.begin(), s.merged_ids.end(), id) == s.merged_ids.end()) {
      s.merged_ids.push_back(id);
    }
  }
  for (const auto& h : a.history) AddHistory(s, h);
  // Consent: per purpose, the later statement of the two.
  auto later = [](int8_t& state, TimeMs& at, int8_t other, TimeMs other_at) {
    if (other != 0 && (state == 0 || other_at > at)) {
      state = other;
      at = other_at;
    }
  };
  later(s.consent.store, s.consent.store_at, a.consent.store, a.consent.store_at);
  later(s.consent.personalize, s.consent.personalize_at, a.consent.personalize,
        a.consent.personalize_at);
  if (!s.StoresBehaviour()) s.DropBehaviour();
  return dropped;
}

}  // namespace ecrm
