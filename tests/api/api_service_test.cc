#include "api/api_service.h"

#include <gtest/gtest.h>

#include <future>
#include <random>
#include <regex>
#include <thread>

#include "absl/strings/escaping.h"
#include "tests/testutil/temp_dir.h"

namespace ecrm {
namespace {

struct Call {
  std::string method = "POST";
  std::string target;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override { Make(); }

  // The store (once), then a fresh registry, engine and API over it.
  void Make(size_t max_queue_depth = 200000) {
    api_.reset();
    engine_.reset();
    registry_ = std::make_shared<prometheus::Registry>();
    if (!store_) {
      auto store = KvStore::Open({.path = dir_.Sub("db")});
      ASSERT_TRUE(store.ok());
      store_ = *std::move(store);
    }
    EngineOptions options;
    options.shards = 2;
    options.partitions = 8;
    options.max_queue_depth = max_queue_depth;
    engine_ = *ProfileEngine::Create(*store_, *registry_, options);
    engine_->Start();
    ApiOptions api;
    api.write_keys = {"wk"};
    api.browser_write_keys = {"bk"};
    api.identity_secret = "s3cret";
    api.read_keys = {"rk"};
    api.admin_token = "admin";
    api.more_admin_tokens = {"admin-old"};  // a rotation in progress
    api.limits.max_request_bytes = 4096;
    api.limits.max_event_bytes = 1024;
    api.limits.max_batch_events = 10;
    api.rate_limit_events = 50;
    api_ = std::make_unique<ApiService>(*engine_, *registry_, clock_, std::move(api));
  }

  HttpResponse Do(const Call& c) {
    HttpRequest req;
    req.method = c.method;
    req.target = c.target;
    req.body = c.body;
    for (const auto& [k, v] : c.headers) req.headers.emplace_back(k, v);
    std::promise<HttpResponse> done;
    auto future = done.get_future();
    api_->Handle(req, [&](HttpResponse r) { done.set_value(std::move(r)); });
    return future.get();
  }

  HttpResponse Post(const std::string& target, const std::string& body,
                    const std::string& key = "wk") {
    Call c{"POST", target, body, {}};
    if (!key.empty())
      c.headers.emplace_back("Authorization", "Basic " + absl::Base64Escape(key + ":"));
    return Do(c);
  }

  HttpResponse Get(const std::string& target, const std::string& bearer = "admin") {
    Call c{"GET", target, "", {}};
    if (!bearer.empty()) c.headers.emplace_back("Authorization", "Bearer " + bearer);
    return Do(c);
  }

  double Metric(const std::string& series) {
    const std::string text = Get("/metrics", "").body;
    const auto pos = text.find("\n" + series + " ");
    if (pos == std::string::npos) return -1;
    return std::stod(text.substr(pos + series.size() + 2));
  }

  void ExpectError(const HttpResponse& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_NE(r.body.find(R"("code":")" + code + "\""), std::string::npos) << r.body;
    EXPECT_NE(r.body.find(R"("message":)"), std::string::npos) << r.body;
  }

