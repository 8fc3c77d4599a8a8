#include "profiler/profile_json.h"

#include <algorithm>

#include "common/json_writer.h"
#include "common/time_format.h"

namespace ecrm {
namespace {

void Time(JsonWriter& w, std::string_view key, TimeMs t) {
  w.Key(key);
  if (t == 0) {
    w.Null();
  } else {
    w.String(FormatIso8601(t));
  }
}

void RenderTouch(JsonWriter& w, std::string_view key, const Touch& t) {
  w.Key(key);
  if (t.empty()) {
    w.Null();
    return;
  }
  w.BeginObject();
  auto field = [&](std::string_view name, const std::string& v) {
    if (!v.empty()) w.Key(name).String(v);
  };
  field("source", t.source);
  field("medium", t.medium);
  field("campaign", t.campaign);
  field("term", t.term);
  field("content", t.content);
  field("referrer", t.referrer);
  Time(w, "at", t.at);
  w.EndObject();
}

void RenderRecentProducts(JsonWriter& w, const std::vector<RecentProduct>& products, size_t limit) {
  w.BeginArray();
  for (size_t i = 0; i < products.size() && i < limit; i++) {
    const auto& r = products[i];
    w.BeginObject().Key("product_id").String(r.product_id);
    if (!r.name.empty()) w.Key("name").String(r.name);
    if (!r.category.empty()) w.Key("category").String(r.category);
    if (r.has_price) w.Key("price").Double(r.price);
    Time(w, "viewed_at", r.viewed_at);
    w.EndObject();
  }
  w.EndArray();
}

void RenderSegmentsAndScores(JsonWriter& w, const Profile* p, TimeMs now) {
  w.Key("segments").BeginArray();
  if (p) {
    for (const auto& [name, expires_at] : p->segments) {
      if (expires_at == 0 || expires_at > now) w.String(name);
    }
  }
  w.EndArray();
  w.Key("scores").BeginObject();
  if (p) {
    for (const auto& [k, v] : p->scores) w.Key(k).Double(v);
  }
  w.EndObject();
}

// Offers by priority, highest first (ties by id).
// "identities": {type: [values]}.
void RenderIdentities(JsonWriter& w, const Profile& p) {
  w.Key("identities").BeginObject();
  for (const auto& [type, values] : p.identities) {
    w.Key(type).BeginArray();
    for (const auto& v : values) w.String(v);
    w.EndArray();
  }
  w.EndObject();
}

void RenderOffers(JsonWriter& w, const Profile* p) {
  w.Key("offers").BeginArray();
  if (p) {
    std::vector<std::pair<int64_t, const std::string*>> ranked;
    for (const auto& [id, priority] : p->offers) ranked.emplace_back(priority, &id);
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : *a.second < *b.second;
    });
    for (const auto& [priority, id] : ranked) {
      w.BeginObject().Key("id").String(*id).Key("priority").Int(priority).EndObject();
    }
  }
  w.EndArray();
}

}  // namespace

void RenderProfileJson(const Profile& p, const ProfileUpdater& updater, TimeMs now,
                       std::string* out) {
  JsonWriter w(out);
  w.BeginObject();
  w.Key("id").String(p.id);
  RenderIdentities(w, p);
  w.Key("traits").BeginObject();
  for (const auto& [k, v] : p.traits) w.Key(k).Raw(v.json);
  w.EndObject();
  // Where each trait came from when not from the site's own events ("crm", "rules", ...).
  w.Key("trait_sources").BeginObject();
  for (const auto& [k, v] : p.traits) {
    if (!v.source.empty()) w.Key(k).String(v.source);
  }
  w.EndObject();
  const auto& s = p.stats;
  w.Key("stats").BeginObject();
  w.Key("events").Int(s.events);
  w.Key("page_views").Int(s.page_views);
  w.Key("screen_views").Int(s.screen_views);
  w.Key("sessions").Int(s.sessions);
  w.Key("orders").Int(s.orders);
  w.Key("revenue").Double(s.revenue);
  Time(w, "first_seen", s.first_seen);
  Time(w, "last_seen", s.last_seen);
  w.EndObject();
  w.Key("sessions").BeginObject();
  w.Key("count").Int(s.sessions);
  w.Key("current");
  if (p.session.id.empty()) {
    w.Null();
  } else {
    w.BeginObject().Key("id").String(p.session.id);
    Time(w, "started_at", p.session.started_at);
    Time(w, "last_event_at", p.session.last_event_at);
    w.Key("events").Int(p.session.events).EndObject();
  }
  w.EndObject();
  w.Key("interests").BeginObject();
  for (const auto& [category, interest] : p.interests) {
    w.Key(category).Double(updater.DecayedScore(interest, s.last_seen));
  }
  w.EndObject();
  w.Key("recent_products");
  RenderRecentProducts(w, p.recent_products, p.recent_products.size());
  RenderTouch(w, "first_touch", p.first_touch);
  RenderTouch(w, "last_touch", p.last_touch);
  w.Key("device").BeginObject();
  if (!p.device.type.empty()) w.Key("type").String(p.device.type);
  if (!p.device.os.empty()) w.Key("os").String(p.device.os);
  if (!p.device.browser.empty()) w.Key("browser").String(p.device.browser);
  if (!p.device.library.empty()) w.Key("library").String(p.device.library);
  w.EndObject();
  w.Key("counters").BeginObject();
  for (const auto& [k, v] : p.counters) {
    if (!p.windowed_counters.contains(k)) w.Key(k).Double(v);
  }
  for (const auto& [k, c] : p.windowed_counters) w.Key(k).Double(c.Sum(now));
  w.EndObject();
  RenderSegmentsAndScores(w, &p, now);
  RenderOffers(w, &p);
  w.Key("consent").BeginObject();
  auto consent = [&](std::string_view purpose, int8_t state, TimeMs at) {
    w.Key(purpose).BeginObject();
    w.Key("state").String(state > 0 ? "granted" : state < 0 ? "denied" : "not_stated");
    Time(w, "at", at);
    w.EndObject();
  };
  consent("store", p.consent.store, p.consent.store_at);
  consent("personalize", p.consent.personalize, p.consent.personalize_at);
  w.EndObject();
  w.EndObject();
}

