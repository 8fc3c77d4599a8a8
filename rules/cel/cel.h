// The CEL expression engine (Google's Common Expression Language, a documented subset; see
// docs/rules-cel.md). Expressions are compiled once against an Env (the declared variables) into an
// immutable Program, then evaluated many times against an Activation (how variables are read).
//
//   Env env({"event", "profile"});
//   std::vector<CompileError> errors;
//   absl::StatusOr<Program> p = Compile("event.type == 'track'", env, &errors);
//   Value v = p->Evaluate(my_activation);   // v.kind() == Kind::kBool, or Kind::kError
//
// Evaluation never parses, never throws and, for typical expressions, never allocates. Results may
// borrow from the Program's constants and from the Activation's inputs: use them while both live.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "rules/cel/value.h"

namespace ecrm::cel {

namespace internal {
struct ProgramData;
}

// Env: the variables an expression may reference, declared at compile time; each gets an index
// (its position in the list). Immutable; thread-safe. Programs do not keep a reference to it.
class Env {
 public:
  explicit Env(std::vector<std::string> variable_names);
  int IndexOf(std::string_view name) const;  // -1 when not declared
  const std::vector<std::string>& variable_names() const { return names_; }

 private:
  std::vector<std::string> names_;
};

// Activation: how the evaluator reads variables, implemented by the caller (the rule engine binds
// `event` and `profile` lazily from its own structs). The compiler collapses a chain of constant
// field selections on a variable (`event.properties.category`, also `event['properties']['x']`)
// into ONE Resolve call with the whole path. Must outlive the Evaluate call and every Value it
// returns that borrows from it. Evaluate calls it from the evaluating thread only.
class Activation {
 public:
  virtual ~Activation() = default;
  // The value of variable `var` (Env index) after selecting `path` field by field. A missing field
  // or key anywhere is an error Value ("no such key: <name>"; StaticError avoids allocating).
  // `path` points into the Program's immutable storage: the same span (data pointer and size)
  // on every call for the lifetime of the Program, so implementations may memoize per pointer.
  virtual Value Resolve(int var, std::span<const std::string> path) const = 0;
  // For has(var.path...): whether the LAST element of path is present; an error Value if an
  // intermediate element is missing (CEL semantics of has()).
  virtual Value Has(int var, std::span<const std::string> path) const = 0;
  // The evaluation time, read by `now` and `now()` (unless the Env declares a variable "now").
  // The default is an error: the caller injects its clock.
  virtual Value Now() const;
};

// ValueActivation: a generic Activation over Values (maps walked field by field); used by tests and
// the conformance suite. Owns its Values (which may themselves borrow) and hands out borrowed views
// of them, so results may borrow from it. Not thread-safe to mutate; const use from many threads
// is fine.
class ValueActivation : public Activation {
 public:
  explicit ValueActivation(const Env& env);
  // Binds a declared variable (ignored when `name` is not declared in the Env).
  void Set(std::string_view name, Value v);
  void SetNow(Value timestamp) { now_ = std::move(timestamp); }

  Value Resolve(int var, std::span<const std::string> path) const override;
  Value Has(int var, std::span<const std::string> path) const override;
  Value Now() const override;

 private:
  Env env_;
  std::vector<Value> values_;
  std::vector<bool> bound_;
  Value now_;
};

// A compile error with its 1-based line and column (in code points).
struct CompileError {
  int line = 0;
  int column = 0;
  std::string message;
};

// One variable read with a constant path, e.g. {"event", {"type"}}.
struct VariableRead {
  std::string variable;
  std::vector<std::string> path;
  bool operator==(const VariableRead&) const = default;
};

// Bounds on one evaluation, so that no expression can stall the caller or grow its memory. Several
// evaluations may share one budget (the rule engine spends one on a rule's condition and action
// values). The evaluator charges cost units as it goes: 1 for every node evaluated and every
// comprehension iteration, plus the work of strings, bytes, lists and maps (1 per 16 bytes or per
// element touched by concatenation, comparison, `in`, `contains`, `size`, conversions...; see
// docs/rules-cel.md). It also counts the bytes it allocates for intermediate values (strings,
// lists, maps). The first charge beyond a limit stops the evaluation: its result is the error
// kCostExceededMessage or kMemoryExceededMessage, which no `&&`, `||`, `all` or `exists` absorbs.
struct EvalBudget {
  enum class Exceeded : uint8_t { kNone, kCost, kMemory };
  uint64_t max_cost = 0;
  uint64_t max_bytes = 0;
  uint64_t cost = 0;   // spent so far (may stop short of max_cost when a limit was exceeded)
  uint64_t bytes = 0;  // allocated so far
  Exceeded exceeded = Exceeded::kNone;
};

// The budget of Program::Evaluate(activation) without an explicit one.
inline constexpr uint64_t kDefaultMaxCost = 1'000'000;
inline constexpr uint64_t kDefaultMaxBytes = 16 << 20;
inline constexpr const char* kCostExceededMessage = "evaluation cost budget exceeded";
inline constexpr const char* kMemoryExceededMessage = "evaluation memory budget exceeded";

// Program: a compiled expression. Immutable after Compile; cheap to copy (shares its nodes);
// Evaluate is const and thread-safe (many shards evaluate one Program concurrently). Independent
// of the Env it was compiled against.
class Program {
 public:
  // With the default budget (kDefaultMaxCost, kDefaultMaxBytes).
  Value Evaluate(const Activation& activation) const;
  // Charges `budget` (which may already hold the spending of earlier evaluations).
  Value Evaluate(const Activation& activation, EvalBudget& budget) const;

  // The source text it was compiled from.
  const std::string& source() const;
  // Every variable read with a constant path, in order of first appearance (no duplicates). A
  // variable read as a whole (e.g. iterated, or indexed by a computed key) has an empty path.
  const std::vector<VariableRead>& variables_read() const;
  // The string literals `variable.path` (e.g. event.type) must equal for the expression to be
  // true, as implied by ==, `in` on a literal list and || of those in the top-level conjunction.
  // Empty = any value may match (no constraint could be derived).
  std::vector<std::string> RequiredStrings(std::string_view variable,
                                           std::span<const std::string> path) const;

 private:
  friend absl::StatusOr<Program> Compile(std::string_view, const Env&, std::vector<CompileError>*);
  std::shared_ptr<const internal::ProgramData> data_;
};

// Limits on compiled expressions.
inline constexpr size_t kMaxExpressionBytes = 16 * 1024;
// matches(): the pattern must be a constant string, compiled once (RE2) with at most this program
// size, else a compile error; a text longer than kMaxMatchBytes is a runtime error.
inline constexpr int kMaxRegexProgramSize = 1000;
inline constexpr size_t kMaxMatchBytes = 16 * 1024;

// Compiles `expression` or returns InvalidArgument ("line:col: message" of the first error) and,
// when `errors` is not null, appends every error found (at least the first) with line/column.
absl::StatusOr<Program> Compile(std::string_view expression, const Env& env,
                                std::vector<CompileError>* errors);

// JSON bridge: objects -> maps with string keys, integers -> int (uint beyond int64's range),
// other numbers -> double, strings -> owned strings. (rules/cel/json.h takes a simdjson element.)
absl::StatusOr<Value> ValueFromJson(std::string_view json);

}  // namespace ecrm::cel
