#include "profiler/profiler_metrics.h"

#include <string>

namespace ecrm {

ProfilerMetrics::ProfilerMetrics(prometheus::Registry& registry, int shards) {
  auto& depth = prometheus::BuildGauge()
                    .Name("ecrm_worker_queue_depth")
                    .Help("Tasks waiting in a worker shard's inbox")
                    .Register(registry);
  auto& cached = prometheus::BuildGauge()
                     .Name("ecrm_profiles_cached")
                     .Help("Profiles held in a worker shard's write-back cache")
                     .Register(registry);
  auto& written = prometheus::BuildCounter()
                      .Name("ecrm_profiles_written_total")
                      .Help("Profile values written to RocksDB")
                      .Register(registry);
  auto& batches = prometheus::BuildCounter()
                      .Name("ecrm_store_batches_total")
                      .Help("RocksDB write batches (group commits) by worker shard")
                      .Register(registry);
  auto& errors = prometheus::BuildCounter()
                     .Name("ecrm_store_write_errors_total")
                     .Help("Failed RocksDB write batches by worker shard")
                     .Register(registry);
  auto& batch_events = prometheus::BuildHistogram()
                           .Name("ecrm_store_batch_events")
                           .Help("Events per RocksDB write batch")
                           .Register(registry);
  auto& cache_bytes = prometheus::BuildGauge()
                          .Name("ecrm_profile_cache_bytes")
                          .Help(
                              "Memory held by the profiles in a worker shard's cache, as "
                              "estimated (bounded by --cache-mb)")
                          .Register(registry);
  for (int i = 0; i < shards; i++) {
    const prometheus::Labels labels{{"shard", std::to_string(i)}};
    shards_.push_back(
        ShardProbe{&depth.Add(labels), &cached.Add(labels), &written.Add(labels),
                   &batches.Add(labels), &errors.Add(labels),
                   &batch_events.Add(
                       labels, prometheus::Histogram::BucketBoundaries{1, 2, 5, 10, 20, 50, 100,
                                                                       200, 500, 1000, 2000, 5000}),
                   &cache_bytes.Add(labels)});
  }
  auto counter = [&](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
  };
  events_applied_ = counter("ecrm_events_applied_total", "Events applied to profiles");
  events_duplicate_ =
      counter("ecrm_events_duplicate_total", "Events skipped because their messageId was seen");
  events_forwarded_ = counter("ecrm_events_forwarded_total",
                              "Events forwarded to the shard owning their resolved profile");
  profiles_created_ = counter("ecrm_profiles_created_total", "Profiles created");
  identities_attached_ =
      counter("ecrm_identities_attached_total", "Identifiers attached to an existing profile");
  identity_conflicts_ =
      counter("ecrm_identity_conflicts_total",
              "Identifiers found owned by another profile (each starts a merge check)");
  merges_ =
      counter("ecrm_profile_merges_total", "Profiles merged into another (identity resolution)");
  merges_refused_ = counter("ecrm_profile_merges_refused_total",
                            "Merges refused by merge protection (e.g. two different user ids)");
  claims_refused_ = counter("ecrm_identity_claims_refused_total",
                            "Unverified identity claims (browser keys) that would have joined or "
                            "taken another profile's identifier, refused");
  claims_taken_over_ = counter("ecrm_identity_claims_taken_over_total",
                               "Identifiers held by an unverified claim and given to the profile "
                               "with a verified claim for them");
  merges_resumed_ = counter("ecrm_profile_merges_resumed_total",
                            "Merges whose last step was re-sent after a crash (at start-up, or "
                            "when its partition is assigned)");
  messages_outbound_ =
      counter("ecrm_cluster_messages_sent_total",
              "Shard messages sent to another instance through the internal topic");
  auto& deleted = prometheus::BuildCounter()
                      .Name("ecrm_profiles_deleted_total")
                      .Help(
                          "Profiles erased with their identifiers and aliases, by why: an erasure "
                          "request, or retention (inactive for --retention-days)")
                      .Register(registry);
  profiles_deleted_ = &deleted.Add({{"reason", "request"}});
  profiles_expired_ = &deleted.Add({{"reason", "retention"}});
  identifiers_capped_ =
      counter("ecrm_identifiers_capped_total",
              "Identifier claims not attached because the profile lists the most values of that "
              "type already (--max-identifiers-per-type, --identifier-limit)");
  erased_dropped_ = counter("ecrm_erasure_ledger_dropped_total",
                            "Events and identity claims dropped because they are dated before "
                            "their identifier's erasure (the erasure ledger)");
  corrupt_profiles_ =
      counter("ecrm_profiles_corrupt_total", "Stored profile values that failed to decode");
  traits_dropped_ = counter("ecrm_profile_traits_dropped_total",
                            "Trait values not stored because the profile was at its trait cap "
                            "(count or bytes)");
}

}  // namespace ecrm
