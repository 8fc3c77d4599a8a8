#include "rules/cel/internal/builtins.h"

#include <re2/re2.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "rules/cel/cel.h"
#include "rules/cel/internal/time_util.h"

namespace ecrm::cel::internal {
namespace {

struct FnSpec {
  std::string_view name;
  Fn fn;
  bool global;
  bool receiver;
  int min_args;  // excluding the receiver
  int max_args;  // -1: unbounded
};

constexpr FnSpec kFunctions[] = {
    {"size", Fn::kSize, true, false, 1, 1},
    {"size", Fn::kSize, false, true, 0, 0},
    {"startsWith", Fn::kStartsWith, false, true, 1, 1},
    {"endsWith", Fn::kEndsWith, false, true, 1, 1},
    {"contains", Fn::kContains, false, true, 1, 1},
    {"matches", Fn::kMatches, false, true, 1, 1},
    {"matches", Fn::kMatches, true, false, 2, 2},
    {"int", Fn::kInt, true, false, 1, 1},
    {"uint", Fn::kUint, true, false, 1, 1},
    {"double", Fn::kDouble, true, false, 1, 1},
    {"string", Fn::kString, true, false, 1, 1},
    {"bool", Fn::kBool, true, false, 1, 1},
    {"bytes", Fn::kBytes, true, false, 1, 1},
    {"type", Fn::kType, true, false, 1, 1},
    {"dyn", Fn::kDyn, true, false, 1, 1},
    {"timestamp", Fn::kTimestamp, true, false, 1, 1},
    {"duration", Fn::kDuration, true, false, 1, 1},
    {"getFullYear", Fn::kGetFullYear, false, true, 0, 1},
    {"getMonth", Fn::kGetMonth, false, true, 0, 1},
    {"getDate", Fn::kGetDate, false, true, 0, 1},
    {"getDayOfMonth", Fn::kGetDayOfMonth, false, true, 0, 1},
    {"getDayOfWeek", Fn::kGetDayOfWeek, false, true, 0, 1},
    {"getDayOfYear", Fn::kGetDayOfYear, false, true, 0, 1},
    {"getHours", Fn::kGetHours, false, true, 0, 1},
    {"getMinutes", Fn::kGetMinutes, false, true, 0, 1},
    {"getSeconds", Fn::kGetSeconds, false, true, 0, 1},
    {"getMilliseconds", Fn::kGetMilliseconds, false, true, 0, 1},
    {"exp", Fn::kExp, true, false, 1, 1},
    {"log", Fn::kLog, true, false, 1, 1},
    {"sigmoid", Fn::kSigmoid, true, false, 1, 1},
    {"min", Fn::kMin, true, false, 1, -1},
    {"max", Fn::kMax, true, false, 1, -1},
    {"now", Fn::kNow, true, false, 0, 0},
};

Value Overflow() { return Value::StaticError("integer overflow"); }

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    int n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + static_cast<size_t>(n) >= s.size()) return false;
    for (int k = 1; k <= n; ++k) {
      auto d = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) {
      return false;
    }
    i += static_cast<size_t>(n) + 1;
  }
  return true;
}

int64_t CodePoints(std::string_view s) {
  int64_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

bool IsNumber(const Value& v) {
  return v.kind() == Kind::kInt || v.kind() == Kind::kUint || v.kind() == Kind::kDouble;
}
double ToDouble(const Value& v) {
  switch (v.kind()) {
    case Kind::kInt:
      return static_cast<double>(v.AsInt());
    case Kind::kUint:
      return static_cast<double>(v.AsUint());
    default:
      return v.AsDouble();
  }
}

Value ToInt(const Value& v) {
  switch (v.kind()) {
    case Kind::kInt:
      return v;
    case Kind::kUint:
      if (v.AsUint() > static_cast<uint64_t>(INT64_MAX)) return Overflow();
      return Value::Int(static_cast<int64_t>(v.AsUint()));
    case Kind::kDouble: {
      double d = v.AsDouble();
      if (!(d > -9223372036854775808.0 && d < 9223372036854775808.0)) {
        return Value::StaticError("double out of int range");
      }
      return Value::Int(static_cast<int64_t>(d));
    }
    case Kind::kString: {
      std::string_view s = v.AsString();
      int64_t out;
      auto r = std::from_chars(s.data(), s.data() + s.size(), out);
      if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty()) {
        return Value::StaticError("cannot convert string to int");
      }
      return Value::Int(out);
    }
    case Kind::kTimestamp:
      return Value::Int(v.seconds());
    default:
      return NoSuchOverload();
  }
}

