// KafkaRules: cluster mode's RuleLog (rules/rule_registry.h). A rule push on any instance is
// produced to the compacted topic "<group>-rules" (one partition, one key), and every instance
// reads that topic and activates each set as version = its offset + 1, so all instances run the
// same versions, in the same order, each atomically per event as a local push would
// (docs/cluster.md#rules). Compaction keeps the latest set, which is what an instance that starts
// later needs.
//
// Ownership: owned by the app, created after the registry (which it must not outlive) and set as
// its log; destroyed before it. Threading: Publish from any thread (serialised); a reader thread
// applies the topic's records.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "ingest/kafka_options.h"
#include "rules/rule_registry.h"

namespace ecrm {

// "<group>-rules".
std::string RulesTopic(const KafkaOptions& options);

class KafkaRules final : public RuleLog {
 public:
  static StatusOr<std::unique_ptr<KafkaRules>> Create(const KafkaOptions& options,
                                                      RuleRegistry& registry);
  ~KafkaRules() override;

  // Reads the topic to its end and activates its latest set (if it is not the active one), then
  // follows it on a thread of its own. Start-up only: Unavailable if no broker answers.
  Status Start(int timeout_ms);

  // Produces the set, waits until this instance has activated it (at most 10 s), and returns
  // its version.
  StatusOr<uint64_t> Publish(std::string_view rules_document) override;

 private:
  struct Impl;
  explicit KafkaRules(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ecrm
