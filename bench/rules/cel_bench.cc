// Evaluation time of typical ecrm rules with the CEL engine, against an Activation that reads
// straight from event/profile structs with borrowed values (as the rule engine does).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "rules/cel/cel.h"

namespace ecrm::cel {
namespace {

using Fields = std::vector<std::pair<std::string, Value>>;

const Value* Find(const Fields& fields, std::string_view name) {
  for (const auto& [k, v] : fields) {
    if (k == name) return &v;
  }
  return nullptr;
}

// event: {type, event, properties{...}}; profile: {counters{...}, stats{...}, traits{...},
// segments}
class BenchActivation : public Activation {
 public:
  BenchActivation() {
    for (double price : {20.0, 35.0, 50.0, 99.0, 150.0}) {
      products_.push_back(MapValue::Make({{Value::StringRef("price"), Value::Double(price)},
                                          {Value::StringRef("sku"), Value::StringRef("X-1")}}));
    }
    properties_ = {{"category", Value::StringRef("shoes")},
                   {"price", Value::Double(120.5)},
                   {"currency", Value::StringRef("EUR")},
                   {"products", Value::ListRef(&products_)}};
    stats_ = {{"page_views", Value::Int(10)},
              {"a", Value::Double(2.0)},
              {"b", Value::Double(1.5)},
              {"c", Value::Double(0.7)},
              {"d", Value::Double(3.0)}};
  }

  Value Resolve(int var, std::span<const std::string> path) const override {
    if (path.empty()) return Value::StaticError("whole-variable reads are not bound");
    const Value* v = nullptr;
    if (var == 0) {
      if (path[0] == "type") return path.size() == 1 ? Value::StringRef(type_) : Missing();
      if (path[0] == "event") return path.size() == 1 ? Value::StringRef(event_) : Missing();
      if (path[0] == "properties" && path.size() >= 2) v = Find(properties_, path[1]);
    } else if (path[0] == "stats" && path.size() >= 2) {
      v = Find(stats_, path[1]);
    }
    if (v == nullptr || path.size() > 2) return Missing();
    return v->Borrow();
  }
  Value Has(int, std::span<const std::string>) const override { return Value::Bool(false); }
  Value Now() const override { return Value::TimestampParts(1768478400, 0); }