  testing::TempDir dir_;
  ManualClock clock_{1'790'000'000'000};
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<ProfileEngine> engine_;
  std::unique_ptr<ApiService> api_;
};

// Full worker queues: 429 overloaded with Retry-After: 1, nothing stored; a stopping engine: 503
// unavailable. Both counted by reason, neither charged to the key's rate.
TEST_F(ApiTest, FullQueuesAnswer429AndAStoppingEngine503) {
  Make(/*max_queue_depth=*/0);  // every queue counts as full
  const std::string batch = R"({"batch":[{"type":"page","anonymousId":"q1"}]})";
  auto r = Post("/v1/batch", batch);
  ExpectError(r, 429, "overloaded");
  bool retry_after = false;
  for (const auto& [k, v] : r.headers) retry_after |= k == "Retry-After" && v == "1";
  EXPECT_TRUE(retry_after);
  EXPECT_EQ(Metric(R"(ecrm_events_rejected_total{reason="overloaded"})"), 1);
  EXPECT_EQ(Get("/v1/profiles/anonymous_id:q1").status, 404);

  Make();
  engine_->Stop();
  r = Post("/v1/batch", batch);
  ExpectError(r, 503, "unavailable");
  EXPECT_EQ(Metric(R"(ecrm_events_rejected_total{reason="unavailable"})"), 1);
}

TEST_F(ApiTest, CollectsThenServesProfileAndPersonalization) {
  auto r = Post("/v1/batch", R"({"batch":[
      {"type":"identify","anonymousId":"a1","userId":"u1","traits":{"email":"Ada@Example.com"}},
      {"type":"track","anonymousId":"a1","event":"Product Viewed","properties":{"product_id":"p1","category":"shoes"}}]})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"success":true})");
  EXPECT_EQ(Post("/v1/p", R"({"anonymousId":"a1","writeKey":"wk"})", "").status, 200);

  auto profile = Get("/v1/profiles/user_id:u1");
  ASSERT_EQ(profile.status, 200) << profile.body;
  EXPECT_NE(profile.body.find(R"("events":3)"), std::string::npos) << profile.body;
  EXPECT_NE(profile.body.find(R"("page_views":1)"), std::string::npos);
  EXPECT_EQ(Get("/v1/profiles/email:ada%40example.com").body, profile.body);
  EXPECT_EQ(Get("/v1/profiles/email:%20ADA@example.com%20").body, profile.body);

  auto p = Get("/v1/personalize/anonymous_id:a1", "rk");
  EXPECT_EQ(p.status, 200);
  EXPECT_NE(p.body.find(R"("known":true)"), std::string::npos) << p.body;
  EXPECT_NE(p.body.find(R"("category":"shoes")"), std::string::npos) << p.body;
  EXPECT_EQ(Metric(R"(ecrm_events_accepted_total{type="track"})"), 1);
  EXPECT_EQ(Metric(R"(ecrm_events_accepted_total{type="page"})"), 1);
}

TEST_F(ApiTest, AProfileIsReadByItsIdToo) {
  ASSERT_EQ(Post("/v1/identify", R"({"anonymousId":"a9","userId":"u9"})").status, 200);
  const auto profile = Get("/v1/profiles/user_id:u9");
  ASSERT_EQ(profile.status, 200);
  const auto at = profile.body.find(R"("id":")");
  ASSERT_NE(at, std::string::npos) << profile.body;
  const std::string id = profile.body.substr(at + 6, 21);
  EXPECT_EQ(Get("/v1/profiles/id:" + id).body, profile.body);
  EXPECT_NE(Get("/v1/personalize/id:" + id, "rk").body.find(R"("known":true)"), std::string::npos);
  ExpectError(Get("/v1/profiles/id:0000-0000000000000bad"), 404, "not_found");
  ExpectError(Get("/v1/profiles/id:not-an-id"), 400, "invalid_identifier");
  Call erase{"DELETE", "/v1/profiles/id:" + id, "", {{"Authorization", "Bearer admin"}}};
  ExpectError(Do(erase), 400, "invalid_identifier");  // erased by an identifier only
  EXPECT_EQ(Get("/v1/profiles/id:" + id).status, 200);
}

TEST_F(ApiTest, UnknownVisitorPersonalizesToDefaultButProfileIs404) {
  auto p = Get("/v1/personalize/anonymous_id:nobody", "rk");
  EXPECT_EQ(p.status, 200);
  EXPECT_EQ(
      p.body,
      R"({"known":false,"segments":[],"scores":{},"offers":[],"top_interests":[],"recent_products":[]})");
  ExpectError(Get("/v1/profiles/anonymous_id:nobody"), 404, "not_found");
}

