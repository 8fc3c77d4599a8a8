// KafkaEventProducer: the collector side of Kafka mode. Produces each accepted event as one message
// to the events topic, keyed by its routing key (anonymous id, else user id) with librdkafka's
// murmur2_random partitioner, so keys land where Java clients would put them. The producer is
// idempotent with acks=all; a request's callback runs once every one of its messages is
// acknowledged by the broker (OK) or one has failed.
//
// Ownership: owned by the app. Threading: Produce is thread-safe (librdkafka's producer is);
// delivery callbacks run on this class's poll thread.
#pragma once

#include <memory>
#include <vector>

#include "common/status.h"
#include "ingest/collector_parser.h"
#include "ingest/kafka_options.h"
#include "profiler/ack_group.h"
#include "prometheus/registry.h"

namespace ecrm {

class KafkaEventProducer {
 public:
  static StatusOr<std::unique_ptr<KafkaEventProducer>> Create(const KafkaOptions& options,
                                                              prometheus::Registry& registry);
  ~KafkaEventProducer();

  // Queues the messages; `done` runs when all are acknowledged or one failed. Fails at once, with
  // nothing queued and `done` never called, if the first message cannot be queued (queue full:
  // ResourceExhausted).
  Status Produce(std::vector<RawEventMessage> messages, AckGroup::Callback done);
  // Waits up to `timeout_ms` for queued messages, then stops the poll thread.
  void Stop(int timeout_ms);
  bool Ready() const;

 private:
  struct Impl;
  explicit KafkaEventProducer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ecrm
