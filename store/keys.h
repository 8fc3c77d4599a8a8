// The on-disk key layout (see docs/storage.md). Every key that belongs to a partition starts with
// the partition as 4 lower-case hex digits ("pppp|" for identities and dedup records, "pppp-" for
// profile ids), so a partition's state is one contiguous key range per column family that can be
// copied or dropped when partition ownership moves. Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ecrm {

// "0007|" for partition 7.
std::string PartitionPrefix(uint32_t partition);

// identities CF: "<pppp>|<type>:<value>" -> profile id.
std::string IdentityKey(uint32_t partition, std::string_view type, std::string_view value);

// dedup CF: "<pppp>|<messageId>" -> fixed64 received-at millis.
std::string DedupKey(uint32_t partition, std::string_view message_id);

// Profile ids are "<pppp>-<16 hex>": the owning partition, then a unique number. The profiles CF
// key is the id itself.
std::string MakeProfileId(uint32_t partition, uint64_t unique);
std::optional<uint32_t> PartitionOfProfileId(std::string_view profile_id);

// meta CF keys.
inline constexpr std::string_view kMetaPartitionCount = "partition_count";
inline constexpr std::string_view kMetaSchemaVersion = "schema_version";
inline constexpr std::string_view kCurrentSchemaVersion = "1";
// "corrupt|<profile id>" -> the unreadable value, kept when a profile had to be restarted.
inline constexpr std::string_view kMetaCorruptPrefix = "corrupt|";

// meta CF: "offset|<pppp>" -> fixed64 next offset to consume from source (Kafka) partition pppp.
std::string SourceOffsetKey(uint32_t partition);

void PutFixed64(std::string* out, uint64_t v);
uint64_t DecodeFixed64(const char* p);

}  // namespace ecrm
