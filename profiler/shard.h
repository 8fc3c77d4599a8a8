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
//
// shard.cc has the batching, events and loading; shard_identity.cc the identity, merge and erasure
// handlers. Each handler takes one typed message (profiler/shard_message.h).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
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
#include "profiler/shard_message.h"
#include "profiler/state_log.h"
#include "rules/rule_registry.h"
#include "store/keys.h"
#include "store/kv_store.h"

namespace ecrm {

using Ack = std::shared_ptr<AckGroup>;

class ShardRouter {
 public:
  virtual ~ShardRouter() = default;
  virtual uint32_t partition_count() const = 0;
  virtual int ShardOfPartition(uint32_t partition) const = 0;
  virtual void Send(int shard, std::vector<ShardTask> tasks) = 0;
  // A shard has fully processed `n` tasks, including handing over their follow-ups.
  virtual void Finished(size_t n) = 0;
  // A committed batch moved an identity record from one profile to another without a merge (a
  // verified claim took it over): cached reads of identity records must start afresh.
  virtual void IdentityRecordsMoved() {}
  // Whether this instance owns `partition` now. A shard with a state log sends messages for a
  // partition it does not own through the log (OutboundMessage) instead of to a local shard.
  virtual bool Local(uint32_t /*partition*/) const { return true; }
};

struct ShardOptions {
  size_t cache_capacity = 100000;        // profiles kept decoded in memory
  size_t cache_bytes = size_t{1} << 30;  // and their memory (Profile::MemoryBytes) at most
  size_t identity_cache_capacity = 200000;
  size_t max_batch_tasks = 4096;  // tasks applied per group commit at most
  // The active rule set is read from here once per batch (null: no rules). Must outlive the shard.
  const RuleRegistry* rules = nullptr;
  // Merge protection (docs/identity.md#merge-protection): the most distinct values of an
  // identifier type one profile may hold (a merge that would exceed one is refused); types not
  // listed are unlimited. The anonymous_id limit bounds a profile's size (each id up to 1 KiB).
  std::map<std::string, int> identifier_limits = {{"user_id", 1}, {"anonymous_id", 1000}};
  // The most values of a type without a limit above (email, phone, crm_id, custom types) one
  // profile lists: a claim of one more is refused (docs/errors.md), so that no client can grow a
  // profile without bound by sending new identifiers.
  size_t max_identifiers_per_type = 100;
  // Which of two merged profiles survives: the older (created first) or the newer one.
  bool newer_survives = false;
  // How long a messageId is remembered in its profile (Profile::recent_messages).
  TimeMs dedup_window_ms = 24LL * 3600 * 1000;
  // After an upgrade from schema 1 or 2, whose dedup records were rows of the dedup CF: until this
  // time (compared with events' received-at), a dedup miss also looks up the old key.
  // Set by ProfileEngine::Create from the meta CF.
  TimeMs legacy_dedup_until_ms = 0;
  int legacy_dedup_schema = 0;  // 1 or 2: which old key
  // Where batches go before the store (null: straight to the store, as in embedded mode). With a
  // log, a batch is written to the store only once its epoch has committed
  // (profiler/state_log.h). Must outlive the shard.
  StateLog* state_log = nullptr;
};

class Shard {
 public:
  Shard(int index, KvStore& store, const ProfileUpdater& updater, ShardRouter& router,
        ProfilerMetrics& metrics, const ShardOptions& options);
  ~Shard();

  // Re-sends the last step of merges that a crash interrupted (their pending records), then starts
  // the thread.
  void Start();
  // Processes everything already queued, then stops the thread.
  void Stop();
  void Enqueue(std::vector<ShardTask> tasks);
  size_t QueueDepth() const { return depth_.load(std::memory_order_relaxed); }
  // Runs `fn` on the shard's thread between two batches (before the tasks queued with it).
  void Post(std::function<void()> fn);
  // The state log committed every epoch up to `epoch`: the batches of those epochs are written to
  // the store, with the checkpoints of this shard's partitions, and acknowledged. Thread-safe.
  void Committed(uint64_t epoch, std::shared_ptr<const Checkpoints> checkpoints);
  // The open epoch was aborted: its batches are dropped (their acknowledgements fail) with
  // everything cached, since the cache holds their effects. Thread-safe; `done` runs on the
  // shard's thread.
  void Aborted(std::function<void()> done);
  // Drops everything cached of `partitions` (their state may change elsewhere from now on). Call
  // once their epochs are committed. Thread-safe; `done` runs on the shard's thread.
  void Forget(std::vector<uint32_t> partitions, std::function<void()> done);

