#include "store/partition_digest.h"

#include <xxhash.h>

#include <memory>
#include <string>

#include "store/keys.h"

namespace ecrm {
namespace {

struct StateDeleter {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};

void AddRecord(XXH3_state_t* state, Cf cf, std::string_view key, std::string_view value) {
  const auto cf_byte = static_cast<uint8_t>(cf);
  const uint64_t sizes[2] = {key.size(), value.size()};  // lengths make the framing unambiguous
  XXH3_64bits_update(state, &cf_byte, 1);
  XXH3_64bits_update(state, sizes, sizeof(sizes));
  XXH3_64bits_update(state, key.data(), key.size());
  XXH3_64bits_update(state, value.data(), value.size());
}

}  // namespace

StatusOr<std::vector<PartitionDigest>> DigestPartitions(const KvStore& store, uint32_t partitions) {
  std::vector<PartitionDigest> out;
  out.reserve(partitions);
  std::unique_ptr<XXH3_state_t, StateDeleter> state(XXH3_createState());
  for (uint32_t p = 0; p < partitions; p++) {
    XXH3_64bits_reset(state.get());
    PartitionDigest d;
    d.partition = p;
    const std::string identities = PartitionPrefix(p);           // "pppp|"
    const std::string profiles = identities.substr(0, 4) + "-";  // "pppp-"
    const std::string merges = std::string(kMetaPendingMergePrefix) + profiles;
    auto add = [&](Cf cf) {
      return [&, cf](std::string_view key, std::string_view value) {
        AddRecord(state.get(), cf, key, value);
        d.records++;
        return true;
      };
    };
    RETURN_IF_ERROR(store.Scan(Cf::kProfiles, profiles, add(Cf::kProfiles)));
    RETURN_IF_ERROR(store.Scan(Cf::kIdentities, identities, add(Cf::kIdentities)));
    for (const std::string& offset_key : {SourceOffsetKey(p), InternalOffsetKey(p)}) {
      ASSIGN_OR_RETURN(auto offset, store.Get(Cf::kMeta, offset_key));
      if (offset) {
        AddRecord(state.get(), Cf::kMeta, offset_key, *offset);
        d.records++;
      }
    }
    RETURN_IF_ERROR(store.Scan(Cf::kMeta, merges, add(Cf::kMeta)));
    d.digest = XXH3_64bits_digest(state.get());
    out.push_back(d);
  }
  return out;
}

}  // namespace ecrm
