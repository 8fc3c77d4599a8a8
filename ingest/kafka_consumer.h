// KafkaConsumer: the processor side of Kafka mode. One thread consumes the events topic in a
// consumer group, parses each message with the collector's parser, hands the events to the
// ProfileEngine, and dead-letters bad messages (reason in headers) without stopping the partition.
//
// Exactly-once effect on state: a partition's resume point (the watermark below which every message
// is durable) is written to RocksDB by the shard that owns the partition, in a WriteBatch with the
// state changes it commits; on every assignment consumption resumes from that stored offset, not
// from the group's committed offset. With a changelog (the default) the same batches also go to
// the changelog topic, and this thread commits them every commit interval as one Kafka
// transaction with the consumed offsets (KafkaChangelog); a newly assigned partition is first
// restored from the changelog (RestoreFromChangelog), so its stored offset is the one that went
// with its state; a standby copy kept here (ChangelogStandby) is acquired first, and the restore
// goes on from it. A commit that fails (this instance was fenced as a zombie, or its transaction
// timed out) leaves the instance not ready until restarted: its store holds only committed epochs,
// so a restart resumes. A commit the group refuses because a rebalance moved its generation on
// loses only the open epoch, which is aborted and read again. A consumer fenced by its own rejoin
// after a session timeout (the brokers were away; librdkafka #3437) is replaced by a new one. In
// cluster mode it also consumes its partitions of the internal topic
// (docs/cluster.md#cross-instance-messages). Messages after the stored offset may be applied a
// second time after a crash; that is idempotent, because every event is deduplicated by its
// messageId (a message without one gets "kafka-<partition>-<offset>-<index>").
//
// Backpressure: when the engine's queues or the messages in flight pass their limits, the consumer
// stops taking messages from librdkafka (they wait in its bounded prefetch queue, then in the
// broker) until both have fallen below half.
//
// Ownership: owned by the app; the engine must outlive it. Threading: Start/Stop/Ready from the
// control thread; everything else runs on the consumer thread, except engine acknowledgements,
// which arrive on shard threads and are handed over through a small inbox.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "ingest/changelog_standby.h"
#include "ingest/collector_parser.h"
#include "ingest/kafka_changelog.h"
#include "ingest/kafka_options.h"
#include "profiler/engine.h"
#include "prometheus/registry.h"

namespace ecrm {

class KafkaConsumer {
 public:
  static StatusOr<std::unique_ptr<KafkaConsumer>> Create(
      const KafkaOptions& options, ProfileEngine& engine, prometheus::Registry& registry,
      const Clock& clock, const CollectorLimits& limits, KafkaChangelog* changelog = nullptr,
      KvStore* store = nullptr, ChangelogStandby* standby = nullptr);
  ~KafkaConsumer();

  void Start();
  // Stops consuming, waits (bounded) for messages in flight to become durable, records their
  // offsets, and closes the consumer (a static member sends no LeaveGroup:
  // docs/kafka.md#membership).
  void Stop();
  // Connected to the cluster, in the group, and no partition restoring.
  bool Ready() const;
  // The partitions this instance consumes now, each with its lag in messages (-1 until measured,
  // about a second after assignment). Thread-safe.
  std::map<uint32_t, int64_t> Partitions() const;
  // The partitions being restored from the changelog now, each with the records applied so far.
  // Not ready while any is. Thread-safe.
  std::map<uint32_t, int64_t> Restoring() const;

  // The partition count of `topic`, from cluster metadata.
  static StatusOr<int> TopicPartitions(const std::string& brokers, const std::string& topic,
                                       int timeout_ms);

 private:
  struct Impl;
  explicit KafkaConsumer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ecrm
