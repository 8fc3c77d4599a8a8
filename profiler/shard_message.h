// Shard messages: the work that shards send each other, one typed struct per kind, each naming the
// partition whose owner must handle it (DestinationPartition). They are plain values with a
// versioned binary form (EncodeShardMessage / DecodeShardMessage), so that the same message can go
// to a local shard's inbox or, in a cluster, to the instance that owns its partition through a
// Kafka topic. The identity protocol they carry is described in
// docs/identity.md#the-protocol-between-shards.
//
// Wire form: a version byte (kShardMessageVersion), the kind's code (the struct's kCode, never
// reused), then the fields in declaration order as varints and length-prefixed strings
// (profiler/internal/wire.h). Codes and field orders only grow: a new field goes at the end with a
// new version, and a decoder reads every older version. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"
#include "profiler/ack_group.h"
#include "profiler/event.h"

namespace ecrm {

// 2: the erasure ledger's times (DeleteProfile, DeleteIdentity) and the events' consent. A message
// without them is still written as version 1 (which instances not yet upgraded read), and a
// version 1 message decodes with them unset.
inline constexpr uint8_t kShardMessageVersion = 2;

namespace msg {

// An event as it arrives, routed by its routing identifier, which lives in `partition`.
struct RouteEvent {
  static constexpr uint8_t kCode = 1;
  uint32_t partition = 0;
  Event event;
};

// An event for a known profile: forwarded by the routing identifier's shard, or following an
// alias to the survivor of a merge.
struct ApplyEvent {
  static constexpr uint8_t kCode = 2;
  std::string profile_id;
  Event event;
};

// At the identifier's shard: `profile_id` claims (type, value), which lives in `partition`. It is
// recorded if nobody holds it; held by another profile, the two merge if both claims are verified.
struct ClaimIdentity {
  static constexpr uint8_t kCode = 3;
  uint32_t partition = 0;
  std::string type;
  std::string value;
  std::string profile_id;
  TimeMs at = 0;  // the claiming event's time and messageId
  std::string message_id;
  bool explicit_link = false;  // an alias call: the user said these are one person
  bool link_only = false;      // merge if held elsewhere, never record the claim
  bool verified = true;        // the claim may merge or take over (docs/identity.md)
};

// At the profile's shard: list (type, value) in `profile_id`'s identities.
struct AttachIdentity {
  static constexpr uint8_t kCode = 4;
  std::string profile_id;
  std::string type;
  std::string value;
};

// Record `offset` as the resume point of source partition `partition` (Kafka mode).
struct SourceOffset {
  static constexpr uint8_t kCode = 5;
  uint32_t partition = 0;
  int64_t offset = 0;
};

// Record `offset` as the resume point of partition `partition` of the internal topic: the shard
// messages other instances sent this partition's owner (cluster mode, docs/cluster.md).
struct InternalOffset {
  static constexpr uint8_t kCode = 16;
  uint32_t partition = 0;
  int64_t offset = 0;
};

// A merge of `loser` into `survivor`, linked by `link` ("type:value") in the event at `at`.
struct MergeLink {
  std::string survivor;
  std::string loser;
  std::string link;
  TimeMs at = 0;
  std::string message_id;
  bool explicit_link = false;
  // The profile whose claim of `link` started the merge: it lists the identifier already when its
  // type is limited, and a refused merge takes it off again.
  std::string claimer;
};

// At the survivor's shard: collect its values of limited types and pass the merge on.
struct MergeCheck {
  static constexpr uint8_t kCode = 6;
  MergeLink merge;
};

// At the loser's shard: apply merge protection, alias the loser and send its content.
struct MergeSend {
  static constexpr uint8_t kCode = 7;
  MergeLink merge;
  std::vector<std::string> survivor_limited;  // "type:value" of the survivor's limited types
};

// At the survivor's shard: fold `loser_profile` (the loser's encoded profile) into the survivor.
// Also the pending merge record's content (EncodePendingMerge).
struct MergeAbsorb {
  static constexpr uint8_t kCode = 8;
  std::string survivor;
  std::string loser;
  std::string link;
  TimeMs at = 0;
  std::string message_id;
  std::string loser_profile;
};

// At the loser's shard: the survivor absorbed it; drop the pending merge record.
struct MergeDone {
  static constexpr uint8_t kCode = 9;
  std::string loser;
};

// At the identifier's shard: (type, value) in `partition` leads to `to` now, if it led to `from`.
struct RepointIdentity {
  static constexpr uint8_t kCode = 10;
  uint32_t partition = 0;
  std::string type;
  std::string value;
  std::string to;
  std::string from;
};

// At the profile's shard: `profile_id` no longer holds (type, value): a refused merge gives it
// back, or a verified claim by `taken_by` took it over from an unverified one.
struct DetachIdentity {
  static constexpr uint8_t kCode = 11;
  std::string profile_id;
  std::string type;
  std::string value;
  std::string taken_by;  // empty for a refused merge
  TimeMs at = 0;
  std::string message_id;
};

// At the profile's shard: `profile_id`'s claim of `link` was refused (held by `holder`, if any).
struct RecordRefusal {
  static constexpr uint8_t kCode = 12;
  std::string profile_id;
  std::string holder;
  std::string link;
  TimeMs at = 0;
  std::string message_id;
  std::string reason;
};

// Erasure (DELETE /v1/profiles, retention): the profile, then its identifiers and aliases.
struct DeleteProfile {
  static constexpr uint8_t kCode = 13;
  std::string profile_id;
  TimeMs erased_at = 0;  // wall clock: the erasure ledger drops events dated up to then
  // Retention: erase only if the profile was last seen before this time (0: always).
  TimeMs inactive_before = 0;
};

// At the identifier's shard: drop (type, value) in `partition` if it leads to one of `holders`,
// and enter it in the erasure ledger (ErasureKey) as erased at `erased_at`.
struct DeleteIdentity {
  static constexpr uint8_t kCode = 14;
  uint32_t partition = 0;
  std::string type;
  std::string value;
  std::vector<std::string> holders;
  TimeMs erased_at = 0;
};

// At the alias's shard: drop the alias record `alias_id` (and any pending merge record of it).
struct DeleteAlias {
  static constexpr uint8_t kCode = 15;
  std::string alias_id;
};

}  // namespace msg

using ShardMessage =
    std::variant<msg::RouteEvent, msg::ApplyEvent, msg::ClaimIdentity, msg::AttachIdentity,
                 msg::SourceOffset, msg::MergeCheck, msg::MergeSend, msg::MergeAbsorb,
                 msg::MergeDone, msg::RepointIdentity, msg::DetachIdentity, msg::RecordRefusal,
                 msg::DeleteProfile, msg::DeleteIdentity, msg::DeleteAlias, msg::InternalOffset>;

// A message on its way to a shard of this process, with the acknowledgement of the request it
// serves (never serialized: an instance acknowledges its own requests).
struct ShardTask {
  ShardMessage message;
  std::shared_ptr<AckGroup> ack;
};

// The partition in a profile id (MakeProfileId). Crashes on an id that has none: every id a shard
// handles was made by MakeProfileId.
uint32_t ProfilePartition(std::string_view profile_id);

// The partition whose owner handles `m`: an identifier's partition, or that of the profile the
// message is about (its id says which). Profile ids come from MakeProfileId, so this never fails.
uint32_t DestinationPartition(const ShardMessage& m);
// The kind's name, for logs and tests ("ClaimIdentity").
const char* MessageName(const ShardMessage& m);

void EncodeShardMessage(const ShardMessage& m, std::string* out);
// Fails with DataLoss on a truncated or corrupt value, an unknown version or an unknown kind.
StatusOr<ShardMessage> DecodeShardMessage(std::string_view data);

// An event alone, in the same binary form (the field list of RouteEvent and ApplyEvent).
void EncodeEvent(const Event& e, std::string* out);
StatusOr<Event> DecodeEvent(std::string_view data);

// The pending record of a merge (meta "merge|<loser id>"): its absorb, so that it can be re-sent
// after a crash. Its own fixed layout, older than the messages (docs/storage.md).
std::string EncodePendingMerge(const msg::MergeAbsorb& absorb);
std::optional<msg::MergeAbsorb> DecodePendingMerge(std::string_view value);

}  // namespace ecrm
