#include "api/api_service.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <iterator>

#include "absl/strings/escaping.h"
#include "common/json_writer.h"
#include "common/logging.h"
#include "common/murmur2.h"
#include "common/strings.h"
#include "ingest/gzip.h"
#include "ingest/key_id.h"
#include "prometheus/histogram.h"
#include "prometheus/text_serializer.h"
#include "store/keys.h"

namespace ecrm {
namespace {

int64_t MonotonicNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string_view BearerToken(const HttpRequest& req) {
  std::string_view auth = req.Header("authorization");
  if (!StartsWithIgnoreCase(auth, "bearer ")) return {};
  auth.remove_prefix(7);
  while (!auth.empty() && auth.front() == ' ') auth.remove_prefix(1);
  return auth;
}

struct CollectRoute {
  std::string_view path;
  std::optional<EventType> type;  // nullopt: a batch endpoint
};

constexpr CollectRoute kCollectRoutes[] = {
    {"/v1/identify", EventType::kIdentify},
    {"/v1/i", EventType::kIdentify},
    {"/v1/track", EventType::kTrack},
    {"/v1/t", EventType::kTrack},
    {"/v1/page", EventType::kPage},
    {"/v1/p", EventType::kPage},
    {"/v1/screen", EventType::kScreen},
    {"/v1/s", EventType::kScreen},
    {"/v1/group", EventType::kGroup},
    {"/v1/g", EventType::kGroup},
    {"/v1/alias", EventType::kAlias},
    {"/v1/a", EventType::kAlias},
    {"/v1/batch", std::nullopt},
    {"/v1/import", std::nullopt},
    {"/v1/b", std::nullopt},
    {"/b", std::nullopt},
};

// The methods the server implements on some route; any other gets 501.
constexpr std::string_view kImplementedMethods[] = {"GET", "HEAD",   "POST",
                                                    "PUT", "DELETE", "OPTIONS"};

bool MethodAllowed(std::string_view method, std::string_view allow) {
  while (!allow.empty()) {
    const std::string_view m = allow.substr(0, allow.find(','));
    if (m == method) return true;
    allow.remove_prefix(std::min(allow.size(), m.size() + 1));
    while (!allow.empty() && allow.front() == ' ') allow.remove_prefix(1);
  }
  return false;
}

std::vector<std::string> AllWriteKeys(const ApiOptions& options) {
  std::vector<std::string> keys = options.write_keys;
  keys.insert(keys.end(), options.browser_write_keys.begin(), options.browser_write_keys.end());
  return keys;
}

}  // namespace

HttpResponse JsonResponse(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message) {
  return JsonResponse(status, ErrorBody(code, message));
}

std::string ErrorBody(std::string_view code, std::string_view message, int index) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("error").BeginObject();
  w.Key("code").String(code).Key("message").String(message);
  if (index >= 0) w.Key("index").Int(index);
  w.EndObject().EndObject();
  return out;
}

std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int v = 0;
    for (size_t j = i + 1; j <= i + 2; j++) {
      const char c = s[j];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= c - '0';
      else if (c >= 'a' && c <= 'f')
        v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        v |= c - 'A' + 10;
      else
        return std::nullopt;
    }
    out.push_back(static_cast<char>(v));
    i += 2;
  }
  return out;
}

std::string WriteKeyFromRequest(const HttpRequest& req) {
  std::string_view auth = req.Header("authorization");
  if (StartsWithIgnoreCase(auth, "basic ")) {
    auth.remove_prefix(6);
    std::string decoded;
    if (absl::Base64Unescape(absl::string_view(auth.data(), auth.size()), &decoded))
      return decoded.substr(0, decoded.find(':'));
  }
  std::string_view header = req.Header("x-write-key");
  if (!header.empty()) return std::string(header.substr(0, header.find(':')));
  std::string_view query = req.Query();
  while (!query.empty()) {
    std::string_view pair = query.substr(0, query.find('&'));
    query.remove_prefix(std::min(query.size(), pair.size() + 1));
    if (pair.starts_with("writeKey=")) {
      return PercentDecode(pair.substr(9)).value_or(std::string());
    }
  }
  return {};
}

