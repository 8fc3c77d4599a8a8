// The evaluation budget of the CEL engine (cel::EvalBudget): every node, comprehension iteration
// and byte of string/list work is charged, so that an expression without any loop still stops;
// the bytes allocated for intermediate values are bounded; a budget error is never absorbed by
// && / || / exists; and matches() only takes constant, bounded patterns on bounded texts.
#include <gtest/gtest.h>

#include <string>

#include "tests/rules/cel_test_util.h"

namespace ecrm::cel {
namespace {

using testing::Json;
using testing::TestEnv;

struct Result {
  std::string shown;
  EvalBudget budget;
};

// Evaluates `expr` with x and y bound to JSON values, within the given limits.
Result Within(std::string_view expr, std::string_view x_json, std::string_view y_json,
              uint64_t max_cost, uint64_t max_bytes = 1 << 20) {
  Env env = TestEnv();
  auto program = Compile(expr, env, nullptr);
  if (!program.ok()) return {"compile: " + std::string(program.status().message()), {}};
  ValueActivation act(env);
  act.Set("x", Json(x_json));
  act.Set("y", Json(y_json));
  Result r;
  r.budget.max_cost = max_cost;
  r.budget.max_bytes = max_bytes;
  r.shown = program->Evaluate(act, r.budget).DebugString();
  return r;
}

std::string JsonString(size_t n, char c = 'a') { return "\"" + std::string(n, c) + "\""; }

std::string JsonList(int n) {
  std::string out = "[0";
  for (int i = 1; i < n; i++) out += "," + std::to_string(i);
  return out + "]";
}

TEST(CelBudget, NodesAndIterationsAreCharged) {
  Result r = Within("1 + 2 * 3 == 7", "null", "null", 100);
  EXPECT_EQ(r.shown, "true");  // folded at compile time: one node
  EXPECT_EQ(r.budget.cost, 1u);
  r = Within("x.all(a, a >= 0)", JsonList(100), "null", 10'000);
  EXPECT_EQ(r.shown, "true");
  EXPECT_GE(r.budget.cost, 300u);  // per element: the iteration, the body and its operand
  EXPECT_LE(r.budget.cost, 500u);
  r = Within("x.all(a, x.all(b, a + b >= 0))", JsonList(100), "null", 10'000);
  EXPECT_EQ(r.shown, "error(evaluation cost budget exceeded)");
  EXPECT_EQ(r.budget.exceeded, EvalBudget::Exceeded::kCost);
  EXPECT_EQ(r.budget.cost, 10'000u);  // stopped at the limit, not after the loop
}

TEST(CelBudget, StringAndListWorkIsChargedWithoutAnyLoop) {
  // No comprehension and five nodes, but megabytes of work: the bytes are what it costs.
  const std::string mb = JsonString(1 << 20);
  Result r = Within("x == y", mb, mb, 1'000'000);
  EXPECT_EQ(r.shown, "true");
  EXPECT_GE(r.budget.cost, (1u << 20) / 16);
  r = Within("x == y && x.contains(y) && size(x) > 0", mb, mb, 50'000);
  EXPECT_EQ(r.shown, "error(evaluation cost budget exceeded)");
  // contains() is charged for the needle at each position of the haystack.
  r = Within("x.contains(y)", JsonString(16'000), JsonString(8'000, 'b'), 50'000);
  EXPECT_EQ(r.budget.exceeded, EvalBudget::Exceeded::kCost);
  // Deep comparison of lists costs their elements.
  const std::string big = JsonList(20'000);
  r = Within("x == y", big, big, 5'000);
  EXPECT_EQ(r.budget.exceeded, EvalBudget::Exceeded::kCost);
  r = Within("1 in x", "[" + std::string(big) + "]", "null", 5'000);  // nested: counted deep
  EXPECT_EQ(r.budget.exceeded, EvalBudget::Exceeded::kCost);
}

TEST(CelBudget, TheBudgetErrorIsNeverAbsorbed) {
  const std::string hundred = JsonList(100);
  // Each of these would be true if the exceeded operand were an ordinary error.
  for (const char* expr :
       {"x.all(a, x.all(b, true)) || true", "x.exists(a, x.all(b, x.all(c, true)))",
        "!x.all(a, x.all(b, x.all(c, true))) || x.size() > 0",
        "x.all(a, x.all(b, x.all(c, true))) && false"}) {
    Result r = Within(expr, hundred, "null", 2'000);
    EXPECT_EQ(r.shown, "error(evaluation cost budget exceeded)") << expr;
  }
  // ...but a decisive left side never evaluates the expensive right one.
  EXPECT_EQ(Within("true || x.all(a, x.all(b, true))", hundred, "null", 2'000).shown, "true");
  EXPECT_EQ(Within("x.size() > 0 || x.all(a, x.all(b, true))", hundred, "null", 2'000).shown,
            "true");
}

TEST(CelBudget, OneBudgetSpansSeveralEvaluations) {
  Env env = TestEnv();
  auto program = Compile("x.all(a, a >= 0)", env, nullptr);
  ASSERT_TRUE(program.ok());
  ValueActivation act(env);
  act.Set("x", Json(JsonList(100)));
  EvalBudget budget{.max_cost = 700, .max_bytes = 1 << 20};  // ~300 per evaluation
  EXPECT_EQ(program->Evaluate(act, budget).DebugString(), "true");
  EXPECT_EQ(program->Evaluate(act, budget).DebugString(), "true");
  EXPECT_EQ(program->Evaluate(act, budget).DebugString(), "error(evaluation cost budget exceeded)");
  EXPECT_EQ(budget.cost, 700u);
  // Once exceeded, it stays exceeded.
  EXPECT_EQ(program->Evaluate(act, budget).DebugString(), "error(evaluation cost budget exceeded)");
}

TEST(CelBudget, IntermediateValuesAreBoundedInBytes) {
  // 10,000 strings of 2 KiB (20 MiB) from a 100-element list and a 1 KiB string: without the
  // memory bound this builds all of it (the cost budget is set out of the way).
  const std::string hundred = JsonList(100);
  const std::string kib = JsonString(1024);
  Result r = Within("x.map(a, x.map(b, y + y)).size() > 0", hundred, kib, 1'000'000'000);
  EXPECT_EQ(r.shown, "error(evaluation memory budget exceeded)");
  EXPECT_EQ(r.budget.exceeded, EvalBudget::Exceeded::kMemory);
  EXPECT_LE(r.budget.bytes, (1u << 20) + 4096);  // stopped at the first allocation beyond
  // Concatenation in a list literal, per element.
  r = Within("x.map(a, [y + y + y + y + y + y + y + y]).size()", JsonList(1000), kib,
             1'000'000'000);
  EXPECT_EQ(r.budget.exceeded, EvalBudget::Exceeded::kMemory);
  // List building is counted too.
  r = Within("x.map(a, x.map(b, [a, b, a, b])).size()", JsonList(1000), "null", 1'000'000'000);
  EXPECT_EQ(r.budget.exceeded, EvalBudget::Exceeded::kMemory);
  // A small result fits.
  r = Within("x.map(a, y + 'b').size()", hundred, kib, 1'000'000);
  EXPECT_EQ(r.shown, "100");
  EXPECT_GE(r.budget.bytes, 100u * 1025);
}

TEST(CelBudget, MatchesTakesOnlyConstantBoundedPatternsOnBoundedTexts) {
  EXPECT_EQ(Within("x.matches(y)", "\"abc\"", "\"b\"", 1000).shown,
            "compile: 1:11: matches: the pattern must be a string literal");
  EXPECT_EQ(Within("matches(x, 'a' + y)", "\"abc\"", "\"b\"", 1000).shown,
            "compile: 1:16: matches: the pattern must be a string literal");
  EXPECT_TRUE(
      Within("x.matches('a{1000}b{1000}')", "\"ab\"", "null", 1000)
          .shown.starts_with("compile: 1:11: regular expression too complex (program size "));
  EXPECT_EQ(Within("x.matches('^[a-z]+@[a-z]+[.][a-z]{2,}$')", "\"a@b.io\"", "null", 1000).shown,
            "true");
  EXPECT_EQ(Within("x.matches('b$')", JsonString(16 * 1024 + 1), "null", 1'000'000).shown,
            "error(matches: the text is longer than 16384 bytes)");
  Result r = Within("x.matches('b$')", JsonString(16 * 1024), "null", 1'000'000);
  EXPECT_EQ(r.shown, "false");
  EXPECT_GE(r.budget.cost, 16u * 1024 / 16);  // the text is charged
}

}  // namespace
}  // namespace ecrm::cel
