// The evaluator: a recursive walk over the resolved node vector. Comprehension variables live in a
// small fixed frame on the stack; no node is mutated, so one Program serves many threads.
#include <algorithm>
#include <array>
#include <cstddef>
#include <new>

#include "rules/cel/internal/builtins.h"
#include "rules/cel/internal/program_data.h"

namespace ecrm::cel::internal {
namespace {

// Evaluator: one evaluation of one Program on the calling thread's stack. Borrows the nodes, the
// Activation and the comprehension frame, which all outlive it.
class Evaluator {
 public:
  Evaluator(const ProgramData& d, const Activation& act, Value* slots)
      : nodes_(d.nodes.data()), act_(act), slots_(slots) {}

  Value Eval(int32_t i) const {
    const Node& n = nodes_[i];
    switch (n.op) {
      case Op::kConst:
        return n.view;
      case Op::kVar:
        return act_.Resolve(n.var, n.path);
      case Op::kSlot:
        return slots_[n.var];
      case Op::kCall:
        if (n.kids.size() == 2) return Binary(n);
        return Call(n);
      case Op::kAnd:
      case Op::kOr:
        return Logic(n);
      case Op::kCond: {
        Value c = Eval(n.kids[0]);
        if (c.kind() == Kind::kBool) return Eval(n.kids[c.AsBool() ? 1 : 2]);
        return c.is_error() ? c : NoSuchOverload();
      }
      case Op::kInConst:
        return InConst(n);
      default:
        return Cold(n);
    }
  }

 private:
  // The less frequent node kinds, out of line to keep Eval's stack frame small.
  [[gnu::noinline]] Value Cold(const Node& n) const {
    switch (n.op) {
      case Op::kNow:
        return act_.Now();
      case Op::kSelect: {
        Value t = Eval(n.kids[0]);
        if (t.is_error()) return t;
        return Select(t, n.name);
      }
      case Op::kHas: {
        if (n.var >= 0) return act_.Has(n.var, n.path);
        Value t = Eval(n.kids[0]);
        return HasField(t, n.name);
      }
      case Op::kIndex: {
        Value t = Eval(n.kids[0]);
        if (t.is_error()) return t;
        Value k = Eval(n.kids[1]);
        if (k.is_error()) return k;
        return Index(t, k);
      }
      case Op::kNot: {
        Value v = Eval(n.kids[0]);
        if (v.kind() == Kind::kBool) return Value::Bool(!v.AsBool());
        return v.is_error() ? v : NoSuchOverload();
      }
      case Op::kNeg: {
        Value v = Eval(n.kids[0]);
        return v.is_error() ? v : Negate(v);
      }
      case Op::kList: {
        auto list = std::make_shared<std::vector<Value>>();
        list->reserve(n.kids.size());
        for (int32_t k : n.kids) {
          Value v = Eval(k);
          if (v.is_error()) return v;
          list->push_back(std::move(v));
        }
        return Value::List(std::move(list));
      }
      case Op::kMap: {
        std::vector<MapValue::Entry> entries;
        entries.reserve(n.kids.size() / 2);
        for (size_t k = 0; k + 1 < n.kids.size(); k += 2) {
          Value key = Eval(n.kids[k]);
          if (key.is_error()) return key;
          Value v = Eval(n.kids[k + 1]);
          if (v.is_error()) return v;
          entries.emplace_back(std::move(key), std::move(v));
        }
        return MapValue::Make(std::move(entries));
      }
      case Op::kComp:
        return Comprehension(n);
      default:
        break;
    }
    return Value::StaticError("internal error: unresolved node");
  }

  Value InConst(const Node& n) const {
    Value e = Eval(n.kids[0]);
    if (e.is_error()) return e;
    if (n.strings != nullptr) {
      if (e.kind() != Kind::kString) return Value::Bool(false);
      const auto& s = *n.strings;
      std::string_view key = e.AsString();
      if (s.size() <= 8) return Value::Bool(std::find(s.begin(), s.end(), key) != s.end());
      return Value::Bool(std::binary_search(s.begin(), s.end(), key));
    }
    return In(e, n.view);
  }