ApiService::ApiService(ProfileEngine& engine, prometheus::Registry& registry, const Clock& clock,
                       ApiOptions options)
    : engine_(engine),
      registry_(registry),
      clock_(clock),
      options_(std::move(options)),
      metrics_(registry),
      identity_trust_(std::move(options_.identity_secret)),
      read_keys_(options_.read_keys.begin(), options_.read_keys.end()),
      cors_origins_(options_.cors_origins.begin(), options_.cors_origins.end()),
      rate_limiter_(AllWriteKeys(options_), options_.rate_limit_events, clock,
                    static_cast<int64_t>(options_.limits.max_batch_events)),
      forwarder_(options_.forward_timeout_ms) {
  auto& forwarded = prometheus::BuildCounter()
                        .Name("ecrm_http_forwarded_total")
                        .Help(
                            "Profile reads, personalizations and erasures handed to the instance "
                            "owning their partition, by result")
                        .Register(registry_);
  forwarded_ok_ = &forwarded.Add({{"result", "answered"}});
  forwarded_moving_ = &forwarded.Add({{"result", "moving"}});
  forwarded_unreachable_ = &forwarded.Add({{"result", "unreachable"}});
  forward_seconds_ = &prometheus::BuildHistogram()
                          .Name("ecrm_http_forward_seconds")
                          .Help("Time for the owning instance to answer a forwarded request")
                          .Register(registry_)
                          .Add({}, prometheus::Histogram::BucketBoundaries{
                                       0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1, 1});
  options_.identity_secret.clear();  // IdentityTrust holds the only copy
  for (const auto& key : options_.write_keys) {
    write_keys_[key] = {WriteKeyKind::kServer, KeyId(key)};
  }
  for (const auto& key : options_.browser_write_keys) {  // in both lists (a config error): browser
    write_keys_[key] = {WriteKeyKind::kBrowser, KeyId(key)};
  }
  ImportOptions import_options;
  import_options.records.identifier_types = options_.identifier_types;
  import_options.records.limits = options_.limits.event;
  import_ = std::make_unique<ProfileImport>(engine_, clock_, registry_, std::move(import_options));
  if (options_.rules) {
    rules_api_ = std::make_unique<RulesApi>(*options_.rules, options_.rule_metrics, engine_, clock_,
                                            options_.limits);
  }
}

namespace {
// The routes a web page calls from a shop's origin.
bool BrowserRoute(Route route) {
  return route == Route::kCollect || route == Route::kCollectBatch || route == Route::kSettings ||
         route == Route::kPersonalize;
}
}  // namespace

void ApiService::AddCors(std::string_view origin, Route route, HttpResponse& res) const {
  if (origin.empty()) return;
  const bool browser = BrowserRoute(route);
  const bool listed = !cors_origins_.empty() && cors_origins_.contains(std::string(origin));
  // `null` is the origin of sandboxed frames and file: pages, which anyone can make.
  if (!listed && !(browser && cors_origins_.empty() && origin != "null")) return;
  res.headers.emplace_back("Access-Control-Allow-Origin", std::string(origin));
  if (browser) res.headers.emplace_back("Access-Control-Allow-Credentials", "true");
  res.headers.emplace_back("Vary", "Origin");
}

HttpResponse ApiService::Reject(const Rejection& r) {
  metrics_.Rejected(r.code);
  HttpResponse res = JsonResponse(r.http_status, ErrorBody(r.code, r.message, r.index));
  if (r.http_status == 429) res.headers.emplace_back("Retry-After", "1");
  return res;
}

std::optional<ApiService::RouteMethods> ApiService::RouteOf(std::string_view path) const {
  for (const auto& route : kCollectRoutes) {
    if (path == route.path) {
      return RouteMethods{route.type ? Route::kCollect : Route::kCollectBatch, "POST, OPTIONS"};
    }
  }
  if (rules_api_) {
    if (path == "/v1/rules") return RouteMethods{Route::kRules, "GET, PUT, OPTIONS"};
    if (path == "/v1/rules/validate" || path == "/v1/rules/rollback" || path == "/v1/rules/test")
      return RouteMethods{Route::kRules, "POST, OPTIONS"};
  }
  if (path == "/v1/profiles/import") return RouteMethods{Route::kImport, "POST, OPTIONS"};
  if (path == "/healthz" || path == "/readyz")
    return RouteMethods{Route::kHealth, "GET, HEAD, OPTIONS"};
  if (path == "/metrics") return RouteMethods{Route::kMetrics, "GET, HEAD, OPTIONS"};
  if (path == "/v1/cluster") return RouteMethods{Route::kCluster, "GET, HEAD, OPTIONS"};
  if (path.starts_with("/v1/profiles/"))
    return RouteMethods{Route::kProfile, "GET, HEAD, DELETE, OPTIONS"};
  if (path.starts_with("/v1/personalize/"))
    return RouteMethods{Route::kPersonalize, "GET, HEAD, OPTIONS"};
  if (path.starts_with("/v1/projects/") && path.ends_with("/settings"))
    return RouteMethods{Route::kSettings, "GET, HEAD, OPTIONS"};
  return std::nullopt;
}

