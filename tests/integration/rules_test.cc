// Rule sets end to end through the real service (HTTP, shards, RocksDB): the data-driven scenarios
// of tests/rules/scenarios/*.json (rule set, events, expected profiles and metrics), versions
// across a restart with rollback, rejection of invalid sets, and a push while events stream that
// shows every event saw exactly one version of the set.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <thread>

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

class RuleScenario : public ::testing::TestWithParam<std::string> {};

TEST_P(RuleScenario, GivesTheExpectedProfiles) {
  const auto path = std::filesystem::path(__FILE__).parent_path().parent_path() / "rules" /
                    "scenarios" / GetParam();
  simdjson::dom::parser parser;
  simdjson::dom::element scenario;
  ASSERT_EQ(parser.load(path.string()).get(scenario), simdjson::SUCCESS) << path;
  testing::TempDir dir;
  Service service(testing::TestServiceConfig(dir.path()));
  ASSERT_TRUE(service.Start().ok());
  auto pushed =
      HttpCall(service.port(), "PUT", "/v1/rules", simdjson::minify(scenario["rules"]), kAdmin);
  ASSERT_EQ(pushed.status, 200) << pushed.body;
  // One event per request, in order: a rule's effect depends on the order of events.
  for (auto event : scenario["events"].get_array()) {
    auto r = HttpCall(service.port(), "POST", "/v1/batch",
                      "{\"batch\":[" + simdjson::minify(event) + "]}", kCollect);
    ASSERT_EQ(r.status, 200) << r.body;
  }
  simdjson::dom::parser profile_parser;
  for (auto [identifier, expected] : scenario["expect"].get_object()) {
    auto r = HttpCall(service.port(), "GET", "/v1/profiles/" + std::string(identifier), "", kAdmin);
    ASSERT_EQ(r.status, 200) << identifier << ": " << r.body;
    simdjson::dom::element profile;
    ASSERT_EQ(profile_parser.parse(r.body).get(profile), simdjson::SUCCESS);
    ExpectContains(expected, profile, std::string(identifier));
  }
  if (auto metrics = scenario["expect_metrics"]; !metrics.error()) {
    const auto body = HttpCall(service.port(), "GET", "/metrics").body;
    for (auto line : metrics.get_array()) {
      const std::string_view want = line.get_string().value_unsafe();
      EXPECT_NE(body.find(want), std::string::npos) << "no '" << want << "' in /metrics";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Scenarios, RuleScenario,
                         ::testing::Values("example_rule_set.json", "once_offers_segments.json",
                                           "windows_errors_models.json"),
                         [](const auto& info) {
                           std::string name = info.param.substr(0, info.param.find('.'));
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

std::string RuleSetOf(const std::string& id) {
  return R"({"rules":[{"id":")" + id + R"(","when":"true","then":[{"add_segment":")" + id +
         R"("}]}]})";
}

TEST(Rules, VersionsSurviveARestartAndRollBack) {
  testing::TempDir dir;
  {
    Service service(testing::TestServiceConfig(dir.path()));
    ASSERT_TRUE(service.Start().ok());
    EXPECT_EQ(HttpCall(service.port(), "GET", "/v1/rules", "", kAdmin).body,
              R"({"version":0,"rules":[]})");
    EXPECT_EQ(HttpCall(service.port(), "PUT", "/v1/rules", RuleSetOf("a"), kAdmin).body,
              R"({"version":1})");
    EXPECT_EQ(HttpCall(service.port(), "PUT", "/v1/rules", RuleSetOf("b"), kAdmin).body,
              R"({"version":2})");
    // Without the admin token: 401, nothing changes.
    EXPECT_EQ(HttpCall(service.port(), "PUT", "/v1/rules", RuleSetOf("c")).status, 401);
  }
  Service service(testing::TestServiceConfig(dir.path()));
  ASSERT_TRUE(service.Start().ok());
  auto active = HttpCall(service.port(), "GET", "/v1/rules", "", kAdmin).body;
  EXPECT_NE(active.find(R"("version":2)"), std::string::npos) << active;
  EXPECT_NE(active.find(R"("id":"b")"), std::string::npos) << active;
  auto rolled = HttpCall(service.port(), "POST", "/v1/rules/rollback", R"({"version":1})", kAdmin);
  EXPECT_EQ(rolled.body, R"({"version":3})");
  active = HttpCall(service.port(), "GET", "/v1/rules", "", kAdmin).body;
  EXPECT_NE(active.find(R"("id":"a")"), std::string::npos) << active;
  EXPECT_EQ(
      HttpCall(service.port(), "POST", "/v1/rules/rollback", R"({"version":9})", kAdmin).status,
      404);
  // The active set is applied to new events.
  ASSERT_EQ(
      HttpCall(service.port(), "POST", "/v1/track", R"({"anonymousId":"x","event":"E"})", kCollect)
          .status,
      200);
  auto profile = HttpCall(service.port(), "GET", "/v1/profiles/anonymous_id:x", "", kAdmin).body;
  EXPECT_NE(profile.find(R"("segments":["a"])"), std::string::npos) << profile;
}

