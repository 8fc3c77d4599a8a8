// KafkaChangelog: the state log of Kafka mode (profiler/state_log.h). Every write the shards
// commit goes to a compacted changelog topic with one partition per ecrm partition, through one
// transactional producer per instance (transactional.id "<group>-<instance id>"); each epoch of
// writes is one Kafka transaction, committed together with the consumed offsets under the
// consumer group's metadata, so that an instance that lost its partitions (a zombie) is fenced and
// its epoch never becomes visible (docs/cluster.md#changelog).
//
// Ownership: created by the app before the engine (whose shards append to it) and destroyed after
// it. Threading: Append from any shard thread; Start, Commit and Poll from one thread (the
// consumer's), which is the only one that commits.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "ingest/kafka_options.h"
#include "profiler/state_log.h"
#include "prometheus/registry.h"

namespace RdKafka {
class KafkaConsumer;
}

namespace ecrm {

// "<group>-changelog".
std::string ChangelogTopic(const KafkaOptions& options);
// "<group>-internal": shard messages for partitions another instance owns, at the destination
// partition (docs/cluster.md#cross-instance-messages).
std::string InternalTopic(const KafkaOptions& options);

class KafkaChangelog final : public StateLog {
 public:
  static StatusOr<std::unique_ptr<KafkaChangelog>> Create(const KafkaOptions& options,
                                                          uint32_t partitions,
                                                          prometheus::Registry& registry);
  ~KafkaChangelog() override;

  // Registers the transactional id with its coordinator, which fences (aborts) whatever an earlier
  // process with the same id left open, and opens the first epoch. Start-up only.
  Status Start(int timeout_ms);

  // Also produces `messages` to the internal topic, in the same transaction.
  [[nodiscard]] StatusOr<uint64_t> Append(const WriteBatch& batch,
                                          std::span<const OutboundMessage> messages) override;

  struct CommittedEpoch {
    uint64_t epoch;
    std::shared_ptr<const Checkpoints> checkpoints;  // the partitions this epoch wrote
  };
  // Commits the open epoch, with `offsets` (events-topic partition -> next offset) as the group's
  // consumed offsets, and opens the next. Appends made while it runs are held in memory and
  // produced into the next epoch once it is open, so the shards wait only for the cut (for
  // appends already producing to finish). nullopt when the epoch was empty (nothing is sent). An
  // error means the epoch is lost and no later one can commit (this instance was fenced, or the
  // transaction timed out): the process must restart, and its store holds only committed epochs.
  // Aborted means only this epoch is lost (the group's generation moved on while it was open, a
  // member having joined or left): the caller must Abort it, with what the shards hold of it, and
  // read its messages again; until then every Commit answers Aborted.
  [[nodiscard]] StatusOr<std::optional<CommittedEpoch>> Commit(
      RdKafka::KafkaConsumer& consumer, const std::map<uint32_t, int64_t>& offsets);
  // Aborts the open epoch (its partitions were lost: another instance may own them now) and opens
  // the next. The shards must be idle and drop what they hold of it (ProfileEngine::EpochAborted).
  // An error means no epoch can commit any more.
  [[nodiscard]] Status Abort();
  // Serves delivery reports (call often from the committing thread).
  void Poll();

  const std::string& topic() const;

 private:
  struct Impl;
  explicit KafkaChangelog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ecrm