 private:
  static Value Missing() { return Value::StaticError("no such key"); }
  std::string type_ = "track";
  std::string event_ = "Product Viewed";
  std::vector<Value> products_;
  Fields properties_, stats_;
};

void Run(benchmark::State& state, const char* expr) {
  Env env({"event", "profile"});
  auto program = Compile(expr, env, nullptr);
  if (!program.ok()) {
    state.SkipWithError(std::string(program.status().message()).c_str());
    return;
  }
  BenchActivation act;
  if (program->Evaluate(act).is_error()) {
    state.SkipWithError(program->Evaluate(act).DebugString().c_str());
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(program->Evaluate(act));
}

void BM_EventType(benchmark::State& s) { Run(s, "event.type == 'track'"); }
void BM_TypeAndProperty(benchmark::State& s) {
  Run(s,
      "event.type == 'track' && event.event == 'Product Viewed' && "
      "event.properties.category == 'shoes'");
}
void BM_InList(benchmark::State& s) {
  Run(s, "event.properties.category in ['boots', 'sandals', 'sneakers', 'shoes']");
}
void BM_SigmoidScore(benchmark::State& s) {
  Run(s, "sigmoid(0.4 * double(profile.stats.page_views) - 2.0)");
}
void BM_DecisionTreeDepth4(benchmark::State& s) {
  Run(s,
      "profile.stats.a < 3.5 ? (profile.stats.b < 1.0 ? (profile.stats.c < 0.5 ? "
      "(profile.stats.d < 1.0 ? 0.1 : 0.2) : (profile.stats.d < 2.0 ? 0.3 : 0.4)) : "
      "(profile.stats.c < 1.0 ? (profile.stats.d < 4.0 ? 0.5 : 0.6) : 0.7)) : 0.9");
}
void BM_ExistsOver5Products(benchmark::State& s) {
  Run(s, "event.properties.products.exists(p, p.price > 100.0)");
}
void BM_Compile(benchmark::State& state) {
  Env env({"event", "profile"});
  for (auto _ : state) {
    benchmark::DoNotOptimize(Compile(
        "event.type == 'track' && event.properties.category in ['boots', 'shoes']", env, nullptr));
  }
}

// 100 rules over 10 event types (plus 10 rules without a type constraint), indexed by the event
// type each requires (Program::RequiredStrings); one "track" event evaluates its 9 + 10 rules.
void BM_HundredRulesIndexed(benchmark::State& state) {
  Env env({"event", "profile"});
  const char* shapes[] = {
      "event.type == '%s' && event.properties.category == 'shoes'",
      "event.type == '%s' && event.properties.price > 100.0",
      "event.type in ['%s', 'x'] && profile.stats.page_views >= 3",
      "event.type == '%s' && sigmoid(0.4 * double(profile.stats.page_views) - 2.0) > 0.5",
      "event.type == '%s' && event.properties.products.exists(p, p.price > 100.0)",
      "event.type == '%s' && event.properties.category in ['boots', 'shoes', 'sandals']",
      "event.type == '%s' && event.event.startsWith('Product')",
      "event.type == '%s' && (profile.stats.a < 3.5 ? 0.2 : 0.9) > 0.5",
      "event.type == '%s' && event.properties.currency == 'EUR'",
  };
  const char* types[] = {"track", "page",  "identify", "screen", "group",
                         "alias", "click", "view",     "buy",    "login"};
  std::map<std::string, std::vector<Program>> by_type;
  std::vector<Program> any;
  for (const char* type : types) {
    for (const char* shape : shapes) {
      char expr[256];
      std::snprintf(expr, sizeof(expr), shape, type);
      Program p = *Compile(expr, env, nullptr);
      std::vector<std::string> required =
          p.RequiredStrings("event", std::vector<std::string>{"type"});
      if (required.empty()) {
        any.push_back(p);
      } else {
        for (const std::string& t : required) by_type[t].push_back(p);
      }
    }
  }
  for (int i = 0; i < 10; ++i) {
    any.push_back(*Compile("profile.stats.page_views > " + std::to_string(i), env, nullptr));
  }
  BenchActivation act;
  size_t evaluated = 0;
  for (auto _ : state) {
    const std::vector<Program>& typed = by_type["track"];
    for (const Program& p : typed) benchmark::DoNotOptimize(p.Evaluate(act));
    for (const Program& p : any) benchmark::DoNotOptimize(p.Evaluate(act));
    evaluated = typed.size() + any.size();
  }
  state.counters["rules_evaluated"] = static_cast<double>(evaluated);
}

// Adversarial rules (docs/rules.md#limits): the inputs an event may carry (a 400-element list, a
// 16 KiB string) and expressions that spend them as fast as they can. Each is evaluated as the
// rule engine does, within RuleBudget's defaults: 40,000 units per rule, 200,000 per event.
class AdversarialActivation : public Activation {
 public:
  AdversarialActivation() {
    for (int i = 0; i < 400; i++) list_.push_back(Value::Double(i));
    std::string text;  // a/b, so that a regex over it keeps its automaton busy
    for (int i = 0; i < 16 * 1024; i++) text += "ab"[(i * 7919) % 3 == 0];
    s_ = text;
    s2_ = text;
    a_ = std::string(16 * 1024, 'a');
    needle_ = std::string(1024, 'a') + "b";
  }
  Value Resolve(int var, std::span<const std::string> path) const override {
    if (var != 0 || path.size() != 2 || path[0] != "properties") return Missing();
    if (path[1] == "list") return Value::ListRef(&list_);
    if (path[1] == "s") return Value::StringRef(s_);
    if (path[1] == "s2") return Value::StringRef(s2_);
    if (path[1] == "a") return Value::StringRef(a_);
    if (path[1] == "needle") return Value::StringRef(needle_);
    return Missing();
  }
  Value Has(int, std::span<const std::string>) const override { return Value::Bool(false); }

 private:
  static Value Missing() { return Value::StaticError("no such key"); }
  std::vector<Value> list_;
  std::string s_, s2_, a_, needle_;
};

constexpr uint64_t kRuleCost = 40'000, kRuleBytes = 1 << 20, kEventCost = 200'000;

Value EvaluateRule(const Program& p, const Activation& act, uint64_t* event_left) {
  EvalBudget budget{.max_cost = std::min(kRuleCost, *event_left), .max_bytes = kRuleBytes};
  Value v = p.Evaluate(act, budget);
  *event_left -= std::min(*event_left, budget.cost);
  return v;
}

// 30 rules that each run a million iterations: before the cost budget, each stopped at 100,000
// comprehension iterations (~8 ms); now each stops at 40,000 units and all of them at 200,000.
void BM_Adversarial30Rules(benchmark::State& state) {
  Env env({"event", "profile"});
  std::vector<Program> rules;
  for (int i = 0; i < 30; i++) {
    rules.push_back(
        *Compile("event.properties.list.all(a, event.properties.list.all(b, a + b >= -" +
                     std::to_string(i) + ".0))",
                 env, nullptr));
  }
  AdversarialActivation act;
  for (auto _ : state) {
    uint64_t event_left = kEventCost;
    for (const Program& p : rules) benchmark::DoNotOptimize(EvaluateRule(p, act, &event_left));
  }
}

// One rule at its budget, by the kind of work it spends it on.
void BM_WorstRule(benchmark::State& state, const char* expr) {
  Env env({"event", "profile"});
  auto program = Compile(expr, env, nullptr);
  if (!program.ok()) {
    state.SkipWithError(std::string(program.status().message()).c_str());
    return;
  }
  AdversarialActivation act;
  uint64_t left = kEventCost;
  const Value v = EvaluateRule(*program, act, &left);
  state.SetLabel(v.DebugString());
  for (auto _ : state) {
    uint64_t event_left = kEventCost;
    benchmark::DoNotOptimize(EvaluateRule(*program, act, &event_left));
  }
  state.counters["units"] = static_cast<double>(kEventCost - left);
}
BENCHMARK_CAPTURE(BM_WorstRule, nodes,
                  "event.properties.list.all(a, event.properties.list.all(b, a * 2.0 + b >= 0.0))");
BENCHMARK_CAPTURE(BM_WorstRule, string_equal,
                  "event.properties.list.all(a, event.properties.s == event.properties.s2)");
BENCHMARK_CAPTURE(BM_WorstRule, string_size,
                  "event.properties.list.all(a, size(event.properties.s) > 0)");
BENCHMARK_CAPTURE(
    BM_WorstRule, contains,
    "event.properties.list.all(a, !event.properties.a.contains(event.properties.needle))");
BENCHMARK_CAPTURE(BM_WorstRule, concat,
                  "event.properties.list.all(a, size(event.properties.s + 'x') > 0)");
BENCHMARK_CAPTURE(BM_WorstRule, list_equal,
                  "event.properties.list.all(a, event.properties.list == event.properties.list)");
BENCHMARK_CAPTURE(BM_WorstRule, list_in,
                  "event.properties.list.all(a, !(-1.0 in event.properties.list))");
BENCHMARK_CAPTURE(
    BM_WorstRule, map_filter,
    "event.properties.list.map(a, event.properties.list.filter(b, b > a)).size() > 0");
BENCHMARK_CAPTURE(BM_WorstRule, regex_small,
                  "event.properties.list.all(a, !event.properties.s.matches('a[ab]{12}c'))");
BENCHMARK_CAPTURE(BM_WorstRule, regex_large,
                  "event.properties.list.all(a, !event.properties.s.matches('a[ab]{300}c'))");
BENCHMARK_CAPTURE(BM_WorstRule, regex_alternation,
                  "event.properties.list.all(a, !event.properties.s.matches("
                  "'(a|b|ab|ba|aab|abb|bba|baa){40}c'))");

BENCHMARK(BM_Adversarial30Rules)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EventType);
BENCHMARK(BM_TypeAndProperty);
BENCHMARK(BM_InList);
BENCHMARK(BM_SigmoidScore);
BENCHMARK(BM_DecisionTreeDepth4);
BENCHMARK(BM_ExistsOver5Products);
BENCHMARK(BM_Compile);
BENCHMARK(BM_HundredRulesIndexed);

}  // namespace
}  // namespace ecrm::cel
