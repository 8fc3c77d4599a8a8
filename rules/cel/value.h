// Value: the runtime value of the CEL engine (rules/cel). A small tagged union (40 bytes) that is
// cheap to copy: scalars inline; strings, bytes, lists and maps either borrowed (a raw pointer
// whose target must outlive every use, e.g. the Activation's inputs or the Program's constants) or
// owned through a shared_ptr. Errors are values too (Kind::kError), never exceptions. Threading: a
// Value is immutable; copies may be used from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ecrm::cel {

enum class Kind : uint8_t {
  kNull,
  kBool,
  kInt,
  kUint,
  kDouble,
  kString,
  kBytes,
  kList,
  kMap,
  kTimestamp,
  kDuration,
  kType,
  kError
};

// The CEL name of a kind ("int", "google.protobuf.Timestamp", "null_type", ...).
std::string_view KindName(Kind kind);

class MapValue;

class Value {
 public:
  Value() = default;  // null
  static Value Null() { return Value(); }
  static Value Bool(bool b) {
    Value v;
    v.kind_ = Kind::kBool;
    v.u_.b = b;
    return v;
  }
  static Value Int(int64_t i) {
    Value v;
    v.kind_ = Kind::kInt;
    v.u_.i = i;
    return v;
  }
  static Value Uint(uint64_t u) {
    Value v;
    v.kind_ = Kind::kUint;
    v.u_.u = u;
    return v;
  }
  static Value Double(double d) {
    Value v;
    v.kind_ = Kind::kDouble;
    v.u_.d = d;
    return v;
  }
  static Value String(std::string s);  // owned
  // Borrowed: the bytes must outlive every use of this Value (and of values derived from it).
  static Value StringRef(std::string_view s) {
    Value v;
    v.kind_ = Kind::kString;
    v.u_.s = {s.data(), s.size()};
    return v;
  }
  static Value Bytes(std::string s);
  static Value BytesRef(std::string_view s);
  static Value List(std::shared_ptr<const std::vector<Value>> list);
  static Value ListRef(const std::vector<Value>* list);  // borrowed
  static Value Map(std::shared_ptr<const MapValue> map);
  static Value MapRef(const MapValue* map);  // borrowed
  static Value Timestamp(int64_t unix_nanos);
  // Seconds since the epoch plus 0 <= nanos < 1e9; covers CEL's range (years 1..9999).
  static Value TimestampParts(int64_t seconds, int32_t nanos);
  static Value Duration(int64_t nanos);
  // Normalized so that seconds and nanos have the same sign.
  static Value DurationParts(int64_t seconds, int32_t nanos);
  static Value Type(std::string_view static_name);  // name must be static (KindName) or outlive
  static Value Error(std::string_view message);     // copies the message
  static Value StaticError(const char* message);    // no allocation: message must be static

  Kind kind() const { return kind_; }
  bool is_error() const { return kind_ == Kind::kError; }
  bool AsBool() const { return u_.b; }
  int64_t AsInt() const { return u_.i; }
  uint64_t AsUint() const { return u_.u; }
  double AsDouble() const { return u_.d; }
  // String, bytes, type name or error message.
  std::string_view AsString() const { return {u_.s.p, u_.s.n}; }
  const std::vector<Value>& AsList() const {
    return *static_cast<const std::vector<Value>*>(u_.ptr);
  }
  const MapValue& AsMap() const { return *static_cast<const MapValue*>(u_.ptr); }
  // Nanoseconds since the epoch (saturates outside int64's range, years 1678..2262).
  int64_t AsTimestampNanos() const;
  int64_t AsDurationNanos() const;
  int64_t seconds() const { return u_.t.sec; }  // timestamp / duration
  int32_t nanos() const { return u_.t.nanos; }  // timestamp / duration
  std::string_view ErrorMessage() const { return AsString(); }
  std::string_view TypeName() const { return AsString(); }

  // True when this Value shares ownership of its string/list/map storage; false when it is a
  // scalar or borrows (then everything reachable from it outlives it, as the borrow contract says).
  bool owns_storage() const { return holder_ != nullptr; }
  // The same value without ownership of its string/list/map storage (no refcounting to copy).
  Value Borrow() const {
    Value v;
    v.kind_ = kind_;
    v.u_ = u_;
    return v;
  }
  // A deep copy that owns all of its storage (no borrows left), e.g. to keep a result after the
  // Activation or Program it borrows from is gone. Allocates.
  Value Owned() const;
  // CEL-like rendering: 1, 2u, 1.5, "s", b"\x00", [1, 2], {"a": 1}, timestamp("..."), error(...).
  std::string DebugString() const;

 private:
  struct Str {
    const char* p;
    size_t n;
  };
  struct SecNanos {
    int64_t sec;
    int32_t nanos;
  };
  union Payload {
    bool b;
    int64_t i;
    uint64_t u;
    double d;
    Str s;
    const void* ptr;
    SecNanos t;
  };
  Kind kind_ = Kind::kNull;
  Payload u_{.s = {nullptr, 0}};
  std::shared_ptr<const void> holder_;  // owner of the storage, empty when borrowed
};

// MapValue: an immutable CEL map (keys: bool, int, uint, string). Lookup of string keys is by hash
// beyond a few entries; int/uint/double keys compare numerically (1 == 1u == 1.0). Owned by the
// Value(s) that hold it; thread-safe after construction.
class MapValue {
 public:
  using Entry = std::pair<Value, Value>;
  // An error Value describes an invalid key type or a repeated key.
  static Value Make(std::vector<Entry> entries);
  const std::vector<Entry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  const Value* Find(const Value& key) const;  // nullptr when absent
  const Value* FindString(std::string_view key) const;

 private:
  std::vector<Entry> entries_;
  std::vector<std::pair<std::string_view, uint32_t>> sorted_strings_;  // for large maps
};

// CEL equality (heterogeneous numeric equality, deep on lists and maps; never an error).
bool Equal(const Value& a, const Value& b);
// CEL ordering: -1, 0, 1; 2 when unordered (NaN); 3 when the kinds are not comparable.
int Compare(const Value& a, const Value& b);

}  // namespace ecrm::cel
