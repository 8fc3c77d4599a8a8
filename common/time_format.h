// ISO-8601 / RFC 3339 timestamps <-> milliseconds since the epoch. Hand-written rather than
// absl::ParseTime because every event carries two or three timestamps and this sits on the hot path
// (it is tested against absl::ParseTime). Pure functions, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace ecrm {

// Accepts `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fraction]]` with `Z`, `±HH:MM`, `±HHMM` or no zone
// (UTC), and a space instead of `T`. Returns nullopt for anything else, including out-of-range
// fields.
std::optional<TimeMs> ParseIso8601(std::string_view text);

// `2026-11-22T21:00:00.000Z`.
std::string FormatIso8601(TimeMs t);

}  // namespace ecrm