  // Two-argument calls (operators), with inline fast paths for same-kind comparisons.
  Value Binary(const Node& n) const {
    // Constant operands are read in place (no recursion, no copy).
    Value ta, tb;
    const Node& na = nodes_[n.kids[0]];
    const Value* pa = &na.view;
    if (na.op != Op::kConst) {
      ta = Eval(n.kids[0]);
      if (ta.is_error()) return ta;
      pa = &ta;
    }
    const Node& nb = nodes_[n.kids[1]];
    const Value* pb = &nb.view;
    if (nb.op != Op::kConst) {
      tb = Eval(n.kids[1]);
      if (tb.is_error()) return tb;
      pb = &tb;
    }
    const Value& a = *pa;
    const Value& b = *pb;
    const Fn fn = n.fn;
    if (a.kind() == b.kind() && fn >= Fn::kEq && fn <= Fn::kGe) {
      if (a.kind() == Kind::kString && (fn == Fn::kEq || fn == Fn::kNe)) {
        return Value::Bool((a.AsString() == b.AsString()) == (fn == Fn::kEq));
      }
      if (a.kind() == Kind::kDouble) return CompareNumbers(fn, a.AsDouble(), b.AsDouble());
      if (a.kind() == Kind::kInt) return CompareNumbers(fn, a.AsInt(), b.AsInt());
    }
    switch (fn) {
      case Fn::kEq:
      case Fn::kNe:
      case Fn::kLt:
      case Fn::kLe:
      case Fn::kGt:
      case Fn::kGe:
        return Relation(fn, a, b);
      case Fn::kAdd:
        return Add(a, b);
      case Fn::kSub:
        return Sub(a, b);
      case Fn::kMul:
        return Mul(a, b);
      case Fn::kDiv:
        return Div(a, b);
      default: {
        const Value args[2] = {a, b};
        return CallFunction(fn, args, n.regex.get());
      }
    }
  }

  template <typename T>
  static Value CompareNumbers(Fn fn, T x, T y) {
    switch (fn) {
      case Fn::kEq:
        return Value::Bool(x == y);
      case Fn::kNe:
        return Value::Bool(x != y);
      case Fn::kLt:
        return Value::Bool(x < y);
      case Fn::kLe:
        return Value::Bool(x <= y);
      case Fn::kGt:
        return Value::Bool(x > y);
      default:
        return Value::Bool(x >= y);
    }
  }

  Value Logic(const Node& n) const {
    // CEL's commutative && and ||: a decisive operand wins over an error on either side.
    const bool decisive = n.op == Op::kOr;
    Value l = Eval(n.kids[0]);
    if (l.kind() == Kind::kBool && l.AsBool() == decisive) return l;
    Value r = Eval(n.kids[1]);
    if (r.kind() == Kind::kBool && r.AsBool() == decisive) return r;
    if (l.is_error()) return l;
    if (r.is_error()) return r;
    if (l.kind() != Kind::kBool || r.kind() != Kind::kBool) return NoSuchOverload();
    return Value::Bool(!decisive);
  }

  Value Call(const Node& n) const {
    const size_t count = n.kids.size();
    if (count == 1) {
      Value a = Eval(n.kids[0]);
      if (a.is_error()) return a;
      return CallFunction(n.fn, std::span<const Value>(&a, 1), n.regex.get());
    }
    if (count <= 4) {
      std::array<Value, 4> args;
      for (size_t k = 0; k < count; ++k) {
        args[k] = Eval(n.kids[k]);
        if (args[k].is_error()) return args[k];
      }
      return CallFunction(n.fn, std::span<const Value>(args.data(), count), n.regex.get());
    }
    std::vector<Value> args;
    args.reserve(count);
    for (int32_t k : n.kids) {
      args.push_back(Eval(k));
      if (args.back().is_error()) return args.back();
    }
    return CallFunction(n.fn, args, n.regex.get());
  }

