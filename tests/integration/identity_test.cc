// Identity resolution end to end through the real service (HTTP, shards, RocksDB): merges on
// identify and alias, merge protection, blocked values, email normalisation, the identity graph
// endpoint, and the same events in different arrival orders giving the same profile.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <random>

#include "app/service.h"
#include "common/time_format.h"
#include "tests/testutil/http_client.h"
#include "tests/testutil/service_config.h"
#include "tests/testutil/temp_dir.h"

namespace ecrm {
namespace {

using testing::HttpCall;

const auto& kCollect = testing::kCollectHeaders;
const auto& kAdmin = testing::kAdminHeaders;

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Config c = testing::TestServiceConfig(dir_.path());
    service_ = std::make_unique<Service>(c);
    ASSERT_TRUE(service_->Start().ok());
  }

  void Send(const std::string& event) {
    auto r =
        HttpCall(service_->port(), "POST", "/v1/batch", "{\"batch\":[" + event + "]}", kCollect);
    ASSERT_EQ(r.status, 200) << r.body << " for " << event;
  }

  // The profile JSON for an identifier ("" if 404).
  std::string Profile(const std::string& identifier, const std::string& suffix = "") {
    auto r = HttpCall(service_->port(), "GET", "/v1/profiles/" + identifier + suffix, "", kAdmin);
    if (r.status == 404) return "";
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body;
  }
  std::string Id(const std::string& identifier) { return Field(Profile(identifier), "id"); }
  int64_t Events(const std::string& identifier) {
    simdjson::dom::parser parser;
    return int64_t(parser.parse(Profile(identifier))["stats"]["events"]);
  }
  static std::string Field(const std::string& json, const char* key) {
    if (json.empty()) return "";
    simdjson::dom::parser parser;
    return std::string(std::string_view(parser.parse(json)[key]));
  }
  std::string Metrics() { return HttpCall(service_->port(), "GET", "/metrics").body; }

  testing::TempDir dir_;
  std::unique_ptr<Service> service_;
};

std::string Page(const std::string& anon, const std::string& at) {
  return R"({"type":"page","anonymousId":")" + anon + R"(","timestamp":")" + at + R"("})";
}
std::string Identify(const std::string& anon, const std::string& user, const std::string& at,
                     const std::string& traits = "{}") {
  std::string e = R"({"type":"identify","timestamp":")" + at + R"(","traits":)" + traits;
  if (!anon.empty()) e += R"(,"anonymousId":")" + anon + "\"";
  if (!user.empty()) e += R"(,"userId":")" + user + "\"";
  return e + "}";
}

TEST_F(IdentityTest, AnonymousBrowsingThenLoginKeepsTheHistory) {
  Send(Page("a1", "2026-11-01T10:00:00Z"));
  Send(Page("a1", "2026-11-01T10:01:00Z"));
  Send(Identify("a1", "u1", "2026-11-01T10:02:00Z", R"({"name":"Ada"})"));
  EXPECT_EQ(Id("anonymous_id:a1"), Id("user_id:u1"));
  EXPECT_EQ(Events("user_id:u1"), 3);
}

TEST_F(IdentityTest, LoginOnASecondDeviceMergesIntoTheOlderProfile) {
  Send(Page("a1", "2026-11-01T10:00:00Z"));
  Send(Identify("a1", "u1", "2026-11-01T10:01:00Z"));
  const std::string first = Id("user_id:u1");
  Send(Page("a2", "2026-11-02T09:00:00Z"));
  Send(Page("a2", "2026-11-02T09:01:00Z"));
  const std::string second = Id("anonymous_id:a2");
  ASSERT_NE(first, second);
  Send(Identify("a2", "u1", "2026-11-02T09:02:00Z", R"({"plan":"gold"})"));
  // One profile, whatever identifier reads it; the older one survived.
  EXPECT_EQ(Id("anonymous_id:a2"), first);
  EXPECT_EQ(Id("anonymous_id:a1"), first);
  EXPECT_EQ(Events("user_id:u1"), 5);
  const std::string graph = Profile("user_id:u1", "/identities");
  EXPECT_NE(graph.find(R"("anonymous_id":["a1","a2"])"), std::string::npos) << graph;
  EXPECT_NE(graph.find(R"("merged_ids":[")" + second + "\"]"), std::string::npos) << graph;
  EXPECT_NE(graph.find(R"("action":"merged","other_profile":")" + second +
                       R"(","identifier":"user_id:u1")"),
            std::string::npos)
      << graph;
  // Later events by the merged-away identifier land on the survivor.
  Send(Page("a2", "2026-11-02T09:05:00Z"));
  EXPECT_EQ(Events("anonymous_id:a1"), 6);
  EXPECT_NE(Metrics().find("ecrm_profile_merges_total 1"), std::string::npos);
}