TEST(Rules, AnInvalidSetIsRejectedWholeWithDetailsAndTheActiveOneStays) {
  testing::TempDir dir;
  Service service(testing::TestServiceConfig(dir.path()));
  ASSERT_TRUE(service.Start().ok());
  ASSERT_EQ(HttpCall(service.port(), "PUT", "/v1/rules", RuleSetOf("good"), kAdmin).status, 200);
  const std::string bad = R"({"rules":[
    {"id":"ok","when":"true","then":[{"add_segment":"s"}]},
    {"id":"broken","when":"event.type == 'track' &&\n  event.event ==","then":[{"add_segment":"s"}]},
    {"id":"bad-action","when":"true","then":[{"explode":{}}]},
    {"id":"bad-ttl","when":"true","then":[{"add_segment":{"name":"s","ttl":"soon"}}]}]})";
  auto r = HttpCall(service.port(), "PUT", "/v1/rules", bad, kAdmin);
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find(R"("code":"invalid_rule_set")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"({"rule":"broken","field":"when","line":2,"column":)"), std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find(R"("rule":"bad-action","field":"then[0]")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("rule":"bad-ttl","field":"then[0].add_segment.ttl")"), std::string::npos)
      << r.body;
  EXPECT_EQ(HttpCall(service.port(), "PUT", "/v1/rules", "{not json", kAdmin).status, 400);
  auto active = HttpCall(service.port(), "GET", "/v1/rules", "", kAdmin).body;
  EXPECT_NE(active.find(R"("version":1)"), std::string::npos) << active;
  auto metrics = HttpCall(service.port(), "GET", "/metrics").body;
  EXPECT_NE(metrics.find(R"(ecrm_rule_pushes_total{result="invalid"} 2)"), std::string::npos);
}

// Each version k counts every event twice, in two rules (first_k, second_k). If any event saw a
// half-applied set, some first_k would differ from second_k.
TEST(Rules, EveryEventSeesExactlyOneVersionWhileSetsArePushed) {
  testing::TempDir dir;
  Service service(testing::TestServiceConfig(dir.path()));
  ASSERT_TRUE(service.Start().ok());
  auto set = [](int k) {
    const std::string n = std::to_string(k);
    return R"({"rules":[{"id":"first","when":"true","then":[{"increment":{"counter":"first_)" + n +
           R"("}}]},{"id":"second","when":"true","then":[{"increment":{"counter":"second_)" + n +
           R"("}}]}]})";
  };
  ASSERT_EQ(HttpCall(service.port(), "PUT", "/v1/rules", set(0), kAdmin).status, 200);
  constexpr int kVisitors = 4, kBatches = 120, kPerBatch = 50;
  std::atomic<bool> done{false};
  std::atomic<int> pushes{0};
  std::thread pusher([&] {
    for (int k = 1; !done.load(); k++) {
      if (HttpCall(service.port(), "PUT", "/v1/rules", set(k), kAdmin).status == 200) pushes++;
    }
  });
  for (int b = 0; b < kBatches; b++) {
    std::string batch = R"({"batch":[)";
    for (int i = 0; i < kPerBatch; i++) {
      if (i) batch += ",";
      batch += R"({"type":"track","event":"E","anonymousId":"v)" + std::to_string(i % kVisitors) +
               R"("})";
    }
    batch += "]}";
    ASSERT_EQ(HttpCall(service.port(), "POST", "/v1/batch", batch, kCollect).status, 200);
  }
  done = true;
  pusher.join();
  EXPECT_GT(pushes.load(), 5);
  simdjson::dom::parser parser;
  int64_t total = 0;
  for (int v = 0; v < kVisitors; v++) {
    auto r = HttpCall(service.port(), "GET", "/v1/profiles/anonymous_id:v" + std::to_string(v), "",
                      kAdmin);
    ASSERT_EQ(r.status, 200);
    simdjson::dom::element profile;
    ASSERT_EQ(parser.parse(r.body).get(profile), simdjson::SUCCESS);
    int versions_seen = 0;
    for (auto [name, value] : profile["counters"].get_object()) {
      const std::string key(name);
      if (!key.starts_with("first_")) continue;
      versions_seen++;
      const double first = double(value);
      auto second = profile["counters"]["second_" + key.substr(6)];
      ASSERT_FALSE(second.error()) << key << " without its second rule: " << r.body;
      EXPECT_EQ(first, double(second.value_unsafe())) << key;
      total += static_cast<int64_t>(first);
    }
    EXPECT_GT(versions_seen, 0);
  }
  EXPECT_EQ(total, int64_t{kBatches} * kPerBatch);
}

}  // namespace
}  // namespace ecrm