HttpResponse ApiService::RequestTooLarge(const HttpRequest& req) {
  // Counted under the route the request was for (a collector path, an import, a rule push...);
  // only the collector's count as event rejections.
  const auto route = RouteOf(req.Path());
  const Route label = route ? route->route : Route::kNotFound;
  const std::string message =
      "request body exceeds " + std::to_string(options_.limits.max_request_bytes) + " bytes";
  HttpResponse res = label == Route::kCollect || label == Route::kCollectBatch
                         ? Reject({400, "request_too_large", message})
                         : ErrorResponse(400, "request_too_large", message);
  AddCors(req.Header("origin"), label, res);
  res.headers.emplace_back("Connection", "close");
  metrics_.ObserveRequest(label, res.status, 0);
  return res;
}

void ApiService::Handle(const HttpRequest& req, Responder respond) {
  const int64_t start = MonotonicNs();
  const std::string_view path = req.Path();
  const auto route = RouteOf(path);
  auto finish = [&](Route label, HttpResponse res) {
    // A preflight is answered as the route it asks for would be.
    AddCors(req.Header("origin"), label == Route::kPreflight && route ? route->route : label, res);
    metrics_.ObserveRequest(label, res.status, static_cast<double>(MonotonicNs() - start) / 1e9);
    respond(std::move(res));
  };

  if (std::find(std::begin(kImplementedMethods), std::end(kImplementedMethods), req.method) ==
      std::end(kImplementedMethods)) {
    return finish(route ? route->route : Route::kNotFound,
                  ErrorResponse(501, "not_implemented",
                                "method not implemented; ecrm serves GET, HEAD, POST, PUT, "
                                "DELETE and OPTIONS"));
  }
  if (route && req.method != "OPTIONS" && !MethodAllowed(req.method, route->allow)) {
    HttpResponse res =
        ErrorResponse(405, "method_not_allowed", "this path answers " + std::string(route->allow));
    res.headers.emplace_back("Allow", std::string(route->allow));
    return finish(route->route, std::move(res));
  }

  if (req.method == "OPTIONS") {
    HttpResponse res;
    res.status = 204;
    res.content_type.clear();
    res.headers.emplace_back("Access-Control-Allow-Methods",
                             route ? std::string(route->allow) : std::string("OPTIONS"));
    const std::string_view wanted = req.Header("access-control-request-headers");
    res.headers.emplace_back("Access-Control-Allow-Headers",
                             wanted.empty() ? "authorization, content-type" : std::string(wanted));
    res.headers.emplace_back("Access-Control-Max-Age", "86400");
    return finish(Route::kPreflight, std::move(res));
  }

  for (const auto& route : kCollectRoutes) {
    if (path != route.path) continue;
    if (req.method != "POST") {
      return finish(route.type ? Route::kCollect : Route::kCollectBatch,
                    ErrorResponse(405, "method_not_allowed", "use POST"));
    }
    return HandleCollect(req, route.type, route.type ? Route::kCollect : Route::kCollectBatch,
                         std::move(respond), start);
  }
  if (path == "/v1/m") {  // analytics-next client telemetry: accepted and dropped
    return finish(Route::kCollect, JsonResponse(200, R"({"success":true})"));
  }

  if (path == "/v1/rules" || path.starts_with("/v1/rules/")) {
    if (!rules_api_) return finish(Route::kRules, ErrorResponse(404, "not_found", "no such route"));
    const std::string_view token = BearerToken(req);
    if (!IsAdmin(token)) {
      return finish(Route::kRules,
                    ErrorResponse(401, "unauthorized", "the admin token is required (Bearer)"));
    }
    return finish(Route::kRules, rules_api_->Handle(req, path));
  }
  if (path == "/v1/profiles/import") {
    const std::string_view token = BearerToken(req);
    if (req.method != "POST")
      return finish(Route::kImport, ErrorResponse(405, "method_not_allowed", "use POST"));
    if (!IsAdmin(token)) {
      return finish(Route::kImport,
                    ErrorResponse(401, "unauthorized", "the admin token is required (Bearer)"));
    }
    auto shared = std::make_shared<Responder>(std::move(respond));
    return import_->Handle(req, [this, shared, start](HttpResponse res) {
      metrics_.ObserveRequest(Route::kImport, res.status,
                              static_cast<double>(MonotonicNs() - start) / 1e9);
      (*shared)(std::move(res));
    });
  }
  if (req.method == "DELETE" && path.starts_with("/v1/profiles/")) {
    // The responder is shared: the erasure's callback answers, unless an error answers now.
    auto shared = std::make_shared<Responder>(std::move(respond));
    auto once = std::make_shared<std::atomic<bool>>(false);
    auto deliver = [this, req_start = start, shared, once,
                    origin = std::string(req.Header("origin"))](HttpResponse res) {
      if (once->exchange(true)) return;
      AddCors(origin, Route::kProfile, res);
      metrics_.ObserveRequest(Route::kProfile, res.status,
                              static_cast<double>(MonotonicNs() - req_start) / 1e9);
      (*shared)(std::move(res));
    };
    HttpResponse res = HandleProfile(req, path.substr(std::string_view("/v1/profiles/").size()),
                                     false, /*erase=*/true, deliver);
    if (res.status != 0) deliver(std::move(res));
    return;
  }
  if (req.method != "GET" && req.method != "HEAD") {
    return finish(Route::kNotFound, ErrorResponse(404, "not_found", "no such route"));
  }
  if (path == "/healthz") return finish(Route::kHealth, JsonResponse(200, R"({"status":"ok"})"));
  if (path == "/readyz") {
    const bool ready = !options_.ready || options_.ready();
    return finish(Route::kHealth, ready ? JsonResponse(200, R"({"status":"ready"})")
                                        : ErrorResponse(503, "not_ready", "not ready"));
  }
  if (path == "/metrics") return finish(Route::kMetrics, HandleMetrics());
  if (path == "/v1/cluster") {
    const std::string_view token = BearerToken(req);
    if (!IsAdmin(token)) {
      return finish(Route::kCluster,
                    ErrorResponse(401, "unauthorized", "the admin token is required (Bearer)"));
    }
    if (!options_.cluster) {
      return finish(Route::kCluster, ErrorResponse(404, "not_found", "no such route"));
    }
    return finish(Route::kCluster, options_.cluster());
  }
  constexpr std::string_view kProfiles = "/v1/profiles/";
  constexpr std::string_view kPersonalize = "/v1/personalize/";
  if (path.starts_with(kProfiles) || path.starts_with(kPersonalize)) {
    const bool personalize = path.starts_with(kPersonalize);
    const Route route = personalize ? Route::kPersonalize : Route::kProfile;
    // Answered now, or (forwarded to the partition's owner) later through `later`.
    auto later = [this, route, start, respond,
                  origin = std::string(req.Header("origin"))](HttpResponse res) {
      AddCors(origin, route, res);
      metrics_.ObserveRequest(route, res.status, static_cast<double>(MonotonicNs() - start) / 1e9);
      respond(std::move(res));
    };
    HttpResponse res =
        HandleProfile(req, path.substr((personalize ? kPersonalize : kProfiles).size()),
                      personalize, /*erase=*/false, later);
    if (res.status == 0) return;
    return finish(route, std::move(res));
  }
  constexpr std::string_view kProjects = "/v1/projects/";
  if (path.starts_with(kProjects) && path.ends_with("/settings")) {
    std::string_view key = path.substr(kProjects.size());
    key.remove_suffix(std::string_view("/settings").size());
    return finish(Route::kSettings, HandleSettings(req, key));
  }
  return finish(Route::kNotFound, ErrorResponse(404, "not_found", "no such route"));
}

