// A profile record from another channel (CRM, call centre, shop system), one JSON object:
// {"identifiers": {...}, "traits": {...}, "channel": "crm", "updated_at": ...}, as sent to
// POST /v1/profiles/import (NDJSON) or the ecrm.profiles Kafka topic. Parsed into an Event with
// `channel` set, which the profiler applies as identifiers and traits only. Pure functions;
// a ProfileRecordParser is used by one thread at a time.
#pragma once

#include <simdjson.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "ingest/event_builder.h"
#include "ingest/rejection.h"
#include "profiler/event.h"

namespace ecrm {

struct ProfileRecordOptions {
  // Identifier types besides anonymous_id, user_id and email that records may carry.
  std::vector<std::string> identifier_types = {"phone", "crm_id"};
  EventLimits limits;
  bool KnownType(std::string_view type) const;
};

class ProfileRecordParser {
 public:
  explicit ProfileRecordParser(ProfileRecordOptions options) : options_(std::move(options)) {}
  // One record; `received_at` is the default for a missing updated_at. On failure fills
  // `rejection` (code and message) and returns false.
  bool Parse(std::string_view json, TimeMs received_at, Event& out, Rejection& rejection);
  const ProfileRecordOptions& options() const { return options_; }

 private:
  ProfileRecordOptions options_;
  simdjson::dom::parser parser_;
};

}  // namespace ecrm
