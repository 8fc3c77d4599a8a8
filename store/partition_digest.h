// A digest of each partition's lasting state, to tell whether two copies of a partition (an owner's
// and a restored or standby copy, or two data dirs) hold the same state: its profiles and aliases
// (keys `pppp-…` of `profiles`), its identity records (`pppp|…`), its source offset
// (`meta offset|pppp`) and its pending merges (`meta merge|pppp-…`), in key order. Read-only; safe
// on a store opened read-only. Shown by `ecrm check --partition-digests`.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "store/kv_store.h"

namespace ecrm {

struct PartitionDigest {
  uint32_t partition = 0;
  uint64_t digest = 0;   // XXH3-64 of (column family, key, value) of every record, in key order
  uint64_t records = 0;  // how many records it covers
};

StatusOr<std::vector<PartitionDigest>> DigestPartitions(const KvStore& store, uint32_t partitions);

}  // namespace ecrm
