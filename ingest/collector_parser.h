// CollectorParser: turns the body of one collector request (Segment/RudderStack tracking API) into
// validated events, all or nothing: either every item is valid and returned, or the first invalid
// item's Rejection (with its index) is returned and nothing of the request is applied.
//
// Ownership: one per HTTP thread (it holds a reusable simdjson parser and buffers). Not
// thread-safe.
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

// One event as a Kafka message: the routing key, and a one-item batch envelope carrying the
// batch-level context, sentAt and the collector's receivedAt, so the consumer sees what the
// collector saw.
struct RawEventMessage {
  std::string key;
  std::string value;
};

// Adds the ecrm-owned envelope field to `message` (built by the parser, not yet stamped): the
// event's trust marks, computed by the collector once it knows the request's write key,
// `"ecrm":{"source":"<key id>","trusted":<bool>,"userHashValid":<bool>}`. ParseKafkaMessage puts
// them back on every event of the message (docs/kafka.md#message-format).
void StampEnvelope(const Event& event, RawEventMessage& message);

struct CollectorRequest {
  std::vector<Event> events;
  std::string body_write_key;        // `writeKey` from the body (top level), if any
  std::vector<RawEventMessage> raw;  // filled only when the parser keeps raw events
};

class CollectorParser {
 public:
  explicit CollectorParser(const CollectorLimits& limits);

  // `path_type` is set for the single-event endpoints and unset for the batch endpoints.
  // On success fills `out` and returns nullopt; on failure returns the rejection. The events keep
  // the defaults source "", trusted, and their user_hash: the caller marks them once it knows the
  // write key (IdentityTrust::Mark). A top-level `ecrm` field of the body is ignored.
  std::optional<Rejection> Parse(std::string_view body, std::optional<EventType> path_type,
                                 TimeMs received_at, CollectorRequest& out);

  // A Kafka message value: one event with its `type`, or a batch envelope {"batch": [...]}. An
  // envelope's top-level `receivedAt` (set by ecrm's collector) is trusted as the receipt time;
  // otherwise `consumed_at` is. A top-level `ecrm` object (StampEnvelope) gives every event its
  // source, trusted and user_hash_valid; without one, events are trusted with source "" (the
  // topic's other producers are trusted like server keys). user_hash is cleared.
  std::optional<Rejection> ParseKafkaMessage(std::string_view body, TimeMs consumed_at,
                                             CollectorRequest& out);

  // Also fill CollectorRequest::raw (the collector in Kafka mode produces these).
  void set_keep_raw(bool keep) { keep_raw_ = keep; }

  const CollectorLimits& limits() const { return limits_; }

 private:
  std::optional<Rejection> ParseImpl(std::string_view body, std::optional<EventType> path_type,
                                     bool kafka, TimeMs received_at, CollectorRequest& out);
  void KeepRaw(simdjson::dom::element item, const Event& event, bool single_endpoint,
               std::string_view context_json, std::string_view sent_at, CollectorRequest& out);

  CollectorLimits limits_;
  bool keep_raw_ = false;
  simdjson::dom::parser parser_;
};

}  // namespace ecrm
