// ProfileEngine: the profiler's public face. It owns the worker shards, routes each event to the
// shard owning its partition (murmur2(routing key) % partition_count, the function Kafka's Java
// clients use), and answers profile look-ups from the store.
//
// Ownership: created by the app after the KvStore (which it must not outlive) and a Prometheus
// registry; destroyed before them. Threading: Submit and the look-ups are thread-safe and may be
// called from any number of HTTP (or consumer) threads; the callback passed to Submit runs on a
// shard thread and must only hand the result over (e.g. post to an io_context), never block.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "profiler/ack_group.h"
#include "profiler/event.h"
#include "profiler/profile.h"
#include "profiler/profile_updater.h"
#include "profiler/profiler_metrics.h"
#include "profiler/shard.h"
#include "store/kv_store.h"

namespace ecrm {

struct EngineOptions {
  int shards = 2;                   // worker threads; default: one per core
  uint32_t partitions = 64;         // virtual partitions; fixed for the life of a data dir
  size_t max_queue_depth = 200000;  // per shard; beyond it Submit answers ResourceExhausted
  // Cluster mode (with a state log): this instance owns only the partitions given to SetOwned;
  // messages for the others go through the log to their owners, and pending merges are resumed
  // per partition as it is assigned (ResumePendingMerges) rather than all at Start.
  bool owned_by_assignment = false;
  // "Now" for erasures (the erasure ledger's times); null: the system clock. Must outlive the
  // engine.
  const Clock* clock = nullptr;
  ShardOptions shard;
  ProfilerConfig profiler;
};

class ProfileEngine final : public ShardRouter {
 public:
  // Checks (or records, on first start) the partition count stored in the data dir.
  static StatusOr<std::unique_ptr<ProfileEngine>> Create(KvStore& store,
                                                         prometheus::Registry& registry,
                                                         const EngineOptions& options);
  ~ProfileEngine() override;

  void Start();
  // Refuses new work (Submit answers Unavailable), waits until every accepted task and its
  // cross-shard follow-ups are processed and acknowledged, then stops the shards.
  void Stop();

  // Queues the events; `done` runs once all of them are durable (OK) or failed. Fails at once, with
  // nothing queued, with ResourceExhausted when a target shard's queue is full, or Unavailable when
  // the engine is stopping.
  // On failure `events` is left as it was, so the caller can retry.
  Status Submit(std::vector<Event>&& events, AckGroup::Callback done);

  // The profile an identifier ("anonymous_id", "A1") maps to, or nullopt if none. Reads the store:
  // every acknowledged event is already there.
  StatusOr<std::optional<Profile>> Lookup(std::string_view type, std::string_view value) const;
  StatusOr<std::optional<Profile>> LookupById(std::string_view profile_id) const;

  // Cluster mode's reads, which may need another instance: the profile, or the id to read next
  // from the instance that owns its partition (the identifier's profile, or an alias's survivor,
  // lives there). The identifier's own partition must be owned here (Local). Without
  // owned_by_assignment they answer as Lookup and LookupById.
  struct ProfileRead {
    std::optional<Profile> profile;
    std::string elsewhere;  // non-empty: read this profile id from its partition's owner
  };
  StatusOr<ProfileRead> Read(std::string_view type, std::string_view value) const;
  StatusOr<ProfileRead> ReadById(std::string_view profile_id) const;

  // Erases the profile an identifier leads to, every identifier pointing to it and every alias
  // (profiles merged into it). Returns its id, or NotFound; `done` runs once the erasure is
  // durable. Late events for an erased identifier start a fresh profile.
  StatusOr<std::string> DeleteProfile(std::string_view type, std::string_view value,
                                      AckGroup::Callback done);

  // Retention (--retention-days): erases, as DeleteProfile does, every profile of a partition
  // owned here that was last seen before `inactive_before` (an event meanwhile keeps it). Reads
  // the store and waits for the erasures, `chunk` profiles at a time, so it belongs on a
  // background thread. Returns how many profiles it found inactive.
  StatusOr<size_t> ExpireInactive(TimeMs inactive_before, size_t chunk = 1000);