Value ToUint(const Value& v) {
  switch (v.kind()) {
    case Kind::kUint:
      return v;
    case Kind::kInt:
      if (v.AsInt() < 0) return Overflow();
      return Value::Uint(static_cast<uint64_t>(v.AsInt()));
    case Kind::kDouble: {
      double d = v.AsDouble();
      if (!(d > -1.0 && d < 18446744073709551616.0)) {
        return Value::StaticError("double out of uint range");
      }
      return Value::Uint(static_cast<uint64_t>(d));
    }
    case Kind::kString: {
      std::string_view s = v.AsString();
      uint64_t out;
      auto r = std::from_chars(s.data(), s.data() + s.size(), out);
      if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty()) {
        return Value::StaticError("cannot convert string to uint");
      }
      return Value::Uint(out);
    }
    default:
      return NoSuchOverload();
  }
}

Value ToDoubleValue(const Value& v) {
  switch (v.kind()) {
    case Kind::kDouble:
      return v;
    case Kind::kInt:
    case Kind::kUint:
      return Value::Double(ToDouble(v));
    case Kind::kString: {
      std::string_view s = v.AsString();
      double out;
      auto r = std::from_chars(s.data(), s.data() + s.size(), out);
      if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty()) {
        return Value::StaticError("cannot convert string to double");
      }
      return Value::Double(out);
    }
    default:
      return NoSuchOverload();
  }
}

Value ToStringValue(const Value& v) {
  switch (v.kind()) {
    case Kind::kString:
      return v;
    case Kind::kBool:
      return Value::StringRef(v.AsBool() ? "true" : "false");
    case Kind::kInt:
      return Value::String(std::to_string(v.AsInt()));
    case Kind::kUint:
      return Value::String(std::to_string(v.AsUint()));
    case Kind::kDouble:
      return Value::String(FormatDouble(v.AsDouble()));
    case Kind::kBytes:
      if (!ValidUtf8(v.AsString())) return Value::StaticError("invalid UTF-8 in bytes");
      return Value::String(std::string(v.AsString()));
    case Kind::kTimestamp:
      return Value::String(FormatTimestamp(v.seconds(), v.nanos()));
    case Kind::kDuration:
      return Value::String(FormatDuration(v.seconds(), v.nanos()));
    default:
      return NoSuchOverload();
  }
}

Value ToBool(const Value& v) {
  if (v.kind() == Kind::kBool) return v;
  if (v.kind() != Kind::kString) return NoSuchOverload();
  std::string_view s = v.AsString();
  if (s == "1" || s == "t" || s == "true" || s == "TRUE" || s == "True") return Value::Bool(true);
  if (s == "0" || s == "f" || s == "false" || s == "FALSE" || s == "False") {
    return Value::Bool(false);
  }
  return Value::StaticError("cannot convert string to bool");
}

Value MinMax(bool is_max, std::span<const Value> args) {
  if (args.size() == 1 && args[0].kind() == Kind::kList) args = args[0].AsList();
  if (args.empty()) return Value::StaticError("min/max of an empty list");
  const Value* best = nullptr;
  bool mixed = false;
  for (const Value& v : args) {
    if (v.is_error()) return v;
    if (!IsNumber(v)) return NoSuchOverload();
    if (best == nullptr) {
      best = &v;
      continue;
    }
    if (v.kind() != best->kind()) mixed = true;
    int c = Compare(v, *best);
    if (c == 2) return Value::Double(std::nan(""));
    if (is_max ? c > 0 : c < 0) best = &v;
  }
  return mixed ? Value::Double(ToDouble(*best)) : *best;
}

Value MathFn(Fn fn, const Value& v) {
  if (!IsNumber(v)) return NoSuchOverload();
  double x = ToDouble(v);
  switch (fn) {
    case Fn::kExp:
      return Value::Double(std::exp(x));
    case Fn::kLog:
      return Value::Double(std::log(x));
    default:
      return Value::Double(1.0 / (1.0 + std::exp(-x)));
  }
}

TimeField FieldOf(Fn fn) {
  return static_cast<TimeField>(static_cast<int>(fn) - static_cast<int>(Fn::kGetFullYear));
}

}  // namespace

Value NoSuchOverload() { return Value::StaticError("no such overload"); }

Fn LookupFunction(std::string_view name, bool receiver, size_t nargs) {
  for (const FnSpec& f : kFunctions) {
    if (f.name != name || (receiver ? !f.receiver : !f.global)) continue;
    if (static_cast<int>(nargs) < f.min_args) continue;
    if (f.max_args >= 0 && static_cast<int>(nargs) > f.max_args) continue;
    return f.fn;
  }
  return Fn::kNone;
}

