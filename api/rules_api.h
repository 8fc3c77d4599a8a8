// RulesApi: the admin routes for rule sets — push (PUT /v1/rules), read (GET /v1/rules), validate,
// roll back, and dry-run a set against an event and a profile (POST /v1/rules/test), which changes
// nothing. Callers authenticate first (admin token). Owned by ApiService; the registry, engine and
// metrics must outlive it. Threading: Handle may be called from any HTTP thread concurrently
// (parsers are per call; the registry serialises pushes).
#pragma once

#include <string_view>

#include "api/http_types.h"
#include "common/clock.h"
#include "ingest/collector_parser.h"
#include "profiler/engine.h"
#include "rules/rule_metrics.h"
#include "rules/rule_registry.h"

namespace ecrm {

class RulesApi {
 public:
  RulesApi(RuleRegistry& registry, RuleMetrics* metrics, ProfileEngine& engine, const Clock& clock,
           const CollectorLimits& limits);

  // `path` starts with /v1/rules.
  HttpResponse Handle(const HttpRequest& req, std::string_view path);

 private:
  HttpResponse Push(const HttpRequest& req);
  HttpResponse Validate(const HttpRequest& req);
  HttpResponse Get();
  HttpResponse Rollback(const HttpRequest& req);
  HttpResponse Test(const HttpRequest& req);

  RuleRegistry& registry_;
  RuleMetrics* metrics_;
  ProfileEngine& engine_;
  const Clock& clock_;
  CollectorLimits limits_;
};

}  // namespace ecrm
