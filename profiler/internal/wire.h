// Writer and Reader: the primitives of ecrm's binary formats (the profile value, shard messages):
// varints, zig-zag signed varints, length-prefixed strings, little-endian doubles and fixed64s. A
// Reader never reads past its input: a truncated or corrupt value turns it not-ok and every later
// read returns zero or empty. Header-only; internal to the profiler module.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "profiler/event.h"

namespace ecrm::wire {

// Doubles are stored as their 8 bytes in little-endian order, copied directly.
static_assert(std::endian::native == std::endian::little,
              "ecrm's binary formats assume little-endian");

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<char>(v));
  }
  void Signed(int64_t v) {
    Varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  void Double(double d) {
    char buf[8];
    std::memcpy(buf, &d, 8);
    out_->append(buf, 8);
  }
  void Str(std::string_view s) {
    Varint(s.size());
    out_->append(s);
  }
  void Fixed64(uint64_t v) {
    char buf[8];
    std::memcpy(buf, &v, 8);
    out_->append(buf, 8);
  }
  void Touch(const ecrm::Touch& t) {
    Str(t.source);
    Str(t.medium);
    Str(t.campaign);
    Str(t.term);
    Str(t.content);
    Str(t.referrer);
    Signed(t.at);
  }

 private:
  std::string* out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}
  bool ok() const { return ok_; }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) return Fail();
      const auto b = static_cast<unsigned char>(*p_++);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (b < 0x80) return v;
    }
    return Fail();
  }
  int64_t Signed() {
    const uint64_t v = Varint();
    return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
  }
  double Double() {
    if (end_ - p_ < 8) return static_cast<double>(Fail());
    double d;
    std::memcpy(&d, p_, 8);
    p_ += 8;
    return d;
  }
  uint64_t Fixed64() {
    if (end_ - p_ < 8) return Fail();
    uint64_t v;
    std::memcpy(&v, p_, 8);
    p_ += 8;
    return v;
  }
  std::string Str() {
    const uint64_t n = Varint();
    if (!ok_ || n > static_cast<uint64_t>(end_ - p_)) {
      Fail();
      return {};
    }
    std::string s(p_, n);
    p_ += n;
    return s;
  }
  // A count of following elements; bounded by the bytes left so corrupt input cannot allocate
  // wildly.
  uint64_t Count() {
    const uint64_t n = Varint();
    if (n > static_cast<uint64_t>(end_ - p_)) return Fail();
    return n;
  }
  void Touch(ecrm::Touch& t) {
    t.source = Str();
    t.medium = Str();
    t.campaign = Str();
    t.term = Str();
    t.content = Str();
    t.referrer = Str();
    t.at = Signed();
  }
  bool AtEnd() const { return p_ == end_; }
  // Marks the input corrupt (a value out of its range); returns 0 for the caller to pass on.
  uint64_t Fail() {
    ok_ = false;
    p_ = end_;
    return 0;
  }

 private:
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

}  // namespace ecrm::wire