TEST(IdentityConfig, TheNewerProfileCanBeMadeTheSurvivor) {
  testing::TempDir dir;
  Config c = testing::TestServiceConfig(dir.path());
  c.merge_survivor = "newest";
  Service service(c);
  ASSERT_TRUE(service.Start().ok());
  auto send = [&](const std::string& e) {
    ASSERT_EQ(
        HttpCall(service.port(), "POST", "/v1/batch", "{\"batch\":[" + e + "]}", kCollect).status,
        200);
  };
  auto id = [&](const std::string& identifier) {
    simdjson::dom::parser parser;
    auto r = HttpCall(service.port(), "GET", "/v1/profiles/" + identifier, "", kAdmin);
    return std::string(std::string_view(parser.parse(r.body)["id"]));
  };
  send(Identify("n1", "nu", "2026-11-01T10:00:00Z"));
  const std::string older = id("user_id:nu");
  send(Page("n2", "2026-11-02T10:00:00Z"));
  const std::string newer = id("anonymous_id:n2");
  send(Identify("n2", "nu", "2026-11-02T10:01:00Z"));
  EXPECT_EQ(id("user_id:nu"), newer);
  EXPECT_EQ(id("anonymous_id:n1"), newer);
  EXPECT_NE(older, newer);
}

TEST(IdentityConfig, OtherIdentifierTypesCanBeLimited) {
  testing::TempDir dir;
  Config c = testing::TestServiceConfig(dir.path());
  c.identifier_limits = {"crm_id=1"};
  Service service(c);
  ASSERT_TRUE(service.Start().ok());
  const std::string ndjson =
      R"({"identifiers":{"crm_id":"C-1","email":"x@example.com"},"channel":"crm"})"
      "\n"
      R"({"identifiers":{"crm_id":"C-2","email":"y@example.com"},"channel":"crm"})"
      "\n";
  ASSERT_EQ(HttpCall(service.port(), "POST", "/v1/profiles/import", ndjson, kAdmin).status, 200);
  for (const char* email : {"x@example.com", "y@example.com"}) {
    ASSERT_EQ(
        HttpCall(
            service.port(), "POST", "/v1/batch",
            std::string(R"({"batch":[{"type":"identify","anonymousId":"lim","traits":{"email":")") +
                email + R"("}}]})",
            kCollect)
            .status,
        200);
  }
  auto id = [&](const std::string& identifier) {
    simdjson::dom::parser parser;
    auto r = HttpCall(service.port(), "GET", "/v1/profiles/" + identifier, "", kAdmin);
    return std::string(std::string_view(parser.parse(r.body)["id"]));
  };
  EXPECT_EQ(id("anonymous_id:lim"), id("crm_id:C-1"));  // the first email joined C-1
  EXPECT_NE(id("crm_id:C-1"), id("crm_id:C-2"));        // two CRM customers stay apart
  const auto metrics = HttpCall(service.port(), "GET", "/metrics").body;
  EXPECT_NE(metrics.find("ecrm_profile_merges_refused_total 1"), std::string::npos);
}

TEST_F(IdentityTest, TwoUsersOnOneDeviceAreNeverMerged) {
  Send(Identify("shared", "alice", "2026-11-01T10:00:00Z"));
  Send(Page("shared", "2026-11-01T10:01:00Z"));
  Send(Identify("shared", "bob", "2026-11-01T11:00:00Z"));
  Send(Page("bob-phone", "2026-11-01T11:05:00Z"));
  Send(Identify("bob-phone", "bob", "2026-11-01T11:06:00Z"));
  const std::string alice = Id("user_id:alice"), bob = Id("user_id:bob");
  ASSERT_FALSE(alice.empty());
  ASSERT_FALSE(bob.empty());
  EXPECT_NE(alice, bob);
  EXPECT_EQ(Id("anonymous_id:shared"), alice);  // the device stays with its first user
  EXPECT_EQ(Events("user_id:alice"), 2);
  EXPECT_EQ(Events("user_id:bob"), 3);  // bob's identify on the shared device went to bob
  const std::string graph = Profile("user_id:alice", "/identities");
  EXPECT_NE(graph.find(R"("action":"refused")"), std::string::npos) << graph;
  EXPECT_NE(graph.find(R"("user_id":["alice"])"), std::string::npos) << graph;  // bob is not
  EXPECT_NE(Metrics().find("ecrm_profile_merges_refused_total"), std::string::npos);
}

