// StoreMetrics: exports RocksDB's own numbers (keys, SST and memtable bytes, block cache, stalls,
// bytes written) as Prometheus gauges, refreshed on each /metrics scrape. Owned by the app; the
// store must outlive it. Refresh() may be called from any HTTP thread (gauges are atomic).
#pragma once

#include <vector>

#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "store/kv_store.h"

namespace ecrm {

class StoreMetrics {
 public:
  StoreMetrics(prometheus::Registry& registry, const KvStore& store);
  void Refresh();

 private:
  struct Property {
    const char* rocksdb_name;
    prometheus::Gauge* gauge;
  };
  struct TickerGauge {
    uint32_t ticker;
    prometheus::Gauge* gauge;
  };
  const KvStore& store_;
  std::vector<Property> properties_;
  std::vector<TickerGauge> tickers_;
  prometheus::Gauge* writable_ = nullptr;
  prometheus::Gauge* recoveries_ = nullptr;
};

}  // namespace ecrm
