// CheckIdentityGraph: an offline consistency check (fsck) of the identity graph in a KvStore, for
// `ecrm check` (docs/identity.md#checking-the-graph-ecrm-check). It streams the `identities` and
// `profiles` column families with iterators and follows each record with point reads, so its
// memory does not grow with the number of profiles.
//
// The store must outlive the call and should not be written meanwhile (open it read-only, with no
// ecrm running): a merge in flight shows as a violation. Thread-safe in the sense that it only
// reads; it calls `sink` on the calling thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "store/kv_store.h"

namespace ecrm {

// One broken invariant, numbered as in docs/identity.md.
struct GraphViolation {
  enum class Kind {
    kMalformedIdentityKey,    // 1: not "<pppp>|<type>:<value>"
    kWrongIdentityPartition,  // 1: pppp != PartitionForKey(value, partition_count)
    kDanglingIdentity,        // 2: the record leads to no live profile
    kIdentityNotListed,       // 3: the profile it leads to does not list the identifier
    kListedWithoutRecord,     // 4: a profile lists an identifier that has no record
    kListedElsewhere,         // 4: ... whose record leads to another profile
    kListedTwice,             // 4: ... which that other profile lists as well
    kMalformedProfileKey,     // 5: not "<pppp>-<16 hex>" with pppp < partition_count
    kProfileIdMismatch,       // 5: a profile's `id` differs from its key
    kUndecodableProfile,      // 5: neither an alias record nor a decodable profile
    kAliasToMissing,          // 5: an alias whose target does not exist
    kAliasCycle,              // 5: aliases that point at each other in a circle
    kBadMergedId,             // 6: a merged id that is not an alias leading back to the profile
  };
  Kind kind;
  // One line naming the keys and ids involved (identifier values are escaped to printable ASCII;
  // no trait or other profile content is included).
  std::string message;
};

struct GraphCheckCounts {
  uint64_t profiles = 0;          // `profiles` records that are not aliases (undecodable ones too)
  uint64_t aliases = 0;           // alias records
  uint64_t identity_records = 0;  // `identities` records
  uint64_t erased = 0;            // erasure ledger entries (in `identities`, not counted above)
  uint64_t violations = 0;        // calls to the sink
};

// Calls `sink` once per violation found, in scan order (identities first, then profiles), and
// returns the counts. Fails only when the store cannot be read, or when meta/partition_count is
// missing or invalid (then it is not an ecrm data dir the checks can be made against).
StatusOr<GraphCheckCounts> CheckIdentityGraph(
    const KvStore& store, const std::function<void(const GraphViolation&)>& sink);

}  // namespace ecrm
