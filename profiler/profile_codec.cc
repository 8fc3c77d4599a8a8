#include "profiler/profile_codec.h"

#include "profiler/internal/wire.h"

namespace ecrm {

using wire::Reader;
using wire::Writer;

void EncodeProfile(const Profile& p, std::string* out) {
  out->clear();
  // The oldest version that holds the value: a profile without a consent state is written as
  // version 6, which instances not yet upgraded read too (a rolling upgrade, a partition moved to
  // one of them meanwhile).
  const bool consent = p.consent != ConsentState{};
  out->push_back(static_cast<char>(consent ? kProfileFormatVersion : 6));
  Writer w(out);
  w.Str(p.id);
  w.Varint(p.identities.size());
  for (const auto& [type, values] : p.identities) {
    w.Str(type);
    w.Varint(values.size());
    for (const auto& v : values) w.Str(v);
  }
  w.Varint(p.traits.size());
  for (const auto& [k, v] : p.traits) {
    w.Str(k);
    w.Str(v.json);
    w.Signed(v.updated_at);
  }
  const auto& s = p.stats;
  w.Signed(s.events);
  w.Signed(s.page_views);
  w.Signed(s.screen_views);
  w.Signed(s.sessions);
  w.Signed(s.orders);
  w.Double(s.revenue);
  w.Signed(s.first_seen);
  w.Signed(s.last_seen);
  w.Str(p.session.id);
  w.Signed(p.session.started_at);
  w.Signed(p.session.last_event_at);
  w.Signed(p.session.events);
  w.Varint(p.interests.size());
  for (const auto& [k, v] : p.interests) {
    w.Str(k);
    w.Double(v.score);
    w.Signed(v.updated_at);
  }
  w.Varint(p.recent_products.size());
  for (const auto& r : p.recent_products) {
    w.Str(r.product_id);
    w.Str(r.name);
    w.Str(r.category);
    w.Double(r.price);
    w.Varint(r.has_price ? 1 : 0);
    w.Signed(r.viewed_at);
  }
  w.Touch(p.first_touch);
  w.Touch(p.last_touch);
  w.Str(p.device.type);
  w.Str(p.device.os);
  w.Str(p.device.browser);
  w.Str(p.device.library);
  w.Varint(p.counters.size());
  for (const auto& [k, v] : p.counters) {
    w.Str(k);
    w.Double(v);
  }
  w.Varint(p.segments.size());
  for (const auto& [name, expires_at] : p.segments) {
    w.Str(name);
    w.Signed(expires_at);
  }
  w.Varint(p.scores.size());
  for (const auto& [k, v] : p.scores) {
    w.Str(k);
    w.Double(v);
  }
  w.Varint(p.offers.size());
  for (const auto& [id, priority] : p.offers) {
    w.Str(id);
    w.Signed(priority);
  }
  w.Varint(p.windowed_counters.size());
  for (const auto& [name, c] : p.windowed_counters) {
    w.Str(name);
    w.Signed(c.window_ms);
    w.Varint(c.buckets.size());
    for (const auto& [start, value] : c.buckets) {
      w.Signed(start);
      w.Double(value);
    }
  }
  w.Varint(p.rules_fired.size());
  for (const auto& [rule, session] : p.rules_fired) {
    w.Str(rule);
    w.Str(session);
  }
  w.Varint(p.merged_ids.size());
  for (const auto& id : p.merged_ids) w.Str(id);
  w.Varint(p.history.size());
  for (const auto& h : p.history) {
    w.Signed(h.at);
    w.Varint(h.merged ? 1 : 0);
    w.Str(h.other);
    w.Str(h.identifier);
    w.Str(h.message_id);
    w.Str(h.reason);
  }
  w.Varint(p.session_intervals.size());
  for (const auto& i : p.session_intervals) {
    w.Signed(i.start);
    w.Signed(i.end);
    w.Signed(i.events);
  }
  w.Signed(p.sessions_dropped);
  size_t sourced = 0;
  for (const auto& [k, v] : p.traits) sourced += v.source.empty() ? 0 : 1;
  w.Varint(sourced);
  for (const auto& [k, v] : p.traits) {
    if (v.source.empty()) continue;
    w.Str(k);
    w.Str(v.source);
  }
  w.Varint(p.recent_messages.size());
  TimeMs previous = 0;
  for (const auto& m : p.recent_messages) {
    w.Fixed64(m.hash);
    w.Signed(m.received_at - previous);  // deltas: a few bytes each
    previous = m.received_at;
  }
  if (!consent) return;
  w.Signed(p.consent.store);
  w.Signed(p.consent.store_at);
  w.Signed(p.consent.personalize);
  w.Signed(p.consent.personalize_at);
}

std::string EncodeAlias(std::string_view survivor_id) {
  std::string out(1, static_cast<char>(kAliasMarker));
  out.append(survivor_id);
  return out;
}

std::optional<std::string> DecodeAlias(std::string_view value) {
  if (value.size() < 2 || static_cast<uint8_t>(value[0]) != kAliasMarker) return std::nullopt;
  return std::string(value.substr(1));
}

StatusOr<Profile> DecodeProfile(std::string_view data) {
  if (data.empty()) return absl::DataLossError("profile: empty value");
  const auto version = static_cast<uint8_t>(data[0]);
  if (version < 1 || version > kProfileFormatVersion) {
    return absl::DataLossError("profile: unknown format version " +
                               std::to_string(static_cast<uint8_t>(data[0])));
  }
  Reader r(data.substr(1));
  Profile p;
  p.id = r.Str();
  for (uint64_t n = r.Count(); n > 0 && r.ok(); n--) {
    auto& values = p.identities[r.Str()];
    for (uint64_t m = r.Count(); m > 0 && r.ok(); m--) values.push_back(r.Str());
  }
  for (uint64_t n = r.Count(); n > 0 && r.ok(); n--) {
    std::string key = r.Str();
    TraitValue v;
    v.json = r.Str();
    v.updated_at = r.Signed();
    p.traits.emplace(std::move(key), std::move(v));
  }
  auto& s = p.stats;
  s.events = r.Signed();
  s.page_views = r.Signed();
  s.screen_views = r.Signed();
  s.sessions = r.Signed();
  s.orders = r.Signed();
  s.revenue = r.Double();
  s.first_seen = r.Signed();
  s.last_seen = r.Signed();
  p.session.id = r.Str();
  p.session.started_at = r.Signed();
  p.session.last_event_at = r.Signed();
  p.session.events = r.Signed();
  for (uint64_t n = r.Count(); n > 0 && r.ok(); n--) {
    std::string key = r.Str();
    Interest i;
    i.score = r.Double();
    i.updated_at = r.Signed();
    p.interests.emplace(std::move(key), i);
  }
  for (uint64_t n = r.Count(); n > 0 && r.ok(); n--) {
    RecentProduct rp;
    rp.product_id = r.Str();
    rp.name = r.Str();
    rp.category = r.Str();
    rp.price = r.Double();
    rp.has_price = r.Varint() != 0;
    rp.viewed_at = r.Signed();
    p.recent_products.push_back(std::move(rp));
  }
  r.Touch(p.first_touch);
  r.Touch(p.last_touch);
  p.device.type = r.Str();
  p.device.os = r.Str();
  p.device.browser = r.Str();
  p.device.library = r.Str();
  for (uint64_t n = r.Count(); n > 0 && r.ok(); n--) {
    std::string key = r.Str();
    p.counters[key] = r.Double();
  }
  for (uint64_t n = r.Count(); n > 0 && r.ok(); n--) {
    std::string name = r.Str();
    p.segments[name] = version >= 2 ? r.Signed() : 0;
  }
  for (uint64_t n = r.Count(); n > 0 && r.ok(); n--) {
    std::string key = r.Str();
    p.scores[key] = r.Double();
  }
  if (version >= 2) {
    for (uint64_t n = r.Count(); n > 0 && r.ok(); n--) {
      std::string id = r.Str();
      p.offers[id] = r.Signed();
    }
    for (uint64_t n = r.Count(); n > 0 && r.ok(); n--) {
      std::string name = r.Str();
      WindowedCounter c;
      c.window_ms = r.Signed();
      for (uint64_t m = r.Count(); m > 0 && r.ok(); m--) {
        const TimeMs start = r.Signed();
        c.buckets.emplace_back(start, r.Double());
      }
      p.windowed_counters.emplace(std::move(name), std::move(c));
    }
    for (uint64_t n = r.Count(); n > 0 && r.ok(); n--) {
      std::string rule = r.Str();
      p.rules_fired[rule] = r.Str();
    }
  }
  if (version >= 3) {
    for (uint64_t n = r.Count(); n > 0 && r.ok(); n--) p.merged_ids.push_back(r.Str());
    for (uint64_t n = r.Count(); n > 0 && r.ok(); n--) {
      MergeRecord h;
      h.at = r.Signed();
      h.merged = r.Varint() != 0;
      h.other = r.Str();
      h.identifier = r.Str();
      h.message_id = r.Str();
      h.reason = r.Str();
      p.history.push_back(std::move(h));
    }
  }
  if (version >= 5) {
    for (uint64_t n = r.Count(); n > 0 && r.ok(); n--) {
      SessionInterval i;
      i.start = r.Signed();
      i.end = r.Signed();
      i.events = r.Signed();
      p.session_intervals.push_back(i);
    }
    p.sessions_dropped = r.Signed();
  } else if (!p.session.id.empty()) {
    // Older values kept only the current session: it becomes the one interval.
    p.session_intervals.push_back(
        {p.session.started_at, p.session.last_event_at, p.session.events});
    p.sessions_dropped = std::max<int64_t>(0, p.stats.sessions - 1);
  } else {
    p.sessions_dropped = p.stats.sessions;
  }
  if (version >= 4) {
    for (uint64_t n = r.Count(); n > 0 && r.ok(); n--) {
      std::string key = r.Str();
      std::string source = r.Str();
      if (auto it = p.traits.find(key); it != p.traits.end()) it->second.source = std::move(source);
    }
  }
  if (version >= 6) {
    TimeMs previous = 0;
    for (uint64_t n = r.Count(); n > 0 && r.ok(); n--) {
      Profile::SeenMessage m;
      m.hash = r.Fixed64();
      // A corrupt delta must not overflow (the encoder's deltas never do).
      if (__builtin_add_overflow(previous, r.Signed(), &m.received_at)) r.Fail();
      previous = m.received_at;
      p.recent_messages.push_back(m);
    }
  }
  if (version >= 7) {
    auto state = [&r]() -> int8_t {
      const int64_t v = r.Signed();
      if (v < -1 || v > 1) r.Fail();
      return static_cast<int8_t>(v);
    };
    p.consent.store = state();
    p.consent.store_at = r.Signed();
    p.consent.personalize = state();
    p.consent.personalize_at = r.Signed();
  }
  if (!r.ok()) return absl::DataLossError("profile: truncated or corrupt value");
  if (!r.AtEnd()) return absl::DataLossError("profile: trailing bytes");
  return p;
}

}  // namespace ecrm
