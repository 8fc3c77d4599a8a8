#include "profiler/shard.h"

#include <pthread.h>

#include <algorithm>
#include <limits>
#include <span>

#include "common/logging.h"
#include "common/murmur2.h"
#include "profiler/profile_codec.h"
#include "profiler/profile_merge.h"
#include "rules/rule_eval.h"
#include "store/keys.h"

namespace ecrm {
namespace {

uint32_t OwnerPartition(std::string_view profile_id) {
  const auto partition = PartitionOfProfileId(profile_id);
  ECRM_CHECK(partition.has_value());  // ids come from MakeProfileId
  return *partition;
}

// A merge's or refusal's linking identifier, "type:value", as (type, value).
std::optional<std::pair<std::string, std::string>> SplitLink(std::string_view link) {
  const auto colon = link.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  return std::make_pair(std::string(link.substr(0, colon)), std::string(link.substr(colon + 1)));
}

}  // namespace

std::string EncodePendingMerge(const ShardTask& absorb) {
  std::string out;
  for (const std::string* part :
       {&absorb.profile_id, &absorb.other_id, &absorb.link, &absorb.message_id, &absorb.payload}) {
    PutFixed64(&out, part->size());
    out.append(*part);
  }
  PutFixed64(&out, static_cast<uint64_t>(absorb.at));
  return out;
}

std::optional<ShardTask> DecodePendingMerge(std::string_view value) {
  ShardTask absorb;
  absorb.kind = ShardTask::Kind::kMergeAbsorb;
  for (std::string* part :
       {&absorb.profile_id, &absorb.other_id, &absorb.link, &absorb.message_id, &absorb.payload}) {
    if (value.size() < 8) return std::nullopt;
    const uint64_t n = DecodeFixed64(value.data());
    value.remove_prefix(8);
    if (n > value.size()) return std::nullopt;
    part->assign(value.substr(0, n));
    value.remove_prefix(n);
  }
  if (value.size() != 8) return std::nullopt;
  absorb.at = static_cast<TimeMs>(DecodeFixed64(value.data()));
  return absorb;
}

Shard::Shard(int index, KvStore& store, const ProfileUpdater& updater, ShardRouter& router,
             ProfilerMetrics& metrics, const ShardOptions& options)
    : index_(index),
      store_(store),
      updater_(updater),
      router_(router),
      metrics_(metrics),
      probe_(metrics.shard(index)),
      options_(options),
      cache_(options.cache_capacity),
      rng_(std::random_device{}() ^ (static_cast<uint64_t>(index) << 32)),
      batch_(store.NewBatch()) {}

Shard::~Shard() { Stop(); }

void Shard::Start() {
  thread_ = std::thread([this] {
    const std::string name = "ecrm-shard-" + std::to_string(index_);
    pthread_setname_np(pthread_self(), name.c_str());  // visible in top -H, perf and gdb
    Run();
  });
}

void Shard::Stop() {
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    stopping_ = true;
  }
  inbox_cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Shard::Enqueue(std::vector<ShardTask> tasks) {
  if (tasks.empty()) return;
  const size_t depth = depth_.fetch_add(tasks.size(), std::memory_order_relaxed) + tasks.size();
  probe_.queue_depth->Set(static_cast<double>(depth));
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    inbox_.push_back(std::move(tasks));  // O(1) for the sender: the shard concatenates
  }
  inbox_cv_.notify_one();
}

void Shard::Run() {
  KvStore::DisablePerfCountersOnThisThread();
  std::vector<std::vector<ShardTask>> chunks;
  std::vector<ShardTask*> taken;  // the tasks of all chunks in order, without moving them
  while (true) {
    {
      std::unique_lock<std::mutex> lock(inbox_mu_);
      inbox_cv_.wait(lock, [&] { return !inbox_.empty() || stopping_; });
      if (inbox_.empty()) break;  // stopping and drained
      chunks.swap(inbox_);
    }
    for (auto& c : chunks) {
      for (auto& t : c) taken.push_back(&t);
    }
    // Everything queued is taken at once and applied in group commits of at most
    // max_batch_tasks (taking a prefix off the inbox would shift the rest: quadratic in backlog).
    for (size_t done = 0; done < taken.size();) {
      const size_t n = std::min(options_.max_batch_tasks, taken.size() - done);
      depth_.fetch_sub(n, std::memory_order_relaxed);
      probe_.queue_depth->Set(static_cast<double>(depth_.load(std::memory_order_relaxed)));
      ProcessBatch(std::span<ShardTask* const>(taken.data() + done, n));
      router_.Finished(n);
      done += n;
    }
    taken.clear();
    chunks.clear();
  }
}

bool Shard::Owns(uint32_t partition) const { return router_.ShardOfPartition(partition) == index_; }

