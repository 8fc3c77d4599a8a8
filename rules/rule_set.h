// RuleSet: a compiled, immutable set of rules (segments, counters, scores, traits, offers) pushed
// by data scientists as JSON with CEL expressions (docs/rules.md). Compiled once, at push time;
// evaluating it parses nothing. Built by RuleRegistry (or a dry run), shared read-only by every
// shard through a shared_ptr; thread-safe after Compile.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "rules/cel/cel.h"

namespace ecrm {

// The variables rule expressions may use, in this order (their cel::Env indices).
inline constexpr int kVarEvent = 0;
inline constexpr int kVarProfile = 1;
inline constexpr int kVarNow = 2;

// How often a rule may fire: every time, once per session, once per profile.
enum class OnceScope : uint8_t { kAlways, kSession, kProfile };

struct RuleAction {
  enum class Kind : uint8_t {
    kAddSegment,
    kRemoveSegment,
    kIncrement,
    kSetTrait,
    kSetScore,
    kOffer
  };
  Kind kind = Kind::kAddSegment;
  std::string name;                   // segment, counter, trait, score or offer id
  int64_t ttl_ms = 0;                 // add_segment: 0 = no expiry
  int64_t window_ms = 0;              // increment: 0 = a plain counter
  int64_t priority = 0;               // offer
  std::optional<cel::Program> value;  // increment.by (absent: 1), set_trait/set_score.value
};

// Evaluation counts of one rule id, kept across versions of the rule set (the registry owns
// them). Relaxed atomics: shards add, the metrics scrape reads.
struct RuleStats {
  std::atomic<uint64_t> evaluations{0};
  std::atomic<uint64_t> matches{0};
  std::atomic<uint64_t> errors{0};  // runtime errors (a missing field, division by zero...)
  // Evaluations stopped by a budget (RuleBudget): the rule's cost, its memory, or what was left
  // of the event's cost budget.
  std::atomic<uint64_t> cost_exceeded{0};
  std::atomic<uint64_t> memory_exceeded{0};
  std::atomic<uint64_t> event_budget_exceeded{0};
  std::atomic<uint64_t> timed_evaluations{0};  // a sample of evaluations is timed
  std::atomic<uint64_t> timed_nanos{0};
};

struct Rule {
  std::string id;
  std::string when_source;
  cel::Program when;
  std::vector<RuleAction> actions;
  OnceScope once = OnceScope::kAlways;
  std::shared_ptr<RuleStats> stats;
};

// One problem found in a pushed rule set. `line`/`column` (1-based) point into the CEL source of
// `field` when the problem is in an expression; 0 otherwise.
struct RuleError {
  std::string rule;   // the rule id ("" when the problem is not inside a rule)
  std::string field;  // e.g. "when", "then[1].set_score.value", "id"
  int line = 0;
  int column = 0;
  std::string message;
};

// Bounds on evaluating a rule set for one event (docs/rules.md#limits), in the cost units of
// cel::EvalBudget (about 20 ns each at most; see docs/rules-cel.md). One rule's evaluation (its
// condition and action values) may spend at most `rule_cost` and allocate at most `rule_bytes` for
// intermediate values; all the rules of one event together at most `event_cost`. A rule that
// exceeds a limit is stopped, counted as an error, and its actions are not applied.
struct RuleBudget {
  static constexpr uint64_t kDefaultRuleCost = 40'000;
  static constexpr uint64_t kDefaultRuleBytes = 1 << 20;
  static constexpr uint64_t kDefaultEventCost = 200'000;
  uint64_t rule_cost = kDefaultRuleCost;
  uint64_t rule_bytes = kDefaultRuleBytes;
  uint64_t event_cost = kDefaultEventCost;  // --rule-budget-per-event
};

// The event types rules are indexed by (Segment's, and ecrm's "merge"), in a fixed order.
inline constexpr std::array<std::string_view, 7> kRuleEventTypes = {
    "identify", "track", "page", "screen", "group", "alias", "merge"};

class RuleSet {
 public:
  // Supplies the stats object for a rule id (so counts survive new versions); may return null.
  using StatsFor = std::shared_ptr<RuleStats> (*)(void* ctx, const std::string& rule_id);

  // Parses and compiles a rule set document ({"rules": [...]}). On failure returns
  // InvalidArgument and fills `errors` with every problem found.
  static StatusOr<std::shared_ptr<const RuleSet>> Compile(std::string_view json, uint64_t version,
                                                          std::vector<RuleError>* errors,
                                                          StatsFor stats_for = nullptr,
                                                          void* stats_ctx = nullptr,
                                                          const RuleBudget& budget = {});
  // The empty set (version 0).
  static std::shared_ptr<const RuleSet> Empty();

  uint64_t version() const { return version_; }
  const RuleBudget& budget() const { return budget_; }
  size_t size() const { return rules_.size(); }
  const std::vector<Rule>& rules() const { return rules_; }
  // The rules array exactly as pushed (minified JSON), for GET /v1/rules and persistence.
  const std::string& rules_json() const { return rules_json_; }
  // The rules that can match an event of this type, in listed order: a rule whose `when` requires
  // `event.type` to be one of some literals is left out for the other types.
  // For track events the index also uses the event name (`event.event == '...'`).
  const std::vector<const Rule*>& RulesFor(std::string_view event_type,
                                           std::string_view event_name = {}) const;
  std::string Describe() const;
  // Whether any expression reads event.properties (or the event as a whole): if none does, the
  // collector need not keep each event's properties JSON.
  bool reads_event_properties() const { return reads_event_properties_; }

 private:
  uint64_t version_ = 0;
  RuleBudget budget_;
  bool reads_event_properties_ = false;
  std::vector<Rule> rules_;
  std::string rules_json_ = "[]";
  std::array<std::vector<const Rule*>, kRuleEventTypes.size() + 1> by_type_;  // last: unknown
  // Track rules by the event names their condition requires; rules that require none are in
  // every list and in track_any_name_.
  std::map<std::string, std::vector<const Rule*>, std::less<>> by_track_name_;
  std::vector<const Rule*> track_any_name_;
};

// Parses "30d", "12h", "90m", "1h30m", "45s", "500ms" (positive). Used for ttl and window.
StatusOr<int64_t> ParseDurationMs(std::string_view text);

}  // namespace ecrm