TEST_F(ApiTest, ReadsNeedTheRightToken) {
  ExpectError(Get("/v1/profiles/user_id:u1", ""), 401, "unauthorized");
  ExpectError(Get("/v1/profiles/user_id:u1", "rk"), 401, "unauthorized");  // read key: not admin
  ExpectError(Get("/v1/personalize/user_id:u1", "wrong"), 401, "unauthorized");
  EXPECT_EQ(Get("/v1/personalize/user_id:u1", "admin").status, 200);
  EXPECT_EQ(Get("/v1/personalize/user_id:u1", "admin-old").status, 200);  // rotation: both work
  ExpectError(Get("/v1/profiles/anonymous_id:nobody", "admin-old"), 404, "not_found");
  ExpectError(Get("/v1/profiles/anonymous_id:nobody", "admin-ol"), 401, "unauthorized");
  ExpectError(Get("/v1/profiles/nocolon"), 400, "invalid_identifier");
  ExpectError(Get("/v1/profiles/phone:123"), 400, "invalid_identifier");
  ExpectError(Get("/v1/profiles/user_id:%zz"), 400, "invalid_identifier");
}

TEST_F(ApiTest, RejectionsAreCountedAndLeaveStateIntact) {
  ASSERT_EQ(Post("/v1/track", R"({"anonymousId":"a","event":"E"})").status, 200);
  const std::string before = Get("/v1/profiles/anonymous_id:a").body;

  ExpectError(Post("/v1/batch", "{oops"), 400, "invalid_json");
  ExpectError(Post("/v1/batch", R"({"batch":[{"type":"track","anonymousId":"a","event":"E"},
      {"type":"track","anonymousId":"a"}]})"),
              400, "missing_event");
  auto indexed =
      Post("/v1/batch",
           R"({"batch":[{"type":"track","anonymousId":"a","event":"E"},{"anonymousId":"a"}]})");
  EXPECT_NE(indexed.body.find(R"("index":1)"), std::string::npos) << indexed.body;
  ExpectError(Post("/v1/batch", R"({"batch":[]})", ""), 401, "missing_write_key");
  ExpectError(Post("/v1/batch", R"({"batch":[]})", "nope"), 401, "invalid_write_key");
  ExpectError(Post("/v1/batch", R"({"writeKey":"nope","batch":[]})", ""), 401, "invalid_write_key");
  Call gz{"POST", "/v1/batch", "not gzip", {{"Content-Encoding", "gzip"}, {"X-Write-Key", "wk"}}};
  ExpectError(Do(gz), 400, "invalid_encoding");
  Call br{"POST", "/v1/batch", "{}", {{"Content-Encoding", "br"}, {"X-Write-Key", "wk"}}};
  ExpectError(Do(br), 400, "invalid_encoding");

  EXPECT_EQ(Metric(R"(ecrm_events_rejected_total{reason="invalid_json"})"), 1);
  EXPECT_EQ(Metric(R"(ecrm_events_rejected_total{reason="missing_event"})"), 1);
  EXPECT_EQ(Metric(R"(ecrm_events_rejected_total{reason="missing_type"})"), 1);
  EXPECT_EQ(Metric(R"(ecrm_events_rejected_total{reason="missing_write_key"})"), 1);
  EXPECT_EQ(Metric(R"(ecrm_events_rejected_total{reason="invalid_write_key"})"), 2);
  EXPECT_EQ(Metric(R"(ecrm_events_rejected_total{reason="invalid_encoding"})"), 2);
  EXPECT_EQ(Get("/v1/profiles/anonymous_id:a").body, before);
  EXPECT_EQ(Metric(R"(ecrm_events_accepted_total{type="track"})"), 1);
}

TEST_F(ApiTest, WriteKeyFromQueryAndJitsuStyleHeader) {
  EXPECT_EQ(Post("/v1/track?writeKey=wk", R"({"anonymousId":"a","event":"E"})", "").status, 200);
  Call jitsu{"POST", "/v1/t", R"({"anonymousId":"a","event":"E"})", {{"X-Write-Key", "wk:secret"}}};
  EXPECT_EQ(Do(jitsu).status, 200);
}

