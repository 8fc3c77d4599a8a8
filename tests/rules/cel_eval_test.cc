// Semantics of the CEL engine's supported subset, feature by feature, including runtime errors as
// values and ecrm's extensions (exp, log, sigmoid, min, max, now).
#include <gtest/gtest.h>
#include <malloc.h>

#include "tests/rules/cel_test_util.h"

namespace ecrm::cel {
namespace {

using testing::IsError;
using testing::Show;

TEST(CelEval, TypicalRules) {
  EXPECT_EQ(Show("event.type == 'track' && event.event == 'Product Viewed' && "
                 "event.properties.category == 'shoes'"),
            "true");
  EXPECT_EQ(Show("profile.counters.shoe_views >= 3"), "true");
  EXPECT_EQ(Show("sigmoid(0.4 * double(profile.stats.page_views) - 2.0)"), "0.8807970779778823");
  EXPECT_EQ(Show("has(profile.traits.plan) && profile.traits.plan in ['gold', 'platinum']"),
            "true");
  EXPECT_EQ(Show("now - timestamp(profile.traits.signup) > duration('720h')"), "true");
  EXPECT_EQ(Show("event.properties.products.exists(p, p.price > 100.0)"), "true");
  EXPECT_EQ(Show("profile.segments.exists(s, s.startsWith('vip'))"), "true");
  EXPECT_EQ(Show("x < 3.5 ? (y < 1.0 ? 0.2 : 0.7) : 0.9", "2.0", "1.5"), "0.7");
}

TEST(CelEval, FieldsIndexAndHas) {
  const char* x = R"({"a": {"b": 1}, "l": [10, 20], "m": {"k": "v"}})";
  EXPECT_EQ(Show("x.a.b", x), "1");
  EXPECT_EQ(Show("x['a']['b']", x), "1");
  EXPECT_EQ(Show("x.l[1]", x), "20");
  EXPECT_EQ(Show("x.l[1u]", x), "20");
  EXPECT_EQ(Show("x.l[2]", x), "error(index out of range)");
  EXPECT_EQ(Show("x.l[-1]", x), "error(index out of range)");
  EXPECT_EQ(Show("x.a.c", x), "error(no such key: c)");
  EXPECT_EQ(Show("x.m['z']", x), "error(no such key: z)");
  EXPECT_EQ(Show("x.m[y]", x, "\"z\""), "error(no such key: z)");
  EXPECT_EQ(Show("{1: 2}[y]", x, "3"), "error(no such key: 3)");
  EXPECT_EQ(Show("x.l.a", x), "error(type 'list' does not support field selection)");
  EXPECT_EQ(Show("has(x.a.b)", x), "true");
  EXPECT_EQ(Show("has(x.a.c)", x), "false");
  EXPECT_EQ(Show("has(x.z.c)", x), "error(no such key: z)");
  EXPECT_EQ(Show("has({'a': 1}.a)"), "true");
  EXPECT_EQ(Show("{'a': 1}.b"), "error(no such key: b)");
  EXPECT_EQ(Show("[1, 2, 3][1]"), "2");
  EXPECT_EQ(Show("{1: 'one', 'two': 2}[1u]"), "\"one\"");
  EXPECT_EQ(Show("{1: 'one'}[1.0]"), "\"one\"");
  EXPECT_EQ(Show("{'a': 1, 'a': 2}"), "error(Failed with repeated key)");
}

TEST(CelEval, Arithmetic) {
  EXPECT_EQ(Show("9223372036854775807 + 1"), "error(integer overflow)");
  EXPECT_EQ(Show("-9223372036854775808 - 1"), "error(integer overflow)");
  EXPECT_EQ(Show("-9223372036854775808 / -1"), "error(integer overflow)");
  EXPECT_EQ(Show("4611686018427387904 * 2"), "error(integer overflow)");
  EXPECT_EQ(Show("0u - 1u"), "error(integer overflow)");
  EXPECT_EQ(Show("1 / 0"), "error(division by zero)");
  EXPECT_EQ(Show("1 % 0"), "error(modulus by zero)");
  EXPECT_EQ(Show("-7 / 2"), "-3");
  EXPECT_EQ(Show("-7 % 2"), "-1");
  EXPECT_EQ(Show("1.0 / 0.0"), "+Inf");
  EXPECT_EQ(Show("0.0 / 0.0 == 0.0 / 0.0"), "false");
  EXPECT_EQ(Show("1 + 1.0"), "error(no such overload)");
  EXPECT_EQ(Show("'ab' + 'cd'"), "\"abcd\"");
  EXPECT_EQ(Show("b'a' + b'b'"), "b\"ab\"");
  EXPECT_EQ(Show("[1] + [2, 3]"), "[1, 2, 3]");
  EXPECT_EQ(Show("-x", "5"), "-5");
}

TEST(CelEval, Comparisons) {
  EXPECT_EQ(Show("1 == 1.0 && 1u == 1 && 2 > 1u && 1.5 < 2"), "true");
  EXPECT_EQ(Show("'a' < 1"), "error(no such overload)");
  EXPECT_EQ(Show("'a' == 1"), "false");
  EXPECT_EQ(Show("'abc' < 'abd' && b'a' < b'b' && false < true"), "true");
  EXPECT_EQ(Show("[1, 2] == [1, 2.0] && {'a': 1} == {'a': 1u}"), "true");
  EXPECT_EQ(Show("null == null && x == null"), "true");
  EXPECT_EQ(Show("[1] < [2]"), "error(no such overload)");
}

TEST(CelEval, LogicAbsorbsErrors) {
  EXPECT_EQ(Show("false && 1 / 0 == 1"), "false");
  EXPECT_EQ(Show("1 / 0 == 1 && false"), "false");
  EXPECT_EQ(Show("true || 1 / 0 == 1"), "true");
  EXPECT_EQ(Show("1 / 0 == 1 || true"), "true");
  EXPECT_EQ(Show("1 / 0 == 1 && true"), "error(division by zero)");
  EXPECT_EQ(Show("false || 1 / 0 == 1"), "error(division by zero)");
  EXPECT_EQ(Show("x.missing == 1 && false", "{}"), "false");
  EXPECT_EQ(Show("1 && true"), "error(no such overload)");
  EXPECT_EQ(Show("!1"), "error(no such overload)");
  EXPECT_EQ(Show("1 / 0 == 1 ? 1 : 2"), "error(division by zero)");
  EXPECT_EQ(Show("'a' ? 1 : 2"), "error(no such overload)");
}

TEST(CelEval, InSizeAndStrings) {
  EXPECT_EQ(Show("'b' in ['a', 'b'] && !('c' in ['a', 'b']) && 2 in [1, 2.0]"), "true");
  EXPECT_EQ(Show("'k' in {'k': 1} && !('z' in {'k': 1})"), "true");
  EXPECT_EQ(Show("x in ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']", "\"i\""), "true");
  EXPECT_EQ(Show("x in ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']", "\"z\""), "false");
  EXPECT_EQ(Show("x in ['a', 'b']", "1"), "false");
  EXPECT_EQ(Show("x in y", "1", "[1, 2]"), "true");
  EXPECT_EQ(Show("1 in 1"), "error(no such overload)");
  EXPECT_EQ(Show("size('héllo') == 5 && 'héllo'.size() == 5 && size(b'\\xff') == 1"), "true");
  EXPECT_EQ(Show("size([1, 2]) + size({'a': 1})"), "3");
  EXPECT_EQ(Show("'foobar'.startsWith('foo') && 'foobar'.endsWith('bar')"), "true");
  EXPECT_EQ(Show("'foobar'.contains('oba') && !'foobar'.contains('x')"), "true");
  EXPECT_EQ(Show("'foobar'.matches('o+b') && !'foobar'.matches('^o')"), "true");
  EXPECT_EQ(Show("matches('foobar', 'fo{2}')"), "true");
  EXPECT_EQ(Show("x.matches('a' + 'b')", "\"xaby\""), "true");  // a constant, folded
  // A pattern that is not a constant does not compile (docs/rules-cel.md#limits).
  EXPECT_EQ(Show("x.matches(y)", "\"abc\"", "\"b\""),
            "compile: 1:11: matches: the pattern must be a string literal");
  EXPECT_EQ(Show("x.startsWith(1)", "\"abc\""), "error(no such overload)");
}

TEST(CelEval, Conversions) {
  EXPECT_EQ(Show("int('42') + int(2.9) + int(-2.9) + int(3u)"), "45");
  EXPECT_EQ(Show("int('4x')"), "error(cannot convert string to int)");
  EXPECT_EQ(Show("int(1e19)"), "error(double out of int range)");
  EXPECT_EQ(Show("uint(-1)"), "error(integer overflow)");
  EXPECT_EQ(Show("uint('7') + uint(2.5)"), "9u");
  EXPECT_EQ(Show("double('1.5') + double(1) + double(1u)"), "3.5");
  EXPECT_EQ(Show("string(1) + string(2u) + string(1.5) + string(true) + string(b'x')"),
            "\"121.5truex\"");
  EXPECT_EQ(Show("string(b'\\xff')"), "error(invalid UTF-8 in bytes)");
  EXPECT_EQ(Show("bool('true') && !bool('0')"), "true");
  EXPECT_EQ(Show("bytes('a')"), "b\"a\"");
  EXPECT_EQ(Show("type(1) == int && type('a') == string && type(type(1)) == type"), "true");
  EXPECT_EQ(Show("type(timestamp('2020-01-01T00:00:00Z'))"), "google.protobuf.Timestamp");
  EXPECT_EQ(Show("dyn(1) == 1"), "true");
}

TEST(CelEval, TimestampsAndDurations) {
  EXPECT_EQ(Show("duration('1h30m') == duration('5400s')"), "true");
  EXPECT_EQ(Show("duration('1.5h') == duration('90m')"), "true");
  EXPECT_EQ(Show("duration('-2m') < duration('0')"), "true");
  EXPECT_EQ(Show("duration('720h')"), "duration(\"2592000s\")");
  EXPECT_EQ(Show("duration('1h') + duration('30s') - duration('1ms')"), "duration(\"3629.999s\")");
  EXPECT_EQ(Show("duration('5')"), "error(invalid duration: missing unit)");
  EXPECT_EQ(Show("duration('1x')"), "error(invalid duration: missing unit)");
  EXPECT_EQ(Show("timestamp('2026-01-15T12:00:00Z') == now && now() == now"), "true");
  EXPECT_EQ(Show("timestamp('2026-01-15T14:00:00+02:00') == now"), "true");
  EXPECT_EQ(Show("now - duration('24h')"), "timestamp(\"2026-01-14T12:00:00Z\")");
  EXPECT_EQ(Show("now - timestamp('2026-01-15T11:00:00Z')"), "duration(\"3600s\")");
  EXPECT_EQ(Show("int(timestamp('1970-01-01T00:01:00Z'))"), "60");
  EXPECT_EQ(Show("timestamp(60)"), "timestamp(\"1970-01-01T00:01:00Z\")");
  EXPECT_EQ(Show("timestamp('2026-13-01T00:00:00Z')"), "error(timestamp out of range)");
  EXPECT_EQ(Show("timestamp('yesterday')"), "error(invalid timestamp)");
  EXPECT_EQ(Show("[now.getFullYear(), now.getMonth(), now.getDate(), now.getDayOfMonth(), "
                 "now.getDayOfWeek(), now.getDayOfYear(), now.getHours(), now.getMinutes(), "
                 "now.getSeconds(), now.getMilliseconds()]"),
            "[2026, 0, 15, 14, 4, 14, 12, 0, 0, 0]");
  EXPECT_EQ(Show("now.getHours('Europe/Paris')"), "13");
  EXPECT_EQ(Show("now.getHours('-05:30')"), "6");
  EXPECT_EQ(Show("now.getHours('Mars/Olympus')"), "error(unknown time zone)");
  EXPECT_EQ(Show("duration('3h5m').getMinutes()"), "185");
  EXPECT_EQ(Show("now + 1"), "error(no such overload)");
}

// A time zone name taken from an event reaches absl's zone cache, which keeps every name it is
// asked for (unknown ones too) for good: only names of the system's zone files may.
TEST(CelEval, UnknownTimeZoneNamesDoNotGrowMemory) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "glibc's mallinfo2 does not see AddressSanitizer's allocator";
#endif
  EXPECT_EQ(Show("now.getHours('Europe/Berlin')"), "13");
  EXPECT_EQ(Show("now.getHours('../../etc/passwd')"), "error(unknown time zone)");
  const size_t before = mallinfo2().uordblks;
  for (int i = 0; i < 20'000; i++) {
    EXPECT_EQ(Show("now.getHours('Zone/" + std::to_string(i) + "-x')"), "error(unknown time zone)");
  }
  EXPECT_LT(mallinfo2().uordblks - before, size_t{1} << 20);
}

TEST(CelEval, Macros) {
  EXPECT_EQ(Show("[1, 2, 3].all(i, i > 0) && ![1, 2, 3].all(i, i > 1)"), "true");
  EXPECT_EQ(Show("[1, 2, 3].exists(i, i > 2) && ![1, 2].exists(i, i > 2)"), "true");
  EXPECT_EQ(Show("[1, 2, 3].exists_one(i, i > 2) && ![1, 2, 3].exists_one(i, i > 1)"), "true");
  EXPECT_EQ(Show("[1, 2, 3].map(i, i * 2)"), "[2, 4, 6]");
  EXPECT_EQ(Show("[1, 2, 3].map(i, i > 1, i * 2)"), "[4, 6]");
  EXPECT_EQ(Show("[1, 2, 3].filter(i, i != 2)"), "[1, 3]");
  EXPECT_EQ(Show("{'a': 1, 'b': 2}.all(k, k in ['a', 'b'])"), "true");
  EXPECT_EQ(Show("{'a': 1, 'b': 2}.map(k, k + k)"), "[\"aa\", \"bb\"]");
  EXPECT_EQ(Show("[0, 1].exists(i, 1 / i == 1)"), "true");  // an error is absorbed
  EXPECT_EQ(Show("[0, 1].all(i, 1 / i == 1)"), "error(division by zero)");
  EXPECT_EQ(Show("[0, 1].all(i, 1 / i == 5)"), "false");  // false wins over the error
  EXPECT_EQ(Show("[[1, 2], [3]].all(l, l.all(i, i > 0))"), "true");
  EXPECT_EQ(Show("[1, 2].exists(x, x == 2) && x == 'outer'", "\"outer\""), "true");  // shadowing
  EXPECT_EQ(Show("1.all(i, true)"), "error(expression does not support iteration)");
  // Nested comprehensions multiply: 100^3 iterations exceed the default cost budget.
  std::string hundred = "[0";
  for (int i = 1; i < 100; ++i) hundred += ",0";
  hundred += "]";
  EXPECT_EQ(Show("x.all(a, x.all(b, x.all(c, true)))", hundred),
            "error(evaluation cost budget exceeded)");
  EXPECT_EQ(Show("x.all(a, x.all(b, true))", hundred), "true");
  EXPECT_EQ(Show("event.properties.products.map(p, p.price).filter(v, v > 100.0)"), "[150.0]");
}

TEST(CelEval, Extensions) {
  EXPECT_EQ(Show("exp(0.0) == 1.0 && log(1) == 0.0 && sigmoid(0) == 0.5"), "true");
  EXPECT_EQ(Show("min(3, 1, 2)"), "1");
  EXPECT_EQ(Show("max(1, 2.5)"), "2.5");
  EXPECT_EQ(Show("max(3, 2.5)"), "3.0");  // mixed int/double -> double
  EXPECT_EQ(Show("min([3u, 1u])"), "1u");
  EXPECT_EQ(Show("max(x)", "[1, 7, 3]"), "7");
  EXPECT_EQ(Show("max([])"), "error(min/max of an empty list)");
  EXPECT_EQ(Show("min('a', 'b')"), "error(no such overload)");
  EXPECT_EQ(Show("exp('a')"), "error(no such overload)");
}

TEST(CelEval, RuntimeErrorsAreValues) {
  EXPECT_EQ(Show("event.nope == 1"), "error(no such key: nope)");
  EXPECT_EQ(Show("event.properties.nope.deeper"), "error(no such key: nope)");
  EXPECT_EQ(Show("event.type.length"), "error(type 'string' does not support field selection)");
  EXPECT_TRUE(IsError(Show("int('x') + 1")));
  // An Activation without a clock: `now` is an error, not a crash.
  Env env({"event"});
  auto p = Compile("now > timestamp(0)", env, nullptr);
  ASSERT_TRUE(p.ok());
  ValueActivation act(env);
  EXPECT_EQ(p->Evaluate(act).DebugString(), "error('now' is not bound in this activation)");
  auto q = Compile("event", env, nullptr);
  EXPECT_EQ(q->Evaluate(act).DebugString(), "error(unbound variable)");
}

}  // namespace
}  // namespace ecrm::cel
