// The evaluator: a recursive walk over the resolved node vector. Comprehension variables live in a
// small fixed frame on the stack; no node is mutated, so one Program serves many threads. Every
// node, comprehension iteration and piece of string/list work is charged to an EvalBudget before
// it is done (see cel.h), so that an evaluation stops within its budget of time and memory.
#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <new>

#include "rules/cel/internal/builtins.h"
#include "rules/cel/internal/program_data.h"

namespace ecrm::cel::internal {
namespace {

// Cost units: one per node or iteration, one per kWorkBytesPerUnit bytes of string work, and
// kElementWorkBytes bytes' worth for every list element or map key/value touched. Calibrated with
// bench/rules/cel_bench.cc (BM_Budget*): the most expensive expression a budget lets through
// costs at most about 25 ns per unit on a 2 vCPU AMD EPYC VM.
constexpr uint64_t kWorkBytesPerUnit = 16;
constexpr uint64_t kElementWorkBytes = 8;
// matches(): RE2's cost per byte grows with the size of the compiled program (when its DFA gives
// way to the NFA); each unit of text work is multiplied by 1 + ProgramSize() / this.
constexpr uint64_t kRegexProgramPerFactor = 16;

// What a value reaches: list elements and map keys/values, and bytes of strings/bytes, counted
// deep until `cap` work bytes are reached (the walk costs what it measures, so it stops there).
struct Size {
  uint64_t elements = 0;
  uint64_t bytes = 0;
  uint64_t work() const { return elements * kElementWorkBytes + bytes; }
  uint64_t memory() const { return elements * sizeof(Value) + bytes; }
};

void Measure(const Value& v, uint64_t cap, Size* s) {
  switch (v.kind()) {
    case Kind::kString:
    case Kind::kBytes:
      s->bytes += v.AsString().size();
      return;
    case Kind::kList:
      for (const Value& e : v.AsList()) {
        if (s->work() > cap) return;
        s->elements++;
        Measure(e, cap, s);
      }
      return;
    case Kind::kMap:
      for (const auto& [k, e] : v.AsMap().entries()) {
        if (s->work() > cap) return;
        s->elements += 2;
        Measure(k, cap, s);
        Measure(e, cap, s);
      }
      return;
    default:
      return;
  }
}

bool IsText(const Value& v) { return v.kind() == Kind::kString || v.kind() == Kind::kBytes; }

// Evaluator: one evaluation of one Program on the calling thread's stack. Borrows the nodes, the
// Activation and the comprehension frame, which all outlive it.
class Evaluator {
 public:
  Evaluator(const ProgramData& d, const Activation& act, Value* slots, EvalBudget& budget)
      : nodes_(d.nodes.data()),
        act_(act),
        slots_(slots),
        budget_(budget),
        remaining_(budget.exceeded == EvalBudget::Exceeded::kNone && budget.max_cost > budget.cost
                       ? budget.max_cost - budget.cost
                       : 0),
        start_(remaining_) {}
  // Adds what this evaluation spent to the budget.
  ~Evaluator() { budget_.cost += start_ - remaining_ - unspent_; }

  // The result of the root: the budget's error once it was exceeded, whatever absorbed it.
  Value Run(int32_t root) const {
    Value v = Eval(root);
    if (budget_.exceeded != EvalBudget::Exceeded::kNone) return Exceeded();
    return v;
  }

