// EventBuilder: validates one Segment-spec event (a parsed JSON object) and turns it into the
// compact Event the profiler applies. Shared by the HTTP collector and (later) the Kafka consumer.
// Stateless apart from its limits; thread-safe.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "ingest/rejection.h"
#include "profiler/event.h"
#include "simdjson.h"

namespace ecrm {

struct EventContext {
  simdjson::dom::element
      batch_context;  // the batch-level `context`; valid only if has_batch_context
  bool has_batch_context = false;
  std::optional<TimeMs> batch_sent_at;  // the batch-level `sentAt`
  TimeMs received_at = 0;
  // Set for the single-event endpoints (/v1/track …): the type comes from the path.
  std::optional<EventType> path_type;
};

struct EventLimits {
  size_t max_message_id = 100;
  size_t max_identifier = 1024;
  size_t max_user_hash = 128;  // context.ecrm.user_hash
  size_t max_email = 254;      // traits.email, the longest address RFC 5321 allows
  // Event times (timestamp, originalTimestamp, sentAt and the time they give) must lie within
  // [received − max_event_age_ms, received + max_event_lead_ms] (docs/errors.md#event-times).
  TimeMs max_event_age_ms = 3650LL * 24 * 3600 * 1000;
  TimeMs max_event_lead_ms = 24LL * 3600 * 1000;
  // The largest magnitude of a revenue, total or price (so that sums stay finite).
  double max_amount = 1e15;
  // Identifier values (userId, anonymousId, previousId, email) treated as absent besides the
  // built-in ones (empty, "null", "undefined"); compared trimmed and case-insensitively.
  std::vector<std::string> blocked_identifiers;
  // Keep each event's properties JSON (for rules) only while this is true; null: always keep.
  const std::atomic<bool>* keep_properties = nullptr;
  bool IsBlocked(std::string_view value) const;
  // "" if `t` lies in the window around `received`, else why not.
  std::string TimeOutOfWindow(TimeMs t, TimeMs received) const;
};

// Builds `event` from `item`; on failure fills `rejection` (without the index) and returns false.
bool BuildEvent(simdjson::dom::element item, const EventContext& context, const EventLimits& limits,
                Event& event, Rejection& rejection);

std::optional<EventType> ParseEventType(std::string_view name);

}  // namespace ecrm
