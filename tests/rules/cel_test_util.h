// Helpers shared by the CEL engine's tests: compile-and-evaluate against a ValueActivation over a
// fixed Env (event, profile, x, y, now-less), and a fixed evaluation time.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "rules/cel/cel.h"

namespace ecrm::cel::testing {

inline Env TestEnv() { return Env({"event", "profile", "x", "y"}); }

inline Value Json(std::string_view json) {
  auto v = ValueFromJson(json);
  EXPECT_TRUE(v.ok()) << v.status();
  return v.ok() ? *v : Value::Error("bad json");
}

// Evaluates `expr` with x and y bound to the given JSON values, `event` and `profile` to a typical
// event and profile, and `now` at 2026-01-15T12:00:00Z. Returns the result's DebugString, or
// "compile: <line>:<col>: <message>" when it does not compile.
inline std::string Show(std::string_view expr, std::string_view x_json = "null",
                        std::string_view y_json = "null") {
  Env env = TestEnv();
  auto program = Compile(expr, env, nullptr);
  if (!program.ok()) return "compile: " + std::string(program.status().message());
  ValueActivation act(env);
  act.Set("x", Json(x_json));
  act.Set("y", Json(y_json));
  act.Set("event", Json(R"({"type": "track", "event": "Product Viewed",
      "properties": {"category": "shoes", "price": 120.5,
                     "products": [{"price": 50.0}, {"price": 150.0}]}})"));
  act.Set("profile", Json(R"({"counters": {"shoe_views": 4}, "stats": {"page_views": 10},
      "traits": {"plan": "gold", "signup": "2025-11-01T00:00:00Z"},
      "segments": ["vip-2025", "newsletter"]})"));
  act.SetNow(Value::TimestampParts(1768478400, 0));  // 2026-01-15T12:00:00Z
  return program->Evaluate(act).DebugString();
}

inline bool IsError(const std::string& shown) { return shown.starts_with("error("); }

}  // namespace ecrm::cel::testing
