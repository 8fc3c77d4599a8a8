// OffsetTracker: for each source (Kafka) partition, the offsets consumed but not yet fully applied,
// and the resulting watermark: the lowest offset whose effects are not all durable yet. Everything
// below the watermark is durable, so it is the safe resume point to store. Messages complete out of
// order (they go to different shards); the watermark only moves over a contiguous done prefix.
// Owned by the Kafka consumer; not thread-safe (only the consumer thread uses it).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>

namespace ecrm {

class OffsetTracker {
 public:
  // A message at `offset` was consumed (offsets increase per partition; gaps are fine). An offset
  // at or below the last one begun means redelivery: the partition's pending state starts over.
  void Begin(uint32_t partition, int64_t offset);
  // Its effects are durable (or it was dead-lettered). Returns the new watermark if it advanced.
  std::optional<int64_t> Complete(uint32_t partition, int64_t offset);
  // Forgets a partition (revoked).
  void Reset(uint32_t partition);
  size_t InFlight(uint32_t partition) const;
  size_t TotalInFlight() const;

 private:
  struct Entry {
    int64_t offset;
    bool done;
  };
  struct PartitionState {
    std::deque<Entry> pending;  // increasing offsets
    int64_t last_begun = -1;
  };
  std::unordered_map<uint32_t, PartitionState> partitions_;
  size_t total_ = 0;
};

}  // namespace ecrm