TEST_F(ApiTest, CorsPreflightAndEchoedOrigin) {
  Call pre{"OPTIONS",
           "/v1/t",
           "",
           {{"Origin", "http://shop.example"},
            {"Access-Control-Request-Headers", "authorization,content-type"}}};
  auto r = Do(pre);
  EXPECT_EQ(r.status, 204);
  auto header = [&](const HttpResponse& res, const std::string& name) {
    for (const auto& [k, v] : res.headers) {
      if (k == name) return v;
    }
    return std::string();
  };
  EXPECT_EQ(header(r, "Access-Control-Allow-Origin"), "http://shop.example");
  EXPECT_EQ(header(r, "Access-Control-Allow-Credentials"), "true");
  EXPECT_EQ(header(r, "Access-Control-Allow-Headers"), "authorization,content-type");
  Call post{"POST",
            "/v1/t",
            R"({"anonymousId":"a","event":"E","writeKey":"wk"})",
            {{"Origin", "http://shop.example"}, {"Content-Type", "text/plain"}}};
  auto ok = Do(post);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(header(ok, "Access-Control-Allow-Origin"), "http://shop.example");
}

std::string HeaderOf(const HttpResponse& res, const std::string& name) {
  for (const auto& [k, v] : res.headers) {
    if (k == name) return v;
  }
  return {};
}

TEST_F(ApiTest, SettingsForBrowserClients) {
  Call c{"GET", "/v1/projects/wk/settings", "", {{"Host", "127.0.0.1:9999"}}};
  auto r = Do(c);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find(R"("Segment.io":{"apiKey":"wk","apiHost":"127.0.0.1:9999/v1")"),
            std::string::npos)
      << r.body;
  // Taken from the request's Host: never kept by a shared cache.
  EXPECT_EQ(HeaderOf(r, "Cache-Control"), "private, no-store");
  // No key oracle: an unknown key is answered as a known one would be (its events get 401).
  Call guess{"GET", "/v1/projects/nope/settings", "", {{"Host", "127.0.0.1:9999"}}};
  const auto g = Do(guess);
  EXPECT_EQ(g.status, 200);
  std::string expected = r.body;
  expected.replace(expected.find(R"("apiKey":"wk")"), 13, R"("apiKey":"nope")");
  EXPECT_EQ(g.body, expected);
  ExpectError(Get("/v1/projects/no%20key/settings", ""), 400, "invalid_write_key");
  // A Host that is not a host is not reflected.
  for (const std::string host : {"evil.example/steal?", "a b", "x\"y", "[::1]:80:80", ""}) {
    Call bad{"GET", "/v1/projects/wk/settings", "", {{"Host", host}}};
    const auto b = Do(bad);
    EXPECT_EQ(b.status, 200);
    EXPECT_NE(b.body.find(R"("apiHost":"127.0.0.1:8080/v1")"), std::string::npos) << host;
  }
  Call v6{"GET", "/v1/projects/wk/settings", "", {{"Host", "[::1]:8443"}}};
  EXPECT_NE(Do(v6).body.find(R"("apiHost":"[::1]:8443/v1")"), std::string::npos);
}

TEST_F(ApiTest, AConfiguredPublicUrlIsWhatSettingsAnswerWhateverTheHost) {
  ApiOptions options;
  options.write_keys = {"wk"};
  options.public_url = "https://collect.shop.example/ecrm";
  auto registry = std::make_shared<prometheus::Registry>();
  ApiService api(*engine_, *registry, clock_, std::move(options));
  HttpRequest req;
  req.method = "GET";
  req.target = "/v1/projects/wk/settings";
  req.headers.emplace_back("host", "attacker.example");
  req.headers.emplace_back("x-forwarded-proto", "http");
  HttpResponse res;
  api.Handle(req, [&](HttpResponse r) { res = std::move(r); });
  EXPECT_EQ(res.status, 200);
  EXPECT_NE(res.body.find(R"("apiHost":"collect.shop.example/ecrm/v1","protocol":"https")"),
            std::string::npos)
      << res.body;
  EXPECT_EQ(HeaderOf(res, "Cache-Control"), "public, max-age=300");
}