bool IsPure(Fn fn) { return fn != Fn::kNow && fn != Fn::kNone; }

Value CallFunction(Fn fn, std::span<const Value> args, const re2::RE2* regex) {
  const Value& a = args[0];
  switch (fn) {
    case Fn::kAdd:
      return Add(a, args[1]);
    case Fn::kSub:
      return Sub(a, args[1]);
    case Fn::kMul:
      return Mul(a, args[1]);
    case Fn::kDiv:
      return Div(a, args[1]);
    case Fn::kMod:
      return Mod(a, args[1]);
    case Fn::kEq:
    case Fn::kNe:
    case Fn::kLt:
    case Fn::kLe:
    case Fn::kGt:
    case Fn::kGe:
      return Relation(fn, a, args[1]);
    case Fn::kIn:
      return In(a, args[1]);
    case Fn::kSize:
      switch (a.kind()) {
        case Kind::kString:
          return Value::Int(CodePoints(a.AsString()));
        case Kind::kBytes:
          return Value::Int(static_cast<int64_t>(a.AsString().size()));
        case Kind::kList:
          return Value::Int(static_cast<int64_t>(a.AsList().size()));
        case Kind::kMap:
          return Value::Int(static_cast<int64_t>(a.AsMap().size()));
        default:
          return NoSuchOverload();
      }
    case Fn::kStartsWith:
    case Fn::kEndsWith:
    case Fn::kContains: {
      if (a.kind() != Kind::kString || args[1].kind() != Kind::kString) return NoSuchOverload();
      std::string_view s = a.AsString(), t = args[1].AsString();
      if (fn == Fn::kStartsWith) return Value::Bool(s.starts_with(t));
      if (fn == Fn::kEndsWith) return Value::Bool(s.ends_with(t));
      return Value::Bool(s.find(t) != std::string_view::npos);
    }
    case Fn::kMatches: {
      if (a.kind() != Kind::kString || args[1].kind() != Kind::kString) return NoSuchOverload();
      // The pattern was compiled with the Program (the checker refuses non-constant ones).
      if (regex == nullptr) return Value::StaticError("matches: the pattern must be a constant");
      if (a.AsString().size() > kMaxMatchBytes) {
        return Value::StaticError("matches: the text is longer than 16384 bytes");
      }
      re2::StringPiece text(a.AsString().data(), a.AsString().size());
      return Value::Bool(re2::RE2::PartialMatch(text, *regex));
    }
    case Fn::kInt:
      return ToInt(a);
    case Fn::kUint:
      return ToUint(a);
    case Fn::kDouble:
      return ToDoubleValue(a);
    case Fn::kString:
      return ToStringValue(a);
    case Fn::kBool:
      return ToBool(a);
    case Fn::kBytes:
      if (a.kind() == Kind::kBytes) return a;
      if (a.kind() == Kind::kString) return Value::Bytes(std::string(a.AsString()));
      return NoSuchOverload();
    case Fn::kType:
      return Value::Type(KindName(a.kind()));
    case Fn::kDyn:
      return a;
    case Fn::kTimestamp:
      if (a.kind() == Kind::kTimestamp) return a;
      if (a.kind() == Kind::kString) return ParseTimestamp(a.AsString());
      if (a.kind() == Kind::kInt) return MakeTimestamp(a.AsInt(), 0);
      return NoSuchOverload();
    case Fn::kDuration:
      if (a.kind() == Kind::kDuration) return a;
      if (a.kind() == Kind::kString) return ParseDuration(a.AsString());
      return NoSuchOverload();
    case Fn::kGetFullYear:
    case Fn::kGetMonth:
    case Fn::kGetDate:
    case Fn::kGetDayOfMonth:
    case Fn::kGetDayOfWeek:
    case Fn::kGetDayOfYear:
    case Fn::kGetHours:
    case Fn::kGetMinutes:
    case Fn::kGetSeconds:
    case Fn::kGetMilliseconds: {
      if (a.kind() == Kind::kDuration && args.size() == 1) return DurationField(a, FieldOf(fn));
      if (a.kind() != Kind::kTimestamp) return NoSuchOverload();
      std::string_view tz;
      if (args.size() == 2) {
        if (args[1].kind() != Kind::kString) return NoSuchOverload();
        tz = args[1].AsString();
      }
      return TimestampField(a, FieldOf(fn), tz);
    }
    case Fn::kExp:
    case Fn::kLog:
    case Fn::kSigmoid:
      return MathFn(fn, a);
    case Fn::kMin:
      return MinMax(false, args);
    case Fn::kMax:
      return MinMax(true, args);
    default:
      return NoSuchOverload();
  }
}

}  // namespace ecrm::cel::internal