void Shard::Fail(const Status& status) {
  if (batch_error_.ok()) batch_error_ = status;
}

void Shard::ProcessBatch(std::span<ShardTask* const> tasks) {
  batch_.Clear();
  dirty_.clear();
  acks_.clear();
  outgoing_.clear();
  batch_error_ = absl::OkStatus();
  records_moved_ = false;
  batch_events_ = 0;
  rule_set_ = options_.rules ? options_.rules->Current() : nullptr;

  for (ShardTask* const next : tasks) {
    ShardTask& task = *next;
    if (batch_error_.ok()) {
      switch (task.kind) {
        case ShardTask::Kind::kEvent:
          HandleEvent(task);
          break;
        case ShardTask::Kind::kForwardedEvent:
          ApplyToProfile(task.profile_id, task.event, task.ack);
          break;
        case ShardTask::Kind::kClaimIdentity:
          ClaimIdentity(task);
          break;
        case ShardTask::Kind::kMergeCheck:
          MergeCheck(task);
          break;
        case ShardTask::Kind::kMergeSend:
          MergeSend(task);
          break;
        case ShardTask::Kind::kMergeAbsorb:
          MergeAbsorb(task);
          break;
        case ShardTask::Kind::kRepointIdentity:
          RepointIdentity(task);
          break;
        case ShardTask::Kind::kDeleteProfile:
          DeleteProfile(task);
          break;
        case ShardTask::Kind::kDeleteIdentity:
          DeleteIdentity(task);
          break;
        case ShardTask::Kind::kDeleteAlias:
          DeleteAlias(task);
          break;
        case ShardTask::Kind::kMergeDone:
          batch_.Delete(Cf::kMeta, PendingMergeKey(task.other_id));
          break;
        case ShardTask::Kind::kDetachIdentity:
          DetachIdentity(task);
          break;
        case ShardTask::Kind::kRecordRefusal:
          RecordRefusal(task);
          break;
        case ShardTask::Kind::kAttachIdentity:
          AttachIdentity(task.profile_id, task.id_type, task.id_value, task.ack);
          break;
        case ShardTask::Kind::kSourceOffset: {
          std::string value;
          PutFixed64(&value, static_cast<uint64_t>(task.offset));
          batch_.Put(Cf::kMeta, SourceOffsetKey(task.partition), value);
          break;
        }
      }
    }
    acks_.push_back(std::move(task.ack));
  }

  Status status = batch_error_;
  if (status.ok()) {
    // Keys go into the batch in key order: RocksDB then inserts each next to the previous one
    // (WriteOptions::memtable_insert_hint_per_batch) instead of searching its skip list from the
    // top, which was a quarter of a shard's time.
    dirty_sorted_.assign(dirty_.begin(), dirty_.end());
    std::sort(dirty_sorted_.begin(), dirty_sorted_.end());
    for (const auto& id : dirty_sorted_) {
      Profile* profile = cache_.Find(id);
      ECRM_CHECK(profile != nullptr);  // dirty profiles are never evicted within a batch
      EncodeProfile(*profile, &encode_buffer_);
      batch_.Put(Cf::kProfiles, id, encode_buffer_);
    }
    if (batch_.Count() > 0) status = store_.Write(batch_);
  }

  if (status.ok()) {
    probe_.profiles_written->Increment(static_cast<double>(dirty_.size()));
    if (batch_.Count() > 0) probe_.batches_written->Increment();
    probe_.batch_events->Observe(static_cast<double>(batch_events_));
    if (records_moved_) router_.IdentityRecordsMoved();
    // Hand cross-shard work over, one inbox append per destination.
    std::vector<std::vector<ShardTask>> by_shard;
    for (auto& out : outgoing_) {
      if (by_shard.size() <= static_cast<size_t>(out.shard)) by_shard.resize(out.shard + 1);
      by_shard[out.shard].push_back(std::move(out.task));
    }
    for (size_t s = 0; s < by_shard.size(); s++) {
      if (!by_shard[s].empty()) router_.Send(static_cast<int>(s), std::move(by_shard[s]));
    }
  } else {
    spdlog::error("shard {}: batch of {} tasks failed: {}", index_, tasks.size(),
                  status.ToString());
    probe_.write_errors->Increment();
    // Nothing of this batch is durable: forget what it changed in memory so the next read reloads.
    for (const auto& id : dirty_) cache_.Erase(id);
    identity_cache_.clear();
    aliases_.clear();
    for (auto& out : outgoing_) out.task.ack->Done(status);
  }
  for (auto& ack : acks_) {
    if (ack) ack->Done(status);
  }
  acks_.clear();
  cache_.Trim();
  probe_.profiles_cached->Set(static_cast<double>(cache_.size()));
}

