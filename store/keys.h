// The on-disk key layout (see docs/storage.md). Profiles and identities start with their partition
// as 4 lower-case hex digits ("pppp-" for profile ids, "pppp|" for identities), so a partition's
// lasting state is one contiguous key range per column family that can be copied or dropped when
// partition ownership moves; since schema 3 the dedup state is inside the profiles. The old dedup
// records of schemas 1 and 2, which expire within a day, were ordered by time instead (see
// DedupKey). Pure functions, thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ecrm {

// "0007|" for partition 7.
std::string PartitionPrefix(uint32_t partition);

// identities CF: "<pppp>|<type>:<value>" -> an identity record (below).
std::string IdentityKey(uint32_t partition, std::string_view type, std::string_view value);

// An identity record: the profile the identifier belongs to, and whether the claim that put it
// there was verified (docs/identity.md#trusted-identity). Stored as the profile id, followed by
// one byte 'u' when unverified (a plain id, as every record before schema 3, is verified).
struct IdentityRecord {
  std::string profile_id;
  bool verified = true;
  bool operator==(const IdentityRecord&) const = default;
};
std::string EncodeIdentityRecord(std::string_view profile_id, bool verified);
IdentityRecord DecodeIdentityRecord(std::string_view value);

// identities CF, the erasure ledger: "<pppp>|~" then the 128-bit XXH3 hash of "<type>:<value>"
// (16 bytes) -> fixed64 millis of the erasure. Written for each identifier of an erased profile
// (DELETE /v1/profiles, retention), so that an event dated before the erasure (a late event, a
// replay of old Kafka history) is dropped instead of bringing the person back. It holds a hash,
// not the identifier. A type never starts with '~' (config: a lower-case letter), so the ledger
// shares the identities' partition ranges (and the changelog) without colliding with a record.
inline constexpr size_t kErasureKeySize = 5 + 1 + 16;
std::string ErasureKey(uint32_t partition, std::string_view type, std::string_view value);
inline bool IsErasureKey(std::string_view identities_key) {
  return identities_key.size() == kErasureKeySize && identities_key[4] == '|' &&
         identities_key[5] == '~';
}

// dedup CF (schema 2; since schema 3 only read, for one dedup window after an upgrade): the
// event's own time (8 bytes, big-endian, sign bit flipped so the order is numeric; 0 when the event
// carries none), "<pppp>|", then the 128-bit XXH3 hash of the messageId seeded with the partition
// (16 bytes) -> fixed64 received-at millis. Ordered by time so that new keys landed at the end of
// the memtable's skip list. A retried or replayed event repeats its messageId and its time, so it
// maps to the same key.
inline constexpr size_t kDedupKeySize = 5 + 8 + 16;
using DedupKeyBytes = std::array<char, kDedupKeySize>;
DedupKeyBytes DedupKey(uint32_t partition, int64_t event_time_ms, std::string_view message_id);
inline std::string_view AsView(const DedupKeyBytes& key) { return {key.data(), key.size()}; }
// Schema 1's key, "<pppp>|<messageId>": still looked up for one dedup window after an upgrade.
std::string LegacyDedupKey(uint32_t partition, std::string_view message_id);

// The dedup key of schema 3, kept in the profile (Profile::recent_messages): a 64-bit hash of who
// sent the event (the write key's id), the visitor (its routing identifier) and the messageId, so
// the same messageId from another source or visitor is another event. Never 0.
uint64_t MessageHash(std::string_view source, std::string_view routing_type,
                     std::string_view routing_value, std::string_view message_id);

// Profile ids are "<pppp>-<16 hex>": the owning partition, then a unique number. The profiles CF
// key is the id itself.
std::string MakeProfileId(uint32_t partition, uint64_t unique);
std::optional<uint32_t> PartitionOfProfileId(std::string_view profile_id);

// meta CF keys.
inline constexpr std::string_view kMetaPartitionCount = "partition_count";
inline constexpr std::string_view kMetaSchemaVersion = "schema_version";
// 1: dedup keys held the messageId itself; 2: time and hash (DedupKey), per partition;
// 3: dedup by source and visitor inside the profile (MessageHash), identity records with a
// verified flag. See ProfileEngine::Create.
inline constexpr std::string_view kCurrentSchemaVersion = "3";
// fixed64 millis: until then shards also look up the dedup CF keys of the schema that was upgraded
// from ("1" or "2", kMetaLegacyDedupSchema). Written by the upgrade.
inline constexpr std::string_view kMetaLegacyDedupUntil = "legacy_dedup_until";
inline constexpr std::string_view kMetaLegacyDedupSchema = "legacy_dedup_schema";
// "merge|<loser id>" -> a merge whose loser is already an alias but whose survivor may not have
// absorbed it yet (the loser's content and the link); dropped once it has (Shard::MergeAbsorb).
std::string PendingMergeKey(std::string_view loser_id);
inline constexpr std::string_view kMetaPendingMergePrefix = "merge|";
// "corrupt|<profile id>" -> the unreadable value, kept when a profile had to be restarted.
inline constexpr std::string_view kMetaCorruptPrefix = "corrupt|";

// meta CF: "offset|<pppp>" -> fixed64 next offset to consume from source (Kafka) partition pppp.
std::string SourceOffsetKey(uint32_t partition);
// meta CF: "offset|<pppp>|internal" -> fixed64 next offset to consume from partition pppp of the
// internal topic (cluster mode: shard messages sent by other instances, docs/cluster.md). It
// sorts under SourceOffsetKey(pppp), so a scan or range of that prefix takes both.
std::string InternalOffsetKey(uint32_t partition);
// meta CF: "clog|<pppp>" -> fixed64 next changelog offset to restore partition pppp from: every
// changelog record before it is in this store (docs/cluster.md#changelog). Local to one copy,
// so not itself in the changelog.
std::string ChangelogCheckpointKey(uint32_t partition);

// The partition a key of the partitioned state belongs to: profiles and alias records, identity
// records, and the meta CF's offset, pending-merge and quarantine records. nullopt for keys of no
// partition (the meta CF's global records, the checkpoints above, the old dedup CF), which are
// not in the changelog.
std::optional<uint32_t> PartitionOfKey(int cf, std::string_view key);

// Every key range of partition p's state, as (column family number, key prefix): its profiles and
// aliases, identity records, offset records (SourceOffsetKey, InternalOffsetKey), pending merges
// and quarantined values: what PartitionOfKey maps to p. Each prefix ends in a separator or a
// digit (never 0xff), so prefix..prefix-with-last-byte-plus-one is its range.
struct PartitionKeyPrefix {
  int cf;
  std::string prefix;
};
std::vector<PartitionKeyPrefix> PartitionKeyPrefixes(uint32_t p);

// A changelog record's key: one byte for the column family (its Cf number), then the key.
std::string EncodeChangelogKey(int cf, std::string_view key);
// The column family and key of a changelog record's key; nullopt when malformed.
struct ChangelogKey {
  int cf;
  std::string_view key;
};
std::optional<ChangelogKey> DecodeChangelogKey(std::string_view record_key);

void PutFixed64(std::string* out, uint64_t v);
uint64_t DecodeFixed64(const char* p);

}  // namespace ecrm