  Value Comprehension(const Node& n) const {
    Value range = Eval(n.kids[0]);
    if (range.is_error()) return range;
    const std::vector<Value>* list = nullptr;
    const std::vector<MapValue::Entry>* entries = nullptr;
    size_t count;
    if (range.kind() == Kind::kList) {
      list = &range.AsList();
      count = list->size();
    } else if (range.kind() == Kind::kMap) {
      entries = &range.AsMap().entries();
      count = entries->size();
    } else {
      return Value::StaticError("expression does not support iteration");
    }
    // Elements of a borrowed range (a constant, or an input of the Activation) are borrowed too:
    // no shared refcounts touched per element.
    const bool borrow = !range.owns_storage();
    auto element = [&](size_t k) -> Value {
      const Value& v = list != nullptr ? (*list)[k] : (*entries)[k].first;
      return borrow ? v.Borrow() : v;
    };
    if (count > kMaxIterations - iterations_) {
      return Value::StaticError("evaluation budget exceeded (too many comprehension iterations)");
    }
    iterations_ += count;
    Value& slot = slots_[n.var];
    const int32_t body = n.kids[1];
    switch (n.comp) {
      case CompKind::kAll:
      case CompKind::kExists: {
        const bool decisive = n.comp == CompKind::kExists;
        Value error;
        for (size_t k = 0; k < count; ++k) {
          slot = element(k);
          Value r = Eval(body);
          if (r.kind() == Kind::kBool) {
            if (r.AsBool() == decisive) return r;
          } else if (!error.is_error()) {
            error = r.is_error() ? r : NoSuchOverload();
          }
        }
        return error.is_error() ? error : Value::Bool(!decisive);
      }
      case CompKind::kExistsOne: {
        int64_t found = 0;
        for (size_t k = 0; k < count; ++k) {
          slot = element(k);
          Value r = Eval(body);
          if (r.kind() != Kind::kBool) return r.is_error() ? r : NoSuchOverload();
          found += r.AsBool() ? 1 : 0;
        }
        return Value::Bool(found == 1);
      }
      case CompKind::kMap:
      case CompKind::kMapFilter:
      case CompKind::kFilter: {
        auto out = std::make_shared<std::vector<Value>>();
        for (size_t k = 0; k < count; ++k) {
          slot = element(k);
          if (n.comp != CompKind::kMap) {
            Value f = Eval(n.comp == CompKind::kFilter ? body : n.kids[2]);
            if (f.kind() != Kind::kBool) return f.is_error() ? f : NoSuchOverload();
            if (!f.AsBool()) continue;
            if (n.comp == CompKind::kFilter) {
              out->push_back(slot);
              continue;
            }
          }
          Value r = Eval(body);
          if (r.is_error()) return r;
          out->push_back(std::move(r));
        }
        return Value::List(std::move(out));
      }
    }
    return Value::StaticError("internal error: bad comprehension");
  }

  const Node* nodes_;
  const Activation& act_;
  Value* slots_;
  mutable size_t iterations_ = 0;  // comprehension iterations so far, bounded by kMaxIterations
};

}  // namespace

Value Evaluate(const ProgramData& data, const Activation& activation) {
  if (data.num_slots == 0) return Evaluator(data, activation, nullptr).Eval(data.root);
  // Only the slots the program uses are constructed.
  alignas(Value) std::byte storage[kMaxSlots * sizeof(Value)];
  auto* frame = reinterpret_cast<Value*>(storage);
  for (int i = 0; i < data.num_slots; ++i) new (&frame[i]) Value();
  Value result = Evaluator(data, activation, frame).Eval(data.root);
  for (int i = 0; i < data.num_slots; ++i) frame[i].~Value();
  return result;
}

}  // namespace ecrm::cel::internal
