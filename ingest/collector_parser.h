// CollectorParser: turns the body of one collector request (Segment/RudderStack tracking API) into
// validated events, all or nothing: either every item is valid and returned, or the first invalid
// item's Rejection (with its index) is returned and nothing of the request is applied.
//
// Ownership: one per HTTP thread (it holds a reusable simdjson parser and buffers). Not thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/event_builder.h"
#include "ingest/rejection.h"
#include "profiler/event.h"
#include "simdjson.h"

namespace ecrm {

struct CollectorLimits {
  size_t max_request_bytes = 500 * 1024;  // decoded body
  size_t max_event_bytes = 32 * 1024;     // one event, minified JSON
  size_t max_batch_events = 2500;
  EventLimits event;
};

struct CollectorRequest {
  std::vector<Event> events;
  std::string body_write_key;  // `writeKey` from the body (top level), if any
};

class CollectorParser {
 public:
  explicit CollectorParser(const CollectorLimits& limits);

  // `path_type` is set for the single-event endpoints and unset for the batch endpoints.
  // On success fills `out` and returns nullopt; on failure returns the rejection.
  std::optional<Rejection> Parse(std::string_view body, std::optional<EventType> path_type,
                                 TimeMs received_at, CollectorRequest& out);

  const CollectorLimits& limits() const { return limits_; }

 private:
  CollectorLimits limits_;
  simdjson::dom::parser parser_;
};

}  // namespace ecrm