TEST_F(ApiTest, CorsIsForTheBrowserRoutesWithCredentialsAndForListedOriginsElsewhere) {
  ASSERT_EQ(Post("/v1/track", R"({"anonymousId":"c1","event":"E"})").status, 200);
  auto with_origin = [&](Call c, const std::string& origin) {
    c.headers.emplace_back("Origin", origin);
    return Do(c);
  };
  const Call collect{"POST", "/v1/t", R"({"anonymousId":"c1","event":"E","writeKey":"wk"})", {}};
  const Call admin_read{
      "GET", "/v1/profiles/anonymous_id:c1", "", {{"Authorization", "Bearer admin"}}};
  const Call metrics{"GET", "/metrics", "", {}};
  const Call preflight_admin{"OPTIONS", "/v1/profiles/anonymous_id:c1", "", {}};
  // Default (no list): any origin on the collector, with credentials...
  auto r = with_origin(collect, "https://shop.example");
  EXPECT_EQ(HeaderOf(r, "Access-Control-Allow-Origin"), "https://shop.example");
  EXPECT_EQ(HeaderOf(r, "Access-Control-Allow-Credentials"), "true");
  // ...but not `null`, and nothing on admin routes or /metrics (a page cannot read them).
  EXPECT_EQ(HeaderOf(with_origin(collect, "null"), "Access-Control-Allow-Origin"), "");
  for (const Call& c : {admin_read, metrics, preflight_admin}) {
    const auto a = with_origin(c, "https://shop.example");
    EXPECT_EQ(HeaderOf(a, "Access-Control-Allow-Origin"), "") << c.target;
    EXPECT_EQ(HeaderOf(a, "Access-Control-Allow-Credentials"), "") << c.target;
  }
  // A preflight names the methods of the route asked for.
  EXPECT_EQ(HeaderOf(with_origin({"OPTIONS", "/v1/t", "", {}}, "https://shop.example"),
                     "Access-Control-Allow-Methods"),
            "POST, OPTIONS");

  // With a list: only listed origins, on every route, credentials only on browser routes.
  ApiOptions options;
  options.write_keys = {"wk"};
  options.admin_token = "admin";
  options.cors_origins = {"https://shop.example", "https://console.shop.example"};
  auto registry = std::make_shared<prometheus::Registry>();
  api_ = std::make_unique<ApiService>(*engine_, *registry, clock_, std::move(options));
  EXPECT_EQ(HeaderOf(with_origin(collect, "https://other.example"), "Access-Control-Allow-Origin"),
            "");
  EXPECT_EQ(HeaderOf(with_origin(collect, "https://shop.example"), "Access-Control-Allow-Origin"),
            "https://shop.example");
  const auto console = with_origin(admin_read, "https://console.shop.example");
  EXPECT_EQ(console.status, 200);
  EXPECT_EQ(HeaderOf(console, "Access-Control-Allow-Origin"), "https://console.shop.example");
  EXPECT_EQ(HeaderOf(console, "Access-Control-Allow-Credentials"), "");
}

TEST_F(ApiTest, BrowserKeysCollectAndLoadSettingsLikeServerKeys) {
  // The trust marks themselves are tested with IdentityTrust (tests/ingest/identity_trust_test.cc).
  EXPECT_EQ(Post("/v1/track", R"({"anonymousId":"b1","event":"E"})", "bk").status, 200);
  EXPECT_EQ(Post("/v1/p", R"({"anonymousId":"b1","writeKey":"bk"})", "").status, 200);
  // A client's top-level `ecrm` field is ignored, and a user_hash is checked, not required.
  EXPECT_EQ(Post("/v1/batch",
                 R"({"ecrm":{"trusted":true},"batch":[{"type":"identify","anonymousId":"b1",
                     "userId":"u9","context":{"ecrm":{"user_hash":"not-a-valid-hash"}}}]})",
                 "bk")
                .status,
            200);
  ExpectError(
      Post("/v1/batch",
           R"({"batch":[{"type":"identify","userId":"u9","context":{"ecrm":{"user_hash":1}}}]})",
           "bk"),
      400, "invalid_field_type");
  auto profile = Get("/v1/profiles/anonymous_id:b1");
  EXPECT_NE(profile.body.find(R"("events":3)"), std::string::npos) << profile.body;
  Call c{"GET", "/v1/projects/bk/settings", "", {{"Host", "127.0.0.1:9999"}}};
  EXPECT_EQ(Do(c).status, 200);
}

