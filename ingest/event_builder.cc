#include "ingest/event_builder.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "absl/container/flat_hash_set.h"
#include "common/strings.h"
#include "common/time_format.h"
#include "ingest/user_agent.h"

namespace ecrm {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

bool Reject(Rejection& r, std::string code, std::string message) {
  r.http_status = 400;
  r.code = std::move(code);
  r.message = std::move(message);
  return false;
}

// A field of `obj`, or nullopt if absent or JSON null.
std::optional<element> Field(object obj, std::string_view key) {
  element e;
  if (obj.at_key(key).get(e) != simdjson::SUCCESS || e.is_null()) return std::nullopt;
  return e;
}

std::string_view StringOr(std::optional<element> e, std::string_view fallback = {}) {
  std::string_view s;
  if (e && e->get_string().get(s) == simdjson::SUCCESS) return s;
  return fallback;
}

// Fills `slots` (name, where to put the value) from `obj` in one pass over its keys: `at_key`
// scans the keys linearly, and an event needs about twenty look-ups (a fifth of the Kafka
// consumer's CPU when each was done on its own). As with `at_key`, the first occurrence of a key
// wins, and a null value counts as absent (see Field). Slots already filled are kept, so a second
// call with a fallback object fills only what the first left empty.
using FieldSlot = std::pair<std::string_view, std::optional<element>*>;
template <size_t N>
void FillFields(object obj, const std::array<FieldSlot, N>& slots) {
  std::array<bool, N> seen{};
  for (auto field : obj) {
    for (size_t i = 0; i < N; i++) {
      if (seen[i] || field.key != slots[i].first) continue;
      seen[i] = true;
      if (!*slots[i].second && !field.value.is_null()) *slots[i].second = field.value;
      break;
    }
  }
}

// The top-level fields BuildEvent reads.
struct EventFields {
  std::optional<element> type, message_id, user_id, anonymous_id, name, event, previous_id,
      group_id, properties, traits, context, timestamp, original_timestamp, sent_at;

  explicit EventFields(object obj) {
    FillFields<14>(obj, {{{"type", &type},
                          {"messageId", &message_id},
                          {"userId", &user_id},
                          {"anonymousId", &anonymous_id},
                          {"name", &name},
                          {"event", &event},
                          {"previousId", &previous_id},
                          {"groupId", &group_id},
                          {"properties", &properties},
                          {"traits", &traits},
                          {"context", &context},
                          {"timestamp", &timestamp},
                          {"originalTimestamp", &original_timestamp},
                          {"sentAt", &sent_at}}});
  }
};

// The `context` fields BuildEvent reads, from the item's context, each falling back to the batch's
// context.
struct ContextFields {
  std::optional<element> campaign, page, device, os, library, user_agent, traits, ecrm, consent;

  ContextFields(std::optional<object> item_context, const EventContext& ctx) {
    const std::array<FieldSlot, 9> slots = {{{"campaign", &campaign},
                                             {"consent", &consent},
                                             {"page", &page},
                                             {"device", &device},
                                             {"os", &os},
                                             {"library", &library},
                                             {"userAgent", &user_agent},
                                             {"traits", &traits},
                                             {"ecrm", &ecrm}}};
    if (item_context) FillFields(*item_context, slots);
    object batch;
    if (ctx.has_batch_context && ctx.batch_context.get_object().get(batch) == simdjson::SUCCESS) {
      FillFields(batch, slots);
    }
  }
};

std::string_view SubField(std::optional<element> parent, std::string_view key) {
  object o;
  if (!parent || parent->get_object().get(o) != simdjson::SUCCESS) return {};
  return StringOr(Field(o, key));
}

// Reads an optional string field; a present non-string value is a type error.
bool OptionalString(std::optional<element> e, std::string_view key, std::string_view& out,
                    Rejection& r) {
  if (!e) return true;
  if (e->get_string().get(out) != simdjson::SUCCESS) {
    return Reject(r, "invalid_field_type", std::string(key) + " must be a string");
  }
  return true;
}

bool OptionalObject(std::optional<element> e, std::string_view key, std::optional<object>& out,
                    Rejection& r) {
  if (!e) return true;
  object o;
  if (e->get_object().get(o) != simdjson::SUCCESS) {
    return Reject(r, "invalid_field_type", std::string(key) + " must be an object");
  }
  out = o;
  return true;
}

bool OptionalTime(std::optional<element> e, std::string_view key, std::optional<TimeMs>& out,
                  Rejection& r) {
  if (!e) return true;
  std::string_view s;
  if (e->get_string().get(s) != simdjson::SUCCESS) {
    return Reject(r, "invalid_timestamp", std::string(key) + " must be an ISO-8601 string");
  }
  out = ParseIso8601(s);
  if (!out) return Reject(r, "invalid_timestamp", std::string(key) + " is not an ISO-8601 time");
  return true;
}

std::string Normalise(std::string_view event) {
  static constexpr std::pair<std::string_view, std::string_view> kV1[] = {
      {"Viewed Product", "Product Viewed"},
      {"Clicked Product", "Product Clicked"},
      {"Added Product", "Product Added"},
      {"Removed Product", "Product Removed"},
      {"Completed Order", "Order Completed"},
      {"Started Order", "Checkout Started"},
      {"Viewed Product Category", "Product List Viewed"},
      {"Refunded Order", "Order Refunded"}};
  for (const auto& [v1, v2] : kV1) {
    if (event == v1) return std::string(v2);
  }
  return std::string(event);
}

// product_id (or sku, or id) as a string; numbers are kept as their JSON text.
std::string ProductId(object product) {
  for (std::string_view key : {"product_id", "sku", "id"}) {
    auto e = Field(product, key);
    if (!e) continue;
    std::string_view s;
    if (e->get_string().get(s) == simdjson::SUCCESS && !s.empty()) return std::string(s);
    if (e->is_number()) return simdjson::minify(*e);
  }
  return {};
}

std::string AmountLimitText(double max_amount) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", max_amount);
  return buf;
}

