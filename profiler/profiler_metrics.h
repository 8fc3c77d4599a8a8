// ProfilerMetrics: the profiler's Prometheus probe. Handles are resolved once at construction; the
// returned references are stable. Owned by the ProfileEngine; shards hold a const pointer.
// Threading: prometheus-cpp counters and gauges are atomic; any thread may update them.
#pragma once

#include <vector>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace ecrm {

struct ShardProbe {
  prometheus::Gauge* queue_depth;         // tasks waiting in the shard's inbox
  prometheus::Gauge* profiles_cached;     // profiles in the shard's write-back cache
  prometheus::Counter* profiles_written;  // profile values written to RocksDB
  prometheus::Counter* batches_written;   // group commits
  prometheus::Counter* write_errors;      // failed group commits
  prometheus::Histogram* batch_events;    // events per group commit
  prometheus::Gauge* cache_bytes;         // memory of the cached profiles (as weighed)
};

class ProfilerMetrics {
 public:
  ProfilerMetrics(prometheus::Registry& registry, int shards);

  ShardProbe& shard(int i) { return shards_[static_cast<size_t>(i)]; }
  prometheus::Counter& events_applied() { return *events_applied_; }
  prometheus::Counter& events_duplicate() { return *events_duplicate_; }
  prometheus::Counter& events_forwarded() { return *events_forwarded_; }
  prometheus::Counter& profiles_created() { return *profiles_created_; }
  prometheus::Counter& identities_attached() { return *identities_attached_; }
  prometheus::Counter& identity_conflicts() { return *identity_conflicts_; }
  prometheus::Counter& merges() { return *merges_; }
  prometheus::Counter& merges_refused() { return *merges_refused_; }
  prometheus::Counter& profiles_deleted() { return *profiles_deleted_; }
  prometheus::Counter& profiles_expired() { return *profiles_expired_; }
  prometheus::Counter& erased_dropped() { return *erased_dropped_; }
  prometheus::Counter& identifiers_capped() { return *identifiers_capped_; }
  prometheus::Counter& claims_refused() { return *claims_refused_; }
  prometheus::Counter& claims_taken_over() { return *claims_taken_over_; }
  prometheus::Counter& merges_resumed() { return *merges_resumed_; }
  prometheus::Counter& corrupt_profiles() { return *corrupt_profiles_; }
  prometheus::Counter& messages_outbound() { return *messages_outbound_; }
  prometheus::Counter& traits_dropped() { return *traits_dropped_; }

 private:
  std::vector<ShardProbe> shards_;
  prometheus::Counter* events_applied_;
  prometheus::Counter* events_duplicate_;
  prometheus::Counter* events_forwarded_;
  prometheus::Counter* profiles_created_;
  prometheus::Counter* identities_attached_;
  prometheus::Counter* identity_conflicts_;
  prometheus::Counter* merges_;
  prometheus::Counter* merges_refused_;
  prometheus::Counter* profiles_deleted_;
  prometheus::Counter* profiles_expired_;
  prometheus::Counter* erased_dropped_;
  prometheus::Counter* identifiers_capped_;
  prometheus::Counter* claims_refused_ = nullptr;
  prometheus::Counter* claims_taken_over_ = nullptr;
  prometheus::Counter* merges_resumed_ = nullptr;
  prometheus::Counter* corrupt_profiles_;
  prometheus::Counter* messages_outbound_ = nullptr;
  prometheus::Counter* traits_dropped_ = nullptr;
};

}  // namespace ecrm
