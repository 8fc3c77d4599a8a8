// The identity, merge and erasure handlers of a shard: claims, attaches, takeovers and refusals,
// the merge protocol (MergeCheck, MergeSend, MergeAbsorb, MergeDone, RepointIdentity) and erasure.
// Each handles one shard message (profiler/shard_message.h), whether it came from this shard, a
// shard of this process or, in a cluster, another instance. The protocol is described in
// docs/identity.md#the-protocol-between-shards; the batching around them is in shard.cc.
#include <algorithm>

#include "common/logging.h"
#include "common/murmur2.h"
#include "profiler/profile_codec.h"
#include "profiler/profile_merge.h"
#include "profiler/shard.h"
#include "rules/rule_eval.h"
#include "store/keys.h"

namespace ecrm {
namespace {

// A merge's or refusal's linking identifier, "type:value", as (type, value).
std::optional<std::pair<std::string, std::string>> SplitLink(std::string_view link) {
  const auto colon = link.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  return std::make_pair(std::string(link.substr(0, colon)), std::string(link.substr(colon + 1)));
}

}  // namespace

template <class M>
StatusOr<Profile*> Shard::LoadOrFollow(const M& m, std::string M::*id, const Ack& ack) {
  std::string alias_to;
  auto loaded = LoadProfile(m.*id, &alias_to);
  if (!loaded.ok() || alias_to.empty()) return loaded;
  M follow = m;
  follow.*id = std::move(alias_to);
  Send(std::move(follow), ack);
  return nullptr;
}

void Shard::ClaimIdentity(msg::ClaimIdentity& m, const Ack& ack) {
  const std::string identity_key = IdentityKey(m.partition, m.type, m.value);
  auto resolved = ResolveIdentity(identity_key);
  if (!resolved.ok()) return Fail(resolved.status());
  const IdentityRecord held = DecodeIdentityRecord(*resolved);
  if (held.profile_id.empty()) {
    // An identifier erased after the claiming event was sent stays erased: the event's profile
    // keeps the event, not the identifier (nor a record of it).
    auto erased = ErasedSince(m.partition, m.type, m.value, m.at);
    if (!erased.ok()) return Fail(erased.status());
    if (*erased) {
      metrics_.erased_dropped().Increment();
      // A limited type is listed on the claimant before the claim (ClaimCarried): unlist it.
      if (!m.link_only && options_.identifier_limits.contains(m.type)) {
        Send(msg::DetachIdentity{m.profile_id, m.type, m.value, "", m.at, m.message_id}, ack);
      }
      return;
    }
  }
  if (!held.profile_id.empty() && held.profile_id != m.profile_id) {
    if (m.verified && held.verified) {
      // Owned by another profile: the two are one person, unless merge protection says no.
      metrics_.identity_conflicts().Increment();
      msg::MergeLink cause;
      cause.link = m.type + ":" + m.value;
      cause.at = m.at;
      cause.message_id = m.message_id;
      cause.explicit_link = m.explicit_link;
      StartMerge(m.profile_id, held.profile_id, cause, ack);
      return;
    }
    if (!m.verified) {
      // An unverified claim never joins two profiles: the holder keeps the identifier.
      msg::RecordRefusal refusal;
      refusal.profile_id = m.profile_id;
      refusal.holder = held.profile_id;
      refusal.link = m.type + ":" + m.value;
      refusal.at = m.at;
      refusal.message_id = m.message_id;
      refusal.reason = "an unverified claim of an identifier that another profile holds";
      Send(std::move(refusal), ack);
      return;
    }
    if (m.link_only) return;
    // A verified claim of an identifier that another profile holds only by an unverified claim
    // (squatting): the identifier goes to the verified claimant, the squatter keeps its history.
    metrics_.claims_taken_over().Increment();
    records_moved_ = true;
    Send(msg::DetachIdentity{held.profile_id, m.type, m.value, m.profile_id, m.at, m.message_id},
         ack);
  } else if (m.link_only) {
    return;
  }
  if (held.profile_id != m.profile_id || (m.verified && !held.verified)) {
    const std::string record = EncodeIdentityRecord(m.profile_id, m.verified);
    batch_.Put(Cf::kIdentities, identity_key, record);
    identity_cache_[identity_key] = record;
  }
  // Also when the record already points here: the attach is idempotent and repairs a profile whose
  // attach was lost with a failed batch.
  if (Owns(ProfilePartition(m.profile_id))) {
    AttachIdentity(m.profile_id, m.type, m.value, ack);
    return;
  }
  Send(msg::AttachIdentity{m.profile_id, m.type, m.value}, ack);
}

void Shard::DetachIdentity(msg::DetachIdentity& m, const Ack& ack) {
  auto loaded = LoadOrFollow(m, &msg::DetachIdentity::profile_id, ack);
  if (!loaded.ok()) return Fail(loaded.status());
  if (*loaded == nullptr) return;
  Profile& p = **loaded;
  if (!p.RemoveIdentity(m.type, m.value)) return;
  if (!m.taken_by.empty()) {  // a takeover (a refused merge has its history entry already)
    AddHistory(p, {m.at, false, m.taken_by, m.type + ":" + m.value, m.message_id,
                   "held by an unverified claim; given to a verified one"});
  }
  dirty_.insert(m.profile_id);
}

void Shard::RecordRefusal(msg::RecordRefusal& m, const Ack& ack) {
  auto loaded = LoadOrFollow(m, &msg::RecordRefusal::profile_id, ack);
  if (!loaded.ok()) return Fail(loaded.status());
  if (*loaded == nullptr) return;
  Profile& p = **loaded;
  // Not a refusal if the holder was merged into this profile meanwhile.
  if (!m.holder.empty() &&
      std::find(p.merged_ids.begin(), p.merged_ids.end(), m.holder) != p.merged_ids.end()) {
    return;
  }
  if (!m.holder.empty()) {
    metrics_.claims_refused().Increment();
    // Listed when it was claimed (a limited type): the holder keeps it.
    if (const auto link = SplitLink(m.link)) p.RemoveIdentity(link->first, link->second);
  }
  AddHistory(p, {m.at, false, m.holder, m.link, m.message_id, m.reason});
  dirty_.insert(m.profile_id);
}

// Profile ids sort by creation (event time, then a per-shard counter): the older one survives
// (or the newer, with --merge-survivor newest).
void Shard::StartMerge(const std::string& a, const std::string& b, const msg::MergeLink& cause,
                       const Ack& ack) {
  if (a == b) return;
  const bool a_older = a.substr(5) != b.substr(5) ? a.substr(5) < b.substr(5) : a < b;
  const bool a_survives = a_older != options_.newer_survives;
  msg::MergeCheck check;
  check.merge = cause;
  check.merge.survivor = a_survives ? a : b;
  check.merge.loser = a_survives ? b : a;
  if (check.merge.claimer.empty()) check.merge.claimer = a;
  Send(std::move(check), ack);
}

void Shard::MergeCheck(msg::MergeCheck& m, const Ack& ack) {
  std::string alias_to;
  auto survivor = LoadProfile(m.merge.survivor, &alias_to);
  if (!survivor.ok()) return Fail(survivor.status());
  if (!alias_to.empty()) return StartMerge(alias_to, m.merge.loser, m.merge, ack);
  msg::MergeSend send;
  send.merge = m.merge;
  // The survivor's values of every limited type, as "type:value", for the loser's shard to check.
  for (const auto& [type, limit] : options_.identifier_limits) {
    const auto values = (*survivor)->identities.find(type);
    if (values == (*survivor)->identities.end()) continue;
    for (const auto& v : values->second) send.survivor_limited.push_back(type + ":" + v);
  }
  Send(std::move(send), ack);
}

void Shard::MergeSend(msg::MergeSend& m, const Ack& ack) {
  const msg::MergeLink& merge = m.merge;
  const std::string& loser_id = merge.loser;
  std::string alias_to;
  auto loaded = LoadProfile(loser_id, &alias_to);
  if (!loaded.ok()) return Fail(loaded.status());
  if (!alias_to.empty()) {
    if (alias_to != merge.survivor) {
      StartMerge(merge.survivor, alias_to, merge, ack);  // being merged with its survivor
      return;
    }
    // Merged into the survivor already. The claim that led here may be a retry whose first
    // attempt's attach was lost in a crash, with the record still naming the merged-away id: the
    // survivor lists the linking identifier, and its record leads there directly.
    if (auto link = SplitLink(merge.link)) {
      msg::RepointIdentity repoint;
      repoint.partition = PartitionForKey(link->second, router_.partition_count());
      repoint.type = link->first;
      repoint.value = link->second;
      repoint.to = merge.survivor;
      repoint.from = loser_id;
      Send(msg::AttachIdentity{merge.survivor, std::move(link->first), std::move(link->second)},
           ack);
      Send(std::move(repoint), ack);
    }
    return;
  }
  Profile* loser = *loaded;
  // Merge protection: no identifier type over its limit in the merged profile, unless an alias
  // call linked the two explicitly.
  for (const auto& [type, limit] : options_.identifier_limits) {
    if (merge.explicit_link) break;
    std::vector<std::string> values = m.survivor_limited;  // "type:value" of the survivor
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
      AddHistory(*loser, {merge.at, false, merge.survivor, merge.link, merge.message_id,
                          "both profiles have a different " + type});
      dirty_.insert(loser_id);
      metrics_.merges_refused().Increment();
      // The claimer listed the linking identifier when it claimed it; it stays with its holder.
      if (auto link = SplitLink(merge.link)) {
        Send(msg::DetachIdentity{merge.claimer, std::move(link->first), std::move(link->second), "",
                                 merge.at, merge.message_id},
             ack);
      }
      return;
    }
  }
  msg::MergeAbsorb absorb;
  absorb.survivor = merge.survivor;
  absorb.loser = loser_id;
  absorb.link = merge.link;
  absorb.at = merge.at;
  absorb.message_id = merge.message_id;
  EncodeProfile(*loser, &absorb.loser_profile);
  // Every identifier of the loser now leads to the survivor.
  for (const auto& [type, values] : loser->identities) {
    for (const auto& value : values) {
      msg::RepointIdentity repoint;
      repoint.partition = PartitionForKey(value, router_.partition_count());
      repoint.type = type;
      repoint.value = value;
      repoint.to = merge.survivor;
      repoint.from = loser_id;
      Send(std::move(repoint), ack);
    }
  }
  // The loser becomes an alias: later events and reads by its id land on the survivor. Until the
  // survivor has absorbed it, its content is also kept in a pending record in the same batch, so a
  // crash between the two shards' batches resumes the merge instead of losing the loser's history
  // (ProfileEngine::Start re-sends the absorb).
  batch_.Put(Cf::kProfiles, loser_id, EncodeAlias(merge.survivor));
  batch_.Put(Cf::kMeta, PendingMergeKey(loser_id), EncodePendingMerge(absorb));
  dirty_.erase(loser_id);
  cache_.Erase(loser_id);
  aliases_[loser_id] = merge.survivor;
  metrics_.merges().Increment();
  Send(std::move(absorb), ack);
}

