// Rule evaluation within RuleBudget: a rule that spends too much time (cost) or memory is stopped,
// counted by reason, and its actions are not applied while the other rules still run; all the
// rules of one event share the event's cost budget; `matches` with a pattern that is not a literal
// is refused at push; and the per-rule metric series follow the active set (removed ids lose
// theirs, kept ids keep their counts).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "prometheus/registry.h"
#include "rules/rule_eval.h"
#include "rules/rule_metrics.h"
#include "rules/rule_registry.h"
#include "tests/testutil/temp_dir.h"

namespace ecrm {
namespace {

// An event (JSON) and an empty profile; records the segments added.
class TestTarget final : public RuleTarget {
 public:
  explicit TestTarget(std::string_view event_json) : env_({"event", "profile", "now"}), act_(env_) {
    auto event = cel::ValueFromJson(event_json);
    EXPECT_TRUE(event.ok());
    act_.Set("event", *event);
    act_.Set("profile", *cel::ValueFromJson("{}"));
  }
  cel::Value Resolve(int var, std::span<const std::string> path) const override {
    return act_.Resolve(var, path);
  }
  cel::Value Has(int var, std::span<const std::string> path) const override {
    return act_.Has(var, path);
  }
  bool AlreadyFired(const std::string&, OnceScope) const override { return false; }
  void MarkFired(const std::string&) override {}
  void AddSegment(const std::string& name, int64_t) override { segments.push_back(name); }
  void RemoveSegment(const std::string&) override {}
  void Increment(const std::string&, double, int64_t) override {}
  void SetTrait(const std::string&, const cel::Value&) override {}
  void SetScore(const std::string&, double) override {}
  void AddOffer(const std::string&, int64_t) override {}

  std::vector<std::string> segments;

 private:
  cel::Env env_;
  cel::ValueActivation act_;
};

std::string RuleJson(const std::string& id, const std::string& when) {
  return R"({"id":")" + id + R"(","when":")" + when + R"(","then":[{"add_segment":")" + id +
         R"("}]})";
}

std::string Set(const std::vector<std::string>& rules) {
  std::string out = R"({"rules":[)";
  for (size_t i = 0; i < rules.size(); i++) out += (i ? "," : "") + rules[i];
  return out + "]}";
}

std::shared_ptr<const RuleSet> MustCompile(const std::string& json, const RuleBudget& budget = {}) {
  std::vector<RuleError> errors;
  auto set = RuleSet::Compile(json, 1, &errors, nullptr, nullptr, budget);
  EXPECT_TRUE(set.ok()) << (errors.empty() ? "" : errors[0].message);
  return set.ok() ? *set : RuleSet::Empty();
}

// An event whose properties hold a list of n numbers and a string of `bytes` bytes.
std::string Event(int n, size_t bytes = 16) {
  std::string list = "[0";
  for (int i = 1; i < n; i++) list += "," + std::to_string(i);
  return R"({"type":"track","properties":{"list":)" + list + R"(],"s":")" +
         std::string(bytes, 'x') + R"("}})";
}

const Rule& Find(const RuleSet& set, const std::string& id) {
  for (const auto& r : set.rules()) {
    if (r.id == id) return r;
  }
  ADD_FAILURE() << id;
  return set.rules().front();
}

TEST(RuleBudget, AnExpensiveRuleIsStoppedAndTheOthersStillApply) {
  // A million iterations (the old evaluator allowed 100,000 of them per rule, ~8 ms each).
  auto set = MustCompile(Set(
      {RuleJson("cheap-before", "true"),
       RuleJson("slow", "event.properties.list.all(a, event.properties.list.all(b, a + b >= 0))"),
       RuleJson("cheap-after", "event.properties.list.size() > 0")}));
  TestTarget target(Event(1000));
  RuleRunStats run = ApplyRules(*set, "track", "", target);
  EXPECT_EQ(target.segments, (std::vector<std::string>{"cheap-before", "cheap-after"}));
  EXPECT_EQ(run.evaluated, 3);
  EXPECT_EQ(run.errors, 1);
  EXPECT_EQ(run.over_budget, 1);
  const Rule& slow = Find(*set, "slow");
  EXPECT_EQ(slow.stats->cost_exceeded.load(), 1u);
  EXPECT_EQ(slow.stats->errors.load(), 0u);  // not a runtime error: its own reason
  EXPECT_EQ(slow.stats->memory_exceeded.load(), 0u);
  EXPECT_EQ(Find(*set, "cheap-after").stats->event_budget_exceeded.load(), 0u);
}