TEST_F(IdentityTest, AnAliasChainBecomesOneProfile) {
  Send(Page("anon-a", "2026-11-01T10:00:00Z"));
  Send(Identify("", "user-b", "2026-11-01T10:01:00Z"));
  Send(Identify("", "user-c", "2026-11-01T10:02:00Z"));
  Send(
      R"({"type":"alias","previousId":"anon-a","userId":"user-b","timestamp":"2026-11-01T10:03:00Z"})");
  Send(
      R"({"type":"alias","previousId":"user-b","userId":"user-c","timestamp":"2026-11-01T10:04:00Z"})");
  const std::string id = Id("anonymous_id:anon-a");
  EXPECT_EQ(Id("user_id:user-b"), id);
  EXPECT_EQ(Id("user_id:user-c"), id);
  EXPECT_EQ(Events("user_id:user-c"), 5);
}

TEST_F(IdentityTest, EmailCaseAndWhitespaceVariantsAreOnePerson) {
  Send(Identify("e1", "", "2026-11-01T10:00:00Z", R"({"email":"  Ada@Example.COM "})"));
  Send(Identify("e2", "", "2026-11-01T10:01:00Z", R"({"email":"ada@example.com"})"));
  EXPECT_EQ(Id("anonymous_id:e1"), Id("anonymous_id:e2"));
  EXPECT_EQ(Id("email:ada%40example.com"), Id("anonymous_id:e1"));
}