  // Records `offset` as source partition `partition`'s resume point. It is written by the shard
  // that owns the partition, in its next WriteBatch (together with whatever state that batch
  // commits). The caller must only pass an offset whose messages are all durable. `done` as in
  // Submit.
  void CommitSourceOffset(uint32_t partition, int64_t offset, AckGroup::Callback done);
  // With a state log (EngineOptions::shard.state_log): the log committed every epoch up to
  // `epoch`; the shards write those epochs' batches to the store and acknowledge them.
  void EpochCommitted(uint64_t epoch, std::shared_ptr<const Checkpoints> checkpoints);
  // With a state log: the open epoch was aborted; every shard drops its batches and its cache.
  // Returns once all have. Call only while no task is in flight (Idle).
  void EpochAborted();
  // No task is queued or being processed.
  bool Idle() const { return outstanding_.load() == 0; }
  // Returns once every shard has run what was posted to it before (for example the store writes
  // of epochs reported committed). For tests and hand-overs.
  void Sync();
  // Drops what the shards cache of `partitions` (they are no longer this instance's to write);
  // returns once every shard has. Their epochs must be committed first.
  void ForgetPartitions(const std::vector<uint32_t>& partitions);
  // The stored resume point of a source partition, or nullopt if none was ever recorded.
  StatusOr<std::optional<int64_t>> SourceOffset(uint32_t partition) const;

  // Cluster mode. Shard messages other instances sent (through the internal topic), handled like
  // local ones; `done` as in Submit. Never refused for full queues: they are already committed
  // work of another instance, and the caller bounds what it has in flight.
  Status SubmitMessages(std::vector<ShardMessage>&& messages, AckGroup::Callback done);
  // As CommitSourceOffset, for partition `partition` of the internal topic.
  void CommitInternalOffset(uint32_t partition, int64_t offset, AckGroup::Callback done);
  StatusOr<std::optional<int64_t>> InternalOffset(uint32_t partition) const;
  // `partitions` are this instance's from now on (owned) or no longer (not owned). Giving some
  // up returns once every shard has finished the batch it was in, so that nothing written after
  // the call names them; their epoch must then be committed before another instance takes them.
  void SetOwned(const std::vector<uint32_t>& partitions, bool owned);
  bool Local(uint32_t partition) const override {
    return owned_[partition % options_.partitions].load(std::memory_order_acquire);
  }
  // Re-sends the absorb step of every merge a crash interrupted whose loser is in `partitions`.
  // Cluster mode calls it as partitions are assigned; otherwise Start does, for all.
  void ResumePendingMerges(const std::vector<uint32_t>& partitions);

  const ProfileUpdater& updater() const { return updater_; }
  size_t TotalQueueDepth() const;
  uint32_t partition_count() const override { return options_.partitions; }
  int ShardOfPartition(uint32_t partition) const override {
    return static_cast<int>(partition % static_cast<uint32_t>(shards_.size()));
  }

 private:
  ProfileEngine(KvStore& store, prometheus::Registry& registry, const EngineOptions& options);
  void Send(int shard, std::vector<ShardTask> tasks) override;
  // Posts work to every shard with a `done` callback and waits until all have run it.
  void OnEveryShard(const std::function<void(Shard&, std::function<void()>)>& post);
  // Re-sends the absorb step of every merge a crash interrupted (meta "merge|" records) under
  // `prefix`.
  void ResumePendingMerges(const std::string& prefix);
  void Finished(size_t n) override { outstanding_.fetch_sub(n); }
  void IdentityRecordsMoved() override { identity_epoch_->fetch_add(1, std::memory_order_release); }

  TimeMs NowMs() const { return options_.clock ? options_.clock->NowMs() : SystemClock().NowMs(); }

  KvStore& store_;
  const EngineOptions options_;
  // Follows alias records from `profile_id` (updated to the live id); the live profile's stored
  // value, or nullopt if there is none. With `elsewhere`, stops at an id whose partition this
  // instance does not own, which it names there.
  StatusOr<std::optional<std::string>> FollowAliases(std::string& profile_id,
                                                     std::string* elsewhere = nullptr) const;

  const uint64_t instance_;  // unique per engine in this process (tags reader caches)
  // Bumped by every erasure: reader caches of identifier -> profile id start afresh.
  std::shared_ptr<std::atomic<uint64_t>> identity_epoch_ =
      std::make_shared<std::atomic<uint64_t>>(0);
  ProfileUpdater updater_;
  ProfilerMetrics metrics_;
  std::vector<std::unique_ptr<Shard>> shards_;
  bool started_ = false;
  std::atomic<bool> accepting_{false};
  std::atomic<int64_t> outstanding_{0};         // tasks enqueued (or reserved) and not yet finished
  std::unique_ptr<std::atomic<bool>[]> owned_;  // per partition: Local
};

}  // namespace ecrm
