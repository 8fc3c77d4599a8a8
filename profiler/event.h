// Event: one Segment-spec event after parsing and validation, in the compact form the profiler
// needs. Produced by ingest/ (HTTP collector, later Kafka), consumed by a profiler shard. A plain
// value type: owned by whoever holds it, moved across the shard queue, never shared between
// threads.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"

namespace ecrm {

// kMerge is ecrm's own: the rules run once with it on a profile that absorbed another (no client
// sends it, and it changes no stats).
enum class EventType : uint8_t { kIdentify, kTrack, kPage, kScreen, kGroup, kAlias, kMerge };

const char* EventTypeName(EventType type);

struct ProductRef {
  std::string product_id;
  std::string name;
  std::string category;
  double price = 0;
  bool has_price = false;
};

// First/last-touch attribution: UTM campaign fields and the referrer.
struct Touch {
  std::string source;
  std::string medium;
  std::string campaign;
  std::string term;
  std::string content;
  std::string referrer;
  TimeMs at = 0;
  bool empty() const {
    return source.empty() && medium.empty() && campaign.empty() && term.empty() &&
           content.empty() && referrer.empty();
  }
};

struct DeviceInfo {
  std::string type;     // desktop | mobile | tablet | bot | (from context.device.type)
  std::string os;       // context.os.name or parsed from the user agent
  std::string browser;  // parsed from the user agent
  std::string library;  // context.library.name
};

struct Event {
  EventType type = EventType::kTrack;
  std::string message_id;  // empty: none given, no dedup
  std::string anonymous_id;
  std::string user_id;
  std::string event;        // track: the event name, v1 e-commerce names normalised to v2
  std::string name;         // page/screen name
  std::string previous_id;  // alias
  std::string group_id;     // group
  TimeMs timestamp = 0;     // event time, clock-skew corrected
  TimeMs received_at = 0;   // server time of receipt
  // The time the client gave the event (originalTimestamp, else timestamp), 0 if none. Unlike
  // `timestamp` it does not depend on when the event arrived: a retry or a replay of the event
  // has the same one, so it is part of the dedup key.
  TimeMs client_time = 0;
  std::vector<std::pair<std::string, std::string>> traits;  // key -> minified JSON value
  std::string email;                                        // traits.email, trimmed and lower-cased
  std::string properties;  // the properties object, minified JSON ("" if none), read by rules
  std::vector<ProductRef> products;  // the product of a product event, or properties.products
  double revenue = 0;                // Order Completed: properties.revenue, else total
  bool has_revenue = false;
  Touch touch;  // context.campaign + referrer
  DeviceInfo device;
  // Identifiers of other types (phone, crm_id, custom), normalised: claimed like the others.
  std::vector<std::pair<std::string, std::string>> identifiers;
  // context.consent.categoryPreferences (Segment's consent management): category -> consented.
  // Mapped to what ecrm may do by ProfilerConfig::consent_* (docs/privacy.md#consent).
  std::vector<std::pair<std::string, bool>> consent;
  // Set for a record from another channel (profile import: "crm", "call-centre", ...): only its
  // identifiers and traits are applied (no stats, session or attribution); traits remember it.
  std::string channel;
  // Where the event came from (docs/identity.md#trusted-identity). `source` scopes its messageId:
  // the write key's id (KeyId of the key, never the key itself), or "" for events from Kafka
  // producers other than ecrm's collector. `trusted`: sent with a server write key, by the import
  // channel or by a Kafka producer, so every identifier it carries is a verified claim. An event of
  // a browser key is not trusted; then `user_hash_valid` says whether its context.ecrm.user_hash
  // matched hex(HMAC-SHA256(identity secret, userId)), which verifies its userId claim alone.
  std::string source;
  // Set by ProfileEngine::Submit for an event with a messageId: a 64-bit hash of (source, the
  // routing identifier's type and value, messageId), the event's dedup key. 0: no messageId.
  uint64_t message_hash = 0;
  bool trusted = true;
  bool user_hash_valid = false;
  // context.ecrm.user_hash as sent (a string of at most 128 bytes), only until the collector has
  // checked it (IdentityTrust::Mark, which clears it); always empty once the event reaches a shard.
  std::string user_hash;

  // The key an event is routed by: the anonymous id, else the user id (as Kafka keys will be),
  // else the email, else its first other identifier.
  const std::string& RoutingKey() const {
    if (!anonymous_id.empty()) return anonymous_id;
    if (!user_id.empty() || (email.empty() && identifiers.empty())) return user_id;
    return email.empty() ? identifiers.front().second : email;
  }
  std::string RoutingIdentityType() const {
    if (!anonymous_id.empty()) return "anonymous_id";
    if (!user_id.empty() || (email.empty() && identifiers.empty())) return "user_id";
    return email.empty() ? identifiers.front().first : "email";
  }
};

}  // namespace ecrm