TEST_F(ApiTest, HealthAndUnknownRoutes) {
  EXPECT_EQ(Get("/healthz", "").status, 200);
  EXPECT_EQ(Get("/readyz", "").status, 200);
  ExpectError(Get("/nope", ""), 404, "not_found");
  ExpectError(Get("/v1/batch", ""), 405, "method_not_allowed");
}

// 405 with Allow when the path is a route but the method is not one of its; 501 for a method no
// route implements; 404 for a path that is no route, whatever the method.
TEST_F(ApiTest, WrongMethodsAre405WithAllowAndUnknownOnes501) {
  auto allow = [](const HttpResponse& r) {
    for (const auto& [k, v] : r.headers) {
      if (k == "Allow") return v;
    }
    return std::string("(none)");
  };
  HttpResponse r = Do({"POST", "/healthz", "", {}});
  ExpectError(r, 405, "method_not_allowed");
  EXPECT_EQ(allow(r), "GET, HEAD, OPTIONS");
  r = Do({"PUT", "/v1/batch", "{}", {}});
  ExpectError(r, 405, "method_not_allowed");
  EXPECT_EQ(allow(r), "POST, OPTIONS");
  r = Do({"DELETE", "/v1/personalize/anonymous_id:a", "", {}});
  ExpectError(r, 405, "method_not_allowed");
  EXPECT_EQ(allow(r), "GET, HEAD, OPTIONS");
  r = Do({"POST", "/v1/profiles/anonymous_id:a", "", {}});
  ExpectError(r, 405, "method_not_allowed");
  EXPECT_EQ(allow(r), "GET, HEAD, DELETE, OPTIONS");
  r = Do({"GET", "/v1/profiles/import", "", {}});
  ExpectError(r, 405, "method_not_allowed");
  EXPECT_EQ(allow(r), "POST, OPTIONS");
  EXPECT_EQ(allow(Do({"POST", "/metrics", "", {}})), "GET, HEAD, OPTIONS");
  EXPECT_EQ(allow(Do({"PUT", "/v1/projects/wk/settings", "", {}})), "GET, HEAD, OPTIONS");
  for (const char* method : {"BREW", "PROPFIND", "PATCH", "TRACE", "CONNECT", "get"}) {
    ExpectError(Do({method, "/healthz", "", {}}), 501, "not_implemented");
    ExpectError(Do({method, "/nope", "", {}}), 501, "not_implemented");
  }
  ExpectError(Do({"POST", "/nope", "", {}}), 404, "not_found");
  ExpectError(Do({"DELETE", "/nope", "", {}}), 404, "not_found");
  ExpectError(Do({"PUT", "/v1/rules", "", {}}), 404, "not_found");  // no rule registry here
  EXPECT_EQ(Do({"OPTIONS", "/healthz", "", {}}).status, 204);
  EXPECT_EQ(Metric(R"(ecrm_http_requests_total{code="4xx",route="health"})"), 1);
  EXPECT_EQ(Metric(R"(ecrm_http_requests_total{code="5xx",route="health"})"), 6);
}

// A body over the limit is counted under the route it was sent to, and only a collector's as an
// event rejection.
TEST_F(ApiTest, OverLimitBodiesAreCountedUnderTheirRoute) {
  auto too_large = [&](const std::string& target) {
    HttpRequest req;
    req.method = "POST";
    req.target = target;
    const HttpResponse r = api_->RequestTooLarge(req);
    ExpectError(r, 400, "request_too_large");
  };
  too_large("/v1/profiles/import");
  too_large("/v1/profiles/import?x=1");
  EXPECT_EQ(Metric(R"(ecrm_http_requests_total{code="4xx",route="import"})"), 2);
  EXPECT_EQ(Metric(R"(ecrm_http_requests_total{code="4xx",route="collect_batch"})"), 0);
  EXPECT_EQ(Metric(R"(ecrm_events_rejected_total{reason="request_too_large"})"), 0);
  too_large("/v1/track");
  too_large("/v1/batch");
  EXPECT_EQ(Metric(R"(ecrm_http_requests_total{code="4xx",route="collect"})"), 1);
  EXPECT_EQ(Metric(R"(ecrm_http_requests_total{code="4xx",route="collect_batch"})"), 1);
  EXPECT_EQ(Metric(R"(ecrm_events_rejected_total{reason="request_too_large"})"), 2);
}