TEST(RuleBudget, TheRulesOfOneEventShareTheEventsBudget) {
  // 30 rules of ~3,000 units each against an event budget of 20,000: the first ones run, the
  // rest are stopped with the event's reason, none with its own.
  std::vector<std::string> rules;
  for (int i = 0; i < 30; i++) {
    rules.push_back(RuleJson("r" + std::to_string(i), "event.properties.list.all(a, a >= 0)"));
  }
  auto set = MustCompile(Set(rules), RuleBudget{.rule_cost = 40'000, .event_cost = 20'000});
  TestTarget target(Event(1000));
  RuleRunStats run = ApplyRules(*set, "track", "", target);
  EXPECT_GE(target.segments.size(), 4u);
  EXPECT_LE(target.segments.size(), 7u);
  EXPECT_EQ(run.over_budget, 30 - static_cast<int>(target.segments.size()));
  uint64_t own = 0, event = 0;
  for (const auto& rule : set->rules()) {
    own += rule.stats->cost_exceeded.load();
    event += rule.stats->event_budget_exceeded.load();
  }
  EXPECT_EQ(own, 0u);
  EXPECT_EQ(event, 30u - target.segments.size());
  EXPECT_EQ(Find(*set, "r29").stats->event_budget_exceeded.load(), 1u);
  EXPECT_EQ(Find(*set, "r0").stats->matches.load(), 1u);
}

TEST(RuleBudget, ARuleThatBuildsTooMuchIsStoppedByItsMemoryBudget) {
  // 100 x 100 strings of 8 KiB: 80 MiB without the bound. The cost budget is out of the way.
  auto set = MustCompile(Set({RuleJson("grow",
                                       "event.properties.list.map(a, event.properties.list.map(b, "
                                       "event.properties.s + event.properties.s)).size() > 0"),
                              RuleJson("after", "true")}),
                         RuleBudget{.rule_cost = 1'000'000'000, .event_cost = 1'000'000'000});
  TestTarget target(Event(100, 4096));
  RuleRunStats run = ApplyRules(*set, "track", "", target);
  EXPECT_EQ(target.segments, (std::vector<std::string>{"after"}));
  EXPECT_EQ(run.over_budget, 1);
  EXPECT_EQ(Find(*set, "grow").stats->memory_exceeded.load(), 1u);
  EXPECT_EQ(Find(*set, "grow").stats->cost_exceeded.load(), 0u);
}

// Dry runs report the reason in the rule's error.
class Errors final : public RuleObserver {
 public:
  void OnRule(const Rule& rule, bool, std::string_view error,
              std::span<const cel::Value>) override {
    by_rule.emplace_back(rule.id + ": " + std::string(error));
  }
  std::vector<std::string> by_rule;
};

TEST(RuleBudget, DryRunsNameTheLimit) {
  auto set = MustCompile(
      Set({RuleJson("slow", "event.properties.list.all(a, event.properties.list.all(b, true))"),
           RuleJson("starved", "event.properties.list.all(a, true)")}),
      RuleBudget{.rule_cost = 40'000, .event_cost = 40'000});
  TestTarget target(Event(1000));
  Errors errors;
  ApplyRules(*set, "track", "", target, false, &errors);
  EXPECT_EQ(errors.by_rule,
            (std::vector<std::string>{"slow: evaluation cost budget exceeded",
                                      std::string("starved: ") + kEventBudgetExceededMessage}));
}

TEST(RuleBudget, MatchesWithAPatternThatIsNotALiteralIsRefusedAtPush) {
  std::vector<RuleError> errors;
  auto set = RuleSet::Compile(
      Set({RuleJson("ok", "event.properties.q.matches('^[a-z]+$')"),
           RuleJson("from-event", "event.properties.q.matches(event.properties.pattern)")}),
      1, &errors);
  ASSERT_FALSE(set.ok());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rule, "from-event");
  EXPECT_EQ(errors[0].field, "when");
  EXPECT_EQ(errors[0].line, 1);
  EXPECT_EQ(errors[0].column, 45);  // the last selection of event.properties.pattern
  EXPECT_EQ(errors[0].message, "matches: the pattern must be a string literal");
}

