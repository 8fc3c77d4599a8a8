#include "rules/cel/internal/parser.h"

#include <algorithm>
#include <optional>

#include "rules/cel/internal/lexer.h"

namespace ecrm::cel::internal {
namespace {

// Parser: owns the tokens and the nodes it builds for one source string; single use, single
// thread. Errors are not thrown: every Parse* returns -1 after recording the first error.
class Parser {
 public:
  explicit Parser(std::string_view src) : toks_(Lex(src)) {}

  ParseResult Run() {
    ParseResult r;
    if (toks_.back().kind == Tok::kError) {
      // Report the lexical error at its own position (tokens before it are fine).
      const Token& e = toks_.back();
      r.errors.push_back({e.pos, e.text});
      return r;
    }
    int32_t root = ParseExpr();
    if (root >= 0 && Peek().kind != Tok::kEnd) {
      Fail("unexpected " + Describe(Peek()) + " after the end of the expression");
      root = -1;
    }
    r.root = root;
    r.nodes = std::move(nodes_);
    if (error_) r.errors.push_back(*error_);
    return r;
  }

 private:
  const Token& Peek(size_t ahead = 0) const {
    return toks_[std::min(i_ + ahead, toks_.size() - 1)];
  }
  const Token& Take() {
    const Token& t = toks_[i_];
    if (i_ + 1 < toks_.size()) ++i_;
    return t;
  }
  bool Accept(Tok k) {
    if (Peek().kind != k) return false;
    Take();
    return true;
  }
  static std::string Describe(const Token& t) {
    if (t.kind == Tok::kIdent) return "'" + t.text + "'";
    return std::string(TokName(t.kind));
  }
  int32_t Fail(std::string message) {
    if (!error_) error_ = ParseError{Peek().pos, std::move(message)};
    return -1;
  }
  bool Expect(Tok k) {
    if (Accept(k)) return true;
    Fail("expected " + std::string(TokName(k)) + " but found " + Describe(Peek()));
    return false;
  }

  int32_t Add(Node n) {
    int d = 0;
    for (int32_t k : n.kids) d = std::max(d, depth_[static_cast<size_t>(k)]);
    if (d + 1 > kMaxTreeDepth) {
      return Fail("expression too deeply nested (more than " + std::to_string(kMaxTreeDepth) +
                  " levels)");
    }
    nodes_.push_back(std::move(n));
    depth_.push_back(d + 1);
    return static_cast<int32_t>(nodes_.size() - 1);
  }
  int32_t AddOp(Op op, int32_t pos, std::vector<int32_t> kids) {
    Node n;
    n.op = op;
    n.pos = pos;
    n.kids = std::move(kids);
    return Add(std::move(n));
  }
  int32_t AddCall(Fn fn, std::string name, int32_t pos, std::vector<int32_t> kids) {
    Node n;
    n.op = Op::kCall;
    n.fn = fn;
    n.name = std::move(name);
    n.pos = pos;
    n.kids = std::move(kids);
    return Add(std::move(n));
  }
  int32_t AddConst(Value v, int32_t pos) {
    Node n;
    n.op = Op::kConst;
    n.pos = pos;
    n.value = std::move(v);
    return Add(std::move(n));
  }

  struct DepthGuard {
    explicit DepthGuard(int* d) : depth(d) { ++*depth; }
    ~DepthGuard() { --*depth; }
    int* depth;
  };

  int32_t TooDeep() {
    return Fail("expression nested too deeply (more than " + std::to_string(kMaxNesting) +
                " levels)");
  }

  int32_t ParseExpr() {
    DepthGuard guard(&nesting_);
    if (nesting_ > kMaxNesting) return TooDeep();
    int32_t c = ParseOr();
    if (c < 0 || Peek().kind != Tok::kQuestion) return c;
    int32_t pos = Take().pos;
    int32_t t = ParseOr();
    if (t < 0 || !Expect(Tok::kColon)) return -1;
    int32_t f = ParseExpr();
    if (f < 0) return -1;
    return AddOp(Op::kCond, pos, {c, t, f});
  }

