#include "common/json_writer.h"

#include <gtest/gtest.h>

namespace ecrm {
namespace {

TEST(JsonWriter, NestsAndSeparates) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("a").Int(1).Key("b").BeginArray().String("x").Bool(true).Null().EndArray();
  w.Key("c").BeginObject().EndObject().Key("d").Double(1.5).Key("e").Raw(R"({"k":[1]})");
  w.EndObject();
  EXPECT_EQ(out, R"({"a":1,"b":["x",true,null],"c":{},"d":1.5,"e":{"k":[1]}})");
}

TEST(JsonWriter, EscapesStrings) {
  std::string out;
  AppendJsonString(&out, "q\"b\\n\nt\t\x01 é");
  EXPECT_EQ(out, "\"q\\\"b\\\\n\\nt\\t\\u0001 é\"");
}

TEST(JsonWriter, NonFiniteDoubleIsNull) {
  std::string out;
  JsonWriter w(&out);
  w.BeginArray().Double(1.0 / 0.0).Double(0.1).EndArray();
  EXPECT_EQ(out, "[null,0.1]");
}

}  // namespace
}  // namespace ecrm
