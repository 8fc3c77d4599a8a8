// KafkaOptions: how ecrm talks to Apache Kafka (see docs/kafka.md). Parsed once from the config;
// immutable afterwards.
#pragma once

#include <cstddef>
#include <string>

namespace ecrm {

struct KafkaOptions {
  std::string brokers;         // host:port[,...]; empty = embedded mode (no Kafka)
  std::string group = "ecrm";  // consumer group
  // group.instance.id (static membership): stable across restarts of this instance, unique in
  // the group. "" = dynamic membership.
  std::string instance_id;
  // Where this instance's HTTP API is reached (HOST:PORT), carried in the consumer's client.id
  // ("ecrm-processor@HOST:PORT") so that the group's description names it. "" = not advertised.
  std::string advertised_http_addr;
  std::string topic = "ecrm.events";             // events topic
  std::string dlq_topic = "ecrm.events.dlq";     // dead letters: bad messages, reason in headers
  std::string profiles_topic = "ecrm.profiles";  // records from other channels; "" = not read
  size_t max_in_flight_messages = 200000;        // consumed but not yet durable: pause beyond this
  size_t pause_queue_depth = 100000;  // worker queue depth (total) that pauses consumption
  // librdkafka's prefetch queue: queued.min.messages, and 1 KiB each as queued.max.messages.kbytes.
  size_t prefetch_messages = 100000;
  // The changelog (docs/cluster.md#changelog): every state change also goes to the compacted
  // topic "<group>-changelog" in Kafka transactions, committed every commit_interval_ms, and a
  // partition this instance is assigned is restored from it first.
  bool changelog = true;
  int commit_interval_ms = 100;
};

}  // namespace ecrm
