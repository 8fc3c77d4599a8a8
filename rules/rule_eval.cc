#include "rules/rule_eval.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>

namespace ecrm {
namespace {

constexpr size_t kMaxActionValues = 32;

// A number usable as a counter increment or a score; anything else is a runtime error.
bool ToDouble(const cel::Value& v, double* out) {
  switch (v.kind()) {
    case cel::Kind::kInt:
      *out = static_cast<double>(v.AsInt());
      return true;
    case cel::Kind::kUint:
      *out = static_cast<double>(v.AsUint());
      return true;
    case cel::Kind::kDouble:
      *out = v.AsDouble();
      return std::isfinite(*out);
    default:
      return false;
  }
}

// Evaluates the rule; returns an error Value for a runtime error, else null.
cel::Value EvaluateRule(const Rule& rule, RuleTarget& target, bool* matched,
                        std::array<cel::Value, kMaxActionValues>& values, cel::EvalBudget& budget) {
  *matched = false;
  cel::Value when = rule.when.Evaluate(target, budget);
  if (when.is_error()) return when;
  if (when.kind() != cel::Kind::kBool) {
    return cel::Value::StaticError("'when' did not evaluate to a bool");
  }
  if (!when.AsBool()) return {};
  for (size_t i = 0; i < rule.actions.size(); i++) {
    const RuleAction& a = rule.actions[i];
    values[i] = a.value ? a.value->Evaluate(target, budget) : cel::Value();
    if (values[i].is_error()) return values[i];
    double unused;
    if ((a.kind == RuleAction::Kind::kSetScore ||
         (a.kind == RuleAction::Kind::kIncrement && a.value)) &&
        !ToDouble(values[i], &unused)) {
      return cel::Value::StaticError(a.kind == RuleAction::Kind::kSetScore
                                         ? "set_score: the value is not a finite number"
                                         : "increment: 'by' is not a finite number");
    }
  }
  *matched = true;
  return {};
}

void ApplyActions(const Rule& rule, const std::array<cel::Value, kMaxActionValues>& values,
                  RuleTarget& target) {
  for (size_t i = 0; i < rule.actions.size(); i++) {
    const RuleAction& a = rule.actions[i];
    double number = 1;
    switch (a.kind) {
      case RuleAction::Kind::kAddSegment:
        target.AddSegment(a.name, a.ttl_ms);
        break;
      case RuleAction::Kind::kRemoveSegment:
        target.RemoveSegment(a.name);
        break;
      case RuleAction::Kind::kIncrement:
        if (a.value) ToDouble(values[i], &number);
        target.Increment(a.name, number, a.window_ms);
        break;
      case RuleAction::Kind::kSetTrait:
        target.SetTrait(a.name, values[i]);
        break;
      case RuleAction::Kind::kSetScore:
        ToDouble(values[i], &number);
        target.SetScore(a.name, number);
        break;
      case RuleAction::Kind::kOffer:
        target.AddOffer(a.name, a.priority);
        break;
    }
  }
  if (rule.once != OnceScope::kAlways) target.MarkFired(rule.id);
}

}  // namespace

RuleRunStats ApplyRules(const RuleSet& set, std::string_view event_type,
                        std::string_view event_name, RuleTarget& target, bool timed,
                        RuleObserver* observer) {
  RuleRunStats run;
  std::array<cel::Value, kMaxActionValues> values;
  const RuleBudget& limits = set.budget();
  uint64_t event_left = limits.event_cost;
  const auto& indexed = set.RulesFor(event_type, event_name);
  auto next_indexed = indexed.begin();
  // A dry run (observer) reports every rule; events only walk the rules indexed for their type.
  const size_t candidates = observer ? set.rules().size() : indexed.size();
  for (size_t i = 0; i < candidates; i++) {
    const Rule* rule = observer ? &set.rules()[i] : indexed[i];
    if (observer) {
      if (next_indexed == indexed.end() || *next_indexed != rule) {
        observer->OnRule(*rule, false, {}, {});  // its condition requires another event type
        continue;
      }
      ++next_indexed;
    }
    if (rule->once != OnceScope::kAlways && target.AlreadyFired(rule->id, rule->once)) {
      if (observer) observer->OnRule(*rule, false, {}, {});
      continue;
    }
    run.evaluated++;
    bool matched = false;
    cel::Value error;
    cel::EvalBudget budget{.max_cost = std::min(limits.rule_cost, event_left),
                           .max_bytes = limits.rule_bytes};
    if (timed) {
      const auto start = std::chrono::steady_clock::now();
      error = EvaluateRule(*rule, target, &matched, values, budget);
      const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::steady_clock::now() - start)
                             .count();
      rule->stats->timed_evaluations.fetch_add(1, std::memory_order_relaxed);
      rule->stats->timed_nanos.fetch_add(static_cast<uint64_t>(nanos), std::memory_order_relaxed);
    } else {
      error = EvaluateRule(*rule, target, &matched, values, budget);
    }
    event_left -= std::min(event_left, budget.cost);
    rule->stats->evaluations.fetch_add(1, std::memory_order_relaxed);
    if (error.is_error()) {
      run.errors++;
      std::atomic<uint64_t>* counter = &rule->stats->errors;
      switch (budget.exceeded) {
        case cel::EvalBudget::Exceeded::kNone:
          break;
        case cel::EvalBudget::Exceeded::kMemory:
          counter = &rule->stats->memory_exceeded;
          break;
        case cel::EvalBudget::Exceeded::kCost:
          // Stopped short of its own budget: the event's was spent by the rules before it.
          if (budget.max_cost < limits.rule_cost) {
            counter = &rule->stats->event_budget_exceeded;
            error = cel::Value::StaticError(kEventBudgetExceededMessage);
          } else {
            counter = &rule->stats->cost_exceeded;
          }
          break;
      }
      if (budget.exceeded != cel::EvalBudget::Exceeded::kNone) run.over_budget++;
      counter->fetch_add(1, std::memory_order_relaxed);
    } else if (matched) {
      run.matched++;
      rule->stats->matches.fetch_add(1, std::memory_order_relaxed);
    }
    if (observer) {
      observer->OnRule(
          *rule, matched, error.is_error() ? error.ErrorMessage() : std::string_view(),
          std::span<const cel::Value>(values.data(), matched ? rule->actions.size() : 0));
    }
    if (matched) ApplyActions(*rule, values, target);
  }
  return run;
}

}  // namespace ecrm
