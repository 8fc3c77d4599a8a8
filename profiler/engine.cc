#include "profiler/engine.h"

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "common/logging.h"
#include "common/murmur2.h"
#include "profiler/profile_codec.h"
#include "store/keys.h"

namespace ecrm {

namespace {

// Per reader thread: identity key -> profile id. Records do change (a merge repoints them to the
// survivor, a verified claim takes one over from an unverified holder): a cached id of a merged
// profile still leads to the survivor through its alias, and every erasure bumps the epoch, which
// empties the caches, as does a batch that took a record over (IdentityRecordsMoved). Only hits are
// cached: an unknown visitor may appear at any moment. Tagged with the engine it belongs to.
struct ReaderIdentityCache {
  uint64_t engine = 0;
  uint64_t epoch = 0;
  absl::flat_hash_map<std::string, std::string> ids;
};
constexpr size_t kReaderIdentityCacheCapacity = 100000;
std::atomic<uint64_t> next_engine_instance{1};

// Schemas 1 and 2 kept dedup records in the dedup CF, keyed per partition (1: the messageId; 2:
// event time and hash, DedupKey); schema 3 keeps them in the profile, per source and visitor
// (MessageHash), which cannot be computed from an old key. The old records are left to expire, and
// shards also look up the old key until one dedup window after the upgrade (kMetaLegacyDedupUntil).
// Schema 2's identity records (a plain profile id) are schema 3's verified ones; profiles of older
// format versions are read as they are.
Status UpgradeDedupFrom(KvStore& store, std::string_view old_schema) {
  std::string until;
  PutFixed64(&until, static_cast<uint64_t>(SystemClock().NowMs() + store.dedup_window_ms()));
  WriteBatch batch = store.NewBatch();
  batch.Put(Cf::kMeta, kMetaLegacyDedupUntil, until);
  batch.Put(Cf::kMeta, kMetaLegacyDedupSchema, old_schema);
  batch.Put(Cf::kMeta, kMetaSchemaVersion, kCurrentSchemaVersion);
  RETURN_IF_ERROR(store.Write(batch));
  spdlog::info("storage: upgraded from schema {} to {}; old dedup records are consulted for {} s",
               old_schema, kCurrentSchemaVersion, store.dedup_window_ms() / 1000);
  return absl::OkStatus();
}

}  // namespace

StatusOr<std::unique_ptr<ProfileEngine>> ProfileEngine::Create(KvStore& store,
                                                               prometheus::Registry& registry,
                                                               const EngineOptions& options) {
  if (options.shards < 1 || options.shards > 256) {
    return absl::InvalidArgumentError("workers must be between 1 and 256");
  }
  if (options.partitions < 1 || options.partitions > 0xffff) {
    return absl::InvalidArgumentError("partitions must be between 1 and 65535");
  }
  ASSIGN_OR_RETURN(auto stored, store.Get(Cf::kMeta, kMetaPartitionCount));
  const std::string wanted = std::to_string(options.partitions);
  if (!stored) {
    RETURN_IF_ERROR(store.Put(Cf::kMeta, kMetaPartitionCount, wanted));
  } else if (*stored != wanted) {
    return absl::FailedPreconditionError("partitions: the data dir was created with " + *stored +
                                         " partitions, not " + wanted +
                                         "; the partition count cannot change");
  }
  ASSIGN_OR_RETURN(auto schema, store.Get(Cf::kMeta, kMetaSchemaVersion));
  if (schema == "1" || schema == "2") {
    RETURN_IF_ERROR(UpgradeDedupFrom(store, *schema));
    schema = std::string(kCurrentSchemaVersion);
  }
  if (!schema) {
    RETURN_IF_ERROR(store.Put(Cf::kMeta, kMetaSchemaVersion, kCurrentSchemaVersion));
  } else if (*schema != kCurrentSchemaVersion) {
    return absl::FailedPreconditionError("data dir has schema version " + *schema +
                                         "; this ecrm reads version " +
                                         std::string(kCurrentSchemaVersion));
  }
  EngineOptions effective = options;
  ASSIGN_OR_RETURN(auto legacy_until, store.Get(Cf::kMeta, kMetaLegacyDedupUntil));
  ASSIGN_OR_RETURN(auto legacy_schema, store.Get(Cf::kMeta, kMetaLegacyDedupSchema));
  if (legacy_until && legacy_until->size() == 8) {
    effective.shard.legacy_dedup_until_ms =
        static_cast<TimeMs>(DecodeFixed64(legacy_until->data()));
    // Data dirs upgraded from schema 1 to 2 before schema 3 have no schema record: 1.
    effective.shard.legacy_dedup_schema = legacy_schema == "2" ? 2 : 1;
  }
  effective.shard.dedup_window_ms = store.dedup_window_ms();
  return std::unique_ptr<ProfileEngine>(new ProfileEngine(store, registry, effective));
}

ProfileEngine::ProfileEngine(KvStore& store, prometheus::Registry& registry,
                             const EngineOptions& options)
    : store_(store),
      options_(options),
      instance_(next_engine_instance.fetch_add(1)),
      updater_(options.profiler),
      metrics_(registry, options.shards) {
  owned_ = std::make_unique<std::atomic<bool>[]>(options.partitions);
  for (uint32_t p = 0; p < options.partitions; p++) owned_[p] = !options.owned_by_assignment;
  for (int i = 0; i < options.shards; i++) {
    shards_.push_back(std::make_unique<Shard>(i, store, updater_, *this, metrics_, options.shard));
  }
}

ProfileEngine::~ProfileEngine() { Stop(); }

void ProfileEngine::Start() {
  if (started_) return;
  started_ = true;
  for (auto& s : shards_) s->Start();
  if (!options_.owned_by_assignment) ResumePendingMerges(std::string(kMetaPendingMergePrefix));
  accepting_ = true;
}

void ProfileEngine::ResumePendingMerges(const std::vector<uint32_t>& partitions) {
  for (uint32_t p : partitions) {
    // Pending merge records are keyed by the loser's id, which starts with its partition.
    ResumePendingMerges(std::string(kMetaPendingMergePrefix) +
                        MakeProfileId(p, 0).substr(0, 5));  // "merge|pppp-"
  }
}

void ProfileEngine::ResumePendingMerges(const std::string& prefix) {
  std::vector<msg::MergeAbsorb> resumed;
  const Status s =
      store_.Scan(Cf::kMeta, prefix, [&](std::string_view key, std::string_view value) {
        auto absorb = DecodePendingMerge(value);
        if (!absorb) {
          spdlog::error("unreadable pending merge record {}", key);
          return true;
        }
        resumed.push_back(*std::move(absorb));
        return true;
      });
  if (!s.ok()) spdlog::error("pending merges could not be read: {}", s.ToString());
  if (resumed.empty()) return;
  spdlog::info("resuming {} merges interrupted by a stop or crash", resumed.size());
  metrics_.merges_resumed().Increment(static_cast<double>(resumed.size()));
  for (auto& absorb : resumed) {
    if (!PartitionOfProfileId(absorb.survivor) || !PartitionOfProfileId(absorb.loser)) {
      spdlog::error("pending merge record names an unreadable profile id; skipped");
      continue;
    }
    ShardTask task{std::move(absorb), std::make_shared<AckGroup>(1, [](Status) {})};
    const int shard = ShardOfPartition(DestinationPartition(task.message));
    std::vector<ShardTask> one;
    one.push_back(std::move(task));
    Send(shard, std::move(one));
  }
}

void ProfileEngine::Stop() {
  if (!started_) return;
  accepting_ = false;
  // Follow-ups are enqueued (and counted) before the task that made them is finished, so the count
  // reaches zero only when nothing is left anywhere.
  while (outstanding_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  for (auto& s : shards_) s->Stop();
  started_ = false;
}

size_t ProfileEngine::TotalQueueDepth() const {
  size_t total = 0;
  for (const auto& s : shards_) total += s->QueueDepth();
  return total;
}

void ProfileEngine::Send(int shard, std::vector<ShardTask> tasks) {
  outstanding_.fetch_add(static_cast<int64_t>(tasks.size()));
  shards_[static_cast<size_t>(shard)]->Enqueue(std::move(tasks));
}

Status ProfileEngine::Submit(std::vector<Event>&& events, AckGroup::Callback done) {
  if (events.empty()) {
    done(absl::OkStatus());
    return absl::OkStatus();
  }
  std::vector<std::vector<ShardTask>> by_shard(shards_.size());
  std::vector<uint32_t> partitions;
  partitions.reserve(events.size());
  for (const auto& e : events) {
    partitions.push_back(PartitionForKey(e.RoutingKey(), options_.partitions));
  }
  std::vector<bool> targeted(shards_.size(), false);
  std::vector<size_t> per_shard(shards_.size(), 0);
  for (uint32_t p : partitions) {
    const auto s = static_cast<size_t>(ShardOfPartition(p));
    targeted[s] = true;
    per_shard[s]++;
  }
  for (size_t s = 0; s < shards_.size(); s++) {
    if (targeted[s] && shards_[s]->QueueDepth() >= options_.max_queue_depth) {
      return absl::ResourceExhaustedError("worker queues are full");
    }
  }
  // Reserve before checking, so that Stop() either sees this request or it sees Stop().
  outstanding_.fetch_add(1);
  if (!accepting_.load()) {
    outstanding_.fetch_sub(1);
    return absl::UnavailableError("shutting down");
  }
  auto ack = std::make_shared<AckGroup>(static_cast<int>(events.size()), std::move(done));
  for (size_t s = 0; s < shards_.size(); s++) by_shard[s].reserve(per_shard[s]);
  for (size_t i = 0; i < events.size(); i++) {
    // Built in place: a ShardTask carries a whole Event, so every extra move costs.
    ShardTask& task = by_shard[static_cast<size_t>(ShardOfPartition(partitions[i]))].emplace_back();
    auto& route = task.message.emplace<msg::RouteEvent>();
    route.partition = partitions[i];
    route.event = std::move(events[i]);
    Event& e = route.event;
    if (!e.message_id.empty() && e.message_hash == 0) {
      e.message_hash = MessageHash(e.source, e.RoutingIdentityType(), e.RoutingKey(), e.message_id);
    }
    task.ack = ack;
  }
  for (size_t s = 0; s < shards_.size(); s++) {
    if (!by_shard[s].empty()) Send(static_cast<int>(s), std::move(by_shard[s]));
  }
  outstanding_.fetch_sub(1);
  return absl::OkStatus();
}

StatusOr<std::optional<Profile>> ProfileEngine::Lookup(std::string_view type,
                                                       std::string_view value) const {
  const uint32_t partition = PartitionForKey(value, options_.partitions);
  std::string key = IdentityKey(partition, type, value);
  thread_local ReaderIdentityCache cache;
  const uint64_t epoch = identity_epoch_->load(std::memory_order_acquire);
  if (cache.engine != instance_ || cache.epoch != epoch) {
    cache.ids.clear();
    cache.engine = instance_;
    cache.epoch = epoch;
  }
  if (const auto it = cache.ids.find(key); it != cache.ids.end()) return LookupById(it->second);
  ASSIGN_OR_RETURN(auto record, store_.Get(Cf::kIdentities, key));
  if (!record) return std::optional<Profile>();
  std::string profile_id = DecodeIdentityRecord(*record).profile_id;
  if (cache.ids.size() >= kReaderIdentityCacheCapacity) cache.ids.clear();
  cache.ids.emplace(std::move(key), profile_id);
  return LookupById(profile_id);
}

StatusOr<size_t> ProfileEngine::ExpireInactive(TimeMs inactive_before, size_t chunk) {
  size_t found = 0;
  // A partition at a time: one scan collects its inactive ids (a partition holds 1/partitions of
  // the profiles), then their shard erases them `chunk` at a time, each chunk durable before the
  // next is sent, so the sweep never floods a shard's queue.
  std::vector<std::string> ids;
  for (uint32_t p = 0; p < options_.partitions; p++) {
    if (!Local(p)) continue;
    ids.clear();
    RETURN_IF_ERROR(store_.Scan(Cf::kProfiles, PartitionPrefix(p).substr(0, 4) + "-",
                                [&](std::string_view key, std::string_view value) {
                                  if (DecodeAlias(value)) return true;  // erased with its survivor
                                  auto profile = DecodeProfile(value);
                                  // An unreadable one is quarantined when next loaded.
                                  if (profile.ok() && profile->stats.last_seen < inactive_before) {
                                    ids.emplace_back(key);
                                  }
                                  return true;
                                }));
    for (size_t begin = 0; begin < ids.size(); begin += chunk) {
      const size_t end = std::min(ids.size(), begin + chunk);
      auto finished = std::make_shared<std::promise<Status>>();
      auto durable = finished->get_future();
      auto ack = std::make_shared<AckGroup>(static_cast<int>(end - begin),
                                            [finished, epoch = identity_epoch_](Status status) {
                                              epoch->fetch_add(1, std::memory_order_release);
                                              finished->set_value(status);
                                            });
      const TimeMs now = NowMs();
      std::vector<ShardTask> tasks;
      tasks.reserve(end - begin);
      for (size_t i = begin; i < end; i++) {
        tasks.push_back(ShardTask{msg::DeleteProfile{ids[i], now, inactive_before}, ack});
      }
      outstanding_.fetch_add(1);
      if (!accepting_.load()) {
        outstanding_.fetch_sub(1);
        return absl::UnavailableError("shutting down");
      }
      Send(ShardOfPartition(p), std::move(tasks));
      outstanding_.fetch_sub(1);
      RETURN_IF_ERROR(durable.get());
      found += end - begin;
    }
  }
  return found;
}

StatusOr<std::string> ProfileEngine::DeleteProfile(std::string_view type, std::string_view value,
                                                   AckGroup::Callback done) {
  const uint32_t partition = PartitionForKey(value, options_.partitions);
  ASSIGN_OR_RETURN(auto record, store_.Get(Cf::kIdentities, IdentityKey(partition, type, value)));
  if (!record) return absl::NotFoundError("no profile for that identifier");
  std::optional<std::string> profile_id = DecodeIdentityRecord(*record).profile_id;
  // Follow aliases to the live profile (its shard follows them again if a merge is in flight, or
  // the rest of the chain, which another instance holds).
  std::string elsewhere;
  RETURN_IF_ERROR(FollowAliases(*profile_id, &elsewhere).status());
  outstanding_.fetch_add(1);
  if (!accepting_.load()) {
    outstanding_.fetch_sub(1);
    return absl::UnavailableError("shutting down");
  }
  ShardTask task;
  task.message = msg::DeleteProfile{*profile_id, NowMs(), 0};
  task.ack = std::make_shared<AckGroup>(
      1, [epoch = identity_epoch_, done = std::move(done)](Status status) {
        epoch->fetch_add(1, std::memory_order_release);
        done(status);
      });
  std::vector<ShardTask> tasks;
  tasks.push_back(std::move(task));
  Send(ShardOfPartition(*PartitionOfProfileId(*profile_id)), std::move(tasks));
  outstanding_.fetch_sub(1);
  return *profile_id;
}

void ProfileEngine::CommitSourceOffset(uint32_t partition, int64_t offset,
                                       AckGroup::Callback done) {
  ShardTask task;
  task.message = msg::SourceOffset{partition, offset};
  task.ack = std::make_shared<AckGroup>(1, std::move(done));
  std::vector<ShardTask> tasks;
  tasks.push_back(std::move(task));
  Send(ShardOfPartition(partition % options_.partitions), std::move(tasks));
}

void ProfileEngine::EpochCommitted(uint64_t epoch, std::shared_ptr<const Checkpoints> checkpoints) {
  for (auto& s : shards_) s->Committed(epoch, checkpoints);
}

void ProfileEngine::OnEveryShard(const std::function<void(Shard&, std::function<void()>)>& post) {
  std::mutex mu;
  std::condition_variable cv;
  size_t left = shards_.size();
  for (auto& s : shards_) {
    post(*s, [&] {
      std::lock_guard<std::mutex> lock(mu);
      if (--left == 0) cv.notify_one();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return left == 0; });
  identity_epoch_->fetch_add(1, std::memory_order_release);  // reader caches start afresh
}

void ProfileEngine::ForgetPartitions(const std::vector<uint32_t>& partitions) {
  if (partitions.empty()) return;
  OnEveryShard(
      [&](Shard& s, std::function<void()> done) { s.Forget(partitions, std::move(done)); });
}

void ProfileEngine::EpochAborted() {
  OnEveryShard([](Shard& s, std::function<void()> done) { s.Aborted(std::move(done)); });
}

namespace {

StatusOr<std::optional<int64_t>> StoredOffset(const KvStore& store, const std::string& key) {
  ASSIGN_OR_RETURN(auto stored, store.Get(Cf::kMeta, key));
  if (!stored || stored->size() != 8) return std::optional<int64_t>();
  return std::optional<int64_t>(static_cast<int64_t>(DecodeFixed64(stored->data())));
}

}  // namespace

StatusOr<std::optional<int64_t>> ProfileEngine::SourceOffset(uint32_t partition) const {
  return StoredOffset(store_, SourceOffsetKey(partition));
}

StatusOr<std::optional<int64_t>> ProfileEngine::InternalOffset(uint32_t partition) const {
  return StoredOffset(store_, InternalOffsetKey(partition));
}

void ProfileEngine::CommitInternalOffset(uint32_t partition, int64_t offset,
                                         AckGroup::Callback done) {
  ShardTask task;
  task.message = msg::InternalOffset{partition, offset};
  task.ack = std::make_shared<AckGroup>(1, std::move(done));
  std::vector<ShardTask> tasks;
  tasks.push_back(std::move(task));
  Send(ShardOfPartition(partition % options_.partitions), std::move(tasks));
}

Status ProfileEngine::SubmitMessages(std::vector<ShardMessage>&& messages,
                                     AckGroup::Callback done) {
  if (messages.empty()) {
    done(absl::OkStatus());
    return absl::OkStatus();
  }
  outstanding_.fetch_add(1);
  if (!accepting_.load()) {
    outstanding_.fetch_sub(1);
    return absl::UnavailableError("shutting down");
  }
  auto ack = std::make_shared<AckGroup>(static_cast<int>(messages.size()), std::move(done));
  std::vector<std::vector<ShardTask>> by_shard(shards_.size());
  for (auto& m : messages) {
    const auto s = static_cast<size_t>(ShardOfPartition(DestinationPartition(m)));
    by_shard[s].push_back(ShardTask{std::move(m), ack});
  }
  for (size_t s = 0; s < shards_.size(); s++) {
    if (!by_shard[s].empty()) Send(static_cast<int>(s), std::move(by_shard[s]));
  }
  outstanding_.fetch_sub(1);
  return absl::OkStatus();
}

void ProfileEngine::Sync() {
  OnEveryShard([](Shard& s, std::function<void()> done) { s.Post(std::move(done)); });
}

void ProfileEngine::SetOwned(const std::vector<uint32_t>& partitions, bool owned) {
  for (uint32_t p : partitions) owned_[p % options_.partitions].store(owned);
  // A shard may be in a batch that saw them owned: let every shard finish the one it is in.
  if (!owned && started_) Sync();
}

StatusOr<std::optional<Profile>> ProfileEngine::LookupById(std::string_view profile_id) const {
  std::string id(profile_id);
  ASSIGN_OR_RETURN(auto stored, FollowAliases(id));
  if (!stored) return std::optional<Profile>();
  ASSIGN_OR_RETURN(Profile profile, DecodeProfile(*stored));
  return std::optional<Profile>(std::move(profile));
}

StatusOr<std::optional<std::string>> ProfileEngine::FollowAliases(std::string& profile_id,
                                                                  std::string* elsewhere) const {
  auto here = [&] {
    const auto p = PartitionOfProfileId(profile_id);
    if (!elsewhere || !p || Local(*p)) return true;
    *elsewhere = profile_id;
    return false;
  };
  if (!here()) return std::optional<std::string>();
  ASSIGN_OR_RETURN(auto stored, store_.Get(Cf::kProfiles, profile_id));
  // A merged-away profile is an alias of its survivor (a chain after repeated merges).
  for (int hops = 0; stored && hops < 16; hops++) {
    auto survivor = DecodeAlias(*stored);
    if (!survivor) break;
    profile_id = *std::move(survivor);
    if (!here()) return std::optional<std::string>();
    ASSIGN_OR_RETURN(stored, store_.Get(Cf::kProfiles, profile_id));
  }
  return stored;
}

StatusOr<ProfileEngine::ProfileRead> ProfileEngine::ReadById(std::string_view profile_id) const {
  ProfileRead out;
  std::string id(profile_id);
  ASSIGN_OR_RETURN(auto stored, FollowAliases(id, &out.elsewhere));
  if (stored) {
    ASSIGN_OR_RETURN(Profile profile, DecodeProfile(*stored));
    out.profile = std::move(profile);
  }
  return out;
}

StatusOr<ProfileEngine::ProfileRead> ProfileEngine::Read(std::string_view type,
                                                         std::string_view value) const {
  const uint32_t partition = PartitionForKey(value, options_.partitions);
  ASSIGN_OR_RETURN(auto record, store_.Get(Cf::kIdentities, IdentityKey(partition, type, value)));
  if (!record) return ProfileRead{};
  return ReadById(DecodeIdentityRecord(*record).profile_id);
}

}  // namespace ecrm