void ApiService::HandleCollect(const HttpRequest& req, std::optional<EventType> path_type,
                               Route route, Responder respond, int64_t start_ns) {
  std::string origin(req.Header("origin"));
  auto send = [this, route, start_ns, origin](const Responder& out, HttpResponse res) {
    AddCors(origin, route, res);
    metrics_.ObserveRequest(route, res.status, static_cast<double>(MonotonicNs() - start_ns) / 1e9);
    out(std::move(res));
  };

  const std::string header_key = WriteKeyFromRequest(req);
  if (!header_key.empty() && !write_keys_.contains(header_key)) {
    return send(respond, Reject({401, "invalid_write_key", "unknown write key"}));
  }

  std::string_view body = req.body;
  thread_local std::string inflated;
  const std::string_view encoding = req.Header("content-encoding");
  if (!encoding.empty() && !EqualsIgnoreCase(encoding, "identity")) {
    if (!EqualsIgnoreCase(encoding, "gzip") && !EqualsIgnoreCase(encoding, "deflate")) {
      return send(respond, Reject({400, "invalid_encoding",
                                   "unsupported Content-Encoding; use gzip or deflate"}));
    }
    switch (InflateBody(body, options_.limits.max_request_bytes, &inflated)) {
      case InflateResult::kOk:
        body = inflated;
        break;
      case InflateResult::kTooLarge:
        return send(respond,
                    Reject({400, "request_too_large",
                            "decoded body exceeds " +
                                std::to_string(options_.limits.max_request_bytes) + " bytes"}));
      case InflateResult::kCorrupt:
        return send(respond, Reject({400, "invalid_encoding", "body is not valid gzip/deflate"}));
    }
  }

  if (!options_.collector_enabled) {
    return send(respond, Reject({503, "unavailable",
                                 "this instance only processes events (--role processor)"}));
  }
  thread_local std::unique_ptr<CollectorParser> parser;
  if (!parser) parser = std::make_unique<CollectorParser>(options_.limits);
  parser->set_keep_raw(options_.producer != nullptr);
  CollectorRequest parsed;
  if (auto rejection = parser->Parse(body, path_type, clock_.NowMs(), parsed)) {
    return send(respond, Reject(*rejection));
  }
  std::string key = header_key;
  if (key.empty()) {
    if (parsed.body_write_key.empty()) {
      return send(respond, Reject({401, "missing_write_key",
                                   "a write key is required (HTTP Basic user or writeKey)"}));
    }
    key = parsed.body_write_key.substr(0, parsed.body_write_key.find(':'));
    if (!write_keys_.contains(key)) {
      return send(respond, Reject({401, "invalid_write_key", "unknown write key"}));
    }
  }
  if (!rate_limiter_.TryAcquire(key, static_cast<int64_t>(parsed.events.size()))) {
    return send(respond, Reject({429, "rate_limited",
                                 "this write key is over its event rate; retry after the delay"}));
  }
  // Every event (and, in Kafka mode, its envelope) gets the key's id and trust.
  identity_trust_.Mark(write_keys_.at(key), parsed);

  std::array<double, 6> by_type{};
  for (const auto& e : parsed.events) by_type[static_cast<size_t>(e.type)]++;
  const size_t by_type_total = parsed.events.size();
  auto shared_respond = std::make_shared<Responder>(std::move(respond));
  auto on_durable = [this, by_type, send, shared_respond](Status status) {
    if (status.ok()) {
      for (size_t t = 0; t < by_type.size(); t++) {
        if (by_type[t] > 0) metrics_.Accepted(static_cast<EventType>(t), by_type[t]);
      }
      return send(*shared_respond, JsonResponse(200, R"({"success":true})"));
    }
    spdlog::error("collector: events not stored: {}", status.ToString());
    send(*shared_respond, Reject({503, "internal", "events could not be stored; retry"}));
  };
  const Status submitted = options_.producer
                               ? options_.producer->Produce(std::move(parsed.raw), on_durable)
                               : engine_.Submit(std::move(parsed.events), on_durable);
  if (!submitted.ok()) {
    rate_limiter_.Refund(key, static_cast<int64_t>(by_type_total));
    if (absl::IsResourceExhausted(submitted)) {
      return send(*shared_respond,
                  Reject({429, "overloaded", "ecrm is behind; retry after the given delay"}));
    }
    return send(*shared_respond, Reject({503, "unavailable",
                                         "events cannot be accepted right now (" +
                                             std::string(submitted.message()) + "); retry"}));
  }
}

