// A bounded, deterministic mutation test of the CEL engine: mutates the conformance expressions
// (insert / delete / replace bytes, splice tokens from other expressions, duplicate spans), then
// compiles and evaluates each mutant against a fixed activation. It must never crash, hang or trip
// a sanitizer (run it under the ASan build too). Bounded by a case count and about 1.5 s.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "tests/rules/cel_test_util.h"

namespace ecrm::cel {
namespace {

std::vector<std::string> Seeds() {
  std::vector<std::string> seeds = {
      "event.type == 'track' && event.properties.category == 'shoes'",
      "sigmoid(0.4 * double(profile.stats.page_views) - 2.0)",
      "has(profile.traits.plan) && profile.traits.plan in ['gold', 'platinum']",
      "now - timestamp(profile.traits.signup) > duration('720h')",
      "event.properties.products.exists(p, p.price > 100.0)",
      "x < 3.5 ? (y < 1.0 ? 0.2 : 0.7) : 0.9",
      "x.l.map(i, i * 2).filter(j, j > 2).size() == min(x.l)",
  };
  simdjson::dom::parser parser;
  auto dir = std::filesystem::path(__FILE__).parent_path() / "cel-conformance";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    simdjson::padded_string json = simdjson::padded_string::load(entry.path().string()).value();
    simdjson::dom::element doc = parser.parse(json).value();
    simdjson::dom::array tests = doc["tests"].get_array().value();
    for (simdjson::dom::element t : tests) {
      seeds.emplace_back(t["expr"].get_string().value());
    }
  }
  std::sort(seeds.begin(), seeds.end());  // directory order is not deterministic
  return seeds;
}

std::string Mutate(std::string s, const std::vector<std::string>& seeds, std::mt19937_64& rng) {
  static const char kAlphabet[] = "()[]{}.,:?!<>=&|+-*/%'\"`\\ \nabxyz019_uUe\xc3\xa9";
  auto pick = [&](size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng() % n); };
  int rounds = 1 + static_cast<int>(rng() % 4);
  for (int r = 0; r < rounds; ++r) {
    switch (rng() % 6) {
      case 0:
        s.insert(pick(s.size() + 1), 1, kAlphabet[pick(sizeof(kAlphabet) - 1)]);
        break;
      case 1:
        if (!s.empty()) s.erase(pick(s.size()), 1 + pick(3));
        break;
      case 2:
        if (!s.empty()) s[pick(s.size())] = static_cast<char>(rng());
        break;
      case 3: {  // splice a token of another expression
        const std::string& o = seeds[pick(seeds.size())];
        size_t at = pick(o.size() + 1), len = 1 + pick(12);
        s.insert(pick(s.size() + 1), o.substr(at, len));
        break;
      }
      case 4: {  // duplicate a span (deepens nesting)
        size_t at = pick(s.size() + 1), len = pick(s.size() - at + 1);
        s.insert(at, s.substr(at, len));
        break;
      }
      default:
        s = s.substr(0, pick(s.size() + 1));
        break;
    }
  }
  return s;
}

TEST(CelFuzz, MutatedConformanceExpressionsNeverCrash) {
  std::vector<std::string> seeds = Seeds();
  ASSERT_GT(seeds.size(), 500u);
  Env env({"event", "profile", "x", "y"});
  ValueActivation act(env);
  act.Set("x", testing::Json(R"({"l": [1, 2, 3], "m": {"a": 1}, "s": "str", "d": 1.5})"));
  act.Set("y", testing::Json(R"([{"a": 1}, [], "z", null, true, 2.5, -1])"));
  act.Set("event", testing::Json(R"({"type": "track", "properties": {"category": "shoes"}})"));
  act.Set("profile", testing::Json(R"({"traits": {"plan": "gold"}})"));
  act.SetNow(Value::TimestampParts(1768478400, 0));
  std::mt19937_64 rng(20261122);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  int cases = 0, compiled = 0, errors = 0;
  for (; cases < 200000; ++cases) {
    if ((cases & 255) == 0 && std::chrono::steady_clock::now() > deadline) break;
    std::string expr = Mutate(seeds[rng() % seeds.size()], seeds, rng);
    std::vector<CompileError> errs;
    auto p = Compile(expr, env, &errs);
    if (!p.ok()) {
      ASSERT_FALSE(errs.empty()) << expr;
      ASSERT_GE(errs[0].line, 1) << expr;
      ASSERT_GE(errs[0].column, 1) << expr;
      continue;
    }
    ++compiled;
    Value v = p->Evaluate(act);
    errors += v.is_error() ? 1 : 0;
    (void)v.DebugString();
  }
  std::printf("fuzz: %d mutants, %d compiled, %d evaluated to an error\n", cases, compiled, errors);
  EXPECT_GT(cases, 1000);
}

}  // namespace
}  // namespace ecrm::cel
