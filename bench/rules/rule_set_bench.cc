// Cost of a rule set per event, end to end on the shard's path: the event-type/name index, CEL
// evaluation reading the Event and Profile structs (and the event's properties JSON), and the
// actions. Sets of 10, 100 and 1,000 "typical" rules: 70 % track rules on one of 20 event names
// with a property test, 15 % page rules, 15 % profile rules (gated or not by an event type).
#include <benchmark/benchmark.h>

#include <string>

#include "profiler/profile_updater.h"
#include "profiler/rule_target.h"
#include "rules/rule_eval.h"

namespace ecrm {
namespace {

// `gated`: the profile-only rules also require an identify event, so the index skips them for a
// track event (the "most rules are not evaluated at all" case); else they run for every event.
std::string RuleSetJson(int n, bool gated) {
  std::string json = R"({"rules":[)";
  for (int i = 0; i < n; i++) {
    if (i) json += ",";
    const std::string id = "r" + std::to_string(i);
    std::string when, then;
    if (i % 20 < 14) {  // 70 %: track rules on one of 20 event names
      when = "event.type == 'track' && event.event == 'Event " + std::to_string(i % 20) +
             "' && event.properties.category == 'c" + std::to_string(i % 7) + "'";
      then = R"({"increment":{"counter":"c)" + std::to_string(i) + R"("}})";
    } else if (i % 20 < 17) {  // 15 %: page rules
      when = "event.type == 'page' && event.properties.path.startsWith('/shop/" +
             std::to_string(i % 5) + "')";
      then = R"({"add_segment":"s)" + std::to_string(i) + R"("})";
    } else {  // 15 %: profile-only rules, evaluated for every event
      when = std::string(gated ? "event.type == 'identify' && " : "") + "has(profile.counters.c" +
             std::to_string(i % 14) + ") && profile.counters.c" + std::to_string(i % 14) +
             " >= 3.0";
      then = R"({"set_score":{"name":"p)" + std::to_string(i) +
             R"x(","value":"sigmoid(0.3 * double(profile.stats.events) - 1.0)"}})x";
    }
    json += R"({"id":")" + id + R"(","when":")" + when + R"(","then":[)" + then + "]}";
  }
  return json + "]}";
}

void BM_ApplyRules(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto set = RuleSet::Compile(RuleSetJson(n, state.range(1) != 0), 1, nullptr);
  if (!set.ok()) {
    state.SkipWithError(std::string(set.status().message()).c_str());
    return;
  }
  ProfileUpdater updater(ProfilerConfig{});
  Profile profile;
  profile.id = "0001-00000000000000aa";
  profile.stats.events = 12;
  profile.counters["c3"] = 4;
  Event event;
  event.type = EventType::kTrack;
  event.event = "Event 3";
  event.timestamp = 1'700'000'000'000;
  event.properties = R"({"category":"c3","product_id":"p1","price":19.99,"name":"A shoe"})";
  RuleJsonScratch scratch;
  int64_t evaluated = 0;
  for (auto _ : state) {
    ProfileRuleTarget target(event, profile, updater, scratch);
    evaluated += ApplyRules(**set, "track", event.event, target).evaluated;
  }
  state.counters["rules_evaluated_per_event"] =
      static_cast<double>(evaluated) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_ApplyRules)
    ->ArgNames({"rules", "gated"})
    ->Args({10, 0})
    ->Args({100, 0})
    ->Args({1000, 0})
    ->Args({10, 1})
    ->Args({100, 1})
    ->Args({1000, 1});

}  // namespace
}  // namespace ecrm