// A revenue, total or price: a number of at most `max_amount` in magnitude; a present value of
// another type is ignored, an out-of-range number rejects the event (sums of them stay finite).
bool ReadAmount(object obj, std::string_view key, const EventLimits& limits, double& out, bool& has,
                Rejection& r) {
  auto e = Field(obj, key);
  double v;
  if (!e || e->get_double().get(v) != simdjson::SUCCESS) return true;
  if (!(std::abs(v) <= limits.max_amount)) {
    return Reject(r, "invalid_number",
                  std::string(key) + " must be a number of magnitude at most " +
                      AmountLimitText(limits.max_amount));
  }
  out = v;
  has = true;
  return true;
}

bool ReadProduct(object product, const EventLimits& limits, ProductRef& ref, Rejection& r) {
  ref.product_id = ProductId(product);
  ref.name = std::string(StringOr(Field(product, "name")));
  ref.category = std::string(StringOr(Field(product, "category")));
  return ReadAmount(product, "price", limits, ref.price, ref.has_price, r);
}

std::string_view UrlHost(std::string_view url) {
  const auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return {};
  url.remove_prefix(scheme + 3);
  return url.substr(0, url.find_first_of("/?#"));
}

bool ReadProperties(object props, const EventLimits& limits, Event& event, Rejection& r) {
  if (auto products = Field(props, "products")) {
    simdjson::dom::array arr;
    if (products->get_array().get(arr) == simdjson::SUCCESS) {
      for (element p : arr) {
        object po;
        if (p.get_object().get(po) != simdjson::SUCCESS) continue;
        if (!ReadProduct(po, limits, event.products.emplace_back(), r)) return false;
      }
    }
  }
  if (event.products.empty()) {
    ProductRef single;
    if (!ReadProduct(props, limits, single, r)) return false;
    if (!single.product_id.empty() || !single.category.empty()) {
      event.products.push_back(std::move(single));
    }
  }
  for (std::string_view key : {"revenue", "total"}) {
    if (!ReadAmount(props, key, limits, event.revenue, event.has_revenue, r)) return false;
    if (event.has_revenue) break;
  }
  return true;
}

// Adds the traits of `traits` not already in `event` (so, for a key given twice, the first
// occurrence wins: the rule for every duplicate JSON key in an event, as for its top-level fields).
bool ReadTraits(object traits, const EventLimits& limits, Event& event,
                absl::flat_hash_set<std::string_view>& seen, Rejection& r) {
  for (auto field : traits) {
    if (!seen.insert(field.key).second) continue;
    event.traits.emplace_back(std::string(field.key), simdjson::minify(field.value));
    if (field.key != "email") continue;
    std::string_view email;
    if (field.value.get_string().get(email) != simdjson::SUCCESS) continue;
    if (email.size() > limits.max_email) {
      return Reject(r, "invalid_identifier",
                    "traits.email must be at most " + std::to_string(limits.max_email) + " bytes");
    }
    event.email = limits.IsBlocked(email) ? std::string() : NormalizeEmail(email);
  }
  return true;
}

}  // namespace

std::string EventLimits::TimeOutOfWindow(TimeMs t, TimeMs received) const {
  if (t > received + max_event_lead_ms) {
    return "is more than " + std::to_string(max_event_lead_ms / 3'600'000) +
           " hours after the time the event was received";
  }
  if (t < received - max_event_age_ms) {
    return "is more than " + std::to_string(max_event_age_ms / 86'400'000) +
           " days before the time the event was received";
  }
  return {};
}

