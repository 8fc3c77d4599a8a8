// Identity scenarios as data files (tests/identity/scenarios/*.json), run through the real service.
// A file lists, in order, "import" (NDJSON records for POST /v1/profiles/import) and "events" (sent
// one per request), then what must hold: "same_profile" (groups of identifiers that read one
// profile), "different_profiles", "expect" (profile fields, contained), "missing" (404) and
// "metrics" (lines in /metrics).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>

#include "app/service.h"
#include "tests/testutil/http_client.h"
#include "tests/testutil/json_match.h"
#include "tests/testutil/service_config.h"
#include "tests/testutil/temp_dir.h"

namespace ecrm {
namespace {

using testing::ExpectContains;
using testing::HttpCall;

const auto& kCollect = testing::kCollectHeaders;
const auto& kAdmin = testing::kAdminHeaders;

std::filesystem::path ScenarioDir() {
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "identity" / "scenarios";
}

class IdentityScenario : public ::testing::TestWithParam<std::string> {};

TEST_P(IdentityScenario, Holds) {
  simdjson::dom::parser parser;
  simdjson::dom::element scenario;
  ASSERT_EQ(parser.load((ScenarioDir() / GetParam()).string()).get(scenario), simdjson::SUCCESS);
  testing::TempDir dir;
  Config c = testing::TestServiceConfig(dir.path());
  Service service(c);
  ASSERT_TRUE(service.Start().ok());
  const uint16_t port = service.port();
  for (auto [key, value] : scenario.get_object()) {
    if (key == "import") {
      std::string ndjson;
      for (auto record : value.get_array()) ndjson += simdjson::minify(record) + "\n";
      auto r = HttpCall(port, "POST", "/v1/profiles/import", ndjson, kAdmin);
      ASSERT_EQ(r.status, 200) << r.body;
      ASSERT_NE(r.body.find(R"("rejected":0)"), std::string::npos) << r.body;
    } else if (key == "events") {
      for (auto event : value.get_array()) {
        auto r = HttpCall(port, "POST", "/v1/batch",
                          "{\"batch\":[" + simdjson::minify(event) + "]}", kCollect);
        ASSERT_EQ(r.status, 200) << r.body;
      }
    }
  }
  simdjson::dom::parser reader;
  auto id_of = [&](std::string_view identifier) -> std::string {
    auto r = HttpCall(port, "GET", "/v1/profiles/" + std::string(identifier), "", kAdmin);
    EXPECT_EQ(r.status, 200) << identifier << ": " << r.body;
    if (r.status != 200) return "";
    return std::string(std::string_view(reader.parse(r.body)["id"]));
  };
  if (auto groups = scenario["same_profile"]; !groups.error()) {
    for (auto group : groups.get_array()) {
      std::string first;
      for (auto identifier : group.get_array()) {
        const std::string id = id_of(std::string_view(identifier));
        if (first.empty()) first = id;
        EXPECT_EQ(id, first) << std::string_view(identifier) << " reads another profile";
      }
    }
  }
  if (auto pairs = scenario["different_profiles"]; !pairs.error()) {
    for (auto pair : pairs.get_array()) {
      const std::string a = id_of(std::string_view(pair.at(0)));
      const std::string b = id_of(std::string_view(pair.at(1)));
      EXPECT_NE(a, b) << simdjson::minify(pair) << " read one profile";
    }
  }
  if (auto expect = scenario["expect"]; !expect.error()) {
    for (auto [identifier, fields] : expect.get_object()) {
      auto r = HttpCall(port, "GET", "/v1/profiles/" + std::string(identifier), "", kAdmin);
      ASSERT_EQ(r.status, 200) << identifier;
      simdjson::dom::parser profile_parser;
      ExpectContains(fields, profile_parser.parse(r.body), std::string(identifier));
    }
  }
  if (auto missing = scenario["missing"]; !missing.error()) {
    for (auto identifier : missing.get_array()) {
      EXPECT_EQ(HttpCall(port, "GET", "/v1/profiles/" + std::string(std::string_view(identifier)),
                         "", kAdmin)
                    .status,
                404)
          << std::string_view(identifier);
    }
  }
  if (auto metrics = scenario["metrics"]; !metrics.error()) {
    const std::string body = HttpCall(port, "GET", "/metrics").body;
    for (auto line : metrics.get_array()) {
      EXPECT_NE(body.find(std::string_view(line)), std::string::npos) << std::string_view(line);
    }
  }
}

std::vector<std::string> Scenarios() {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(ScenarioDir())) {
    if (entry.path().extension() == ".json") names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

INSTANTIATE_TEST_SUITE_P(Files, IdentityScenario, ::testing::ValuesIn(Scenarios()),
                         [](const auto& info) {
                           std::string name = info.param.substr(0, info.param.find('.'));
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace ecrm
