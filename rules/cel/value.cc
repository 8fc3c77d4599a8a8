#include "rules/cel/value.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rules/cel/internal/time_util.h"

namespace ecrm::cel {

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kNull:
      return "null_type";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kUint:
      return "uint";
    case Kind::kDouble:
      return "double";
    case Kind::kString:
      return "string";
    case Kind::kBytes:
      return "bytes";
    case Kind::kList:
      return "list";
    case Kind::kMap:
      return "map";
    case Kind::kTimestamp:
      return "google.protobuf.Timestamp";
    case Kind::kDuration:
      return "google.protobuf.Duration";
    case Kind::kType:
      return "type";
    case Kind::kError:
      return "error";
  }
  return "unknown";
}

Value Value::String(std::string s) {
  auto owned = std::make_shared<const std::string>(std::move(s));
  Value v = StringRef(*owned);
  v.holder_ = std::move(owned);
  return v;
}
Value Value::Bytes(std::string s) {
  Value v = String(std::move(s));
  v.kind_ = Kind::kBytes;
  return v;
}
Value Value::BytesRef(std::string_view s) {
  Value v = StringRef(s);
  v.kind_ = Kind::kBytes;
  return v;
}
Value Value::List(std::shared_ptr<const std::vector<Value>> list) {
  Value v = ListRef(list.get());
  v.holder_ = std::move(list);
  return v;
}
Value Value::ListRef(const std::vector<Value>* list) {
  Value v;
  v.kind_ = Kind::kList;
  v.u_.ptr = list;
  return v;
}
Value Value::Map(std::shared_ptr<const MapValue> map) {
  Value v = MapRef(map.get());
  v.holder_ = std::move(map);
  return v;
}
Value Value::MapRef(const MapValue* map) {
  Value v;
  v.kind_ = Kind::kMap;
  v.u_.ptr = map;
  return v;
}
Value Value::Timestamp(int64_t unix_nanos) {
  int64_t sec = unix_nanos / 1000000000;
  int64_t nanos = unix_nanos % 1000000000;
  if (nanos < 0) {
    nanos += 1000000000;
    --sec;
  }
  return TimestampParts(sec, static_cast<int32_t>(nanos));
}
Value Value::TimestampParts(int64_t seconds, int32_t nanos) {
  Value v;
  v.kind_ = Kind::kTimestamp;
  v.u_.t = {seconds, nanos};
  return v;
}
Value Value::Duration(int64_t nanos) {
  return DurationParts(nanos / 1000000000, static_cast<int32_t>(nanos % 1000000000));
}
Value Value::DurationParts(int64_t seconds, int32_t nanos) {
  Value v;
  v.kind_ = Kind::kDuration;
  v.u_.t = {seconds, nanos};
  return v;
}
Value Value::Type(std::string_view static_name) {
  Value v = StringRef(static_name);
  v.kind_ = Kind::kType;
  return v;
}
Value Value::Error(std::string_view message) {
  Value v = String(std::string(message));
  v.kind_ = Kind::kError;
  return v;
}
Value Value::StaticError(const char* message) {
  Value v = StringRef(message);
  v.kind_ = Kind::kError;
  return v;
}

static int64_t SaturatingNanos(int64_t sec, int32_t nanos) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max() / 1000000000 - 1;
  if (sec > kMax) return std::numeric_limits<int64_t>::max();
  if (sec < -kMax) return std::numeric_limits<int64_t>::min();
  return sec * 1000000000 + nanos;
}
int64_t Value::AsTimestampNanos() const { return SaturatingNanos(u_.t.sec, u_.t.nanos); }
int64_t Value::AsDurationNanos() const { return SaturatingNanos(u_.t.sec, u_.t.nanos); }

Value Value::Owned() const {
  switch (kind_) {
    case Kind::kString:
      return String(std::string(AsString()));
    case Kind::kBytes:
      return Bytes(std::string(AsString()));
    case Kind::kError:
      return Error(AsString());
    case Kind::kType:
      return *this;  // type names are static
    case Kind::kList: {
      auto list = std::make_shared<std::vector<Value>>();
      list->reserve(AsList().size());
      for (const Value& v : AsList()) list->push_back(v.Owned());
      return List(std::move(list));
    }
    case Kind::kMap: {
      std::vector<MapValue::Entry> entries;
      entries.reserve(AsMap().size());
      for (const auto& [k, v] : AsMap().entries()) entries.emplace_back(k.Owned(), v.Owned());
      return MapValue::Make(std::move(entries));
    }
    default:
      return Borrow();  // scalars
  }
}