// The rule label of every series of the rule families, with its reason when it has one.
std::multiset<std::string> Series(prometheus::Registry& registry) {
  std::multiset<std::string> out;
  for (const auto& family : registry.Collect()) {
    if (!family.name.starts_with("ecrm_rule_") || family.name == "ecrm_rule_pushes_total") continue;
    for (const auto& metric : family.metric) {
      std::string rule, reason;
      for (const auto& label : metric.label) {
        if (label.name == "rule") rule = label.value;
        if (label.name == "reason") reason = label.value;
      }
      out.insert(family.name + "{" + rule + (reason.empty() ? "" : "," + reason) + "}");
    }
  }
  return out;
}

std::set<std::string> RuleIds(const std::multiset<std::string>& series) {
  std::set<std::string> ids;
  for (const auto& s : series) {
    const auto open = s.find('{');
    ids.insert(s.substr(open + 1, s.find_first_of(",}", open) - open - 1));
  }
  return ids;
}

TEST(RuleMetrics, OnlyTheActiveRulesHaveSeries) {
  testing::TempDir dir;
  auto store = KvStore::Open({.path = dir.Sub("db")});
  ASSERT_TRUE(store.ok());
  auto rules = RuleRegistry::Open(**store);
  ASSERT_TRUE(rules.ok());
  prometheus::Registry registry;
  RuleMetrics metrics(registry, **rules);

  auto push = [&](const std::string& prefix, int n, bool keep) {
    std::vector<std::string> set;
    if (keep) set.push_back(RuleJson("kept", "true"));
    for (int i = 0; i < n; i++) set.push_back(RuleJson(prefix + std::to_string(i), "true"));
    std::vector<RuleError> errors;
    ASSERT_TRUE((*rules)->Push(Set(set), &errors).ok());
    TestTarget target(Event(1));
    ApplyRules(*(*rules)->Current(), "track", "", target);
    metrics.Refresh();
  };
  // Five pushes of disjoint sets of 200 ids (and one id in all of them).
  for (const char* prefix : {"a", "b", "c", "d", "e"}) push(prefix, 200, true);
  auto series = Series(registry);
  std::set<std::string> expected = {"kept"};
  for (int i = 0; i < 200; i++) expected.insert("e" + std::to_string(i));
  EXPECT_EQ(RuleIds(series), expected);
  // Evaluations, matches, errors{runtime}, sampled seconds and sampled count for each id.
  EXPECT_EQ(series.size(), 201u * 5);
  EXPECT_EQ(series.count("ecrm_rule_errors_total{kept,runtime}"), 1u);
  EXPECT_EQ((*rules)->AllStats().size(), 201u);
  // The kept id kept its counts through the pushes.
  for (const auto& family : registry.Collect()) {
    if (family.name != "ecrm_rule_evaluations_total") continue;
    for (const auto& metric : family.metric) {
      if (metric.label[0].value == "kept") {
        EXPECT_EQ(metric.counter.value, 5.0);
      }
    }
  }

  // A rule over its budget gets an errors series with that reason; rolling back to a set
  // without it removes it again.
  std::vector<RuleError> errors;
  ASSERT_TRUE(
      (*rules)
          ->Push(Set({RuleJson("kept", "true"), RuleJson("slow",
                                                         "event.properties.list.all(a, "
                                                         "event.properties.list.all(b, true))")}),
                 &errors)
          .ok());
  TestTarget target(Event(1000));
  ApplyRules(*(*rules)->Current(), "track", "", target);
  metrics.Refresh();
  series = Series(registry);
  EXPECT_EQ(RuleIds(series), (std::set<std::string>{"kept", "slow"}));
  EXPECT_EQ(series.count("ecrm_rule_errors_total{slow,cost}"), 1u);
  EXPECT_EQ(series.count("ecrm_rule_errors_total{slow,memory}"), 0u);
  ASSERT_TRUE((*rules)->Rollback(1).ok());
  metrics.Refresh();
  series = Series(registry);
  expected = {"kept"};
  for (int i = 0; i < 200; i++) expected.insert("a" + std::to_string(i));
  EXPECT_EQ(RuleIds(series), expected);
  EXPECT_EQ(series.size(), 201u * 5);
}

}  // namespace
}  // namespace ecrm