void RenderIdentitiesJson(const Profile& p, std::string* out) {
  JsonWriter w(out);
  w.BeginObject().Key("profile_id").String(p.id);
  RenderIdentities(w, p);
  w.Key("merged_ids").BeginArray();
  for (const auto& id : p.merged_ids) w.String(id);
  w.EndArray();
  w.Key("history").BeginArray();
  for (const auto& h : p.history) {
    w.BeginObject();
    Time(w, "at", h.at);
    w.Key("action").String(h.merged ? "merged" : "refused");
    if (!h.other.empty()) w.Key("other_profile").String(h.other);
    w.Key("identifier").String(h.identifier);
    if (!h.message_id.empty()) w.Key("message_id").String(h.message_id);
    if (!h.reason.empty()) w.Key("reason").String(h.reason);
    w.EndObject();
  }
  w.EndArray().EndObject();
}

void RenderExportJson(const Profile& p, const ProfileUpdater& updater, TimeMs now,
                      std::string* out) {
  std::string profile, identities;
  RenderProfileJson(p, updater, now, &profile);
  RenderIdentitiesJson(p, &identities);
  JsonWriter w(out);
  w.BeginObject();
  w.Key("format").String("ecrm.export.v1");
  Time(w, "generated_at", now);
  w.Key("profile").Raw(profile);
  w.Key("identity_graph").Raw(identities);
  w.Key("stored").BeginObject();
  w.Key("traits").BeginObject();
  for (const auto& [k, v] : p.traits) {
    w.Key(k).BeginObject();
    Time(w, "updated_at", v.updated_at);
    w.Key("source").String(v.source.empty() ? "events" : v.source);
    w.EndObject();
  }
  w.EndObject();
  w.Key("sessions").BeginArray();
  for (const auto& s : p.session_intervals) {
    w.BeginObject();
    Time(w, "start", s.start);
    Time(w, "end", s.end);
    w.Key("events").Int(s.events).EndObject();
  }
  w.EndArray();
  w.Key("older_sessions").Int(p.sessions_dropped);
  w.Key("interests").BeginObject();
  for (const auto& [category, interest] : p.interests) {
    w.Key(category).BeginObject().Key("score").Double(interest.score);
    Time(w, "updated_at", interest.updated_at);
    w.EndObject();
  }
  w.EndObject();
  w.Key("segments").BeginObject();
  for (const auto& [name, expires] : p.segments) Time(w, name, expires);
  w.EndObject();
  w.Key("windowed_counters").BeginObject();
  for (const auto& [name, c] : p.windowed_counters) {
    w.Key(name).BeginObject().Key("window_ms").Int(c.window_ms).Key("buckets").BeginArray();
    for (const auto& [start, sum] : c.buckets) {
      w.BeginArray();
      w.String(FormatIso8601(start)).Double(sum);
      w.EndArray();
    }
    w.EndArray().EndObject();
  }
  w.EndObject();
  w.Key("rules_fired").BeginObject();
  for (const auto& [rule, session] : p.rules_fired) w.Key(rule).String(session);
  w.EndObject();
  // One-way 64-bit hashes of recent messageIds (dedup): only their number says anything.
  w.Key("message_fingerprints").Int(static_cast<int64_t>(p.recent_messages.size()));
  w.EndObject();
  w.EndObject();
}

void RenderPersonalizeJson(const Profile* p, const ProfileUpdater& updater,
                           const PersonalizeOptions& options, std::string* out) {
  JsonWriter w(out);
  w.BeginObject();
  w.Key("known").Bool(p != nullptr);
  RenderSegmentsAndScores(w, p, options.now);
  RenderOffers(w, p);
  w.Key("top_interests").BeginArray();
  if (p) {
    std::vector<std::pair<double, const std::string*>> ranked;
    for (const auto& [category, interest] : p->interests) {
      ranked.emplace_back(updater.DecayedScore(interest, p->stats.last_seen), &category);
    }
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : *a.second < *b.second;
    });
    for (size_t i = 0; i < ranked.size() && i < options.top_interests; i++) {
      w.BeginObject().Key("category").String(*ranked[i].second);
      w.Key("score").Double(ranked[i].first).EndObject();
    }
  }
  w.EndArray();
  w.Key("recent_products");
  static const std::vector<RecentProduct> kNone;
  RenderRecentProducts(w, p ? p->recent_products : kNone, options.recent_products);
  w.EndObject();
}

}  // namespace ecrm