// Equal in time that does not depend on where two tokens of one length first differ.
static bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool ApiService::IsAdmin(std::string_view token) const {
  if (token.empty() || options_.admin_token.empty()) return false;
  bool admin = ConstantTimeEquals(token, options_.admin_token);
  for (const auto& t : options_.more_admin_tokens) admin |= ConstantTimeEquals(token, t);
  return admin;
}

HttpResponse ApiService::HandleProfile(const HttpRequest& req, std::string_view identifier,
                                       bool personalize, bool erase, const Responder& respond) {
  constexpr std::string_view kIdentities = "/identities";
  constexpr std::string_view kExport = "/export";
  const bool identities = !personalize && !erase && identifier.ends_with(kIdentities);
  if (identities) identifier.remove_suffix(kIdentities.size());
  const bool exporting = !personalize && !erase && !identities && identifier.ends_with(kExport);
  if (exporting) identifier.remove_suffix(kExport.size());
  const std::string_view token = BearerToken(req);
  const bool admin = IsAdmin(token);
  const bool reader = admin || (personalize && read_keys_.contains(std::string(token)));
  if (!reader) {
    return ErrorResponse(401, "unauthorized",
                         personalize ? "a read key or the admin token is required (Bearer)"
                                     : "the admin token is required (Bearer)");
  }
  auto decoded = PercentDecode(identifier);
  if (!decoded) return ErrorResponse(400, "invalid_identifier", "malformed percent-encoding");
  const auto colon = decoded->find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == decoded->size()) {
    return ErrorResponse(
        400, "invalid_identifier",
        "identifier must be type:value, e.g. anonymous_id:A1, user_id:U1, email:a@b.c");
  }
  const std::string type = decoded->substr(0, colon);
  std::string value = decoded->substr(colon + 1);
  // "id:<profile id>": a profile by its id (as profiles and merge histories name them).
  const bool by_id = type == "id";
  if (by_id && (erase || !PartitionOfProfileId(value))) {
    return ErrorResponse(400, "invalid_identifier",
                         erase ? "erase a profile by one of its identifiers, not its id"
                               : "not a profile id (pppp-<16 hex digits>)");
  }
  if (!by_id && !import_->KnownType(type)) {
    return ErrorResponse(
        400, "invalid_identifier",
        "identifier type must be anonymous_id, user_id, email or a configured type");
  }
  if (type == "email") value = NormalizeEmail(value);
  if (type == "phone") {
    auto phone = NormalizePhone(value);
    if (!phone)
      return ErrorResponse(400, "invalid_identifier", "phone must be E.164, e.g. +4915112345678");
    value = *phone;
  }
  // Cluster mode: the identifier's record (or the profile) lives with its partition's owner.
  const bool cluster = options_.directory != nullptr;
  const uint32_t partition =
      by_id ? *PartitionOfProfileId(value) : PartitionForKey(value, engine_.partition_count());
  if (cluster && !engine_.Local(partition)) {
    Forward(req, partition, erase ? "DELETE" : "GET", req.target, respond);
    return HttpResponse{.status = 0};
  }
  if (erase) {  // DELETE /v1/profiles/{id}: answered once the erasure is durable
    auto deleted = engine_.DeleteProfile(type, value, [respond](Status status) {
      if (status.ok()) {
        respond(JsonResponse(200, R"({"deleted":true})"));
      } else {
        respond(ErrorResponse(503, "unavailable", "the profile could not be erased; retry"));
      }
    });
    if (absl::IsNotFound(deleted.status())) {
      return ErrorResponse(404, "not_found", "no profile for that identifier");
    }
    if (!deleted.ok())
      return ErrorResponse(503, "unavailable", "the profile could not be erased; retry");
    spdlog::info("profile {} erased", *deleted);
    return HttpResponse{.status = 0};  // answered by the callback
  }
  StatusOr<std::optional<Profile>> found = std::optional<Profile>();
  if (cluster) {
    auto read = by_id ? engine_.ReadById(value) : engine_.Read(type, value);
    if (read.ok() && !read->elsewhere.empty()) {
      // The profile (or the survivor it was merged into) is another instance's: read it there.
      std::string target = std::string(personalize ? "/v1/personalize/id:" : "/v1/profiles/id:") +
                           read->elsewhere +
                           (identities  ? "/identities"
                            : exporting ? "/export"
                                        : "");
      if (!req.Query().empty()) target += "?" + std::string(req.Query());
      Forward(req, *PartitionOfProfileId(read->elsewhere), "GET", target, respond);
      return HttpResponse{.status = 0};
    }
    found = read.ok() ? StatusOr<std::optional<Profile>>(std::move(read->profile))
                      : StatusOr<std::optional<Profile>>(read.status());
  } else {
    found = by_id ? engine_.LookupById(value) : engine_.Lookup(type, value);
  }
  if (!found.ok()) {
    spdlog::error("profile read failed: {}", found.status().ToString());
    return ErrorResponse(500, "internal", "profile could not be read");
  }
  HttpResponse res;
  if (personalize) {
    PersonalizeOptions options = options_.personalize;
    options.now = clock_.NowMs();
    // Without consent to personalization, the visitor gets what an unknown one gets.
    const bool allowed = found->has_value() && (*found)->consent.personalize >= 0;
    RenderPersonalizeJson(allowed ? &**found : nullptr, engine_.updater(), options, &res.body);
    res.headers.emplace_back("Cache-Control", "no-store");
    return res;
  }
  if (!found->has_value()) return ErrorResponse(404, "not_found", "no profile for that identifier");
  if (identities) {
    RenderIdentitiesJson(**found, &res.body);
    return res;
  }
  if (exporting) {
    RenderExportJson(**found, engine_.updater(), clock_.NowMs(), &res.body);
    res.headers.emplace_back("Content-Disposition",
                             "attachment; filename=\"profile-" + (*found)->id + ".json\"");
    res.headers.emplace_back("Cache-Control", "no-store");
    spdlog::info("profile {} exported", (*found)->id);
    return res;
  }
  RenderProfileJson(**found, engine_.updater(), clock_.NowMs(), &res.body);
  return res;
}

