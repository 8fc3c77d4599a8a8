// Lexer/parser/checker tests of the CEL engine: precedence, associativity, literals, and compile
// errors with exact line/column.
#include <gtest/gtest.h>

#include <string>

#include "tests/rules/cel_test_util.h"

namespace ecrm::cel {
namespace {

using testing::Show;

TEST(CelParse, Precedence) {
  EXPECT_EQ(Show("1 + 2 * 3"), "7");
  EXPECT_EQ(Show("(1 + 2) * 3"), "9");
  EXPECT_EQ(Show("10 - 4 - 3"), "3");    // left associative
  EXPECT_EQ(Show("100 / 10 / 5"), "2");  // left associative
  EXPECT_EQ(Show("7 % 4 * 2"), "6");
  EXPECT_EQ(Show("-2 * 3"), "-6");
  EXPECT_EQ(Show("true || false && false"), "true");  // && binds tighter
  EXPECT_EQ(Show("!true == false"), "true");          // unary binds tighter than ==
  EXPECT_EQ(Show("1 + 1 == 2 && 2 < 3"), "true");
  EXPECT_EQ(Show("false ? 1 : true ? 2 : 3"), "2");  // ?: is right associative
  EXPECT_EQ(Show("1 < 2 == true"), "true");
  EXPECT_EQ(Show("2 in [1, 2] && !(3 in [1, 2])"), "true");
  EXPECT_EQ(Show("--5"), "5");
  EXPECT_EQ(Show("!!true"), "true");
}

TEST(CelParse, Literals) {
  EXPECT_EQ(Show("1u"), "1u");
  EXPECT_EQ(Show("0x1F"), "31");
  EXPECT_EQ(Show("-9223372036854775808"), "-9223372036854775808");
  EXPECT_EQ(Show("18446744073709551615u"), "18446744073709551615u");
  EXPECT_EQ(Show("1e3"), "1000.0");
  EXPECT_EQ(Show(".5"), "0.5");
  EXPECT_EQ(Show(R"('a\tb\x41\101\u00e9')"), "\"a\\tbAAé\"");
  EXPECT_EQ(Show(R"(r'\n')"), R"("\\n")");
  EXPECT_EQ(Show("'''a\nb'''"), R"("a\nb")");
  EXPECT_EQ(Show(R"(b'\xff\000')"), R"(b"\xff\x00")");
  EXPECT_EQ(Show("null"), "null");
  EXPECT_EQ(Show("[1, 'a', [true]]"), R"([1, "a", [true]])");
  EXPECT_EQ(Show("{'a': 1, 2: 'b',}"), R"({"a": 1, 2: "b"})");
  EXPECT_EQ(Show("// comment\n 1 // trailing"), "1");
  EXPECT_EQ(Show("{'content-type': 1}.`content-type`"), "1");
}

// The first error's "line:column: message".
std::string FirstError(std::string_view expr) {
  std::vector<CompileError> errors;
  auto p = Compile(expr, testing::TestEnv(), &errors);
  EXPECT_FALSE(p.ok()) << expr;
  if (errors.empty()) return "";
  return std::to_string(errors[0].line) + ":" + std::to_string(errors[0].column) + ": " +
         errors[0].message;
}

TEST(CelParse, ErrorsCarryLineAndColumn) {
  EXPECT_EQ(FirstError("(1 + 2, 3)"), "1:7: expected ')' but found ','");
  EXPECT_EQ(FirstError("event.type == 'a' &&\n  evnt.x == 1"),
            "2:3: undeclared reference to 'evnt'");
  EXPECT_EQ(FirstError("foo(1, 2)"), "1:1: unknown function 'foo' with 2 arguments");
  EXPECT_EQ(FirstError("x.foo()"), "1:3: unknown method 'foo' with 0 arguments");
  EXPECT_EQ(FirstError("'abc"), "1:1: unterminated string literal");
  EXPECT_EQ(FirstError("1 +"), "1:4: unexpected end of input");
  EXPECT_EQ(FirstError("x = 1"), "1:3: unexpected '=' (did you mean '=='?)");
  EXPECT_EQ(FirstError("1 2"), "1:3: unexpected int literal after the end of the expression");
  EXPECT_EQ(FirstError("9223372036854775808"), "1:1: integer literal out of range");
  EXPECT_EQ(FirstError("x.matches('[')").substr(0, 37), "1:11: invalid regular expression: mis");
  EXPECT_EQ(FirstError("'é' + y.z +\n 'ü' + if"), "2:8: reserved identifier 'if'");
  EXPECT_EQ(FirstError("[1].all(1, true)"),
            "1:9: all() macro: the first argument must be a simple name");
  EXPECT_EQ(FirstError("has(x)"), "1:1: invalid argument to has() macro");
}

TEST(CelParse, OutsideTheSubsetIsACleanError) {
  EXPECT_EQ(FirstError("TestAllTypes{a: 1}"), "1:13: message construction is not supported");
  EXPECT_EQ(FirstError("x.?y"), "1:3: expected identifier after '.' but found '?'");
  EXPECT_EQ(FirstError("x[?0]"), "1:3: optional indexing is not supported");
  EXPECT_EQ(FirstError("optional.of(1)"), "1:1: undeclared reference to 'optional'");
  EXPECT_EQ(FirstError("cel.bind(a, 1, a)"), "1:1: undeclared reference to 'cel'");
  EXPECT_EQ(FirstError("google.protobuf.Timestamp"), "1:1: undeclared reference to 'google'");
  EXPECT_EQ(FirstError("x.all(1, 2, 3)"), "1:3: unknown method 'all' with 3 arguments");
}

TEST(CelParse, Limits) {
  std::string deep(150, '(');
  deep += "1" + std::string(150, ')');
  EXPECT_NE(FirstError(deep).find("nested too deeply"), std::string::npos);
  std::string bangs(20000, '!');
  EXPECT_FALSE(Compile(bangs + "true", testing::TestEnv(), nullptr).ok());
  std::string sum = "1";
  for (int i = 0; i < 1000; ++i) sum += "+1";
  EXPECT_NE(FirstError(sum).find("too deeply nested"), std::string::npos);
  std::string chain = "x";
  for (int i = 0; i < 1000; ++i) chain += ".a";
  EXPECT_NE(FirstError(chain).find("too deeply nested"), std::string::npos);
  std::string lists(90, '[');
  lists += std::string(90, ']');
  EXPECT_NE(FirstError(lists).find("nested too deeply"), std::string::npos);
  std::string big(kMaxExpressionBytes + 1, ' ');
  EXPECT_EQ(FirstError(big), "1:1: expression too long (16385 bytes, the limit is 16384)");
  std::string ok = "1";
  for (int i = 0; i < 300; ++i) ok += "+1";
  EXPECT_EQ(Show(ok), "301");
}

}  // namespace
}  // namespace ecrm::cel