 private:
  struct Outgoing {
    int shard;
    ShardTask task;
  };
  void Run();
  void ProcessBatch(std::span<ShardTask* const> tasks);
  // Deferred mode: hands the batch to the state log and keeps it until its epoch commits.
  Status AppendToLog();
  void WriteCommitted(uint64_t epoch, const Checkpoints& checkpoints);
  // A stored value as this shard sees it: its own uncommitted writes first, then the store.
  StatusOr<std::optional<std::string>> Read(Cf cf, const std::string& key) const;
  void HandleEvent(msg::RouteEvent& m, const Ack& ack);
  void ApplyToProfile(const std::string& profile_id, Event& event, const Ack& ack);
  void ClaimIdentity(msg::ClaimIdentity& m, const Ack& ack);
  // Starts merging profiles a and b (linked by cause's link, at, message_id); the older survives.
  void StartMerge(const std::string& a, const std::string& b, const msg::MergeLink& cause,
                  const Ack& ack);
  void MergeCheck(msg::MergeCheck& m, const Ack& ack);
  void MergeSend(msg::MergeSend& m, const Ack& ack);
  void MergeAbsorb(msg::MergeAbsorb& m, const Ack& ack);
  void RepointIdentity(msg::RepointIdentity& m);
  // Runs the active rules on a profile that just absorbed another (docs/identity.md#rules).
  void RerunRules(Profile& profile, TimeMs at);
  void DetachIdentity(msg::DetachIdentity& m, const Ack& ack);
  void RecordRefusal(msg::RecordRefusal& m, const Ack& ack);
  // Sends the identifier claims an applied (or duplicate) event carries for `profile`.
  // Identifiers of a limited type (user_id) are listed in the profile at once, before the claim
  // is confirmed, so that merge protection sees them for the next event of the same batch; a
  // refused claim takes them off again. `retry`: claim every carried identifier, even the listed
  // ones (a duplicate: its first attempt's claims may have been lost in a crash).
  void ClaimCarried(Profile& profile, const Event& event, const Ack& ack, bool retry = false);
  void DeleteProfile(msg::DeleteProfile& m, const Ack& ack);
  void DeleteIdentity(msg::DeleteIdentity& m);
  void DeleteAlias(msg::DeleteAlias& m);
  // Queues a follow-up message for the shard owning its destination partition (this one
  // included), under `ack`; for another instance when it owns the partition (cluster mode).
  void Send(ShardMessage&& m, const Ack& ack);
  // A task for a partition this instance no longer owns: sent on to its owner, under its ack.
  void Relay(ShardTask&& task);
  int UserIdLimit() const;
  // Whether `profile` lacks (type, value) and already lists as many values of `type` as it may
  // (identifier_limits, else max_identifiers_per_type).
  bool AtIdentifierCap(const Profile& profile, const std::string& type,
                       const std::string& value) const;
  // The id `profile_id` was merged into (following aliases), or "" if it is not an alias.
  StatusOr<std::string> AliasTarget(const std::string& profile_id);
  void AttachIdentity(const std::string& profile_id, const std::string& type,
                      const std::string& value, const Ack& ack);
  // The profile id an identifier maps to, from the cache or the store; empty if none.
  StatusOr<std::string> ResolveIdentity(const std::string& key);
  // The erasure ledger (ErasureKey): whether (type, value) was erased at or after `at`.
  StatusOr<bool> ErasedSince(uint32_t partition, std::string_view type, std::string_view value,
                             TimeMs at);
  static TimeMs ErasedAt(std::string_view ledger_value);
  // The profile, loaded into the cache if needed; created empty if absent. Null with
  // *alias_to set if the profile was merged into another.
  StatusOr<Profile*> LoadProfile(const std::string& profile_id, std::string* alias_to = nullptr);
  // The profile that m.*id names; null if it was merged into another, after sending a copy of `m`
  // naming the survivor instead to the survivor's shard.
  template <class M>
  StatusOr<Profile*> LoadOrFollow(const M& m, std::string M::*id, const Ack& ack);
  // Whether the profile already had this event: its message hash, or within the upgrade window
  // the dedup CF record of schema 1 or 2.
  bool SeenMessage(const Profile& profile, uint32_t partition, const Event& event);
  // This shard writes `partition`: it is among this shard's, and this instance owns it now.
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
  std::vector<std::vector<ShardTask>> inbox_;   // guarded by inbox_mu_; one entry per Enqueue
  std::vector<std::function<void()>> control_;  // guarded by inbox_mu_; Post
  bool stopping_ = false;                       // guarded by inbox_mu_
  std::atomic<size_t> depth_{0};
  std::thread thread_;

  // Shard-thread state.
  ProfileCache cache_;
  absl::flat_hash_map<std::string, std::string> identity_cache_;
  std::mt19937_64 rng_;
  uint64_t profiles_created_ = 0;                          // low bits of new profile ids
  absl::flat_hash_map<std::string, std::string> aliases_;  // merged-away id -> survivor
  // Per batch.
  WriteBatch batch_;
  absl::flat_hash_set<std::string> dirty_;
  std::vector<std::string> dirty_sorted_;  // dirty_ in key order, at commit
  std::vector<std::shared_ptr<AckGroup>> acks_;
  std::vector<Outgoing> outgoing_;
  // Messages for partitions other instances own, and the acknowledgements that wait for them.
  std::vector<OutboundMessage> outbound_;
  std::vector<Ack> outbound_acks_;
  Status batch_error_;
  bool records_moved_ = false;  // this batch took an identity record over (IdentityRecordsMoved)
  int64_t batch_events_ = 0;
  std::shared_ptr<const RuleSet> rule_set_;  // this batch's rule set: one version per event
  RuleJsonScratch rule_scratch_;
  uint64_t rule_events_ = 0;
  std::string encode_buffer_;

  // Deferred mode (options_.state_log): batches appended to the log, oldest first, each waiting
  // for its epoch to commit, with the acknowledgements that wait for it.
  struct PendingBatch {
    uint64_t epoch;
    WriteBatch batch;
    std::vector<Ack> acks;
    bool records_moved;
  };
  std::deque<PendingBatch> pending_;
  // What the pending batches write to profiles [0] and identities [1], newest value per key
  // (nullopt: deleted), so that this shard reads its own uncommitted state.
  struct Overlaid {
    uint64_t epoch;
    std::optional<std::string> value;
  };
  absl::flat_hash_map<std::string, Overlaid> overlay_[2];
  uint64_t written_epoch_ = 0;  // every epoch up to this one is in the store
};

}  // namespace ecrm
