// RateLimiter: a token bucket per write key, in events per second, with a burst of one second's
// worth (or one maximal batch, if that is larger). The set of keys is fixed at construction; each
// bucket is two atomics, so concurrent HTTP threads never take a lock. Tokens are counted in
// thousandths, so refills lose no fraction however often they run; under contention a request may
// see a refill a moment late, never one counted twice, and the bucket never holds over the burst.
// Owned by ApiService; the clock must outlive it.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/clock.h"

namespace ecrm {

class RateLimiter {
 public:
  // `events_per_second` == 0 disables limiting. The bucket holds max(events_per_second, min_burst)
  // tokens, so one maximal batch can always pass eventually.
  RateLimiter(const std::vector<std::string>& keys, int64_t events_per_second, const Clock& clock,
              int64_t min_burst = 0);

  // Takes `events` tokens from `key`'s bucket; false (and nothing taken) if there are not enough.
  // Unknown keys are never limited here (they are rejected by authentication).
  bool TryAcquire(const std::string& key, int64_t events);
  // Gives back tokens taken for a request that was refused later (e.g. overload).
  void Refund(const std::string& key, int64_t events);

 private:
  struct Bucket {
    std::atomic<int64_t> milli_tokens;  // tokens × 1000
    std::atomic<TimeMs> refilled_at;
  };
  void Refill(Bucket& bucket);
  void Cap(Bucket& bucket, int64_t milli_tokens);

  const int64_t rate_;
  const int64_t burst_;
  const Clock& clock_;
  absl::flat_hash_map<std::string, std::unique_ptr<Bucket>> buckets_;
};

}  // namespace ecrm
