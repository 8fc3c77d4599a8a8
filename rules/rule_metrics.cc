#include "rules/rule_metrics.h"

#include <set>
#include <string_view>

namespace ecrm {

RuleMetrics::RuleMetrics(prometheus::Registry& registry, const RuleRegistry& rules)
    : rules_(rules),
      evaluations_(
          prometheus::BuildCounter()
              .Name("ecrm_rule_evaluations_total")
              .Help("Rule evaluations (rules skipped by the event-type index are not counted)")
              .Register(registry)),
      matches_(prometheus::BuildCounter()
                   .Name("ecrm_rule_matches_total")
                   .Help("Rule evaluations whose condition held and whose actions were applied")
                   .Register(registry)),
      errors_(prometheus::BuildCounter()
                  .Name("ecrm_rule_errors_total")
                  .Help("Rule evaluations skipped by an error, by reason: runtime (e.g. a missing "
                        "field), cost, memory or event_budget (a budget exceeded)")
                  .Register(registry)),
      eval_seconds_(prometheus::BuildCounter()
                        .Name("ecrm_rule_eval_sampled_seconds_total")
                        .Help("Time spent in the sampled (timed) evaluations of a rule")
                        .Register(registry)),
      timed_(prometheus::BuildCounter()
                 .Name("ecrm_rule_eval_sampled_total")
                 .Help("Evaluations of a rule that were timed (1 in 64 events)")
                 .Register(registry)) {
  active_version_ = &prometheus::BuildGauge()
                         .Name("ecrm_rules_active_version")
                         .Help("Version of the active rule set (0: none)")
                         .Register(registry)
                         .Add({});
  active_rules_ = &prometheus::BuildGauge()
                       .Name("ecrm_rules_active")
                       .Help("Rules in the active rule set")
                       .Register(registry)
                       .Add({});
  auto& pushes = prometheus::BuildCounter()
                     .Name("ecrm_rule_pushes_total")
                     .Help("Rule set pushes, validations and rollbacks, by result")
                     .Register(registry);
  pushes_ok_ = &pushes.Add({{"result", "ok"}});
  pushes_invalid_ = &pushes.Add({{"result", "invalid"}});
}

prometheus::Family<prometheus::Counter>& RuleMetrics::FamilyOf(int count) {
  switch (count) {
    case kEvaluations:
      return evaluations_;
    case kMatches:
      return matches_;
    case kNanos:
      return eval_seconds_;
    case kTimed:
      return timed_;
    default:
      return errors_;
  }
}

void RuleMetrics::Unexport(Exported& e) {
  for (int i = 0; i < kN; i++) {
    if (e.counters[i] != nullptr) FamilyOf(i).Remove(e.counters[i]);
    e.counters[i] = nullptr;
  }
}

void RuleMetrics::Refresh() {
  static constexpr const char* kReasons[] = {"runtime", "cost", "memory", "event_budget"};
  const auto current = rules_.Current();
  active_version_->Set(static_cast<double>(current->version()));
  active_rules_->Set(static_cast<double>(current->size()));
  std::lock_guard lock(mu_);
  std::set<std::string_view> active;
  for (const Rule& rule : current->rules()) {
    active.insert(rule.id);
    const RuleStats& stats = *rule.stats;
    Exported& e = exported_[rule.id];
    if (e.stats != rule.stats) {
      e.stats = rule.stats;
      e.last = {};
    }
    const std::array<uint64_t, kN> now = {
        stats.evaluations.load(std::memory_order_relaxed),
        stats.matches.load(std::memory_order_relaxed),
        stats.errors.load(std::memory_order_relaxed),
        stats.cost_exceeded.load(std::memory_order_relaxed),
        stats.memory_exceeded.load(std::memory_order_relaxed),
        stats.event_budget_exceeded.load(std::memory_order_relaxed),
        stats.timed_nanos.load(std::memory_order_relaxed),
        stats.timed_evaluations.load(std::memory_order_relaxed)};
    for (int i = 0; i < kN; i++) {
      // Budget reasons are exported once they happen; the other series always.
      const bool lazy = i == kCost || i == kMemory || i == kEventBudget;
      if (e.counters[i] == nullptr && (!lazy || now[i] > 0)) {
        std::map<std::string, std::string> labels = {{"rule", rule.id}};
        if (i >= kErrors && i <= kEventBudget) labels["reason"] = kReasons[i - kErrors];
        e.counters[i] = &FamilyOf(i).Add(labels);
      }
      if (now[i] > e.last[i]) {
        const double delta = static_cast<double>(now[i] - e.last[i]);
        e.counters[i]->Increment(i == kNanos ? delta / 1e9 : delta);
        e.last[i] = now[i];
      }
    }
  }
  // The series of ids no longer active.
  for (auto it = exported_.begin(); it != exported_.end();) {
    if (active.contains(it->first)) {
      ++it;
      continue;
    }
    Unexport(it->second);
    it = exported_.erase(it);
  }
}

}  // namespace ecrm