TEST_F(IdentityTest, DeleteErasesTheProfileItsIdentifiersAndAliases) {
  Send(Page("a1", "2026-11-01T10:00:00Z"));
  Send(Identify("a1", "u1", "2026-11-01T10:01:00Z", R"({"email":"ada@example.com"})"));
  Send(Page("a2", "2026-11-02T10:00:00Z"));
  Send(Identify("a2", "u1", "2026-11-02T10:01:00Z"));  // a2's profile merges into a1's
  ASSERT_EQ(Events("anonymous_id:a2"), 4);
  const std::string erased = Field(Profile("user_id:u1", "/identities"), "profile_id");
  EXPECT_EQ(HttpCall(service_->port(), "DELETE", "/v1/profiles/user_id:u1").status, 401);
  auto r = HttpCall(service_->port(), "DELETE", "/v1/profiles/user_id:u1", "", kAdmin);
  ASSERT_EQ(r.status, 200) << r.body;
  for (const char* id :
       {"user_id:u1", "anonymous_id:a1", "anonymous_id:a2", "email:ada%40example.com"}) {
    EXPECT_EQ(Profile(id), "") << id << " still readable";
  }
  EXPECT_EQ(HttpCall(service_->port(), "DELETE", "/v1/profiles/user_id:u1", "", kAdmin).status,
            404);
  // A late event dated before the erasure is dropped (the erasure ledger), also by the user id.
  Send(Page("a2", "2026-11-02T10:05:00Z"));
  Send(Identify("a3", "u1", "2026-11-02T10:06:00Z"));
  EXPECT_EQ(Profile("anonymous_id:a2"), "");
  EXPECT_EQ(Profile("user_id:u1"), "");
  EXPECT_EQ(Events("anonymous_id:a3"), 1);  // the new device keeps its event, not the user id
  // A visit after the erasure starts a fresh profile: nothing of the old one comes back.
  Send(Page("a2", FormatIso8601(SystemClock().NowMs() + 60'000)));
  EXPECT_EQ(Events("anonymous_id:a2"), 1);
  EXPECT_NE(Id("anonymous_id:a2"), erased);
  EXPECT_EQ(Profile("user_id:u1"), "");
  const std::string metrics = Metrics();
  EXPECT_NE(metrics.find(R"(ecrm_profiles_deleted_total{reason="request"} 1)"), std::string::npos);
  EXPECT_NE(metrics.find("ecrm_erasure_ledger_dropped_total 2"), std::string::npos) << metrics;
}

TEST_F(IdentityTest, CrmRecordsJoinTheWebProfileBeforeAndAfterTheVisit) {
  const std::string ndjson =
      R"({"identifiers":{"email":" Ada@Example.com","crm_id":"C-1","phone":"+49 151 1234-5678"},"traits":{"tier":"gold"},"channel":"crm","updated_at":"2026-10-01T00:00:00Z"})"
      "\n{not json\n"
      R"({"identifiers":{"crm_id":"C-9"},"traits":{}})"
      "\n"
      R"({"identifiers":{"shoe_size":"42"},"channel":"crm"})"
      "\n\n"
      R"({"identifiers":{"user_id":"u10","crm_id":"C-2"},"traits":{"vip":true},"channel":"shop"})"
      "\n";
  auto r = HttpCall(service_->port(), "POST", "/v1/profiles/import", ndjson, kAdmin);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(R"("imported":2,"rejected":3)"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"({"line":2,"code":"invalid_json")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"({"line":3,"code":"invalid_channel")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"({"line":4,"code":"unknown_identifier_type")"), std::string::npos)
      << r.body;
  EXPECT_EQ(HttpCall(service_->port(), "POST", "/v1/profiles/import", ndjson).status, 401);
  std::string too_many;
  for (int i = 0; i <= 10000; i++) too_many += "{}\n";
  auto refused = HttpCall(service_->port(), "POST", "/v1/profiles/import", too_many, kAdmin);
  EXPECT_EQ(refused.status, 400);
  EXPECT_NE(refused.body.find("too_many_lines"), std::string::npos) << refused.body;
  const std::string metrics = Metrics();
  EXPECT_NE(metrics.find(R"(ecrm_import_records_total{result="applied"} 2)"), std::string::npos);
  EXPECT_NE(metrics.find(R"(ecrm_import_records_total{result="rejected"} 3)"), std::string::npos);
  // Before the visit: the CRM record exists; the visitor identifies with the same email.
  Send(Page("a9", "2026-11-01T10:00:00Z"));
  Send(Identify("a9", "", "2026-11-01T10:01:00Z", R"({"email":"ada@example.com"})"));
  EXPECT_EQ(Id("crm_id:C-1"), Id("anonymous_id:a9"));
  EXPECT_EQ(Id("phone:%2B4915112345678"), Id("anonymous_id:a9"));
  const std::string profile = Profile("anonymous_id:a9");
  EXPECT_NE(profile.find(R"("tier":"gold")"), std::string::npos) << profile;
  EXPECT_NE(profile.find(R"("trait_sources":{"tier":"crm"})"), std::string::npos) << profile;
  EXPECT_EQ(Events("anonymous_id:a9"), 2);  // an import is not a site event
  // After the visit: the record joins the profile that already holds the user id.
  Send(Identify("a10", "u11", "2026-11-01T11:00:00Z"));
  Send(Identify("a10", "u10", "2026-11-01T11:01:00Z"));  // a second user on a10: goes to u10
  EXPECT_EQ(Id("crm_id:C-2"), Id("user_id:u10"));
  const std::string shop = Profile("crm_id:C-2");
  EXPECT_NE(shop.find(R"("vip":true)"), std::string::npos) << shop;
}

TEST_F(IdentityTest, BlockedValuesLinkNothing) {
  Send(Identify("b1", "undefined", "2026-11-01T10:00:00Z", R"({"email":"null"})"));
  Send(Identify("b2", "undefined", "2026-11-01T10:01:00Z", R"({"email":"null"})"));
  EXPECT_NE(Id("anonymous_id:b1"), Id("anonymous_id:b2"));
  EXPECT_EQ(Profile("user_id:undefined"), "");
  // An event whose only identifier is blocked is rejected as having none.
  auto r = HttpCall(service_->port(), "POST", "/v1/track", R"({"userId":" NULL ","event":"E"})",
                    kCollect);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("missing_identifier"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace ecrm

namespace ecrm {
namespace {

// The profile of user u1 reduced to what must not depend on arrival order: counts, sessions,
// traits (by event time), identities (as sets), interests and recent products.
std::string Canonical(const std::string& json) {
  simdjson::dom::parser parser;
  simdjson::dom::element p = parser.parse(json);
  std::string out = "events=" + std::to_string(int64_t(p["stats"]["events"])) +
                    " page_views=" + std::to_string(int64_t(p["stats"]["page_views"])) +
                    " sessions=" + std::to_string(int64_t(p["stats"]["sessions"])) +
                    " current_session=" + simdjson::minify(p["sessions"]["current"]["started_at"]) +
                    "/" + std::to_string(int64_t(p["sessions"]["current"]["events"])) +
                    " traits=" + simdjson::minify(p["traits"]) +
                    " interests=" + simdjson::minify(p["interests"]) +
                    " recent=" + simdjson::minify(p["recent_products"]) + " ids=";
  for (auto [type, values] : p["identities"].get_object()) {
    std::vector<std::string> sorted;
    for (auto v : values.get_array()) sorted.emplace_back(std::string_view(v));
    std::sort(sorted.begin(), sorted.end());
    out += std::string(type) + ":";
    for (const auto& v : sorted) out += v + ",";
  }
  return out;
}

TEST(IdentityOrder, TheSameEventsInAnyOrderGiveTheSameProfile) {
  const std::vector<std::string> events = {
      R"({"type":"page","anonymousId":"d1","messageId":"m1","timestamp":"2026-11-01T10:00:00Z"})",
      R"({"type":"track","anonymousId":"d1","messageId":"m2","event":"Product Viewed","properties":{"product_id":"p1","category":"shoes"},"timestamp":"2026-11-01T10:01:00Z"})",
      R"({"type":"identify","anonymousId":"d1","userId":"u1","messageId":"m3","traits":{"plan":"silver","name":"Ada"},"timestamp":"2026-11-01T10:02:00Z"})",
      R"({"type":"page","anonymousId":"d2","messageId":"m4","timestamp":"2026-11-02T08:00:00Z"})",
      R"({"type":"track","anonymousId":"d2","messageId":"m5","event":"Product Viewed","properties":{"product_id":"p2","category":"hats"},"timestamp":"2026-11-02T08:01:00Z"})",
      R"({"type":"identify","anonymousId":"d2","userId":"u1","messageId":"m6","traits":{"plan":"gold","email":"ada@example.com"},"timestamp":"2026-11-02T08:02:00Z"})",
      R"({"type":"identify","anonymousId":"d3","messageId":"m7","traits":{"email":"ADA@example.com"},"timestamp":"2026-11-03T08:00:00Z"})",
      R"({"type":"page","anonymousId":"d3","messageId":"m8","timestamp":"2026-11-03T08:01:00Z"})",
  };
  std::mt19937 rng(20261122);
  std::string first;
  for (int run = 0; run < 5; run++) {
    std::vector<std::string> order = events;
    if (run > 0) std::shuffle(order.begin(), order.end(), rng);
    testing::TempDir dir;
    Config c = testing::TestServiceConfig(dir.path());
    Service service(c);
    ASSERT_TRUE(service.Start().ok());
    for (const auto& e : order) {
      ASSERT_EQ(
          HttpCall(service.port(), "POST", "/v1/batch", "{\"batch\":[" + e + "]}", kCollect).status,
          200);
    }
    const auto by_user = HttpCall(service.port(), "GET", "/v1/profiles/user_id:u1", "", kAdmin);
    ASSERT_EQ(by_user.status, 200);
    for (const char* other : {"anonymous_id:d1", "anonymous_id:d2", "anonymous_id:d3"}) {
      EXPECT_EQ(
          HttpCall(service.port(), "GET", std::string("/v1/profiles/") + other, "", kAdmin).body,
          by_user.body)
          << other << " in run " << run;
    }
    const std::string canonical = Canonical(by_user.body);
    if (run == 0) {
      first = canonical;
      EXPECT_NE(first.find("events=8 page_views=3 sessions=3"), std::string::npos) << first;
      EXPECT_NE(first.find(R"("plan":"gold")"), std::string::npos) << first;
    } else {
      EXPECT_EQ(canonical, first) << "run " << run;
    }
  }
}

}  // namespace
}  // namespace ecrm
