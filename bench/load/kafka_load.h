// Kafka modes of ecrm-load (see kafka_load.cc). Single-threaded; for benchmarks only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "bench/load/event_generator.h"

namespace ecrm::bench {

// Produces `events` synthetic events (keyed by anonymous id, murmur2_random) and reports the rate.
int KafkaProduce(const std::string& brokers, const std::string& topic, uint64_t events,
                 const GeneratorOptions& generator);
// Polls ecrm's /metrics until ecrm_events_applied_total reaches `target`; reports events/s.
// server_cpu_seconds (optional): the server's CPU time so far, to report CPU per event.
int WatchApplied(const std::string& host, uint16_t port, uint64_t target, double timeout_seconds,
                 const std::function<double()>& server_cpu_seconds = {});

}  // namespace ecrm::bench