  int32_t ParseOr() {
    int32_t l = ParseAnd();
    while (l >= 0 && Peek().kind == Tok::kOr) {
      int32_t pos = Take().pos;
      int32_t r = ParseAnd();
      if (r < 0) return -1;
      l = AddOp(Op::kOr, pos, {l, r});
    }
    return l;
  }

  int32_t ParseAnd() {
    int32_t l = ParseRelation();
    while (l >= 0 && Peek().kind == Tok::kAnd) {
      int32_t pos = Take().pos;
      int32_t r = ParseRelation();
      if (r < 0) return -1;
      l = AddOp(Op::kAnd, pos, {l, r});
    }
    return l;
  }

  int32_t ParseRelation() {
    int32_t l = ParseAddition();
    while (l >= 0) {
      Fn fn;
      const char* name;
      switch (Peek().kind) {
        case Tok::kEq:
          fn = Fn::kEq, name = "_==_";
          break;
        case Tok::kNe:
          fn = Fn::kNe, name = "_!=_";
          break;
        case Tok::kLt:
          fn = Fn::kLt, name = "_<_";
          break;
        case Tok::kLe:
          fn = Fn::kLe, name = "_<=_";
          break;
        case Tok::kGt:
          fn = Fn::kGt, name = "_>_";
          break;
        case Tok::kGe:
          fn = Fn::kGe, name = "_>=_";
          break;
        case Tok::kIn:
          fn = Fn::kIn, name = "@in";
          break;
        default:
          return l;
      }
      int32_t pos = Take().pos;
      int32_t r = ParseAddition();
      if (r < 0) return -1;
      l = AddCall(fn, name, pos, {l, r});
    }
    return l;
  }

  int32_t ParseAddition() {
    int32_t l = ParseMultiplication();
    while (l >= 0 && (Peek().kind == Tok::kPlus || Peek().kind == Tok::kMinus)) {
      bool plus = Peek().kind == Tok::kPlus;
      int32_t pos = Take().pos;
      int32_t r = ParseMultiplication();
      if (r < 0) return -1;
      l = AddCall(plus ? Fn::kAdd : Fn::kSub, plus ? "_+_" : "_-_", pos, {l, r});
    }
    return l;
  }

  int32_t ParseMultiplication() {
    int32_t l = ParseUnary();
    while (l >= 0) {
      Fn fn;
      const char* name;
      switch (Peek().kind) {
        case Tok::kStar:
          fn = Fn::kMul, name = "_*_";
          break;
        case Tok::kSlash:
          fn = Fn::kDiv, name = "_/_";
          break;
        case Tok::kPercent:
          fn = Fn::kMod, name = "_%_";
          break;
        default:
          return l;
      }
      int32_t pos = Take().pos;
      int32_t r = ParseUnary();
      if (r < 0) return -1;
      l = AddCall(fn, name, pos, {l, r});
    }
    return l;
  }

  int32_t ParseUnary() {
    DepthGuard guard(&nesting_);
    if (nesting_ > kMaxNesting) return TooDeep();
    if (Peek().kind == Tok::kNot) {
      int32_t pos = Take().pos;
      int32_t e = ParseUnary();
      return e < 0 ? -1 : AddOp(Op::kNot, pos, {e});
    }
    if (Peek().kind == Tok::kMinus) {
      int32_t pos = Take().pos;
      const Token& t = Peek();
      Tok after = Peek(1).kind;
      bool plain = after != Tok::kDot && after != Tok::kLBracket;
      if (plain && t.kind == Tok::kInt) {
        uint64_t u = Take().u;
        return AddConst(Value::Int(static_cast<int64_t>(0 - u)), pos);
      }
      if (plain && t.kind == Tok::kDouble) return AddConst(Value::Double(-Take().d), pos);
      int32_t e = ParseUnary();
      return e < 0 ? -1 : AddOp(Op::kNeg, pos, {e});
    }
    return ParseMember();
  }

