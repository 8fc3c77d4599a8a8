#include "profiler/shard.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <span>
#include <thread>

#include "common/logging.h"
#include "common/murmur2.h"
#include "profiler/profile_codec.h"
#include "profiler/profile_merge.h"
#include "rules/rule_eval.h"
#include "store/keys.h"

namespace ecrm {

Shard::Shard(int index, KvStore& store, const ProfileUpdater& updater, ShardRouter& router,
             ProfilerMetrics& metrics, const ShardOptions& options)
    : index_(index),
      store_(store),
      updater_(updater),
      router_(router),
      metrics_(metrics),
      probe_(metrics.shard(index)),
      options_(options),
      cache_(options.cache_capacity, options.cache_bytes),
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

void Shard::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    control_.push_back(std::move(fn));
  }
  inbox_cv_.notify_one();
}

void Shard::Committed(uint64_t epoch, std::shared_ptr<const Checkpoints> checkpoints) {
  Post(
      [this, epoch, checkpoints = std::move(checkpoints)] { WriteCommitted(epoch, *checkpoints); });
}

void Shard::Aborted(std::function<void()> done) {
  Post([this, done = std::move(done)] {
    for (auto& pb : pending_) {
      for (auto& ack : pb.acks) {
        if (ack) ack->Done(absl::AbortedError("the changelog epoch was aborted"));
      }
    }
    pending_.clear();
    for (auto& overlay : overlay_) overlay.clear();
    cache_.EraseIf([](const std::string&) { return true; });
    identity_cache_.clear();
    aliases_.clear();
    probe_.profiles_cached->Set(0);
    probe_.cache_bytes->Set(0);
    done();
  });
}

void Shard::Forget(std::vector<uint32_t> partitions, std::function<void()> done) {
  Post([this, partitions = std::move(partitions), done = std::move(done)] {
    const absl::flat_hash_set<uint32_t> gone(partitions.begin(), partitions.end());
    cache_.EraseIf([&](const std::string& id) {
      const auto p = PartitionOfProfileId(id);
      return p && gone.contains(*p);
    });
    // Identity records and aliases of other partitions may point into these: start afresh.
    identity_cache_.clear();
    aliases_.clear();
    probe_.profiles_cached->Set(static_cast<double>(cache_.size()));
    probe_.cache_bytes->Set(static_cast<double>(cache_.bytes()));
    done();
  });
}