// ---- MapValue ----

static bool ValidKey(const Value& k) {
  Kind kind = k.kind();
  return kind == Kind::kBool || kind == Kind::kInt || kind == Kind::kUint || kind == Kind::kString;
}

Value MapValue::Make(std::vector<Entry> entries) {
  auto map = std::make_shared<MapValue>();
  for (auto& [k, v] : entries) {
    if (k.is_error()) return k;
    if (v.is_error()) return v;
    if (!ValidKey(k)) return Value::StaticError("unsupported key type");
    if (map->Find(k) != nullptr) return Value::StaticError("Failed with repeated key");
    map->entries_.emplace_back(std::move(k), std::move(v));
    if (map->entries_.size() > 8) map->sorted_strings_.clear();
  }
  if (map->entries_.size() > 8) {
    for (uint32_t i = 0; i < map->entries_.size(); ++i) {
      if (map->entries_[i].first.kind() == Kind::kString) {
        map->sorted_strings_.emplace_back(map->entries_[i].first.AsString(), i);
      }
    }
    std::sort(map->sorted_strings_.begin(), map->sorted_strings_.end());
  }
  return Value::Map(std::move(map));
}

const Value* MapValue::FindString(std::string_view key) const {
  if (!sorted_strings_.empty()) {
    auto it = std::lower_bound(sorted_strings_.begin(), sorted_strings_.end(), key,
                               [](const auto& e, std::string_view k) { return e.first < k; });
    if (it != sorted_strings_.end() && it->first == key) return &entries_[it->second].second;
    return nullptr;
  }
  for (const auto& [k, v] : entries_) {
    if (k.kind() == Kind::kString && k.AsString() == key) return &v;
  }
  return nullptr;
}

const Value* MapValue::Find(const Value& key) const {
  switch (key.kind()) {
    case Kind::kString:
      return FindString(key.AsString());
    case Kind::kBool:
      for (const auto& [k, v] : entries_) {
        if (k.kind() == Kind::kBool && k.AsBool() == key.AsBool()) return &v;
      }
      return nullptr;
    case Kind::kInt:
    case Kind::kUint:
    case Kind::kDouble:
      for (const auto& [k, v] : entries_) {
        if ((k.kind() == Kind::kInt || k.kind() == Kind::kUint) && Compare(k, key) == 0) return &v;
      }
      return nullptr;
    default:
      return nullptr;
  }
}

// ---- equality and ordering ----

// CEL orders an int or uint against a double by converting it to double (lossy beyond 2^53).
static int CompareDoubles(double x, double d) {
  if (std::isnan(d) || std::isnan(x)) return 2;
  return x < d ? -1 : (x > d ? 1 : 0);
}
static int CompareIntDouble(int64_t i, double d) {
  return CompareDoubles(static_cast<double>(i), d);
}
static int CompareUintDouble(uint64_t u, double d) {
  return CompareDoubles(static_cast<double>(u), d);
}
template <typename T>
static int Cmp(T a, T b) {
  return a < b ? -1 : (a > b ? 1 : 0);
}

