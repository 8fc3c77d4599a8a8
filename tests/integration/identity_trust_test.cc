// The identity failures of issue 10, each sent through the real service (HTTP, shards, RocksDB):
// chained merges in reverse time order, the same messageId from other visitors and sources, a
// hundred concurrent merges in one request, and profile takeover with a browser write key (forged
// identify, userId and alias), the identity-verification (HMAC) path and squatting. After each
// test the store passes the graph check (`ecrm check`'s invariants).
#include <gtest/gtest.h>
#include <openssl/hmac.h>
#include <simdjson.h>

#include "app/service.h"
#include "common/murmur2.h"
#include "profiler/graph_check.h"
#include "tests/testutil/http_client.h"
#include "tests/testutil/service_config.h"
#include "tests/testutil/temp_dir.h"

namespace ecrm {
namespace {

using testing::HttpCall;

const auto& kServer = testing::kCollectHeaders;  // "wk": a server key
const std::vector<std::pair<std::string, std::string>> kBrowser = {
    {"Authorization", "Basic YndrOg=="}, {"Content-Type", "application/json"}};  // "bwk:"
const std::vector<std::pair<std::string, std::string>> kOtherServer = {
    {"Authorization", "Basic d2syOg=="}, {"Content-Type", "application/json"}};  // "wk2:"
const auto& kAdmin = testing::kAdminHeaders;
constexpr char kSecret[] = "shop-identity-secret";

std::string UserHash(const std::string& user_id) {
  unsigned char mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kSecret, sizeof(kSecret) - 1,
       reinterpret_cast<const unsigned char*>(user_id.data()), user_id.size(), mac, &len);
  std::string hex;
  for (unsigned int i = 0; i < len; i++) {
    static constexpr char kHex[] = "0123456789abcdef";
    hex.push_back(kHex[mac[i] >> 4]);
    hex.push_back(kHex[mac[i] & 15]);
  }
  return hex;
}

class IdentityTrustTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }
  void TearDown() override {
    if (!service_) return;
    service_->Stop();
    service_.reset();
    // The graph invariants hold once everything is durable.
    auto store = KvStore::Open({.path = config_.data_dir + "/db", .read_only = true});
    ASSERT_TRUE(store.ok()) << store.status();
    std::string violations;
    auto counts = CheckIdentityGraph(
        **store, [&](const GraphViolation& v) { violations += v.message + "\n"; });
    ASSERT_TRUE(counts.ok()) << counts.status();
    EXPECT_EQ(violations, "");
  }
  void Start(int workers = 2) {
    config_ = testing::TestServiceConfig(dir_.path());
    config_.write_keys = {"wk", "wk2"};
    config_.browser_write_keys = {"bwk"};
    config_.identity_secret = kSecret;
    config_.workers = workers;
    service_ = std::make_unique<Service>(config_);
    ASSERT_TRUE(service_->Start().ok());
  }

  void Send(const std::string& events,
            const std::vector<std::pair<std::string, std::string>>& headers = kServer) {
    auto r =
        HttpCall(service_->port(), "POST", "/v1/batch", "{\"batch\":[" + events + "]}", headers);
    ASSERT_EQ(r.status, 200) << r.body << " for " << events;
  }
  // The profile JSON for an identifier ("" if 404).
  std::string Profile(const std::string& identifier) {
    auto r = HttpCall(service_->port(), "GET", "/v1/profiles/" + identifier, "", kAdmin);
    if (r.status == 404) return "";
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body;
  }
  simdjson::dom::element Parsed(const std::string& identifier) {
    json_ = Profile(identifier);
    if (json_.empty()) json_ = "null";
    return parser_.parse(json_);
  }
  std::string Id(const std::string& identifier) {
    auto p = Parsed(identifier);
    return p.is_null() ? "" : std::string(std::string_view(p["id"]));
  }
  int64_t Stat(const std::string& identifier, const char* stat) {
    auto p = Parsed(identifier);
    return p.is_null() ? -1 : int64_t(p["stats"][stat]);
  }
  bool Lists(const std::string& identifier, const std::string& type, const std::string& value) {
    auto p = Parsed(identifier);
    if (p.is_null()) return false;
    simdjson::dom::array values;
    if (p["identities"][type].get_array().get(values) != simdjson::SUCCESS) return false;
    for (auto v : values) {
      if (std::string_view(v) == value) return true;
    }
    return false;
  }
  double Metric(const std::string& name) {
    const std::string body = HttpCall(service_->port(), "GET", "/metrics").body;
    const auto at = body.find("\n" + name + " ");
    return at == std::string::npos ? 0 : std::stod(body.substr(at + name.size() + 2));
  }

  testing::TempDir dir_;
  Config config_;
  std::unique_ptr<Service> service_;
  simdjson::dom::parser parser_;
  std::string json_;
};

