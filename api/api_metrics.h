// ApiMetrics: the API's Prometheus probe. Every label value is created at construction (routes,
// status classes, event types, rejection reasons), so the request path never touches a metric
// family's lock and no label can carry user data. Owned by ApiService; thread-safe (atomic
// metrics).
#pragma once

#include <array>
#include <string_view>

#include "profiler/event.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace ecrm {

enum class Route : int {
  kCollect = 0,
  kCollectBatch,
  kSettings,
  kProfile,
  kPersonalize,
  kMetrics,
  kHealth,
  kPreflight,
  kNotFound,
  kRules,
  kImport,
  kCluster,
  kCount
};

class ApiMetrics {
 public:
  explicit ApiMetrics(prometheus::Registry& registry);

  void ObserveRequest(Route route, int status, double seconds);
  void Accepted(EventType type, double n) { accepted_[static_cast<size_t>(type)]->Increment(n); }
  // Counts one rejected request under its reason code (an unknown code counts as "internal").
  void Rejected(std::string_view code);

 private:
  static constexpr size_t kRoutes = static_cast<size_t>(Route::kCount);
  std::array<prometheus::Histogram*, kRoutes> latency_{};
  std::array<std::array<prometheus::Counter*, 5>, kRoutes> requests_{};  // by status class 1xx..5xx
  std::array<prometheus::Counter*, 6> accepted_{};
  std::vector<std::pair<std::string_view, prometheus::Counter*>> rejected_;
};

}  // namespace ecrm