  Value Eval(int32_t i) const {
    if (!Charge(1)) return Exceeded();
    const Node& n = nodes_[i];
    switch (n.op) {
      case Op::kConst:
        return n.view;
      case Op::kVar: {
        Value v = act_.Resolve(n.var, n.path);
        // A value the Activation built for this read (e.g. a list from the event's JSON) costs
        // what it holds; borrowed inputs cost nothing to hand out.
        if (v.owns_storage() && !ChargeValue(v)) return Exceeded();
        return v;
      }
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
  // Budget accounting. Charge(n) spends n cost units; ChargeBytes(n) counts n bytes allocated
  // (and the work of filling them). Both return false, and stop the evaluation, at the first
  // charge beyond the budget: every later Charge fails, so the walk unwinds at once.
  bool Charge(uint64_t units) const {
    if (units <= remaining_) [[likely]] {
      remaining_ -= units;
      return true;
    }
    return Stop(EvalBudget::Exceeded::kCost);
  }
  bool ChargeBytes(uint64_t bytes) const {
    budget_.bytes += bytes;
    if (budget_.bytes > budget_.max_bytes) return Stop(EvalBudget::Exceeded::kMemory);
    return Charge(bytes / kWorkBytesPerUnit);
  }
  [[gnu::noinline]] bool Stop(EvalBudget::Exceeded why) const {
    // Beyond the cost budget, all of it counts as spent; beyond the memory budget, what was.
    if (why == EvalBudget::Exceeded::kMemory) unspent_ += remaining_;
    remaining_ = 0;
    if (budget_.exceeded == EvalBudget::Exceeded::kNone) budget_.exceeded = why;
    return false;
  }
  Value Exceeded() const {
    return Value::StaticError(budget_.exceeded == EvalBudget::Exceeded::kMemory
                                  ? kMemoryExceededMessage
                                  : kCostExceededMessage);
  }
  // The most work bytes worth measuring: one unit beyond what is left.
  uint64_t WorkCap() const { return (remaining_ + 1) * kWorkBytesPerUnit; }
  uint64_t Work(const Value& v) const {
    if (IsText(v)) return v.AsString().size();
    if (v.kind() != Kind::kList && v.kind() != Kind::kMap) return 0;
    Size s;
    Measure(v, WorkCap(), &s);
    return s.work();
  }
  // A value built for us: its memory and the work of building it.
  bool ChargeValue(const Value& v) const {
    Size s;
    Measure(v, WorkCap(), &s);
    budget_.bytes += s.memory();
    if (budget_.bytes > budget_.max_bytes) return Stop(EvalBudget::Exceeded::kMemory);
    return Charge(s.work() / kWorkBytesPerUnit);
  }
  bool ChargeWork(uint64_t work_bytes) const { return Charge(work_bytes / kWorkBytesPerUnit); }

  // What a builtin costs beyond its node, from its `count` evaluated arguments (the first two are
  // `a` and `b`; `b` is `a` when there is one), charged before it runs.
  bool ChargeCall(const Node& n, size_t count, const Value& a, const Value& b) const {
    switch (n.fn) {
      case Fn::kAdd: {
        if (IsText(a) && b.kind() == a.kind()) {
          return ChargeBytes(a.AsString().size() + b.AsString().size());
        }
        if (a.kind() == Kind::kList && b.kind() == Kind::kList) {
          return ChargeBytes((a.AsList().size() + b.AsList().size()) * sizeof(Value));
        }
        return true;
      }
      case Fn::kEq:
      case Fn::kNe:
      case Fn::kLt:
      case Fn::kLe:
      case Fn::kGt:
      case Fn::kGe:
        return ChargeWork(std::min(Work(a), Work(b)));
      case Fn::kIn: {
        const Value& c = b;
        if (c.kind() == Kind::kList) return ChargeWork(Work(c));
        if (c.kind() == Kind::kMap) {
          const uint64_t scan = IsText(a) ? 0 : c.AsMap().size() * kElementWorkBytes;
          return ChargeWork(Work(a) + scan);
        }
        return true;
      }
      case Fn::kSize:
        return IsText(a) ? ChargeWork(a.AsString().size()) : true;
      case Fn::kStartsWith:
      case Fn::kEndsWith:
        return IsText(a) && IsText(b)
                   ? ChargeWork(std::min(a.AsString().size(), b.AsString().size()))
                   : true;
      case Fn::kContains:
        // std::string_view::find compares the needle at each candidate position.
        return IsText(a) && IsText(b)
                   ? ChargeWork(a.AsString().size() * (1 + b.AsString().size() / 64))
                   : true;
      case Fn::kMatches: {
        if (!IsText(a) || a.AsString().size() > kMaxMatchBytes) return true;  // an error
        const uint64_t factor = 1 + (n.regex ? static_cast<uint64_t>(n.regex->ProgramSize()) : 0) /
                                        kRegexProgramPerFactor;
        return ChargeWork(a.AsString().size() * factor);
      }
      case Fn::kString:
        if (a.kind() == Kind::kBytes) return ChargeBytes(a.AsString().size());
        return a.kind() == Kind::kString ? true : ChargeBytes(48);
      case Fn::kBytes:
        return a.kind() == Kind::kString ? ChargeBytes(a.AsString().size()) : true;
      case Fn::kInt:
      case Fn::kUint:
      case Fn::kDouble:
      case Fn::kBool:
      case Fn::kTimestamp:
      case Fn::kDuration:
        return IsText(a) ? ChargeWork(a.AsString().size()) : true;
      case Fn::kMin:
      case Fn::kMax:
        return count == 1 ? ChargeWork(Work(a)) : ChargeWork(count * kElementWorkBytes);
      default:
        // Time-zone getters: a zone name is looked up (cached by absl after the first time).
        if (n.fn >= Fn::kGetFullYear && n.fn <= Fn::kGetMilliseconds && count == 2 && IsText(b)) {
          return Charge(8) && ChargeWork(b.AsString().size());
        }
        return true;
    }
  }

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
        if (t.kind() == Kind::kMap &&
            !ChargeWork(k.kind() == Kind::kString ? k.AsString().size()
                                                  : t.AsMap().size() * kElementWorkBytes)) {
          return Exceeded();
        }
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
        if (!ChargeBytes(n.kids.size() * sizeof(Value))) return Exceeded();
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
        // MapValue::Make checks every key against the previous ones.
        const uint64_t count = n.kids.size() / 2;
        if (!ChargeBytes(count * 2 * sizeof(MapValue::Entry)) || !Charge(count * count / 32)) {
          return Exceeded();
        }
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
      if (!ChargeWork(e.AsString().size())) return Exceeded();
      const auto& s = *n.strings;
      std::string_view key = e.AsString();
      if (s.size() <= 8) return Value::Bool(std::find(s.begin(), s.end(), key) != s.end());
      return Value::Bool(std::binary_search(s.begin(), s.end(), key));
    }
    if (!ChargeCall(n, 2, e, n.view)) return Exceeded();
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
        if (!ChargeWork(std::min(a.AsString().size(), b.AsString().size()))) return Exceeded();
        return Value::Bool((a.AsString() == b.AsString()) == (fn == Fn::kEq));
      }
      if (a.kind() == Kind::kDouble) return CompareNumbers(fn, a.AsDouble(), b.AsDouble());
      if (a.kind() == Kind::kInt) return CompareNumbers(fn, a.AsInt(), b.AsInt());
    }
    if (!ChargeCall(n, 2, a, b)) return Exceeded();
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
      if (!ChargeCall(n, 1, a, a)) return Exceeded();
      return CallFunction(n.fn, std::span<const Value>(&a, 1), n.regex.get());
    }
    if (count <= 4) {
      std::array<Value, 4> args;
      for (size_t k = 0; k < count; ++k) {
        args[k] = Eval(n.kids[k]);
        if (args[k].is_error()) return args[k];
      }
      if (!ChargeCall(n, count, args[0], args[count > 1 ? 1 : 0])) return Exceeded();
      return CallFunction(n.fn, std::span<const Value>(args.data(), count), n.regex.get());
    }
    std::vector<Value> args;
    args.reserve(count);
    for (int32_t k : n.kids) {
      args.push_back(Eval(k));
      if (args.back().is_error()) return args.back();
    }
    if (!ChargeCall(n, count, args[0], args[1])) return Exceeded();
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
    Value& slot = slots_[n.var];
    const int32_t body = n.kids[1];
    switch (n.comp) {
      case CompKind::kAll:
      case CompKind::kExists: {
        const bool decisive = n.comp == CompKind::kExists;
        Value error;
        for (size_t k = 0; k < count; ++k) {
          if (!Charge(1)) return Exceeded();
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
          if (!Charge(1)) return Exceeded();
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
          if (!Charge(1)) return Exceeded();
          slot = element(k);
          if (n.comp != CompKind::kMap) {
            Value f = Eval(n.comp == CompKind::kFilter ? body : n.kids[2]);
            if (f.kind() != Kind::kBool) return f.is_error() ? f : NoSuchOverload();
            if (!f.AsBool()) continue;
            if (n.comp == CompKind::kFilter) {
              // The result's vector grows by doubling: two Values' worth per element.
              if (!ChargeBytes(2 * sizeof(Value))) return Exceeded();
              out->push_back(slot);
              continue;
            }
          }
          Value r = Eval(body);
          if (r.is_error()) return r;
          if (!ChargeBytes(2 * sizeof(Value))) return Exceeded();
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
  EvalBudget& budget_;
  mutable uint64_t remaining_;  // cost units left; 0 once a limit was exceeded
  const uint64_t start_;
  mutable uint64_t unspent_ = 0;  // left when the memory budget stopped the evaluation
};

}  // namespace

Value Evaluate(const ProgramData& data, const Activation& activation, EvalBudget& budget) {
  if (data.num_slots == 0) return Evaluator(data, activation, nullptr, budget).Run(data.root);
  // Only the slots the program uses are constructed.
  alignas(Value) std::byte storage[kMaxSlots * sizeof(Value)];
  auto* frame = reinterpret_cast<Value*>(storage);
  for (int i = 0; i < data.num_slots; ++i) new (&frame[i]) Value();
  Value result = Evaluator(data, activation, frame, budget).Run(data.root);
  for (int i = 0; i < data.num_slots; ++i) frame[i].~Value();
  return result;
}

}  // namespace ecrm::cel::internal