  int32_t ParseMember() {
    int32_t e = ParsePrimary();
    while (e >= 0) {
      if (Peek().kind == Tok::kDot) {
        Take();
        const Token& t = Peek();
        int32_t pos = t.pos;
        if (t.kind == Tok::kQuotedIdent) {
          Node n;
          n.op = Op::kSelect;
          n.pos = pos;
          n.name = Take().text;
          n.kids = {e};
          e = Add(std::move(n));
          continue;
        }
        if (t.kind != Tok::kIdent) {
          return Fail("expected identifier after '.' but found " + Describe(t));
        }
        std::string name = Take().text;
        if (Peek().kind == Tok::kLParen) {
          Take();
          std::vector<int32_t> args;
          if (!ParseArgs(Tok::kRParen, &args)) return -1;
          e = ReceiverCall(std::move(name), pos, e, std::move(args));
        } else {
          Node n;
          n.op = Op::kSelect;
          n.pos = pos;
          n.name = std::move(name);
          n.kids = {e};
          e = Add(std::move(n));
        }
      } else if (Peek().kind == Tok::kLBracket) {
        int32_t pos = Take().pos;
        if (Peek().kind == Tok::kQuestion) return Fail("optional indexing is not supported");
        DepthGuard guard(&nesting_);
        int32_t k = ParseExpr();
        if (k < 0 || !Expect(Tok::kRBracket)) return -1;
        e = AddOp(Op::kIndex, pos, {e, k});
      } else if (Peek().kind == Tok::kLBrace && nodes_[static_cast<size_t>(e)].op == Op::kIdent) {
        return Fail("message construction is not supported");
      } else {
        return e;
      }
    }
    return e;
  }

  // Parses "a, b, c" up to `close` (trailing comma allowed); the opener is already consumed.
  bool ParseArgs(Tok close, std::vector<int32_t>* out) {
    if (Accept(close)) return true;
    while (true) {
      int32_t a = ParseExpr();
      if (a < 0) return false;
      out->push_back(a);
      if (Accept(close)) return true;
      if (!Expect(Tok::kComma)) return false;
      if (Accept(close)) return true;
    }
  }

  int32_t ReceiverCall(std::string name, int32_t pos, int32_t target, std::vector<int32_t> args) {
    CompKind comp;
    bool macro = true;
    size_t n = args.size();
    if (name == "all" && n == 2) {
      comp = CompKind::kAll;
    } else if (name == "exists" && n == 2) {
      comp = CompKind::kExists;
    } else if (name == "exists_one" && n == 2) {
      comp = CompKind::kExistsOne;
    } else if (name == "map" && (n == 2 || n == 3)) {
      comp = n == 2 ? CompKind::kMap : CompKind::kMapFilter;
    } else if (name == "filter" && n == 2) {
      comp = CompKind::kFilter;
    } else {
      macro = false;
    }
    if (!macro) {
      Node c;
      c.op = Op::kCall;
      c.receiver = true;
      c.name = std::move(name);
      c.pos = pos;
      c.kids.push_back(target);
      c.kids.insert(c.kids.end(), args.begin(), args.end());
      return Add(std::move(c));
    }
    const Node& var = nodes_[static_cast<size_t>(args[0])];
    if (var.op != Op::kIdent) {
      return FailAt(var.pos, name + "() macro: the first argument must be a simple name");
    }
    Node c;
    c.op = Op::kComp;
    c.comp = comp;
    c.pos = pos;
    c.name = var.name;
    c.kids = {target, args[1]};
    if (n == 3) {
      // map(x, filter, transform): kids = {range, transform, filter}
      c.kids = {target, args[2], args[1]};
    }
    return Add(std::move(c));
  }

  int32_t FailAt(int32_t pos, std::string message) {
    if (!error_) error_ = ParseError{pos, std::move(message)};
    return -1;
  }

