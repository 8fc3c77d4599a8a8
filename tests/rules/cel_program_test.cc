// Program-level behaviour of the CEL engine: path collapsing into one Activation::Resolve call, the
// variables-read and required-strings helpers, thread safety, lifetime independence from the Env,
// the JSON bridge, and no heap allocation while evaluating typical rules.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>

#include "tests/rules/cel_test_util.h"

// Counts heap allocations made by the current thread while `g_counting` is set.
namespace {
std::atomic<long> g_allocations{0};
thread_local bool g_counting = false;
}  // namespace

// Replacing operator new would fight AddressSanitizer's own; the allocation test is skipped there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kCountsAllocations = false;
#else
constexpr bool kCountsAllocations = true;
void* operator new(std::size_t n) {
  if (g_counting) g_allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
// GCC cannot see that these deletes pair with the malloc-based new above.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop
#endif

namespace ecrm::cel {
namespace {

// An Activation over fixed structs, like the rule engine's: answers known paths with borrowed
// values and counts its calls.
class StructActivation : public Activation {
 public:
  StructActivation() {
    for (double price : {50.0, 150.0, 20.0, 99.0, 101.0}) {
      auto m = MapValue::Make({{Value::StringRef("price"), Value::Double(price)}});
      products_.push_back(m);
    }
  }
  Value Resolve(int var, std::span<const std::string> path) const override {
    ++resolves;
    last_path.assign(path.begin(), path.end());
    if (var == 0 && path.size() == 1 && path[0] == "type") return Value::StringRef(type_);
    if (var == 0 && path.size() == 2 && path[0] == "properties") {
      if (path[1] == "category") return Value::StringRef(category_);
      if (path[1] == "price") return Value::Double(120.5);
      if (path[1] == "products") return Value::ListRef(&products_);
    }
    if (var == 1 && path.size() == 2 && path[1] == "page_views") return Value::Int(10);
    if (var == 1 && path.size() == 1 && path[0] == "segments") return Value::ListRef(&segments_);
    return Value::StaticError("no such key");
  }
  Value Has(int var, std::span<const std::string> path) const override {
    return Value::Bool(var == 0 && path.size() == 1 && path[0] == "type");
  }
  Value Now() const override { return Value::TimestampParts(1768478400, 0); }

  mutable int resolves = 0;
  mutable std::vector<std::string> last_path;

 private:
  std::string type_ = "track";
  std::string category_ = "shoes";
  std::vector<Value> products_;
  std::vector<Value> segments_ = {Value::StringRef("vip-2025"), Value::StringRef("news")};
};

Program MustCompile(std::string_view expr) {
  Env env({"event", "profile"});
  auto p = Compile(expr, env, nullptr);
  EXPECT_TRUE(p.ok()) << expr << ": " << p.status();
  return *p;
}

TEST(CelProgram, ConstantPathsCollapseIntoOneResolve) {
  StructActivation act;
  for (const char* expr :
       {"event.properties.category == 'shoes'", "event['properties']['category'] == 'shoes'",
        "event.properties['category'] == 'shoes'"}) {
    act.resolves = 0;
    EXPECT_EQ(MustCompile(expr).Evaluate(act).DebugString(), "true") << expr;
    EXPECT_EQ(act.resolves, 1) << expr;
    EXPECT_EQ(act.last_path, (std::vector<std::string>{"properties", "category"})) << expr;
  }
}

TEST(CelProgram, VariablesRead) {
  Program p = MustCompile(
      "event.type == 'track' && has(event.properties.x) && profile.segments.exists(s, s == 'a')");
  std::vector<VariableRead> want = {
      {"event", {"type"}}, {"event", {"properties", "x"}}, {"profile", {"segments"}}};
  EXPECT_EQ(p.variables_read(), want);
  EXPECT_EQ(p.source().substr(0, 10), "event.type");
}

TEST(CelProgram, RequiredStrings) {
  const std::vector<std::string> type = {"type"};
  auto req = [&](std::string_view expr) {
    return MustCompile(expr).RequiredStrings("event", type);
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(req("event.type == 'track' && event.event == 'Product Viewed'"), V{"track"});
  EXPECT_EQ(req("'page' == event.type"), V{"page"});
  EXPECT_EQ(req("event.type in ['track', 'identify'] && profile.x > 1"), (V{"identify", "track"}));
  EXPECT_EQ(req("(event.type == 'a' || event.type == 'b') && true"), (V{"a", "b"}));
  EXPECT_EQ(req("event.type == 'a' || profile.x > 1"), V{});  // any
  EXPECT_EQ(req("profile.x > 1"), V{});
  EXPECT_EQ(req("event.type != 'a'"), V{});
  EXPECT_EQ(req("event.type in ['a', 'b'] && event.type == 'b'"), V{"b"});
}

TEST(CelProgram, OutlivesItsEnvAndIsCopyable) {
  Program copy = [] {
    Env env({"event"});
    return *Compile("event.type + '!'", env, nullptr);
  }();
  StructActivation act;
  Program again = copy;
  EXPECT_EQ(again.Evaluate(act).DebugString(), "\"track!\"");
}

TEST(CelProgram, OwnedResultsOutliveTheActivationAndProgram) {
  Value kept;
  {
    StructActivation act;
    Program p = MustCompile("[event.type, 'lit', {'k': event.properties.category}]");
    kept = p.Evaluate(act).Owned();
  }
  EXPECT_EQ(kept.DebugString(), R"(["track", "lit", {"k": "shoes"}])");
}

TEST(CelProgram, TwoThreadsEvaluateOneProgram) {
  Program p = MustCompile(
      "event.properties.products.exists(p, p.price > 100.0) && "
      "event.properties.category.startsWith('sho') && string(profile.stats.page_views) == '10'");
  std::atomic<int> wrong{0};
  auto work = [&] {
    StructActivation act;
    for (int i = 0; i < 20000; ++i) {
      Value v = p.Evaluate(act);
      if (v.kind() != Kind::kBool || !v.AsBool()) ++wrong;
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(CelProgram, ValueFromJson) {
  auto v = ValueFromJson(R"({"a": [1, 2.5, "s", true, null], "big": 18446744073709551615,
                             "neg": -3, "o": {}})");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(
      v->DebugString(),
      R"({"a": [1, 2.5, "s", true, null], "big": 18446744073709551615u, "neg": -3, "o": {}})");
  EXPECT_FALSE(ValueFromJson("{").ok());
}

TEST(CelProgram, TypicalRulesDoNotAllocate) {
  if (!kCountsAllocations) GTEST_SKIP() << "allocation counting is off under AddressSanitizer";
  StructActivation act;
  const char* rules[] = {
      "event.type == 'track' && event.properties.category == 'shoes'",
      "event.type in ['track', 'page', 'identify', 'screen', 'group', 'alias', 'a', 'b', 'c']",
      "event.properties.category in ['boots', 'shoes']",
      "sigmoid(0.4 * double(profile.stats.page_views) - 2.0) > 0.5",
      "event.properties.price < 3.5 ? (event.properties.price < 1.0 ? 0.2 : 0.7) : 0.9",
      "event.properties.products.exists(p, p.price > 100.0)",
      "profile.segments.exists(s, s.startsWith('vip'))",
      "event.properties.category.matches('^sh')",
      "now - duration('720h') < timestamp('2026-01-01T00:00:00Z')",
      "has(event.type) && size(event.properties.category) > 2",
      "min(1, 2, 3) < max(profile.stats.page_views, 4)",
  };
  for (const char* r : rules) {
    Program p = MustCompile(r);
    Value warm = p.Evaluate(act);
    EXPECT_FALSE(warm.is_error()) << r << ": " << warm.DebugString();
    g_allocations = 0;
    g_counting = true;
    for (int i = 0; i < 100; ++i) {
      Value v = p.Evaluate(act);
      (void)v;
    }
    g_counting = false;
    EXPECT_EQ(g_allocations.load(), 0) << r;
  }
  // The counter works: concatenation builds a new string.
  Program concat = MustCompile("event.type + '!' == 'track!'");
  g_allocations = 0;
  g_counting = true;
  Value v = concat.Evaluate(act);
  g_counting = false;
  EXPECT_EQ(v.DebugString(), "true");
  EXPECT_GT(g_allocations.load(), 0);
}

}  // namespace
}  // namespace ecrm::cel