void Shard::HandleEvent(ShardTask& task) {
  Event& event = task.event;
  const std::string key_type = event.RoutingIdentityType();
  const std::string identity_key = IdentityKey(task.partition, key_type, event.RoutingKey());
  auto resolved = ResolveIdentity(identity_key);
  if (!resolved.ok()) return Fail(resolved.status());
  std::string profile_id = DecodeIdentityRecord(*resolved).profile_id;
  if (profile_id.empty()) {
    // Ids sort by creation (event time, then a counter), so a merge can pick the older profile
    // from the ids alone.
    const auto created =
        static_cast<uint64_t>(std::clamp<TimeMs>(event.timestamp, 0, (1LL << 48) - 1));
    profile_id = MakeProfileId(task.partition, (created << 16) | (profiles_created_++ & 0xffff));
    // The device's own id is its profile's; another type routed by an untrusted event is a claim.
    const bool verified = key_type == "anonymous_id" || event.trusted ||
                          (key_type == "user_id" && event.user_hash_valid);
    const std::string record = EncodeIdentityRecord(profile_id, verified);
    batch_.Put(Cf::kIdentities, identity_key, record);
    identity_cache_[identity_key] = record;
    Profile fresh;
    fresh.id = profile_id;
    fresh.AddIdentity(key_type, event.RoutingKey());
    cache_.Insert(std::move(fresh));
    dirty_.insert(profile_id);
    metrics_.profiles_created().Increment();
  }
  const auto owner_partition = PartitionOfProfileId(profile_id);
  ECRM_CHECK(owner_partition.has_value());
  if (!Owns(*owner_partition)) {
    task.ack->Add(1);
    ShardTask forward;
    forward.kind = ShardTask::Kind::kForwardedEvent;
    forward.partition = *owner_partition;
    forward.event = std::move(event);
    forward.profile_id = std::move(profile_id);
    forward.ack = task.ack;
    outgoing_.push_back({router_.ShardOfPartition(*owner_partition), std::move(forward)});
    metrics_.events_forwarded().Increment();
    return;
  }
  ApplyToProfile(profile_id, event, task.ack);
}

void Shard::ApplyToProfile(const std::string& profile_id, Event& event,
                           const std::shared_ptr<AckGroup>& ack) {
  const auto partition = PartitionOfProfileId(profile_id);
  ECRM_CHECK(partition.has_value() && Owns(*partition));
  std::string alias_to;
  auto loaded = LoadProfile(profile_id, &alias_to);
  if (!loaded.ok()) return Fail(loaded.status());
  if (!alias_to.empty()) {  // merged into another profile: the event belongs there
    ShardTask forward;
    forward.kind = ShardTask::Kind::kForwardedEvent;
    forward.profile_id = alias_to;
    forward.event = std::move(event);
    forward.ack = ack;
    SendTo(OwnerPartition(alias_to), std::move(forward));
    metrics_.events_forwarded().Increment();
    return;
  }
  Profile* profile = *loaded;
  if (event.message_hash != 0 && SeenMessage(*profile, *partition, event)) {
    // A retry or replay. Its first attempt may have stopped before its claims were durable (a
    // crash between two shards' batches): claims are idempotent, so they are sent again.
    metrics_.events_duplicate().Increment();
    if (batch_error_.ok()) ClaimCarried(*profile, event, ack, /*retry=*/true);
    return;
  }
  if (!batch_error_.ok()) return;
  // Merge protection: an anonymous id that identifies (verifiably) as a second, different user goes
  // on to that user's profile instead of merging the two users.
  const auto user_ids = profile->identities.find("user_id");
  const bool user_verified = event.trusted || event.user_hash_valid;
  if (user_verified && !event.user_id.empty() && user_ids != profile->identities.end() &&
      !user_ids->second.empty() && !profile->HasIdentity("user_id", event.user_id) &&
      static_cast<int>(user_ids->second.size()) >= UserIdLimit()) {
    AddHistory(*profile, {event.timestamp, false, "", "user_id:" + event.user_id, event.message_id,
                          "a second user_id on this device: event sent to "
                          "that user's profile instead of merging"});
    dirty_.insert(profile_id);
    metrics_.merges_refused().Increment();
    ShardTask redirect;
    redirect.kind = ShardTask::Kind::kEvent;
    redirect.event = std::move(event);
    redirect.event.anonymous_id.clear();  // routed by the user id from here on
    redirect.partition = PartitionForKey(redirect.event.user_id, router_.partition_count());
    redirect.ack = ack;
    SendTo(redirect.partition, std::move(redirect));
    return;
  }
  updater_.Apply(*profile, event);
  if (event.message_hash != 0) {
    profile->RememberMessage(event.message_hash, event.received_at, options_.dedup_window_ms);
  }
  if (rule_set_ && rule_set_->size() > 0) {
    ProfileRuleTarget target(event, *profile, updater_, rule_scratch_);
    // Time the rules of one event in 64 (reading the clock per rule would cost more than a rule).
    ApplyRules(*rule_set_, EventTypeName(event.type), event.event, target,
               (rule_events_++ & 63) == 0);
  }
  dirty_.insert(profile_id);
  batch_events_++;
  metrics_.events_applied().Increment();
  ClaimCarried(*profile, event, ack);
}

