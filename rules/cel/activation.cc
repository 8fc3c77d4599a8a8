#include "rules/cel/cel.h"
#include "rules/cel/internal/builtins.h"

namespace ecrm::cel {

ValueActivation::ValueActivation(const Env& env)
    : env_(env), values_(env.variable_names().size()), bound_(env.variable_names().size()) {}

void ValueActivation::Set(std::string_view name, Value v) {
  int i = env_.IndexOf(name);
  if (i < 0) return;
  values_[static_cast<size_t>(i)] = std::move(v);
  bound_[static_cast<size_t>(i)] = true;
}

Value ValueActivation::Now() const {
  if (now_.kind() == Kind::kTimestamp) return now_;
  return Activation::Now();
}

Value ValueActivation::Resolve(int var, std::span<const std::string> path) const {
  if (var < 0 || static_cast<size_t>(var) >= values_.size() || !bound_[static_cast<size_t>(var)]) {
    return Value::StaticError("unbound variable");
  }
  const Value* cur = &values_[static_cast<size_t>(var)];
  for (const std::string& field : path) {
    if (cur->kind() != Kind::kMap) return internal::Select(*cur, field);
    const Value* next = cur->AsMap().FindString(field);
    if (next == nullptr) return Value::Error("no such key: " + field);
    cur = next;
  }
  // Borrowed: the values live as long as this Activation (so the evaluator does not take them
  // for values built for the read, whose memory it counts).
  return cur->Borrow();
}

Value ValueActivation::Has(int var, std::span<const std::string> path) const {
  if (path.empty()) return Value::StaticError("has() needs a field");
  Value parent = Resolve(var, path.first(path.size() - 1));
  if (parent.is_error()) return parent;
  return internal::HasField(parent, path.back());
}

}  // namespace ecrm::cel
