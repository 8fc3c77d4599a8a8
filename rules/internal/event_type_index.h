// The event-type index of a rule: which event types its `when` can match, derived from the
// `event.type == '...'` / `event.type in [...]` constraints of its top-level conjunction. Rules
// whose condition constrains nothing are evaluated for every event. Internal to rules/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rules/cel/cel.h"
#include "rules/rule_set.h"

namespace ecrm::rules_internal {

inline constexpr uint32_t kAnyEventType = (1u << kRuleEventTypes.size()) - 1;

inline uint32_t EventTypeMask(const cel::Program& when) {
  static const std::string kTypePath[] = {"type"};
  const auto required = when.RequiredStrings("event", kTypePath);
  if (required.empty()) return kAnyEventType;
  uint32_t mask = 0;
  for (const auto& value : required) {
    for (size_t t = 0; t < kRuleEventTypes.size(); t++) {
      if (kRuleEventTypes[t] == value) mask |= 1u << t;
    }
  }
  return mask;
}

// The track event names (`event.event == '...'`) the condition requires; empty = any.
inline std::vector<std::string> EventNames(const cel::Program& when) {
  static const std::string kEventPath[] = {"event"};
  return when.RequiredStrings("event", kEventPath);
}

}  // namespace ecrm::rules_internal