void Shard::ClaimCarried(Profile& profile, const Event& event, const std::shared_ptr<AckGroup>& ack,
                         bool retry) {
  struct Carried {
    const char* type;
    const std::string* value;
    bool link_only;
  };
  const Carried carried[] = {{"anonymous_id", &event.anonymous_id, false},
                             {"user_id", &event.user_id, false},
                             {"email", &event.email, false},
                             // alias: previousId was an anonymous id or a user id
                             {"anonymous_id", &event.previous_id, false},
                             {"user_id", &event.previous_id, true}};
  auto claim_if_new = [&](const char* type, const std::string* value, bool link_only) {
    if (value->empty() || (!retry && profile.HasIdentity(type, *value))) return;
    const auto user_ids = profile.identities.find("user_id");
    const bool holds_user = user_ids != profile.identities.end() && !user_ids->second.empty() &&
                            !profile.HasIdentity("user_id", *value);
    // Only a server key, the import channel, or a browser event's userId with a valid user hash
    // verify a claim (docs/identity.md#trusted-identity).
    const bool verified =
        event.trusted || (event.user_hash_valid && !link_only && value == &event.user_id);
    if (!verified && holds_user && std::strcmp(type, "user_id") == 0 &&
        static_cast<int>(user_ids->second.size()) >= UserIdLimit()) {
      // An unverified second user id never joins a profile that has one.
      metrics_.claims_refused().Increment();
      ShardTask refusal;
      refusal.kind = ShardTask::Kind::kRecordRefusal;
      refusal.profile_id = profile.id;
      refusal.link = std::string(type) + ":" + *value;
      refusal.at = event.timestamp;
      refusal.message_id = event.message_id;
      refusal.reason = "an unverified claim of a second user_id";
      RecordRefusal(refusal);
      return;
    }
    ShardTask claim;
    claim.kind = ShardTask::Kind::kClaimIdentity;
    claim.partition = PartitionForKey(*value, router_.partition_count());
    claim.profile_id = profile.id;
    claim.id_type = type;
    claim.id_value = *value;
    claim.at = event.timestamp;
    claim.message_id = event.message_id;
    claim.explicit_link = event.type == EventType::kAlias;
    claim.link_only = link_only;
    claim.verified = verified;
    claim.ack = ack;
    if (!link_only && options_.identifier_limits.contains(type) &&
        profile.AddIdentity(type, *value)) {
      dirty_.insert(profile.id);
    }
    if (Owns(claim.partition)) {
      ClaimIdentity(claim);
    } else {
      SendTo(claim.partition, std::move(claim));
    }
  };
  for (const auto& [type, value, link_only] : carried) claim_if_new(type, value, link_only);
  for (const auto& [type, value] : event.identifiers) claim_if_new(type.c_str(), &value, false);
}

int Shard::UserIdLimit() const {
  const auto it = options_.identifier_limits.find("user_id");
  return it == options_.identifier_limits.end() ? std::numeric_limits<int>::max() : it->second;
}

void Shard::SendTo(uint32_t partition, ShardTask&& task) {
  task.ack->Add(1);
  outgoing_.push_back({router_.ShardOfPartition(partition), std::move(task)});
}

