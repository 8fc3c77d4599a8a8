// Rejection: why an incoming request (or one item of a batch) was refused, with the HTTP status, a
// stable machine-readable code (also the `reason` label of ecrm_events_rejected_total) and a
// message for humans. A plain value type.
#pragma once

#include <string>

namespace ecrm {

struct Rejection {
  int http_status = 400;
  std::string code;  // e.g. "invalid_json", "event_too_large"
  std::string message;
  int index = -1;  // zero-based batch item, or -1 for the request as a whole
};

// Every code the collector can answer with, so metrics can pre-create their label values.
inline constexpr const char* kRejectionCodes[] = {"invalid_json",       "request_too_large",
                                                  "batch_too_large",    "event_too_large",
                                                  "invalid_event",      "missing_type",
                                                  "invalid_type",       "missing_event",
                                                  "missing_identifier", "invalid_field_type",
                                                  "invalid_timestamp",  "invalid_message_id",
                                                  "invalid_number",     "invalid_identifier",
                                                  "missing_field",      "missing_write_key",
                                                  "invalid_write_key",  "invalid_encoding",
                                                  "overloaded",         "rate_limited",
                                                  "unavailable",        "internal"};

}  // namespace ecrm