TEST_F(ApiTest, OverTheRateLimitGets429AndNothingIsApplied) {
  std::string batch = R"({"batch":[)";
  for (int i = 0; i < 10; i++)
    batch += std::string(i ? "," : "") + R"({"type":"page","anonymousId":"r"})";
  batch += "]}";
  for (int i = 0; i < 5; i++)
    ASSERT_EQ(Post("/v1/batch", batch).status, 200);  // 50 events: the burst
  auto r = Post("/v1/batch", batch);
  ExpectError(r, 429, "rate_limited");
  bool retry_after = false;
  for (const auto& [k, v] : r.headers) retry_after |= k == "Retry-After";
  EXPECT_TRUE(retry_after);
  EXPECT_NE(Get("/v1/profiles/anonymous_id:r").body.find(R"("events":50)"), std::string::npos);
  EXPECT_EQ(Metric(R"(ecrm_events_rejected_total{reason="rate_limited"})"), 1);
  clock_.Advance(1000);
  EXPECT_EQ(Post("/v1/batch", batch).status, 200);
}

TEST_F(ApiTest, HelpersDecodeKeysAndPercentEscapes) {
  EXPECT_EQ(PercentDecode("a%40b.c%3A"), "a@b.c:");
  EXPECT_FALSE(PercentDecode("%4").has_value());
  HttpRequest req;
  const std::string basic = "Basic " + absl::Base64Escape("key1:");
  req.headers.emplace_back("authorization", basic);
  EXPECT_EQ(WriteKeyFromRequest(req), "key1");
  const std::string no_colon = "Basic " + absl::Base64Escape("key2");
  req.headers[0].second = no_colon;
  EXPECT_EQ(WriteKeyFromRequest(req), "key2");
}

}  // namespace
}  // namespace ecrm

