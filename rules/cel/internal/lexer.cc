#include "rules/cel/internal/lexer.h"

#include <cstdlib>

namespace ecrm::cel::internal {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool IsIdentStart(char c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
int HexVal(char c) {
  if (IsDigit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

void AppendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsReserved(std::string_view w) {
  static constexpr std::string_view kReserved[] = {
      "as",  "break", "const",   "continue",  "else",   "for", "function", "if",   "import",
      "let", "loop",  "package", "namespace", "return", "var", "void",     "while"};
  for (std::string_view r : kReserved) {
    if (r == w) return true;
  }
  return false;
}

// Lexer: scans one source string (borrowed; it must outlive the Lexer) into tokens. Single use,
// single thread.
class Lexer {
 public:
  explicit Lexer(std::string_view src) : s_(src) {}

  std::vector<Token> Run() {
    std::vector<Token> out;
    while (true) {
      Token t = Next();
      Tok kind = t.kind;
      out.push_back(std::move(t));
      if (kind == Tok::kEnd || kind == Tok::kError) break;
    }
    return out;
  }

 private:
  Token Make(Tok kind, size_t pos) {
    Token t;
    t.kind = kind;
    t.pos = static_cast<int32_t>(pos);
    return t;
  }
  Token Error(size_t pos, std::string message) {
    Token t = Make(Tok::kError, pos);
    t.text = std::move(message);
    return t;
  }
  char At(size_t i) const { return i < s_.size() ? s_[i] : '\0'; }

  void SkipSpace() {
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
        ++i_;
      } else if (c == '/' && At(i_ + 1) == '/') {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else {
        break;
      }
    }
  }

  Token Next() {
    SkipSpace();
    size_t start = i_;
    if (i_ >= s_.size()) return Make(Tok::kEnd, start);
    char c = s_[i_];
    if (IsDigit(c) || (c == '.' && IsDigit(At(i_ + 1)))) return Number();
    if (IsIdentStart(c)) {
      // String prefixes: r, b, rb, br (any case).
      size_t j = i_;
      bool raw = false, bytes = false;
      while (j < s_.size() && j - i_ < 2) {
        char p = s_[j];
        if ((p == 'r' || p == 'R') && !raw) {
          raw = true;
        } else if ((p == 'b' || p == 'B') && !bytes) {
          bytes = true;
        } else {
          break;
        }
        ++j;
      }
      if (j > i_ && (At(j) == '"' || At(j) == '\'')) {
        i_ = j;
        return Quoted(start, raw, bytes);
      }
      while (i_ < s_.size() && (IsIdentStart(s_[i_]) || IsDigit(s_[i_]))) ++i_;
      std::string_view w = s_.substr(start, i_ - start);
      if (w == "true") return Make(Tok::kTrue, start);
      if (w == "false") return Make(Tok::kFalse, start);
      if (w == "null") return Make(Tok::kNull, start);
      if (w == "in") return Make(Tok::kIn, start);
      Token t = Make(Tok::kIdent, start);
      t.text = std::string(w);
      t.u = IsReserved(w) ? 1 : 0;  // allowed only as a field or method name
      return t;
    }
    if (c == '"' || c == '\'') return Quoted(start, false, false);
    if (c == '`') {
      size_t j = i_ + 1;
      while (j < s_.size() && s_[j] != '`' && s_[j] != '\n') ++j;
      if (j >= s_.size() || s_[j] != '`' || j == i_ + 1) {
        return Error(start, "unterminated quoted identifier");
      }
      Token t = Make(Tok::kQuotedIdent, start);
      t.text = std::string(s_.substr(i_ + 1, j - i_ - 1));
      i_ = j + 1;
      return t;
    }
    ++i_;
    char n = At(i_);
    switch (c) {
      case '(':
        return Make(Tok::kLParen, start);
      case ')':
        return Make(Tok::kRParen, start);
      case '[':
        return Make(Tok::kLBracket, start);
      case ']':
        return Make(Tok::kRBracket, start);
      case '{':
        return Make(Tok::kLBrace, start);
      case '}':
        return Make(Tok::kRBrace, start);
      case '.':
        return Make(Tok::kDot, start);
      case ',':
        return Make(Tok::kComma, start);
      case ':':
        return Make(Tok::kColon, start);
      case '?':
        return Make(Tok::kQuestion, start);
      case '+':
        return Make(Tok::kPlus, start);
      case '-':
        return Make(Tok::kMinus, start);
      case '*':
        return Make(Tok::kStar, start);
      case '/':
        return Make(Tok::kSlash, start);
      case '%':
        return Make(Tok::kPercent, start);
      case '!':
        if (n == '=') return ++i_, Make(Tok::kNe, start);
        return Make(Tok::kNot, start);
      case '=':
        if (n == '=') return ++i_, Make(Tok::kEq, start);
        return Error(start, "unexpected '=' (did you mean '=='?)");
      case '<':
        if (n == '=') return ++i_, Make(Tok::kLe, start);
        return Make(Tok::kLt, start);
      case '>':
        if (n == '=') return ++i_, Make(Tok::kGe, start);
        return Make(Tok::kGt, start);
      case '&':
        if (n == '&') return ++i_, Make(Tok::kAnd, start);
        return Error(start, "unexpected '&' (did you mean '&&'?)");
      case '|':
        if (n == '|') return ++i_, Make(Tok::kOr, start);
        return Error(start, "unexpected '|' (did you mean '||'?)");
      default:
        return Error(start, "unexpected character '" + std::string(1, c) + "'");
    }
  }

  Token Number() {
    size_t start = i_;
    if (s_[i_] == '0' && (At(i_ + 1) == 'x' || At(i_ + 1) == 'X') && IsHex(At(i_ + 2))) {
      i_ += 2;
      uint64_t v = 0;
      bool overflow = false;
      while (IsHex(At(i_))) {
        if (v >> 60) overflow = true;
        v = v * 16 + static_cast<uint64_t>(HexVal(s_[i_++]));
      }
      return IntSuffix(start, v, overflow);
    }
    while (IsDigit(At(i_))) ++i_;
    bool is_double = false;
    if (At(i_) == '.' && IsDigit(At(i_ + 1))) {
      is_double = true;
      ++i_;
      while (IsDigit(At(i_))) ++i_;
    }
    if (At(i_) == 'e' || At(i_) == 'E') {
      size_t j = i_ + 1;
      if (At(j) == '+' || At(j) == '-') ++j;
      if (IsDigit(At(j))) {
        is_double = true;
        i_ = j;
        while (IsDigit(At(i_))) ++i_;
      }
    }
    if (is_double) {
      Token t = Make(Tok::kDouble, start);
      std::string text(s_.substr(start, i_ - start));
      t.d = std::strtod(text.c_str(), nullptr);
      return t;
    }
    uint64_t v = 0;
    bool overflow = false;
    for (size_t k = start; k < i_; ++k) {
      uint64_t d = static_cast<uint64_t>(s_[k] - '0');
      if (v > (UINT64_MAX - d) / 10) overflow = true;
      v = v * 10 + d;
    }
    return IntSuffix(start, v, overflow);
  }

  Token IntSuffix(size_t start, uint64_t v, bool overflow) {
    bool is_uint = At(i_) == 'u' || At(i_) == 'U';
    if (is_uint) ++i_;
    if (IsIdentStart(At(i_)) || IsDigit(At(i_))) return Error(start, "malformed number literal");
    if (overflow || (!is_uint && v > (uint64_t{1} << 63))) {
      return Error(start, "integer literal out of range");
    }
    Token t = Make(is_uint ? Tok::kUint : Tok::kInt, start);
    t.u = v;
    return t;
  }

  Token Quoted(size_t start, bool raw, bool bytes) {
    char q = s_[i_];
    bool triple = At(i_ + 1) == q && At(i_ + 2) == q;
    i_ += triple ? 3 : 1;
    std::string out;
    while (true) {
      if (i_ >= s_.size()) return Error(start, "unterminated string literal");
      char c = s_[i_];
      if (c == q && (!triple || (At(i_ + 1) == q && At(i_ + 2) == q))) {
        i_ += triple ? 3 : 1;
        break;
      }
      if (!triple && (c == '\n' || c == '\r')) {
        return Error(start, "newline in string literal");
      }
      if (c != '\\' || raw) {
        out.push_back(c);
        ++i_;
        continue;
      }
      size_t esc = i_;
      char e = At(i_ + 1);
      i_ += 2;
      switch (e) {
        case 'a':
          out.push_back('\a');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'v':
          out.push_back('\v');
          break;
        case '\\':
        case '?':
        case '"':
        case '\'':
        case '`':
          out.push_back(e);
          break;
        case 'x':
        case 'X':
        case 'u':
        case 'U': {
          int n = (e == 'x' || e == 'X') ? 2 : (e == 'u' ? 4 : 8);
          if (bytes && n > 2) return Error(esc, "unicode escape in bytes literal");
          uint32_t cp = 0;
          for (int k = 0; k < n; ++k) {
            if (!IsHex(At(i_))) return Error(esc, "invalid escape sequence");
            cp = cp * 16 + static_cast<uint32_t>(HexVal(s_[i_++]));
          }
          if (bytes) {
            out.push_back(static_cast<char>(cp));
          } else {
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) {
              return Error(esc, "invalid unicode code point");
            }
            AppendUtf8(&out, cp);
          }
          break;
        }
        default:
          if (e >= '0' && e <= '3') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2; ++k) {
              char o = At(i_);
              if (o < '0' || o > '7') return Error(esc, "invalid octal escape");
              v = v * 8 + static_cast<uint32_t>(o - '0');
              ++i_;
            }
            if (bytes) {
              out.push_back(static_cast<char>(v));
            } else {
              AppendUtf8(&out, v);
            }
            break;
          }
          return Error(esc, "invalid escape sequence");
      }
    }
    Token t = Make(bytes ? Tok::kBytes : Tok::kString, start);
    t.text = std::move(out);
    return t;
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

std::vector<Token> Lex(std::string_view source) { return Lexer(source).Run(); }

std::string_view TokName(Tok t) {
  switch (t) {
    case Tok::kEnd:
      return "end of input";
    case Tok::kIdent:
      return "identifier";
    case Tok::kQuotedIdent:
      return "quoted identifier";
    case Tok::kInt:
      return "int literal";
    case Tok::kUint:
      return "uint literal";
    case Tok::kDouble:
      return "double literal";
    case Tok::kString:
      return "string literal";
    case Tok::kBytes:
      return "bytes literal";
    case Tok::kTrue:
      return "'true'";
    case Tok::kFalse:
      return "'false'";
    case Tok::kNull:
      return "'null'";
    case Tok::kIn:
      return "'in'";
    case Tok::kLParen:
      return "'('";
    case Tok::kRParen:
      return "')'";
    case Tok::kLBracket:
      return "'['";
    case Tok::kRBracket:
      return "']'";
    case Tok::kLBrace:
      return "'{'";
    case Tok::kRBrace:
      return "'}'";
    case Tok::kDot:
      return "'.'";
    case Tok::kComma:
      return "','";
    case Tok::kColon:
      return "':'";
    case Tok::kQuestion:
      return "'?'";
    case Tok::kPlus:
      return "'+'";
    case Tok::kMinus:
      return "'-'";
    case Tok::kStar:
      return "'*'";
    case Tok::kSlash:
      return "'/'";
    case Tok::kPercent:
      return "'%'";
    case Tok::kNot:
      return "'!'";
    case Tok::kEq:
      return "'=='";
    case Tok::kNe:
      return "'!='";
    case Tok::kLt:
      return "'<'";
    case Tok::kLe:
      return "'<='";
    case Tok::kGt:
      return "'>'";
    case Tok::kGe:
      return "'>='";
    case Tok::kAnd:
      return "'&&'";
    case Tok::kOr:
      return "'||'";
    case Tok::kError:
      return "error";
  }
  return "token";
}

}  // namespace ecrm::cel::internal