void Shard::ClaimIdentity(ShardTask& task) {
  const std::string identity_key = IdentityKey(task.partition, task.id_type, task.id_value);
  auto resolved = ResolveIdentity(identity_key);
  if (!resolved.ok()) return Fail(resolved.status());
  const IdentityRecord held = DecodeIdentityRecord(*resolved);
  if (!held.profile_id.empty() && held.profile_id != task.profile_id) {
    if (task.verified && held.verified) {
      // Owned by another profile: the two are one person, unless merge protection says no.
      metrics_.identity_conflicts().Increment();
      task.link = task.id_type + ":" + task.id_value;
      StartMerge(task.profile_id, held.profile_id, task);
      return;
    }
    if (!task.verified) {
      // An unverified claim never joins two profiles: the holder keeps the identifier.
      ShardTask refusal;
      refusal.kind = ShardTask::Kind::kRecordRefusal;
      refusal.profile_id = task.profile_id;
      refusal.other_id = held.profile_id;
      refusal.link = task.id_type + ":" + task.id_value;
      refusal.at = task.at;
      refusal.message_id = task.message_id;
      refusal.reason = "an unverified claim of an identifier that another profile holds";
      refusal.ack = task.ack;
      SendTo(OwnerPartition(task.profile_id), std::move(refusal));
      return;
    }
    if (task.link_only) return;
    // A verified claim of an identifier that another profile holds only by an unverified claim
    // (squatting): the identifier goes to the verified claimant, the squatter keeps its history.
    metrics_.claims_taken_over().Increment();
    records_moved_ = true;
    ShardTask detach;
    detach.kind = ShardTask::Kind::kDetachIdentity;
    detach.profile_id = held.profile_id;
    detach.id_type = task.id_type;
    detach.id_value = task.id_value;
    detach.other_id = task.profile_id;
    detach.at = task.at;
    detach.message_id = task.message_id;
    detach.ack = task.ack;
    SendTo(OwnerPartition(held.profile_id), std::move(detach));
  } else if (task.link_only) {
    return;
  }
  if (held.profile_id != task.profile_id || (task.verified && !held.verified)) {
    const std::string record = EncodeIdentityRecord(task.profile_id, task.verified);
    batch_.Put(Cf::kIdentities, identity_key, record);
    identity_cache_[identity_key] = record;
  }
  // Also when the record already points here: the attach is idempotent and repairs a profile whose
  // attach was lost with a failed batch.
  const auto owner_partition = PartitionOfProfileId(task.profile_id);
  ECRM_CHECK(owner_partition.has_value());
  if (Owns(*owner_partition)) {
    AttachIdentity(task.profile_id, task.id_type, task.id_value, task.ack);
    return;
  }
  ShardTask attach;
  attach.kind = ShardTask::Kind::kAttachIdentity;
  attach.partition = *owner_partition;
  attach.profile_id = task.profile_id;
  attach.id_type = task.id_type;
  attach.id_value = task.id_value;
  attach.ack = task.ack;
  SendTo(*owner_partition, std::move(attach));
}

void Shard::DetachIdentity(ShardTask& task) {
  auto loaded = LoadOrFollow(task);
  if (!loaded.ok()) return Fail(loaded.status());
  if (*loaded == nullptr) return;
  Profile& p = **loaded;
  if (!p.RemoveIdentity(task.id_type, task.id_value)) return;
  if (!task.other_id.empty()) {  // a takeover (a refused merge has its history entry already)
    AddHistory(p, {task.at, false, task.other_id, task.id_type + ":" + task.id_value,
                   task.message_id, "held by an unverified claim; given to a verified one"});
  }
  dirty_.insert(task.profile_id);
}

void Shard::RecordRefusal(ShardTask& task) {
  auto loaded = LoadOrFollow(task);
  if (!loaded.ok()) return Fail(loaded.status());
  if (*loaded == nullptr) return;
  Profile& p = **loaded;
  // Not a refusal if the holder was merged into this profile meanwhile.
  if (!task.other_id.empty() &&
      std::find(p.merged_ids.begin(), p.merged_ids.end(), task.other_id) != p.merged_ids.end()) {
    return;
  }
  if (!task.other_id.empty()) {
    metrics_.claims_refused().Increment();
    // Listed when it was claimed (a limited type): the holder keeps it.
    if (const auto link = SplitLink(task.link)) p.RemoveIdentity(link->first, link->second);
  }
  AddHistory(p, {task.at, false, task.other_id, task.link, task.message_id, task.reason});
  dirty_.insert(task.profile_id);
}

// Profile ids sort by creation (event time, then a per-shard counter): the older one survives
// (or the newer, with --merge-survivor newest).
void Shard::StartMerge(const std::string& a, const std::string& b, const ShardTask& cause) {
  if (a == b) return;
  const bool a_older = a.substr(5) != b.substr(5) ? a.substr(5) < b.substr(5) : a < b;
  const bool a_survives = a_older != options_.newer_survives;
  ShardTask check;
  check.kind = ShardTask::Kind::kMergeCheck;
  check.profile_id = a_survives ? a : b;
  check.other_id = a_survives ? b : a;
  check.link = cause.link;
  check.at = cause.at;
  check.message_id = cause.message_id;
  check.explicit_link = cause.explicit_link;
  check.claimer = cause.claimer.empty() ? a : cause.claimer;
  check.ack = cause.ack;
  SendTo(OwnerPartition(check.profile_id), std::move(check));
}

