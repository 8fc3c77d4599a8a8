// RuleSet: the seam where rule-based models (segments, scores, counters) will plug into the
// profiler. This version holds no rules; the CEL engine comes with its own issue. A RuleSet is
// immutable once built and is swapped atomically (shared_ptr) by whoever owns it, so shards read it
// without locks.
#pragma once

#include <cstdint>
#include <string>

namespace ecrm {

class RuleSet {
 public:
  RuleSet() = default;
  // A version number the API reports; 0 for the empty set.
  uint64_t version() const { return version_; }
  size_t size() const { return 0; }
  std::string Describe() const;

 private:
  uint64_t version_ = 0;
};

}  // namespace ecrm