void Shard::MergeAbsorb(msg::MergeAbsorb& m, const Ack& ack) {
  auto loaded = LoadOrFollow(m, &msg::MergeAbsorb::survivor, ack);  // merged meanwhile?
  if (!loaded.ok()) return Fail(loaded.status());
  if (*loaded == nullptr) return;
  Profile& survivor = **loaded;
  // Absorbed already (the absorb was re-sent after a crash): do not count the loser twice.
  if (std::find(survivor.merged_ids.begin(), survivor.merged_ids.end(), m.loser) ==
      survivor.merged_ids.end()) {
    auto absorbed = DecodeProfile(m.loser_profile);
    ECRM_CHECK(absorbed.ok());  // encoded by a shard of this process (or its pending record)
    if (const size_t dropped = MergeProfiles(survivor, *absorbed, updater_); dropped > 0) {
      metrics_.traits_dropped().Increment(static_cast<double>(dropped));
    }
    AddHistory(survivor, {m.at, true, m.loser, m.link, m.message_id, ""});
    RerunRules(survivor, m.at);
    dirty_.insert(m.survivor);
  }
  // Bookkeeping only: the merge is durable now, so the request is not held up for it. If it is
  // lost in a crash, the pending record re-sends an absorb that changes nothing.
  Send(msg::MergeDone{m.loser}, std::make_shared<AckGroup>(0, [](Status) {}));
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

void Shard::RepointIdentity(msg::RepointIdentity& m) {
  const std::string key = IdentityKey(m.partition, m.type, m.value);
  auto resolved = ResolveIdentity(key);
  if (!resolved.ok()) return Fail(resolved.status());
  const IdentityRecord held = DecodeIdentityRecord(*resolved);
  if (!held.profile_id.empty() && held.profile_id != m.from) return;  // moved on meanwhile
  const std::string record = EncodeIdentityRecord(m.to, held.verified);
  batch_.Put(Cf::kIdentities, key, record);
  identity_cache_[key] = record;
}

void Shard::DeleteProfile(msg::DeleteProfile& m, const Ack& ack) {
  auto loaded = LoadOrFollow(m, &msg::DeleteProfile::profile_id, ack);
  if (!loaded.ok()) return Fail(loaded.status());
  if (*loaded == nullptr) return;
  const Profile& p = **loaded;
  // Retention: an event since the sweep read the profile keeps it.
  if (m.inactive_before != 0 && p.stats.last_seen >= m.inactive_before) return;
  // Identifier records are dropped only if they still lead to this profile or one merged into it.
  std::vector<std::string> ids = p.merged_ids;
  ids.push_back(p.id);
  for (const auto& [type, values] : p.identities) {
    for (const auto& value : values) {
      Send(msg::DeleteIdentity{PartitionForKey(value, router_.partition_count()), type, value, ids,
                               m.erased_at},
           ack);
    }
  }
  for (const auto& merged : p.merged_ids) Send(msg::DeleteAlias{merged}, ack);
  batch_.Delete(Cf::kProfiles, m.profile_id);
  dirty_.erase(m.profile_id);
  cache_.Erase(m.profile_id);
  (m.inactive_before != 0 ? metrics_.profiles_expired() : metrics_.profiles_deleted()).Increment();
}

void Shard::DeleteIdentity(msg::DeleteIdentity& m) {
  const std::string key = IdentityKey(m.partition, m.type, m.value);
  auto resolved = ResolveIdentity(key);
  if (!resolved.ok()) return Fail(resolved.status());
  const std::string holder = DecodeIdentityRecord(*resolved).profile_id;
  if (std::find(m.holders.begin(), m.holders.end(), holder) == m.holders.end()) {
    return;  // leads elsewhere now
  }
  batch_.Delete(Cf::kIdentities, key);
  identity_cache_.erase(key);
  if (m.erased_at > 0) {
    // The ledger keeps the latest erasure of the identifier.
    const std::string ledger_key = ErasureKey(m.partition, m.type, m.value);
    auto ledger = ResolveIdentity(ledger_key);
    if (!ledger.ok()) return Fail(ledger.status());
    if (ErasedAt(*ledger) < m.erased_at) {
      std::string at;
      PutFixed64(&at, static_cast<uint64_t>(m.erased_at));
      batch_.Put(Cf::kIdentities, ledger_key, at);
      identity_cache_[ledger_key] = std::move(at);
    }
  }
}

TimeMs Shard::ErasedAt(std::string_view ledger_value) {
  return ledger_value.size() == 8 ? static_cast<TimeMs>(DecodeFixed64(ledger_value.data())) : 0;
}

StatusOr<bool> Shard::ErasedSince(uint32_t partition, std::string_view type, std::string_view value,
                                  TimeMs at) {
  ASSIGN_OR_RETURN(const std::string ledger, ResolveIdentity(ErasureKey(partition, type, value)));
  return !ledger.empty() && at <= ErasedAt(ledger);
}

void Shard::DeleteAlias(msg::DeleteAlias& m) {
  batch_.Delete(Cf::kProfiles, m.alias_id);
  batch_.Delete(Cf::kMeta, PendingMergeKey(m.alias_id));
  aliases_.erase(m.alias_id);
  cache_.Erase(m.alias_id);
  dirty_.erase(m.alias_id);
}

void Shard::AttachIdentity(const std::string& profile_id, const std::string& type,
                           const std::string& value, const Ack& ack) {
  std::string alias_to;
  auto loaded = LoadProfile(profile_id, &alias_to);
  if (!loaded.ok()) return Fail(loaded.status());
  if (!alias_to.empty()) {
    // Merged meanwhile: the survivor lists the identifier (its record names the merged-away id,
    // whose alias leads there). The claim's request is answered once the survivor lists it.
    if (Owns(ProfilePartition(alias_to))) return AttachIdentity(alias_to, type, value, ack);
    Send(msg::AttachIdentity{alias_to, type, value}, ack);
    return;
  }
  Profile& profile = **loaded;
  if (AtIdentifierCap(profile, type, value)) {
    // Claims in flight together passed the check in ClaimCarried: the record the claim wrote goes
    // again, if it still names this profile.
    metrics_.identifiers_capped().Increment();
    Send(
        msg::DeleteIdentity{
            PartitionForKey(value, router_.partition_count()), type, value, {profile_id}, 0},
        ack);
    return;
  }
  if (profile.AddIdentity(type, value)) {
    dirty_.insert(profile_id);
    metrics_.identities_attached().Increment();
  }
}

}  // namespace ecrm
