// ChangelogStandby: warm copies of partitions that other instances own (--standby-replicas,
// docs/cluster.md#standby-replicas). Its thread tails those partitions of the changelog topic,
// read-committed, from each copy's checkpoint, and applies what it reads to the store in batches
// that carry the checkpoint they reach. That is a restore's work done ahead of time: when such a
// partition fails over to this instance, its restore starts from near the changelog's end instead
// of from the start.
//
// It also drops, after a delay, a copy that is neither owned nor a standby here any more (a
// revoked partition's copy, say), as Kafka Streams' state.cleanup.delay.ms does. Only copies with a
// changelog checkpoint are dropped: the changelog holds everything they hold.
//
// Which partitions it tails: SetStandby (the app computes them from the group's assignment with
// StandbyPlacement), never those the consumer has acquired (owned or being restored here).
//
// Ownership: owned by the app; the store and the registry must outlive it. Threading: every public
// method is thread-safe. Acquire is synchronous: when it returns, nothing of those partitions is
// written by this class until they are released.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "ingest/kafka_admin.h"
#include "ingest/kafka_options.h"
#include "prometheus/registry.h"
#include "store/kv_store.h"

namespace ecrm {

class ChangelogStandby {
 public:
  // `drop_delay_ms`: how long a copy neither owned nor standby here is kept; -1 = for ever.
  static StatusOr<std::unique_ptr<ChangelogStandby>> Create(const KafkaOptions& options,
                                                            uint32_t partitions,
                                                            int64_t drop_delay_ms, KvStore& store,
                                                            prometheus::Registry& registry);
  ~ChangelogStandby();  // stops

  void Start();
  void Stop();

  // The partitions to keep warm copies of, from the group's latest description: call it with every
  // description learnt, with an empty set when there are no standbys (copies are dropped only
  // while descriptions keep coming). Those in `unknown` (no owner in the description, as during a
  // rebalance) keep whatever they were.
  void SetStandby(const std::set<uint32_t>& standby, const std::set<uint32_t>& unknown = {});
  // The consumer takes these partitions (to restore and own them): what was read of them is
  // written first, and nothing more of them until Release.
  void Acquire(const std::vector<uint32_t>& partitions);
  // The consumer gave these partitions up (revoked, or the assignment was lost): tailed again if
  // they are standbys here, else dropped after the delay.
  void Release(const std::vector<uint32_t>& partitions);

  // The partitions tailed now, each with its lag in changelog records (-1 until known).
  std::map<uint32_t, int64_t> Standbys() const;

 private:
  struct Impl;
  explicit ChangelogStandby(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Where the standby copies go: for each partition a member of `group` owns, the `replicas` members
// after its owner in the order of their instance ids (their client ids for dynamic members),
// never the owner itself. Partitions that no member owns are left out. Every instance computes the
// same placement from the same description, so no protocol is needed to agree on it.
std::map<uint32_t, std::vector<std::string>> StandbyPlacement(const GroupDescription& group,
                                                              int replicas);

}  // namespace ecrm