bool EventLimits::IsBlocked(std::string_view value) const {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) {
    value.remove_prefix(1);
  }
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) {
    value.remove_suffix(1);
  }
  if (value.empty() || EqualsIgnoreCase(value, "null") || EqualsIgnoreCase(value, "undefined")) {
    return true;
  }
  for (const auto& blocked : blocked_identifiers) {
    if (EqualsIgnoreCase(value, blocked)) return true;
  }
  return false;
}

std::optional<EventType> ParseEventType(std::string_view name) {
  if (name == "identify") return EventType::kIdentify;
  if (name == "track") return EventType::kTrack;
  if (name == "page") return EventType::kPage;
  if (name == "screen") return EventType::kScreen;
  if (name == "group") return EventType::kGroup;
  if (name == "alias") return EventType::kAlias;
  return std::nullopt;
}

bool BuildEvent(element item, const EventContext& ctx, const EventLimits& limits, Event& event,
                Rejection& r) {
  object obj;
  if (item.get_object().get(obj) != simdjson::SUCCESS) {
    return Reject(r, "invalid_event", "an event must be a JSON object");
  }
  const EventFields f(obj);
  // Type: from the path for the single-event endpoints, else required in the item.
  if (ctx.path_type) {
    event.type = *ctx.path_type;
  } else {
    const auto& type = f.type;
    if (!type) return Reject(r, "missing_type", "type is required");
    std::string_view name;
    if (type->get_string().get(name) != simdjson::SUCCESS) {
      return Reject(r, "invalid_field_type", "type must be a string");
    }
    auto parsed = ParseEventType(name);
    if (!parsed) {
      return Reject(r, "invalid_type",
                    "type must be one of identify, track, page, screen, group, alias");
    }
    event.type = *parsed;
  }

  std::string_view message_id, user_id, anonymous_id, name, event_name, previous_id, group_id;
  if (!OptionalString(f.message_id, "messageId", message_id, r) ||
      !OptionalString(f.user_id, "userId", user_id, r) ||
      !OptionalString(f.anonymous_id, "anonymousId", anonymous_id, r) ||
      !OptionalString(f.name, "name", name, r) ||
      !OptionalString(f.event, "event", event_name, r) ||
      !OptionalString(f.previous_id, "previousId", previous_id, r) ||
      !OptionalString(f.group_id, "groupId", group_id, r)) {
    return false;
  }
  for (auto* id : {&user_id, &anonymous_id, &previous_id}) {
    if (limits.IsBlocked(*id)) *id = {};
  }
  if (message_id.size() > limits.max_message_id) {
    return Reject(r, "invalid_message_id",
                  "messageId is longer than " + std::to_string(limits.max_message_id));
  }
  if (user_id.size() > limits.max_identifier || anonymous_id.size() > limits.max_identifier ||
      previous_id.size() > limits.max_identifier) {
    return Reject(
        r, "invalid_field_type",
        "identifiers must be at most " + std::to_string(limits.max_identifier) + " bytes");
  }
  if (user_id.empty() && anonymous_id.empty()) {
    return Reject(r, "missing_identifier", "userId or anonymousId is required");
  }
  if (event.type == EventType::kTrack && event_name.empty()) {
    return Reject(r, "missing_event", "track requires a non-empty event name");
  }
  if (event.type == EventType::kAlias && previous_id.empty()) {
    return Reject(r, "missing_field", "alias requires previousId");
  }
  if (event.type == EventType::kGroup && group_id.empty()) {
    return Reject(r, "missing_field", "group requires groupId");
  }

  std::optional<object> properties, traits, context;
  if (!OptionalObject(f.properties, "properties", properties, r) ||
      !OptionalObject(f.traits, "traits", traits, r) ||
      !OptionalObject(f.context, "context", context, r)) {
    return false;
  }
  std::optional<TimeMs> timestamp, original, sent_at;
  if (!OptionalTime(f.timestamp, "timestamp", timestamp, r) ||
      !OptionalTime(f.original_timestamp, "originalTimestamp", original, r) ||
      !OptionalTime(f.sent_at, "sentAt", sent_at, r)) {
    return false;
  }

  event.message_id.assign(message_id);
  event.user_id.assign(user_id);
  event.anonymous_id.assign(anonymous_id);
  event.name.assign(name);
  event.previous_id.assign(previous_id);
  event.group_id.assign(group_id);
  if (event.type == EventType::kTrack) event.event = Normalise(event_name);

  // Clock-skew correction: timestamp = receivedAt - (sentAt - device time), when both are known.
  event.received_at = ctx.received_at;
  const std::optional<TimeMs> device_time = original ? original : timestamp;
  event.client_time = device_time.value_or(0);
  const std::optional<TimeMs> sent = sent_at ? sent_at : ctx.batch_sent_at;
  if (device_time && sent) {
    event.timestamp = ctx.received_at - (*sent - *device_time);
  } else if (device_time) {
    event.timestamp = *device_time;
  } else {
    event.timestamp = ctx.received_at;
  }
  // A time far from receipt would freeze the profile's decayed interests or its first/last seen.
  const std::pair<std::string_view, std::optional<TimeMs>> times[] = {
      {"timestamp", timestamp},
      {"originalTimestamp", original},
      {"sentAt", sent},
      {"the event time (receivedAt - (sentAt - originalTimestamp))", event.timestamp}};
  for (const auto& [what, t] : times) {
    if (!t) continue;
    if (std::string why = limits.TimeOutOfWindow(*t, ctx.received_at); !why.empty()) {
      return Reject(r, "invalid_timestamp", std::string(what) + " " + why);
    }
  }

  const ContextFields c(context, ctx);
  // context.ecrm.user_hash: the shop server's HMAC of the userId, checked by the collector.
  if (c.ecrm) {
    object ecrm;
    if (c.ecrm->get_object().get(ecrm) != simdjson::SUCCESS) {
      return Reject(r, "invalid_field_type", "context.ecrm must be an object");
    }
    std::string_view user_hash;
    if (!OptionalString(Field(ecrm, "user_hash"), "context.ecrm.user_hash", user_hash, r)) {
      return false;
    }
    if (user_hash.size() > limits.max_user_hash) {
      return Reject(r, "invalid_field_type",
                    "context.ecrm.user_hash must be at most " +
                        std::to_string(limits.max_user_hash) + " bytes");
    }
    event.user_hash.assign(user_hash);
  }
  // Consent (Segment's consent management): context.consent.categoryPreferences, category -> bool.
  if (c.consent) {
    object consent, preferences;
    if (c.consent->get_object().get(consent) != simdjson::SUCCESS) {
      return Reject(r, "invalid_field_type", "context.consent must be an object");
    }
    if (auto p = Field(consent, "categoryPreferences"); p) {
      if (p->get_object().get(preferences) != simdjson::SUCCESS) {
        return Reject(r, "invalid_field_type",
                      "context.consent.categoryPreferences must be an object");
      }
      for (auto field : preferences) {
        std::string_view name = field.key;
        bool granted = false;
        if (field.value.get_bool().get(granted) != simdjson::SUCCESS) {
          return Reject(r, "invalid_field_type",
                        "context.consent.categoryPreferences values must be true or false");
        }
        if (name.size() > 128 || event.consent.size() >= 64) {
          return Reject(r, "invalid_field_type",
                        "context.consent.categoryPreferences: at most 64 categories of at most "
                        "128 bytes");
        }
        bool seen = false;  // the first of duplicate keys wins, as everywhere
        for (const auto& [n, _] : event.consent) seen |= n == name;
        if (!seen) event.consent.emplace_back(name, granted);
      }
    }
  }
  if (event.type == EventType::kIdentify) {
    // Traits: the top-level ones, then those of context.traits (where RudderStack's browser SDK
    // puts them) that the top level does not set.
    absl::flat_hash_set<std::string_view> seen;
    if (traits && !ReadTraits(*traits, limits, event, seen, r)) return false;
    object context_traits;
    if (c.traits && c.traits->get_object().get(context_traits) == simdjson::SUCCESS &&
        !ReadTraits(context_traits, limits, event, seen, r)) {
      return false;
    }
  }
  if (properties && (!limits.keep_properties || limits.keep_properties->load())) {
    event.properties = simdjson::minify(*properties);  // read by rules
  }
  if (properties && (event.type == EventType::kTrack || event.type == EventType::kPage) &&
      !ReadProperties(*properties, limits, event, r)) {
    return false;
  }

  // Attribution: UTM campaign and an external referrer.
  if (const auto& campaign = c.campaign) {
    event.touch.source = SubField(campaign, "source");
    event.touch.medium = SubField(campaign, "medium");
    event.touch.campaign = SubField(campaign, "name");
    event.touch.term = SubField(campaign, "term");
    event.touch.content = SubField(campaign, "content");
  }
  std::string_view referrer = SubField(c.page, "referrer");
  std::string_view url = SubField(c.page, "url");
  if (properties && event.type == EventType::kPage) {
    referrer = StringOr(Field(*properties, "referrer"), referrer);
    url = StringOr(Field(*properties, "url"), url);
  }
  if (!referrer.empty() && UrlHost(referrer) != UrlHost(url)) event.touch.referrer = referrer;

  // Device.
  event.device.type = SubField(c.device, "type");
  event.device.os = SubField(c.os, "name");
  event.device.library = SubField(c.library, "name");
  ClassifyUserAgent(StringOr(c.user_agent), event.device);
  return true;
}

}  // namespace ecrm