int Compare(const Value& a, const Value& b) {
  Kind ka = a.kind(), kb = b.kind();
  switch (ka) {
    case Kind::kInt:
      if (kb == Kind::kInt) return Cmp(a.AsInt(), b.AsInt());
      if (kb == Kind::kUint) {
        return a.AsInt() < 0 ? -1 : Cmp(static_cast<uint64_t>(a.AsInt()), b.AsUint());
      }
      if (kb == Kind::kDouble) return CompareIntDouble(a.AsInt(), b.AsDouble());
      return 3;
    case Kind::kUint:
      if (kb == Kind::kUint) return Cmp(a.AsUint(), b.AsUint());
      if (kb == Kind::kInt) {
        return b.AsInt() < 0 ? 1 : Cmp(a.AsUint(), static_cast<uint64_t>(b.AsInt()));
      }
      if (kb == Kind::kDouble) return CompareUintDouble(a.AsUint(), b.AsDouble());
      return 3;
    case Kind::kDouble:
      if (kb == Kind::kDouble) {
        double x = a.AsDouble(), y = b.AsDouble();
        if (std::isnan(x) || std::isnan(y)) return 2;
        return Cmp(x, y);
      }
      if (kb == Kind::kInt) {
        int c = CompareIntDouble(b.AsInt(), a.AsDouble());
        return c == 2 ? 2 : -c;
      }
      if (kb == Kind::kUint) {
        int c = CompareUintDouble(b.AsUint(), a.AsDouble());
        return c == 2 ? 2 : -c;
      }
      return 3;
    case Kind::kBool:
      if (kb != ka) return 3;
      return Cmp(a.AsBool(), b.AsBool());
    case Kind::kString:
    case Kind::kBytes: {
      if (kb != ka) return 3;
      int c = a.AsString().compare(b.AsString());
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    case Kind::kTimestamp:
    case Kind::kDuration:
      if (kb != ka) return 3;
      if (a.seconds() != b.seconds()) return Cmp(a.seconds(), b.seconds());
      return Cmp(a.nanos(), b.nanos());
    default:
      return 3;
  }
}

bool Equal(const Value& a, const Value& b) {
  Kind ka = a.kind(), kb = b.kind();
  switch (ka) {
    case Kind::kNull:
      return kb == Kind::kNull;
    case Kind::kType:
      return kb == Kind::kType && a.AsString() == b.AsString();
    case Kind::kList: {
      if (kb != Kind::kList) return false;
      const auto& x = a.AsList();
      const auto& y = b.AsList();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!Equal(x[i], y[i])) return false;
      }
      return true;
    }
    case Kind::kMap: {
      if (kb != Kind::kMap) return false;
      const MapValue& x = a.AsMap();
      const MapValue& y = b.AsMap();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.entries()) {
        const Value* w = y.Find(k);
        if (w == nullptr || !Equal(v, *w)) return false;
      }
      return true;
    }
    case Kind::kError:
      return false;
    default:
      return Compare(a, b) == 0;
  }
}

// ---- rendering ----

static void AppendQuoted(std::string* out, std::string_view s, bool bytes) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20 || c == 0x7f || (bytes && c >= 0x80)) {
          absl::StrAppendFormat(out, "\\x%02x", c);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

static void Render(const Value& v, std::string* out) {
  switch (v.kind()) {
    case Kind::kNull:
      out->append("null");
      return;
    case Kind::kBool:
      out->append(v.AsBool() ? "true" : "false");
      return;
    case Kind::kInt:
      absl::StrAppend(out, v.AsInt());
      return;
    case Kind::kUint:
      absl::StrAppend(out, v.AsUint(), "u");
      return;
    case Kind::kDouble: {
      std::string d = internal::FormatDouble(v.AsDouble());
      if (d.find_first_of(".eIN") == std::string::npos) d += ".0";
      out->append(d);
      return;
    }
    case Kind::kString:
      AppendQuoted(out, v.AsString(), false);
      return;
    case Kind::kBytes:
      out->push_back('b');
      AppendQuoted(out, v.AsString(), true);
      return;
    case Kind::kList: {
      out->push_back('[');
      bool first = true;
      for (const Value& e : v.AsList()) {
        if (!first) out->append(", ");
        first = false;
        Render(e, out);
      }
      out->push_back(']');
      return;
    }
    case Kind::kMap: {
      out->push_back('{');
      bool first = true;
      for (const auto& [k, e] : v.AsMap().entries()) {
        if (!first) out->append(", ");
        first = false;
        Render(k, out);
        out->append(": ");
        Render(e, out);
      }
      out->push_back('}');
      return;
    }
    case Kind::kTimestamp:
      out->append("timestamp(\"" + internal::FormatTimestamp(v.seconds(), v.nanos()) + "\")");
      return;
    case Kind::kDuration:
      out->append("duration(\"" + internal::FormatDuration(v.seconds(), v.nanos()) + "\")");
      return;
    case Kind::kType:
      out->append(v.TypeName());
      return;
    case Kind::kError:
      out->append("error(").append(v.ErrorMessage()).append(")");
      return;
  }
}

std::string Value::DebugString() const {
  std::string out;
  Render(*this, &out);
  return out;
}

}  // namespace ecrm::cel
