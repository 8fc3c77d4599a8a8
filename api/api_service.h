// ApiService: every HTTP route of ecrm — the Segment/RudderStack-compatible collector, the profile
// and personalization reads, settings for browser clients, metrics and health. It authenticates,
// parses and validates, marks each event with its write key's trust (IdentityTrust), hands the
// events to the ProfileEngine and answers once they are durable.
//
// Ownership: owned by the app; the engine, registry and clock must outlive it. Threading: Handle is
// called concurrently from the HTTP io threads; per-thread parsers are thread_local; everything
// else is immutable after construction or atomic.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "api/api_metrics.h"
#include "api/forwarder.h"
#include "api/http_types.h"
#include "api/profile_import.h"
#include "api/rate_limiter.h"
#include "api/rules_api.h"
#include "common/clock.h"
#include "ingest/collector_parser.h"
#include "ingest/identity_trust.h"
#include "ingest/kafka_producer.h"
#include "profiler/engine.h"
#include "profiler/profile_json.h"
#include "prometheus/registry.h"

namespace ecrm {

struct ApiOptions {
  std::vector<std::string> write_keys;  // server collector keys (HTTP Basic user or body writeKey)
  // Browser collector keys: their events are untrusted (ingest/identity_trust.h). Disjoint from
  // write_keys.
  std::vector<std::string> browser_write_keys;
  // The HMAC key that verifies a browser event's context.ecrm.user_hash; "" = none. Never logged.
  std::string identity_secret;
  std::vector<std::string> read_keys;  // personalization keys (Bearer)
  std::string admin_token;             // profile reads (Bearer); also allowed to personalize
  // Further admin tokens accepted as well (a rotation: the new and the old for a while).
  std::vector<std::string> more_admin_tokens;
  CollectorLimits limits;
  int64_t rate_limit_events = 0;  // events per second per write key; 0 = unlimited
  PersonalizeOptions personalize;
  std::function<void()> before_scrape;  // refreshes gauges (e.g. RocksDB stats) before /metrics
  std::function<bool()> ready;          // /readyz answers 200 only when this returns true
  // GET /v1/cluster (admin): the JSON body describing the instances and their partitions. May
  // block for a round trip to Kafka; called on an HTTP thread. Unset: 404.
  std::function<HttpResponse()> cluster;
  KafkaEventProducer* producer =
      nullptr;                    // Kafka mode: the collector produces here, not to the engine
  bool collector_enabled = true;  // false for --role processor: collector routes answer 503
  RuleRegistry* rules = nullptr;  // the /v1/rules routes (absent: 404)
  // Identifier types besides anonymous_id, user_id and email (imports, profile reads).
  std::vector<std::string> identifier_types = {"phone", "crm_id"};
  RuleMetrics* rule_metrics = nullptr;
  // Cluster mode: who owns the partitions this instance does not. Profile reads, personalization
  // and erasures for them are forwarded there (docs/cluster.md#any-instance-answers). Null: every
  // partition is served here. Must outlive the service.
  PartitionDirectory* directory = nullptr;
  int forward_timeout_ms = 2000;
  std::string self_addr;  // this instance's advertised HTTP address (never forwarded to)
  // Origins allowed to call the service from a browser (docs/api.md#cors). Empty: any origin but
  // `null` on the browser routes (collector, settings, personalization), none on the others.
  // Listed origins get CORS answers on every route; credentials are allowed only on the browser
  // routes.
  std::vector<std::string> cors_origins;
  // The collector's URL as browsers reach it (`https://collect.shop.example`), which the settings
  // route hands to analytics.js. Empty: taken from the request's Host, and the answer is then not
  // cacheable by shared caches.
  std::string public_url;
};

class ApiService final : public HttpHandler {
 public:
  ApiService(ProfileEngine& engine, prometheus::Registry& registry, const Clock& clock,
             ApiOptions options);

  void Handle(const HttpRequest& request, Responder respond) override;
  HttpResponse RequestTooLarge(const HttpRequest& request) override;

 private:
  void HandleCollect(const HttpRequest& req, std::optional<EventType> path_type, Route route,
                     Responder respond, int64_t start_ns);
  // A profile read, personalization or (with `erase`) erasure. The returned response has status
  // 0 when the answer is left to `respond` (an erasure once durable, a forwarded request once its
  // owner answered).
  // The token is the admin token or one of the more_admin_tokens.
  bool IsAdmin(std::string_view token) const;
  HttpResponse HandleProfile(const HttpRequest& req, std::string_view identifier, bool personalize,
                             bool erase, const Responder& respond);
  // Hands the request to the owner of `partition` as `method` `target`, and answers through
  // `respond` with the owner's answer; 503 partition_moving if no owner answers for it. Never
  // blocks: the answer comes from the forwarder's thread.
  void Forward(const HttpRequest& req, uint32_t partition, std::string_view method,
               std::string_view target, Responder respond);
  struct Forwarding;
  void ForwardAttempt(std::shared_ptr<Forwarding> f);
  HttpResponse HandleSettings(const HttpRequest& req, std::string_view write_key);
  HttpResponse HandleMetrics();
  HttpResponse Reject(const Rejection& rejection);
  // A route's metric label and the methods it answers (the Allow header of its 405).
  struct RouteMethods {
    Route route;
    std::string_view allow;
  };
  // The route `path` names and the methods it answers; nullopt if it names none.
  std::optional<RouteMethods> RouteOf(std::string_view path) const;
  // The CORS headers for a request from `origin` to `route` (the preflight's target route for an
  // OPTIONS), if that origin may call it.
  void AddCors(std::string_view origin, Route route, HttpResponse& res) const;

  ProfileEngine& engine_;
  prometheus::Registry& registry_;
  const Clock& clock_;
  ApiOptions options_;
  ApiMetrics metrics_;
  absl::flat_hash_map<std::string, WriteKeyInfo> write_keys_;  // both kinds
  IdentityTrust identity_trust_;
  absl::flat_hash_set<std::string> read_keys_;
  absl::flat_hash_set<std::string> cors_origins_;
  RateLimiter rate_limiter_;
  std::unique_ptr<RulesApi> rules_api_;
  std::unique_ptr<ProfileImport> import_;
  Forwarder forwarder_;
  prometheus::Counter* forwarded_ok_ = nullptr;
  prometheus::Counter* forwarded_moving_ = nullptr;
  prometheus::Counter* forwarded_unreachable_ = nullptr;
  prometheus::Histogram* forward_seconds_ = nullptr;
};

// "a%40b.c" -> "a@b.c"; nullopt on a malformed escape.
std::optional<std::string> PercentDecode(std::string_view s);

// The write key from request headers or query: HTTP Basic (user part; Jitsu's "key:secret" keeps
// the key), X-Write-Key, or ?writeKey=. Empty if none.
std::string WriteKeyFromRequest(const HttpRequest& req);

// A JSON response with `body`, and one carrying ErrorBody(code, message).
HttpResponse JsonResponse(int status, std::string body);
// Every series of `registry` in the Prometheus text format (GET /metrics).
HttpResponse MetricsResponse(prometheus::Registry& registry);
HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message);

// JSON error body {"error":{"code","message"[,"index"]}}.
std::string ErrorBody(std::string_view code, std::string_view message, int index = -1);

}  // namespace ecrm
