// KafkaProfileConsumer: reads profile records from other channels (ingest/profile_record.h) from
// the profiles topic (ecrm.profiles) and applies them like POST /v1/profiles/import. A message
// holds one record or several as NDJSON. At-least-once: the group's offsets are committed to Kafka
// only after the records are durable; applying a record twice changes nothing (traits are kept by
// updated_at, identifier claims are idempotent), so no offsets are kept in RocksDB. A bad record
// is counted and skipped, never blocking the partition.
//
// Ownership: owned by the app; the engine must outlive it. Threading: Start/Stop from the control
// thread; everything else on its own consumer thread.
#pragma once

#include <memory>

#include "common/clock.h"
#include "common/status.h"
#include "ingest/kafka_options.h"
#include "ingest/profile_record.h"
#include "profiler/engine.h"
#include "prometheus/registry.h"

namespace ecrm {

class KafkaProfileConsumer {
 public:
  static StatusOr<std::unique_ptr<KafkaProfileConsumer>> Create(const KafkaOptions& options,
                                                                ProfileEngine& engine,
                                                                prometheus::Registry& registry,
                                                                const Clock& clock,
                                                                ProfileRecordOptions records);
  ~KafkaProfileConsumer();
  void Start();
  // Stops consuming and leaves the group; records consumed but not yet durable are not committed,
  // so they are read again later.
  void Stop();

 private:
  struct Impl;
  explicit KafkaProfileConsumer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ecrm
