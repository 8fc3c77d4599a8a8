#include <algorithm>
#include <iterator>

#include "absl/status/status.h"
#include "rules/cel/cel.h"
#include "rules/cel/internal/parser.h"
#include "rules/cel/internal/program_data.h"

namespace ecrm::cel {

Env::Env(std::vector<std::string> variable_names) : names_(std::move(variable_names)) {}

int Env::IndexOf(std::string_view name) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == name) return static_cast<int>(i);
  }
  return -1;
}

Value Activation::Now() const {
  return Value::StaticError("'now' is not bound in this activation");
}

Value Program::Evaluate(const Activation& activation) const {
  EvalBudget budget{.max_cost = kDefaultMaxCost, .max_bytes = kDefaultMaxBytes};
  return internal::Evaluate(*data_, activation, budget);
}
Value Program::Evaluate(const Activation& activation, EvalBudget& budget) const {
  return internal::Evaluate(*data_, activation, budget);
}
const std::string& Program::source() const { return data_->source; }
const std::vector<VariableRead>& Program::variables_read() const { return data_->reads; }

namespace {

using internal::Node;
using internal::Op;

bool IsPath(const Node& n, int var, std::span<const std::string> path) {
  return n.op == Op::kVar && n.var == var &&
         std::equal(n.path.begin(), n.path.end(), path.begin(), path.end());
}

// The strings node `i` forces `var.path` to be, or false when it implies no constraint.
bool Constraint(const internal::ProgramData& d, int32_t i, int var,
                std::span<const std::string> path, std::vector<std::string>* out) {
  const Node& n = d.nodes[static_cast<size_t>(i)];
  if (n.op == Op::kCall && n.fn == internal::Fn::kEq) {
    const Node& a = d.nodes[static_cast<size_t>(n.kids[0])];
    const Node& b = d.nodes[static_cast<size_t>(n.kids[1])];
    const Node* c = IsPath(a, var, path) ? &b : (IsPath(b, var, path) ? &a : nullptr);
    if (c == nullptr || c->op != Op::kConst || c->value.kind() != Kind::kString) return false;
    out->emplace_back(c->value.AsString());
    return true;
  }
  if (n.op == Op::kInConst && n.strings != nullptr &&
      IsPath(d.nodes[static_cast<size_t>(n.kids[0])], var, path)) {
    out->insert(out->end(), n.strings->begin(), n.strings->end());
    return true;
  }
  if (n.op == Op::kOr) {
    return Constraint(d, n.kids[0], var, path, out) && Constraint(d, n.kids[1], var, path, out);
  }
  if (n.op == Op::kAnd) {
    std::vector<std::string> l, r;
    bool hl = Constraint(d, n.kids[0], var, path, &l);
    bool hr = Constraint(d, n.kids[1], var, path, &r);
    if (hl && hr) {
      std::sort(l.begin(), l.end());
      std::sort(r.begin(), r.end());
      std::set_intersection(l.begin(), l.end(), r.begin(), r.end(), std::back_inserter(*out));
      return !out->empty();  // an empty intersection: give up rather than claim "never"
    }
    if (hl) out->insert(out->end(), l.begin(), l.end());
    if (hr) out->insert(out->end(), r.begin(), r.end());
    return hl || hr;
  }
  return false;
}

void LineColumn(std::string_view src, int32_t pos, int* line, int* column) {
  *line = 1;
  *column = 1;
  for (int32_t i = 0; i < pos && static_cast<size_t>(i) < src.size(); ++i) {
    char c = src[static_cast<size_t>(i)];
    if (c == '\n') {
      ++*line;
      *column = 1;
    } else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) {
      ++*column;
    }
  }
}

}  // namespace

std::vector<std::string> Program::RequiredStrings(std::string_view variable,
                                                  std::span<const std::string> path) const {
  std::vector<std::string> out;
  auto it = std::find(data_->variable_names.begin(), data_->variable_names.end(), variable);
  if (it == data_->variable_names.end()) return out;
  int var = static_cast<int>(it - data_->variable_names.begin());
  if (!Constraint(*data_, data_->root, var, path, &out)) return {};
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

absl::StatusOr<Program> Compile(std::string_view expression, const Env& env,
                                std::vector<CompileError>* errors) {
  std::vector<std::pair<int32_t, std::string>> raw;
  auto data = std::make_shared<internal::ProgramData>();
  data->source = std::string(expression);
  data->variable_names = env.variable_names();
  if (expression.size() > kMaxExpressionBytes) {
    raw.emplace_back(0, "expression too long (" + std::to_string(expression.size()) +
                            " bytes, the limit is " + std::to_string(kMaxExpressionBytes) + ")");
  } else {
    internal::ParseResult parsed = internal::Parse(expression);
    for (auto& e : parsed.errors) raw.emplace_back(e.pos, std::move(e.message));
    if (raw.empty()) {
      data->nodes = std::move(parsed.nodes);
      data->root = parsed.root;
      internal::Check(env, data.get(), &raw);
    }
  }
  if (!raw.empty()) {
    std::string first;
    for (size_t i = 0; i < raw.size(); ++i) {
      CompileError e;
      LineColumn(expression, raw[i].first, &e.line, &e.column);
      e.message = std::move(raw[i].second);
      if (i == 0) {
        first = std::to_string(e.line) + ":" + std::to_string(e.column) + ": " + e.message;
      }
      if (errors != nullptr) errors->push_back(std::move(e));
    }
    return absl::InvalidArgumentError(first);
  }
  Program p;
  p.data_ = std::move(data);
  return p;
}

}  // namespace ecrm::cel
