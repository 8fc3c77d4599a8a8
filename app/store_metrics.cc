#include "app/store_metrics.h"

#include "rocksdb/statistics.h"

namespace ecrm {

StoreMetrics::StoreMetrics(prometheus::Registry& registry, const KvStore& store) : store_(store) {
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
  };
  properties_ = {
      {"rocksdb.estimate-num-keys",
       gauge("ecrm_rocksdb_estimated_keys", "Estimated keys over all column families")},
      {"rocksdb.live-sst-files-size",
       gauge("ecrm_rocksdb_live_sst_bytes", "Bytes in live SST files")},
      {"rocksdb.cur-size-all-mem-tables",
       gauge("ecrm_rocksdb_memtable_bytes", "Bytes in memtables")},
      {"rocksdb.num-running-compactions",
       gauge("ecrm_rocksdb_running_compactions", "Compactions running now")},
      {"rocksdb.estimate-pending-compaction-bytes",
       gauge("ecrm_rocksdb_pending_compaction_bytes", "Estimated bytes compaction must rewrite")},
      {"rocksdb.block-cache-usage",
       gauge("ecrm_rocksdb_block_cache_bytes", "Bytes held by the block cache")},
  };
  tickers_ = {
      {rocksdb::BYTES_WRITTEN,
       gauge("ecrm_rocksdb_bytes_written", "Bytes written to the database since start")},
      {rocksdb::STALL_MICROS,
       gauge("ecrm_rocksdb_stall_micros", "Microseconds writes were stalled since start")},
      {rocksdb::BLOCK_CACHE_HIT, gauge("ecrm_rocksdb_block_cache_hits", "Block cache hits")},
      {rocksdb::BLOCK_CACHE_MISS, gauge("ecrm_rocksdb_block_cache_misses", "Block cache misses")},
      {rocksdb::WAL_FILE_SYNCED, gauge("ecrm_rocksdb_wal_syncs", "WAL fsyncs since start")},
  };
  writable_ = gauge("ecrm_store_writable",
                    "1 while the store accepts writes; 0 after a failed write (a full disk) until "
                    "it recovers");
  recoveries_ =
      gauge("ecrm_store_recoveries", "Times the store recovered from refused writes since start");
}

void StoreMetrics::Refresh() {
  // Summed over column families; the block cache is shared, so it is counted once per family:
  // divide back.
  for (auto& p : properties_) {
    double v = static_cast<double>(store_.IntProperty(p.rocksdb_name));
    if (std::string_view(p.rocksdb_name) == "rocksdb.block-cache-usage") v /= kNumCfs;
    p.gauge->Set(v);
  }
  for (auto& t : tickers_) t.gauge->Set(static_cast<double>(store_.Ticker(t.ticker)));
  writable_->Set(store_.writable() ? 1 : 0);
  recoveries_->Set(static_cast<double>(store_.resumes()));
}

}  // namespace ecrm
