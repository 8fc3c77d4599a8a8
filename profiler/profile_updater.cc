#include "profiler/profile_updater.h"

#include <algorithm>
#include <cmath>

namespace ecrm {

const char* EventTypeName(EventType type) {
  switch (type) {
    case EventType::kIdentify:
      return "identify";
    case EventType::kTrack:
      return "track";
    case EventType::kPage:
      return "page";
    case EventType::kScreen:
      return "screen";
    case EventType::kGroup:
      return "group";
    case EventType::kMerge:
      return "merge";
    case EventType::kAlias:
      return "alias";
  }
  return "unknown";
}

bool Profile::InSegment(const std::string& name, TimeMs now) const {
  auto it = segments.find(name);
  return it != segments.end() && (it->second == 0 || it->second > now);
}

double WindowedCounter::Sum(TimeMs now) const {
  const int64_t width = std::max<int64_t>(1, window_ms / kBuckets);
  double sum = 0;
  for (const auto& [start, value] : buckets) {
    if (start + width > now - window_ms && start <= now) sum += value;
  }
  return sum;
}

void WindowedCounter::Add(TimeMs at, double by) {
  const int64_t width = std::max<int64_t>(1, window_ms / kBuckets);
  const TimeMs start = at - ((at % width) + width) % width;
  auto it = std::lower_bound(buckets.begin(), buckets.end(), start,
                             [](const auto& b, TimeMs t) { return b.first < t; });
  if (it != buckets.end() && it->first == start) {
    it->second += by;
  } else {
    buckets.insert(it, {start, by});
  }
  const TimeMs newest = buckets.back().first;
  std::erase_if(buckets, [&](const auto& b) { return b.first + width <= newest - window_ms; });
}

bool Profile::HasIdentity(const std::string& type, const std::string& value) const {
  const auto it = identities.find(type);
  return it != identities.end() &&
         std::find(it->second.begin(), it->second.end(), value) != it->second.end();
}

bool Profile::SawMessage(uint64_t hash) const {
  for (const auto& m : recent_messages) {
    if (m.hash == hash) return true;
  }
  return false;
}

void Profile::RememberMessage(uint64_t hash, TimeMs received_at, TimeMs window_ms) {
  auto& seen = recent_messages;
  // Kept in received-at order; retries and Kafka replays arrive in roughly that order.
  auto at = seen.end();
  while (at != seen.begin() && (at - 1)->received_at > received_at) --at;
  seen.insert(at, {hash, received_at});
  const TimeMs horizon = seen.back().received_at - window_ms;
  size_t drop = 0;
  while (drop < seen.size() && seen[drop].received_at < horizon) drop++;
  if (seen.size() - drop > kMaxRecentMessages) drop = seen.size() - kMaxRecentMessages;
  seen.erase(seen.begin(), seen.begin() + static_cast<long>(drop));
}

namespace {
constexpr size_t kBlock = 16;    // malloc's per-allocation overhead, about
constexpr size_t kMapNode = 32;  // std::map node header (colour, parent, left, right)
size_t Heap(const std::string& s) { return s.capacity() > 15 ? s.capacity() + 1 + kBlock : 0; }
template <typename V>
size_t Node() {
  return kMapNode + sizeof(std::pair<const std::string, V>) + kBlock;
}
template <typename T>
size_t Buffer(const std::vector<T>& v) {
  return v.capacity() == 0 ? 0 : v.capacity() * sizeof(T) + kBlock;
}
size_t TouchHeap(const Touch& t) {
  return Heap(t.source) + Heap(t.medium) + Heap(t.campaign) + Heap(t.term) + Heap(t.content) +
         Heap(t.referrer);
}
}  // namespace

size_t Profile::MemoryBytes() const {
  size_t b = sizeof(Profile) + Heap(id) + Heap(session.id) + TouchHeap(first_touch) +
             TouchHeap(last_touch) + Heap(device.type) + Heap(device.os) + Heap(device.browser) +
             Heap(device.library);
  for (const auto& [type, values] : identities) {
    b += Node<std::vector<std::string>>() + Heap(type) + Buffer(values);
    for (const auto& v : values) b += Heap(v);
  }
  for (const auto& [k, v] : traits)
    b += Node<TraitValue>() + Heap(k) + Heap(v.json) + Heap(v.source);
  for (const auto& [k, v] : interests) b += Node<Interest>() + Heap(k);
  b += Buffer(recent_products);
  for (const auto& r : recent_products) b += Heap(r.product_id) + Heap(r.name) + Heap(r.category);
  b += Buffer(session_intervals);
  for (const auto& [k, v] : counters) b += Node<double>() + Heap(k);
  for (const auto& [k, v] : segments) b += Node<TimeMs>() + Heap(k);
  for (const auto& [k, v] : scores) b += Node<double>() + Heap(k);
  for (const auto& [k, v] : offers) b += Node<int64_t>() + Heap(k);
  for (const auto& [k, v] : windowed_counters)
    b += Node<WindowedCounter>() + Heap(k) + Buffer(v.buckets);
  for (const auto& [k, v] : rules_fired) b += Node<std::string>() + Heap(k) + Heap(v);
  b += Buffer(merged_ids);
  for (const auto& m : merged_ids) b += Heap(m);
  b += Buffer(history);
  for (const auto& h : history)
    b += Heap(h.other) + Heap(h.identifier) + Heap(h.message_id) + Heap(h.reason);
  b += Buffer(recent_messages);
  return b;
}

bool Profile::AddIdentity(const std::string& type, const std::string& value) {
  if (HasIdentity(type, value)) return false;
  identities[type].push_back(value);
  return true;
}

bool Profile::RemoveIdentity(const std::string& type, const std::string& value) {
  const auto it = identities.find(type);
  if (it == identities.end() || std::erase(it->second, value) == 0) return false;
  if (it->second.empty()) identities.erase(it);
  return true;
}

double ProfileUpdater::DecayedScore(const Interest& interest, TimeMs at) const {
  const double dt = static_cast<double>(at - interest.updated_at);
  return interest.score * std::exp2(-dt / static_cast<double>(config_.interest_half_life_ms));
}

void ProfileUpdater::UpdateSession(Profile& p, TimeMs ts) const {
  auto& iv = p.session_intervals;
  const TimeMs gap = config_.session_timeout_ms;
  // The common case, an event at or after the latest session's start: extend it, or open a new
  // session after it, without touching the others.
  if (!iv.empty() && ts >= iv.back().start) {
    auto& last = iv.back();
    if (ts <= last.end + gap) {
      last.end = std::max(last.end, ts);
      last.events++;
      p.session.last_event_at = last.end;
      p.session.events = last.events;
      return;
    }
  } else if (!iv.empty() || p.sessions_dropped > 0) {
    // A late event: it may join, bridge or precede kept sessions.
    iv.push_back({ts, ts, 1});
    NormalizeSessions(p);
    return;
  }
  iv.push_back({ts, ts, 1});
  if (iv.size() > Profile::kMaxSessions) {
    iv.erase(iv.begin());
    p.sessions_dropped++;
  }
  p.stats.sessions = p.sessions_dropped + static_cast<int64_t>(iv.size());
  p.session.id = p.id + "-" + std::to_string(p.stats.sessions);
  p.session.started_at = ts;
  p.session.last_event_at = ts;
  p.session.events = 1;
}

void ProfileUpdater::NormalizeSessions(Profile& p) const {
  auto& iv = p.session_intervals;
  std::sort(iv.begin(), iv.end(), [](const auto& a, const auto& b) {
    return a.start != b.start ? a.start < b.start : a.end < b.end;
  });
  std::vector<SessionInterval> joined;
  for (const auto& s : iv) {
    if (!joined.empty() && s.start <= joined.back().end + config_.session_timeout_ms) {
      joined.back().end = std::max(joined.back().end, s.end);
      joined.back().events += s.events;
    } else {
      joined.push_back(s);
    }
  }
  if (joined.size() > Profile::kMaxSessions) {
    const size_t drop = joined.size() - Profile::kMaxSessions;
    p.sessions_dropped += static_cast<int64_t>(drop);
    joined.erase(joined.begin(), joined.begin() + static_cast<std::ptrdiff_t>(drop));
  }
  iv = std::move(joined);
  p.stats.sessions = p.sessions_dropped + static_cast<int64_t>(iv.size());
  if (iv.empty()) return;
  const auto& last = iv.back();
  p.session.id = p.id + "-" + std::to_string(p.stats.sessions);
  p.session.started_at = last.start;
  p.session.last_event_at = last.end;
  p.session.events = last.events;
}

void ProfileUpdater::AddInterest(Profile& p, const std::string& category, double weight,
                                 TimeMs ts) const {
  if (category.empty()) return;
  auto& interest = p.interests[category];
  if (interest.updated_at == 0) {
    interest.score = weight;
    interest.updated_at = ts;
  } else if (ts >= interest.updated_at) {
    interest.score = DecayedScore(interest, ts) + weight;
    interest.updated_at = ts;
  } else {  // a late event adds its weight decayed to the interest's time
    interest.score += weight * std::exp2(-static_cast<double>(interest.updated_at - ts) /
                                         static_cast<double>(config_.interest_half_life_ms));
  }
  if (p.interests.size() > config_.max_interests) {
    auto weakest = p.interests.begin();
    for (auto it = p.interests.begin(); it != p.interests.end(); ++it) {
      if (DecayedScore(it->second, ts) < DecayedScore(weakest->second, ts)) weakest = it;
    }
    p.interests.erase(weakest);
  }
}

void ProfileUpdater::AddRecentProduct(Profile& p, const ProductRef& product, TimeMs ts) const {
  if (product.product_id.empty()) return;
  auto& list = p.recent_products;
  const auto same = std::find_if(list.begin(), list.end(), [&](const RecentProduct& r) {
    return r.product_id == product.product_id;
  });
  if (same != list.end()) {
    if (same->viewed_at > ts) return;  // a newer view is already recorded
    list.erase(same);
  }
  RecentProduct r{product.product_id, product.name,      product.category,
                  product.price,      product.has_price, ts};
  // Newest first: insert before the first entry that is older than this view.
  const auto pos = std::find_if(list.begin(), list.end(),
                                [&](const RecentProduct& e) { return e.viewed_at <= ts; });
  list.insert(pos, std::move(r));
  if (list.size() > config_.max_recent_products) list.resize(config_.max_recent_products);
}

size_t ProfileUpdater::TraitBytes(const Profile& p) {
  size_t bytes = 0;
  for (const auto& [k, v] : p.traits) bytes += k.size() + v.json.size();
  return bytes;
}

bool ProfileUpdater::PutTrait(Profile& p, size_t& bytes, const std::string& key,
                              TraitValue value) const {
  const auto it = p.traits.find(key);
  const size_t old_bytes = it == p.traits.end() ? 0 : key.size() + it->second.json.size();
  const size_t new_bytes = key.size() + value.json.size();
  if ((it == p.traits.end() && p.traits.size() >= config_.max_traits) ||
      bytes - old_bytes + new_bytes > config_.max_trait_bytes) {
    return false;
  }
  bytes = bytes - old_bytes + new_bytes;
  if (it == p.traits.end()) {
    p.traits.emplace(key, std::move(value));
  } else {
    it->second = std::move(value);
  }
  return true;
}

int ProfileUpdater::ConsentOf(const Event& e, const std::vector<std::string>& categories) {
  int stated = 0;
  for (const auto& category : categories) {
    for (const auto& [name, granted] : e.consent) {
      if (name != category) continue;
      if (!granted) return -1;
      stated = 1;
    }
  }
  return stated;
}

void Profile::DropBehaviour() {
  const TimeMs last_seen = stats.last_seen;
  stats = ProfileStats{};
  stats.last_seen = last_seen;
  session = SessionState{};
  session_intervals.clear();
  sessions_dropped = 0;
  interests.clear();
  recent_products.clear();
  first_touch = Touch{};
  last_touch = Touch{};
  device = DeviceInfo{};
  counters.clear();
  segments.clear();
  scores.clear();
  offers.clear();
  windowed_counters.clear();
  rules_fired.clear();
}

size_t ProfileUpdater::Apply(Profile& p, const Event& e) const {
  const TimeMs ts = e.timestamp;
  size_t dropped = 0;
  // Consent: the latest statement by event time wins; a withdrawal drops what was stored.
  if (!e.consent.empty()) {
    auto& c = p.consent;
    const int store = ConsentOf(e, config_.consent_store);
    if (store != 0 && ts >= c.store_at) {
      c.store = static_cast<int8_t>(store);
      c.store_at = ts;
      if (store < 0) p.DropBehaviour();
    }
    const int personalize = ConsentOf(e, config_.consent_personalize);
    if (personalize != 0 && ts >= c.personalize_at) {
      c.personalize = static_cast<int8_t>(personalize);
      c.personalize_at = ts;
    }
  }
  size_t bytes = e.traits.empty() ? 0 : TraitBytes(p);
  // Last write by event time wins; `channel` is the source ("" for web/app events).
  auto set_traits = [&](const std::string& channel) {
    for (const auto& [key, json] : e.traits) {
      const auto it = p.traits.find(key);
      if (it != p.traits.end() && !it->second.json.empty() && ts < it->second.updated_at) continue;
      if (!PutTrait(p, bytes, key, {json, ts, channel})) dropped++;
    }
  };
  if (!e.channel.empty()) {  // another channel's record: identifiers and traits only
    set_traits(e.channel);
    return dropped;
  }
  auto& st = p.stats;
  if (!p.StoresBehaviour()) {  // identifiers and traits only (and the time, for retention)
    st.last_seen = std::max(st.last_seen, ts);
    set_traits("");
    return dropped;
  }
  const bool newest = st.events == 0 || ts >= st.last_seen;
  st.events++;
  st.first_seen = st.first_seen == 0 ? ts : std::min(st.first_seen, ts);
  st.last_seen = std::max(st.last_seen, ts);
  UpdateSession(p, ts);
  set_traits("");

  switch (e.type) {
    case EventType::kPage:
      st.page_views++;
      break;
    case EventType::kScreen:
      st.screen_views++;
      break;
    case EventType::kTrack:
      if (e.event == "Product Viewed" || e.event == "Product Clicked") {
        for (const auto& product : e.products) {
          AddInterest(p, product.category, config_.view_weight, ts);
          if (e.event == "Product Viewed") AddRecentProduct(p, product, ts);
        }
      } else if (e.event == "Product Added" || e.event == "Product Added to Wishlist") {
        for (const auto& product : e.products) {
          AddInterest(p, product.category, config_.add_weight, ts);
        }
      } else if (e.event == "Order Completed") {
        st.orders++;
        if (e.has_revenue) st.revenue += e.revenue;
        for (const auto& product : e.products) {
          AddInterest(p, product.category, config_.order_weight, ts);
        }
      }
      break;
    default:
      break;
  }

  if (!e.touch.empty()) {
    if (p.first_touch.empty() || ts < p.first_touch.at) {
      p.first_touch = e.touch;
      p.first_touch.at = ts;
    }
    if (p.last_touch.empty() || ts >= p.last_touch.at) {
      p.last_touch = e.touch;
      p.last_touch.at = ts;
    }
  }
  if (newest) {
    const auto& d = e.device;
    if (!d.type.empty()) p.device.type = d.type;
    if (!d.os.empty()) p.device.os = d.os;
    if (!d.browser.empty()) p.device.browser = d.browser;
    if (!d.library.empty()) p.device.library = d.library;
  }
  return dropped;
}

}  // namespace ecrm
