// The CEL engine (rules/cel/) on arbitrary expression text: Compile either fails with positioned
// errors or gives a Program whose evaluation against a fixed activation (typical event and profile,
// lists, maps, a fixed `now`; the evaluator's own iteration budget bounds comprehensions) ends
// with a value or an error Value, the same on a second run. Supersedes
// tests/rules/cel_fuzz_test.cc (its seeds, the conformance expressions, are the corpus).
#include <string>

#include "rules/cel/cel.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

using namespace ecrm::cel;

Value Json(std::string_view json) {
  auto v = ValueFromJson(json);
  FUZZ_CHECK(v.ok(), "bad activation JSON");
  return *std::move(v);
}

struct Fixture {
  Env env{{"event", "profile", "x", "y"}};
  ValueActivation act{env};
  Fixture() {
    act.Set("x", Json(R"({"l": [1, 2, 3], "m": {"a": 1}, "s": "str", "d": 1.5})"));
    act.Set("y", Json(R"([{"a": 1}, [], "z", null, true, 2.5, -1])"));
    act.Set("event", Json(R"({"type": "track", "event": "Product Viewed",
        "properties": {"category": "shoes", "price": 120.5,
                       "products": [{"price": 50.0}, {"price": 150.0}]}})"));
    act.Set("profile", Json(R"({"counters": {"shoe_views": 4}, "stats": {"page_views": 10},
        "traits": {"plan": "gold", "signup": "2025-11-01T00:00:00Z"},
        "segments": ["vip-2025", "newsletter"]})"));
    act.SetNow(Value::TimestampParts(1768478400, 0));  // 2026-01-15T12:00:00Z
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* f = new Fixture();
  const std::string_view expr(reinterpret_cast<const char*>(data), size);
  std::vector<CompileError> errors;
  auto program = Compile(expr, f->env, &errors);
  if (!program.ok()) {
    FUZZ_CHECK(!errors.empty(), "no error listed");
    for (const auto& e : errors) {
      FUZZ_CHECK(e.line >= 1 && e.column >= 1, "error at %d:%d", e.line, e.column);
      FUZZ_CHECK(!e.message.empty(), "an error without message");
    }
    return 0;
  }
  FUZZ_CHECK(program->source() == expr, "the source is not kept");
  for (const auto& read : program->variables_read()) {
    FUZZ_CHECK(f->env.IndexOf(read.variable) >= 0, "reads undeclared %s", read.variable.c_str());
    (void)program->RequiredStrings(read.variable, read.path);
  }
  const std::string first = program->Evaluate(f->act).DebugString();
  const std::string second = program->Evaluate(f->act).DebugString();
  FUZZ_CHECK(first == second, "two evaluations differ: %s vs %s", first.c_str(), second.c_str());
  return 0;
}