// A forwarded request's state across its attempts (on the forwarder's thread after the first).
struct ApiService::Forwarding {
  uint32_t partition;
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  Responder respond;
  int attempt = 0;
};

namespace {

HttpResponse PartitionMoving() {
  HttpResponse res =
      ErrorResponse(503, "partition_moving",
                    "the partition of this identifier is moving between instances; retry shortly");
  res.headers.emplace_back("Retry-After", "1");
  return res;
}

}  // namespace

void ApiService::Forward(const HttpRequest& req, uint32_t partition, std::string_view method,
                         std::string_view target, Responder respond) {
  // A few hops at most: to the identifier's owner, to the profile's, and on along a chain of
  // merges (an identity record may still name a merged-away profile whose survivor lives
  // elsewhere). The counter also ends a loop while owners are moving: the answer is then 503
  // (the partition is moving), never another instance's stale or missing copy.
  constexpr int kMaxHops = 4;
  constexpr std::string_view kHopHeader = "x-ecrm-forwarded";
  const std::string_view hops_text = req.Header(kHopHeader);
  const int hops = hops_text.empty() ? 0 : std::max(1, std::atoi(std::string(hops_text).c_str()));
  if (hops >= kMaxHops) {
    forwarded_moving_->Increment();
    return respond(PartitionMoving());
  }
  auto f = std::make_shared<Forwarding>();
  f->partition = partition;
  f->method = std::string(method);
  f->target = std::string(target);
  f->headers.emplace_back(std::string(kHopHeader), std::to_string(hops + 1));
  if (const std::string_view auth = req.Header("authorization"); !auth.empty()) {
    f->headers.emplace_back("Authorization", std::string(auth));
  }
  f->respond = std::move(respond);
  ForwardAttempt(std::move(f));
}

