// Timestamp and duration helpers of the CEL engine: RFC 3339 and Go-style duration parsing,
// formatting, civil-time fields in UTC, a fixed offset or an IANA zone. Stateless; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "rules/cel/value.h"

namespace ecrm::cel::internal {

// CEL's ranges: timestamps 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z; durations
// fit int64 nanoseconds (about +-292 years), as the conformance suite expects.
inline constexpr int64_t kMinTimestampSeconds = -62135596800;
inline constexpr int64_t kMaxTimestampSeconds = 253402300799;

// Both return an error Value on bad syntax or range.
Value ParseTimestamp(std::string_view text);
Value ParseDuration(std::string_view text);
// Range-checked constructors from a total number of nanoseconds (as 128-bit arithmetic).
Value MakeTimestamp(int64_t seconds, int64_t nanos);
Value MakeDuration(int64_t seconds, int64_t nanos);

std::string FormatTimestamp(int64_t seconds, int32_t nanos);  // RFC 3339, trailing zeros trimmed
std::string FormatDuration(int64_t seconds, int32_t nanos);   // "1.5s"
std::string FormatDouble(double d);                           // shortest round-trip

// Timestamp getters; `tz` empty = UTC. An error Value for an unknown zone.
enum class TimeField : uint8_t {
  kFullYear,
  kMonth,
  kDate,
  kDayOfMonth,
  kDayOfWeek,
  kDayOfYear,
  kHours,
  kMinutes,
  kSeconds,
  kMilliseconds
};
Value TimestampField(const Value& ts, TimeField field, std::string_view tz);
Value DurationField(const Value& d, TimeField field);

}  // namespace ecrm::cel::internal