void Shard::MergeCheck(ShardTask& task) {
  std::string alias_to;
  auto survivor = LoadProfile(task.profile_id, &alias_to);
  if (!survivor.ok()) return Fail(survivor.status());
  if (!alias_to.empty()) return StartMerge(alias_to, task.other_id, task);
  ShardTask send = task;  // a copy: `task` keeps its acknowledgement for this batch
  // The survivor's values of every limited type, as "type:value", for the loser's shard to check.
  for (const auto& [type, limit] : options_.identifier_limits) {
    const auto values = (*survivor)->identities.find(type);
    if (values == (*survivor)->identities.end()) continue;
    for (const auto& v : values->second) send.user_ids.push_back(type + ":" + v);
  }
  send.kind = ShardTask::Kind::kMergeSend;
  SendTo(OwnerPartition(send.other_id), std::move(send));
}

void Shard::MergeSend(ShardTask& task) {
  const std::string loser_id = task.other_id;
  std::string alias_to;
  auto loaded = LoadProfile(loser_id, &alias_to);
  if (!loaded.ok()) return Fail(loaded.status());
  if (!alias_to.empty()) {
    if (alias_to != task.profile_id) {
      StartMerge(task.profile_id, alias_to, task);  // being merged with its survivor
      return;
    }
    // Merged into the survivor already. The claim that led here may be a retry whose first
    // attempt's attach was lost in a crash, with the record still naming the merged-away id: the
    // survivor lists the linking identifier, and its record leads there directly.
    if (auto link = SplitLink(task.link)) {
      ShardTask attach;
      attach.kind = ShardTask::Kind::kAttachIdentity;
      attach.profile_id = task.profile_id;
      attach.id_type = std::move(link->first);
      attach.id_value = std::move(link->second);
      attach.ack = task.ack;
      ShardTask repoint = attach;
      repoint.kind = ShardTask::Kind::kRepointIdentity;
      repoint.partition = PartitionForKey(repoint.id_value, router_.partition_count());
      repoint.other_id = loser_id;
      SendTo(OwnerPartition(attach.profile_id), std::move(attach));
      SendTo(repoint.partition, std::move(repoint));
    }
    return;
  }
  Profile* loser = *loaded;
  // Merge protection: no identifier type over its limit in the merged profile, unless an alias
  // call linked the two explicitly.
  for (const auto& [type, limit] : options_.identifier_limits) {
    if (task.explicit_link) break;
    std::vector<std::string> values = task.user_ids;  // "type:value" of the survivor
    if (auto it = loser->identities.find(type); it != loser->identities.end()) {
      for (const auto& v : it->second) {
        const std::string key = type + ":" + v;
        if (std::find(values.begin(), values.end(), key) == values.end()) values.push_back(key);
      }
    }
    const auto count = std::count_if(values.begin(), values.end(), [&, t = type](const auto& v) {
      return v.size() > t.size() && v.compare(0, t.size(), t) == 0 && v[t.size()] == ':';
    });
    if (count > limit) {
      AddHistory(*loser, {task.at, false, task.profile_id, task.link, task.message_id,
                          "both profiles have a different " + type});
      dirty_.insert(loser_id);
      metrics_.merges_refused().Increment();
      // The claimer listed the linking identifier when it claimed it; it stays with its holder.
      if (auto link = SplitLink(task.link)) {
        ShardTask detach;
        detach.kind = ShardTask::Kind::kDetachIdentity;
        detach.profile_id = task.claimer;
        detach.id_type = std::move(link->first);
        detach.id_value = std::move(link->second);
        detach.at = task.at;
        detach.message_id = task.message_id;
        detach.ack = task.ack;
        SendTo(OwnerPartition(detach.profile_id), std::move(detach));
      }
      return;
    }
  }
  ShardTask absorb;
  absorb.kind = ShardTask::Kind::kMergeAbsorb;
  absorb.profile_id = task.profile_id;
  absorb.other_id = loser_id;
  absorb.link = task.link;
  absorb.at = task.at;
  absorb.message_id = task.message_id;
  absorb.ack = task.ack;
  EncodeProfile(*loser, &absorb.payload);
  // Every identifier of the loser now leads to the survivor.
  for (const auto& [type, values] : loser->identities) {
    for (const auto& value : values) {
      ShardTask repoint;
      repoint.kind = ShardTask::Kind::kRepointIdentity;
      repoint.partition = PartitionForKey(value, router_.partition_count());
      repoint.id_type = type;
      repoint.id_value = value;
      repoint.profile_id = task.profile_id;
      repoint.other_id = loser_id;
      repoint.ack = task.ack;
      SendTo(repoint.partition, std::move(repoint));
    }
  }
  // The loser becomes an alias: later events and reads by its id land on the survivor. Until the
  // survivor has absorbed it, its content is also kept in a pending record in the same batch, so a
  // crash between the two shards' batches resumes the merge instead of losing the loser's history
  // (ProfileEngine::Start re-sends the absorb).
  batch_.Put(Cf::kProfiles, loser_id, EncodeAlias(task.profile_id));
  batch_.Put(Cf::kMeta, PendingMergeKey(loser_id), EncodePendingMerge(absorb));
  dirty_.erase(loser_id);
  cache_.Erase(loser_id);
  aliases_[loser_id] = task.profile_id;
  metrics_.merges().Increment();
  SendTo(OwnerPartition(task.profile_id), std::move(absorb));
}

