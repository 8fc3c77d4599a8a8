// Shard: one worker thread that owns a set of partitions (partition % shard_count == index) and
// every profile, identity record and dedup record in them. It drains its inbox in batches, applies
// the events to profiles held in its write-back cache, and commits each batch's changes in one
// RocksDB WriteBatch (WAL on) before acknowledging any of them: many events of one visitor in a
// batch cost one write, and an acknowledged event is durable.
//
// Cross-shard work goes by message: an event whose profile lives on another shard is forwarded
// there; an identifier owned by another shard is claimed there (its owner is the single writer of
// its identity record). Ownership: created and owned by ProfileEngine; it must outlive its thread,
// which Stop() joins. Threading: Enqueue is thread-safe (the inbox mutex is held only to append or
// swap); all other state is touched only by the shard's own thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "profiler/ack_group.h"
#include "profiler/event.h"
#include "profiler/internal/profile_cache.h"
#include "profiler/profile_updater.h"
#include "profiler/profiler_metrics.h"
#include "profiler/rule_target.h"
#include "rules/rule_registry.h"
#include "store/kv_store.h"

namespace ecrm {

struct ShardTask {
  enum class Kind : uint8_t {
    kEvent,           // route by the event's routing key in `partition`
    kForwardedEvent,  // apply to `profile_id`, which this shard owns
    kClaimIdentity,  // set identity (id_type, id_value) in `partition` to `profile_id` if unclaimed
    kAttachIdentity,  // add (id_type, id_value) to `profile_id`'s identities
    kSourceOffset,    // record `offset` as the resume point of source partition `partition`
  };
  Kind kind = Kind::kEvent;
  uint32_t partition = 0;
  Event event;
  std::string profile_id;
  std::string id_type;
  std::string id_value;
  int64_t offset = 0;  // kSourceOffset
  std::shared_ptr<AckGroup> ack;
};

class ShardRouter {
 public:
  virtual ~ShardRouter() = default;
  virtual uint32_t partition_count() const = 0;
  virtual int ShardOfPartition(uint32_t partition) const = 0;
  virtual void Send(int shard, std::vector<ShardTask> tasks) = 0;
  // A shard has fully processed `n` tasks, including handing over their follow-ups.
  virtual void Finished(size_t n) = 0;
};

struct ShardOptions {
  size_t cache_capacity = 100000;  // profiles kept decoded in memory
  size_t identity_cache_capacity = 200000;
  size_t dedup_memory_capacity = 200000;  // recent messageIds held in memory per generation
  size_t max_batch_tasks = 4096;          // tasks applied per group commit at most
  // The active rule set is read from here once per batch (null: no rules). Must outlive the shard.
  const RuleRegistry* rules = nullptr;
};

class Shard {
 public:
  Shard(int index, KvStore& store, const ProfileUpdater& updater, ShardRouter& router,
        ProfilerMetrics& metrics, const ShardOptions& options);
  ~Shard();

  void Start();
  // Processes everything already queued, then stops the thread.
  void Stop();
  void Enqueue(std::vector<ShardTask> tasks);
  size_t QueueDepth() const { return depth_.load(std::memory_order_relaxed); }

 private:
  struct Outgoing {
    int shard;
    ShardTask task;
  };
  void Run();
  void ProcessBatch(std::vector<ShardTask>& tasks);
  void HandleEvent(ShardTask& task);
  void ApplyToProfile(const std::string& profile_id, Event& event,
                      const std::shared_ptr<AckGroup>& ack);
  void ClaimIdentity(uint32_t partition, const std::string& type, const std::string& value,
                     const std::string& profile_id, const std::shared_ptr<AckGroup>& ack);
  void AttachIdentity(const std::string& profile_id, const std::string& type,
                      const std::string& value);
  // The profile id an identifier maps to, from the cache or the store; empty if none.
  StatusOr<std::string> ResolveIdentity(const std::string& key);
  // The profile, loaded into the cache if needed; created empty if `create` and absent.
  StatusOr<Profile*> LoadProfile(const std::string& profile_id);
  bool SeenMessage(const std::string& dedup_key);
  bool Owns(uint32_t partition) const;
  void Fail(const Status& status);

  const int index_;
  KvStore& store_;
  const ProfileUpdater& updater_;
  ShardRouter& router_;
  ProfilerMetrics& metrics_;
  ShardProbe& probe_;
  const ShardOptions options_;

  std::mutex inbox_mu_;
  std::condition_variable inbox_cv_;
  std::vector<ShardTask> inbox_;  // guarded by inbox_mu_
  bool stopping_ = false;         // guarded by inbox_mu_
  std::atomic<size_t> depth_{0};
  std::thread thread_;

  // Shard-thread state.
  ProfileCache cache_;
  absl::flat_hash_map<std::string, std::string> identity_cache_;
  absl::flat_hash_set<std::string> dedup_current_;
  absl::flat_hash_set<std::string> dedup_previous_;
  std::mt19937_64 rng_;
  // Per batch.
  WriteBatch batch_;
  absl::flat_hash_set<std::string> dirty_;
  std::vector<std::shared_ptr<AckGroup>> acks_;
  std::vector<Outgoing> outgoing_;
  Status batch_error_;
  int64_t batch_events_ = 0;
  std::shared_ptr<const RuleSet> rule_set_;  // this batch's rule set: one version per event
  RuleJsonScratch rule_scratch_;
  uint64_t rule_events_ = 0;
  std::string encode_buffer_;
};

}  // namespace ecrm
