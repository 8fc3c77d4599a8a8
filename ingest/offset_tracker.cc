#include "ingest/offset_tracker.h"

#include <algorithm>

namespace ecrm {

void OffsetTracker::Begin(uint32_t partition, int64_t offset) {
  auto& p = partitions_[partition];
  if (offset <= p.last_begun) {
    // Redelivery from an earlier point (a seek after an error): start over from here. Completions
    // of the older entries are then ignored; the watermark can only be lower, which is safe.
    total_ -= p.pending.size();
    p.pending.clear();
  }
  p.pending.push_back({offset, false});
  p.last_begun = offset;
  total_++;
}

std::optional<int64_t> OffsetTracker::Complete(uint32_t partition, int64_t offset) {
  const auto it = partitions_.find(partition);
  if (it == partitions_.end()) return std::nullopt;  // revoked meanwhile
  auto& p = it->second;
  const auto pos = std::lower_bound(p.pending.begin(), p.pending.end(), offset,
                                    [](const Entry& e, int64_t o) { return e.offset < o; });
  if (pos == p.pending.end() || pos->offset != offset || pos->done) return std::nullopt;
  pos->done = true;
  if (pos != p.pending.begin()) return std::nullopt;
  int64_t watermark = offset + 1;
  while (!p.pending.empty() && p.pending.front().done) {
    watermark = p.pending.front().offset + 1;
    p.pending.pop_front();
    total_--;
  }
  if (!p.pending.empty()) watermark = p.pending.front().offset;
  return watermark;
}

void OffsetTracker::Reset(uint32_t partition) {
  const auto it = partitions_.find(partition);
  if (it == partitions_.end()) return;
  total_ -= it->second.pending.size();
  partitions_.erase(it);
}

size_t OffsetTracker::InFlight(uint32_t partition) const {
  const auto it = partitions_.find(partition);
  return it == partitions_.end() ? 0 : it->second.pending.size();
}

size_t OffsetTracker::TotalInFlight() const { return total_; }

}  // namespace ecrm