void ApiService::ForwardAttempt(std::shared_ptr<Forwarding> f) {
  // Three attempts, 300 ms apart, each after learning the owners again: about the time a
  // partition takes to move (a rebalance, a restore of a small partition).
  constexpr int kAttempts = 3;
  auto retry = [this](std::shared_ptr<Forwarding> again) {
    if (++again->attempt >= kAttempts) {
      forwarded_moving_->Increment();
      return again->respond(PartitionMoving());
    }
    options_.directory->Refresh();
    forwarder_.After(300, [this, again] { ForwardAttempt(again); });
  };
  const std::string addr = options_.directory->OwnerAddress(f->partition);
  if (addr.empty() || addr == options_.self_addr) return retry(std::move(f));  // stale or moving
  const int64_t start = MonotonicNs();
  forwarder_.Send(
      addr, f->method, f->target, f->headers,
      [this, f, addr, start, retry](StatusOr<HttpResponse> res) {
        forward_seconds_->Observe(static_cast<double>(MonotonicNs() - start) / 1e9);
        if (!res.ok()) {
          forwarded_unreachable_->Increment();
          spdlog::warn("forwarding a request for partition {} to {}: {}", f->partition, addr,
                       res.status().ToString());
          return retry(f);
        }
        if (res->status == 503 && res->body.find("partition_moving") != std::string::npos) {
          return retry(f);
        }
        forwarded_ok_->Increment();
        res->headers.emplace_back("X-Ecrm-Served-By", addr);
        f->respond(*std::move(res));
      });
}

