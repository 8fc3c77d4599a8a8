// Kafka's murmur2 hash and partitioner, bit-for-bit the same as the Java client's
// org.apache.kafka.common.utils.Utils.murmur2 / toPositive, so that a key lands on the partition a
// Java producer (and librdkafka's murmur2_random partitioner) would choose. Pure functions,
// thread-safe.
#pragma once

#include <cstdint>
#include <string_view>

namespace ecrm {

int32_t Murmur2(std::string_view key);

// The partition for `key` among `partitions`: toPositive(murmur2(key)) % partitions.
inline uint32_t PartitionForKey(std::string_view key, uint32_t partitions) {
  return static_cast<uint32_t>(Murmur2(key) & 0x7fffffff) % partitions;
}

}  // namespace ecrm