std::string Ev(const std::string& type, const std::string& anon, const std::string& user,
               const std::string& at, const std::string& extra = "") {
  std::string e = R"({"type":")" + type + R"(","timestamp":")" + at + "\"";
  if (!anon.empty()) e += R"(,"anonymousId":")" + anon + "\"";
  if (!user.empty()) e += R"(,"userId":")" + user + "\"";
  if (type == "track" && extra.find("\"event\"") == std::string::npos) e += R"(,"event":"Clicked")";
  return e + extra + "}";
}

// Failure 1: seven events of one person sent one per request in reverse time order, so the
// userId-only events arrive first.
TEST_F(IdentityTrustTest, ChainedMergesInReverseTimeOrderKeepEverything) {
  const std::vector<std::string> in_time_order = {
      Ev("page", "dev-a", "", "2026-11-01T10:00:00Z"),
      Ev("identify", "dev-a", "ada", "2026-11-01T10:01:00Z", R"(,"traits":{"plan":"old"})"),
      Ev("page", "dev-b", "", "2026-11-01T11:00:00Z"),
      Ev("identify", "dev-b", "ada", "2026-11-01T11:01:00Z"),
      Ev("track", "", "ada", "2026-11-01T11:02:00Z",
         R"(,"event":"Order Completed","properties":{"revenue":42})"),
      Ev("identify", "", "ada", "2026-11-01T11:03:00Z", R"(,"traits":{"plan":"new"})"),
      Ev("track", "dev-b", "", "2026-11-01T11:04:00Z"),
  };
  for (auto it = in_time_order.rbegin(); it != in_time_order.rend(); ++it) Send(*it);
  EXPECT_EQ(Stat("user_id:ada", "events"), 7);
  EXPECT_EQ(Stat("user_id:ada", "orders"), 1);
  EXPECT_EQ(double(Parsed("user_id:ada")["stats"]["revenue"]), 42.0);
  EXPECT_EQ(std::string_view(Parsed("user_id:ada")["traits"]["plan"]), "new");
  EXPECT_TRUE(Lists("user_id:ada", "user_id", "ada"));
  EXPECT_EQ(Id("anonymous_id:dev-a"), Id("user_id:ada"));
  EXPECT_EQ(Id("anonymous_id:dev-b"), Id("user_id:ada"));
  EXPECT_EQ(Metric("ecrm_events_applied_total"), 7);
}

// Failure 3: a messageId is unique per source and visitor, not per partition.
TEST_F(IdentityTrustTest, TheSameMessageIdFromAnotherVisitorOrSourceIsAnotherEvent) {
  // Find two visitors in one partition (16 partitions in the test config).
  std::string first = "v-0", second;
  for (int i = 1; second.empty(); i++) {
    const std::string candidate = "v-" + std::to_string(i);
    if (PartitionForKey(candidate, 16) == PartitionForKey(first, 16)) second = candidate;
  }
  const std::string same = R"(,"messageId":"order-123")";
  Send(Ev("track", first, "", "2026-11-01T10:00:00Z", same));
  Send(Ev("track", second, "", "2026-11-01T10:00:00Z", same));
  Send(Ev("track", first, "", "2026-11-01T10:00:00Z", same), kOtherServer);
  Send(Ev("track", first, "", "2026-11-01T10:00:00Z", same));  // a real retry
  EXPECT_EQ(Stat("anonymous_id:" + first, "events"), 2);       // one per source
  EXPECT_EQ(Stat("anonymous_id:" + second, "events"), 1);
  EXPECT_EQ(Metric("ecrm_events_duplicate_total"), 1);
}

