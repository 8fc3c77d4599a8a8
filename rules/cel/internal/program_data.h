// ProgramData: what a compiled Program shares between its copies: the resolved node vector and the
// facts the checker derived. Immutable after Compile; read concurrently by evaluating threads.
#pragma once

#include <string>
#include <vector>

#include "rules/cel/cel.h"
#include "rules/cel/internal/ast.h"

namespace ecrm::cel::internal {

// Comprehension variables live in a fixed frame on the evaluator's stack.
inline constexpr int kMaxSlots = 12;

struct ProgramData {
  std::string source;
  std::vector<Node> nodes;
  int32_t root = -1;
  int num_slots = 0;  // comprehension nesting depth
  std::vector<std::string> variable_names;
  std::vector<VariableRead> reads;
};

// Resolves the parsed nodes in place (see ast.h). Appends errors as (byte offset, message).
void Check(const Env& env, ProgramData* data, std::vector<std::pair<int32_t, std::string>>* errors);

// Evaluates data.root, charging `budget` (see EvalBudget).
Value Evaluate(const ProgramData& data, const Activation& activation, EvalBudget& budget);

}  // namespace ecrm::cel::internal