void Shard::MergeAbsorb(ShardTask& task) {
  auto loaded = LoadOrFollow(task);  // the survivor may have been merged meanwhile
  if (!loaded.ok()) return Fail(loaded.status());
  if (*loaded == nullptr) return;
  Profile& survivor = **loaded;
  // Absorbed already (the absorb was re-sent after a crash): do not count the loser twice.
  if (std::find(survivor.merged_ids.begin(), survivor.merged_ids.end(), task.other_id) ==
      survivor.merged_ids.end()) {
    auto absorbed = DecodeProfile(task.payload);
    ECRM_CHECK(absorbed.ok());  // encoded by a shard of this process (or its pending record)
    MergeProfiles(survivor, *absorbed, updater_);
    AddHistory(survivor, {task.at, true, task.other_id, task.link, task.message_id, ""});
    RerunRules(survivor, task.at);
    dirty_.insert(task.profile_id);
  }
  // Bookkeeping only: the merge is durable now, so the request is not held up for it. If it is
  // lost in a crash, the pending record re-sends an absorb that changes nothing.
  ShardTask done;
  done.kind = ShardTask::Kind::kMergeDone;
  done.other_id = task.other_id;
  done.ack = std::make_shared<AckGroup>(0, [](Status) {});
  SendTo(OwnerPartition(task.other_id), std::move(done));
}

void Shard::RerunRules(Profile& profile, TimeMs at) {
  if (!rule_set_ || rule_set_->size() == 0) return;
  // A merge is an event of type "merge" at the linking event's time: rules that run on every event
  // or on merges see the merged profile at once.
  Event merge;
  merge.type = EventType::kMerge;
  merge.timestamp = at;
  merge.received_at = at;
  ProfileRuleTarget target(merge, profile, updater_, rule_scratch_);
  ApplyRules(*rule_set_, EventTypeName(merge.type), merge.event, target, false);
}

void Shard::RepointIdentity(ShardTask& task) {
  const std::string key = IdentityKey(task.partition, task.id_type, task.id_value);
  auto resolved = ResolveIdentity(key);
  if (!resolved.ok()) return Fail(resolved.status());
  const IdentityRecord held = DecodeIdentityRecord(*resolved);
  if (!held.profile_id.empty() && held.profile_id != task.other_id) return;  // moved on meanwhile
  const std::string record = EncodeIdentityRecord(task.profile_id, held.verified);
  batch_.Put(Cf::kIdentities, key, record);
  identity_cache_[key] = record;
}

void Shard::DeleteProfile(ShardTask& task) {
  auto loaded = LoadOrFollow(task);
  if (!loaded.ok()) return Fail(loaded.status());
  if (*loaded == nullptr) return;
  const Profile& p = **loaded;
  // Identifier records are dropped only if they still lead to this profile or one merged into it.
  std::vector<std::string> ids = p.merged_ids;
  ids.push_back(p.id);
  for (const auto& [type, values] : p.identities) {
    for (const auto& value : values) {
      ShardTask drop;
      drop.kind = ShardTask::Kind::kDeleteIdentity;
      drop.partition = PartitionForKey(value, router_.partition_count());
      drop.id_type = type;
      drop.id_value = value;
      drop.user_ids = ids;
      drop.ack = task.ack;
      SendTo(drop.partition, std::move(drop));
    }
  }
  for (const auto& merged : p.merged_ids) {
    ShardTask drop;
    drop.kind = ShardTask::Kind::kDeleteAlias;
    drop.profile_id = merged;
    drop.ack = task.ack;
    SendTo(OwnerPartition(merged), std::move(drop));
  }
  batch_.Delete(Cf::kProfiles, task.profile_id);
  dirty_.erase(task.profile_id);
  cache_.Erase(task.profile_id);
  metrics_.profiles_deleted().Increment();
}

void Shard::DeleteIdentity(ShardTask& task) {
  const std::string key = IdentityKey(task.partition, task.id_type, task.id_value);
  auto resolved = ResolveIdentity(key);
  if (!resolved.ok()) return Fail(resolved.status());
  const std::string holder = DecodeIdentityRecord(*resolved).profile_id;
  if (std::find(task.user_ids.begin(), task.user_ids.end(), holder) == task.user_ids.end()) {
    return;  // leads elsewhere now
  }
  batch_.Delete(Cf::kIdentities, key);
  identity_cache_.erase(key);
}

