#include "store/keys.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>

namespace ecrm {

std::string PartitionPrefix(uint32_t partition) {
  // Four lower-case hex digits and '|' (on every event's keys: no printf).
  static constexpr char kHex[] = "0123456789abcdef";
  std::string prefix(5, '|');
  for (int i = 3; i >= 0; i--) {
    prefix[static_cast<size_t>(i)] = kHex[partition & 0xf];
    partition >>= 4;
  }
  return prefix;
}

std::string IdentityKey(uint32_t partition, std::string_view type, std::string_view value) {
  std::string key = PartitionPrefix(partition);
  key.append(type);
  key.push_back(':');
  key.append(value);
  return key;
}

std::string EncodeIdentityRecord(std::string_view profile_id, bool verified) {
  std::string value(profile_id);
  if (!verified) value.push_back('u');
  return value;
}

IdentityRecord DecodeIdentityRecord(std::string_view value) {
  IdentityRecord record;
  if (!value.empty() && value.back() == 'u') {
    record.verified = false;
    value.remove_suffix(1);
  }
  record.profile_id.assign(value);
  return record;
}

DedupKeyBytes DedupKey(uint32_t partition, int64_t event_time_ms, std::string_view message_id) {
  DedupKeyBytes key;
  const uint64_t time = static_cast<uint64_t>(event_time_ms) ^ (1ULL << 63);
  const std::string prefix = PartitionPrefix(partition);
  std::copy(prefix.begin(), prefix.end(), key.begin() + 8);
  const XXH128_hash_t h = XXH3_128bits_withSeed(message_id.data(), message_id.size(), partition);
  for (size_t i = 0; i < 8; i++) {
    key[i] = static_cast<char>(time >> (56 - 8 * i));
    key[13 + i] = static_cast<char>(h.high64 >> (56 - 8 * i));
    key[21 + i] = static_cast<char>(h.low64 >> (56 - 8 * i));
  }
  return key;
}

std::string ErasureKey(uint32_t partition, std::string_view type, std::string_view value) {
  std::string key = PartitionPrefix(partition);
  key.push_back('~');
  std::string id;
  id.reserve(type.size() + 1 + value.size());
  id.append(type).append(":").append(value);
  const XXH128_hash_t h = XXH3_128bits(id.data(), id.size());
  PutFixed64(&key, h.high64);
  PutFixed64(&key, h.low64);
  return key;
}

uint64_t MessageHash(std::string_view source, std::string_view routing_type,
                     std::string_view routing_value, std::string_view message_id) {
  // Length-prefixed parts: no separator inside a value can make two different tuples collide.
  std::string buf;
  buf.reserve(32 + source.size() + routing_type.size() + routing_value.size() + message_id.size());
  for (std::string_view part : {source, routing_type, routing_value, message_id}) {
    PutFixed64(&buf, part.size());
    buf.append(part);
  }
  const uint64_t h = XXH3_64bits(buf.data(), buf.size());
  return h == 0 ? 1 : h;
}

std::string PendingMergeKey(std::string_view loser_id) {
  std::string key(kMetaPendingMergePrefix);
  key.append(loser_id);
  return key;
}

std::string LegacyDedupKey(uint32_t partition, std::string_view message_id) {
  std::string key = PartitionPrefix(partition);
  key.append(message_id);
  return key;
}

std::string MakeProfileId(uint32_t partition, uint64_t unique) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04x-%016llx", partition & 0xffff,
                static_cast<unsigned long long>(unique));
  return buf;
}

std::optional<uint32_t> PartitionOfProfileId(std::string_view id) {
  if (id.size() != 21 || id[4] != '-') return std::nullopt;
  uint32_t p = 0;
  for (size_t i = 0; i < 4; i++) {
    const char c = id[i];
    uint32_t v;
    if (c >= '0' && c <= '9') {
      v = static_cast<uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v = static_cast<uint32_t>(c - 'a' + 10);
    } else {
      return std::nullopt;
    }
    p = p * 16 + v;
  }
  return p;
}

std::string SourceOffsetKey(uint32_t partition) {
  return "offset|" + PartitionPrefix(partition).substr(0, 4);
}

std::string InternalOffsetKey(uint32_t partition) {
  return SourceOffsetKey(partition) + "|internal";
}

std::string ChangelogCheckpointKey(uint32_t partition) {
  return "clog|" + PartitionPrefix(partition).substr(0, 4);
}

namespace {

// The partition of four hex digits at the start of `s`.
std::optional<uint32_t> LeadingPartition(std::string_view s) {
  if (s.size() < 4) return std::nullopt;
  uint32_t p = 0;
  for (size_t i = 0; i < 4; i++) {
    const char c = s[i];
    if (c >= '0' && c <= '9') {
      p = p * 16 + static_cast<uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      p = p * 16 + static_cast<uint32_t>(c - 'a' + 10);
    } else {
      return std::nullopt;
    }
  }
  return p;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

std::optional<uint32_t> PartitionOfKey(int cf, std::string_view key) {
  switch (cf) {
    case 0:  // profiles: "pppp-..."
      return key.size() > 4 && key[4] == '-' ? LeadingPartition(key) : std::nullopt;
    case 1:  // identities: "pppp|..."
      return key.size() > 4 && key[4] == '|' ? LeadingPartition(key) : std::nullopt;
    case 3:  // meta
      if (StartsWith(key, "offset|") && (key.size() == 11 || key.substr(11) == "|internal")) {
        return LeadingPartition(key.substr(7));
      }
      if (StartsWith(key, kMetaPendingMergePrefix)) {
        return PartitionOfProfileId(key.substr(kMetaPendingMergePrefix.size()));
      }
      if (StartsWith(key, kMetaCorruptPrefix)) {
        return PartitionOfProfileId(key.substr(kMetaCorruptPrefix.size()));
      }
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

std::vector<PartitionKeyPrefix> PartitionKeyPrefixes(uint32_t p) {
  const std::string pppp = PartitionPrefix(p).substr(0, 4);
  return {{0, pppp + "-"},
          {1, pppp + "|"},
          {3, SourceOffsetKey(p)},  // and InternalOffsetKey(p), which it prefixes
          {3, std::string(kMetaPendingMergePrefix) + pppp + "-"},
          {3, std::string(kMetaCorruptPrefix) + pppp + "-"}};
}

std::string EncodeChangelogKey(int cf, std::string_view key) {
  std::string out;
  out.reserve(key.size() + 1);
  out.push_back(static_cast<char>(cf));
  out.append(key);
  return out;
}

std::optional<ChangelogKey> DecodeChangelogKey(std::string_view record_key) {
  if (record_key.size() < 2) return std::nullopt;
  const int cf = static_cast<unsigned char>(record_key[0]);
  if (cf != 0 && cf != 1 && cf != 3) return std::nullopt;
  return ChangelogKey{cf, record_key.substr(1)};
}

void PutFixed64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; i++) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t DecodeFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace ecrm
