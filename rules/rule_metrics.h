// RuleMetrics: exports the per-rule counts of a RuleRegistry as Prometheus counters labelled by
// rule id (a bounded label: rule ids come from data scientists, never from visitors), plus the
// active version. Shards count in RuleStats (relaxed atomics); Refresh(), called before each
// /metrics scrape, moves the deltas into the counters. Only the rules of the active set have
// series: Refresh removes those of ids a push (or rollback) left out. Errors carry a `reason`:
// runtime (always exported), and cost, memory, event_budget (a budget of RuleBudget exceeded;
// exported from the first time it happens). Owned by the app; the registry must outlive it.
// Refresh() takes a mutex: scrapes may come from several HTTP threads.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "rules/rule_registry.h"

namespace ecrm {

class RuleMetrics {
 public:
  RuleMetrics(prometheus::Registry& registry, const RuleRegistry& rules);
  void Refresh();
  // Pushes and validations that were rejected as invalid / accepted.
  void PushAccepted() { pushes_ok_->Increment(); }
  void PushRejected() { pushes_invalid_->Increment(); }

 private:
  // The counts of one rule, in this order, and the series they go to.
  enum Count { kEvaluations, kMatches, kErrors, kCost, kMemory, kEventBudget, kNanos, kTimed, kN };
  struct Exported {
    // A new stats object (the id left and came back) starts from 0. Held, so that its address is
    // not reused by another while we compare.
    std::shared_ptr<const RuleStats> stats;
    std::array<prometheus::Counter*, kN> counters = {};  // null: not exported yet
    std::array<uint64_t, kN> last = {};
  };
  prometheus::Family<prometheus::Counter>& FamilyOf(int count);
  void Unexport(Exported& e);
  const RuleRegistry& rules_;
  prometheus::Family<prometheus::Counter>& evaluations_;
  prometheus::Family<prometheus::Counter>& matches_;
  prometheus::Family<prometheus::Counter>& errors_;
  prometheus::Family<prometheus::Counter>& eval_seconds_;
  prometheus::Family<prometheus::Counter>& timed_;
  prometheus::Gauge* active_version_;
  prometheus::Gauge* active_rules_;
  prometheus::Counter* pushes_ok_;
  prometheus::Counter* pushes_invalid_;
  std::mutex mu_;
  std::map<std::string, Exported> exported_;  // guarded by mu_
};

}  // namespace ecrm
