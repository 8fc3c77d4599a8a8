// Operators of the CEL engine: arithmetic, relations, `in`, selection and indexing (see
// builtins.h). Stateless; thread-safe.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "rules/cel/internal/builtins.h"
#include "rules/cel/internal/time_util.h"

namespace ecrm::cel::internal {
namespace {

Value Overflow() { return Value::StaticError("integer overflow"); }

}  // namespace

Value Add(const Value& a, const Value& b) {
  Kind k = a.kind();
  if (k != b.kind()) {
    if (k == Kind::kTimestamp && b.kind() == Kind::kDuration) {
      return MakeTimestamp(a.seconds() + b.seconds(), int64_t{a.nanos()} + b.nanos());
    }
    if (k == Kind::kDuration && b.kind() == Kind::kTimestamp) return Add(b, a);
    return NoSuchOverload();
  }
  switch (k) {
    case Kind::kInt: {
      int64_t r;
      if (__builtin_add_overflow(a.AsInt(), b.AsInt(), &r)) return Overflow();
      return Value::Int(r);
    }
    case Kind::kUint: {
      uint64_t r;
      if (__builtin_add_overflow(a.AsUint(), b.AsUint(), &r)) return Overflow();
      return Value::Uint(r);
    }
    case Kind::kDouble:
      return Value::Double(a.AsDouble() + b.AsDouble());
    case Kind::kString:
    case Kind::kBytes: {
      std::string s;
      s.reserve(a.AsString().size() + b.AsString().size());
      s.append(a.AsString()).append(b.AsString());
      return k == Kind::kString ? Value::String(std::move(s)) : Value::Bytes(std::move(s));
    }
    case Kind::kList: {
      auto out = std::make_shared<std::vector<Value>>(a.AsList());
      out->insert(out->end(), b.AsList().begin(), b.AsList().end());
      return Value::List(std::move(out));
    }
    case Kind::kDuration:
      return MakeDuration(a.seconds() + b.seconds(), int64_t{a.nanos()} + b.nanos());
    default:
      return NoSuchOverload();
  }
}

Value Sub(const Value& a, const Value& b) {
  Kind k = a.kind();
  if (k == Kind::kTimestamp && b.kind() == Kind::kDuration) {
    return MakeTimestamp(a.seconds() - b.seconds(), int64_t{a.nanos()} - b.nanos());
  }
  if (k == Kind::kTimestamp && b.kind() == Kind::kTimestamp) {
    return MakeDuration(a.seconds() - b.seconds(), int64_t{a.nanos()} - b.nanos());
  }
  if (k != b.kind()) return NoSuchOverload();
  switch (k) {
    case Kind::kInt: {
      int64_t r;
      if (__builtin_sub_overflow(a.AsInt(), b.AsInt(), &r)) return Overflow();
      return Value::Int(r);
    }
    case Kind::kUint: {
      uint64_t r;
      if (__builtin_sub_overflow(a.AsUint(), b.AsUint(), &r)) return Overflow();
      return Value::Uint(r);
    }
    case Kind::kDouble:
      return Value::Double(a.AsDouble() - b.AsDouble());
    case Kind::kDuration:
      return MakeDuration(a.seconds() - b.seconds(), int64_t{a.nanos()} - b.nanos());
    default:
      return NoSuchOverload();
  }
}

Value Mul(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return NoSuchOverload();
  switch (a.kind()) {
    case Kind::kInt: {
      int64_t r;
      if (__builtin_mul_overflow(a.AsInt(), b.AsInt(), &r)) return Overflow();
      return Value::Int(r);
    }
    case Kind::kUint: {
      uint64_t r;
      if (__builtin_mul_overflow(a.AsUint(), b.AsUint(), &r)) return Overflow();
      return Value::Uint(r);
    }
    case Kind::kDouble:
      return Value::Double(a.AsDouble() * b.AsDouble());
    default:
      return NoSuchOverload();
  }
}

Value Div(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return NoSuchOverload();
  switch (a.kind()) {
    case Kind::kInt:
      if (b.AsInt() == 0) return Value::StaticError("division by zero");
      if (a.AsInt() == INT64_MIN && b.AsInt() == -1) return Overflow();
      return Value::Int(a.AsInt() / b.AsInt());
    case Kind::kUint:
      if (b.AsUint() == 0) return Value::StaticError("division by zero");
      return Value::Uint(a.AsUint() / b.AsUint());
    case Kind::kDouble:
      return Value::Double(a.AsDouble() / b.AsDouble());
    default:
      return NoSuchOverload();
  }
}

Value Mod(const Value& a, const Value& b) {
  if (a.kind() != b.kind()) return NoSuchOverload();
  switch (a.kind()) {
    case Kind::kInt:
      if (b.AsInt() == 0) return Value::StaticError("modulus by zero");
      if (a.AsInt() == INT64_MIN && b.AsInt() == -1) return Overflow();
      return Value::Int(a.AsInt() % b.AsInt());
    case Kind::kUint:
      if (b.AsUint() == 0) return Value::StaticError("modulus by zero");
      return Value::Uint(a.AsUint() % b.AsUint());
    default:
      return NoSuchOverload();
  }
}

Value Negate(const Value& a) {
  switch (a.kind()) {
    case Kind::kInt:
      if (a.AsInt() == INT64_MIN) return Overflow();
      return Value::Int(-a.AsInt());
    case Kind::kDouble:
      return Value::Double(-a.AsDouble());
    case Kind::kDuration:
      return MakeDuration(-a.seconds(), -int64_t{a.nanos()});
    default:
      return NoSuchOverload();
  }
}

Value Relation(Fn fn, const Value& a, const Value& b) {
  if (fn == Fn::kEq) return Value::Bool(Equal(a, b));
  if (fn == Fn::kNe) return Value::Bool(!Equal(a, b));
  int c = Compare(a, b);
  if (c == 3) return NoSuchOverload();
  if (c == 2) return Value::Bool(false);
  switch (fn) {
    case Fn::kLt:
      return Value::Bool(c < 0);
    case Fn::kLe:
      return Value::Bool(c <= 0);
    case Fn::kGt:
      return Value::Bool(c > 0);
    default:
      return Value::Bool(c >= 0);
  }
}

Value In(const Value& elem, const Value& container) {
  if (container.kind() == Kind::kList) {
    for (const Value& v : container.AsList()) {
      if (Equal(elem, v)) return Value::Bool(true);
    }
    return Value::Bool(false);
  }
  if (container.kind() == Kind::kMap) {
    return Value::Bool(container.AsMap().Find(elem) != nullptr);
  }
  return NoSuchOverload();
}

Value Select(const Value& target, std::string_view field) {
  if (target.kind() == Kind::kMap) {
    const Value* v = target.AsMap().FindString(field);
    if (v == nullptr) return Value::Error("no such key: " + std::string(field));
    return *v;
  }
  if (target.is_error()) return target;
  return Value::Error("type '" + std::string(KindName(target.kind())) +
                      "' does not support field selection");
}

Value HasField(const Value& target, std::string_view field) {
  if (target.kind() == Kind::kMap) return Value::Bool(target.AsMap().FindString(field) != nullptr);
  if (target.is_error()) return target;
  return Value::Error("type '" + std::string(KindName(target.kind())) +
                      "' does not support field selection");
}

Value Index(const Value& target, const Value& key) {
  if (target.kind() == Kind::kList) {
    const auto& list = target.AsList();
    int64_t i;
    switch (key.kind()) {
      case Kind::kInt:
        i = key.AsInt();
        break;
      case Kind::kUint:
        i = key.AsUint() > static_cast<uint64_t>(INT64_MAX) ? -1
                                                            : static_cast<int64_t>(key.AsUint());
        break;
      case Kind::kDouble: {
        double d = key.AsDouble();
        if (d != std::trunc(d) || !(std::fabs(d) < 9.0e18)) {
          return Value::StaticError("invalid list index");
        }
        i = static_cast<int64_t>(d);
        break;
      }
      default:
        return NoSuchOverload();
    }
    if (i < 0 || static_cast<uint64_t>(i) >= list.size()) {
      return Value::StaticError("index out of range");
    }
    return list[static_cast<size_t>(i)];
  }
  if (target.kind() == Kind::kMap) {
    Kind k = key.kind();
    if (k != Kind::kString && k != Kind::kInt && k != Kind::kUint && k != Kind::kBool &&
        k != Kind::kDouble) {
      return Value::StaticError("unsupported key type");
    }
    const Value* v = target.AsMap().Find(key);
    if (v == nullptr) {
      return Value::Error("no such key: " +
                          (k == Kind::kString ? std::string(key.AsString()) : key.DebugString()));
    }
    return *v;
  }
  return NoSuchOverload();
}

}  // namespace ecrm::cel::internal