void Shard::Run() {
  KvStore::DisablePerfCountersOnThisThread();
  std::vector<std::vector<ShardTask>> chunks;
  std::vector<std::function<void()>> controls;
  std::vector<ShardTask*> taken;  // the tasks of all chunks in order, without moving them
  while (true) {
    {
      std::unique_lock<std::mutex> lock(inbox_mu_);
      inbox_cv_.wait(lock, [&] { return !inbox_.empty() || !control_.empty() || stopping_; });
      if (inbox_.empty() && control_.empty()) break;  // stopping and drained
      chunks.swap(inbox_);
      controls.swap(control_);
    }
    for (auto& fn : controls) fn();
    controls.clear();
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
  // Epochs that never committed: nothing of them is durable.
  for (auto& pb : pending_) {
    for (auto& ack : pb.acks) {
      if (ack) ack->Done(absl::UnavailableError("stopped before the changelog committed"));
    }
  }
  pending_.clear();
}

bool Shard::Owns(uint32_t partition) const {
  return router_.ShardOfPartition(partition) == index_ && router_.Local(partition);
}

void Shard::Fail(const Status& status) {
  if (batch_error_.ok()) batch_error_ = status;
}

void Shard::ProcessBatch(std::span<ShardTask* const> tasks) {
  batch_.Clear();
  dirty_.clear();
  acks_.clear();
  outgoing_.clear();
  outbound_.clear();
  outbound_acks_.clear();
  batch_error_ = absl::OkStatus();
  records_moved_ = false;
  batch_events_ = 0;
  rule_set_ = options_.rules ? options_.rules->Current() : nullptr;

  for (ShardTask* const next : tasks) {
    ShardTask& task = *next;
    if (batch_error_.ok() && options_.state_log &&
        !router_.Local(DestinationPartition(task.message))) {
      // Another instance owns its partition now (it moved while the task was queued, or the task
      // came from this instance's HTTP side or a resumed merge): relay it there.
      Relay(std::move(task));
    } else if (batch_error_.ok()) {
      const Ack& ack = task.ack;
      std::visit(
          [&](auto& m) {
            using M = std::decay_t<decltype(m)>;
            if constexpr (std::is_same_v<M, msg::RouteEvent>) {
              HandleEvent(m, ack);
            } else if constexpr (std::is_same_v<M, msg::ApplyEvent>) {
              ApplyToProfile(m.profile_id, m.event, ack);
            } else if constexpr (std::is_same_v<M, msg::ClaimIdentity>) {
              ClaimIdentity(m, ack);
            } else if constexpr (std::is_same_v<M, msg::AttachIdentity>) {
              AttachIdentity(m.profile_id, m.type, m.value, ack);
            } else if constexpr (std::is_same_v<M, msg::SourceOffset>) {
              std::string value;
              PutFixed64(&value, static_cast<uint64_t>(m.offset));
              batch_.Put(Cf::kMeta, SourceOffsetKey(m.partition), value);
            } else if constexpr (std::is_same_v<M, msg::InternalOffset>) {
              std::string value;
              PutFixed64(&value, static_cast<uint64_t>(m.offset));
              batch_.Put(Cf::kMeta, InternalOffsetKey(m.partition), value);
            } else if constexpr (std::is_same_v<M, msg::MergeCheck>) {
              MergeCheck(m, ack);
            } else if constexpr (std::is_same_v<M, msg::MergeSend>) {
              MergeSend(m, ack);
            } else if constexpr (std::is_same_v<M, msg::MergeAbsorb>) {
              MergeAbsorb(m, ack);
            } else if constexpr (std::is_same_v<M, msg::MergeDone>) {
              batch_.Delete(Cf::kMeta, PendingMergeKey(m.loser));
            } else if constexpr (std::is_same_v<M, msg::RepointIdentity>) {
              RepointIdentity(m);
            } else if constexpr (std::is_same_v<M, msg::DetachIdentity>) {
              DetachIdentity(m, ack);
            } else if constexpr (std::is_same_v<M, msg::RecordRefusal>) {
              RecordRefusal(m, ack);
            } else if constexpr (std::is_same_v<M, msg::DeleteProfile>) {
              DeleteProfile(m, ack);
            } else if constexpr (std::is_same_v<M, msg::DeleteIdentity>) {
              DeleteIdentity(m);
            } else {
              static_assert(std::is_same_v<M, msg::DeleteAlias>);
              DeleteAlias(m);
            }
          },
          task.message);
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
      cache_.Reweigh(id);
    }
    if (options_.state_log) {
      if (batch_.Count() > 0 || !outbound_.empty()) status = AppendToLog();
    } else if (batch_.Count() > 0) {
      status = store_.Write(batch_);
    }
  }

  if (status.ok()) {
    probe_.profiles_written->Increment(static_cast<double>(dirty_.size()));
    if (batch_.Count() > 0) probe_.batches_written->Increment();
    probe_.batch_events->Observe(static_cast<double>(batch_events_));
    if (records_moved_ && !options_.state_log) router_.IdentityRecordsMoved();
    // Hand cross-shard work over, one inbox append per destination.
    std::vector<std::vector<ShardTask>> by_shard;
    for (auto& out : outgoing_) {
      if (by_shard.size() <= static_cast<size_t>(out.shard)) by_shard.resize(out.shard + 1);
      by_shard[out.shard].push_back(std::move(out.task));
    }
    for (size_t s = 0; s < by_shard.size(); s++) {
      if (!by_shard[s].empty()) router_.Send(static_cast<int>(s), std::move(by_shard[s]));
    }
    // Messages for other instances are done when their epoch commits, as this batch is.
    if (!outbound_.empty()) {
      metrics_.messages_outbound().Increment(static_cast<double>(outbound_.size()));
    }
    acks_.insert(acks_.end(), std::make_move_iterator(outbound_acks_.begin()),
                 std::make_move_iterator(outbound_acks_.end()));
  } else {
    spdlog::error("shard {}: batch of {} tasks failed: {}", index_, tasks.size(),
                  status.ToString());
    probe_.write_errors->Increment();
    // Nothing of this batch is durable: forget what it changed in memory so the next read reloads.
    for (const auto& id : dirty_) cache_.Erase(id);
    identity_cache_.clear();
    aliases_.clear();
    for (auto& out : outgoing_) out.task.ack->Done(status);
    for (auto& ack : outbound_acks_) ack->Done(status);
  }
  if (status.ok() && options_.state_log && !pending_.empty()) {
    // Acknowledged with the epoch: a batch that wrote nothing (duplicates, say) may still depend on
    // the writes of earlier, uncommitted ones.
    auto& last = pending_.back().acks;
    last.insert(last.end(), std::make_move_iterator(acks_.begin()),
                std::make_move_iterator(acks_.end()));
  } else {
    for (auto& ack : acks_) {
      if (ack) ack->Done(status);
    }
  }
  acks_.clear();
  cache_.Trim();
  probe_.profiles_cached->Set(static_cast<double>(cache_.size()));
  probe_.cache_bytes->Set(static_cast<double>(cache_.bytes()));
}

Status Shard::AppendToLog() {
  ASSIGN_OR_RETURN(const uint64_t epoch, options_.state_log->Append(batch_, outbound_));
  batch_.ForEach([&](Cf cf, std::string_view key, const std::string_view* value) {
    if (cf != Cf::kProfiles && cf != Cf::kIdentities) return;
    auto& slot = overlay_[cf == Cf::kProfiles ? 0 : 1][std::string(key)];
    slot.epoch = epoch;
    if (value) {
      slot.value.emplace(*value);
    } else {
      slot.value.reset();
    }
  });
  pending_.push_back({epoch, std::move(batch_), {}, records_moved_});
  batch_ = store_.NewBatch();
  return absl::OkStatus();
}

void Shard::WriteCommitted(uint64_t epoch, const Checkpoints& checkpoints) {
  if (epoch <= written_epoch_) return;
  bool moved = false;
  std::vector<Ack> acks;
  auto write = [&](WriteBatch& batch) {
    // The epoch is durable in the log already: a failing local write (a full disk) is retried
    // until it succeeds, since every later read of this shard depends on it.
    for (int attempt = 0;; attempt++) {
      const Status s = store_.Write(batch);
      if (s.ok()) return;
      probe_.write_errors->Increment();
      if (attempt == 0) {
        spdlog::error("shard {}: committed epoch {} not written ({}); retrying", index_, epoch,
                      s.ToString());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  };
  while (!pending_.empty() && pending_.front().epoch <= epoch) {
    auto& pb = pending_.front();
    write(pb.batch);
    moved |= pb.records_moved;
    acks.insert(acks.end(), std::make_move_iterator(pb.acks.begin()),
                std::make_move_iterator(pb.acks.end()));
    pending_.pop_front();
  }
  WriteBatch marks = store_.NewBatch();
  for (const auto& [partition, offset] : checkpoints) {
    if (router_.ShardOfPartition(partition) != index_) continue;
    std::string value;
    PutFixed64(&value, static_cast<uint64_t>(offset));
    marks.Put(Cf::kMeta, ChangelogCheckpointKey(partition), value);
  }
  if (marks.Count() > 0) write(marks);
  written_epoch_ = epoch;
  for (auto& overlay : overlay_) {
    if (pending_.empty()) {
      overlay.clear();
    } else {
      for (auto it = overlay.begin(); it != overlay.end();) {
        if (it->second.epoch <= epoch) {
          overlay.erase(it++);
        } else {
          ++it;
        }
      }
    }
  }
  if (moved) router_.IdentityRecordsMoved();
  for (auto& ack : acks) {
    if (ack) ack->Done(absl::OkStatus());
  }
}

StatusOr<std::optional<std::string>> Shard::Read(Cf cf, const std::string& key) const {
  if (!pending_.empty() && (cf == Cf::kProfiles || cf == Cf::kIdentities)) {
    const auto& overlay = overlay_[cf == Cf::kProfiles ? 0 : 1];
    if (const auto it = overlay.find(key); it != overlay.end()) return it->second.value;
  }
  return store_.Get(cf, key);
}

void Shard::HandleEvent(msg::RouteEvent& m, const Ack& ack) {
  Event& event = m.event;
  const std::string key_type = event.RoutingIdentityType();
  const std::string identity_key = IdentityKey(m.partition, key_type, event.RoutingKey());
  auto resolved = ResolveIdentity(identity_key);
  if (!resolved.ok()) return Fail(resolved.status());
  std::string profile_id = DecodeIdentityRecord(*resolved).profile_id;
  if (profile_id.empty()) {
    // The erasure ledger: an event dated before its visitor's erasure (late, or replayed from old
    // history) is dropped, not made a new profile of the erased person.
    auto erased = ErasedSince(m.partition, key_type, event.RoutingKey(), event.timestamp);
    if (!erased.ok()) return Fail(erased.status());
    if (*erased) {
      metrics_.erased_dropped().Increment();
      return;
    }
    // Ids sort by creation (event time, then a counter), so a merge can pick the older profile
    // from the ids alone. The counter restarts with the process, and many profiles can share an
    // event time (imports, coarse clocks): an id in use (a profile, an alias, one made in this
    // batch) is skipped, or two people would share one profile.
    auto created = static_cast<uint64_t>(std::clamp<TimeMs>(event.timestamp, 0, (1LL << 48) - 2));
    for (int tries = 1;; tries++) {
      profile_id = MakeProfileId(m.partition, (created << 16) | (profiles_created_++ & 0xffff));
      if (tries % 0x10000 == 0) created++;  // every counter value of this time is taken
      if (cache_.Find(profile_id) != nullptr || aliases_.contains(profile_id)) continue;
      auto taken = Read(Cf::kProfiles, profile_id);
      if (!taken.ok()) return Fail(taken.status());
      if (!taken->has_value()) break;
    }
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
  if (!Owns(ProfilePartition(profile_id))) {
    Send(msg::ApplyEvent{std::move(profile_id), std::move(event)}, ack);
    metrics_.events_forwarded().Increment();
    return;
  }
  ApplyToProfile(profile_id, event, ack);
}

void Shard::ApplyToProfile(const std::string& profile_id, Event& event, const Ack& ack) {
  const uint32_t partition = ProfilePartition(profile_id);
  ECRM_CHECK(Owns(partition));
  std::string alias_to;
  auto loaded = LoadProfile(profile_id, &alias_to);
  if (!loaded.ok()) return Fail(loaded.status());
  if (!alias_to.empty()) {  // merged into another profile: the event belongs there
    Send(msg::ApplyEvent{std::move(alias_to), std::move(event)}, ack);
    metrics_.events_forwarded().Increment();
    return;
  }
  Profile* profile = *loaded;
  if (event.message_hash != 0 && SeenMessage(*profile, partition, event)) {
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
    msg::RouteEvent redirect;
    redirect.event = std::move(event);
    redirect.event.anonymous_id.clear();  // routed by the user id from here on
    redirect.partition = PartitionForKey(redirect.event.user_id, router_.partition_count());
    Send(std::move(redirect), ack);
    return;
  }
  if (const size_t dropped = updater_.Apply(*profile, event); dropped > 0) {
    metrics_.traits_dropped().Increment(static_cast<double>(dropped));
  }
  if (event.message_hash != 0) {
    profile->RememberMessage(event.message_hash, event.received_at, options_.dedup_window_ms);
  }
  if (rule_set_ && rule_set_->size() > 0 && profile->StoresBehaviour()) {
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

void Shard::ClaimCarried(Profile& profile, const Event& event, const Ack& ack, bool retry) {
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
      msg::RecordRefusal refusal;
      refusal.profile_id = profile.id;
      refusal.link = std::string(type) + ":" + *value;
      refusal.at = event.timestamp;
      refusal.message_id = event.message_id;
      refusal.reason = "an unverified claim of a second user_id";
      RecordRefusal(refusal, ack);
      return;
    }
    if (!link_only && AtIdentifierCap(profile, type, *value)) {
      // The identifier stays unclaimed (and unrecorded).
      metrics_.identifiers_capped().Increment();
      return;
    }
    msg::ClaimIdentity claim;
    claim.partition = PartitionForKey(*value, router_.partition_count());
    claim.profile_id = profile.id;
    claim.type = type;
    claim.value = *value;
    claim.at = event.timestamp;
    claim.message_id = event.message_id;
    claim.explicit_link = event.type == EventType::kAlias;
    claim.link_only = link_only;
    claim.verified = verified;
    if (!link_only && options_.identifier_limits.contains(type) &&
        profile.AddIdentity(type, *value)) {
      dirty_.insert(profile.id);
    }
    if (Owns(claim.partition)) {
      ClaimIdentity(claim, ack);
    } else {
      Send(std::move(claim), ack);
    }
  };
  for (const auto& [type, value, link_only] : carried) claim_if_new(type, value, link_only);
  for (const auto& [type, value] : event.identifiers) claim_if_new(type.c_str(), &value, false);
}

bool Shard::AtIdentifierCap(const Profile& profile, const std::string& type,
                            const std::string& value) const {
  if (profile.HasIdentity(type, value)) return false;
  const auto held = profile.identities.find(type);
  if (held == profile.identities.end()) return false;
  const auto limit = options_.identifier_limits.find(type);
  const size_t cap = limit == options_.identifier_limits.end()
                         ? options_.max_identifiers_per_type
                         : static_cast<size_t>(std::max(limit->second, 1));
  return held->second.size() >= cap;
}

int Shard::UserIdLimit() const {
  const auto it = options_.identifier_limits.find("user_id");
  return it == options_.identifier_limits.end() ? std::numeric_limits<int>::max() : it->second;
}

void Shard::Send(ShardMessage&& m, const Ack& ack) {
  const uint32_t partition = DestinationPartition(m);
  ack->Add(1);
  if (options_.state_log && !router_.Local(partition)) {
    OutboundMessage& out = outbound_.emplace_back();
    out.partition = partition;
    EncodeShardMessage(m, &out.data);
    outbound_acks_.push_back(ack);
    return;
  }
  outgoing_.push_back({router_.ShardOfPartition(partition), ShardTask{std::move(m), ack}});
}

void Shard::Relay(ShardTask&& task) {
  if (std::holds_alternative<msg::SourceOffset>(task.message) ||
      std::holds_alternative<msg::InternalOffset>(task.message)) {
    // A resume point of a partition given up: its new owner keeps its own.
    return;
  }
  Send(std::move(task.message), task.ack);
}

StatusOr<std::string> Shard::ResolveIdentity(const std::string& key) {
  const auto it = identity_cache_.find(key);
  if (it != identity_cache_.end()) return it->second;
  ASSIGN_OR_RETURN(auto stored, Read(Cf::kIdentities, key));
  if (!stored) return std::string();
  if (identity_cache_.size() >= options_.identity_cache_capacity) identity_cache_.clear();
  identity_cache_[key] = *stored;
  return *std::move(stored);
}

StatusOr<Profile*> Shard::LoadProfile(const std::string& profile_id, std::string* alias_to) {
  if (Profile* cached = cache_.Find(profile_id)) return cached;
  if (auto it = aliases_.find(profile_id); it != aliases_.end()) {
    ECRM_CHECK(alias_to != nullptr);  // every caller of a possibly merged id handles aliases
    *alias_to = it->second;
    return nullptr;
  }
  ASSIGN_OR_RETURN(auto stored, Read(Cf::kProfiles, profile_id));
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
