// The builtin functions and operators of the CEL engine: overload resolution by name/style/arity at
// compile time, dispatch on argument kinds at run time. Stateless; thread-safe.
#pragma once

#include <span>
#include <string_view>

#include "rules/cel/internal/ast.h"
#include "rules/cel/value.h"

namespace ecrm::cel::internal {

// Fn::kNone when no builtin has that name, style and arity. `nargs` excludes the receiver.
Fn LookupFunction(std::string_view name, bool receiver, size_t nargs);
// True when the function may be folded at compile time on constant arguments.
bool IsPure(Fn fn);

// Calls `fn` on already evaluated, non-error arguments (receiver first). `regex` is the
// precompiled pattern of matches() when it was constant, else nullptr.
Value CallFunction(Fn fn, std::span<const Value> args, const re2::RE2* regex);

// Operators used directly by the evaluator.
Value Add(const Value& a, const Value& b);
Value Sub(const Value& a, const Value& b);
Value Mul(const Value& a, const Value& b);
Value Div(const Value& a, const Value& b);
Value Mod(const Value& a, const Value& b);
Value Negate(const Value& a);
Value Relation(Fn fn, const Value& a, const Value& b);  // == != < <= > >=
Value In(const Value& elem, const Value& container);
Value Select(const Value& target, std::string_view field);  // target.field
Value HasField(const Value& target, std::string_view field);
Value Index(const Value& target, const Value& key);

Value NoSuchOverload();

}  // namespace ecrm::cel::internal
