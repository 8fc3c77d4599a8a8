// The checker: resolves parsed nodes in place (see ast.h) and precomputes constants.
#include <re2/re2.h>

#include <algorithm>

#include "rules/cel/internal/builtins.h"
#include "rules/cel/internal/program_data.h"

namespace ecrm::cel::internal {
namespace {

// RE2's memory for one compiled pattern (program and DFA cache), so a pattern cannot hold much.
constexpr int64_t kRegexMaxMem = 1 << 20;

constexpr std::string_view kTypeNames[] = {"int",   "uint", "double", "bool",      "string",
                                           "bytes", "list", "map",    "null_type", "type"};

// Checker: resolves the nodes of one ProgramData in place (borrowed, it must outlive the Checker)
// against an Env; single use, single thread.
class Checker {
 public:
  Checker(const Env& env, ProgramData* d, std::vector<std::pair<int32_t, std::string>>* errors)
      : env_(env), d_(d), errors_(errors) {}

  void Run() {
    Resolve(d_->root);
    for (Node& n : d_->nodes) n.view = n.value.Borrow();
    CollectReads(d_->root);
  }

 private:
  Node& N(int32_t i) { return d_->nodes[static_cast<size_t>(i)]; }
  void Error(int32_t pos, std::string message) { errors_->emplace_back(pos, std::move(message)); }
  int Slot(std::string_view name) const {
    for (int i = static_cast<int>(scope_.size()) - 1; i >= 0; --i) {
      if (scope_[static_cast<size_t>(i)] == name) return i;
    }
    return -1;
  }
  bool AllConst(const Node& n) {
    return std::all_of(n.kids.begin(), n.kids.end(),
                       [&](int32_t k) { return N(k).op == Op::kConst; });
  }
  void MakeConst(Node& n, Value v) {
    n.op = Op::kConst;
    n.value = std::move(v);
    n.kids.clear();
  }

  void Resolve(int32_t i) {
    Node& n = N(i);
    switch (n.op) {
      case Op::kConst:
      case Op::kVar:
      case Op::kSlot:
      case Op::kNow:
      case Op::kInConst:
        return;
      case Op::kIdent:
        return ResolveIdent(n);
      case Op::kSelect:
      case Op::kHas:
        return ResolveSelect(i);
      case Op::kIndex: {
        Resolve(n.kids[0]);
        Resolve(n.kids[1]);
        Node& t = N(n.kids[0]);
        Node& k = N(n.kids[1]);
        if (t.op == Op::kVar && k.op == Op::kConst && k.value.kind() == Kind::kString) {
          n.op = Op::kVar;
          n.var = t.var;
          n.path = t.path;
          n.path.emplace_back(k.value.AsString());
          n.kids.clear();
        } else if (AllConst(n)) {
          Value v = Index(t.value, k.value);
          if (!v.is_error()) MakeConst(n, std::move(v));
        }
        return;
      }
      case Op::kCall:
        return ResolveCall(n);
      case Op::kAnd:
      case Op::kOr:
      case Op::kNot:
      case Op::kNeg:
      case Op::kCond:
        for (int32_t k : n.kids) Resolve(k);
        if (n.op == Op::kNeg && AllConst(n)) {
          Value v = Negate(N(n.kids[0]).value);
          if (!v.is_error()) MakeConst(n, std::move(v));
        }
        return;
      case Op::kList: {
        for (int32_t k : n.kids) Resolve(k);
        if (!AllConst(n)) return;
        auto list = std::make_shared<std::vector<Value>>();
        for (int32_t k : n.kids) list->push_back(N(k).value);
        MakeConst(n, Value::List(std::move(list)));
        return;
      }
      case Op::kMap: {
        for (int32_t k : n.kids) Resolve(k);
        if (!AllConst(n)) return;
        std::vector<MapValue::Entry> entries;
        for (size_t k = 0; k + 1 < n.kids.size(); k += 2) {
          entries.emplace_back(N(n.kids[k]).value, N(n.kids[k + 1]).value);
        }
        Value m = MapValue::Make(std::move(entries));
        if (!m.is_error()) MakeConst(n, std::move(m));
        return;
      }
      case Op::kComp: {
        Resolve(n.kids[0]);
        if (static_cast<int>(scope_.size()) >= kMaxSlots) {
          return Error(n.pos, "comprehensions nested too deeply");
        }
        n.var = static_cast<int32_t>(scope_.size());
        scope_.push_back(n.name);
        d_->num_slots = std::max(d_->num_slots, static_cast<int>(scope_.size()));
        for (size_t k = 1; k < n.kids.size(); ++k) Resolve(n.kids[k]);
        scope_.pop_back();
        return;
      }
    }
  }

  void ResolveIdent(Node& n) {
    int slot = Slot(n.name);
    if (slot >= 0) {
      n.op = Op::kSlot;
      n.var = slot;
      return;
    }
    int var = env_.IndexOf(n.name);
    if (var >= 0) {
      n.op = Op::kVar;
      n.var = var;
      return;
    }
    if (n.name == "now") {
      n.op = Op::kNow;
      return;
    }
    for (std::string_view t : kTypeNames) {
      if (n.name == t) return MakeConst(n, Value::Type(t));
    }
    Error(n.pos, "undeclared reference to '" + n.name + "'");
  }