void Shard::DeleteAlias(ShardTask& task) {
  batch_.Delete(Cf::kProfiles, task.profile_id);
  batch_.Delete(Cf::kMeta, PendingMergeKey(task.profile_id));
  aliases_.erase(task.profile_id);
  cache_.Erase(task.profile_id);
  dirty_.erase(task.profile_id);
}

void Shard::AttachIdentity(const std::string& profile_id, const std::string& type,
                           const std::string& value, const std::shared_ptr<AckGroup>& ack) {
  std::string alias_to;
  auto loaded = LoadProfile(profile_id, &alias_to);
  if (!loaded.ok()) return Fail(loaded.status());
  if (!alias_to.empty()) {
    // Merged meanwhile: the survivor lists the identifier (its record names the merged-away id,
    // whose alias leads there).
    const auto owner = PartitionOfProfileId(alias_to);
    if (Owns(*owner)) return AttachIdentity(alias_to, type, value, ack);
    ShardTask attach;
    attach.kind = ShardTask::Kind::kAttachIdentity;
    attach.profile_id = alias_to;
    attach.id_type = type;
    attach.id_value = value;
    attach.ack = ack;  // the claim's request is answered once the survivor lists it
    SendTo(*owner, std::move(attach));
    return;
  }
  if ((*loaded)->AddIdentity(type, value)) {
    dirty_.insert(profile_id);
    metrics_.identities_attached().Increment();
  }
}

StatusOr<std::string> Shard::ResolveIdentity(const std::string& key) {
  const auto it = identity_cache_.find(key);
  if (it != identity_cache_.end()) return it->second;
  ASSIGN_OR_RETURN(auto stored, store_.Get(Cf::kIdentities, key));
  if (!stored) return std::string();
  if (identity_cache_.size() >= options_.identity_cache_capacity) identity_cache_.clear();
  identity_cache_[key] = *stored;
  return *std::move(stored);
}

StatusOr<Profile*> Shard::LoadOrFollow(const ShardTask& task) {
  std::string alias_to;
  auto loaded = LoadProfile(task.profile_id, &alias_to);
  if (!loaded.ok() || alias_to.empty()) return loaded;
  ShardTask follow = task;
  follow.profile_id = alias_to;
  SendTo(OwnerPartition(alias_to), std::move(follow));
  return nullptr;
}

StatusOr<Profile*> Shard::LoadProfile(const std::string& profile_id, std::string* alias_to) {
  if (Profile* cached = cache_.Find(profile_id)) return cached;
  if (auto it = aliases_.find(profile_id); it != aliases_.end()) {
    ECRM_CHECK(alias_to != nullptr);  // every caller of a possibly merged id handles aliases
    *alias_to = it->second;
    return nullptr;
  }
  ASSIGN_OR_RETURN(auto stored, store_.Get(Cf::kProfiles, profile_id));
  if (stored) {
    if (auto survivor = DecodeAlias(*stored)) {
      ECRM_CHECK(alias_to != nullptr);
      if (aliases_.size() >= options_.identity_cache_capacity) aliases_.clear();
      aliases_[profile_id] = *survivor;
      *alias_to = *std::move(survivor);
      return nullptr;
    }
  }
  if (!stored) {
    Profile fresh;
    fresh.id = profile_id;
    return cache_.Insert(std::move(fresh));
  }
  auto decoded = DecodeProfile(*stored);
  if (!decoded.ok()) {
    // Quarantine: keep the bad bytes for forensics and start the profile afresh, so one corrupt
    // value cannot block every batch it lands in.
    metrics_.corrupt_profiles().Increment();
    spdlog::error("shard {}: profile {} is unreadable ({}); quarantined and restarted", index_,
                  profile_id, decoded.status().ToString());
    batch_.Put(Cf::kMeta, std::string(kMetaCorruptPrefix) + profile_id, *stored);
    Profile fresh;
    fresh.id = profile_id;
    dirty_.insert(profile_id);
    return cache_.Insert(std::move(fresh));
  }
  return cache_.Insert(*std::move(decoded));
}

bool Shard::SeenMessage(const Profile& profile, uint32_t partition, const Event& event) {
  if (profile.SawMessage(event.message_hash)) return true;
  if (event.received_at >= options_.legacy_dedup_until_ms) return false;
  // Within one dedup window of an upgrade: the event may have been recorded in the dedup CF.
  const std::string legacy =
      options_.legacy_dedup_schema == 1
          ? LegacyDedupKey(partition, event.message_id)
          : std::string(AsView(DedupKey(partition, event.client_time, event.message_id)));
  auto stored = store_.Get(Cf::kDedup, legacy);
  if (!stored.ok()) {
    Fail(stored.status());
    return false;
  }
  return stored->has_value();
}

}  // namespace ecrm
