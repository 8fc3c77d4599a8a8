#include "rules/rule_metrics.h"

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
                  .Help("Rule evaluations skipped by a runtime error (e.g. a missing field)")
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

void RuleMetrics::Refresh() {
  const auto current = rules_.Current();
  active_version_->Set(static_cast<double>(current->version()));
  active_rules_->Set(static_cast<double>(current->size()));
  std::lock_guard lock(mu_);
  for (const auto& [id, stats] : rules_.AllStats()) {
    auto it = exported_.find(id);
    if (it == exported_.end()) {
      const std::map<std::string, std::string> labels = {{"rule", id}};
      it = exported_
               .emplace(id, Exported{&evaluations_.Add(labels), &matches_.Add(labels),
                                     &errors_.Add(labels), &eval_seconds_.Add(labels),
                                     &timed_.Add(labels)})
               .first;
    }
    Exported& e = it->second;
    const uint64_t now[5] = {stats->evaluations.load(std::memory_order_relaxed),
                             stats->matches.load(std::memory_order_relaxed),
                             stats->errors.load(std::memory_order_relaxed),
                             stats->timed_nanos.load(std::memory_order_relaxed),
                             stats->timed_evaluations.load(std::memory_order_relaxed)};
    prometheus::Counter* counters[5] = {e.evaluations, e.matches, e.errors, e.eval_seconds,
                                        e.timed};
    for (int i = 0; i < 5; i++) {
      if (now[i] > e.last[i]) {
        const double delta = static_cast<double>(now[i] - e.last[i]);
        counters[i]->Increment(i == 3 ? delta / 1e9 : delta);
        e.last[i] = now[i];
      }
    }
  }
}

}  // namespace ecrm