namespace ecrm {
namespace {

TEST(RateLimiter, RefillsAtTheRateUpToOneSecondOfBurst) {
  ManualClock clock(1000);
  RateLimiter limiter({"k"}, 100, clock);
  EXPECT_TRUE(limiter.TryAcquire("k", 60));
  EXPECT_TRUE(limiter.TryAcquire("k", 40));
  EXPECT_FALSE(limiter.TryAcquire("k", 1));
  clock.Advance(100);  // +10 tokens
  EXPECT_TRUE(limiter.TryAcquire("k", 10));
  EXPECT_FALSE(limiter.TryAcquire("k", 1));
  clock.Advance(60'000);  // refills to the burst (100), not beyond
  EXPECT_FALSE(limiter.TryAcquire("k", 101));
  EXPECT_TRUE(limiter.TryAcquire("k", 100));
  EXPECT_TRUE(limiter.TryAcquire("other", 1'000'000));  // unknown keys are auth's business
  RateLimiter off({"k"}, 0, clock);
  EXPECT_TRUE(off.TryAcquire("k", 1'000'000));
}

// The reference model: a token bucket as the textbook states it, in exact thousandths of a token.
// At each request the bucket gains rate × (elapsed time) since the previous request, capped at the
// burst; a request for n tokens passes iff the bucket holds n. Refunds give tokens back (capped).
struct BucketModel {
  int64_t rate, burst, milli, last;
  void Advance(TimeMs now) {
    if (now > last) milli = std::min(burst * 1000, milli + rate * (now - last));
    last = std::max(last, now);
  }
  bool Acquire(TimeMs now, int64_t n) {
    Advance(now);
    if (milli < n * 1000) return false;
    milli -= n * 1000;
    return true;
  }
  void Refund(int64_t n) { milli = std::min(burst * 1000, milli + n * 1000); }
};

struct LimiterStep {
  TimeMs advance;
  int64_t events;
  bool refund;
};

// Returns the index of the first step where the limiter and the model disagree, or -1.
int FirstDisagreement(const std::vector<LimiterStep>& steps, int64_t rate, int64_t burst) {
  ManualClock clock(5'000);
  RateLimiter limiter({"k"}, rate, clock, burst);
  BucketModel model{rate, std::max(rate, burst), std::max(rate, burst) * 1000, 5'000};
  for (size_t i = 0; i < steps.size(); i++) {
    clock.Advance(steps[i].advance);
    const bool got = limiter.TryAcquire("k", steps[i].events);
    if (got != model.Acquire(clock.NowMs(), steps[i].events)) return static_cast<int>(i);
    if (got && steps[i].refund) {
      limiter.Refund("k", steps[i].events);
      model.Refund(steps[i].events);
    }
  }
  return -1;
}

TEST(RateLimiter, AgreesWithATokenBucketModelOverRandomHistories) {
  for (uint64_t seed = 1; seed <= 300; seed++) {
    std::mt19937_64 rng(seed);
    const int64_t rate = std::vector<int64_t>{1, 3, 7, 100, 333, 1000, 25'000}[rng() % 7];
    const int64_t burst = rng() % 2 ? 0 : static_cast<int64_t>(rng() % 500);
    std::vector<LimiterStep> steps(400);
    for (auto& s : steps) {
      // Mostly short gaps (where dropped fractions used to starve clients), some long ones.
      s.advance =
          rng() % 10 == 0 ? static_cast<TimeMs>(rng() % 3'000) : static_cast<TimeMs>(rng() % 7);
      s.events = rng() % 4 == 0 ? 0 : static_cast<int64_t>(rng() % (rate < 10 ? 3 : rate / 4 + 2));
      s.refund = rng() % 8 == 0;
    }
    int at = FirstDisagreement(steps, rate, burst);
    if (at < 0) continue;
    // Shrink: the prefix up to the disagreement, then drop steps while it still disagrees.
    steps.resize(static_cast<size_t>(at) + 1);
    for (size_t i = 0; i < steps.size();) {
      auto fewer = steps;
      fewer.erase(fewer.begin() + static_cast<std::ptrdiff_t>(i));
      if (!fewer.empty() && FirstDisagreement(fewer, rate, burst) >= 0) {
        steps = std::move(fewer);
      } else {
        i++;
      }
    }
    std::string trace;
    for (const auto& s : steps)
      trace += "  +" + std::to_string(s.advance) + " ms take " + std::to_string(s.events) +
               (s.refund ? " refund\n" : "\n");
    FAIL() << "seed " << seed << " rate " << rate << " burst " << burst
           << ": limiter and model disagree at the last step of\n"
           << trace;
  }
}

TEST(RateLimiter, AClientAtTwiceTheRateGetsTheRateNotAFraction) {
  ManualClock clock(0);
  RateLimiter limiter({"k"}, 100, clock);
  int accepted = 0;
  for (int i = 0; i < 2'000; i++) {  // one event every 5 ms for 10 s
    clock.Advance(5);
    accepted += limiter.TryAcquire("k", 1);
  }
  // The burst, then one per 10 ms over the 9,995 ms after the bucket was last full (at 5 ms). The
  // old limiter, which dropped each refill's fraction (0.5 token) and advanced its clock, accepted
  // only the burst.
  EXPECT_EQ(accepted, 100 + 999);
}

TEST(RateLimiter, EmptyBatchesOfAnotherClientDoNotStarveACompliantOne) {
  ManualClock clock(0);
  RateLimiter limiter({"public"}, 100, clock);
  int rejected = 0;
  for (int ms = 1; ms <= 20'000; ms++) {
    clock.Set(ms);
    EXPECT_TRUE(limiter.TryAcquire("public", 0));                    // the other client, every ms
    if (ms % 10 == 0) rejected += !limiter.TryAcquire("public", 1);  // 100/s: compliant
  }
  EXPECT_EQ(rejected, 0);
}

TEST(RateLimiter, ConcurrentCallersNeverTakeMoreThanTheBucketHolds) {
  ManualClock clock(0);
  RateLimiter limiter({"k"}, 1'000, clock);
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++)
    threads.emplace_back([&] {
      for (int i = 0; i < 1'000; i++) accepted += limiter.TryAcquire("k", 1);
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted.load(), 1'000);  // the burst, with the clock standing still
}

}  // namespace
}  // namespace ecrm