// Failure 4: merges running at the same time, one request of 100 groups of six events.
TEST_F(IdentityTrustTest, AHundredConcurrentMergesInOneRequestLoseNothing) {
  std::string batch;
  for (int g = 0; g < 100; g++) {
    const std::string a = "ga-" + std::to_string(g), b = "gb-" + std::to_string(g),
                      u = "gu-" + std::to_string(g);
    for (const std::string& e :
         {Ev("track", a, "", "2026-11-01T10:00:00Z"), Ev("track", a, "", "2026-11-01T10:00:01Z"),
          Ev("track", b, "", "2026-11-01T10:00:02Z"), Ev("identify", a, u, "2026-11-01T10:00:03Z"),
          Ev("track", "", u, "2026-11-01T10:00:04Z"),
          Ev("identify", b, u, "2026-11-01T10:00:05Z")}) {
      batch += (batch.empty() ? "" : ",") + e;
    }
  }
  Send(batch);
  int wrong = 0;
  for (int g = 0; g < 100; g++) {
    const std::string a = "ga-" + std::to_string(g), b = "gb-" + std::to_string(g),
                      u = "gu-" + std::to_string(g);
    const std::string id = Id("user_id:" + u);
    const bool right = Stat("user_id:" + u, "events") == 6 && Lists("user_id:" + u, "user_id", u) &&
                       Lists("user_id:" + u, "anonymous_id", a) &&
                       Lists("user_id:" + u, "anonymous_id", b) && Id("anonymous_id:" + a) == id &&
                       Id("anonymous_id:" + b) == id;
    wrong += right ? 0 : 1;
  }
  EXPECT_EQ(wrong, 0);
}

// Failure 5: with the browser key (public) nobody can join a known customer's profile.
TEST_F(IdentityTrustTest, ForgedClaimsFromABrowserKeyLinkNothing) {
  Send(Ev("identify", "victim-device", "victim", "2026-11-01T10:00:00Z",
          R"(,"traits":{"email":"victim@example.com"})"));
  Send(Ev("track", "victim-device", "", "2026-11-01T10:01:00Z",
          R"(,"event":"Product Viewed","properties":{"product_id":"secret-sku","category":"x"})"));
  const std::string victim = Id("user_id:victim");
  // Three takeover attempts, each answered 200.
  Send(Ev("identify", "attacker", "", "2026-11-01T12:00:00Z",
          R"(,"traits":{"email":"victim@example.com"})"),
       kBrowser);
  Send(Ev("identify", "attacker", "victim", "2026-11-01T12:01:00Z"), kBrowser);
  Send(
      R"({"type":"alias","anonymousId":"attacker","previousId":"victim-device","userId":"mallory",)"
      R"("timestamp":"2026-11-01T12:02:00Z"})",
      kBrowser);
  EXPECT_NE(Id("anonymous_id:attacker"), victim);
  EXPECT_EQ(Id("user_id:victim"), victim);
  EXPECT_EQ(Id("email:victim@example.com"), victim);
  EXPECT_EQ(Id("anonymous_id:victim-device"), victim);
  EXPECT_EQ(Stat("user_id:victim", "events"), 2);
  EXPECT_FALSE(Lists("anonymous_id:attacker", "user_id", "victim"));
  EXPECT_FALSE(Lists("anonymous_id:attacker", "email", "victim@example.com"));
  auto r = HttpCall(service_->port(), "GET", "/v1/personalize/anonymous_id:attacker", "", kAdmin);
  EXPECT_EQ(r.body.find("secret-sku"), std::string::npos) << r.body;
  EXPECT_GE(Metric("ecrm_identity_claims_refused_total"), 3);
  // Each refusal is in the attacker's history.
  auto graph = HttpCall(service_->port(), "GET", "/v1/profiles/anonymous_id:attacker/identities",
                        "", kAdmin);
  EXPECT_NE(graph.body.find("unverified"), std::string::npos) << graph.body;
}