  int32_t ParsePrimary() {
    const Token& t = Peek();
    int32_t pos = t.pos;
    switch (t.kind) {
      case Tok::kInt: {
        uint64_t u = Take().u;
        if (u > static_cast<uint64_t>(INT64_MAX))
          return FailAt(pos, "integer literal out of range");
        return AddConst(Value::Int(static_cast<int64_t>(u)), pos);
      }
      case Tok::kUint:
        return AddConst(Value::Uint(Take().u), pos);
      case Tok::kDouble:
        return AddConst(Value::Double(Take().d), pos);
      case Tok::kString:
        return AddConst(Value::String(Take().text), pos);
      case Tok::kBytes:
        return AddConst(Value::Bytes(Take().text), pos);
      case Tok::kTrue:
        Take();
        return AddConst(Value::Bool(true), pos);
      case Tok::kFalse:
        Take();
        return AddConst(Value::Bool(false), pos);
      case Tok::kNull:
        Take();
        return AddConst(Value::Null(), pos);
      case Tok::kLParen: {
        Take();
        int32_t e = ParseExpr();
        if (e < 0 || !Expect(Tok::kRParen)) return -1;
        return e;
      }
      case Tok::kLBracket: {
        Take();
        DepthGuard guard(&nesting_);
        std::vector<int32_t> elems;
        if (!ParseArgs(Tok::kRBracket, &elems)) return -1;
        return AddOp(Op::kList, pos, std::move(elems));
      }
      case Tok::kLBrace: {
        Take();
        DepthGuard guard(&nesting_);
        std::vector<int32_t> kids;
        if (Accept(Tok::kRBrace)) return AddOp(Op::kMap, pos, std::move(kids));
        while (true) {
          int32_t k = ParseExpr();
          if (k < 0 || !Expect(Tok::kColon)) return -1;
          int32_t v = ParseExpr();
          if (v < 0) return -1;
          kids.push_back(k);
          kids.push_back(v);
          if (Accept(Tok::kRBrace)) break;
          if (!Expect(Tok::kComma)) return -1;
          if (Accept(Tok::kRBrace)) break;
        }
        return AddOp(Op::kMap, pos, std::move(kids));
      }
      case Tok::kDot:
        Take();
        if (Peek().kind != Tok::kIdent) {
          return Fail("expected identifier after '.' but found " + Describe(Peek()));
        }
        return ParseIdent();
      case Tok::kIdent:
        return ParseIdent();
      default:
        return Fail("unexpected " + Describe(t));
    }
  }

  int32_t ParseIdent() {
    const Token& t = Take();
    int32_t pos = t.pos;
    if (t.u == 1) return FailAt(pos, "reserved identifier '" + t.text + "'");
    std::string name = t.text;
    if (!Accept(Tok::kLParen)) {
      Node n;
      n.op = Op::kIdent;
      n.pos = pos;
      n.name = std::move(name);
      return Add(std::move(n));
    }
    std::vector<int32_t> args;
    if (!ParseArgs(Tok::kRParen, &args)) return -1;
    if (name == "has") {
      if (args.size() != 1 || nodes_[static_cast<size_t>(args[0])].op != Op::kSelect) {
        return FailAt(pos, "invalid argument to has() macro");
      }
      Node& sel = nodes_[static_cast<size_t>(args[0])];
      sel.op = Op::kHas;
      return args[0];
    }
    Node c;
    c.op = Op::kCall;
    c.name = std::move(name);
    c.pos = pos;
    c.kids = std::move(args);
    return Add(std::move(c));
  }

  std::vector<Token> toks_;
  size_t i_ = 0;
  std::vector<Node> nodes_;
  std::vector<int> depth_;
  int nesting_ = 0;
  std::optional<ParseError> error_;
};

}  // namespace

ParseResult Parse(std::string_view source) { return Parser(source).Run(); }

}  // namespace ecrm::cel::internal