  // a.b.c: the longest dotted prefix that names a declared variable, then a constant path.
  bool TryQualified(Node& n) {
    std::vector<const Node*> chain = {&n};
    const Node* cur = &n;
    while (true) {
      const Node& k = N(cur->kids[0]);
      if (k.op == Op::kSelect) {
        chain.push_back(&k);
        cur = &k;
        continue;
      }
      if (k.op != Op::kIdent || Slot(k.name) >= 0) return false;
      chain.push_back(&k);
      break;
    }
    std::reverse(chain.begin(), chain.end());  // ident, field1, ..., n
    size_t last = chain.size() - 1;
    std::string name = chain[0]->name;
    std::vector<std::string> dotted = {name};
    for (size_t k = 1; k < chain.size(); ++k) {
      name += "." + chain[k]->name;
      dotted.push_back(name);
    }
    for (size_t k = dotted.size(); k-- > 0;) {
      if (n.op == Op::kHas && k == last) continue;
      int var = env_.IndexOf(dotted[k]);
      if (var < 0) continue;
      std::vector<std::string> path;
      for (size_t j = k + 1; j < chain.size(); ++j) path.push_back(chain[j]->name);
      if (n.op != Op::kHas) n.op = Op::kVar;
      n.var = var;
      n.path = std::move(path);
      n.kids.clear();
      return true;
    }
    return false;
  }

  void ResolveSelect(int32_t i) {
    if (TryQualified(N(i))) return;
    Node& n = N(i);
    Resolve(n.kids[0]);
    Node& t = N(n.kids[0]);
    if (t.op == Op::kVar) {
      n.var = t.var;
      n.path = t.path;
      n.path.push_back(n.name);
      n.kids.clear();
      if (n.op == Op::kSelect) n.op = Op::kVar;
      return;
    }
    if (t.op == Op::kConst) {
      Value v = n.op == Op::kHas ? HasField(t.value, n.name) : Select(t.value, n.name);
      if (!v.is_error()) MakeConst(n, std::move(v));
    }
  }

  void ResolveCall(Node& n) {
    for (int32_t k : n.kids) Resolve(k);
    if (n.fn == Fn::kNone) {
      size_t nargs = n.kids.size() - (n.receiver ? 1 : 0);
      n.fn = LookupFunction(n.name, n.receiver, nargs);
      if (n.fn == Fn::kNone) {
        return Error(n.pos, std::string(n.receiver ? "unknown method '" : "unknown function '") +
                                n.name + "' with " + std::to_string(nargs) + " argument" +
                                (nargs == 1 ? "" : "s"));
      }
    }
    if (n.fn == Fn::kNow) {
      n.op = Op::kNow;
      return;
    }
    if (n.fn == Fn::kMatches) {
      // Only constant patterns: compiled once here, never per evaluation, and bounded in size
      // (a pattern read from the event would let its sender choose what every evaluation costs).
      const Node& pattern = N(n.kids[1]);
      if (pattern.op != Op::kConst || pattern.value.kind() != Kind::kString) {
        return Error(pattern.pos, "matches: the pattern must be a string literal");
      }
      std::string_view p = pattern.value.AsString();
      re2::RE2::Options options(re2::RE2::Quiet);
      options.set_max_mem(kRegexMaxMem);
      auto re = std::make_shared<re2::RE2>(re2::StringPiece(p.data(), p.size()), options);
      if (!re->ok()) return Error(pattern.pos, "invalid regular expression: " + re->error());
      if (re->ProgramSize() > kMaxRegexProgramSize) {
        return Error(pattern.pos, "regular expression too complex (program size " +
                                      std::to_string(re->ProgramSize()) + ", the limit is " +
                                      std::to_string(kMaxRegexProgramSize) + ")");
      }
      n.regex = std::move(re);
    }
    if (AllConst(n) && IsPure(n.fn)) {
      std::vector<Value> args;
      for (int32_t k : n.kids) args.push_back(N(k).value);
      Value v = CallFunction(n.fn, args, n.regex.get());
      if (!v.is_error()) return MakeConst(n, std::move(v));
    }
    if (n.fn == Fn::kIn && N(n.kids[1]).op == Op::kConst) {
      Node& c = N(n.kids[1]);
      n.op = Op::kInConst;
      n.value = c.value;
      n.kids.resize(1);
      if (n.value.kind() == Kind::kList) {
        auto strings = std::make_shared<std::vector<std::string>>();
        for (const Value& e : n.value.AsList()) {
          if (e.kind() != Kind::kString) return;
          strings->emplace_back(e.AsString());
        }
        std::sort(strings->begin(), strings->end());
        n.strings = std::move(strings);
      }
    }
  }

  void CollectReads(int32_t i) {
    if (i < 0) return;
    const Node& n = N(i);
    if ((n.op == Op::kVar || n.op == Op::kHas) && n.var >= 0) {
      VariableRead r{d_->variable_names[static_cast<size_t>(n.var)], n.path};
      if (std::find(d_->reads.begin(), d_->reads.end(), r) == d_->reads.end()) {
        d_->reads.push_back(std::move(r));
      }
    }
    for (int32_t k : n.kids) CollectReads(k);
  }

  const Env& env_;
  ProgramData* d_;
  std::vector<std::pair<int32_t, std::string>>* errors_;
  std::vector<std::string> scope_;
};

}  // namespace

void Check(const Env& env, ProgramData* data,
           std::vector<std::pair<int32_t, std::string>>* errors) {
  Checker(env, data, errors).Run();
}

}  // namespace ecrm::cel::internal