// The identity-verification path: a browser event whose user_hash the shop's server computed.
TEST_F(IdentityTrustTest, ABrowserLoginWithAValidUserHashMerges) {
  Send(Ev("identify", "phone", "ada", "2026-11-01T10:00:00Z"));
  Send(Ev("page", "laptop", "", "2026-11-01T11:00:00Z"), kBrowser);
  // A wrong hash: no merge.
  Send(Ev("identify", "laptop", "ada", "2026-11-01T11:01:00Z",
          R"(,"context":{"ecrm":{"user_hash":")" + UserHash("someone-else") + "\"}}"),
       kBrowser);
  EXPECT_NE(Id("anonymous_id:laptop"), Id("user_id:ada"));
  Send(Ev("identify", "laptop", "ada", "2026-11-01T11:02:00Z",
          R"(,"context":{"ecrm":{"user_hash":")" + UserHash("ada") + "\"}}"),
       kBrowser);
  EXPECT_EQ(Id("anonymous_id:laptop"), Id("user_id:ada"));
  EXPECT_EQ(Stat("user_id:ada", "events"), 4);
}

// An unverified claim may attach an identifier nobody holds; a verified claim then takes it, and
// the squatter keeps only its own history.
TEST_F(IdentityTrustTest, AVerifiedClaimTakesAnIdentifierFromASquatter) {
  Send(Ev("identify", "squatter", "", "2026-11-01T10:00:00Z",
          R"(,"traits":{"email":"ada@example.com"})"),
       kBrowser);
  EXPECT_EQ(Id("email:ada@example.com"), Id("anonymous_id:squatter"));
  Send(Ev("identify", "ada-device", "ada", "2026-11-01T11:00:00Z",
          R"(,"traits":{"email":"ada@example.com"})"));
  EXPECT_EQ(Id("email:ada@example.com"), Id("user_id:ada"));
  EXPECT_NE(Id("anonymous_id:squatter"), Id("user_id:ada"));
  EXPECT_FALSE(Lists("anonymous_id:squatter", "email", "ada@example.com"));
  EXPECT_EQ(Stat("anonymous_id:squatter", "events"), 1);
  EXPECT_EQ(Stat("user_id:ada", "events"), 1);
  EXPECT_EQ(Metric("ecrm_identity_claims_taken_over_total"), 1);
}

// A merge runs the active rules on the survivor at once.
TEST_F(IdentityTrustTest, AMergeRunsTheRulesOnTheMergedProfile) {
  auto pushed = HttpCall(service_->port(), "PUT", "/v1/rules",
                         R"({"rules":[{"id":"active","when":"profile.stats.events >= 4",)"
                         R"("then":[{"add_segment":"active"}]}]})",
                         kAdmin);
  ASSERT_EQ(pushed.status, 200) << pushed.body;
  Send(Ev("page", "m-a", "", "2026-11-01T10:00:00Z"));
  Send(Ev("identify", "m-a", "mia", "2026-11-01T10:01:00Z"));
  Send(Ev("page", "m-b", "", "2026-11-01T10:02:00Z"));
  // The identify that merges is the fourth event, but it is applied to m-b's profile (2 events)
  // before the merge: only the rules run by the merge see all four.
  Send(Ev("identify", "m-b", "mia", "2026-11-01T10:03:00Z"));
  EXPECT_EQ(Stat("user_id:mia", "events"), 4);
  auto p = Parsed("user_id:mia");
  EXPECT_NE(simdjson::minify(p["segments"]).find("active"), std::string::npos)
      << simdjson::minify(p);
}

}  // namespace
}  // namespace ecrm
