#include "api/api_metrics.h"

#include <iterator>

#include "ingest/rejection.h"

namespace ecrm {
namespace {

constexpr const char* kRouteNames[] = {"collect",     "collect_batch", "settings", "profile",
                                       "personalize", "metrics",       "health",   "preflight",
                                       "not_found",   "rules",         "import",   "cluster"};
static_assert(std::size(kRouteNames) == static_cast<size_t>(Route::kCount));
constexpr const char* kStatusClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};

}  // namespace

ApiMetrics::ApiMetrics(prometheus::Registry& registry) {
  auto& latency = prometheus::BuildHistogram()
                      .Name("ecrm_http_request_duration_seconds")
                      .Help("Time from request read to response handed to the socket, by route")
                      .Register(registry);
  auto& requests = prometheus::BuildCounter()
                       .Name("ecrm_http_requests_total")
                       .Help("HTTP requests by route and status class")
                       .Register(registry);
  const prometheus::Histogram::BucketBoundaries buckets{
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
  for (size_t r = 0; r < kRoutes; r++) {
    latency_[r] = &latency.Add({{"route", kRouteNames[r]}}, buckets);
    for (size_t c = 0; c < 5; c++) {
      requests_[r][c] = &requests.Add({{"route", kRouteNames[r]}, {"code", kStatusClasses[c]}});
    }
  }
  auto& accepted = prometheus::BuildCounter()
                       .Name("ecrm_events_accepted_total")
                       .Help("Events acknowledged to collector clients (durable), by type")
                       .Register(registry);
  for (int t = 0; t < 6; t++) {
    accepted_[static_cast<size_t>(t)] =
        &accepted.Add({{"type", EventTypeName(static_cast<EventType>(t))}});
  }
  auto& rejected = prometheus::BuildCounter()
                       .Name("ecrm_events_rejected_total")
                       .Help("Collector requests rejected, by reason")
                       .Register(registry);
  for (const char* code : kRejectionCodes) {
    rejected_.emplace_back(code, &rejected.Add({{"reason", code}}));
  }
}

void ApiMetrics::ObserveRequest(Route route, int status, double seconds) {
  const auto r = static_cast<size_t>(route);
  latency_[r]->Observe(seconds);
  const int cls = status / 100 - 1;
  if (cls >= 0 && cls < 5) requests_[r][static_cast<size_t>(cls)]->Increment();
}

void ApiMetrics::Rejected(std::string_view code) {
  for (auto& [name, counter] : rejected_) {
    if (name == code) return counter->Increment();
  }
  Rejected("internal");
}

}  // namespace ecrm
