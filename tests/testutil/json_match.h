// ExpectContains: `expected` JSON must be contained in `actual` (gtest assertions). Used by the
// data-driven scenario tests.
#pragma once

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace ecrm::testing {

// `expected` must be contained in `actual`: objects key by key, arrays element by element and of
// the same length, numbers within 1e-12 (relative), everything else equal.
inline void ExpectContains(simdjson::dom::element expected, simdjson::dom::element actual,
                           const std::string& where) {
  using T = simdjson::dom::element_type;
  if (expected.is_number()) {
    ASSERT_TRUE(actual.is_number()) << where << ": " << simdjson::minify(actual);
    const double e = double(expected), a = double(actual);
    EXPECT_NEAR(a, e, 1e-12 * std::max(1.0, std::fabs(e))) << where;
    return;
  }
  ASSERT_EQ(expected.type(), actual.type()) << where << ": " << simdjson::minify(actual);
  if (expected.type() == T::OBJECT) {
    for (auto [key, value] : expected.get_object()) {
      auto a = actual[key];
      ASSERT_FALSE(a.error()) << where << "." << key << " missing in " << simdjson::minify(actual);
      ExpectContains(value, a.value_unsafe(), where + "." + std::string(key));
    }
  } else if (expected.type() == T::ARRAY) {
    simdjson::dom::array e = expected, a = actual;
    ASSERT_EQ(e.size(), a.size()) << where << ": " << simdjson::minify(actual);
    for (size_t i = 0; i < e.size(); i++) {
      ExpectContains(e.at(i).value_unsafe(), a.at(i).value_unsafe(),
                     where + "[" + std::to_string(i) + "]");
    }
  } else {
    EXPECT_EQ(simdjson::minify(expected), simdjson::minify(actual)) << where;
  }
}

}  // namespace ecrm::testing