namespace {

// A Host header as RFC 9110 allows it: a name or an IPv4 address, or an [IPv6] literal, and an
// optional port. Anything else (spaces, slashes, quotes, @) is not reflected.
bool PlausibleHost(std::string_view host) {
  if (host.empty() || host.size() > 255) return false;
  std::string_view name = host;
  if (const auto colon = host.rfind(':'); colon != std::string_view::npos && host.back() != ']') {
    const std::string_view port = host.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
    name = host.substr(0, colon);
  }
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
    return std::all_of(name.begin(), name.end(), [](char c) {
      return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
    });
  }
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
}

// A write key as the settings path may carry one: what a key can look like, so that the answer
// never depends on whether it is a key the service knows (no oracle for guessing keys).
bool PlausibleWriteKey(std::string_view key) {
  return !key.empty() && key.size() <= 200 && std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
           c == ':';
  });
}

}  // namespace

HttpResponse ApiService::HandleSettings(const HttpRequest& req, std::string_view write_key) {
  // Answered alike for every plausible key, known or not: an unknown one learns nothing here and
  // is refused (401) when it sends events.
  if (!PlausibleWriteKey(write_key)) {
    return ErrorResponse(400, "invalid_write_key", "not a write key");
  }
  std::string host, protocol;
  bool cacheable = false;
  if (!options_.public_url.empty()) {
    const std::string_view url = options_.public_url;
    const auto scheme_end = url.find("://");
    protocol = std::string(url.substr(0, scheme_end));
    host = std::string(url.substr(scheme_end + 3));
    while (!host.empty() && host.back() == '/') host.pop_back();
    cacheable = true;
  } else {
    host = std::string(req.Header("host"));
    if (!PlausibleHost(host)) host = "127.0.0.1:8080";
    protocol = EqualsIgnoreCase(req.Header("x-forwarded-proto"), "https") ? "https" : "http";
  }
  std::string body;
  JsonWriter w(&body);
  w.BeginObject().Key("integrations").BeginObject().Key("Segment.io").BeginObject();
  w.Key("apiKey").String(write_key).Key("apiHost").String(host + "/v1");
  w.Key("protocol").String(protocol);
  w.EndObject().EndObject();
  w.Key("plan").BeginObject().Key("track").BeginObject().Key("__default").BeginObject();
  w.Key("enabled").Bool(true).EndObject().EndObject().EndObject();
  w.Key("remotePlugins").BeginArray().EndArray();
  w.Key("metrics").BeginObject().Key("sampleRate").Int(0).EndObject();
  w.Key("analyticsNextEnabled").Bool(true);
  w.EndObject();
  HttpResponse res = JsonResponse(200, std::move(body));
  // Taken from the request, the answer must not be kept by a shared cache and handed to others.
  res.headers.emplace_back("Cache-Control",
                           cacheable ? "public, max-age=300" : "private, no-store");
  return res;
}

HttpResponse MetricsResponse(prometheus::Registry& registry) {
  HttpResponse res;
  res.content_type = "text/plain; version=0.0.4; charset=utf-8";
  res.body = prometheus::TextSerializer().Serialize(registry.Collect());
  return res;
}

HttpResponse ApiService::HandleMetrics() {
  if (options_.before_scrape) options_.before_scrape();
  return MetricsResponse(registry_);
}

}  // namespace ecrm
