#include "common/time_format.h"

#include <gtest/gtest.h>

#include "absl/time/time.h"

namespace ecrm {
namespace {

TimeMs AbslMs(const std::string& text) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, text, &t, &err)) << err;
  return absl::ToUnixMillis(t);
}

TEST(TimeFormat, AgreesWithAbslOnRfc3339) {
  for (const char* text :
       {"2026-11-22T21:00:00Z", "2026-11-22T21:00:00.123Z", "1970-01-01T00:00:00Z",
        "2024-02-29T23:59:59.999+02:00", "2000-03-01T00:00:00-05:30", "1969-12-31T23:59:59Z",
        "2099-12-31T12:34:56.5Z"}) {
    auto parsed = ParseIso8601(text);
    ASSERT_TRUE(parsed.has_value()) << text;
    EXPECT_EQ(*parsed, AbslMs(text)) << text;
  }
}

TEST(TimeFormat, AcceptsCommonVariants) {
  EXPECT_EQ(ParseIso8601("2026-11-22"), AbslMs("2026-11-22T00:00:00Z"));
  EXPECT_EQ(ParseIso8601("2026-11-22T10:20"), AbslMs("2026-11-22T10:20:00Z"));
  EXPECT_EQ(ParseIso8601("2026-11-22 10:20:30+0100"), AbslMs("2026-11-22T09:20:30Z"));
  EXPECT_EQ(ParseIso8601("2026-11-22T10:20:30.123456789Z"), AbslMs("2026-11-22T10:20:30.123Z"));
}

TEST(TimeFormat, RejectsGarbage) {
  for (const char* text : {"", "yesterday", "2026-13-01", "2026-02-30", "2026-11-22T25:00:00Z",
                           "2026-11-22T10:00:00Q", "2026-11-22T10:00:00Z extra", "2026/11/22",
                           "2026-11-22T10:00:00.Z", "2026-11-22T10:00:00+2"}) {
    EXPECT_FALSE(ParseIso8601(text).has_value()) << text;
  }
}

TEST(TimeFormat, FormatRoundTrips) {
  for (TimeMs t : {0LL, 1LL, 999LL, 1795381200123LL, -1LL, -86400001LL}) {
    const std::string text = FormatIso8601(t);
    EXPECT_EQ(ParseIso8601(text), t) << text;
  }
  EXPECT_EQ(FormatIso8601(0), "1970-01-01T00:00:00.000Z");
}

}  // namespace
}  // namespace ecrm
