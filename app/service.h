// Service: the whole of ecrm wired together — store, profile engine, API and HTTP server — as the
// `serve` command runs it, and as the integration tests start it in-process.
//
// Ownership: owns every component; destroying it stops them in order (HTTP, engine, store).
// Threading: Start/Stop from one control thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "api/api_service.h"
#include "api/http_server.h"
#include "app/config.h"
#include "app/partition_owners.h"
#include "app/retention.h"
#include "app/store_metrics.h"
#include "common/clock.h"
#include "ingest/kafka_consumer.h"
#include "ingest/kafka_producer.h"
#include "ingest/kafka_profile_consumer.h"
#include "ingest/kafka_rules.h"
#include "profiler/engine.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "rules/rule_metrics.h"
#include "rules/rule_registry.h"
#include "store/kv_store.h"

namespace ecrm {

class Service {
 public:
  // `clock` may be null (the system clock); it must outlive the service.
  explicit Service(Config config, const Clock* clock = nullptr);
  ~Service();

  // Opens the store, starts the workers and the HTTP server; writes <data-dir>/ecrm.addr.
  Status Start();
  // Stops accepting, drains the workers, closes the store. Idempotent.
  void Stop();

  uint16_t port() const { return port_; }
  // Polled while Start waits for Kafka: true ends the wait and Start returns Cancelled (the
  // `serve` command checks for SIGTERM). Set before Start.
  void SetAbortStart(std::function<bool()> abort) { abort_start_ = std::move(abort); }
  ProfileEngine& engine() { return *engine_; }
  prometheus::Registry& registry() { return *registry_; }

 private:
  // What /readyz answers: started, not stopping, and the Kafka clients connected and in the group
  // with nothing restoring.
  bool Ready() const;
  // The events topic's partition count. When no broker answers and `may_go_on` is false, serves
  // /healthz, /readyz (503) and /metrics on the HTTP port and retries every 5 s until one does.
  StatusOr<int> WaitForKafka(bool may_go_on);
  std::function<bool()> abort_start_;
  uint16_t startup_port_ = 0;     // the port WaitForKafka served on, if it had to wait
  uint64_t open_file_limit_ = 0;  // RLIMIT_NOFILE after Start raised it; 0 = unknown
  // GET /v1/cluster: the group's members and each partition's owner (docs/kafka.md#membership).
  HttpResponse ClusterView() const;
  Config config_;
  SystemClock system_clock_;
  const Clock* clock_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<StoreMetrics> store_metrics_;
  std::unique_ptr<RuleRegistry> rules_;
  std::unique_ptr<RuleMetrics> rule_metrics_;
  std::unique_ptr<KafkaChangelog> changelog_;  // Kafka mode with a changelog; outlives the engine
  std::unique_ptr<KafkaRules> kafka_rules_;    // the same: rule pushes shared by the instances
  std::unique_ptr<ProfileEngine> engine_;
  std::unique_ptr<RetentionSweeper> retention_;  // --retention-days
  std::unique_ptr<ChangelogStandby> standby_;    // with a changelog: warm copies, cleanup
  std::unique_ptr<KafkaConsumer> consumer_;      // Kafka mode, roles all/processor
  std::unique_ptr<KafkaProfileConsumer> profile_consumer_;  // the same, when a topic is set
  std::unique_ptr<KafkaEventProducer> producer_;            // Kafka mode, roles all/collector
  // Cluster mode: who owns the partitions not served here (forwarded reads).
  std::unique_ptr<PartitionOwners> owners_;
  std::unique_ptr<ApiService> api_;
  std::unique_ptr<HttpServer> server_;
  std::atomic<bool> ready_{false};
  uint16_t port_ = 0;
  // Set at each scrape (ecrm_ready, ecrm_data_dir_*), and at each group description seen
  // (ecrm_cluster_members, cluster mode).
  prometheus::Gauge* ready_gauge_ = nullptr;
  prometheus::Gauge* disk_free_ = nullptr;
  prometheus::Gauge* disk_capacity_ = nullptr;
  prometheus::Gauge* cluster_members_ = nullptr;
};

}  // namespace ecrm
