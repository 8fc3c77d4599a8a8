// Evaluation of a RuleSet for one event: rules run in their listed order and each matching rule's
// actions are applied to the target before the next rule is evaluated, so a later rule sees what
// an earlier one did. The profiler implements RuleTarget over its Profile; the dry-run API uses an
// observer to report what each rule did. Stateless functions; thread-safe for distinct targets.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "rules/cel/cel.h"
#include "rules/rule_set.h"

namespace ecrm {

// What rules read and change: the event, the profile and the time, as a cel::Activation (variables
// kVarEvent, kVarProfile, kVarNow), and the profile mutations of the actions. Implemented by the
// owner of the profile (a shard, or a dry run); used by one thread at a time.
class RuleTarget : public cel::Activation {
 public:
  // Whether a rule with a `once` scope already fired (in this session / for this profile).
  virtual bool AlreadyFired(const std::string& rule_id, OnceScope scope) const = 0;
  virtual void MarkFired(const std::string& rule_id) = 0;
  virtual void AddSegment(const std::string& name, int64_t ttl_ms) = 0;
  virtual void RemoveSegment(const std::string& name) = 0;
  virtual void Increment(const std::string& counter, double by, int64_t window_ms) = 0;
  virtual void SetTrait(const std::string& name, const cel::Value& value) = 0;
  virtual void SetScore(const std::string& name, double value) = 0;
  virtual void AddOffer(const std::string& id, int64_t priority) = 0;
};

// Told what happened to each evaluated rule (dry runs). `error` is empty unless a runtime error
// skipped the rule; `values` holds the evaluated value of each action that has one (else null).
class RuleObserver {
 public:
  virtual ~RuleObserver() = default;
  virtual void OnRule(const Rule& rule, bool matched, std::string_view error,
                      std::span<const cel::Value> values) = 0;
};

struct RuleRunStats {
  int evaluated = 0;
  int matched = 0;
  int errors = 0;       // every error, including those below
  int over_budget = 0;  // rules stopped by a limit of the set's RuleBudget
};

// The error of a rule stopped by its share of the event's cost budget (`--rule-budget-per-event`).
inline constexpr const char* kEventBudgetExceededMessage =
    "the event's rule evaluation budget is spent (--rule-budget-per-event)";

// Applies `set` to one event of type `event_type`, within `set.budget()`: each rule may spend at
// most `rule_cost` (and what is left of `event_cost`) and allocate at most `rule_bytes`; a rule
// stopped by a limit is an error (RuleStats::cost_exceeded, memory_exceeded or
// event_budget_exceeded) and its actions are not applied. The event itself is still applied. With
// `timed`, each rule's evaluation time is added to its stats (callers time a sample of events:
// reading the clock costs ~20 ns). `event_name` is the track event's name (the index's second
// level), else empty.
RuleRunStats ApplyRules(const RuleSet& set, std::string_view event_type,
                        std::string_view event_name, RuleTarget& target, bool timed = false,
                        RuleObserver* observer = nullptr);

}  // namespace ecrm
